"""Helpers of tests/e2e/test_index_harvest.py: node processes and an index driven by its CLI.

A `Node` is a real ``python -m service.cli serve`` process with a private instance folder
(config and a database seeded in this process, an editor token from ``python -m service.cli
token create``). An `Index` is an instance folder driven through ``python -m service.cli
harvest ...`` subprocesses, with either an embedded store (opened here only between runs:
one writer at a time) or a remote store: a real `oxigraph serve` process (`SparqlServer`,
PyPI package `oxigraph`) named by ATLAS_INDEX_STORE_URL + ATLAS_INDEX_UPDATE_URL. Both are
read with SPARQL through `harvesters.store`.
"""

from __future__ import annotations

import contextlib
import gc
import gzip
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import pyoxigraph as ox
import requests

from harvesters.store import STATE_NS, OxigraphStore, RemoteSparqlStore
from service import create_app, db
from service.cli import write_config
from vocab.fields import ENTITY_BY_COLLECTION

from .conftest import (
    cli_command,
    cli_env,
    descendants,
    free_port_block,
    wait_until_serving,
)

PROV = "http://www.w3.org/ns/prov#"
NAME = "https://schema.org/name"
NT = "application/n-triples"
# Derived from cooperation entities: the dump (and the entity page) add it to both actors,
# the feed's member states do not, so a harvest that replays the feed has not got it.
DERIVED = "https://w3id.org/engagement-atlas/ns#cooperatesWith"


# --------------------------------------------------------------------------- nodes


@contextlib.contextmanager
def node_app(folder: Path):
    """The app of a node's instance folder, in this process (to seed its database)."""
    saved = os.environ.get("ATLAS_INSTANCE")
    os.environ["ATLAS_INSTANCE"] = str(folder)
    app = create_app()
    try:
        with app.app_context():
            yield app
    finally:
        db.engine(app).dispose()
        os.environ.pop("ATLAS_INSTANCE") if saved is None else os.environ.update(
            ATLAS_INSTANCE=saved)


@dataclass
class Node:
    slug: str
    base: str
    folder: Path
    token: str = ""
    proc: subprocess.Popen | None = None
    http: requests.Session = field(default_factory=requests.Session)

    @property
    def port(self) -> int:
        return int(self.base.rsplit(":", 1)[1])

    def start(self) -> None:
        log = (self.folder / "serve.log").open("a")  # an unread pipe would stall the server
        self.proc = subprocess.Popen(cli_command("serve", "--host", "127.0.0.1", "--port",
                                                 str(self.port)),
                                     env=cli_env(self.folder), cwd=self.folder, stdout=log,
                                     stderr=subprocess.STDOUT)
        log.close()

    def wait_ready(self, deadline: float) -> None:
        wait_until_serving(self.proc, self.base + "/feed", what=self.slug, status=200,
                           log=self.folder / "serve.log", deadline=deadline, http=self.http)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            below = descendants(self.proc.pid)
            self.proc.kill()
            self.proc.wait(30)
            for pid in below:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)

    def total(self) -> int:
        """Live entities of every collection, as the node's API counts them."""
        return sum(self.http.get(f"{self.base}/api/v1/{collection}", params={"per_page": 1},
                                 timeout=30).json()["total"]
                   for collection in ENTITY_BY_COLLECTION)

    def patch(self, uri: str, body: dict) -> None:
        api = self.base + "/api/v1" + uri[len(self.base):]
        etag = self.http.get(api, timeout=30).headers["ETag"]
        response = self.http.patch(api, json=body, timeout=30, headers={
            "Authorization": f"Bearer {self.token}", "If-Match": etag})
        assert response.status_code == 200, response.text

    def delete(self, uri: str) -> None:
        api = self.base + "/api/v1" + uri[len(self.base):]
        etag = self.http.get(api, timeout=30).headers["ETag"]
        response = self.http.delete(api, timeout=30, headers={
            "Authorization": f"Bearer {self.token}", "If-Match": etag})
        assert response.status_code == 204, response.text

    def dump_graphs(self) -> dict[str, frozenset[str]]:
        """Entity -> its triples (the entity and its #fragments), from /dumps/all.nt.gz,
        without `DERIVED` statements."""
        response = self.http.get(self.base + "/dumps/all.nt.gz", timeout=60)
        assert response.status_code == 200
        graphs: dict[str, set[str]] = {}
        for quad in ox.parse(gzip.decompress(response.content), ox.RdfFormat.N_TRIPLES):
            subject = quad.subject.value if isinstance(quad.subject, ox.NamedNode) else ""
            if subject.startswith(self.base + "/") and quad.predicate.value != DERIVED:
                graphs.setdefault(subject.split("#")[0], set()).add(str(quad.triple))
        return {e: frozenset(t) for e, t in graphs.items()}


