"""The W3C SPARQL 1.1 Protocol tests, run from their manifest against a real server.

Every entry of the manifest (a copy next to this file) becomes a test: its HTTP
requests are sent as written — method, path, headers, body bytes in the stated
encoding — with http.client, which adds no Content-Type of its own (PITFALLS), to
gunicorn serving the node. The graphs the tests name (``ut:graphData``) are made
as the suite describes them: each holds the one triple ``<graph> a foaf:Document``.

The endpoint is read-only by design, so the update tests that expect success are
checked to be refused instead (`REFUSED_UPDATES`); all others must pass.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from pyoxigraph import NamedNode, Quad, Store
from rdflib import RDF, RDFS, Graph, Namespace
from rdflib.collection import Collection

from service import create_app, db, locks, sparql_store
from service.sparql_results import GRAPH_FORMATS, RESULTS_FORMATS

MANIFEST = Path(__file__).with_name("sparql11_protocol_manifest.ttl")
ROOT = Path(__file__).resolve().parents[2]
MF = Namespace("http://www.w3.org/2001/sw/DataAccess/tests/test-manifest#")
HT = Namespace("http://www.w3.org/2011/http#")
CNT = Namespace("http://www.w3.org/2011/content#")
HTS = Namespace("http://www.w3.org/2011/http-statusCodes#")
UT = Namespace("http://www.w3.org/2009/sparql/tests/test-update#")
FOAF_DOCUMENT = "http://xmlns.com/foaf/0.1/Document"

# Update tests expecting success: a read-only endpoint answers 403 instead.
REFUSED_UPDATES = {
    "update_dataset_default_graph", "update_dataset_default_graphs",
    "update_dataset_named_graphs", "update_dataset_full", "update_post_form",
    "update_post_direct", "update_base_uri",
}


@dataclass(frozen=True)
class Step:
    method: str
    path: str
    body: bytes | None
    headers: dict[str, str]
    statuses: frozenset[int]        # acceptable status classes: 2, 3, 4
    boolean: bool | None
    result_format: str | None       # "boolean", "tabular" or "RDF"


@dataclass(frozen=True)
class Case:
    name: str
    steps: tuple[Step, ...]
    graphs: tuple[str, ...]

    def __str__(self) -> str:
        return self.name


def load_manifest(path: Path = MANIFEST) -> list[Case]:
    g = Graph().parse(path, format="turtle")
    manifest = next(g.subjects(RDF.type, MF.Manifest))
    cases = []
    for entry in Collection(g, g.value(manifest, MF.entries)):
        action = g.value(entry, MF.action)
        steps = tuple(_step(g, request)
                      for request in Collection(g, g.value(action, HT.requests)))
        graphs = tuple(sorted(str(g.value(data, RDFS.label))
                              for data in g.objects(entry, UT.graphData)))
        cases.append(Case(str(entry).rpartition("#")[2], steps, graphs))
    return cases


def _step(g: Graph, request) -> Step:
    body = g.value(request, HT.body)
    data = None
    if body is not None:
        encoding = str(g.value(body, CNT.characterEncoding) or "UTF-8")
        data = str(g.value(body, CNT.chars)).encode(encoding)
    headers_list = g.value(request, HT.headers)
    headers = {str(g.value(h, HT.fieldName)): str(g.value(h, HT.fieldValue))
               for h in (Collection(g, headers_list) if headers_list is not None else [])}
    response = g.value(request, HT.resp)
    statuses = frozenset(int(str(s).rpartition("StatusCode")[2][0])
                         for s in g.objects(response, MF.expectedStatus))
    boolean = g.value(response, MF.expectedBoolean)
    result_format = g.value(response, MF.expectedFormat)
    # The manifest's paths start with /sparql/; our endpoint is /sparql.
    path = str(g.value(request, HT.absolutePath)).replace("/sparql/", "/sparql", 1)
    return Step(str(g.value(request, HT.methodName)), path, data, headers, statuses,
                None if boolean is None else boolean.toPython(),
                None if result_format is None else str(result_format))


CASES = load_manifest()


def test_every_manifest_entry_is_run_or_refused_on_purpose():
    names = [case.name for case in CASES]
    assert len(names) == 34 and len(set(names)) == 34
    assert REFUSED_UPDATES <= set(names)
    run = [n for n in names if n not in REFUSED_UPDATES]
    assert sum(n.startswith("query_") for n in run) == 13
    assert sum(n.startswith("bad_") for n in run) == 14
    # Read-only is the only deviation: every refused test is an update expecting success.
    for case in CASES:
        if case.name in REFUSED_UPDATES:
            assert case.steps[0].statuses == {2, 3}
            assert "sparql-update" in case.steps[0].headers.get("content-type", "") or (
                case.steps[0].body or b"").startswith(b"update=")


# --------------------------------------------------------------------------- the server


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def add_graphs(folder: Path, quads: list[Quad]) -> None:
    """Graphs outside the records, written the way a sync writes (lock, snapshot, state).

    They stay: a sync replaces only the graphs of entities that changed."""
    with locks.exclusive(folder / "write.lock", 10):
        state = sparql_store.read_state(folder)
        store = Store(str(folder / "primary"))
        try:
            store.extend(quads)
            name = sparql_store._snapshot(store, folder, state.seq)
        finally:
            del store
        sparql_store._write_state(folder, replace(state, snapshot=name))


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> str:
    """gunicorn (2 workers, 2 threads each) serving a node with the suite's graphs."""
    tmp = tmp_path_factory.mktemp("sparql-protocol")
    instance = tmp / "instance"
    instance.mkdir()
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ATLAS_INSTANCE", str(instance))
        app = create_app({"BASE_URL": base,
                          "DATABASE_URL": f"sqlite:///{instance / 'atlas.sqlite3'}"})
    try:
        db.upgrade(app)
        folder = sparql_store.mirror_folder(app.instance_path)
        with app.app_context():
            sparql_store.sync(db.session(), folder, base, wait=10)
    finally:
        db.engine(app).dispose()
    graphs = sorted({g for case in CASES for g in case.graphs})
    add_graphs(folder, [Quad(NamedNode(g), NamedNode(str(RDF.type)), NamedNode(FOAF_DOCUMENT),
                             NamedNode(g)) for g in graphs])
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("ATLAS_") and k != "DATABASE_URL"}
    env.update(ATLAS_INSTANCE=str(instance), ATLAS_BASE_URL=base,
               PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")])))
    log = (tmp / "server.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--workers", "2", "--threads", "2",
         "--bind", f"127.0.0.1:{port}", "--chdir", str(tmp), "service:create_app()"],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, (tmp / "server.log").read_text()
            try:
                if send(base, "GET", "/")[0] == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "the node did not answer within 60 s"
            time.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # the group this fixture started
            proc.wait()
        log.close()


def send(base: str, method: str, path: str, body: bytes | None = None,
         headers: dict[str, str] | None = None) -> tuple[int, str, bytes]:
    """One request exactly as given: http.client adds Host and Content-Length, nothing else."""
    parts = urlsplit(base)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.getheader("Content-Type", ""), response.read()
    finally:
        conn.close()


# --------------------------------------------------------------------------- the tests


def _media(content_type: str) -> str:
    return content_type.split(";")[0].strip().lower()


def _boolean(content_type: str, body: bytes) -> bool:
    if _media(content_type) == RESULTS_FORMATS["json"][0]:
        return json.loads(body)["boolean"]
    element = ET.fromstring(body).find("{http://www.w3.org/2005/sparql-results#}boolean")
    return element.text.strip() == "true"


_RDFLIB = {"text/turtle": "turtle", "application/n-triples": "nt",
           "application/rdf+xml": "xml", "application/ld+json": "json-ld"}


def check(step: Step, status: int, content_type: str, body: bytes) -> None:
    assert status // 100 in step.statuses, (status, body[:500])
    media = _media(content_type)
    if step.result_format == "boolean":
        assert media in (RESULTS_FORMATS["json"][0], RESULTS_FORMATS["xml"][0])
    elif step.result_format == "tabular":
        assert media in [types[0] for types in RESULTS_FORMATS.values()]
    elif step.result_format == "RDF":
        assert media in [types[0] for types in GRAPH_FORMATS.values()]
        Graph().parse(data=body, format=_RDFLIB[media])
    if step.boolean is not None:
        assert _boolean(content_type, body) is step.boolean


@pytest.mark.parametrize("case", [c for c in CASES if c.name not in REFUSED_UPDATES], ids=str)
def test_protocol(server, case):
    for step in case.steps:
        check(step, *send(server, step.method, step.path, step.body, step.headers))


@pytest.mark.parametrize("case", [c for c in CASES if c.name in REFUSED_UPDATES], ids=str)
def test_updates_are_refused(server, case):
    step = case.steps[0]
    status, content_type, body = send(server, step.method, step.path, step.body, step.headers)
    assert status == 403
    assert _media(content_type) == "application/problem+json"
    assert "read-only" in json.loads(body)["detail"]


def test_the_graphs_of_the_suite_are_there(server):
    query = "SELECT ?g { GRAPH ?g { ?g a <http://xmlns.com/foaf/0.1/Document> } }"
    status, _ctype, body = send(server, "POST", "/sparql", query.encode(),
                                {"Content-Type": "application/sparql-query"})
    assert status == 200
    found = {b["g"]["value"] for b in json.loads(body)["results"]["bindings"]}
    assert found == {g for case in CASES for g in case.graphs}
