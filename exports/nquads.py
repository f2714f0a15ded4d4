"""N-Quads (W3C RDF 1.1 N-Quads): the line format for datasets, default graph only.

Entity documents and feed pages hold one graph, so their N-Quads are their
N-Triples lines (RDF 1.1 N-Quads §2: a statement without a graph label is in
the default graph). Registered so that content negotiation can offer it:
LDES clients commonly ask for ``application/n-quads`` (LDES Server Primer §2).
"""

from __future__ import annotations

from . import ntriples
from .registry import Format, Payload, register

__all__ = ["FORMAT", "render"]


def render(payload: Payload) -> bytes:
    return ntriples.render(payload)


FORMAT = Format(
    name="nquads",
    media_types=("application/n-quads",),
    extensions=("nq",),
    render=render,
    rdf=True,
)
register(FORMAT)
