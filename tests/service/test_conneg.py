"""Content negotiation on the public read side: every kind in every format, three ways.

A format is chosen by extension, then ``?format=``, then Accept. Every RDF
serialization of an entity must state exactly `vocab.mapping.to_graph` of its
record; responses carry validators and answer revalidation with 304.
"""

from __future__ import annotations

import csv
import io
import json
import warnings
from datetime import timedelta

import pytest
import rdflib
from rdflib import Graph
from rdflib.compare import isomorphic, to_isomorphic

import exports
import vocab
from service import db, store
from tests.conftest import BASE
from vocab.context import inline_contexts

PAGE_FORMATS = ("html", "jsonld", "turtle", "ntriples", "rdfxml", "csv", "geojson")
RDF_PARSERS = {"jsonld": "json-ld", "turtle": "turtle", "ntriples": "nt", "rdfxml": "xml"}
MODES = ("accept", "extension", "query")
ACTOR = f"{BASE}/actors/partner-a"
OTHER = f"{BASE}/actors/partner-b"

# One rich record per kind: every field kind (text, concepts, refs, nodes, dates,
# decimals, booleans, weekdays, wikidata) appears at least once.
RICH: dict[str, dict] = {
    "actor": {
        "name": {"de": "Nachbarschaftshilfe Pieschen", "en": "Pieschen neighbourhood aid"},
        "description": {"de": "Hilfe unter Nachbar*innen."},
        "url": "https://pieschen.example/", "alternateName": ["NH Pieschen"],
        "actorTypes": ["verein", "network"], "legalForm": "ev", "engagementMode": "blended",
        "fieldsOfAction": ["neighbourhood"], "targetGroups": ["seniors"],
        "supportTopics": ["networking_exchange"], "status": "active",
        "email": "info@pieschen.example", "telephone": "+49 351 000000",
        "address": {"streetAddress": "Bürgerstraße 1", "postalCode": "01127",
                    "addressLocality": "Dresden", "addressCountry": "DE"},
        "geo": {"latitude": 51.0789, "longitude": 13.7215},
        "openingHours": [{"dayOfWeek": ["Monday", "Wednesday"], "opens": "09:00",
                          "closes": "12:30"}],
        "contactPoints": [{"contactType": {"de": "Beratung"}, "email": "rat@pieschen.example",
                           "availableLanguage": ["de", "ar"], "personName": "Erika Muster",
                           "consentRecorded": True}],
        "languages": ["de", "ar"], "areaServed": ["Pieschen"],
        "parentOrganization": OTHER, "memberOf": [OTHER],
        "participatesIn": ["https://network.example/x"], "fundedBy": [OTHER],
        "foundingDate": "2015-06-01", "registerCourt": "Amtsgericht Dresden",
        "registerNumber": "VR 1234", "wikidata": "Q1731", "lastConfirmed": "2026-01-15",
        "license": "https://creativecommons.org/licenses/by/4.0/",
    },
    "offer": {
        "name": {"de": "Sprachcafé"}, "offerTypes": ["course", "networking"],
        "provider": ACTOR, "availableLanguage": ["de", "uk"], "targetGroups": ["refugees"],
        "address": {"addressLocality": "Dresden"}, "geo": {"latitude": 51.05, "longitude": 13.7},
    },
    "event": {
        "name": {"de": "Stadtteilfest"}, "startDate": "2026-06-01T14:00:00Z",
        "endDate": "2026-06-01T20:00:00Z", "organizer": [ACTOR], "inLanguage": ["de"],
        "geo": {"latitude": 51.06, "longitude": 13.71},
    },
    "project": {
        "name": {"de": "Code Door"}, "operatedBy": [ACTOR], "engagementMode": "digital",
        "status": "active", "foundingDate": "2016-02-01", "fundedBy": [OTHER],
    },
    "funding-programme": {
        "name": {"de": "Bürgerfonds"}, "funder": [OTHER], "amount": 50000.5,
        "currency": "EUR", "applicationStart": "2026-01-01", "applicationEnd": "2026-03-31",
        "applicationPeriod": {"de": "jedes Frühjahr"}, "eligibility": {"de": "Vereine"},
    },
    "cooperation": {
        "partners": [ACTOR, OTHER], "levels": ["normative", "professional"],
        "description": {"de": "Gemeinsames Sprachcafé."}, "since": "2019-05-01",
    },
}


def make(app, kind: str, data: dict, entity_id: str | None = None) -> store.EntityState:
    """Store a validated record directly (the API is not what these tests are about)."""
    with app.app_context():
        return store.create(db.session(), kind, vocab.load_record(kind, data),
                            entity_id=entity_id)


