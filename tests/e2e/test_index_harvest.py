"""An index harvesting real nodes, through the command line, over loopback HTTP (issue 5).

Nodes are real ``python -m service.cli serve`` processes with private instance folders
(demo data seeded in-process first); edits go through their API with tokens made by
``python -m service.cli token create``. The index is ``python -m service.cli harvest ...``
subprocesses with ATLAS_HARVEST_ALLOW_PRIVATE=true. Every test runs twice (the `index`
fixture): with the embedded store (read between runs) and with a remote store, a real
`oxigraph serve` process started here on 127.0.0.1 and named by ATLAS_INDEX_STORE_URL +
ATLAS_INDEX_UPDATE_URL (issue 5: "the remote-store backend passes the same index tests
against a real SPARQL server process"); both are read with SPARQL through `harvesters.store`.
What must hold:

- five nodes, one index: the first run loads everything; edits, confirmations and deletes
  reach the index in the next run and nothing else changes; a deleted actor is gone from
  SPARQL results and from the pages of ``atlas index serve``;
- a node killed in the middle of a harvest: that source fails (exit code 1, its log line
  names it), the others complete, the index keeps its last good data, the next run after a
  restart converges;
- the index SIGKILLed in the middle of loading: the store holds whole entity graphs and a
  cursor that matches the pages applied, and the next run resumes and converges;
- ``harvest watch`` harvests again after the polling interval and stops on SIGTERM;
- remote store only: the SPARQL server SIGKILLed in the middle of loading (the index's other
  process) fails that run, and after the server's restart the data are whole pages and the
  next run resumes and converges.

How the tests apply to the remote backend: all of them, with the same assertions (the
edits' values name the backend, as both runs edit the same nodes). With a remote store "the
index killed mid-load" is two processes: the harvester (SIGKILLed like the embedded one; its
requests are single SPARQL Update transactions, so the server keeps whole pages) and the
SPARQL server (the extra test). Two embedded-only mechanics have no remote counterpart and are
not exercised there: the single-writer lock on the store folder (a server takes any number
of clients) and published snapshots for readers (readers query the server). The harvester
reaches the server through the two URL settings only, so bulk loads go as INSERT DATA
requests (no Graph Store URL setting exists).
"""

from __future__ import annotations

import contextlib
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from service.demo import load_nodes, seed_node

from .conftest import LineReader, free_port_block
from .index_support import (
    NAME,
    PROV,
    Index,
    Node,
    SparqlServer,
    add_actors,
    entity_counts,
    entity_graphs,
    entity_graphs_of,
    events,
    feed_members,
    finished,
    generated_by,
    launch,
    prepare,
)

CONFIRMED = "https://w3id.org/engagement-atlas/ns#lastConfirmed"


@pytest.fixture(scope="module")
def federation(tmp_path_factory) -> Iterator[list[Node]]:
    """Five demo nodes (Dresden, Leipzig, Bautzen, Gießen, Donostia) on loopback ports."""
    tmp = tmp_path_factory.mktemp("federation")
    every = load_nodes("127.0.0.1", free_port_block(6))
    bases, demo = {d.slug: d.base for d in every}, every[:5]  # national: referenced only
    nodes = [prepare(d.slug, d.base, tmp / d.slug, {**d.settings, "FEED_POLLING_INTERVAL": 1},
                     lambda session, d=d: seed_node(session, d, bases)) for d in demo]
    try:
        launch(nodes)
        yield nodes
    finally:
        for node in nodes:
            node.kill()
            node.http.close()


@contextlib.contextmanager
def _remote(tmp_path: Path) -> Iterator[Index]:
    """An index whose store is a fresh `oxigraph serve` process on 127.0.0.1."""
    server = SparqlServer(tmp_path / "oxigraph-store")
    server.start()
    try:
        yield Index(tmp_path / "index-instance", server)
    finally:
        server.stop()


@pytest.fixture(params=["embedded", "remote"])
def index(request, tmp_path) -> Iterator[Index]:
    """An index instance: embedded store, or a remote store on a real SPARQL server."""
    if request.param == "embedded":
        yield Index(tmp_path / "index-instance")
        return
    with _remote(tmp_path) as remote:
        yield remote


