"""The SPARQL mirror follows the SQL records: changes, deletions, rebuilds, snapshots."""

from __future__ import annotations

import json
import os
import shutil

import pytest
from pyoxigraph import Literal, NamedNode, Quad, RdfFormat, Store
from rdflib import Graph
from rdflib.compare import isomorphic

from service import db, sparql_store, store
from vocab import entity_uri, load_record, to_graph

from ..conftest import BASE

DIRECT = "application/sparql-query"
NAMES = ("SELECT ?g ?name { GRAPH ?g { ?g <https://schema.org/name> ?name } } "
         "ORDER BY ?g ?name")


def _actor(name: str) -> dict:
    return load_record("actor", {"name": {"de": name}, "actorTypes": ["verein"]})


def names(client) -> list[tuple[str, str]]:
    response = client.post("/sparql", data=NAMES, content_type=DIRECT,
                           headers={"Accept": "application/sparql-results+json"})
    assert response.status_code == 200, response.data
    return [(b["g"]["value"].rpartition("/")[2], b["name"]["value"])
            for b in response.json["results"]["bindings"]]


@pytest.fixture
def folder(app):
    return sparql_store.mirror_folder(app.instance_path)


def sync(app, folder):
    with app.app_context():
        return sparql_store.sync(db.session(), folder, BASE, wait=10)


def test_creates_updates_and_deletes_reach_sparql(app, client):
    with app.app_context():
        s = db.session()
        a = store.create(s, "actor", _actor("Alt"), entity_id="a")
        assert names(client) == [("a", "Alt")]
        store.create(s, "actor", _actor("Bee"), entity_id="b")
        store.replace(s, "actor", "a", _actor("Neu"), expected_version=a.version)
        assert names(client) == [("a", "Neu"), ("b", "Bee")]
        store.delete_entity(s, "actor", "b", expected_version=1)
        assert names(client) == [("a", "Neu")]
        store.delete_entity(s, "actor", "a", expected_version=2)
        assert names(client) == []


def test_the_mirror_holds_the_mapping_of_each_live_record(app, folder):
    with app.app_context():
        s = db.session()
        store.create(s, "actor", _actor("A"), entity_id="a")
        store.create(s, "cooperation", load_record("cooperation", {
            "partners": [f"{BASE}/actors/a", "http://elsewhere.example/actors/x"],
            "levels": ["professional"]}), entity_id="c")
        gone = store.create(s, "actor", _actor("Weg"), entity_id="weg")
        store.delete_entity(s, "actor", "weg", expected_version=gone.version)
        state = sync(app, folder)
        records = {("actor", "a"): store.get(s, "actor", "a").record,
                   ("cooperation", "c"): store.get(s, "cooperation", "c").record}
    snapshot = Store.read_only(str(folder / "snapshots" / state.snapshot))
    assert {g.value for g in snapshot.named_graphs()} == {
        str(entity_uri(BASE, kind, entity_id)) for kind, entity_id in records}
    for (kind, entity_id), record in records.items():
        graph = Graph().parse(data=snapshot.dump(format=RdfFormat.N_TRIPLES, from_graph=NamedNode(
            entity_uri(BASE, kind, entity_id))), format="nt")
        assert isomorphic(graph, Graph().parse(
            data=to_graph(kind, record, BASE).serialize(format="nt"), format="nt"))


def test_a_deleted_store_is_rebuilt_on_the_next_query(app, client, folder):
    with app.app_context():
        store.create(db.session(), "actor", _actor("A"), entity_id="a")
    assert names(client) == [("a", "A")]
    shutil.rmtree(folder)
    assert names(client) == [("a", "A")]
    assert (folder / "primary").is_dir()


@pytest.mark.parametrize("damage", ["seq-ahead", "other-log", "other-base", "no-state",
                                    "garbled-state", "no-primary"])
