"""Parsing untrusted RDF: every format, malformed input, remote contexts, RDF/XML and caps."""

from __future__ import annotations

import io
import json
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pyoxigraph
import pytest
from rdflib import Literal
from rdflib.namespace import XSD

from harvesters.errors import ParseError
from harvesters.parse import (
    FORMATS,
    ParseLimits,
    detect_format,
    iter_rdf,
    parse_rdf,
    to_rdflib,
)
from vocab import CONTEXT_URL, to_graph, to_jsonld

BASE = "http://node.test"
PAGE = f"{BASE}/feed/1"
ACTOR = {
    "id": "a1", "name": {"de": "Freiwilligenagentur", "en": "Volunteer agency"},
    "actorTypes": ["freiwilligenagentur"], "url": "https://example.org/",
    "geo": {"latitude": 51.05, "longitude": 13.74},
    "contactPoints": [{"contactType": {"de": "Beratung"}, "email": "rat@example.org"}],
}
LIMITS = ParseLimits()


def graph():
    return to_graph("actor", ACTOR, BASE)


def ntriples() -> bytes:
    return graph().serialize(format="nt", encoding="utf-8")


def expected() -> set[str]:
    return {str(t) for t in parse_rdf(ntriples(), "application/n-triples", base_iri=None,
                                      limits=LIMITS)}


def rdfxml() -> bytes:
    return graph().serialize(format="xml", encoding="utf-8")


def serialized(fmt: str) -> bytes:
    if fmt == "n-triples":
        return ntriples()
    if fmt == "n-quads":  # every statement in a named graph of the source's choosing
        return b"".join(line[:-2] + b" <http://node.test/some-graph> .\n"
                        for line in ntriples().splitlines() if line.strip())
    if fmt == "turtle":
        return graph().serialize(format="turtle", encoding="utf-8")
    if fmt == "json-ld":
        return json.dumps(to_jsonld("actor", ACTOR, BASE)).encode()
    raise AssertionError(fmt)


def reason(call) -> str:
    with pytest.raises(ParseError) as info:
        call()
    return info.value.reason


# --------------------------------------------------------------------------- formats


@pytest.mark.parametrize("fmt", ["n-triples", "n-quads", "turtle", "json-ld"])
def test_every_format_parses_to_the_same_triples(fmt):
    media_type = FORMATS[fmt].media_types[0] + "; charset=utf-8"
    triples = parse_rdf(serialized(fmt), media_type, base_iri=PAGE, limits=LIMITS)
    assert all(isinstance(t, pyoxigraph.Triple) for t in triples)
    assert {str(t) for t in triples} == expected()  # graph names are dropped


def test_rdfxml_parses_when_enabled():
    triples = parse_rdf(rdfxml(), "application/rdf+xml", base_iri=PAGE, limits=LIMITS,
                        allow_rdfxml=True)
    assert {str(t) for t in triples} == expected()


def test_relative_iris_resolve_against_the_document_url():
    triples = parse_rdf(b'<../actors/x> <http://p.test/p> "v" .', "text/turtle",
                        base_iri=PAGE, limits=LIMITS)
    assert triples[0].subject.value == f"{BASE}/actors/x"


def test_blank_nodes_are_fresh_per_document():
    doc = b'<http://node.test/a> <http://p.test/p> _:b .'
    first = parse_rdf(doc, "application/n-triples", base_iri=None, limits=LIMITS)
    second = parse_rdf(doc, "application/n-triples", base_iri=None, limits=LIMITS)
    assert first[0].object != second[0].object


def test_a_binary_stream_is_parsed_too():
    triples = list(iter_rdf(io.BytesIO(ntriples()), "application/n-triples", base_iri=None,
                            limits=LIMITS))
    assert {str(t) for t in triples} == expected()


@pytest.mark.parametrize("media_type, name, fmt", [
    ("text/turtle", None, "turtle"),
    ("Text/Turtle; charset=UTF-8", None, "turtle"),
    ('application/ld+json; profile="http://www.w3.org/ns/json-ld#compacted"', None, "json-ld"),
    ("application/json", None, "json-ld"),
    ("application/n-quads", "http://x.test/a.ttl", "n-quads"),  # Content-Type wins
    (None, "http://x.test/dumps/actors.nt", "n-triples"),
    ("application/octet-stream", "http://x.test/a.jsonld?page=2", "json-ld"),
    ("text/plain", "data.TTL", "turtle"),
    ("", "http://x.test/all.nq", "n-quads"),
    ("application/rdf+xml", None, "rdf-xml"),
])
def test_format_detection(media_type, name, fmt):
    assert detect_format(media_type, name).name == fmt


