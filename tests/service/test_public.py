"""Public pages: filters, paging, the home page, safe HTML, embedded schema.org JSON-LD."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from urllib.parse import parse_qs, urlsplit

import pytest
from pyld import jsonld

import exports
import vocab
from service import db, store
from service.rendering import FIELD_LABELS, INBOUND, safe_href, schema_org
from tests.conftest import BASE
from tests.service.test_conneg import RICH, make, remove
from vocab.mapping import iter_fields
from vocab.terms import concept_label, notations

SCRIPT = re.compile(r'<script type="application/ld\+json">(.*?)</script>', re.S)
SCHEMA = "https://schema.org/"


def ids(client, url: str) -> set[str]:
    """Ids of the entities a JSON-LD collection page lists."""
    response = client.get(url)
    assert response.status_code == 200, response.get_data(as_text=True)
    return {node["id"].rsplit("/", 1)[1] for node in response.get_json()["@graph"]}


def links(response) -> dict[str, str]:
    """RFC 8288 Link header as {rel: url}."""
    return {rel: url for url, rel in re.findall(r'<([^>]*)>;\s*rel="([^"]*)"',
                                                response.headers.get("Link", ""))}


def embedded_jsonld(html: str) -> list:
    return [json.loads(body) for body in SCRIPT.findall(html)]


class _Balance(HTMLParser):
    """Checks that every non-void element is closed in order (a cheap validity check)."""

    VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta",
            "source", "track", "wbr"}

    def __init__(self):
        super().__init__()
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.ids: list[str] = []
        self.labels_for: list[str] = []
        self.inputs: list[dict] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "id" in attrs:
            self.ids.append(attrs["id"])
        if tag == "label" and "for" in attrs:
            self.labels_for.append(attrs["for"])
        if tag == "input":
            self.inputs.append({**attrs, "_in_label": "label" in self.stack})
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
            return
        self.stack.pop()


def check_html(html: str) -> _Balance:
    checker = _Balance()
    checker.feed(html)
    checker.close()
    assert not checker.errors, checker.errors[:5]
    assert not checker.stack, checker.stack
    assert len(checker.ids) == len(set(checker.ids)), "duplicate ids"
    assert html.startswith("<!doctype html>") and '<html lang="de">' in html
    for landmark in ("<header", "<nav", "<main", "<footer", "<h1"):
        assert landmark in html
    # every form control has a label (wrapping it, or pointing at its id)
    for control in checker.inputs:
        if control.get("type") in {"hidden", "submit"}:
            continue
        assert control["_in_label"] or control.get("id") in checker.labels_for, control
    return checker


def actor(**fields) -> dict:
    return {"name": {"de": "Verein"}, "actorTypes": ["verein"], **fields}


# --------------------------------------------------------------------------- filters


def _facet_values(key: str) -> tuple:
    """Two distinct valid values for a facet of actors."""
    f = vocab.entity("actor").field(key)
    if f.kind == "concept":
        first, second = sorted(notations(f.scheme))[:2]
    else:
        first, second = {
            "language": ("de", "ar"), "ref": (f"{BASE}/actors/p1", f"{BASE}/actors/p2"),
            "iri": ("https://one.example/", "https://two.example/"),
            "wikidata": ("Q1", "Q2"), "string": ("Nord", "Süd"),
        }[f.kind]
    return (first, second) if not f.many else ([first], [second])


@pytest.mark.parametrize("key", store.facet_keys("actor"))
def test_each_facet_filters_with_one_and_with_several_values(app, client, key):
    one, two = _facet_values(key)
    base = actor(actorTypes=["network"]) if key == "actorTypes" else actor()
    a = make(app, "actor", {**base, key: one}).id
    b = make(app, "actor", {**base, key: two}).id
    c = make(app, "actor", base).id  # without the facet (or with its base value)
    first = one[0] if isinstance(one, list) else one
    second = two[0] if isinstance(two, list) else two
    assert ids(client, f"/actors.jsonld?{key}={first}") == {a}
    assert ids(client, f"/actors.jsonld?{key}={first}&{key}={second}") == {a, b}
    assert ids(client, "/actors.jsonld") == {a, b, c}


def test_filters_combine_and_free_text(app, client):
    a = make(app, "actor", actor(name={"de": "Tafel Pieschen"}, fieldsOfAction=["poverty"],
                                 languages=["de"])).id
    b = make(app, "actor", actor(name={"de": "Sprachcafé Neustadt"},
                                 fieldsOfAction=["language", "poverty"], languages=["ar"])).id
    make(app, "actor", actor(name={"de": "Sportverein"}, fieldsOfAction=["sport"]))
    assert ids(client, "/actors.jsonld?fieldsOfAction=poverty") == {a, b}
    assert ids(client, "/actors.jsonld?fieldsOfAction=poverty&languages=ar") == {b}
    assert ids(client, "/actors.jsonld?fieldsOfAction=sport&languages=ar") == set()
    assert ids(client, "/actors.jsonld?q=pieschen") == {a}
    assert ids(client, "/actors.jsonld?q=café+neustadt&fieldsOfAction=poverty") == {b}
    assert ids(client, "/actors.jsonld?q=tafel&languages=ar") == set()
    # Empty values (an untouched form field) filter nothing; unknown parameters are ignored.
    assert len(ids(client, "/actors.jsonld?languages=&q=&fbclid=xyz")) == 3


def test_filters_on_other_collections(app, client):
    make(app, "actor", actor(), "giver")
    offer = make(app, "offer", {"name": {"de": "Kurs"}, "offerTypes": ["course"],
                                "provider": f"{BASE}/actors/giver"}).id
    make(app, "offer", {"name": {"de": "Raum"}, "offerTypes": ["space"],
                        "provider": f"{BASE}/actors/else"})
    assert ids(client, f"/offers.jsonld?provider={BASE}/actors/giver") == {offer}
    assert ids(client, "/offers.jsonld?offerTypes=course") == {offer}


def test_filter_form_shows_concept_labels_and_keeps_the_choice(app, client):
    make(app, "actor", actor(actorTypes=["foundation"]))
    html = client.get("/actors?actorTypes=foundation&q=stift").get_data(as_text=True)
    check_html(html)
    assert concept_label("actor-type", "foundation") in html
    assert 'name="actorTypes" value="foundation" checked' in html
    assert 'name="actorTypes" value="verein">' in html
    assert 'id="q" name="q" value="stift"' in html
    assert '<label for="q">' in html


def test_bad_paging_parameters(client):
    assert client.get("/actors?per_page=0").status_code == 400
    assert client.get("/actors?per_page=100000").status_code == 400
    assert client.get("/actors?page=x").status_code == 400
    assert client.get("/actors?page=2").status_code == 404
    assert client.get("/actors.ttl?actorTypes=verein").status_code == 200


# --------------------------------------------------------------------------- paging


def test_pagination_links_on_every_format(app, client):
    for number in range(5):
        make(app, "actor", actor(name={"de": f"Verein {number}"}, languages=["de"]))
    make(app, "actor", actor(name={"de": "Anderer"}))
    query = "languages=de&per_page=2"
    for path in ("/actors", "/actors.ttl", "/actors.csv", "/actors.geojson"):
        first = links(client.get(f"{path}?{query}"))
        assert first == {"first": f"{BASE}{path}?{query}",
                         "next": f"{BASE}{path}?{query}&page=2",
                         "last": f"{BASE}{path}?{query}&page=3"}, path
        middle = links(client.get(f"{path}?{query}&page=2"))
        assert middle["prev"] == first["first"] and middle["next"] == first["last"]
        last = links(client.get(first["last"]))
        assert "next" not in last and last["prev"] == first["next"]
    # the ?format= parameter travels along; pages hold the newest first
    page = client.get(f"/actors?{query}&format=jsonld&page=3")
    assert parse_qs(urlsplit(links(page)["first"]).query)["format"] == ["jsonld"]
    names = [n["name"]["de"] for n in page.get_json()["@graph"]]
    assert names == ["Verein 0"]


def test_html_pager(app, client):
    for number in range(3):
        make(app, "actor", actor(name={"de": f"Verein {number}"}))
    html = client.get("/actors?per_page=1&page=2").get_data(as_text=True)
    check_html(html)
    assert "Seite 2 von 3" in html
    assert f'<a href="{BASE}/actors?per_page=1&amp;page=3" rel="next">' in html
    assert f'<a href="{BASE}/actors?per_page=1" rel="prev">' in html
    assert '<input type="hidden" name="per_page" value="1">' in html


# --------------------------------------------------------------------------- pages


def test_home_page_lists_collections_with_counts(app, client):
    for _ in range(3):
        make(app, "actor", actor())
    make(app, "event", {"name": {"de": "Fest"}, "startDate": "2026-06-01T14:00:00Z"})
    gone = make(app, "event", {"name": {"de": "Abgesagt"}, "startDate": "2026-06-02T14:00:00Z"})
    remove(app, "event", gone.id)
    response = client.get("/")
    assert response.status_code == 200 and response.mimetype == "text/html"
    html = response.get_data(as_text=True)
    check_html(html)
    assert "Testknoten" in html and "Teststadt" in html
    assert '<a href="/actors">Akteur*innen</a> <span class="count">(3)</span>' in html
    assert '<a href="/events">Veranstaltungen</a> <span class="count">(1)</span>' in html
    assert '<a href="/cooperations">Kooperationen</a> <span class="count">(0)</span>' in html
    # RDF clients get the node description (tests/service/test_entry.py), others 406.
    assert client.get("/", headers={"Accept": "text/turtle"}).mimetype == "text/turtle"
    assert client.get("/", headers={"Accept": "image/png"}).status_code == 406


def test_entity_page_shows_every_field_readably(app, client):
    make(app, "actor", actor(name={"de": "Partner A"}), "partner-a")
    make(app, "actor", actor(name={"de": "Dachverband"}), "partner-b")
    state = make(app, "actor", RICH["actor"])
    uri = f"{BASE}/actors/{state.id}"
    sub = make(app, "actor", actor(name={"de": "Ortsgruppe"}, parentOrganization=uri))
    make(app, "cooperation", {"partners": [uri, f"{BASE}/actors/partner-a"],
                              "levels": ["economic"]})
    make(app, "offer", {"name": {"de": "Beratungsangebot"}, "offerTypes": ["counselling"],
                        "provider": uri})
    make(app, "project", {"name": {"de": "Leihladen"}, "operatedBy": [uri]})
    make(app, "event", {"name": {"de": "Sommerfest"}, "startDate": "2026-07-01T15:00:00Z",
                        "organizer": [uri]})
    html = client.get(f"/actors/{state.id}").get_data(as_text=True)
    check_html(html)
    for expected in (
        "<h1>Nachbarschaftshilfe Pieschen</h1>", "Hilfe unter Nachbar*innen.",
        '<p class="translation" lang="en">Pieschen neighbourhood aid</p>',
        concept_label("actor-type", "verein"), concept_label("legal-form", "ev"),
        concept_label("engagement-mode", "blended"), concept_label("target-group", "seniors"),
        '<a href="https://pieschen.example/">', '<a href="mailto:info@pieschen.example">',
        "Bürgerstraße 1", "01127 Dresden", "51,0789", "13,7215",
        '<abbr title="Montag">Mo</abbr>', "12:30", "<h3>Beratung</h3>", "Erika Muster",
        "+49 351 000000", "VR 1234", "Amtsgericht Dresden",
        '<a href="https://www.wikidata.org/wiki/Q1731">',
        f'<a href="{BASE}/actors/partner-b">Dachverband</a>',
        '<a href="https://network.example/x">https://network.example/x</a>',
        '<time datetime="2015-06-01">01.06.2015</time>',
        f'<a href="{BASE}/actors/{sub.id}">Ortsgruppe</a>',
        "Kooperation mit Partner A", concept_label("cooperation-level", "economic"),
        "Beratungsangebot", "Leihladen", "Sommerfest",
        f'<link rel="alternate" type="text/turtle" href="{uri}.ttl">',
        f'<link rel="canonical" href="{uri}">',
    ):
        assert expected in html, expected
    assert "consentRecorded" not in html and "Einwilligung" not in html


def test_named_person_only_with_recorded_consent(app, client):
    # Written past validation on purpose: the page must not rely on the API alone.
    with app.app_context():
        state = store.create(db.session(), "actor", {
            "name": {"de": "Verein"}, "actorTypes": ["verein"],
            "contactPoints": [{"contactType": {"de": "Vorstand"}, "personName": "Max Geheim",
                               "consentRecorded": False}]})
    html = client.get(f"/actors/{state.id}").get_data(as_text=True)
    assert "<h3>Vorstand</h3>" in html and "Max Geheim" not in html


def test_deleted_reference_is_marked(app, client):
    make(app, "actor", actor(name={"de": "Alt"}), "old")
    state = make(app, "actor", actor(memberOf=[f"{BASE}/actors/old"]))
    remove(app, "actor", "old")
    html = client.get(f"/actors/{state.id}").get_data(as_text=True)
    assert f'<a href="{BASE}/actors/old">{BASE}/actors/old</a> (gelöscht)' in html


def test_every_field_has_a_label_and_every_reference_a_reverse_listing():
    keys = {f.key for spec in vocab.ENTITIES.values() for f in iter_fields(spec.fields)}
    assert keys <= set(FIELD_LABELS)
    refs = {(spec.kind, f.key) for spec in vocab.ENTITIES.values() for f in spec.fields
            if f.kind == "ref"}
    assert refs == {(kind, key) for kind, key, _ in INBOUND}


@pytest.mark.parametrize("kind", list(RICH))
def test_pages_of_every_kind_are_well_formed(app, client, kind):
    make(app, "actor", actor(name={"de": "Partner A"}), "partner-a")
    make(app, "actor", actor(name={"de": "Partner B"}), "partner-b")
    state = make(app, kind, RICH[kind])
    collection = vocab.entity(kind).collection
    for path in (f"/{collection}/{state.id}", f"/{collection}", "/actors/partner-a"):
        response = client.get(path)
        assert response.status_code == 200, path
        check_html(response.get_data(as_text=True))


def test_error_pages_are_well_formed(app, client):
    check_html(client.get("/actors/nope").get_data(as_text=True))
    check_html(client.get("/actors/x.png", headers={"Accept": "text/html"})
               .get_data(as_text=True))
    state = make(app, "actor", actor())
    remove(app, "actor", state.id)
    check_html(client.get(f"/actors/{state.id}").get_data(as_text=True))


# --------------------------------------------------------------------------- safety


HOSTILE = "</script><script>alert(1)</script>"


def test_data_cannot_close_the_script_element(app, client):
    state = make(app, "actor", actor(name={"de": HOSTILE, "en": "<!-- x & y -->"},
                                     description={"de": "a </SCRIPT> b"}))
    for path in (f"/actors/{state.id}", "/actors"):
        html = client.get(path).get_data(as_text=True)
        check_html(html)
        assert "<script>alert(1)" not in html and "</SCRIPT>" not in html
        assert html.count("<script") == html.count("</script>") == 1
        (data,) = embedded_jsonld(html)
        projection = schema_org("actor", state.record, BASE)
        if path == "/actors":
            assert data == {"@context": SCHEMA,
                            "@graph": [{k: v for k, v in projection.items() if k != "@context"}]}
        else:
            assert data == projection
        assert {"@value": HOSTILE, "@language": "de"} in projection["name"]
    assert "&lt;/script&gt;&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_api_refuses_javascript_urls(client, editor_token):
    response = client.post("/api/v1/actors", json=actor(url="javascript:alert(1)"),
                           headers={"Authorization": f"Bearer {editor_token}"})
    assert response.status_code == 422
    assert [e["pointer"] for e in response.get_json()["errors"]] == ["/url"]


@pytest.mark.parametrize("url, expected", [
    ("https://example.org/a?b=c#d", "https://example.org/a?b=c#d"),
    ("http://example.org", "http://example.org"),
    ("mailto:info@example.org", "mailto:info@example.org"),
    ("/actors/abc", "/actors/abc"),
    ("actors/abc", "actors/abc"),
    ("?page=2", "?page=2"),
    ("//example.org/x", "//example.org/x"),
    ("  https://example.org  ", "https://example.org"),
    ("javascript:alert(1)", "#"),
    ("JavaScript:alert(1)", "#"),
    (" javascript:alert(1)", "#"),
    ("java\tscript:alert(1)", "#"),
    ("java\nscript:alert(1)", "#"),
    ("\x01javascript:alert(1)", "#"),
    ("data:text/html,<script>alert(1)</script>", "#"),
    ("vbscript:msgbox", "#"),
    ("file:///etc/passwd", "#"),
    ("tel:+49351", "#"),
    ("http://[::1", "#"),
    ("", "#"),
    (None, "#"),
    (42, "#"),
])
def test_safe_href(url, expected):
    assert safe_href(url) == expected


def test_safe_href_in_a_template(app):
    with app.test_request_context():
        template = app.jinja_env.from_string('<a href="{{ url|safe_href }}">x</a>')
        assert template.render(url="javascript:alert(1)") == '<a href="#">x</a>'
        assert template.render(url='https://e.org/"><b>') == \
            '<a href="https://e.org/&#34;&gt;&lt;b&gt;">x</a>'


# --------------------------------------------------------------------------- schema.org


def _schema_loader(url, options=None):
    if url.rstrip("/") + "/" != SCHEMA:
        raise ValueError(f"refusing to load {url}")
    return {"contentType": "application/ld+json", "contextUrl": None, "documentUrl": url,
            "document": {"@context": {"@vocab": SCHEMA}}}


def test_embedded_schema_org_expands_to_name_and_url(app, client):
    state = make(app, "actor", RICH["actor"])
    (data,) = embedded_jsonld(client.get(f"/actors/{state.id}").get_data(as_text=True))
    assert data == schema_org("actor", state.record, BASE)
    (node,) = jsonld.expand(data, {"documentLoader": _schema_loader})
    assert node["@id"] == f"{BASE}/actors/{state.id}"
    assert node["@type"] == [f"{SCHEMA}Organization"]
    assert sorted(node[f"{SCHEMA}name"], key=lambda v: v["@language"]) == [
        {"@value": "Nachbarschaftshilfe Pieschen", "@language": "de"},
        {"@value": "Pieschen neighbourhood aid", "@language": "en"}]
    assert node[f"{SCHEMA}url"] == [{"@id": "https://pieschen.example/"}]
    (address,) = node[f"{SCHEMA}address"]
    assert address["@id"] == f"{BASE}/actors/{state.id}#address"
    assert address[f"{SCHEMA}postalCode"] == [{"@value": "01127"}]
    # only schema.org terms survive the projection
    assert not any(k.startswith("https://w3id.org/") for k in node)
    assert f"{SCHEMA}sameAs" in node and f"{SCHEMA}parentOrganization" in node


def test_schema_org_projection_keeps_typed_literals():
    record = {"id": "x", **vocab.load_record("event", RICH["event"])}
    data = schema_org("event", record, BASE)
    assert data["@type"] == "Event"
    assert data["startDate"] == {"@value": "2026-06-01T14:00:00Z",
                                 "@type": "http://www.w3.org/2001/XMLSchema#dateTime"}
    assert data["organizer"] == {"@id": f"{BASE}/actors/partner-a"}
    assert data["geo"]["latitude"] == {"@value": "51.06",
                                       "@type": "http://www.w3.org/2001/XMLSchema#decimal"}


# --------------------------------------------------------------------------- vocabulary


def test_context_document(client):
    from vocab.context import context

    response = client.get("/ns/context-v1.jsonld")
    assert response.status_code == 200 and response.mimetype == "application/ld+json"
    assert response.get_json() == context()
    assert "max-age=86400" in response.headers["Cache-Control"]
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    again = client.get("/ns/context-v1.jsonld",
                       headers={"If-None-Match": response.headers["ETag"]})
    assert again.status_code == 304


def test_vocabulary_page_and_namespace(client):
    page = client.get("/vocab")
    assert page.status_code == 200 and page.mimetype == "text/html"
    assert "Engagement Atlas" in page.get_data(as_text=True)

    turtle = client.get("/ns")
    assert turtle.mimetype == "text/turtle"
    from rdflib import Graph

    from vocab.resources import ontology, schemes

    graph = Graph().parse(data=turtle.data, format="turtle")
    assert len(graph) == len(ontology() + schemes())
    nt = client.get("/ns", headers={"Accept": "application/n-triples"})
    assert nt.mimetype == "application/n-triples" and "Accept" in nt.vary
    assert len(Graph().parse(data=nt.data, format="nt")) == len(graph)
    assert client.get("/ns.rdf").mimetype == "application/rdf+xml"
    browser = client.get("/ns", headers={"Accept": "text/html,*/*;q=0.8"})
    assert browser.status_code == 303 and browser.headers["Location"].endswith("/vocab")
    assert client.get("/ns", headers={"Accept": "image/png"}).status_code == 406
    assert exports.get("turtle") is not None


def test_sample_data_nodes_say_so_on_every_page(app, client):
    assert "Beispieldaten" not in client.get("/").get_data(as_text=True)
    app.config["SAMPLE_DATA"] = True
    for path in ("/", "/actors"):
        assert "Beispieldaten / sample data" in client.get(path).get_data(as_text=True)


def test_favicon_ico_leads_to_the_icon_the_pages_link(client):
    # Browsers ask for it on documents that link no icon (feeds, SPARQL results, Turtle).
    response = client.get("/favicon.ico")
    assert response.status_code == 301
    with client.get(response.headers["Location"]) as icon:  # a file response: close it
        assert icon.status_code == 200 and icon.mimetype == "image/svg+xml"