def prepare(slug: str, base: str, folder: Path, settings: dict, seed=None) -> Node:
    """An instance folder with its config and a seeded database, and an editor token."""
    folder.mkdir(parents=True)
    write_config(folder / "atlas.toml", {**settings, "BASE_URL": base,
                                         "DATABASE_URL": f"sqlite:///{folder}/atlas.sqlite3"})
    with node_app(folder) as app:
        db.upgrade(app)
        if seed is not None:
            seed(db.session())
    return Node(slug, base, folder)


def make_token(node: Node) -> None:
    created = subprocess.run(cli_command("token", "create", "--name", "e2e", "--role", "editor"),
                             env=cli_env(node.folder), cwd=node.folder, check=True,
                             capture_output=True, text=True, timeout=120)
    node.token = created.stdout.strip().splitlines()[-1]


def launch(nodes: list[Node]) -> None:
    with ThreadPoolExecutor(len(nodes)) as pool:
        list(pool.map(make_token, nodes))
    for node in nodes:
        node.start()
    deadline = time.monotonic() + 60
    for node in nodes:
        node.wait_ready(deadline)


OXIGRAPH_CLI = (shutil.which("oxigraph", path=str(Path(sys.executable).parent))
                or shutil.which("oxigraph"))


class SparqlServer:
    """A real SPARQL 1.1 server process: `oxigraph serve` on a loopback port, its data in
    ``location``. Restarted (after `kill`) on the same port with the same data."""

    def __init__(self, location: Path) -> None:
        assert OXIGRAPH_CLI, "the oxigraph CLI (PyPI package `oxigraph`) is not installed"
        self.location = location
        self.port = free_port_block(1)
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    @property
    def query_url(self) -> str:
        return self.base + "/query"

    @property
    def update_url(self) -> str:
        return self.base + "/update"

    def start(self) -> None:
        log = self.location.with_name(self.location.name + ".log").open("a")
        self.proc = subprocess.Popen([OXIGRAPH_CLI, "serve", "--location", str(self.location),
                                      "--bind", f"127.0.0.1:{self.port}"],
                                     stdout=log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        log.close()
        wait_until_serving(self.proc, self.query_url, what="oxigraph serve", timeout=30,
                           query="ASK {}")

    def kill(self) -> None:
        """SIGKILL: no chance to flush or finish a request."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
        if self.proc is not None:
            self.proc.wait(30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()


class Index:
    """An index instance folder driven through ``python -m service.cli harvest ...``; its
    store is embedded (``server`` None) or the remote SPARQL server ``server``."""

    def __init__(self, folder: Path, server: SparqlServer | None = None) -> None:
        self.folder = folder
        self.server = server
        self.backend = "remote" if server else "embedded"
        # HARVEST_INTERVAL as the nodes' FEED_POLLING_INTERVAL (test_index_harvest.py)
        self.env = {**cli_env(folder), "ATLAS_HARVEST_ALLOW_PRIVATE": "true",
                    "ATLAS_HARVEST_WORKERS": "5", "ATLAS_HARVEST_INTERVAL": "1"}
        if server is not None:
            self.env.update(ATLAS_INDEX_STORE_URL=server.query_url,
                            ATLAS_INDEX_UPDATE_URL=server.update_url)

    def cli(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(cli_command(*args), env=self.env, cwd=self.folder.parent,
                              capture_output=True, text=True, timeout=120)

    def popen(self, *args: str) -> subprocess.Popen:
        return subprocess.Popen(cli_command(*args), env=self.env, cwd=self.folder.parent,
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)

    def add(self, nodes: list[Node]) -> dict[str, str]:
        """Register the nodes (concurrently: the registry file is locked); base -> id."""
        with ThreadPoolExecutor(len(nodes)) as pool:
            results = list(pool.map(lambda n: self.cli("harvest", "add", n.base), nodes))
        for result in results:
            assert result.returncode == 0, result.stderr
        return {n.base: f"127.0.0.1-{n.port}" for n in nodes}

    def run(self, *args: str, expect: int = 0) -> list[dict]:
        result = self.cli("harvest", "run", *args)
        assert result.returncode == expect, result.stdout + result.stderr
        return events(result.stdout)

    @contextlib.contextmanager
    def serve(self) -> Iterator[str]:
        """``atlas index serve`` on a loopback port while the block runs; its base URL. The
        pages read the published snapshot (embedded) or the remote server."""
        base = f"http://127.0.0.1:{free_port_block(1)}"
        log = (self.folder.parent / "index-serve.log").open("a")
        proc = subprocess.Popen(cli_command("index", "serve", "--host", "127.0.0.1", "--port",
                                            base.rsplit(":", 1)[1]),
                                env=self.env, cwd=self.folder.parent, stdout=log,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        log.close()
        try:
            wait_until_serving(proc, base + "/index/sources", what="the index server",
                               log=self.folder.parent / "index-serve.log")
            yield base
        finally:
            proc.kill()
            proc.wait(30)

    @contextlib.contextmanager
    def store(self) -> Iterator[OxigraphStore | RemoteSparqlStore]:
        """The index store: the embedded one opened here while no harvest runs (one writer
        at a time), or a client of the remote server."""
        if self.server is not None:
            with RemoteSparqlStore(self.server.query_url, self.server.update_url) as remote:
                yield remote
            return
        store = OxigraphStore(self.folder / "index")
        try:
            yield store
        finally:
            store.close()
            del store
            gc.collect()  # RocksDB lets go once no result refers to it


def events(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]


def finished(found: list[dict]) -> dict[str, dict]:
    return {e["source"]: e for e in found if e["event"] == "source-finished"}


def entity_graphs(store) -> dict[str, dict[str, frozenset[str]]]:
    """Source id -> entity graph -> its triples, by SPARQL over the whole index."""
    rows = store.query(f"SELECT ?id ?g ?s ?p ?o WHERE {{ GRAPH ?sg {{ ?sg <{STATE_NS}sourceId> "
                       f"?id . ?g <{STATE_NS}inSource> ?sg }} GRAPH ?g {{ ?s ?p ?o }} }}")
    found: dict[str, dict[str, set[str]]] = {}
    for row in rows:
        triple = str(ox.Triple(row["s"], row["p"], row["o"]))
        found.setdefault(row["id"].value, {}).setdefault(row["g"].value, set()).add(triple)
    return {key: {g: frozenset(t) for g, t in graphs.items()} for key, graphs in found.items()}


def entity_counts(store) -> dict[str, int]:
    rows = store.query(f"SELECT ?id (COUNT(DISTINCT ?g) AS ?n) WHERE {{ GRAPH ?sg {{ ?sg "
                       f"<{STATE_NS}sourceId> ?id . ?g <{STATE_NS}inSource> ?sg }} "
                       f"GRAPH ?g {{ ?g ?p ?o }} }} GROUP BY ?id")
    return {row["id"].value: int(row["n"].value) for row in rows}


def generated_by(store) -> dict[str, str]:
    """Entity -> the harvest run that loaded its current state (PROV-O)."""
    rows = store.query(f"SELECT ?e ?run WHERE {{ GRAPH ?sg {{ ?e <{PROV}wasGeneratedBy> ?run }} }}")
    return {row["e"].value: row["run"].value for row in rows}


def entity_graphs_of(index: Index, source_id: str) -> dict[str, frozenset[str]]:
    with index.store() as store:
        return entity_graphs(store)[source_id]


def add_actors(node: Node, count: int, first: int = 0) -> None:
    from service import store
    from vocab import load_record

    with node_app(node.folder):
        session = db.session()
        for n in range(first, first + count):
            store.create(session, "actor", load_record("actor", {
                "name": {"de": f"Verein {n}"}, "actorTypes": ["verein"],
                "description": {"de": f"Verein Nummer {n} in der Stadt."}}))


def feed_members(node: Node, url: str, watermark: str | None = None) -> set[str]:
    """Entities whose versions a feed page lists (up to ``watermark``, when given)."""
    body = node.http.get(url, headers={"Accept": NT}, timeout=30).content
    triples = list(ox.parse(body, ox.RdfFormat.N_TRIPLES))
    members = {q.object for q in triples if q.predicate.value == "https://w3id.org/tree#member"}
    found = set()
    for version in members:
        entity = next(q.object.value for q in triples if q.subject == version
                      and q.predicate.value == "http://purl.org/dc/terms/isVersionOf")
        stamp = next(q.object.value for q in triples if q.subject == version
                     and q.predicate.value == PROV + "generatedAtTime")
        if watermark is None or _when(stamp) <= _when(watermark):
            found.add(entity)
    return found


def _when(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))
