"""The one rdflib graph behind every RDF serialization of a payload.

All RDF formats start from `vocab.mapping.to_graph`, so Turtle, N-Triples and
RDF/XML of the same records are the same statements by construction.
"""

from __future__ import annotations

from rdflib import Graph

from vocab.mapping import to_graph
from vocab.namespaces import DCTERMS, EA, SCHEMA, XSD

from .registry import Payload

__all__ = ["payload_graph"]

PREFIXES = {"ea": EA._NS, "schema": SCHEMA, "dct": DCTERMS, "xsd": XSD}


def payload_graph(payload: Payload) -> Graph:
    """Every record of the payload in one graph, with the Atlas prefixes bound."""
    # "core" binds only rdf/rdfs/owl/xsd/xml; rdflib's default would add ~30 more.
    graph = Graph(bind_namespaces="core")
    for prefix, namespace in PREFIXES.items():
        graph.bind(prefix, namespace, replace=True)
    for record in payload.records:
        to_graph(payload.kind, record, payload.base, graph=graph)
    return graph