def test_a_mirror_in_doubt_is_rebuilt_from_sql(app, client, folder, damage):
    with app.app_context():
        store.create(db.session(), "actor", _actor("A"), entity_id="a")
    assert names(client) == [("a", "A")]
    # A graph no record explains: only a rebuild removes it.
    primary = Store(str(folder / "primary"))
    primary.add(_stray())
    del primary
    state_file = folder / "state.json"
    state = json.loads(state_file.read_text())
    if damage == "seq-ahead":
        state["seq"] += 5
    elif damage == "other-log":
        state["mark"] = "1999-01-01T00:00:00Z"
    elif damage == "other-base":
        state["base"] = "http://old.example"
    state_file.write_text(json.dumps(state))
    if damage == "no-state":
        state_file.unlink()
    elif damage == "garbled-state":
        state_file.write_text("{")
    elif damage == "no-primary":
        shutil.rmtree(folder / "primary")
    assert names(client) == [("a", "A")]
    response = client.get("/sparql", query_string={"query": "ASK { GRAPH <http://stray.example/g> "
                                                             "{ ?s ?p ?o } }"})
    assert response.json["boolean"] is False


def _stray() -> Quad:
    return Quad(NamedNode("http://stray.example/s"), NamedNode("https://schema.org/name"),
                Literal("stray"), NamedNode("http://stray.example/g"))


def test_changes_are_replayed_not_rebuilt(app, folder, monkeypatch):
    with app.app_context():
        store.create(db.session(), "actor", _actor("A"), entity_id="a")
    sync(app, folder)
    primary = Store(str(folder / "primary"))
    primary.add(_stray())  # survives a catch-up: proof that nothing was rebuilt
    del primary
    monkeypatch.setattr(sparql_store, "_rebuild", _forbidden)
    with app.app_context():
        store.create(db.session(), "actor", _actor("B"), entity_id="b")
    state = sync(app, folder)
    snapshot = Store.read_only(str(folder / "snapshots" / state.snapshot))
    assert {g.value for g in snapshot.named_graphs()} == {
        f"{BASE}/actors/a", f"{BASE}/actors/b", "http://stray.example/g"}


def _forbidden(*_args):
    raise AssertionError("the mirror was rebuilt")


def test_a_long_backlog_is_rebuilt(app, folder, monkeypatch):
    sync(app, folder)
    monkeypatch.setattr(sparql_store, "REBUILD_AFTER", 2)
    with app.app_context():
        for name in "abc":
            store.create(db.session(), "actor", _actor(name), entity_id=name)
    calls = []
    rebuild = sparql_store._rebuild
    monkeypatch.setattr(sparql_store, "_rebuild", lambda *a: calls.append(1) or rebuild(*a))
    state = sync(app, folder)
    assert calls == [1] and state.seq == 3
    snapshot = Store.read_only(str(folder / "snapshots" / state.snapshot))
    assert len(list(snapshot.named_graphs())) == 3


def test_nothing_is_written_while_nothing_changes(app, folder):
    first = sync(app, folder)
    assert sync(app, folder) == first
    with app.app_context():
        store.create(db.session(), "actor", _actor("A"), entity_id="a")
    second = sync(app, folder)
    assert second.seq == first.seq + 1 and second.snapshot != first.snapshot
    assert second.mark is not None


def test_old_snapshots_go_once_no_query_reads_them(app, folder):
    first = sync(app, folder)
    reading, lock = sparql_store.open_snapshot(folder)  # a query holding the first snapshot
    try:
        with app.app_context():
            store.create(db.session(), "actor", _actor("A"), entity_id="a")
        second = sync(app, folder)
        assert (folder / "snapshots" / first.snapshot).is_dir()
        assert list(reading.named_graphs()) == []  # it still sees its own, unchanged state
    finally:
        del reading
        os.close(lock)
    with app.app_context():
        store.create(db.session(), "actor", _actor("B"), entity_id="b")
    third = sync(app, folder)
    left = sorted(p.name for p in (folder / "snapshots").iterdir())
    assert left == [third.snapshot, f"{third.snapshot}.lock"]
    assert second.snapshot != third.snapshot


def test_open_snapshot_without_a_mirror(tmp_path):
    with pytest.raises(FileNotFoundError):
        sparql_store.open_snapshot(tmp_path / "nothing")
