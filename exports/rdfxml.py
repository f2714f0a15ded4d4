"""RDF/XML (W3C RDF 1.1 XML Syntax) for older tools that read nothing else.

Flat ``rdf:Description`` blocks (rdflib's "xml" serializer), not the nested
"pretty-xml" form: every RDF/XML reader understands the flat one. rdflib emits
subjects in set order, so the bytes (not the statements) may differ between
processes.
"""

from __future__ import annotations

from .graph import payload_graph
from .registry import Format, Payload, register

__all__ = ["FORMAT", "render"]


def render(payload: Payload) -> bytes:
    return payload_graph(payload).serialize(format="xml", encoding="utf-8")


FORMAT = Format(
    name="rdfxml",
    media_types=("application/rdf+xml",),
    extensions=("rdf",),
    render=render,
    rdf=True,
)
register(FORMAT)