@pytest.mark.parametrize("media_type, name, expected_reason", [
    ("text/html", "http://x.test/a.ttl", "unknown-format"),
    (None, "http://x.test/feed", "unknown-format"),
    ("application/octet-stream", None, "unknown-format"),
    (None, "http://x.test/a.ttl.gz", "unknown-format"),
    ("text/turtle; charset=iso-8859-1", None, "unsupported-charset"),
])
def test_unknown_formats_are_refused(media_type, name, expected_reason):
    assert reason(lambda: detect_format(media_type, name)) == expected_reason
    assert reason(lambda: parse_rdf(b"", media_type, base_iri=name, limits=LIMITS)) == \
        expected_reason


# --------------------------------------------------------------------------- malformed


@pytest.mark.parametrize("media_type, data", [
    ("application/n-triples", b'<http://a.test/> <http://p.test/> "x" .\n<http://a.test/> <p'),
    ("application/n-triples", b'<relative> <http://p.test/> "x" .'),
    ("application/n-triples", b'<http://a.test/> <http://p.test/> "\xff" .'),
    ("application/n-quads", b'<http://a.test/> <http://p.test/> "x" "graph" .'),
    ("text/turtle", b'@prefix ex: <http://ex.test/> .\nex:a ex:p [ ex:q "x" .'),
    ("text/turtle", b'ex:a ex:p "x" .'),  # undeclared prefix
    ("text/turtle", b'<http://a.test/> <http://p.test/> "x"@not_a_tag .'),
    ("application/ld+json", b'{"@id": "http://a.test/", '),
    ("application/ld+json", b'{"@id": "http://a.test/", "http://p.test/": NaN}'),
    ("application/ld+json", b'{"@id": "http://a.test/", "http://p.test/": "\xff"}'),
    ("application/ld+json", b'{"@id": "http://a.test/", "@type": {"x": 1}}'),
    ("application/ld+json", b'[' * 100_000 + b']' * 100_000),  # json: RecursionError
])
def test_malformed_input_raises_parse_error_with_the_parsers_message(media_type, data):
    with pytest.raises(ParseError) as info:
        parse_rdf(data, media_type, base_iri=None, limits=LIMITS)
    assert info.value.reason in {"syntax", "json-too-deep"}
    assert str(info.value).split(":", 1)[1].strip()  # the parser's own words follow


@pytest.mark.parametrize("data", [
    b'<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description>'
    b"</rdf:RDF>",
    b'<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
    b'<rdf:Description rdf:about="http://a.test/"><p>1</p></rdf:Description></rdf:RDF>',
])
def test_malformed_rdfxml_raises_parse_error(data):
    assert reason(lambda: parse_rdf(data, "application/rdf+xml", base_iri=None, limits=LIMITS,
                                    allow_rdfxml=True)) == "syntax"


def test_deeply_nested_json_ld_never_reaches_the_parser(monkeypatch):
    """pyoxigraph's JSON-LD parser crashed the process (SIGSEGV) at 5,000 levels."""
    monkeypatch.setattr(pyoxigraph, "parse", _must_not_parse)
    depth = 900  # below json's recursion limit, far above max_json_depth
    data = (b'{"@id": "http://a.test/", "http://p.test/": ' + b'{"http://p.test/": ' * depth
            + b'"x"' + b'}' * depth + b'}')
    assert reason(lambda: parse_rdf(data, "application/ld+json", base_iri=None,
                                    limits=LIMITS)) == "json-too-deep"


def test_an_invalid_base_iri_is_a_parse_error():
    assert reason(lambda: parse_rdf(b"", "text/turtle", base_iri="http://x.test/a b",
                                    limits=LIMITS)) == "syntax"


def test_triple_terms_are_refused():
    data = b'<< <http://a.test/> <http://p.test/> "x" >> <http://p.test/q> "y" .'
    assert reason(lambda: parse_rdf(data, "text/turtle", base_iri=None,
                                    limits=LIMITS)) == "triple-term-refused"


# --------------------------------------------------------------------------- JSON-LD contexts


