"""What an index says about itself: its entry description and its DCAT-AP.de catalog.

An index (``atlas index serve``) is harvestable like a node (issue 5 item 8): its entry
``{base}/index`` names the index resource ``{base}/index/`` with the facts a harvester's
registration reads (`harvesters.sources.register`):

- ``void:uriSpace "{base}/index/"`` — the index's own IRIs (its feed members); the entities
  it republishes keep their original IRIs, in their original sources' spaces;
- ``schema:dataset`` the LDES feed ``{base}/index/feed``; the software agent with
  ``schema:applicationCategory "index"``;
- one ``void:subset`` per aggregated source (``{base}/index/#source-{id}``): the original
  entry URL (``schema:url``), its URI space (``void:uriSpace``) and name; also linked with
  ``dct:relation`` as a node lists its peers, so ``--follow-peers`` finds the originals.

The catalog ``{base}/index/catalog`` is a ``dcat:Catalog`` with one ``dcat:Dataset`` per
aggregated source (its landing page and ``prov:wasDerivedFrom`` the original entry URL, its
URI space) and the feed and SPARQL endpoint as ``dcat:DataService``s, with the properties
DCAT-AP.de 3.0 makes mandatory (as exports/dcat.py does for a node). The entry makes
statements only about IRIs under ``{base}/index/``, so a harvester's authority check
(`harvesters.checks.split_by_authority`) keeps all of it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from rdflib import Graph, Literal, URIRef

from vocab.namespaces import DCAT, DCTERMS, FOAF, LDES, PROV, RDF, RDFS, SCHEMA, SKOS

from .dcat import DATA_THEMES, EU, IANA, LANGUAGES, PUBLIC, THEMES
from .node import (
    LDES_SPEC,
    SD,
    SPARQL_PROTOCOL,
    VOID,
    NodeInfo,
    add_publisher,
    agent_iri,
    new_graph,
    timestamp,
)

__all__ = ["INDEX_PATH", "IndexInfo", "OriginInfo", "index_catalog_graph", "index_graph",
           "source_fragment"]

INDEX_PATH = "/index"


@dataclass(frozen=True)
class OriginInfo:
    """A source the index aggregates (directly, or through a trusted index)."""

    entry_url: str
    uri_space: str
    name: str = ""
    entities: int | None = None  # live entities the index publishes for it


@dataclass(frozen=True)
class IndexInfo:
    """Everything the index's self-descriptions state."""

    node: NodeInfo  # base = {BASE_URL}/index: the publisher is {base}/index/#publisher
    origins: tuple[OriginInfo, ...] = ()
    modified: datetime | None = None

    @property
    def base(self) -> str:
        return self.node.base

    @property
    def resource(self) -> URIRef:
        return URIRef(self.base + "/")


def source_fragment(entry_url: str) -> str:
    """A readable, stable fragment for an origin: ``source-`` + its entry URL's host/path."""
    return "source-" + re.sub(r"[^A-Za-z0-9]+", "-", entry_url.split("://", 1)[-1]).strip("-")


