"""The format registry: look-ups, registration rules and content negotiation."""

from __future__ import annotations

import pytest

import exports
from exports import Format, content_type, formats, get, negotiate, register, unregister

BUILT_IN = {
    "jsonld": (("application/ld+json", "application/json"), ("jsonld", "json")),
    "turtle": (("text/turtle",), ("ttl",)),
    "ntriples": (("application/n-triples",), ("nt",)),
    "nquads": (("application/n-quads",), ("nq",)),
    "rdfxml": (("application/rdf+xml",), ("rdf",)),
    "csv": (("text/csv",), ("csv",)),
    "xlsx": (("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",),
             ("xlsx",)),
    "geojson": (("application/geo+json",), ("geojson",)),
}


def test_built_in_formats_register_themselves_on_import():
    names = [f.name for f in formats()]
    assert set(BUILT_IN) <= set(names)
    assert "html" not in names  # the service registers it
    for name, (media_types, extensions) in BUILT_IN.items():
        fmt = get(name)
        assert (fmt.media_types, fmt.extensions) == (media_types, extensions)


@pytest.mark.parametrize("name", sorted(BUILT_IN))
def test_one_lookup_serves_name_extension_and_media_type(name):
    media_types, extensions = BUILT_IN[name]
    fmt = get(name)
    for key in (*media_types, *extensions):
        assert get(key) is fmt
    assert get("." + extensions[0]) is fmt
    assert get(media_types[0].upper() + "; charset=utf-8") is fmt


@pytest.mark.parametrize("key", ["", "html", "text/html", "xml", "application/xml", "ttl2"])
def test_unknown_keys_find_nothing(key):
    assert get(key) is None


def test_rdf_and_text_flags():
    assert {f.name for f in formats() if f.rdf} == {"jsonld", "turtle", "ntriples", "nquads",
                                                    "rdfxml"}
    assert [f.name for f in formats() if not f.text] == ["xlsx"]


