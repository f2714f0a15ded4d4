"""The discovery documents as graphs: DCAT-AP.de catalog, VoID, entry-URL description."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from pyshacl import validate
from rdflib import Graph, Literal, URIRef
from rdflib.compare import isomorphic

from exports.dcat import catalog_graph
from exports.node import (
    DCATDE,
    LDES_SPEC,
    SD,
    VCARD,
    VOID,
    CollectionInfo,
    NodeInfo,
    PeerInfo,
    dataset_iri,
    dump_files,
    node_graph,
    rdf_format_names,
    serialize,
)
from exports.void import void_graph
from vocab.fields import ENTITIES
from vocab.namespaces import DCAT, DCTERMS, FOAF, LDES, OWL, RDF, SCHEMA, SKOS

from .conftest import BASE

SHAPES = Graph().parse(Path(__file__).with_name("dcat_ap_de_mandatory.ttl"), format="turtle")
CC_BY = "http://dcat-ap.de/def/licenses/cc-by/4.0"
WHEN = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
EU = "http://publications.europa.eu/resource/authority/"
IANA = "http://www.iana.org/assignments/media-types/"


def node_info(**overrides) -> NodeInfo:
    collections = tuple(CollectionInfo(spec.collection, kind, entities=3 if kind == "actor" else 0,
                                       modified=WHEN if kind == "actor" else None,
                                       triples=42 if kind == "actor" else 0)
                        for kind, spec in ENTITIES.items())
    values = dict(base=BASE, name="Engagement-Atlas Dresden", description="Beispieldaten.",
                  city="Dresden", municipality_key="14612000", wikidata="Q1731",
                  license=CC_BY, contact_email="atlas@dresden.example", modified=WHEN,
                  issued=WHEN, collections=collections,
                  dumps=dump_files(BASE, [c.collection for c in collections]),
                  peers=(PeerInfo(1, "https://atlas.leipzig.example", "node", "Leipzig"),
                         PeerInfo(2, "https://index.example", "index", None)),
                  software_version="0.1.0", vocab_version="1.0.0")
    values.update(overrides)
    return NodeInfo(**values)


def conforms(graph: Graph) -> tuple[bool, str]:
    ok, _report, text = validate(graph, shacl_graph=SHAPES, inference="none")
    return ok, text


# --------------------------------------------------------------------------- catalog


def test_catalog_conforms_to_the_dcat_ap_de_shapes():
    ok, report = conforms(catalog_graph(node_info()))
    assert ok, report


def test_catalog_without_optional_settings_still_conforms():
    info = node_info(city="", municipality_key="", wikidata="", contact_email="",
                     description="", modified=None, issued=None)
    ok, report = conforms(catalog_graph(info))
    assert ok, report


def test_the_shapes_catch_what_dcat_ap_de_requires():
    graph = catalog_graph(node_info())
    dataset = dataset_iri(BASE, "actors")
    graph.remove((dataset, DCTERMS.publisher, None))  # DCAT-AP.de 3.0: mandatory
    ok, report = conforms(graph)
    assert not ok and "publisher" in report
    graph = catalog_graph(node_info())
    dist = URIRef(f"{BASE}/catalog#actors-dump-nt")
    graph.remove((dist, DCTERMS.license, None))
    assert not conforms(graph)[0]
    graph = catalog_graph(node_info())
    graph.remove((URIRef(IANA + "text/turtle"), RDF.type, None))  # untyped media type
    assert not conforms(graph)[0]


def test_catalog_describes_publisher_place_and_contact():
    g = catalog_graph(node_info())
    catalog = URIRef(BASE + "/catalog")
    assert (catalog, RDF.type, DCAT.Catalog) in g
    assert {o.language for o in g.objects(catalog, DCTERMS.title)} == {"de", "en"}
    assert {o.language for o in g.objects(catalog, DCTERMS.description)} == {"de", "en"}
    publisher = g.value(catalog, DCTERMS.publisher)
    assert (publisher, RDF.type, FOAF.Agent) in g
    assert g.value(publisher, FOAF.name) == Literal("Dresden")
    place = URIRef("http://dcat-ap.de/def/politicalGeocoding/municipalityKey/14612000")
    assert g.value(catalog, DCTERMS.spatial) == place
    assert g.value(catalog, DCTERMS.license) == URIRef(CC_BY)
    assert g.value(catalog, DCTERMS.modified).toPython() == WHEN
    assert set(g.objects(catalog, DCTERMS.language)) == {URIRef(EU + "language/DEU"),
                                                         URIRef(EU + "language/ENG")}
    assert g.value(catalog, FOAF.homepage) == URIRef(BASE + "/")
    contact = g.value(catalog, DCAT.contactPoint)
    assert (contact, RDF.type, VCARD.Kind) in g
    assert g.value(contact, VCARD.hasEmail) == URIRef("mailto:atlas@dresden.example")


def test_one_dataset_per_collection_with_dumps_pages_and_themes():
    g = catalog_graph(node_info(contributor_id="http://dcat-ap.de/def/contributors/example"))
    catalog = URIRef(BASE + "/catalog")
    datasets = set(g.objects(catalog, DCAT.dataset))
    assert datasets == {dataset_iri(BASE, spec.collection) for spec in ENTITIES.values()}
    actors = dataset_iri(BASE, "actors")
    assert g.value(actors, DCTERMS.identifier) == Literal(str(actors))
    assert g.value(actors, DCATDE.politicalGeocodingLevelURI) == URIRef(
        "http://dcat-ap.de/def/politicalGeocoding/Level/municipality")
    assert g.value(actors, DCATDE.contributorID) == URIRef(
        "http://dcat-ap.de/def/contributors/example")
    assert URIRef(EU + "data-theme/SOCI") in set(g.objects(actors, DCAT.theme))
    assert g.value(actors, DCTERMS.accessRights) == URIRef(EU + "access-right/PUBLIC")
    assert {k.language for k in g.objects(actors, DCAT.keyword)} >= {"de", "en"}
    assert g.value(actors, DCTERMS.modified).toPython() == WHEN
    by_url = {str(g.value(d, DCAT.accessURL)): d for d in g.objects(actors, DCAT.distribution)}
    assert set(by_url) == {f"{BASE}/dumps/actors.{ext}.gz" for ext in ("nt", "ttl", "jsonld",
                                                                       "csv")} | {
        f"{BASE}/actors", f"{BASE}/actors.jsonld"}
    nt = by_url[f"{BASE}/dumps/actors.nt.gz"]
    assert g.value(nt, DCAT.downloadURL) == URIRef(f"{BASE}/dumps/actors.nt.gz")
    assert g.value(nt, DCTERMS["format"]) == URIRef(EU + "file-type/RDF_N_TRIPLES")
    assert g.value(nt, DCAT.mediaType) == URIRef(IANA + "application/n-triples")
    assert g.value(nt, DCAT.compressFormat) == URIRef(IANA + "application/gzip")
    assert g.value(nt, DCTERMS.license) == URIRef(CC_BY)
    csv = by_url[f"{BASE}/dumps/actors.csv.gz"]
    assert g.value(csv, DCTERMS["format"]) == URIRef(EU + "file-type/CSV")
    page = by_url[f"{BASE}/actors"]
    assert g.value(page, DCAT.mediaType) == URIRef(IANA + "text/html")
    assert g.value(page, DCAT.downloadURL) is None


def test_data_services_for_feed_and_sparql():
    g = catalog_graph(node_info())
    services = {str(g.value(s, DCAT.endpointURL)): s
                for s in g.objects(URIRef(BASE + "/catalog"), DCAT.service)}
    assert set(services) == {BASE + "/feed", BASE + "/sparql"}
    feed, sparql = services[BASE + "/feed"], services[BASE + "/sparql"]
    assert g.value(feed, DCTERMS.conformsTo) == LDES_SPEC
    assert g.value(sparql, DCTERMS.conformsTo) == URIRef(
        "https://www.w3.org/TR/sparql11-protocol/")
    for service in (feed, sparql):
        assert len(set(g.objects(service, DCAT.servesDataset))) == len(ENTITIES)
        assert g.value(service, DCTERMS.publisher) is not None
        assert g.value(service, DCTERMS.license) == URIRef(CC_BY)


def test_configured_licence_is_used_everywhere():
    dl = "http://dcat-ap.de/def/licenses/dl-zero-de/2.0"
    g = catalog_graph(node_info(license=dl))
    licences = set(g.objects(None, DCTERMS.license))
    assert licences == {URIRef(dl)}
    assert conforms(g)[0]


@pytest.mark.parametrize("build", [catalog_graph, void_graph, node_graph])
@pytest.mark.parametrize("format_name", rdf_format_names())
def test_every_document_round_trips_through_every_format(build, format_name):
    graph = build(node_info())
    rdflib_name = {"turtle": "turtle", "ntriples": "nt", "rdfxml": "xml",
                   "jsonld": "json-ld"}[format_name]
    parsed = Graph().parse(data=serialize(graph, format_name), format=rdflib_name)
    assert isomorphic(parsed, graph)


def test_ntriples_bytes_are_stable():
    assert serialize(catalog_graph(node_info()), "ntriples") == serialize(
        catalog_graph(node_info()), "ntriples")


# --------------------------------------------------------------------------- VoID


def test_void_dataset_with_endpoint_dumps_counts_and_subsets():
    g = void_graph(node_info())
    dataset = URIRef(BASE + "/")
    assert (dataset, RDF.type, VOID.Dataset) in g
    assert g.value(dataset, VOID.uriSpace) == Literal(BASE + "/")
    assert g.value(dataset, VOID.sparqlEndpoint) == URIRef(BASE + "/sparql")
    assert set(g.objects(dataset, VOID.dataDump)) == {
        URIRef(f"{BASE}/dumps/all.{ext}.gz") for ext in ("nt", "ttl", "jsonld")}
    assert g.value(dataset, VOID.triples).toPython() == 42
    assert g.value(dataset, VOID.entities).toPython() == 3
    assert {str(v) for v in g.objects(dataset, VOID.vocabulary)} == {
        "https://w3id.org/engagement-atlas/ns#", "https://schema.org/",
        "http://purl.org/dc/terms/", "http://www.w3.org/2004/02/skos/core#"}
    assert URIRef("http://www.w3.org/ns/formats/Turtle") in set(g.objects(dataset,
                                                                          VOID.feature))
    actors = dataset_iri(BASE, "actors")
    assert actors in set(g.objects(dataset, VOID.subset))
    assert g.value(actors, VOID.entities).toPython() == 3
    assert g.value(actors, VOID["class"]) == ENTITIES["actor"].rdf_type
    assert URIRef(f"{BASE}/dumps/actors.nt.gz") in set(g.objects(actors, VOID.dataDump))


def test_void_leaves_out_triples_it_did_not_count():
    info = node_info(collections=tuple(CollectionInfo(s.collection, k, 0)
                                       for k, s in ENTITIES.items()))
    assert void_graph(info).value(URIRef(BASE + "/"), VOID.triples) is None


# --------------------------------------------------------------------------- entry URL


def test_node_description_links_everything_a_harvester_needs():
    g = node_graph(node_info())
    node = URIRef(BASE + "/")
    assert (node, RDF.type, SCHEMA.DataCatalog) in g
    assert g.value(node, SCHEMA.name) == Literal("Engagement-Atlas Dresden")
    assert g.value(node, VOID.uriSpace) == Literal(BASE + "/")
    assert g.value(node, VOID.sparqlEndpoint) == URIRef(BASE + "/sparql")
    assert (URIRef(BASE + "/sparql"), RDF.type, SD.Service) in g
    assert (URIRef(BASE + "/feed"), RDF.type, LDES.EventStream) in g
    assert URIRef(BASE + "/feed") in set(g.objects(node, SCHEMA.dataset))
    assert (URIRef(BASE + "/catalog"), RDF.type, DCAT.Catalog) in g
    assert {URIRef(BASE + "/catalog"), URIRef(BASE + "/.well-known/void")} <= set(
        g.objects(node, None))
    assert len(set(g.objects(node, VOID.dataDump))) == 3
    assert URIRef("https://w3id.org/engagement-atlas/ns/1.0.0") in set(
        g.objects(node, DCTERMS.conformsTo))
    software = g.value(node, URIRef("http://www.w3.org/ns/prov#wasAttributedTo"))
    assert g.value(software, SCHEMA.softwareVersion) == Literal("0.1.0")


def test_node_description_names_the_city_with_its_keys():
    g = node_graph(node_info())
    city = g.value(URIRef(BASE + "/"), SCHEMA.spatialCoverage)
    assert (city, RDF.type, SCHEMA.City) in g
    assert g.value(city, SCHEMA.name) == Literal("Dresden")
    assert g.value(city, URIRef("http://www.wikidata.org/prop/direct/P439")) == Literal(
        "14612000")
    assert g.value(city, OWL.sameAs) == URIRef("http://www.wikidata.org/entity/Q1731")
    assert g.value(city, SCHEMA.sameAs) == URIRef("http://www.wikidata.org/entity/Q1731")
    without = node_graph(node_info(wikidata=""))
    assert not list(without.objects(None, OWL.sameAs))


def test_node_description_lists_peers_under_its_own_uris():
    g = node_graph(node_info())
    peers = {str(g.value(ref, SCHEMA.url)): ref
             for ref in g.objects(URIRef(BASE + "/"), DCTERMS.relation)}
    assert set(peers) == {"https://atlas.leipzig.example", "https://index.example"}
    assert g.value(peers["https://index.example"], SCHEMA.additionalType) == Literal("index")
    assert g.value(peers["https://atlas.leipzig.example"], SCHEMA.name) == Literal("Leipzig")
    # Authority: every subject the node states something about is under its own base
    # (the catalog types controlled-vocabulary IRIs; the entry description need not).
    assert all(str(s).startswith(BASE + "/") for s in g.subjects())


def test_terms_used_come_from_their_vocabularies():
    g = catalog_graph(node_info())
    used = {str(p) for p in g.predicates()} | {str(o) for o in g.objects(None, RDF.type)}
    known = ("http://www.w3.org/ns/dcat#", str(DCTERMS), str(FOAF), str(VCARD), str(SKOS),
             str(DCATDE), str(RDF), str(SCHEMA))
    assert all(term.startswith(known) for term in used), sorted(
        t for t in used if not t.startswith(known))