def index_graph(info: IndexInfo) -> Graph:
    """The entry description (module docstring)."""
    g = new_graph()
    base, index = info.base, info.resource
    for cls in (SCHEMA.DataCatalog, VOID.Dataset):
        g.add((index, RDF.type, cls))
    for predicate in (SCHEMA.name, DCTERMS.title):
        g.add((index, predicate, Literal(info.node.name)))
    if info.node.description:
        g.add((index, DCTERMS.description, Literal(info.node.description, lang="de")))
    g.add((index, SCHEMA.url, index))
    g.add((index, VOID.uriSpace, Literal(base + "/")))
    if info.node.license:
        for predicate in (SCHEMA.license, DCTERMS.license):
            g.add((index, predicate, URIRef(info.node.license)))
    if info.modified:
        g.add((index, DCTERMS.modified, timestamp(info.modified)))
    add_publisher(g, info.node)
    g.add((index, DCTERMS.publisher, agent_iri(base)))
    g.add((index, FOAF.page, URIRef(base + "/search")))
    catalog = URIRef(base + "/catalog")
    g.add((index, RDFS.seeAlso, catalog))
    g.add((catalog, RDF.type, DCAT.Catalog))
    feed = URIRef(base + "/feed")
    g.add((index, SCHEMA.dataset, feed))
    for cls in (LDES.EventStream, SCHEMA.DataFeed):
        g.add((feed, RDF.type, cls))
    g.add((feed, DCTERMS.conformsTo, LDES_SPEC))
    sparql = URIRef(base + "/sparql")
    g.add((index, VOID.sparqlEndpoint, sparql))
    g.add((sparql, RDF.type, SD.Service))
    g.add((sparql, SD.endpoint, sparql))
    g.add((sparql, DCTERMS.conformsTo, SPARQL_PROTOCOL))
    software = URIRef(base + "/#software")
    g.add((index, PROV.wasAttributedTo, software))
    g.add((software, RDF.type, PROV.SoftwareAgent))
    g.add((software, SCHEMA.name, Literal("Engagement Atlas")))
    if info.node.software_version:
        g.add((software, SCHEMA.softwareVersion, Literal(info.node.software_version)))
    g.add((software, SCHEMA.applicationCategory, Literal("index")))
    for origin in info.origins:
        ref = URIRef(f"{base}/#{source_fragment(origin.entry_url)}")
        g.add((index, VOID.subset, ref))
        g.add((index, DCTERMS.relation, ref))
        for cls in (VOID.Dataset, SCHEMA.DataCatalog):
            g.add((ref, RDF.type, cls))
        g.add((ref, SCHEMA.url, URIRef(origin.entry_url)))
        g.add((ref, VOID.uriSpace, Literal(origin.uri_space)))
        g.add((ref, PROV.wasDerivedFrom, URIRef(origin.entry_url)))
        if origin.name:
            g.add((ref, SCHEMA.name, Literal(origin.name)))
        if origin.entities is not None:
            g.add((ref, VOID.entities, Literal(origin.entities)))
    return g


def index_catalog_graph(info: IndexInfo) -> Graph:
    """The DCAT-AP.de catalog (module docstring)."""
    g = new_graph()
    base, node = info.base, info.node
    catalog = URIRef(base + "/catalog")
    publisher = add_publisher(g, node)
    g.add((catalog, RDF.type, DCAT.Catalog))
    for lang in ("de", "en"):
        g.add((catalog, DCTERMS.title, Literal(node.name, lang=lang)))
    g.add((catalog, DCTERMS.description, Literal(
        node.description or "Index über Engagement-Atlas-Knoten: die geernteten Daten "
        "mehrerer Quellen, jede mit ihrer Herkunft.", lang="de")))
    g.add((catalog, DCTERMS.description, Literal(
        "Index over Engagement Atlas nodes: the harvested data of several sources, each "
        "with its provenance.", lang="en")))
    g.add((catalog, DCTERMS.publisher, publisher))
    _license(g, catalog, node)
    if info.modified:
        g.add((catalog, DCTERMS.modified, timestamp(info.modified)))
    for language in LANGUAGES.values():
        g.add((catalog, DCTERMS.language, language))
        g.add((language, RDF.type, DCTERMS.LinguisticSystem))
    homepage = info.resource
    g.add((catalog, FOAF.homepage, homepage))
    g.add((homepage, RDF.type, FOAF.Document))
    g.add((catalog, DCAT.themeTaxonomy, DATA_THEMES))
    g.add((DATA_THEMES, RDF.type, SKOS.ConceptScheme))
    g.add((DATA_THEMES, DCTERMS.title, Literal("Data Theme", lang="en")))
    datasets = [_dataset(g, info, origin) for origin in info.origins]
    for dataset in datasets:
        g.add((catalog, DCAT.dataset, dataset))
    for service in _services(g, info, datasets):
        g.add((catalog, DCAT.service, service))
    return g


