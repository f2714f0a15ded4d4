"""The fast triple writers read back, with rdflib, as exactly the triples written."""

from __future__ import annotations

import warnings

import orjson
import pytest
import rdflib
from rdflib import BNode, Graph, Literal, URIRef
from rdflib.compare import isomorphic
from rdflib.namespace import RDF, XSD

from exports.triples import to_jsonld, to_ntriples, to_turtle, write

EX = "http://example.org/ns#"
PREFIXES = {"ex": EX, "xsd": str(XSD), "rdf": str(RDF)}
S = URIRef("http://example.org/things/1")
TRIPLES = [
    (S, RDF.type, URIRef(EX + "Thing")),
    (S, RDF.type, URIRef("http://other.example/Type")),
    (S, URIRef(EX + "name"), Literal("Straße \"quoted\" \\ back\nline\ttab\r\x01end", lang="de")),
    (S, URIRef(EX + "name"), Literal("plain")),
    (S, URIRef(EX + "count"), Literal("7", datatype=XSD.integer)),
    (S, URIRef(EX + "when"), Literal("2026-01-01T00:00:00.5Z", datatype=XSD.dateTime)),
    (S, URIRef(EX + "odd"), Literal("x", datatype=URIRef("http://example.org/dt#type-2"))),
    (S, URIRef(EX + "9starts-with-digit"), URIRef("http://example.org/a%20b")),
    (S, URIRef(EX + "link"), URIRef(EX + "Other")),
    (S, URIRef(EX + "blank"), BNode("b1")),
    (BNode("b1"), URIRef(EX + "name"), Literal("in a blank node", lang="en-GB")),
    (URIRef(EX + "Other"), URIRef("http://example.org/nons"), Literal("")),
]


@pytest.fixture(autouse=True)
def _literals_as_written(monkeypatch):
    monkeypatch.setattr(rdflib, "NORMALIZE_LITERALS", False)


def expected() -> Graph:
    graph = Graph()
    for triple in TRIPLES:
        graph.add(triple)
    return graph


def read(body: bytes, rdflib_format: str) -> Graph:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "ConjunctiveGraph is deprecated", DeprecationWarning)
        warnings.filterwarnings("ignore", "Dataset.default_context is deprecated",
                                DeprecationWarning)
        return Graph().parse(data=body, format=rdflib_format)


@pytest.mark.parametrize(("body", "rdflib_format"), [
    (lambda: to_ntriples(TRIPLES), "nt"),
    (lambda: write(TRIPLES, "nquads", PREFIXES), "nquads"),
    (lambda: to_turtle(TRIPLES, PREFIXES), "turtle"),
    (lambda: to_jsonld(TRIPLES, PREFIXES), "json-ld"),
], ids=["ntriples", "nquads", "turtle", "jsonld"])
def test_writers_round_trip(body, rdflib_format):
    assert isomorphic(read(body(), rdflib_format), expected())


def test_output_keeps_the_given_order_and_is_line_based():
    lines = to_ntriples(TRIPLES).decode().splitlines()
    assert len(lines) == len(TRIPLES)
    assert lines[0] == f"<{S}> <{RDF.type}> <{EX}Thing> ."
    assert to_ntriples(TRIPLES) == to_ntriples(list(TRIPLES))


def test_turtle_uses_the_prefixes_where_names_allow():
    text = to_turtle(TRIPLES, PREFIXES).decode()
    assert "@prefix ex: <http://example.org/ns#> ." in text
    assert " a ex:Thing, <http://other.example/Type> ;" in text
    assert '"7"^^xsd:integer' in text
    assert f"<{EX}9starts-with-digit>" in text  # not a safe local name: written in full


def test_jsonld_inlines_its_prefixes():
    doc = orjson.loads(to_jsonld(TRIPLES, PREFIXES))
    assert doc["@context"] == PREFIXES
    node = doc["@graph"][0]
    assert node["@type"] == ["ex:Thing", "http://other.example/Type"]
    assert {"@value": "7", "@type": "xsd:integer"} in node["ex:count"]


def test_characters_an_iri_must_not_hold_are_escaped():
    odd = URIRef("http://example.org/a b{c}|d^e`f\\g")
    line = to_ntriples([(S, URIRef(EX + "p"), odd)]).decode()
    assert "<http://example.org/a\\u0020b\\u007Bc\\u007D\\u007Cd\\u005Ee\\u0060f\\u005Cg>" in line


def test_unknown_format():
    with pytest.raises(ValueError, match="rdfxml"):
        write(TRIPLES, "rdfxml", PREFIXES)
