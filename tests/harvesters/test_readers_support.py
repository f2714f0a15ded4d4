"""Helpers for the reader tests (no tests here): real node processes behind a loopback proxy.

A node runs as ``python -m service.cli serve`` with a private instance and SQLite database
(copied from a template made once per session: schema plus an editor token). Its BASE_URL
is the address of a small proxy in this process, so every IRI the node publishes points at
the proxy; the proxy forwards GETs to the node, logs them, and can make pages disappear
(410) or append statements to a page — the node itself is never modified.
"""

from __future__ import annotations

import atexit
import functools
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import pyoxigraph as ox
import requests
from rdflib import Graph

from harvesters.fetch import Fetcher, FetchPolicy
from harvesters.model import Page, Source
from harvesters.parse import to_rdflib
from tests.e2e.conftest import cli_command, cli_env, descendants, free_port_block
from vocab import from_graph
from vocab.context import inline_contexts
from vocab.fields import ENTITY_BY_COLLECTION

from .test_fetch import reply, serve

LOCAL = FetchPolicy(allow_private=True, backoff=0.01, deadline=20)


class CountingFetcher(Fetcher):
    """A Fetcher that logs (url, status) of every fetch: 304s show as 304."""

    def __init__(self, policy: FetchPolicy = LOCAL) -> None:
        super().__init__(policy)
        self.log: list[tuple[str, int]] = []

    def fetch(self, url, **kwargs):
        resp = super().fetch(url, **kwargs)
        self.log.append((url, resp.status))
        return resp


@dataclass
class Proxy:
    target: str = ""
    gone: set[str] = field(default_factory=set)  # paths answered 410
    inject: dict[str, bytes] = field(default_factory=dict)  # path -> N-Triples appended
    log: list[tuple[str, int]] = field(default_factory=list)

    def handle(self, h) -> None:
        if h.path in self.gone:
            self.log.append((h.path, 410))
            reply(h, 410, b"gone", {"Content-Type": "text/plain"})
            return
        headers = {k: h.headers[k] for k in ("Accept", "If-None-Match", "If-Modified-Since")
                   if h.headers.get(k)}
        r = requests.get(self.target + h.path, headers=headers, timeout=30)
        keep = ("content-type", "etag", "cache-control", "last-modified", "content-disposition")
        out = {k: v for k, v in r.headers.items() if k.lower() in keep}
        body = b"" if r.status_code == 304 else r.content + self.inject.get(h.path, b"")
        self.log.append((h.path, r.status_code))
        reply(h, r.status_code, body, out)


@dataclass
class Node:
    base: str  # BASE_URL: the proxy
    api: str  # where the node process really listens
    token: str
    proxy: Proxy
    http: requests.Session = field(default_factory=requests.Session)
    etags: dict[str, str] = field(default_factory=dict)
    live: dict[str, str] = field(default_factory=dict)  # entity IRI -> kind

    def source(self, **options) -> Source:
        return Source("node", self.base + "/", self.base + "/", self.base + "/feed",
                      self.base + "/dumps/all.nt.gz", options=options)

    def create(self, collection: str, body: dict) -> str:
        r = self.http.post(f"{self.api}/api/v1/{collection}", json=body, timeout=30,
                           headers=self._auth())
        assert r.status_code == 201, r.text
        uri = r.headers["Location"]
        self.etags[uri] = r.headers["ETag"]
        self.live[uri] = ENTITY_BY_COLLECTION[collection].kind
        return uri

    def rename(self, uri: str, name: str) -> None:
        r = self.http.patch(self._real(uri, "/api/v1"), json={"name": {"de": name}}, timeout=30,
                            headers={**self._auth(), "If-Match": self.etags[uri]})
        assert r.status_code == 200, r.text
        self.etags[uri] = r.headers["ETag"]

    def delete(self, uri: str) -> None:
        r = self.http.delete(self._real(uri, "/api/v1"), timeout=30,
                             headers={**self._auth(), "If-Match": self.etags.pop(uri)})
        assert r.status_code == 204, r.text
        del self.live[uri]

    def record(self, uri: str) -> list[dict]:
        r = self.http.get(self._real(uri), headers={"Accept": "application/ld+json"}, timeout=30)
        assert r.status_code == 200, uri
        graph = Graph().parse(data=orjson.dumps(inline_contexts(r.json())), format="json-ld")
        return from_graph(graph, self.live[uri], self.base)

    def _real(self, uri: str, prefix: str = "") -> str:
        assert uri.startswith(self.base)
        return self.api + prefix + uri[len(self.base):]

    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@functools.cache
