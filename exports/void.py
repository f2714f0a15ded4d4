"""The node's VoID description (W3C Interest Group Note "Describing Linked Datasets").

The dataset is the node's whole data, ``{base}/`` — the same IRI the entry
URL describes — with its URI space, SPARQL endpoint, the ``all.*`` dumps,
statistics, vocabularies and the formats it is served in; each collection is
a subset (the dataset IRIs of the DCAT catalog), with its own dumps, class and
counts. Served at ``/.well-known/void`` (VoID §6.2).
"""

from __future__ import annotations

from rdflib import Graph, Literal, URIRef

from vocab.fields import ENTITY_BY_COLLECTION
from vocab.namespaces import DCTERMS, FOAF, NS_BASE, RDF, SCHEMA, SKOS

from .dcat import COLLECTION_TEXTS
from .node import (
    ONTOLOGY,
    SPARQL_PATH,
    VOID,
    VOID_PATH,
    NodeInfo,
    add_publisher,
    dataset_iri,
    new_graph,
    timestamp,
)

__all__ = ["FEATURES", "VOCABULARIES", "void_graph"]

# The vocabularies the data use (VoID §4.3: namespace IRIs).
VOCABULARIES = (URIRef(NS_BASE + "#"), URIRef(str(SCHEMA)), URIRef(str(DCTERMS)),
                URIRef(str(SKOS)))
# Serialisations every page and dump is available in (VoID §4.5, W3C format IRIs).
FEATURES = {"ntriples": "N-Triples", "turtle": "Turtle", "jsonld": "JSON-LD",
            "rdfxml": "RDF_XML"}
_FORMATS_NS = "http://www.w3.org/ns/formats/"


def void_graph(info: NodeInfo) -> Graph:
    """The VoID description of the node's data; triple counts come from ``info``."""
    g = new_graph()
    base = info.base
    doc = URIRef(base + VOID_PATH)
    dataset = URIRef(base + "/")
    g.add((doc, RDF.type, VOID.DatasetDescription))
    g.add((doc, DCTERMS.title, Literal(f"VoID-Beschreibung: {info.name}", lang="de")))
    g.add((doc, DCTERMS.title, Literal(f"VoID description: {info.name}", lang="en")))
    g.add((doc, FOAF.primaryTopic, dataset))

    g.add((dataset, RDF.type, VOID.Dataset))
    g.add((dataset, DCTERMS.title, Literal(info.name)))
    if info.description:
        g.add((dataset, DCTERMS.description, Literal(info.description, lang="de")))
    g.add((dataset, DCTERMS.publisher, add_publisher(g, info)))
    if info.license:
        g.add((dataset, DCTERMS.license, URIRef(info.license)))
    if info.modified:
        g.add((dataset, DCTERMS.modified, timestamp(info.modified)))
    g.add((dataset, FOAF.homepage, dataset))
    g.add((dataset, VOID.uriSpace, Literal(base + "/")))
    g.add((dataset, VOID.sparqlEndpoint, URIRef(base + SPARQL_PATH)))
    g.add((dataset, DCTERMS.conformsTo, ONTOLOGY))
    for vocabulary in VOCABULARIES:
        g.add((dataset, VOID.vocabulary, vocabulary))
    for name in FEATURES.values():
        g.add((dataset, VOID.feature, URIRef(_FORMATS_NS + name)))
    for dump in info.dumps:
        if dump.collection == "all":
            g.add((dataset, VOID.dataDump, URIRef(dump.url)))
    g.add((dataset, VOID.entities, Literal(info.total_entities)))
    counted = [c.triples for c in info.collections]
    if counted and None not in counted:
        g.add((dataset, VOID.triples, Literal(sum(counted))))

    for coll in info.collections:
        subset = dataset_iri(base, coll.collection)
        g.add((dataset, VOID.subset, subset))
        g.add((subset, RDF.type, VOID.Dataset))
        texts = COLLECTION_TEXTS.get(coll.collection, {})
        for lang, (title, _description, _keywords) in texts.items():
            g.add((subset, DCTERMS.title, Literal(title, lang=lang)))
        g.add((subset, VOID.uriSpace, Literal(f"{base}/{coll.collection}/")))
        spec = ENTITY_BY_COLLECTION.get(coll.collection)
        if spec is not None:
            g.add((subset, VOID["class"], spec.rdf_type))
        g.add((subset, VOID.entities, Literal(coll.entities)))
        if coll.triples is not None:
            g.add((subset, VOID.triples, Literal(coll.triples)))
        if coll.modified:
            g.add((subset, DCTERMS.modified, timestamp(coll.modified)))
        for dump in info.dumps:
            if dump.collection == coll.collection and dump.extension != "csv":
                g.add((subset, VOID.dataDump, URIRef(dump.url)))
    return g