@pytest.fixture
def remote_index(tmp_path) -> Iterator[Index]:
    with _remote(tmp_path) as remote:
        yield remote


def unreferenced_actor(graphs: dict[str, frozenset[str]]) -> str | None:
    """An actor no other entity of the node points to (its deletion changes only itself)."""
    everything = " ".join(t for g in graphs.values() for t in g)
    return next((g for g in sorted(graphs) if "/actors/" in g
                 and everything.count(f"<{g}>") == len(
                     [t for t in graphs[g] if t.startswith(f"<{g}>")])), None)


# --------------------------------------------------------------------------- the tests


def test_five_nodes_and_one_index_stay_in_sync(federation, index):
    tag = index.backend  # the federation is shared: each run makes edits of its own
    ids = index.add(federation)
    first = finished(index.run())
    assert {k: e["ok"] for k, e in first.items()} == {k: True for k in ids.values()}
    with index.store() as store:
        counts, before, runs_before = entity_counts(store), entity_graphs(store), \
            generated_by(store)
    for node in federation:
        assert counts[ids[node.base]] == node.total(), node.slug
        dump = node.dump_graphs()
        for entity, triples in before[ids[node.base]].items():
            assert triples == dump[entity], entity
        assert len(before[ids[node.base]]) == node.total()

    dresden, leipzig, bautzen, giessen, donostia = federation
    renamed = sorted(g for g in before[ids[dresden.base]] if "/actors/" in g)[0]
    confirmed = sorted(g for g in before[ids[leipzig.base]] if "/actors/" in g)[0]
    # Bautzen has one such actor: the second backend's run deletes one of Donostia's.
    deleter, deleted = next((n, a) for n in (bautzen, donostia)
                            if (a := unreferenced_actor(before[ids[n.base]])))
    offer = sorted(g for g in before[ids[giessen.base]] if "/offers/" in g or "/events/" in g)[0]
    day = {"embedded": "2026-11-20", "remote": "2026-11-21"}[tag]
    dresden.patch(renamed, {"name": {"de": f"Umbenannt im Test ({tag})"}})
    leipzig.patch(confirmed, {"lastConfirmed": day})
    deleter.delete(deleted)
    giessen.patch(offer, {"name": {"de": f"Neues Projekt ({tag})"}})

    second = finished(index.run("--all"))
    assert all(e["ok"] for e in second.values())
    assert sum(e["deletes"] for e in second.values()) == 1
    assert sum(e["members_applied"] for e in second.values()) == 3
    with index.store() as store:
        counts, after, runs_after = entity_counts(store), entity_graphs(store), \
            generated_by(store)
        gone = store.query(f"ASK {{ GRAPH ?g {{ <{deleted}> ?p ?o }} }}")
        assert not bool(gone) and deleted not in runs_after
    flat_before = {g: t for graphs in before.values() for g, t in graphs.items()}
    flat_after = {g: t for graphs in after.values() for g, t in graphs.items()}
    assert set(flat_before) - set(flat_after) == {deleted} and set(flat_after) <= set(flat_before)
    changed = {g for g in flat_after if flat_after[g] != flat_before[g]}
    assert changed == {renamed, confirmed, offer}  # nothing else changed
    assert f'<{renamed}> <{NAME}> "Umbenannt im Test ({tag})"@de' in flat_after[renamed]
    assert any(t.startswith(f"<{confirmed}> <{CONFIRMED}> \"{day}\"")
               for t in flat_after[confirmed])
    for entity in set(flat_after) - changed:  # untouched: still from the first run
        assert runs_after[entity] == runs_before[entity]
    for node in federation:
        assert counts[ids[node.base]] == node.total(), node.slug
    with index.serve() as pages:  # the index's pages (snapshot, or the remote server) agree
        gone = requests.get(pages + "/index/entity", params={"iri": deleted, "format": "json"},
                            timeout=30)
        assert gone.status_code == 404
        hits = requests.get(pages + "/index/search", timeout=30, params={
            "q": f"Umbenannt im Test {tag}", "format": "json"}).json()["items"]
        assert [hit["entity"] for hit in hits] == [renamed]
        page = requests.get(pages + "/index/entity", params={"iri": renamed, "format": "json"},
                            timeout=30).json()
        assert page["record"]["name"] == {"de": f"Umbenannt im Test ({tag})"}
        assert page["source"] == ids[dresden.base]

    third = finished(index.run("--all"))  # nothing changed on any node
    assert sum(e["members_applied"] + e["deletes"] for e in third.values()) == 0
    with index.store() as store:
        assert entity_graphs(store) == after


