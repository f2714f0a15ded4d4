"""Replicating a real node through its LDES feed, then staying in sync from a saved position.

A node runs as ``python -m service.cli serve`` on a loopback port with a fresh SQLite
database; changes go in through the HTTP API. The client below knows only the feed
URL: it follows ``tree:view`` and ``tree:relation`` (TREE #init, #traversing), keeps
a visited set, reads the stream's paths from its context (LDES §2), and saves its
position as the pages it must poll again (with their ETags), the immutable pages it
is done with, and the members it has emitted.
"""

from __future__ import annotations

import json
import subprocess
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime

import orjson
import pytest
import requests
from rdflib import Graph, URIRef
from rdflib.namespace import RDF

from vocab import from_graph
from vocab.context import inline_contexts
from vocab.fields import ENTITY_BY_COLLECTION
from vocab.namespaces import LDES, TREE

from .conftest import cli_command, cli_env, free_port_block, wait_until_serving

PAGE_SIZE = 100
NT = "application/n-triples"


# --------------------------------------------------------------------------- the client


@dataclass
class Run:
    """What one synchronization run did."""

    members: list[tuple[str, Graph]] = field(default_factory=list)  # in stream order
    fetched: list[str] = field(default_factory=list)  # pages answered 200
    not_modified: list[str] = field(default_factory=list)  # pages answered 304


class FeedClient:
    def __init__(self, http: requests.Session, feed_url: str, position: dict | None = None):
        self.http, self.feed_url = http, feed_url
        position = position or {}
        self.context: dict[str, str] | None = position.get("context")
        self.poll: dict[str, str | None] = dict(position.get("poll", {}))
        self.done: set[str] = set(position.get("done", []))
        self.seen: set[str] = set(position.get("seen", []))

    def position(self) -> dict:
        return {"context": self.context, "poll": self.poll, "done": sorted(self.done),
                "seen": sorted(self.seen)}

    def _get(self, url: str, etag: str | None = None) -> requests.Response:
        headers = {"Accept": NT, **({"If-None-Match": etag} if etag else {})}
        return self.http.get(url, headers=headers, timeout=30)

    def _initialise(self) -> None:
        """TREE #init: the entry URL names the collection; its one tree:view is the root."""
        response = self._get(self.feed_url)
        response.raise_for_status()
        graph = Graph().parse(data=response.content, format="nt")
        stream = URIRef(self.feed_url)
        (root,) = graph.objects(stream, TREE.view)
        self.context = {
            "stream": str(stream),
            "versionOf": str(graph.value(stream, LDES.versionOfPath)),
            "timestamp": str(graph.value(stream, LDES.timestampPath)),
            "deletePath": str(graph.value(stream, LDES.versionDeletePath) or RDF.type),
            "deleteObject": str(graph.value(stream, LDES.versionDeleteObject)),
        }
        self.poll[str(root)] = None

    def run(self) -> Run:
        if self.context is None:
            self._initialise()
        run, found = Run(), []
        queue, visited = deque(self.poll), set()
        while queue:
            url = queue.popleft()
            if url in visited or url in self.done:
                continue
            visited.add(url)
            response = self._get(url, self.poll.get(url))
            if response.status_code == 304:
                run.not_modified.append(url)
                continue
            if response.status_code == 410:  # Primer §5.1: a page that went is empty
                self.poll.pop(url, None)
                continue
            response.raise_for_status()
            run.fetched.append(url)
            text = response.content.decode("utf-8")
            graph = Graph().parse(data=text, format="nt")
            for relation in graph.objects(URIRef(url), TREE.relation):
                node = str(graph.value(relation, TREE.node))
                if node not in visited and node not in self.done:
                    queue.append(node)
            found += self._members(text, graph, len(run.fetched))
            immutable = ("immutable" in response.headers.get("Cache-Control", "")
                         or (URIRef(url), LDES.immutable, None) in graph)
            if immutable:
                self.done.add(url)
                self.poll.pop(url, None)
            else:
                self.poll[url] = response.headers["ETag"]
        # LDES §2: the timestamp path orders the stream; ties keep the order found.
        found.sort(key=lambda item: item[0])
        run.members = [(iri, member) for _key, iri, member in found]
        return run

    def _members(self, text: str, graph: Graph, page_index: int) -> list:
        stream, member_p = self.context["stream"], str(TREE.member)
        order = [line.split()[2][1:-1] for line in text.splitlines()
                 if line.startswith(f"<{stream}> <{member_p}> ")]
        found = []
        for position, iri in enumerate(order):
            if iri in self.seen:
                continue
            self.seen.add(iri)
            member = Graph()
            for s, p, o in graph:  # the member and its #fragments (the stream's tree:shape)
                if str(s) == iri or str(s).startswith(iri + "#"):
                    member.add((s, p, o))
            when = datetime.fromisoformat(str(member.value(URIRef(iri),
                                                           URIRef(self.context["timestamp"]))))
            found.append(((when, page_index, position), iri, member))
        return found

    def apply(self, run: Run, replica: dict[str, Graph]) -> None:
        """Materialize: the latest version's state under the entity IRI, deletes remove."""
        ctx = self.context
        for iri, member in run.members:
            entity = str(member.value(URIRef(iri), URIRef(ctx["versionOf"])))
            if (URIRef(iri), URIRef(ctx["deletePath"]), URIRef(ctx["deleteObject"])) in member:
                replica.pop(entity, None)
                continue
            state = Graph()
            for s, p, o in member:
                if str(p) in (ctx["versionOf"], ctx["timestamp"]):
                    continue
                state.add((_back(s, iri, entity), p, _back(o, iri, entity)))
            replica[entity] = state