def _dataset(g: Graph, info: IndexInfo, origin: OriginInfo) -> URIRef:
    base, node = info.base, info.node
    dataset = URIRef(f"{base}/catalog#{source_fragment(origin.entry_url)}")
    name = origin.name or origin.entry_url
    g.add((dataset, RDF.type, DCAT.Dataset))
    g.add((dataset, DCTERMS.title, Literal(name, lang="de")))
    g.add((dataset, DCTERMS.description, Literal(
        f"Daten von {name} ({origin.entry_url}), geerntet von {node.name}.", lang="de")))
    g.add((dataset, DCTERMS.description, Literal(
        f"Data of {name} ({origin.entry_url}), harvested by {node.name}.", lang="en")))
    g.add((dataset, DCTERMS.identifier, Literal(str(dataset))))
    g.add((dataset, DCTERMS.publisher, agent_iri(base)))
    g.add((dataset, PROV.wasDerivedFrom, URIRef(origin.entry_url)))
    g.add((dataset, DCAT.landingPage, URIRef(origin.entry_url)))
    g.add((URIRef(origin.entry_url), RDF.type, FOAF.Document))
    g.add((dataset, VOID.uriSpace, Literal(origin.uri_space)))
    if origin.entities is not None:
        g.add((dataset, VOID.entities, Literal(origin.entities)))
    theme = URIRef(f"{EU}data-theme/SOCI")
    g.add((dataset, DCAT.theme, theme))
    g.add((theme, RDF.type, SKOS.Concept))
    g.add((theme, SKOS.inScheme, DATA_THEMES))
    for lang, label in THEMES["SOCI"].items():
        g.add((theme, SKOS.prefLabel, Literal(label, lang=lang)))
    g.add((dataset, DCTERMS.accessRights, PUBLIC))
    g.add((PUBLIC, RDF.type, DCTERMS.RightsStatement))
    # The index's feed carries this source's entities (among the others').
    dist = URIRef(f"{dataset}-feed")
    g.add((dataset, DCAT.distribution, dist))
    g.add((dist, RDF.type, DCAT.Distribution))
    g.add((dist, DCTERMS.title, Literal(f"{name}: Änderungsfeed des Index (LDES)", lang="de")))
    g.add((dist, DCTERMS.title, Literal(f"{name}: the index's change feed (LDES)", lang="en")))
    g.add((dist, DCAT.accessURL, URIRef(base + "/feed")))
    fmt = URIRef(f"{EU}file-type/RDF_TURTLE")
    g.add((dist, DCTERMS["format"], fmt))
    g.add((fmt, RDF.type, DCTERMS.MediaTypeOrExtent))
    media = URIRef(IANA + "text/turtle")
    g.add((dist, DCAT.mediaType, media))
    g.add((media, RDF.type, DCTERMS.MediaType))
    g.add((dist, DCTERMS.conformsTo, LDES_SPEC))
    _license(g, dist, node)
    return dataset


def _services(g: Graph, info: IndexInfo, datasets: list[URIRef]) -> list[URIRef]:
    base, services = info.base, []
    for key, path, standard, title in (
            ("feed", "/feed", LDES_SPEC, ("Änderungsfeed des Index (LDES)",
                                          "Change feed of the index (LDES)")),
            ("sparql", "/sparql", SPARQL_PROTOCOL, ("SPARQL-Endpunkt des Index",
                                                   "SPARQL endpoint of the index"))):
        service = URIRef(f"{base}/catalog#{key}")
        g.add((service, RDF.type, DCAT.DataService))
        g.add((service, DCTERMS.title, Literal(title[0], lang="de")))
        g.add((service, DCTERMS.title, Literal(title[1], lang="en")))
        g.add((service, DCAT.endpointURL, URIRef(base + path)))
        g.add((service, DCTERMS.conformsTo, standard))
        g.add((standard, RDF.type, DCTERMS.Standard))
        for dataset in datasets:
            g.add((service, DCAT.servesDataset, dataset))
        g.add((service, DCTERMS.publisher, agent_iri(base)))
        _license(g, service, info.node)
        g.add((service, DCTERMS.accessRights, PUBLIC))
        services.append(service)
    return services


def _license(g: Graph, subject: URIRef, node: NodeInfo) -> None:
    if node.license:
        licence = URIRef(node.license)
        g.add((subject, DCTERMS.license, licence))
        g.add((licence, RDF.type, DCTERMS.LicenseDocument))