def test_a_node_killed_mid_harvest_fails_alone_and_the_next_run_converges(federation,
                                                                          index):
    tag = index.backend
    ids = index.add(federation)
    assert all(e["ok"] for e in finished(index.run()).values())
    victim, other = federation[2], federation[0]
    with index.store() as store:
        before = entity_graphs(store)[ids[victim.base]]
    victim_actor = sorted(g for g in before if "/actors/" in g)[-1]
    other_actor = sorted(g for g in entity_graphs_of(index, ids[other.base]) if "/actors/" in g)[-1]
    victim.patch(victim_actor, {"name": {"de": f"Nie angekommen ({tag})"}})
    other.patch(other_actor, {"name": {"de": f"Angekommen ({tag})"}})

    # The victim stops answering (its connections wait in the kernel's queue), the run
    # starts, the other four finish, and the victim dies under the open request.
    victim.proc.send_signal(signal.SIGSTOP)
    run = index.popen("harvest", "run", "--all")
    try:
        reader = LineReader(run)
        others = {ids[n.base] for n in federation if n is not victim}
        deadline = time.monotonic() + 60
        while others - {e["source"] for e in events("\n".join(reader.lines))
                        if e["event"] == "source-finished"}:
            assert time.monotonic() < deadline, reader.lines
            reader.wait_for('"source-finished"', timeout=60)
        victim.kill()
        assert run.wait(60) == 1
        found = events("\n".join(reader.rest()))
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
        run.stdout.close()
    outcome = finished(found)
    assert outcome[ids[victim.base]]["ok"] is False and outcome[ids[victim.base]]["errors"]
    failed = [e for e in found if e["level"] == "error"]
    assert [(e["event"], e["source"]) for e in failed] == [("source-finished", ids[victim.base])]
    assert all(outcome[key]["ok"] for key in others)
    assert found[-1]["event"] == "run-finished" and found[-1]["failed"] == [ids[victim.base]]
    with index.store() as store:
        graphs = entity_graphs(store)
    assert graphs[ids[victim.base]] == before  # the last good data
    assert f'<{other_actor}> <{NAME}> "Angekommen ({tag})"@de' in \
        graphs[ids[other.base]][other_actor]

    victim.start()  # same instance folder, same port
    victim.wait_ready(time.monotonic() + 60)
    assert all(e["ok"] for e in finished(index.run("--all")).values())
    with index.store() as store:
        counts, graphs = entity_counts(store), entity_graphs(store)
    assert f'<{victim_actor}> <{NAME}> "Nie angekommen ({tag})"@de' in \
        graphs[ids[victim.base]][victim_actor]
    assert graphs[ids[victim.base]] == victim.dump_graphs()
    for node in federation:
        assert counts[ids[node.base]] == node.total(), node.slug


def test_watch_harvests_again_at_the_interval_and_stops_on_sigterm(federation, index):
    changed = f"Beim Beobachten geändert ({index.backend})"
    node = federation[3]
    (key,) = index.add([node]).values()
    watcher = index.popen("harvest", "watch")
    try:
        reader = LineReader(watcher)
        reader.wait_for('"round-finished"', timeout=60)
        actor = sorted(u for u in node.dump_graphs() if "/actors/" in u)[0]
        node.patch(actor, {"name": {"de": changed}})
        deadline = time.monotonic() + 30
        while not any(e["event"] == "source-finished" and e["members_applied"] == 1
                      for e in events("\n".join(reader.lines))):
            assert time.monotonic() < deadline, reader.lines
            reader.wait_for('"source-finished"', timeout=30)
        watcher.send_signal(signal.SIGTERM)  # finishes the round under way, then stops
        assert watcher.wait(30) == 0
    finally:
        if watcher.poll() is None:
            watcher.kill()
            watcher.wait()
        watcher.stdout.close()
    rounds = [e for e in events("\n".join(reader.rest())) if e["event"] == "round-finished"]
    assert len(rounds) >= 2 and all(r["ok"] for r in rounds)
    with index.store() as store:
        graph = entity_graphs(store)[key][actor]
    assert f'<{actor}> <{NAME}> "{changed}"@de' in graph


