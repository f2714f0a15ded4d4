"""RDF formats: each parses back, and all of them state exactly what the mapping states."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
import rdflib
from rdflib import Graph
from rdflib.compare import isomorphic, to_isomorphic

from exports import Payload, formats, get
from tests.rdf_helpers import parse_output
from vocab.mapping import CONTEXT_URL, entity_uri, from_graph, normalize, to_graph

BASE = "http://127.0.0.1:5001"  # the records' base (conftest)
RDF_FORMATS = ["jsonld", "turtle", "ntriples", "nquads", "rdfxml"]


@pytest.fixture(autouse=True)
def _literals_as_written(monkeypatch):
    """Compare statements as written: rdflib's parsers would rewrite "Z" as "+00:00",
    while the mapping keeps its canonical lexical forms (normalize=False)."""
    monkeypatch.setattr(rdflib, "NORMALIZE_LITERALS", False)


def expected_graph(kind: str, records: list[dict]) -> Graph:
    graph = Graph()
    for record in records:
        to_graph(kind, record, BASE, graph=graph)
    return graph


def test_the_rdf_formats_are_flagged():
    assert sorted(f.name for f in formats() if f.rdf) == sorted(RDF_FORMATS)


@pytest.mark.parametrize("name", RDF_FORMATS)
def test_single_entity_equals_the_mapping(name, actor):
    body = get(name).render(Payload("actor", [actor], BASE, single=True))
    graph = parse_output(name, body)
    assert len(graph) > 50
    assert isomorphic(graph, expected_graph("actor", [actor]))


@pytest.mark.parametrize("name", RDF_FORMATS)
def test_collection_page_equals_the_mapping(name, actors, offer):
    page = Payload("actor", actors, BASE, single=False, page_url=f"{BASE}/actors?page=1")
    graph = parse_output(name, get(name).render(page))
    assert isomorphic(graph, expected_graph("actor", actors))
    # lossless: the records come back from the export
    assert from_graph(graph, "actor", BASE) == [normalize("actor", r) for r in actors]

    offers = Payload("offer", [offer], BASE, single=False)
    graph = parse_output(name, get(name).render(offers))
    assert isomorphic(graph, expected_graph("offer", [offer]))


def test_all_rdf_formats_give_the_same_graph(actors):
    page = Payload("actor", actors, BASE, single=False, page_url=f"{BASE}/actors")
    graphs = [parse_output(n, get(n).render(page)) for n in RDF_FORMATS]
    canonical = to_isomorphic(graphs[0])
    assert all(to_isomorphic(g) == canonical for g in graphs[1:])


def test_empty_collection_page():
    page = Payload("actor", [], BASE, single=False, page_url=f"{BASE}/actors")
    for name in RDF_FORMATS:
        assert len(parse_output(name, get(name).render(page))) == 0


def test_jsonld_single_document_keeps_the_context_url(actor):
    doc = orjson.loads(get("jsonld").render(Payload("actor", [actor], BASE, single=True)))
    assert doc["@context"] == CONTEXT_URL
    assert doc["id"] == str(entity_uri(BASE, "actor", actor["id"]))
    assert doc["name"] == actor["name"]
    assert doc["geo"]["latitude"] == "51.0781"


def test_jsonld_collection_is_one_context_and_a_default_graph(actors):
    page = Payload("actor", actors, BASE, single=False, page_url=f"{BASE}/actors?page=2")
    doc = orjson.loads(get("jsonld").render(page))
    # a top-level "id" next to "@graph" would make the page a named graph
    assert set(doc) == {"@context", "@graph"}
    assert doc["@context"] == CONTEXT_URL
    assert [d["id"] for d in doc["@graph"]] == [
        str(entity_uri(BASE, "actor", r["id"])) for r in actors]
    assert all("@context" not in d for d in doc["@graph"])


def test_turtle_uses_the_atlas_prefixes(actor):
    body = get("turtle").render(Payload("actor", [actor], BASE, single=True)).decode()
    for prefix in ("ea", "schema", "dct", "xsd"):
        assert f"@prefix {prefix}: " in body
    assert "ea:Actor" in body and "schema:Organization" in body


def test_ntriples_lines_are_sorted(actors):
    body = get("ntriples").render(Payload("actor", actors, BASE, single=False))
    lines = body.splitlines(keepends=True)
    assert lines == sorted(lines) and all(line.endswith(b" .\n") for line in lines)


_DETERMINISM = """
import sys, hashlib, json, exports
page = exports.Payload("actor", json.load(sys.stdin), sys.argv[1], single=False)
for name in ("ntriples", "turtle", "jsonld"):
    print(name, hashlib.sha256(exports.get(name).render(page)).hexdigest())
"""


def test_line_based_and_turtle_output_do_not_depend_on_the_hash_seed(actors):
    """Workers with different hash seeds must send the same bytes (stable ETags)."""
    repo = Path(__file__).resolve().parents[2]
    outputs = set()
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(repo)}
        result = subprocess.run(
            [sys.executable, "-c", _DETERMINISM, BASE], input=orjson.dumps(actors).decode(),
            env=env, capture_output=True, text=True, check=True, cwd=repo)
        outputs.add(result.stdout)
    assert len(outputs) == 1
