"""Turtle (W3C RDF 1.1 Turtle) via rdflib; its serializer sorts, so output is stable."""

from __future__ import annotations

from .graph import payload_graph
from .registry import Format, Payload, register

__all__ = ["FORMAT", "render"]


def render(payload: Payload) -> bytes:
    return payload_graph(payload).serialize(format="turtle", encoding="utf-8")


FORMAT = Format(
    name="turtle",
    media_types=("text/turtle",),
    extensions=("ttl",),
    render=render,
    rdf=True,
)
register(FORMAT)
