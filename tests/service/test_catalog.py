"""/catalog (DCAT-AP.de) and /.well-known/void as a node serves them, with demo data."""

from __future__ import annotations

import dataclasses
import gzip
from pathlib import Path

import pytest
from pyshacl import validate
from rdflib import Graph, Literal, URIRef
from rdflib.compare import isomorphic

from exports.node import DCATDE, VOID, dataset_iri
from service import db, dumps, store
from service.demo import load_nodes, seed_node
from tests.conftest import BASE
from tests.service.test_api import SAMPLES, auth, create
from vocab import ENTITIES, to_graph
from vocab.namespaces import DCAT, DCTERMS, RDF

SHAPES = Graph().parse(Path(__file__).parents[1] / "exports" / "dcat_ap_de_mandatory.ttl",
                       format="turtle")
RDFLIB = {"text/turtle": "turtle", "application/rdf+xml": "xml",
          "application/ld+json": "json-ld", "application/n-triples": "nt"}
CITY = {"MUNICIPALITY_KEY": "14612000", "WIKIDATA": "Q1731",
        "CONTACT_EMAIL": "atlas@dresden.example", "CITY": "Dresden"}


def seed_demo(app, slug: str = "dresden") -> int:
    """Store one demo node's records under this app's BASE_URL; returns how many."""
    nodes = load_nodes("127.0.0.1", 7000)
    node = next(n for n in nodes if n.slug == slug)
    node = dataclasses.replace(node, settings={**node.settings, "BASE_URL": BASE})
    bases = {n.slug: n.base for n in nodes} | {slug: BASE}
    app.config.update(CITY)
    with app.app_context():
        return seed_node(db.session(), node, bases)


def parse(response) -> Graph:
    media_type = response.headers["Content-Type"].split(";")[0]
    return Graph().parse(data=response.get_data(), format=RDFLIB[media_type])


@pytest.fixture
def demo(app):
    return seed_demo(app)


def test_catalog_of_demo_data_conforms_to_dcat_ap_de(client, demo):
    response = client.get("/catalog")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/turtle; charset=utf-8"
    ok, _graph, report = validate(parse(response), shacl_graph=SHAPES, inference="none")
    assert ok, report


def test_catalog_lists_every_collection_with_dates_and_place(app, client, demo):
    g = parse(client.get("/catalog"))
    catalog = URIRef(BASE + "/catalog")
    assert set(g.objects(catalog, DCAT.dataset)) == {
        dataset_iri(BASE, spec.collection) for spec in ENTITIES.values()}
    with app.app_context():
        newest = store.list_page(db.session(), "actor", per_page=1).items[0].modified
    actors = dataset_iri(BASE, "actors")
    assert g.value(actors, DCTERMS.modified).toPython() == newest.replace(microsecond=0)
    assert g.value(catalog, DCTERMS.modified) is not None
    place = URIRef("http://dcat-ap.de/def/politicalGeocoding/municipalityKey/14612000")
    assert g.value(actors, DCATDE.politicalGeocodingURI) == place
    assert g.value(catalog, DCTERMS.spatial) == place
    # Events has no demo records: its dataset is listed, without a modification date.
    assert g.value(dataset_iri(BASE, "events"), DCTERMS.modified) is None


def test_catalog_follows_the_configured_licence_and_publisher(app, client, demo):
    app.config.update(LICENSE="http://dcat-ap.de/def/licenses/dl-by-de/2.0",
                      PUBLISHER_NAME="Landeshauptstadt Dresden",
                      PUBLISHER_URL="https://www.dresden.de")
    g = parse(client.get("/catalog"))
    assert set(g.objects(None, DCTERMS.license)) == {
        URIRef("http://dcat-ap.de/def/licenses/dl-by-de/2.0")}
    publisher = g.value(URIRef(BASE + "/catalog"), DCTERMS.publisher)
    assert g.value(publisher, URIRef("http://xmlns.com/foaf/0.1/name")) == Literal(
        "Landeshauptstadt Dresden")


@pytest.mark.parametrize("accept, media_type", [
    (None, "text/turtle"),
    ("*/*", "text/turtle"),
    ("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", "text/turtle"),
    ("application/rdf+xml", "application/rdf+xml"),
    ("application/ld+json", "application/ld+json"),
    ("application/n-triples", "application/n-triples"),
    ("text/turtle;q=0.5, application/ld+json", "application/ld+json"),
])
def test_catalog_negotiates_rdf_formats(client, demo, accept, media_type):
    response = client.get("/catalog", headers={"Accept": accept} if accept else {})
    assert response.status_code == 200
    assert response.headers["Content-Type"].split(";")[0] == media_type
    assert response.headers["Vary"] == "Accept"
    assert len(parse(response)) > 100


