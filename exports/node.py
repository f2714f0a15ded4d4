"""What a node says about itself: the facts, the fixed URL layout, and the entry-URL graph.

`NodeInfo` collects everything the machine-readable self-descriptions need —
the entry URL (``/``), the DCAT-AP.de catalog (`exports.dcat`) and the VoID
description (`exports.void`) — so the three documents are built from the same
facts and name the same resources with the same IRIs:

- ``{base}/``                 the node's data as a whole (schema:DataCatalog, void:Dataset)
- ``{base}/catalog#{coll}``   one dataset per collection (dcat:Dataset, void:Dataset subset)
- ``{base}/#publisher``       who publishes (foaf:Agent, schema:Organization)
- ``{base}/#city``            the place the node covers (schema:City)

The entry-URL graph lets a harvester discover everything from one request:
catalog, VoID, LDES feed, SPARQL endpoint, dumps, vocabulary, software
version and the peers the node knows. Only established terms are used
(schema.org, DCAT, VoID, LDES, SPARQL Service Description, PROV, DCTERMS).
This module never imports Flask or the service.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from rdflib import Graph, Literal, Namespace, URIRef

from vocab.namespaces import (
    DCAT,
    DCTERMS,
    FOAF,
    LDES,
    NS_BASE,
    OWL,
    PROV,
    RDF,
    RDFS,
    SCHEMA,
    SKOS,
    TREE,
    XSD,
)

__all__ = [
    "CATALOG_PATH",
    "DUMP_MEDIA_TYPES",
    "FEED_PATH",
    "SPARQL_PATH",
    "VOID_PATH",
    "CollectionInfo",
    "DumpLink",
    "NodeInfo",
    "PeerInfo",
    "agent_iri",
    "city_iri",
    "dataset_iri",
    "dump_files",
    "new_graph",
    "node_graph",
    "serialize",
]

# URLs fixed by the issue-4 plan: everyone links to these.
CATALOG_PATH = "/catalog"
VOID_PATH = "/.well-known/void"  # VoID §6.2: the well-known location of a VoID description
FEED_PATH = "/feed"
SPARQL_PATH = "/sparql"
DUMPS_PATH = "/dumps"

# Dump file extension -> media type of the (uncompressed) content; every dump is gzipped.
DUMP_MEDIA_TYPES = {"nt": "application/n-triples", "ttl": "text/turtle",
                    "jsonld": "application/ld+json", "csv": "text/csv"}
_RDF_DUMPS = ("nt", "ttl", "jsonld")  # "all" has no CSV: the collections' columns differ

DCATDE = Namespace("http://dcat-ap.de/def/dcatde/")
VCARD = Namespace("http://www.w3.org/2006/vcard/ns#")
VOID = Namespace("http://rdfs.org/ns/void#")
SD = Namespace("http://www.w3.org/ns/sparql-service-description#")
# Wikidata's "German municipality key" property: the established term for the AGS.
WDT = Namespace("http://www.wikidata.org/prop/direct/")
WIKIDATA_ENTITY = "http://www.wikidata.org/entity/"
ONTOLOGY = URIRef(NS_BASE)
LDES_SPEC = URIRef("https://w3id.org/ldes/specification")
SPARQL_PROTOCOL = URIRef("https://www.w3.org/TR/sparql11-protocol/")
MUNICIPALITY_KEY_BASE = "http://dcat-ap.de/def/politicalGeocoding/municipalityKey/"
MUNICIPALITY_LEVEL = URIRef("http://dcat-ap.de/def/politicalGeocoding/Level/municipality")

PREFIXES = {
    "dcat": DCAT, "dct": DCTERMS, "dcatde": DCATDE, "foaf": FOAF, "vcard": VCARD,
    "void": VOID, "schema": SCHEMA, "ldes": LDES, "tree": TREE, "sd": SD, "prov": PROV,
    "owl": OWL, "rdfs": RDFS, "xsd": XSD, "wdt": WDT, "skos": SKOS,
}
_RDFLIB_FORMATS = {"turtle": "turtle", "ntriples": "nt", "rdfxml": "xml", "jsonld": "json-ld"}


@dataclass(frozen=True)
class CollectionInfo:
    """One collection of the node: its live entities and when it last changed."""

    collection: str
    kind: str
    entities: int
    modified: datetime | None = None
    triples: int | None = None  # statements of its live records (None: not counted)


@dataclass(frozen=True)
class DumpLink:
    """One downloadable dump: ``{base}/dumps/{collection}.{extension}.gz``."""

    collection: str  # a collection name, or "all"
    extension: str  # nt | ttl | jsonld | csv
    url: str
    byte_size: int | None = None
    modified: datetime | None = None

    @property
    def media_type(self) -> str:
        return DUMP_MEDIA_TYPES[self.extension]


@dataclass(frozen=True)
class PeerInfo:
    """Another node or index this node knows (its entry URL)."""

    id: int
    url: str
    kind: str  # node | index
    name: str | None = None


@dataclass(frozen=True)
class NodeInfo:
    """Everything the self-descriptions state, gathered by the service."""

    base: str
    name: str
    description: str = ""
    city: str = ""
    municipality_key: str = ""
    wikidata: str = ""
    license: str = ""
    contact_email: str = ""
    publisher_name: str = ""
    publisher_url: str = ""
    contributor_id: str = ""
    modified: datetime | None = None
    issued: datetime | None = None
    collections: tuple[CollectionInfo, ...] = ()
    dumps: tuple[DumpLink, ...] = ()
    peers: tuple[PeerInfo, ...] = ()
    software_version: str = ""
    vocab_version: str = ""
    mode: str = "node"  # node | index

    def url(self, path: str) -> str:
        return self.base + path

    @property
    def publisher(self) -> str:
        """The publisher's name: configured, else the city, else the node's name."""
        return self.publisher_name or self.city or self.name

    @property
    def total_entities(self) -> int:
        return sum(c.entities for c in self.collections)


# --------------------------------------------------------------------------- shared IRIs


def dataset_iri(base: str, collection: str) -> URIRef:
    """The DCAT dataset (and VoID subset) of one collection, described in the catalog."""
    return URIRef(f"{base}{CATALOG_PATH}#{collection}")


def agent_iri(base: str) -> URIRef:
    return URIRef(f"{base}/#publisher")


def city_iri(base: str) -> URIRef:
    return URIRef(f"{base}/#city")


def dump_files(base: str, collections: Iterable[str]) -> tuple[DumpLink, ...]:
    """The dump layout: every collection in nt, ttl, jsonld and csv; "all" in the RDF ones."""
    files = [DumpLink("all", ext, f"{base}{DUMPS_PATH}/all.{ext}.gz") for ext in _RDF_DUMPS]
    for collection in collections:
        files += [DumpLink(collection, ext, f"{base}{DUMPS_PATH}/{collection}.{ext}.gz")
                  for ext in DUMP_MEDIA_TYPES]
    return tuple(files)


def new_graph() -> Graph:
    graph = Graph(bind_namespaces="core")
    for prefix, namespace in PREFIXES.items():
        graph.bind(prefix, namespace, replace=True)
    return graph


def serialize(graph: Graph, format_name: str) -> bytes:
    """Bytes of ``graph`` in a registered RDF format (by its registry name).

    N-Triples lines are sorted so that every worker answers the same bytes
    (stable ETags); JSON-LD is compacted with the bound prefixes as an inline
    context, so it needs no remote context (PITFALLS).
    """
    rdflib_format = _RDFLIB_FORMATS[format_name]
    if rdflib_format == "nt":
        text = graph.serialize(format="nt", encoding="utf-8")
        return b"".join(sorted(text.splitlines(keepends=True)))
    if rdflib_format == "json-ld":
        context = {prefix: str(ns) for prefix, ns in graph.namespaces()
                   if prefix in PREFIXES or prefix in {"rdf", "xsd", "owl", "rdfs"}}
        return graph.serialize(format="json-ld", context=context, encoding="utf-8")
    return graph.serialize(format=rdflib_format, encoding="utf-8")


def rdf_format_names() -> tuple[str, ...]:
    """Registry names of the formats `serialize` writes."""
    return tuple(_RDFLIB_FORMATS)


def timestamp(value: datetime) -> Literal:
    return Literal(value.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
                   datatype=XSD.dateTime)


# --------------------------------------------------------------------------- node graph


def node_graph(info: NodeInfo) -> Graph:
    """The entry-URL description: what the node is and where everything else is."""
    g = new_graph()
    base = info.base
    node = URIRef(base + "/")
    g.add((node, RDF.type, SCHEMA.DataCatalog))
    g.add((node, RDF.type, VOID.Dataset))
    for predicate in (SCHEMA.name, DCTERMS.title):
        g.add((node, predicate, Literal(info.name)))
    if info.description:
        for predicate in (SCHEMA.description, DCTERMS.description):
            g.add((node, predicate, Literal(info.description, lang="de")))
    g.add((node, SCHEMA.url, node))
    if info.license:
        for predicate in (SCHEMA.license, DCTERMS.license):
            g.add((node, predicate, URIRef(info.license)))
    if info.modified:
        g.add((node, DCTERMS.modified, timestamp(info.modified)))
        g.add((node, SCHEMA.dateModified, timestamp(info.modified)))
    add_publisher(g, info)
    g.add((node, DCTERMS.publisher, agent_iri(base)))
    g.add((node, SCHEMA.publisher, agent_iri(base)))
    _add_city(g, info, node)
    # The URI space: every entity IRI of this node starts with it (VoID §3.4).
    g.add((node, VOID.uriSpace, Literal(base + "/")))
    _add_vocabulary(g, info, node)
    _add_software(g, info, node)
    # Documents about the node: the DCAT-AP.de catalog and the VoID description.
    catalog = URIRef(info.url(CATALOG_PATH))
    g.add((node, RDFS.seeAlso, catalog))
    g.add((catalog, RDF.type, DCAT.Catalog))
    void_doc = URIRef(info.url(VOID_PATH))
    g.add((node, RDFS.seeAlso, void_doc))
    g.add((void_doc, RDF.type, VOID.DatasetDescription))
    # The LDES feed: an event stream (LDES 1.0) is a schema:DataFeed of the catalog.
    feed = URIRef(info.url(FEED_PATH))
    g.add((node, SCHEMA.dataset, feed))
    g.add((feed, RDF.type, LDES.EventStream))
    g.add((feed, RDF.type, SCHEMA.DataFeed))
    g.add((feed, DCTERMS.conformsTo, LDES_SPEC))
    # The SPARQL endpoint (VoID §6.3) as a service description (SPARQL 1.1 SD §3).
    sparql = URIRef(info.url(SPARQL_PATH))
    g.add((node, VOID.sparqlEndpoint, sparql))
    g.add((sparql, RDF.type, SD.Service))
    g.add((sparql, SD.endpoint, sparql))
    g.add((sparql, DCTERMS.conformsTo, SPARQL_PROTOCOL))
    for coll in info.collections:
        dataset = dataset_iri(base, coll.collection)
        g.add((node, SCHEMA.dataset, dataset))
        g.add((node, VOID.subset, dataset))
        g.add((dataset, RDF.type, SCHEMA.Dataset))
        g.add((dataset, SCHEMA.name, Literal(coll.collection)))
        g.add((dataset, VOID.entities, Literal(coll.entities)))
    _add_dumps(g, info, node)
    _add_peers(g, info, node)
    return g


def add_publisher(g: Graph, info: NodeInfo) -> URIRef:
    """The publisher (DCAT-AP.de: foaf:Agent with foaf:name), shared by every document."""
    agent = agent_iri(info.base)
    for cls in (FOAF.Agent, FOAF.Organization, SCHEMA.Organization):
        g.add((agent, RDF.type, cls))
    g.add((agent, FOAF.name, Literal(info.publisher)))
    g.add((agent, SCHEMA.name, Literal(info.publisher)))
    if info.publisher_url:
        g.add((agent, FOAF.homepage, URIRef(info.publisher_url)))
    if info.contact_email:
        g.add((agent, FOAF.mbox, URIRef("mailto:" + info.contact_email)))
    return agent


def _add_city(g: Graph, info: NodeInfo, node: URIRef) -> None:
    if not (info.city or info.municipality_key or info.wikidata):
        return
    city = city_iri(info.base)
    g.add((node, SCHEMA.spatialCoverage, city))
    g.add((node, DCTERMS.spatial, city))
    g.add((city, RDF.type, SCHEMA.City))
    g.add((city, RDF.type, DCTERMS.Location))
    if info.city:
        g.add((city, SCHEMA.name, Literal(info.city)))
    if info.municipality_key:
        # The official key (Amtlicher Gemeindeschlüssel) three ways: as Wikidata's
        # property, as a schema.org identifier, and as DCAT-AP.de's geocoding IRI.
        key = Literal(info.municipality_key)
        g.add((city, WDT.P439, key))
        ags = URIRef(f"{info.base}/#city-ags")
        g.add((city, SCHEMA.identifier, ags))
        g.add((ags, RDF.type, SCHEMA.PropertyValue))
        g.add((ags, SCHEMA.propertyID, Literal("AGS")))
        g.add((ags, SCHEMA.value, key))
        geocoding = URIRef(MUNICIPALITY_KEY_BASE + info.municipality_key)
        g.add((node, DCATDE.politicalGeocodingURI, geocoding))
        g.add((node, DCATDE.politicalGeocodingLevelURI, MUNICIPALITY_LEVEL))
    if info.wikidata:
        item = URIRef(WIKIDATA_ENTITY + info.wikidata)
        g.add((city, OWL.sameAs, item))
        g.add((city, SCHEMA.sameAs, item))


def _add_vocabulary(g: Graph, info: NodeInfo, node: URIRef) -> None:
    # Statements about the ontology itself belong to its publisher; the node only says
    # which ontology and which version of it (its owl:versionIRI) the data conform to.
    g.add((node, DCTERMS.conformsTo, ONTOLOGY))
    g.add((node, VOID.vocabulary, URIRef(NS_BASE + "#")))
    if info.vocab_version:
        g.add((node, DCTERMS.conformsTo, URIRef(f"{NS_BASE}/{info.vocab_version}")))
        g.add((node, SCHEMA.schemaVersion, Literal(info.vocab_version)))


def _add_software(g: Graph, info: NodeInfo, node: URIRef) -> None:
    # PROV: the node's documents are attributed to the software agent that serves them.
    software = URIRef(f"{info.base}/#software")
    g.add((node, PROV.wasAttributedTo, software))
    g.add((software, RDF.type, PROV.SoftwareAgent))
    g.add((software, RDF.type, SCHEMA.SoftwareApplication))
    g.add((software, SCHEMA.name, Literal("Engagement Atlas")))
    if info.software_version:
        g.add((software, SCHEMA.softwareVersion, Literal(info.software_version)))
    g.add((software, SCHEMA.applicationCategory, Literal(info.mode)))


def _add_dumps(g: Graph, info: NodeInfo, node: URIRef) -> None:
    """Dumps as schema:DataDownload; the "all" ones are also VoID data dumps."""
    for dump in info.dumps:
        url = URIRef(dump.url)
        owner = node if dump.collection == "all" else dataset_iri(info.base, dump.collection)
        g.add((owner, SCHEMA.distribution, url))
        if dump.collection == "all":
            g.add((node, VOID.dataDump, url))
        g.add((url, RDF.type, SCHEMA.DataDownload))
        g.add((url, SCHEMA.contentUrl, url))
        g.add((url, SCHEMA.encodingFormat, Literal(dump.media_type)))
        # The file itself is gzip-compressed (DCAT 3 §6.8 dcat:compressFormat).
        g.add((url, DCAT.compressFormat,
               URIRef("http://www.iana.org/assignments/media-types/application/gzip")))
        if dump.byte_size is not None:
            g.add((url, SCHEMA.contentSize, Literal(str(dump.byte_size))))
            g.add((url, DCAT.byteSize, Literal(dump.byte_size, datatype=XSD.nonNegativeInteger)))
        if dump.modified is not None:
            g.add((url, SCHEMA.dateModified, timestamp(dump.modified)))


def _add_peers(g: Graph, info: NodeInfo, node: URIRef) -> None:
    """Other nodes and indexes: related data catalogs (schema:additionalType node|index).

    Each peer is described under a fragment of this node (``{base}/#peer-{id}``)
    with the peer's entry URL as schema:url: a node states things only about
    IRIs under its own base, so a harvester's authority check keeps all of it.
    """
    for peer in info.peers:
        ref = URIRef(f"{info.base}/#peer-{peer.id}")
        g.add((node, DCTERMS.relation, ref))
        g.add((ref, RDF.type, SCHEMA.DataCatalog))
        g.add((ref, SCHEMA.url, URIRef(peer.url)))
        g.add((ref, SCHEMA.additionalType, Literal(peer.kind)))
        if peer.name:
            g.add((ref, SCHEMA.name, Literal(peer.name)))