def _back(term, version: str, entity: str):
    """A term of the version (its IRI or one of its #fragments) as the entity's."""
    text = str(term)
    if isinstance(term, URIRef) and (text == version or text.startswith(version + "#")):
        return URIRef(entity + text[len(version):])
    return term


# --------------------------------------------------------------------------- the node


@dataclass
class Node:
    base: str
    http: requests.Session
    token: str
    etags: dict[str, str] = field(default_factory=dict)  # entity URI -> ETag

    def create(self, collection: str, body: dict) -> str:
        response = self.http.post(f"{self.base}/api/v1/{collection}", json=body,
                                  headers=self._auth(), timeout=30)
        assert response.status_code == 201, response.text
        uri = response.headers["Location"]
        self.etags[uri] = response.headers["ETag"]
        return uri

    def rename(self, uri: str, name: str) -> None:
        response = self.http.patch(self._api(uri), json={"name": {"de": name}}, timeout=30,
                                   headers={**self._auth(), "If-Match": self.etags[uri]})
        assert response.status_code == 200, response.text
        self.etags[uri] = response.headers["ETag"]

    def delete(self, uri: str) -> None:
        response = self.http.delete(self._api(uri), timeout=30,
                                    headers={**self._auth(), "If-Match": self.etags.pop(uri)})
        assert response.status_code == 204, response.text

    def _api(self, uri: str) -> str:
        return self.base + "/api/v1" + uri[len(self.base):]

    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@pytest.fixture
def node(tmp_path, started):
    port = free_port_block(1)
    base = f"http://127.0.0.1:{port}"
    env = {**cli_env(tmp_path / "instance"), "ATLAS_BASE_URL": base,
           "ATLAS_DATABASE_URL": f"sqlite:///{tmp_path}/atlas.sqlite3",
           "ATLAS_FEED_PAGE_SIZE": str(PAGE_SIZE)}
    subprocess.run(cli_command("db", "upgrade"), env=env, cwd=tmp_path, check=True,
                   capture_output=True, timeout=120)
    created = subprocess.run(cli_command("token", "create", "--name", "e2e", "--role", "editor"),
                             env=env, cwd=tmp_path, check=True, capture_output=True, text=True,
                             timeout=120)
    token = created.stdout.strip().splitlines()[-1]
    # The request log goes to a file: an unread pipe fills up and stalls the server.
    log = (tmp_path / "serve.log").open("w")
    started.append(subprocess.Popen(
        cli_command("serve", "--host", "127.0.0.1", "--port", str(port)), env=env, cwd=tmp_path,
        stdout=log, stderr=subprocess.STDOUT))
    http = requests.Session()
    wait_until_serving(started[-1], f"{base}/feed", what="the node", status=200, http=http,
                       log=tmp_path / "serve.log")
    yield Node(base, http, token)
    http.close()
    log.close()