def test_content_type_adds_charset_to_text_formats_only():
    assert content_type(get("turtle")) == "text/turtle; charset=utf-8"
    assert content_type(get("jsonld")) == "application/ld+json; charset=utf-8"
    assert content_type(get("xlsx")) == (
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")


def test_formats_follow_the_servers_preference(html_format):
    names = [f.name for f in formats()]
    assert names[: len(exports.PREFERENCE)] == list(exports.PREFERENCE)
    assert names[-1] == "xlsx"  # formats outside PREFERENCE come last


def test_register_replaces_a_format_of_the_same_name(html_format):
    replacement = Format("html", ("text/html",), ("htm",), lambda p: b"new")
    register(replacement)
    assert get("text/html") is replacement and get("htm") is replacement
    # aliases of the replaced format are gone with it
    assert get("html") is replacement and get("application/xhtml+xml") is None


def test_register_refuses_aliases_owned_by_another_format():
    stolen = Format("json", ("application/json",), ("js",), lambda p: b"{}")
    with pytest.raises(ValueError, match="jsonld"):
        register(stolen)
    assert get("application/json").name == "jsonld" and get("js") is None
    with pytest.raises(ValueError):
        register(Format("empty", (), (), lambda p: b""))


def test_unregister_removes_every_alias():
    register(Format("dummy", ("application/x-dummy",), ("dmy",), lambda p: b""))
    assert get("dmy").name == "dummy"
    unregister("dummy")
    assert get("dummy") is get("dmy") is get("application/x-dummy") is None
    unregister("dummy")  # unknown names are ignored


BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,*/*;q=0.8"


@pytest.mark.parametrize(("accept", "expected"), [
    (None, "html"),
    ("", "html"),
    ("   ", "html"),
    ("*/*", "html"),
    (BROWSER, "html"),
    ("application/xhtml+xml", "html"),
    ("text/*", "html"),  # equal q: server preference
    ("text/turtle", "turtle"),
    ("TEXT/Turtle", "turtle"),
    ("application/json", "jsonld"),
    ("application/ld+json", "jsonld"),
    ("application/n-triples", "ntriples"),
    ("application/rdf+xml", "rdfxml"),
    ("text/csv", "csv"),
    ("application/geo+json", "geojson"),
    ("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "xlsx"),
    # q-values
    ("application/ld+json;q=0.5, text/turtle;q=0.9", "turtle"),
    ("text/turtle;q=0.5, application/rdf+xml", "rdfxml"),
    ("text/turtle, application/rdf+xml;q=0.9, */*;q=0.1", "turtle"),
    ("text/turtle;q=0.3, */*;q=0.2", "turtle"),
    ("text/*;q=0.5, application/n-triples", "ntriples"),
    ("text/html;q=0.1, text/csv;q=0.2", "csv"),
    # an exact range beats a wildcard of the same q
    ("text/turtle, */*", "turtle"),
    ("application/*, text/csv", "csv"),
    # q=0 refuses, also against a matching wildcard
    ("text/html;q=0, */*", "jsonld"),
    ("text/html;q=0, application/xhtml+xml;q=0, text/*", "turtle"),
    ("text/*;q=0, application/*", "jsonld"),
    # parameters other than q are ignored, quoted ones may hold , and ;
    ("text/turtle; charset=utf-8; q=0.6, application/n-triples;q=0.5", "turtle"),
    ('text/turtle;profile="a,b;c";q=0.4, application/n-triples;q=0.3', "turtle"),
    ("text/turtle;Q=0.4, application/n-triples;q=0.3", "turtle"),
    # malformed elements are skipped, the rest still counts
    ("garbage, text/turtle;q=0.1", "turtle"),
    ("*/turtle, text/csv;q=0.5", "csv"),
    ("text/turtle;q=2, application/n-triples;q=0.1", "ntriples"),
    ("text/turtle;q=0.1234, text/csv;q=0.5", "csv"),
    ("text/turtle;q=abc, application/rdf+xml;q=0.2", "rdfxml"),
    (",, text/csv ,", "csv"),
    # nothing valid at all reads as no header
    ("garbage", "html"),
    ("text/turtle;q=-1", "html"),
    # old Java clients send a bare "*"
    ("image/gif, *; q=0.2", "html"),
])
def test_negotiate(html_format, accept, expected):
    assert negotiate(accept).name == expected


@pytest.mark.parametrize("accept", [
    "image/png",
    "text/turtle;q=0",
    "*/*;q=0",
    "text/html;q=0, application/*;q=0, text/*;q=0",
    "application/ld+json;q=0, application/json;q=1",  # canonical type refused
])
def test_negotiate_without_an_acceptable_format_returns_none(html_format, accept):
    assert negotiate(accept, names=["html", "jsonld"]) is None


def test_without_html_the_default_is_jsonld():
    assert get("html") is None
    assert negotiate(None).name == "jsonld"
    assert negotiate("*/*").name == "jsonld"
    assert negotiate("text/html") is None
    assert negotiate(BROWSER).name == "jsonld"  # via */*;q=0.8


def test_negotiate_limited_to_names(html_format):
    assert negotiate("*/*", names=["ntriples", "turtle"]).name == "turtle"
    # aliases work; the caller's order does not matter, preference does
    assert negotiate(None, names=["nt", "text/turtle"]).name == "turtle"
    assert negotiate("text/html", names=["turtle"]) is None
    assert negotiate("*/*", names=["no-such-format", "csv"]).name == "csv"
    assert negotiate("*/*", names=[]) is None
    # an alias refused does not refuse the format when its canonical type is acceptable
    assert negotiate("application/json;q=0, */*", names=["jsonld"]).name == "jsonld"


def test_negotiate_picks_up_formats_registered_later():
    register(Format("dummy", ("application/x-dummy",), ("dmy",), lambda p: b""))
    try:
        assert negotiate("application/x-dummy").name == "dummy"
        assert negotiate("*/*").name == "jsonld"  # unknown to PREFERENCE: ranked last
    finally:
        unregister("dummy")
