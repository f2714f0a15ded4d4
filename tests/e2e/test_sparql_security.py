"""The public SPARQL endpoint of a real node (gunicorn) stays read-only and bounded.

A loopback canary server counts every request that reaches it: SERVICE must never
get there. FROM must not read files. A query that would run (and grow) forever is
killed at SPARQL_TIMEOUT while the node goes on answering, and its process is gone.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests

from service import create_app, db, store
from service.cli import write_config
from vocab import load_record

from .conftest import alive, cli_env, descendants, free_port_block, wait_until_serving

TIMEOUT = 2
DIRECT = "application/sparql-query"
JSON = "application/sparql-results+json"
_VALUES = " ".join(str(i) for i in range(60))
# An ORDER BY over the cross product of six VALUES blocks: 46 billion rows to sort.
BOMB = ("SELECT * { " + " ".join(f"VALUES ?{v} {{ {_VALUES} }}" for v in "abcdef")
        + " } ORDER BY DESC(?a) ?b ?c ?d ?e ?f")


@dataclass
class Node:
    base: str
    pid: int


@pytest.fixture
def node(tmp_path, monkeypatch, started) -> Node:
    """gunicorn, 2 workers of 2 threads, SPARQL_TIMEOUT=2, with two actors."""
    port = free_port_block(1)
    base = f"http://127.0.0.1:{port}"
    instance = tmp_path / "instance"
    settings = {"BASE_URL": base, "NODE_NAME": "Sicherheitsknoten", "SPARQL_TIMEOUT": TIMEOUT,
                "DATABASE_URL": f"sqlite:///{instance / 'atlas.sqlite3'}"}
    write_config(instance / "atlas.toml", settings)
    monkeypatch.setenv("ATLAS_INSTANCE", str(instance))
    app = create_app(settings)
    try:
        db.upgrade(app)
        with app.app_context():
            for name in ("Tafel", "Kleiderkammer"):
                store.create(db.session(), "actor",
                             load_record("actor", {"name": {"de": name}, "actorTypes": ["verein"]}))
    finally:
        db.engine(app).dispose()
    with (tmp_path / "node.log").open("wb") as log:  # the node keeps its own descriptor
        proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "--workers", "2", "--threads", "2",
             "--bind", f"127.0.0.1:{port}", "--chdir", str(tmp_path), "service:create_app()"],
            env=cli_env(instance), stdout=log, stderr=subprocess.STDOUT)
    started.append(proc)
    wait_until_serving(proc, base + "/", what="the node", log=tmp_path / "node.log")
    return Node(base, proc.pid)


class Canary:
    """A loopback HTTP server that counts the requests it gets (and looks like SPARQL)."""

    def __init__(self) -> None:
        self.hits: list[str] = []
        canary = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                canary.hits.append(f"{self.command} {self.path}")
                body = b'{"head":{"vars":[]},"results":{"bindings":[{}]}}'
                self.send_response(200)
                self.send_header("Content-Type", JSON)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _answer

            def log_message(self, *_args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/sparql"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()


@pytest.fixture
def canary() -> Iterator[Canary]:
    c = Canary()
    yield c
    c.server.shutdown()
    c.server.server_close()


def sparql(node: Node, text: str, *, method: str = "POST", timeout: float = 60,
           **params) -> requests.Response:
    if method == "GET":
        return requests.get(f"{node.base}/sparql", params={"query": text, **params},
                            headers={"Accept": JSON}, timeout=timeout)
    return requests.post(f"{node.base}/sparql", params=params, data=text.encode("utf-8"),
                         headers={"Content-Type": DIRECT, "Accept": JSON}, timeout=timeout)


def test_service_never_reaches_the_network(node, canary):
    url = canary.url
    queries = [
        f"SELECT * {{ SERVICE <{url}> {{ ?s ?p ?o }} }}",
        f"SELECT * {{ ?s ?p ?o OPTIONAL {{ SERVICE <{url}> {{ ?s ?q ?r }} }} }}",
        f"SELECT * {{ OPTIONAL {{ OPTIONAL {{ SERVICE SILENT <{url}> {{ ?s ?p ?o }} }} }} }}",
        f"SELECT * {{ {{ SELECT ?s {{ SERVICE <{url}> {{ ?s ?p ?o }} }} }} }}",
        f"ASK {{ FILTER NOT EXISTS {{ SERVICE <{url}> {{ ?s ?p ?o }} }} }}",
        f"SELECT * {{ VALUES ?endpoint {{ <{url}> }} SERVICE ?endpoint {{ ?s ?p ?o }} }}",
        f"CONSTRUCT {{ ?s ?p ?o }} WHERE {{ SERVICE <{url}> {{ ?s ?p ?o }} }}",
        f"SELECT * {{ \\u0053ERVICE <{url}> {{ ?s ?p ?o }} }}",
    ]
    for text in queries:
        for method in ("GET", "POST"):
            response = sparql(node, text, method=method)
            assert response.status_code == 403, (text, response.text)
            assert "SERVICE" in response.json()["detail"]
    for update in (f"LOAD <{url}>", f"LOAD SILENT <{url}> INTO GRAPH <urn:g>"):
        response = requests.post(f"{node.base}/sparql", data={"update": update}, timeout=30)
        assert response.status_code == 403
        assert sparql(node, update).status_code == 403  # an update given as a query
    assert canary.hits == []
    requests.get(url, timeout=5)  # the canary does count
    assert len(canary.hits) == 1


def test_from_never_reads_files(node):
    everything = sparql(node, "SELECT * { ?s ?p ?o }")
    assert len(everything.json()["results"]["bindings"]) > 0
    for text, params in [
        ("SELECT * FROM <file:///etc/passwd> { ?s ?p ?o }", {}),
        ("SELECT * FROM NAMED <file:///etc/passwd> { GRAPH ?g { ?s ?p ?o } }", {}),
        ("SELECT * { ?s ?p ?o }", {"default-graph-uri": "file:///etc/passwd"}),
        ("SELECT * { GRAPH ?g { ?s ?p ?o } }", {"named-graph-uri": "file:///etc/passwd"}),
        (f"SELECT * FROM <{node.base}/> {{ ?s ?p ?o }}", {}),
    ]:
        response = sparql(node, text, **params)
        assert response.status_code == 200, response.text
        assert response.json()["results"]["bindings"] == []
        assert "root:" not in response.text


def _query_processes(master: int) -> set[int]:
    """Query processes under a node: the children of its workers' forkservers."""
    found = set()
    for pid in descendants(master):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            parent = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
            parent_cmdline = Path(f"/proc/{parent}/cmdline").read_bytes()
        except (OSError, ValueError):
            continue
        if b"forkserver" in cmdline and b"forkserver" in parent_cmdline:
            found.add(pid)
    return found


