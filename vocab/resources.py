"""Package data of the vocabulary, read with importlib.resources (never the network)."""

from __future__ import annotations

from functools import cache
from importlib.resources import files

from rdflib import Graph

__all__ = ["data_path", "ontology", "read_text", "schemes", "shapes"]

ONTOLOGY_FILE = "ontology.ttl"
SCHEMES_FILE = "schemes.ttl"
SHAPES_FILE = "shapes.ttl"


def data_path(name: str):
    """A Traversable for one file under vocab/data."""
    return files(__package__).joinpath("data", name)


def read_text(name: str) -> str:
    return data_path(name).read_text(encoding="utf-8")


def _parse(name: str) -> Graph:
    return Graph().parse(data=read_text(name), format="turtle")


@cache
def ontology() -> Graph:
    """The OWL ontology (a cached graph: callers must not modify it)."""
    return _parse(ONTOLOGY_FILE)


@cache
def schemes() -> Graph:
    """The SKOS concept schemes (cached, read-only by convention)."""
    return _parse(SCHEMES_FILE)


@cache
def shapes() -> Graph:
    """The SHACL shapes (cached, read-only by convention)."""
    return _parse(SHAPES_FILE)