def template() -> tuple[Path, str]:
    """An upgraded SQLite database with an editor token, made once per test process."""
    directory = Path(tempfile.mkdtemp(prefix="atlas-readers-"))
    atexit.register(shutil.rmtree, directory, True)
    env = {**cli_env(directory / "instance"),
           "ATLAS_DATABASE_URL": f"sqlite:///{directory}/atlas.sqlite3"}
    subprocess.run(cli_command("db", "upgrade"), env=env, cwd=directory, check=True,
                   capture_output=True, timeout=120)
    created = subprocess.run(cli_command("token", "create", "--name", "readers", "--role",
                                         "editor"), env=env, cwd=directory, check=True,
                             capture_output=True, text=True, timeout=120)
    return directory / "atlas.sqlite3", created.stdout.strip().splitlines()[-1]


@contextmanager
def running_node(directory: Path, **config: object) -> Iterator[Node]:
    """A node process (config as ATLAS_* settings) behind a proxy; stopped at the end."""
    directory.mkdir(parents=True, exist_ok=True)
    database, token = template()
    shutil.copy(database, directory / "atlas.sqlite3")
    proxy = Proxy()
    with serve(proxy.handle) as front:
        port = free_port_block(1)
        proxy.target = f"http://127.0.0.1:{port}"
        env = {**cli_env(directory / "instance"), "ATLAS_BASE_URL": front.url,
               "ATLAS_DATABASE_URL": f"sqlite:///{directory}/atlas.sqlite3",
               **{f"ATLAS_{k.upper()}": str(v) for k, v in config.items()}}
        with (directory / "serve.log").open("w") as log:
            proc = subprocess.Popen(cli_command("serve", "--host", "127.0.0.1", "--port",
                                                str(port)), env=env, cwd=directory,
                                    stdout=log, stderr=subprocess.STDOUT)
            node = Node(front.url, proxy.target, token, proxy)
            try:
                deadline = time.monotonic() + 60
                while True:
                    try:
                        if node.http.get(f"{node.api}/feed", timeout=2).status_code == 200:
                            break
                    except requests.ConnectionError:
                        pass
                    assert proc.poll() is None and time.monotonic() < deadline, "no node"
                    time.sleep(0.1)
                yield node
            finally:
                below = descendants(proc.pid)
                proc.kill()
                proc.wait(10)
                for pid in below:  # the dev server's reloader child, if any
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except OSError:
                        pass
                node.http.close()


def apply(pages: Iterable[Page], replica: dict[str, list]) -> list[Page]:
    """Apply pages as the pipeline does (last member wins, snapshots delete the unseen)."""
    done, seen = [], {}
    for page in pages:
        done.append(page)
        if page.snapshot:
            seen.setdefault(page.snapshot, set()).update(m.entity for m in page.members)
        for member in page.members:
            if member.deleted:
                replica.pop(member.entity, None)
            else:
                replica[member.entity] = member.triples
        if page.full_replace:
            keep = seen.pop(page.snapshot, set())
            for entity in [e for e in replica if e not in keep]:
                del replica[entity]
    return done


def assert_replica_matches(node: Node, replica: dict[str, list[ox.Triple]]) -> None:
    """The replica holds exactly the node's live entities, each equal to its record."""
    assert sorted(replica) == sorted(node.live)
    for uri, kind in node.live.items():
        assert from_graph(to_rdflib(replica[uri]), kind, node.base) == node.record(uri), uri