def assert_replica_matches_the_node(node: Node, replica: dict[str, Graph], uris) -> None:
    """Each entity as the replica holds it equals its JSON-LD document (vocab.from_graph)."""
    for uri in uris:
        collection = uri[len(node.base) + 1:].split("/")[0]
        kind = ENTITY_BY_COLLECTION[collection].kind
        response = node.http.get(uri, headers={"Accept": "application/ld+json"}, timeout=30)
        assert response.status_code == 200, uri
        document = Graph().parse(data=orjson.dumps(inline_contexts(response.json())),
                                 format="json-ld")
        expected = from_graph(document, kind, node.base)
        assert expected and from_graph(replica[uri], kind, node.base) == expected, uri


# --------------------------------------------------------------------------- the test


def test_a_client_replicates_the_node_and_resumes_from_its_position(node, tmp_path):
    actors = [node.create("actors", {"name": {"de": f"Verein {n}"}, "actorTypes": ["verein"],
                                     "geo": {"latitude": 51.05, "longitude": 13.74},
                                     "contactPoints": [{"contactType": {"de": "Info"},
                                                       "email": f"info{n}@verein.example"}]})
              for n in range(500)]
    projects = [node.create("projects", {"name": {"de": f"Projekt {n}"}}) for n in range(40)]
    for uri in actors[:60]:
        node.rename(uri, "Umbenannt")
    # 600 changes: pages 1-6 are full, page 7 is the (empty) page now filling

    feed = f"{node.base}/feed"
    client, replica = FeedClient(node.http, feed), {}
    first = client.run()
    client.apply(first, replica)
    assert len(first.members) == 600
    assert sorted(replica) == sorted(actors + projects)
    assert first.fetched == [f"{feed}/root"] + [f"{feed}/{n}" for n in range(1, 8)]
    assert set(client.poll) == {f"{feed}/root", f"{feed}/7"}  # the pages that may change
    assert_replica_matches_the_node(node, replica, actors + projects)
    saved = tmp_path / "position.json"
    saved.write_text(json.dumps(client.position()))

    renamed, deleted = actors[100:110] + projects[:5], actors[200:205] + projects[5:10]
    for uri in renamed:
        node.rename(uri, "Neuer Name")
    for uri in deleted:
        node.delete(uri)

    client = FeedClient(node.http, feed, json.loads(saved.read_text()))
    second = client.run()
    client.apply(second, replica)
    # exactly the 25 new versions, the deletions as delete members
    entities = [str(m.value(URIRef(iri), URIRef(client.context["versionOf"])))
                for iri, m in second.members]
    assert sorted(entities) == sorted(renamed + deleted)
    deletes = [iri for iri, m in second.members if (URIRef(iri), RDF.type, None) in m
               and URIRef(client.context["deleteObject"]) in set(m.objects(URIRef(iri), RDF.type))]
    assert len(deletes) == 10
    # the root did not change (page 7 was linked already): 304; page 7 did
    assert second.not_modified == [f"{feed}/root"] and second.fetched == [f"{feed}/7"]
    assert sorted(replica) == sorted(set(actors + projects) - set(deleted))
    assert_replica_matches_the_node(node, replica, renamed)
    for uri in deleted:
        assert node.http.get(uri, timeout=30).status_code == 410

    third = client.run()  # nothing happened: every page it polls is unchanged
    assert third.members == [] and third.fetched == []
    assert sorted(third.not_modified) == [f"{feed}/7", f"{feed}/root"]

    more = actors[300:380]
    for uri in more:
        node.rename(uri, "Noch ein Name")  # page 7 fills up, page 8 opens
    fourth = client.run()
    client.apply(fourth, replica)
    assert sorted(str(m.value(URIRef(iri), URIRef(client.context["versionOf"])))
                  for iri, m in fourth.members) == sorted(more)
    assert fourth.fetched == [f"{feed}/root", f"{feed}/7", f"{feed}/8"]
    assert f"{feed}/7" in client.done and set(client.poll) == {f"{feed}/root", f"{feed}/8"}
    assert_replica_matches_the_node(node, replica, more[:10] + more[-10:])