def _fork_servers(master: int) -> set[int]:
    found = set()
    for pid in descendants(master):
        try:
            if b"forkserver" in Path(f"/proc/{pid}/cmdline").read_bytes():
                found.add(pid)
        except OSError:
            continue
    return found - _query_processes(master)


def test_a_query_bomb_is_killed_while_the_node_answers_others(node):
    # Both workers warm (each starts its fork server on its first SPARQL request), so
    # that what is measured below is concurrency, not a first start.
    deadline = time.monotonic() + 60
    while len(_fork_servers(node.pid)) < 2:
        assert time.monotonic() < deadline, "the workers did not start their fork servers"
        pair = [threading.Thread(target=sparql, args=(node, "ASK {}")) for _ in range(2)]
        for thread in pair:
            thread.start()
        for thread in pair:
            thread.join()
    before = _query_processes(node.pid)
    result: dict = {}

    def bomb() -> None:
        started = time.monotonic()
        result["response"] = sparql(node, BOMB)
        result["seconds"] = time.monotonic() - started
        result["done"] = time.monotonic()

    thread = threading.Thread(target=bomb)
    thread.start()
    deadline = time.monotonic() + 10
    running: set[int] = set()
    while not running and time.monotonic() < deadline:
        running = _query_processes(node.pid) - before
        time.sleep(0.05)
    assert running, "no query process appeared"

    # Meanwhile the node answers: a simple query and a page, each within its own time.
    simple = sparql(node, "ASK { ?s a ?type }")
    simple_done = time.monotonic()
    page = requests.get(node.base + "/actors", headers={"Accept": "text/html"}, timeout=30)
    assert simple.status_code == 200 and simple.json()["boolean"] is True
    assert page.status_code == 200
    thread.join(60)
    assert not thread.is_alive()
    assert simple_done < result["done"]  # answered while the bomb was still running

    response = result["response"]
    assert response.status_code == 503, response.text
    assert response.headers["Content-Type"] == "application/problem+json"
    assert int(response.headers["Retry-After"]) >= 1
    assert result["seconds"] < TIMEOUT + 10  # stopped at the limit, not when done
    deadline = time.monotonic() + 5
    while any(alive(pid) for pid in running) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [pid for pid in running if alive(pid)], "the killed query process lives on"
    assert sparql(node, "ASK {}").status_code == 200


def test_a_huge_query_is_refused(node):
    huge = "SELECT * { ?s ?p ?o } #" + "x" * (1024 * 1024)
    direct = sparql(node, huge)
    assert direct.status_code == 413
    assert "SPARQL_MAX_QUERY_BYTES" in direct.json()["detail"]
    form = requests.post(f"{node.base}/sparql", data={"query": huge}, timeout=60)
    assert form.status_code == 413
    in_url = requests.get(f"{node.base}/sparql", params={"query": huge[:100_000]}, timeout=60)
    assert in_url.status_code in (400, 414)  # gunicorn refuses request lines over 4 KiB
    assert sparql(node, "ASK {}").status_code == 200