def remove(app, kind: str, entity_id: str) -> None:
    with app.app_context():
        store.delete_entity(db.session(), kind, entity_id, expected_version=None)


def fetch(client, path: str, fmt_name: str, mode: str, query: str = ""):
    fmt = exports.get(fmt_name)
    if mode == "accept":
        return client.get(path + query, headers={"Accept": fmt.media_types[0]})
    if mode == "extension":
        return client.get(f"{path}.{fmt.extensions[0]}{query}")
    separator = "&" if query else "?"
    return client.get(f"{path}{query}{separator}format={fmt.name}",
                      headers={"Accept": "text/html"})


def parse(fmt_name: str, body: bytes):
    """The response body read back with the format's own parser."""
    if fmt_name in RDF_PARSERS:
        data = body.decode("utf-8")
        if fmt_name == "jsonld":
            data = json.dumps(inline_contexts(json.loads(data)))  # never fetch contexts
        with warnings.catch_warnings():
            # rdflib 7.6's own JSON-LD parser still builds a ConjunctiveGraph inside.
            warnings.filterwarnings("ignore", "ConjunctiveGraph is deprecated",
                                    DeprecationWarning)
            return Graph().parse(data=data, format=RDF_PARSERS[fmt_name])
    if fmt_name == "csv":
        return list(csv.DictReader(io.StringIO(body.decode("utf-8"))))
    if fmt_name == "geojson":
        return json.loads(body)
    return body.decode("utf-8")


def expected_graph(kind: str, records: list[dict]) -> Graph:
    graph = Graph()
    for record in records:
        vocab.to_graph(kind, record, BASE, graph)
    return graph


def assert_same_graph(got: Graph, want: Graph, what: str) -> None:
    if not isomorphic(got, want):
        missing = set(to_isomorphic(want)) - set(to_isomorphic(got))
        extra = set(to_isomorphic(got)) - set(to_isomorphic(want))
        pytest.fail(f"{what}: missing {sorted(missing)[:5]}, extra {sorted(extra)[:5]}")


@pytest.fixture(autouse=True)
def _literals_as_written(monkeypatch):
    """Compare statements as written: rdflib's parsers would rewrite "Z" as "+00:00",
    while the mapping keeps its canonical lexical forms."""
    monkeypatch.setattr(rdflib, "NORMALIZE_LITERALS", False)


@pytest.fixture
def everything(app):
    """One rich entity of every kind, plus the two actors the references point to."""
    make(app, "actor", {"name": {"de": "Partner A"}, "actorTypes": ["verein"]}, "partner-a")
    make(app, "actor", {"name": {"de": "Partner B"}, "actorTypes": ["foundation"]}, "partner-b")
    return {kind: make(app, kind, data) for kind, data in RICH.items()}


# --------------------------------------------------------------------------- entities


@pytest.mark.parametrize("fmt_name", PAGE_FORMATS)
@pytest.mark.parametrize("kind", list(RICH))
def test_every_kind_in_every_format_three_ways(client, everything, kind, fmt_name):
    state = everything[kind]
    record = state.record
    path = f"/{vocab.entity(kind).collection}/{state.id}"
    fmt = exports.get(fmt_name)
    for mode in MODES:
        response = fetch(client, path, fmt_name, mode)
        assert response.status_code == 200, (mode, response.get_data(as_text=True)[:500])
        assert response.mimetype == fmt.media_types[0], mode
        assert response.headers["Content-Type"] == exports.content_type(fmt)
        assert ("Accept" in response.vary) == (mode == "accept"), mode
        parsed = parse(fmt_name, response.data)
        if fmt.rdf:
            want = vocab.to_graph(kind, record, BASE)
            assert_same_graph(parsed, want, f"{kind} {fmt_name} via {mode}")
        elif fmt_name == "csv":
            assert [row["id"] for row in parsed] == [state.id] or \
                [row["id"] for row in parsed] == [str(vocab.entity_uri(BASE, kind, state.id))]
        elif fmt_name == "geojson":
            assert parsed["type"] == "Feature"
            assert parsed["id"] in {state.id, str(vocab.entity_uri(BASE, kind, state.id))}
        else:
            title = record["name"]["de"] if "name" in record else "Kooperation zwischen Partner A"
            assert title in parsed, mode


@pytest.mark.parametrize("kind", list(RICH))
def test_rdf_formats_of_one_entity_are_isomorphic(client, everything, kind):
    state = everything[kind]
    path = f"/{vocab.entity(kind).collection}/{state.id}"
    graphs = {name: parse(name, client.get(f"{path}.{exports.get(name).extensions[0]}").data)
              for name in RDF_PARSERS}
    reference = vocab.to_graph(kind, state.record, BASE)
    for name, graph in graphs.items():
        assert_same_graph(graph, reference, f"{kind} as {name}")


