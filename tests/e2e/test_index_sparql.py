"""The index's SPARQL endpoint and entity pages over real processes (issue 5 items 8 and 9).

Two real nodes (``python -m service.cli serve``) describe the same association (same
Wikidata item); an index harvests them with ``python -m service.cli harvest run`` and is
served by gunicorn in INDEX_MODE (2 workers of 2 threads, SPARQL_TIMEOUT=2). Over loopback
HTTP: SPARQL answers over the union of entity, provenance and same-as graphs; the same-actor
candidate is on both entity pages; SERVICE never reaches a loopback canary; a cross-join
bomb is killed (its process gone) while other queries are answered; and after a delete on a
node and the next harvest run, the actor and its candidate are gone from SPARQL and pages.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import requests

from .conftest import alive, free_port_block, wait_until_serving
from .index_support import Index, Node, launch, prepare
from .test_sparql_security import Canary, _query_processes

JSON = "application/sparql-results+json"
TIMEOUT = 2
_VALUES = " ".join(str(i) for i in range(60))
# A cross join of six VALUES blocks, counted: 46 billion rows, little memory, endless time.
BOMB = ("SELECT (COUNT(*) AS ?n) { " + " ".join(f"VALUES ?{v} {{ {_VALUES} }}" for v in "abcdef")
        + " }")
SAME = "http://www.w3.org/2002/07/owl#sameAs"
ENTITIES = """PREFIX idx: <https://w3id.org/engagement-atlas/ns/index#>
PREFIX schema: <https://schema.org/>
SELECT ?source ?entity ?name WHERE {
  ?sg idx:sourceId ?source . ?entity idx:inSource ?sg .
  GRAPH ?entity { ?entity schema:name ?name }
} ORDER BY ?source ?name"""


def seed(names: dict[str, str]):
    def run(session) -> None:
        from service import store
        from vocab import load_record

        for name, qid in names.items():
            record = {"name": {"de": name}, "actorTypes": ["verein"]}
            if qid:
                record["wikidata"] = qid
            store.create(session, "actor", load_record("actor", record))
    return run


@dataclass
class Served:
    base: str
    pid: int
    index: Index
    nodes: list[Node]


@pytest.fixture(scope="module")
def canary() -> Iterator[Canary]:
    c = Canary()
    yield c
    c.server.shutdown()
    c.server.server_close()


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> Iterator[Served]:
    tmp = tmp_path_factory.mktemp("index-sparql")
    port = free_port_block(3)
    nodes = [prepare("halle", f"http://127.0.0.1:{port}", tmp / "halle",
                     {"NODE_NAME": "Halle", "FEED_POLLING_INTERVAL": 1},
                     seed({"Tafel Halle": "Q4242", "Chor Halle": ""})),
             prepare("land", f"http://127.0.0.1:{port + 1}", tmp / "land",
                     {"NODE_NAME": "Land", "FEED_POLLING_INTERVAL": 1},
                     seed({"Tafel Halle e.V.": "Q4242", "Sportbund": ""}))]
    proc = None
    try:
        launch(nodes)
        index = Index(tmp / "index")
        index.add(nodes)
        index.run()
        base = f"http://127.0.0.1:{port + 2}"
        env = {**index.env, "ATLAS_INDEX_MODE": "true", "ATLAS_BASE_URL": base,
               "ATLAS_SPARQL_TIMEOUT": str(TIMEOUT)}
        with (tmp / "index.log").open("wb") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "gunicorn", "--workers", "2", "--threads", "2", "--bind",
                 f"127.0.0.1:{port + 2}", "--chdir", str(tmp), "service:create_app()"],
                env=env, stdout=log, stderr=subprocess.STDOUT)
        wait_until_serving(proc, base + "/index/sparql", what="the index", log=tmp / "index.log")
        yield Served(base, proc.pid, index, nodes)
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(30)
        for node in nodes:
            node.kill()


def sparql(served: Served, text: str, timeout: float = 60) -> requests.Response:
    return requests.post(f"{served.base}/index/sparql", data={"query": text},
                         headers={"Accept": JSON}, timeout=timeout)


def rows(response: requests.Response) -> list[dict[str, str]]:
    assert response.status_code == 200, response.text
    return [{k: v["value"] for k, v in b.items()} for b in response.json()["results"]["bindings"]]


def entity_page(served: Served, iri: str) -> requests.Response:
    return requests.get(f"{served.base}/index/entity", params={"iri": iri, "format": "json"},
                        timeout=30)


def test_queries_candidates_refusals_bomb_and_a_delete(served, canary):
    halle, land = served.nodes
    found = rows(sparql(served, ENTITIES))
    assert sorted(r["name"] for r in found) == ["Chor Halle", "Sportbund", "Tafel Halle",
                                                "Tafel Halle e.V."]
    by_name = {r["name"]: r["entity"] for r in found}
    tafel_h, tafel_l = by_name["Tafel Halle"], by_name["Tafel Halle e.V."]
    assert tafel_h.startswith(halle.base) and tafel_l.startswith(land.base)

    # the same-actor candidate: in the index's own graph, on both entity pages
    pair = rows(sparql(served, f"SELECT ?a ?b WHERE {{ ?a <{SAME}> ?b }}"))
    assert pair == [{"a": min(tafel_h, tafel_l), "b": max(tafel_h, tafel_l)}]
    for mine, other in ((tafel_h, tafel_l), (tafel_l, tafel_h)):
        page = entity_page(served, mine).json()
        assert [(c["entity"], c["relation"], c["reason"]) for c in page["same_as"]] == [
            (other, "sameAs", "wikidata")]

    # SERVICE never leaves the index; updates are refused
    for text in (f"SELECT * {{ SERVICE <{canary.url}> {{ ?s ?p ?o }} }}",
                 f"ASK {{ OPTIONAL {{ SERVICE SILENT <{canary.url}> {{ ?s ?p ?o }} }} }}"):
        assert sparql(served, text).status_code == 403
    assert requests.post(f"{served.base}/index/sparql", data={"update": f"LOAD <{canary.url}>"},
                         timeout=30).status_code == 403
    assert canary.hits == []

    # a bomb is killed at SPARQL_TIMEOUT while another query is answered
    results: dict[str, requests.Response] = {}
    bomb = threading.Thread(target=lambda: results.update(bomb=sparql(served, BOMB)))
    bomb.start()
    deadline = time.monotonic() + 30
    while not _query_processes(served.pid):
        assert time.monotonic() < deadline and bomb.is_alive(), "no query process seen"
        time.sleep(0.05)
    running = _query_processes(served.pid)
    assert rows(sparql(served, ENTITIES))  # answered meanwhile
    bomb.join(60)
    assert results["bomb"].status_code == 503 and "SPARQL_TIMEOUT" in results["bomb"].text
    assert int(results["bomb"].headers["Retry-After"]) >= TIMEOUT
    deadline = time.monotonic() + 10
    while any(alive(pid) for pid in running):
        assert time.monotonic() < deadline, "the query process outlived its deadline"
        time.sleep(0.05)

    # a delete on a node: gone from SPARQL, pages and candidates after the next run
    land.delete(tafel_l)
    served.index.run()
    names = sorted(r["name"] for r in rows(sparql(served, ENTITIES)))
    assert names == ["Chor Halle", "Sportbund", "Tafel Halle"]
    assert not rows(sparql(served, f"SELECT ?p WHERE {{ <{tafel_l}> ?p ?o }}"))
    assert rows(sparql(served, f"SELECT ?a WHERE {{ ?a <{SAME}> ?b }}")) == []
    assert entity_page(served, tafel_l).status_code == 404
    assert entity_page(served, tafel_h).json()["same_as"] == []


def test_the_description_and_form_over_http(served):
    turtle = requests.get(f"{served.base}/index/sparql", headers={"Accept": "text/turtle"},
                          timeout=30)
    assert turtle.status_code == 200 and "UnionDefaultGraph" in turtle.text
    assert f"<{served.base}/index/sparql>" in turtle.text
    form = requests.get(f"{served.base}/index/sparql", headers={"Accept": "text/html"},
                        timeout=30)
    assert form.status_code == 200 and "Kandidaten für dieselbe Akteur*in" in form.text