def test_catalog_by_extension_and_format_parameter(client, demo):
    by_ext = client.get("/catalog.nt")
    assert by_ext.headers["Content-Type"].startswith("application/n-triples")
    assert "Vary" not in by_ext.headers
    by_param = client.get("/catalog?format=jsonld")
    assert by_param.headers["Content-Type"].startswith("application/ld+json")
    assert isomorphic(parse(by_ext), parse(by_param))


def test_catalog_refuses_html_only_clients_with_406(client, demo):
    response = client.get("/catalog", headers={"Accept": "text/html"})
    assert response.status_code == 406
    assert response.content_type == "application/problem+json"
    assert "text/turtle" in response.get_json()["media_types"]
    assert client.get("/catalog.pdf").status_code == 406


def test_catalog_validators_and_304(client, editor_token, demo):
    first = client.get("/catalog")
    etag = first.headers["ETag"]
    assert etag.startswith('W/"') and "Last-Modified" in first.headers
    again = client.get("/catalog", headers={"If-None-Match": etag})
    assert again.status_code == 304 and not again.get_data()
    other_format = client.get("/catalog", headers={"Accept": "application/ld+json"})
    assert other_format.headers["ETag"] != etag
    create(client, editor_token)
    changed = client.get("/catalog", headers={"If-None-Match": etag})
    assert changed.status_code == 200 and changed.headers["ETag"] != etag


def test_catalog_gives_dump_sizes_once_dumps_are_built(app, client, demo):
    dist = URIRef(f"{BASE}/catalog#actors-dump-nt")
    assert parse(client.get("/catalog")).value(dist, DCAT.byteSize) is None
    built = {d.name: state.size for d, state, _s in dumps.build_all(app)}
    g = parse(client.get("/catalog"))
    assert g.value(dist, DCAT.byteSize).toPython() == built["actors.nt.gz"]
    assert g.value(dist, DCTERMS.modified) is not None


# --------------------------------------------------------------------------- VoID


def test_void_counts_what_the_dumps_contain(app, client, demo):
    response = client.get("/.well-known/void")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/turtle; charset=utf-8"
    g = parse(response)
    node = URIRef(BASE + "/")
    assert (node, RDF.type, VOID.Dataset) in g
    assert g.value(node, VOID.uriSpace) == Literal(BASE + "/")
    assert g.value(node, VOID.sparqlEndpoint) == URIRef(BASE + "/sparql")
    assert set(g.objects(node, VOID.dataDump)) == {
        URIRef(f"{BASE}/dumps/all.{ext}.gz") for ext in ("nt", "ttl", "jsonld")}
    assert g.value(node, VOID.entities).toPython() == demo
    dump = client.get("/dumps/all.nt.gz")
    assert dump.status_code == 200
    body = dump.get_data()
    dump.close()  # the file is streamed: close it
    lines = [line for line in gzip.decompress(body).splitlines() if line.strip()]
    assert g.value(node, VOID.triples).toPython() == len(lines)
    actors = dataset_iri(BASE, "actors")
    assert g.value(actors, VOID.entities).toPython() == 7
    assert g.value(actors, VOID["class"]) == ENTITIES["actor"].rdf_type


def test_void_triple_count_follows_changes(app, client, editor_token, demo):
    before = parse(client.get("/.well-known/void")).value(URIRef(BASE + "/"), VOID.triples)
    record = create(client, editor_token, "actors", SAMPLES["actors"])
    after = parse(client.get("/.well-known/void")).value(URIRef(BASE + "/"), VOID.triples)
    assert after.toPython() - before.toPython() == len(to_graph("actor", record, BASE))
    client.delete(f"/api/v1/actors/{record['id']}", headers=auth(editor_token,
                                                                  **{"If-Match": '"1"'}))
    gone = parse(client.get("/.well-known/void")).value(URIRef(BASE + "/"), VOID.triples)
    assert gone == before


def test_void_negotiates_and_revalidates(client, demo):
    response = client.get("/.well-known/void", headers={"Accept": "application/ld+json"})
    assert response.headers["Content-Type"].startswith("application/ld+json")
    assert (URIRef(BASE + "/"), RDF.type, VOID.Dataset) in parse(response)
    etag = response.headers["ETag"]
    assert client.get("/.well-known/void", headers={"Accept": "application/ld+json",
                                                    "If-None-Match": etag}).status_code == 304