def test_format_parameter_takes_names_extensions_and_media_types(client, everything):
    path = f"/actors/{everything['actor'].id}"
    for value in ("turtle", "ttl", "text/turtle"):
        response = client.get(f"{path}?format={value}")
        assert response.status_code == 200 and response.mimetype == "text/turtle", value


def test_extension_beats_format_parameter_beats_accept(client, everything):
    path = f"/actors/{everything['actor'].id}"
    html = {"Accept": "text/html"}
    assert client.get(f"{path}.ttl?format=csv", headers=html).mimetype == "text/turtle"
    assert client.get(f"{path}?format=csv", headers=html).mimetype == "text/csv"
    assert client.get(path, headers=html).mimetype == "text/html"


def test_accept_with_q_values_and_wildcards(client, everything):
    path = f"/actors/{everything['actor'].id}"
    cases = {
        "text/turtle;q=0.5, application/n-triples": "application/n-triples",
        "text/html;q=0.1, application/ld+json;q=0.9": "application/ld+json",
        "*/*": "text/html",
        None: "text/html",
        "application/rdf+xml;q=0.8, text/*;q=0.5": "application/rdf+xml",
    }
    for accept, media_type in cases.items():
        headers = {"Accept": accept} if accept else {}
        response = client.get(path, headers=headers)
        assert response.status_code == 200 and response.mimetype == media_type, accept
        assert "Accept" in response.vary
        # The negotiated representation names its own URL (RFC 9110 §8.7).
        assert response.headers["Content-Location"].startswith(f"{BASE}{path}.")


def test_unacceptable_accept_header_is_406_with_media_types(client, everything):
    response = client.get(f"/actors/{everything['actor'].id}", headers={"Accept": "image/png"})
    assert response.status_code == 406
    assert response.mimetype == "application/problem+json"
    body = response.get_json()
    assert "text/turtle" in body["media_types"] and "text/html" in body["media_types"]
    assert "Accept" in response.vary
    response = client.get("/actors", headers={"Accept": "image/png"})
    assert response.status_code == 406 and "text/csv" in response.get_json()["media_types"]


def test_unknown_format_or_extension_is_406_listing_formats(client, everything):
    path = f"/actors/{everything['actor'].id}"
    for url in (f"{path}.png", f"{path}?format=png", "/actors.png", "/actors?format=yaml"):
        response = client.get(url, headers={"Accept": "application/json"})
        assert response.status_code == 406, url
        body = response.get_json()
        assert {"html", "jsonld", "turtle", "csv", "geojson"} <= set(body["formats"]), url


# --------------------------------------------------------------------------- collections


@pytest.mark.parametrize("fmt_name", PAGE_FORMATS)
def test_collection_page_in_every_format_three_ways(client, everything, fmt_name):
    fmt = exports.get(fmt_name)
    with client.application.app_context():
        actors = store.list_page(db.session(), "actor").items
    records = [s.record for s in actors]
    assert len(records) == 3
    for mode in MODES:
        response = fetch(client, "/actors", fmt_name, mode)
        assert response.status_code == 200, (mode, response.get_data(as_text=True)[:500])
        assert response.mimetype == fmt.media_types[0]
        assert ("Accept" in response.vary) == (mode == "accept")
        assert 'rel="first"' in response.headers["Link"]
        parsed = parse(fmt_name, response.data)
        if fmt.rdf:
            want = expected_graph("actor", records)
            assert_same_graph(parsed, want, f"actors as {fmt_name} via {mode}")
        elif fmt_name == "csv":
            assert len(parsed) == 3
        elif fmt_name == "geojson":
            assert parsed["type"] == "FeatureCollection" and len(parsed["features"]) == 3
        else:
            assert all(r["name"]["de"] in parsed for r in records)


def test_collection_rdf_formats_are_isomorphic(client, everything):
    graphs = [parse(name, client.get(f"/actors.{exports.get(name).extensions[0]}").data)
              for name in RDF_PARSERS]
    assert all(isomorphic(graphs[0], g) for g in graphs[1:])


def test_xlsx_is_a_download(client, everything):
    response = client.get("/actors.xlsx")
    assert response.status_code == 200
    assert response.headers["Content-Disposition"].startswith("attachment;")
    assert response.data[:2] == b"PK"  # a zip container


# --------------------------------------------------------------------------- caching