class _Canary(BaseHTTPRequestHandler):
    requests: list[str] = []

    def do_GET(self):  # noqa: N802 - http.server's naming
        type(self).requests.append(self.path)
        body = json.dumps({"@context": {"name": "http://evil.test/name"}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/ld+json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def canary():
    """A loopback server that counts every request (any fetch would show up here)."""
    _Canary.requests = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Canary)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _remote_context_documents(url: str) -> dict[str, object]:
    node = {"@id": f"{BASE}/actors/a1", "name": "x"}
    return {
        "string": {"@context": f"{url}/ctx.jsonld", **node},
        "array": {"@context": [CONTEXT_URL, f"{url}/ctx.jsonld"], **node},
        "import": {"@context": {"@import": f"{url}/ctx.jsonld", "name": "http://n.test/"},
                   **node},
        "property-scoped": {"@context": [CONTEXT_URL, {"p": {
            "@id": "http://p.test/p", "@context": f"{url}/scoped.jsonld"}}], **node},
        "type-scoped": {"@context": {"T": {"@id": "http://t.test/T",
                                           "@context": [{"@import": f"{url}/i.jsonld"}]}},
                        "@type": "T", **node},
        "nested-node": {"@context": CONTEXT_URL, **node,
                        "address": {"@context": f"{url}/nested.jsonld", "@id": "#address"}},
        "graph-member": {"@graph": [{"@context": f"{url}/g.jsonld", **node}]},
        "relative": {"@context": "ctx.jsonld", **node},
        "file": {"@context": "file:///etc/passwd", **node},
    }


def test_remote_contexts_are_refused_and_never_fetched(canary):
    for name, document in _remote_context_documents(canary).items():
        with pytest.raises(ParseError) as info:
            parse_rdf(json.dumps(document).encode(), "application/ld+json",
                      base_iri=f"{canary}/page.jsonld", limits=LIMITS)
        assert info.value.reason == "remote-context", name
    assert _Canary.requests == []
    # the canary itself works: a real request is counted
    with urllib.request.urlopen(f"{canary}/probe", timeout=5) as response:
        response.read()
    assert _Canary.requests == ["/probe"]


def test_our_context_comes_from_the_bundled_copy(canary, monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("network used")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    triples = parse_rdf(serialized("json-ld"), "application/ld+json",
                        base_iri=f"{canary}/page.jsonld", limits=LIMITS)
    assert {str(t) for t in triples} == expected()
    assert _Canary.requests == []


# --------------------------------------------------------------------------- RDF/XML


def _must_not_parse(*args, **kwargs):
    raise AssertionError("a refused document reached the parser")


LAUGHS = b"""<!DOCTYPE rdf:RDF [
 <!ENTITY a "lollollollollollollollollollol">
 <!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">
 <!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">
 <!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;">
 <!ENTITY e "&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;">
 <!ENTITY f "&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;">
 <!ENTITY g "&f;&f;&f;&f;&f;&f;&f;&f;&f;&f;">
 <!ENTITY h "&g;&g;&g;&g;&g;&g;&g;&g;&g;&g;">
 <!ENTITY i "&h;&h;&h;&h;&h;&h;&h;&h;&h;&h;">
]>
<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" xmlns:ex="http://ex.test/">
 <rdf:Description rdf:about="http://node.test/a"><ex:p>&i;</ex:p></rdf:Description>
</rdf:RDF>"""
XML_DECL = b'<?xml version="1.0" encoding="UTF-8"?>\n'


def test_rdfxml_is_refused_by_default(monkeypatch):
    monkeypatch.setattr(pyoxigraph, "parse", _must_not_parse)
    for data in (rdfxml(), LAUGHS):
        assert reason(lambda: parse_rdf(data, "application/rdf+xml", base_iri=None,  # noqa: B023
                                        limits=LIMITS)) == "rdfxml-refused"
    assert reason(lambda: parse_rdf(rdfxml(), None, base_iri="http://x.test/data.rdf",
                                    limits=LIMITS)) == "rdfxml-refused"


@pytest.mark.parametrize("data", [
    LAUGHS,
    XML_DECL + LAUGHS,
    b"\xef\xbb\xbf" + XML_DECL + LAUGHS,  # after a UTF-8 byte order mark
    b"\n \t\r\n" + LAUGHS,
    XML_DECL + b"<!-- harmless -->\n" + LAUGHS.replace(b"<!DOCTYPE", b"<!doctype"),
    LAUGHS.replace(b"<!DOCTYPE rdf:RDF [", b"").replace(b"]>", b""),  # ENTITY without DOCTYPE
    rdfxml().replace(b"<rdf:Description", b'<!ENTITY x "y"><rdf:Description', 1),  # inside
    rdfxml().replace(b"<rdf:RDF", b'<!DocType rdf:RDF SYSTEM "http://127.0.0.1:9/x.dtd">'
                     b"<rdf:RDF", 1),
], ids=["plain", "xml-decl", "bom", "whitespace", "lowercase", "entity-only", "inside",
        "external"])
def test_rdfxml_with_a_dtd_is_refused_before_parsing(monkeypatch, data):
    monkeypatch.setattr(pyoxigraph, "parse", _must_not_parse)
    assert reason(lambda: parse_rdf(data, "application/rdf+xml", base_iri=None, limits=LIMITS,
                                    allow_rdfxml=True)) == "dtd-refused"


@pytest.mark.parametrize("data", [
    LAUGHS.decode().encode("utf-16"),  # with a BOM
    LAUGHS.decode().encode("utf-16-le"),  # without
    b'<?xml version="1.0" encoding="ISO-8859-1"?>\n<rdf:RDF/>',
    b'<?xml version="1.0" encoding="UTF-7"?>\n+ADw-!DOCTYPE x+AD4-',
    b"\xff<rdf:RDF/>",
], ids=["utf-16-bom", "utf-16-le", "latin-1", "utf-7", "not-utf-8"])
def test_rdfxml_in_other_encodings_is_refused_before_parsing(monkeypatch, data):
    monkeypatch.setattr(pyoxigraph, "parse", _must_not_parse)
    assert reason(lambda: parse_rdf(data, "application/rdf+xml", base_iri=None, limits=LIMITS,
                                    allow_rdfxml=True)) == "rdfxml-encoding"


def test_rdfxml_comments_and_cdata_are_fine():
    data = rdfxml().replace(b"<rdf:Description", b"<!-- a comment --><rdf:Description", 1)
    triples = parse_rdf(data, "application/rdf+xml", base_iri=None, limits=LIMITS,
                        allow_rdfxml=True)
    assert {str(t) for t in triples} == expected()


# --------------------------------------------------------------------------- caps


def _lines(n: int) -> bytes:
    return b"".join(b'<http://node.test/a> <http://p.test/p> "%d" .\n' % i for i in range(n))


def test_too_many_triples_stops_parsing_at_the_cap():
    # The garbage after the cap is never reached: parsing streams and stops early.
    data = _lines(5) + b"this is not N-Triples"
    with pytest.raises(ParseError) as info:
        parse_rdf(data, "application/n-triples", base_iri=None, limits=ParseLimits(max_triples=3))
    assert info.value.reason == "too-many-triples"
    assert "max_triples" in str(info.value)
    assert len(parse_rdf(_lines(3), "application/n-triples", base_iri=None,
                         limits=ParseLimits(max_triples=3))) == 3


def test_too_many_triples_in_json_ld():
    document = {"@id": "http://node.test/a", "http://p.test/p": list(range(10))}
    assert reason(lambda: parse_rdf(json.dumps(document).encode(), "application/ld+json",
                                    base_iri=None, limits=ParseLimits(max_triples=5))) == \
        "too-many-triples"


@pytest.mark.parametrize("data, limits, expected_reason, cap", [
    (b"".join(b"<http://node.test/a> <http://p.test/p> _:b%d .\n" % i for i in range(5)),
     ParseLimits(max_blank_nodes=4), "too-many-blank-nodes", "max_blank_nodes"),
    (b'<http://node.test/a> <http://p.test/p> "' + b"x" * 101 + b'" .',
     ParseLimits(max_literal_length=100), "literal-too-long", "max_literal_length"),
    (b"<http://node.test/" + b"a" * 100 + b'> <http://p.test/p> "x" .',
     ParseLimits(max_iri_length=100), "iri-too-long", "max_iri_length"),
    (b'<http://node.test/a> <http://p.test/' + b"p" * 100 + b'> "x" .',
     ParseLimits(max_iri_length=100), "iri-too-long", "max_iri_length"),
])
def test_caps(data, limits, expected_reason, cap):
    with pytest.raises(ParseError) as info:
        parse_rdf(data, "application/n-triples", base_iri=None, limits=limits)
    assert info.value.reason == expected_reason
    assert cap in str(info.value)


def test_json_depth_cap():
    document: dict = {"@id": "http://node.test/a", "http://p.test/p": "x"}
    for _ in range(10):
        document = {"@id": "http://node.test/a", "http://p.test/p": document}
    data = json.dumps(document).encode()
    assert len(parse_rdf(data, "application/ld+json", base_iri=None, limits=LIMITS)) == 11
    assert reason(lambda: parse_rdf(data, "application/ld+json", base_iri=None,
                                    limits=ParseLimits(max_json_depth=5))) == "json-too-deep"


def test_json_ld_with_too_many_values_never_reaches_json_or_the_parser(monkeypatch):
    """pyoxigraph buffered ~500 bytes per JSON value before its first triple: 12 KiB of
    gzip (one @list of 6 million numbers) cost the harvester 4 GB before the triple caps
    could act. Commas and brackets bound the values before anything is built."""
    ours = serialized("json-ld")
    needed = ours.count(b",") + ours.count(b"[") + ours.count(b"{") + 1
    assert parse_rdf(ours, "application/ld+json", base_iri=PAGE,
                     limits=ParseLimits(max_json_values=needed))
    monkeypatch.setattr(pyoxigraph, "parse", _must_not_parse)
    monkeypatch.setattr(json, "loads", _must_not_parse)
    flood = b'{"@id": "s", "http://p.test/": {"@list": [' + b"1," * 1000 + b"1]}}"
    for data in (flood, ours):
        with pytest.raises(ParseError) as info:
            parse_rdf(data, "application/ld+json", base_iri=PAGE,
                      limits=ParseLimits(max_json_values=min(needed - 1, 1000)))
        assert info.value.reason == "json-too-large"
        assert str(info.value).startswith(f"{PAGE}: json-ld: more than ")


def test_deeply_nested_turtle_never_reaches_the_parser(monkeypatch):
    """pyoxigraph's Turtle parser kept ~520 bytes per open bracket before the first triple
    (1M nested blank nodes: 574 MB), so brackets are counted before it runs."""
    ours = serialized("turtle") + b'<http://node.test/x> <http://p.test/> "(a) [b]" .\n'
    assert parse_rdf(ours, "text/turtle", base_iri=PAGE, limits=LIMITS)
    nested = (b"<http://node.test/s> <http://p.test/> " + b"[ <http://p.test/> " * 300
              + b"1" + b" ]" * 300 + b" .")
    monkeypatch.setattr(pyoxigraph, "parse", _must_not_parse)
    for data in (nested, nested.replace(b"[ <http://p.test/> ", b"( ").replace(b" ]", b" )")):
        with pytest.raises(ParseError) as info:
            parse_rdf(data, "text/turtle", base_iri=PAGE,
                      limits=ParseLimits(max_turtle_brackets=299))
        assert info.value.reason == "turtle-too-nested"
        assert "ParseLimits.max_turtle_brackets" in str(info.value)


@pytest.mark.parametrize("media_type", ["application/ld+json", "application/rdf+xml"])
def test_documents_read_whole_are_capped_in_bytes(monkeypatch, media_type):
    data = serialized("json-ld") if "json" in media_type else rdfxml()
    fits, small = ParseLimits(max_document_bytes=len(data)), ParseLimits(
        max_document_bytes=len(data) - 1)
    assert parse_rdf(data, media_type, base_iri=PAGE, limits=fits, allow_rdfxml=True)
    stream = io.BytesIO(data + b" " * 10**6)  # a stream is read only up to the cap
    monkeypatch.setattr(pyoxigraph, "parse", _must_not_parse)
    for given in (data, stream):
        with pytest.raises(ParseError) as info:
            list(iter_rdf(given, media_type, base_iri=PAGE, limits=small, allow_rdfxml=True))
        assert info.value.reason == "document-too-large"
        assert "ParseLimits.max_document_bytes" in str(info.value)
    assert stream.tell() == len(data)  # cap + 1 bytes


def test_to_rdflib_keeps_lexical_forms_and_plain_strings():
    subject = pyoxigraph.NamedNode(f"{BASE}/actors/a1")
    p = pyoxigraph.NamedNode("http://p.test/p")
    decimal = pyoxigraph.NamedNode(str(XSD.decimal))
    data = [
        pyoxigraph.Triple(subject, p, pyoxigraph.Literal("51.050", datatype=decimal)),
        pyoxigraph.Triple(subject, p, pyoxigraph.Literal("plain")),
        pyoxigraph.Triple(subject, p, pyoxigraph.Literal("Text", language="de")),
    ]
    graph = to_rdflib(data)
    assert set(graph.objects()) == {Literal("51.050", datatype=XSD.decimal, normalize=False),
                                    Literal("plain"), Literal("Text", lang="de")}
