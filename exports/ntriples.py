"""N-Triples (W3C RDF 1.1 N-Triples), the line-based form machines bulk-load.

rdflib writes triples in set order, which changes with every process's hash
seed; sorting the lines makes the same records give the same bytes in every
worker (stable ETags, diffable dumps). Every triple is one line, so sorting
lines is safe.
"""

from __future__ import annotations

from .graph import payload_graph
from .registry import Format, Payload, register

__all__ = ["FORMAT", "render"]


def render(payload: Payload) -> bytes:
    text = payload_graph(payload).serialize(format="nt", encoding="utf-8")
    return b"".join(sorted(text.splitlines(keepends=True)))


FORMAT = Format(
    name="ntriples",
    media_types=("application/n-triples",),
    extensions=("nt",),
    render=render,
    rdf=True,
)
register(FORMAT)