def test_revalidation_with_etag_and_with_if_modified_since(client, everything):
    for path in (f"/actors/{everything['actor'].id}", f"/actors/{everything['actor'].id}.ttl",
                 "/actors", "/actors.csv?per_page=2", "/"):
        first = client.get(path)
        assert first.status_code == 200, path
        etag, modified = first.headers["ETag"], first.headers["Last-Modified"]
        assert etag.startswith('W/"'), path
        assert first.headers["Cache-Control"]
        again = client.get(path, headers={"If-None-Match": etag})
        assert again.status_code == 304 and again.data == b"", path
        assert again.headers["ETag"] == etag
        assert client.get(path, headers={"If-Modified-Since": modified}).status_code == 304
        # Weak comparison (RFC 9110 §8.8.3.2): the strong form matches too; lists and "*".
        for header in (etag[2:], f'"other", {etag}', "*"):
            assert client.get(path, headers={"If-None-Match": header}).status_code == 304
        # If-None-Match decides when present, even if If-Modified-Since would match.
        stale = client.get(path, headers={"If-None-Match": 'W/"stale"',
                                          "If-Modified-Since": modified})
        assert stale.status_code == 200, path


def test_validators_differ_per_representation_and_change_with_the_entity(app, client,
                                                                          everything):
    state = everything["actor"]
    path = f"/actors/{state.id}"
    tags = {name: client.get(f"{path}.{exports.get(name).extensions[0]}").headers["ETag"]
            for name in PAGE_FORMATS}
    assert len(set(tags.values())) == len(tags)
    assert tags["turtle"] == f'W/"{state.version}-turtle"'
    assert client.get(f"{path}.ttl").last_modified == state.modified.replace(microsecond=0)
    list_tag = client.get("/actors.ttl").headers["ETag"]

    with app.app_context():
        data = vocab.load_record("actor", {**RICH["actor"], "name": {"de": "Neu"}})
        later = state.modified + timedelta(seconds=5)
        store.replace(db.session(), "actor", state.id, data, expected_version=state.version,
                      at=later)
    response = client.get(f"{path}.ttl", headers={"If-None-Match": tags["turtle"]})
    assert response.status_code == 200
    assert response.headers["ETag"] == f'W/"{state.version + 1}-turtle"'
    assert client.get("/actors.ttl", headers={"If-None-Match": list_tag}).status_code == 200
    since = client.get(path, headers={
        "If-Modified-Since": (state.modified).strftime("%a, %d %b %Y %H:%M:%S GMT")})
    assert since.status_code == 200


def test_html_page_changes_when_a_related_entity_appears(app, client, everything):
    path = "/actors/partner-b"
    first = client.get(path)
    make(app, "offer", {"name": {"de": "Neues Angebot"}, "offerTypes": ["course"],
                        "provider": OTHER})
    response = client.get(path, headers={"If-None-Match": first.headers["ETag"]})
    assert response.status_code == 200 and "Neues Angebot" in response.get_data(as_text=True)


# --------------------------------------------------------------------------- 404 and 410


def test_unknown_ids_and_collections_are_404(client, everything):
    for path in ("/actors/nope", "/actors/nope.ttl", "/nothing", "/nothing.ttl",
                 "/nothing/abc"):
        assert client.get(path).status_code == 404, path
    problem = client.get("/actors/nope", headers={"Accept": "text/turtle"})
    assert problem.mimetype == "application/problem+json"


def test_deleted_entity_is_410_with_a_tombstone(app, client, everything):
    state = everything["offer"]
    path = f"/offers/{state.id}"
    remove(app, "offer", state.id)

    page = client.get(path, headers={"Accept": "text/html"})
    assert page.status_code == 410 and page.mimetype == "text/html"
    text = page.get_data(as_text=True)
    assert state.id in text and "gelöscht" in text
    assert "Sprachcafé" not in text  # the deleted content is not shown again

    for url, headers in ((path, {"Accept": "text/turtle"}),
                         (path, {"Accept": "application/ld+json"}),
                         (f"{path}.ttl", {"Accept": "application/json"}),
                         # the extension decides, not the browser's Accept
                         (f"{path}.ttl", {"Accept": "text/html,*/*;q=0.8"}),
                         (f"{path}?format=jsonld", {"Accept": "text/html"})):
        response = client.get(url, headers=headers)
        assert response.status_code == 410, url
        assert response.mimetype == "application/problem+json"
        tombstone = response.get_json()["tombstone"]
        assert tombstone["id"] == state.id and tombstone["kind"] == "offer"
        assert tombstone["deleted"] and tombstone["version"] == 2

    listing = client.get("/offers.jsonld").get_json()
    assert listing["@graph"] == []