@pytest.fixture
def big_node(tmp_path) -> Iterator[Node]:
    port = free_port_block(1)
    node = prepare("big", f"http://127.0.0.1:{port}", tmp_path / "big",
                   {"NODE_NAME": "Großer Knoten", "FEED_PAGE_SIZE": 100},
                   lambda session: None)
    add_actors(node, 20)
    try:
        launch([node])
        yield node
    finally:
        node.kill()
        node.http.close()


def test_the_index_killed_mid_load_restarts_consistent_and_resumes(big_node, index):
    (key,) = index.add([big_node]).values()
    assert finished(index.run())[key]["ok"]
    seeded = set(entity_graphs_of(index, key))
    assert len(seeded) == 20
    add_actors(big_node, 2500, first=20)  # 25 more feed pages of 100

    run = index.popen("harvest", "run", "--all")
    try:
        reader = LineReader(run)
        reader.wait_for('"pages": 3,', timeout=60)  # three pages applied, more to come
        run.send_signal(signal.SIGKILL)
        assert run.wait(30) == -signal.SIGKILL
        reader.rest()
    finally:
        run.stdout.close()
    assert not any('"source-finished"' in line for line in reader.lines), "killed too late"
    assert_whole_pages_then_resume(index, key, big_node, seeded)


def test_the_sparql_server_killed_mid_load_restarts_consistent_and_resumes(big_node,
                                                                           remote_index):
    """Remote store only (an embedded store has no process of its own): the SPARQL server
    dies under the harvester (SIGKILL)."""
    index = remote_index
    (key,) = index.add([big_node]).values()
    assert finished(index.run())[key]["ok"]
    seeded = set(entity_graphs_of(index, key))
    add_actors(big_node, 2500, first=20)

    run = index.popen("harvest", "run", "--all")
    try:
        reader = LineReader(run)
        reader.wait_for('"pages": 3,', timeout=60)
        index.server.kill()
        assert run.wait(120) == 1  # the source failed (its store is gone); no hang, no crash
        found = events("\n".join(reader.rest()))
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
        run.stdout.close()
    outcome = finished(found)
    assert outcome[key]["ok"] is False and outcome[key]["errors"], found
    assert found[-1]["event"] == "run-finished" and found[-1]["failed"] == [key]

    index.server.start()  # same port, same data folder
    assert_whole_pages_then_resume(index, key, big_node, seeded)


def assert_whole_pages_then_resume(index: Index, key: str, big_node: Node,
                                   seeded: set[str]) -> None:
    """After a crash mid-load: whole entity graphs and a cursor matching the pages applied;
    the next run applies exactly the rest and converges on the node's dump."""
    with index.store() as store:  # reopened after the crash
        cursor = store.cursor(key)
        loaded = store.graphs_of(key)
        graphs = entity_graphs(store)[key]
        derived = store.query(f"SELECT ?e WHERE {{ GRAPH ?sg {{ ?e <{PROV}wasDerivedFrom> "
                              f"<{big_node.base}/> }} }}")
        derived = {row["e"].value for row in derived}
    assert cursor["reader"] == "ldes"
    applied = set(seeded)
    for url in cursor["done"]:  # immutable pages applied completely
        applied |= feed_members(big_node, url)
    for url, info in cursor["pages"].items():  # pages still growing: up to their watermark
        if info.get("latest"):
            applied |= feed_members(big_node, url, info["latest"])
    assert loaded == applied == set(graphs)  # the cursor matches the data: no half page
    assert 300 <= len(loaded) < 2520
    assert derived == loaded  # every loaded entity has its provenance
    dump = big_node.dump_graphs()
    for entity, triples in graphs.items():  # every entity graph complete
        assert triples == dump[entity], entity

    resumed = finished(index.run("--all"))[key]
    assert resumed["ok"] and resumed["members_applied"] == 2520 - len(loaded)
    with index.store() as store:
        assert entity_graphs(store)[key] == dump
        assert entity_counts(store)[key] == big_node.total() == 2520
