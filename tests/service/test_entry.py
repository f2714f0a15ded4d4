"""The entry URL `/`: the node description for machines, the same links for people."""

from __future__ import annotations

import re

import pytest
from rdflib import Graph, Literal, URIRef

from exports.node import SD, VOID
from service import __version__, db
from service.peers import add_peer
from tests.conftest import BASE
from tests.service.test_api import create
from tests.service.test_catalog import parse, seed_demo
from vocab import VOCAB_VERSION
from vocab.namespaces import DCAT, DCTERMS, LDES, OWL, PROV, RDF, SCHEMA

NODE = URIRef(BASE + "/")


@pytest.fixture
def node(app):
    seed_demo(app)
    with app.app_context():
        add_peer(db.session(), "https://atlas.leipzig.example/", "node", "Atlas Leipzig")
        add_peer(db.session(), "https://index.example", "index")
    return app


def describe(client, accept: str = "text/turtle") -> Graph:
    response = client.get("/", headers={"Accept": accept})
    assert response.status_code == 200, response.get_data(as_text=True)
    return parse(response)


@pytest.mark.parametrize("accept", ["text/turtle", "application/ld+json",
                                    "application/n-triples", "application/rdf+xml"])
def test_rdf_accept_gets_the_node_description(client, node, accept):
    response = client.get("/", headers={"Accept": accept})
    assert response.headers["Content-Type"].split(";")[0] == accept
    assert response.headers["Vary"] == "Accept"
    g = parse(response)
    assert (NODE, RDF.type, SCHEMA.DataCatalog) in g
    assert (NODE, RDF.type, VOID.Dataset) in g


def test_description_leads_to_every_machine_interface(client, node):
    g = describe(client)
    assert g.value(NODE, SCHEMA.name) == Literal("Testknoten")
    assert g.value(NODE, VOID.uriSpace) == Literal(BASE + "/")
    feed = URIRef(BASE + "/feed")
    assert feed in set(g.objects(NODE, SCHEMA.dataset))
    assert (feed, RDF.type, LDES.EventStream) in g
    catalog = URIRef(BASE + "/catalog")
    assert (catalog, RDF.type, DCAT.Catalog) in g and catalog in set(g.objects(NODE, None))
    assert URIRef(BASE + "/.well-known/void") in set(g.objects(NODE, None))
    sparql = g.value(NODE, VOID.sparqlEndpoint)
    assert sparql == URIRef(BASE + "/sparql") and g.value(sparql, SD.endpoint) == sparql
    assert set(g.objects(NODE, VOID.dataDump)) == {
        URIRef(f"{BASE}/dumps/all.{ext}.gz") for ext in ("nt", "ttl", "jsonld")}
    assert URIRef(f"https://w3id.org/engagement-atlas/ns/{VOCAB_VERSION}") in set(
        g.objects(NODE, DCTERMS.conformsTo))
    software = g.value(NODE, PROV.wasAttributedTo)
    assert g.value(software, SCHEMA.softwareVersion) == Literal(__version__)


def test_description_names_the_city_with_key_and_wikidata(client, node):
    g = describe(client)
    city = g.value(NODE, SCHEMA.spatialCoverage)
    assert g.value(city, SCHEMA.name) == Literal("Dresden")
    assert g.value(city, URIRef("http://www.wikidata.org/prop/direct/P439")) == Literal(
        "14612000")
    assert g.value(city, OWL.sameAs) == URIRef("http://www.wikidata.org/entity/Q1731")


def test_description_lists_the_peers(app, client, node):
    g = describe(client)
    peers = {str(g.value(ref, SCHEMA.url)): str(g.value(ref, SCHEMA.additionalType))
             for ref in g.objects(NODE, DCTERMS.relation)}
    assert peers == {"https://atlas.leipzig.example": "node", "https://index.example": "index"}


def test_documents_that_the_description_links_exist(client, node):
    """The links a harvester follows answer (feed, SPARQL and dumps are other modules')."""
    for path in ("/catalog", "/.well-known/void", "/dumps/all.nt.gz"):
        response = client.get(path)
        assert response.status_code == 200, path
        response.close()


def test_html_shows_the_same_links(client, node):
    response = client.get("/", headers={"Accept": "text/html"})
    assert response.status_code == 200 and response.content_type.startswith("text/html")
    assert response.headers["Vary"] == "Accept"
    html = response.get_data(as_text=True)
    for href in ("/catalog", "/.well-known/void", "/feed", "/sparql",
                 f"{BASE}/dumps/all.nt.gz", f"{BASE}/dumps/actors.csv.gz",
                 "https://atlas.leipzig.example", "https://index.example",
                 "/?format=turtle"):
        assert f'href="{href}"' in html, href
    assert "Atlas Leipzig" in html and "Verzeichnis" in html
    assert re.search(r'<link rel="alternate" type="text/turtle" href="/\?format=turtle">', html)


def test_browsers_and_bare_clients_get_html(client, node):
    for headers in ({}, {"Accept": "*/*"},
                    {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}):
        assert client.get("/", headers=headers).content_type.startswith("text/html")


def test_format_parameter_and_406(client, node):
    response = client.get("/?format=jsonld")
    assert response.headers["Content-Type"].startswith("application/ld+json")
    assert (NODE, RDF.type, SCHEMA.DataCatalog) in parse(response)
    refused = client.get("/", headers={"Accept": "image/png"})
    assert refused.status_code == 406


def test_etag_and_304_per_format(app, client, editor_token, node):
    turtle = client.get("/", headers={"Accept": "text/turtle"})
    html = client.get("/", headers={"Accept": "text/html"})
    assert turtle.headers["ETag"] != html.headers["ETag"]
    for response, accept in ((turtle, "text/turtle"), (html, "text/html")):
        again = client.get("/", headers={"Accept": accept,
                                         "If-None-Match": response.headers["ETag"]})
        assert again.status_code == 304
    with app.app_context():
        add_peer(db.session(), "https://atlas.bautzen.example", "node")
    after_peer = client.get("/", headers={"Accept": "text/turtle",
                                          "If-None-Match": turtle.headers["ETag"]})
    assert after_peer.status_code == 200
    etag = after_peer.headers["ETag"]
    create(client, editor_token)
    assert client.get("/", headers={"Accept": "text/turtle",
                                    "If-None-Match": etag}).status_code == 200


def test_empty_node_describes_itself_too(client):
    g = describe(client)
    assert g.value(NODE, SCHEMA.name) == Literal("Testknoten")
    assert g.value(NODE, SCHEMA.spatialCoverage) is not None  # CITY is set in conftest
    assert not list(g.objects(NODE, DCTERMS.relation))
