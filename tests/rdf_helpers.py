"""Reading our own RDF output back in tests, the same way everywhere."""

from __future__ import annotations

import warnings
from collections.abc import Iterable

import orjson
from rdflib import Graph

from vocab import to_graph
from vocab.context import inline_contexts

# exports format name -> rdflib parser name
RDFLIB_FORMAT = {"turtle": "turtle", "ntriples": "nt", "nquads": "nquads", "rdfxml": "xml"}


def parse_output(format_name: str, body: bytes) -> Graph:
    """A graph from one of our RDF serializations; JSON-LD with the bundled context
    inlined (never fetched)."""
    with warnings.catch_warnings():
        # rdflib 7.6's own JSON-LD and N-Quads parsers use its deprecated ConjunctiveGraph
        # and Dataset.default_context internally.
        warnings.filterwarnings("ignore", "ConjunctiveGraph is deprecated", DeprecationWarning)
        warnings.filterwarnings("ignore", "Dataset.default_context is deprecated",
                                DeprecationWarning)
        if format_name == "jsonld":
            doc = inline_contexts(orjson.loads(body))
            return Graph().parse(data=orjson.dumps(doc), format="json-ld")
        return Graph().parse(data=body, format=RDFLIB_FORMAT[format_name])


def graph_of(pairs: Iterable[tuple[str, dict]], base: str) -> Graph:
    """The union of the mapping's graphs of (kind, record) pairs."""
    graph = Graph()
    for kind, record in pairs:
        to_graph(kind, record, base, graph=graph)
    return graph
