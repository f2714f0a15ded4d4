"""JSON-LD (W3C JSON-LD 1.1), compacted with the Atlas context.

Documents come from `vocab.mapping.to_jsonld` and are dumped with orjson: the
mapping builds the compacted form directly because rdflib's compaction is
about 40x slower (PITFALLS). ``@context`` is always the context URL, never
inlined; harvesters resolve it from their bundled copy.

A collection page is ``{"@context": ..., "@graph": [...]}``: the statements sit
in the *default* graph, like those of the Turtle page. The page URL is not
written as a top-level ``id``: next to ``@graph`` that would turn the page into
a named graph (JSON-LD 1.1 §4.9) and ``Graph().parse`` would read no triples
at all. The page URL belongs in the response headers (Content-Location, Link).
"""

from __future__ import annotations

import orjson

from vocab.mapping import CONTEXT_URL, to_jsonld

from .registry import Format, Payload, register

__all__ = ["FORMAT", "render"]


def render(payload: Payload) -> bytes:
    if payload.single:
        (record,) = payload.records
        return orjson.dumps(to_jsonld(payload.kind, record, payload.base))
    graph = []
    for record in payload.records:
        doc = to_jsonld(payload.kind, record, payload.base)
        del doc["@context"]
        graph.append(doc)
    return orjson.dumps({"@context": CONTEXT_URL, "@graph": graph})


FORMAT = Format(
    name="jsonld",
    media_types=("application/ld+json", "application/json"),
    extensions=("jsonld", "json"),
    render=render,
    rdf=True,
)
register(FORMAT)
