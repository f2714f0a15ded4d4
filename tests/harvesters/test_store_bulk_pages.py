"""Large pages of new graphs go through Oxigraph's bulk writer, still all or nothing."""

from __future__ import annotations

import gc

import pyoxigraph as ox
import pytest

from harvesters.errors import StoreError
from harvesters.store import Batch, OxigraphStore

NAME = ox.NamedNode("https://schema.org/name")
TYPE = ox.NamedNode("http://www.w3.org/1999/02/22-rdf-syntax-ns#type")
ACTOR = ox.NamedNode("https://w3id.org/engagement-atlas/ns#Actor")
PROV = ox.NamedNode("http://www.w3.org/ns/prov#wasDerivedFrom")


def page(first: int, count: int, cursor: dict) -> Batch:
    graphs = {}
    for n in range(first, first + count):
        e = ox.NamedNode(f"http://a.test/actors/{n}")
        graphs[e.value] = [ox.Triple(e, TYPE, ACTOR),
                           ox.Triple(e, NAME, ox.Literal(f"A {n}", language="de")),
                           ox.Triple(ox.NamedNode(e.value + "#geo"), NAME, ox.Literal(str(n)))]
    prov = [ox.Triple(ox.NamedNode(g), PROV, ox.NamedNode("http://a.test/")) for g in graphs]
    return Batch("a", graphs, provenance=prov, cursor=cursor)


def dataset(store: OxigraphStore) -> set:
    return {tuple(str(row[v]) for v in ("g", "s", "p", "o"))
            for row in store.query("SELECT * WHERE { GRAPH ?g { ?s ?p ?o } }")}


def bulk_and_plain(tmp_path, monkeypatch) -> tuple[OxigraphStore, OxigraphStore, list]:
    """A store writing pages of new graphs in bulk, one without, and the bulk writes made."""
    bulk, plain = OxigraphStore(tmp_path / "bulk"), OxigraphStore(tmp_path / "plain")
    plain._bulk_pages = False
    written: list = []
    real = bulk._write_quads
    monkeypatch.setattr(bulk, "_write_quads", lambda quads: written.append(real(quads)))
    return bulk, plain, written


@pytest.fixture
def small_pages(monkeypatch):
    monkeypatch.setattr(OxigraphStore, "BULK_PAGE_MIN", 10)


def test_a_bulk_page_writes_what_one_update_writes(tmp_path, small_pages, monkeypatch):
    bulk, plain, written = bulk_and_plain(tmp_path, monkeypatch)
    for store in (bulk, plain):
        store.apply(page(0, 20, {"n": 1}))
        store.apply(page(20, 20, {"n": 2}))
        store.apply(Batch("a", {"http://a.test/actors/3": page(3, 1, {})
                                .replacements["http://a.test/actors/3"]}, cursor={"n": 3}))
    assert len(written) == 2  # the third batch replaces a graph: one update as before
    assert dataset(bulk) == dataset(plain)
    assert bulk.cursor("a") == {"n": 3} and bulk.graphs_of("a") == plain.graphs_of("a")


def test_a_failing_bulk_write_leaves_the_previous_state(tmp_path, small_pages, monkeypatch):
    store = OxigraphStore(tmp_path / "s")
    store.apply(page(0, 20, {"n": 1}))
    before = dataset(store)

    def broken(quads):
        raise StoreError("disk full", reason="bulk-load-failed")

    monkeypatch.setattr(store, "_write_quads", broken)
    with pytest.raises(StoreError):
        store.apply(page(20, 20, {"n": 2}))
    assert dataset(store) == before and store.cursor("a") == {"n": 1}


class Crash(BaseException):
    """The process dying: no clean-up code runs."""


@pytest.mark.parametrize("when", ["after-write", "during-finish"])
def test_a_crash_in_a_bulk_page_is_undone_when_the_store_opens(tmp_path, small_pages,
                                                               monkeypatch, when):
    store = OxigraphStore(tmp_path / "s")
    store.apply(page(0, 20, {"n": 1}))
    before = dataset(store)
    real_write, real_update = store._write_quads, store._update

    def write(quads):
        real_write(quads)
        if when == "after-write":
            raise Crash

    def update(text):
        if when == "during-finish" and "DELETE WHERE" in text and "pendingGraph" in text:
            raise Crash
        real_update(text)

    monkeypatch.setattr(store, "_write_quads", write)
    monkeypatch.setattr(store, "_update", update)
    with pytest.raises(Crash):
        store.apply(page(20, 20, {"n": 2}))
    store.close()
    del store
    monkeypatch.undo()
    gc.collect()
    reopened = OxigraphStore(tmp_path / "s")
    assert dataset(reopened) == before and reopened.cursor("a") == {"n": 1}
    reopened.apply(page(20, 20, {"n": 2}))  # and the run resumes
    assert len(reopened.graphs_of("a")) == 40


def test_bulk_pages_keep_awkward_literals_and_blank_nodes_exact(tmp_path, small_pages,
                                                                 monkeypatch):
    """The bulk writer gets N-Quads text: literals with line breaks, " ." and "_:" inside,
    and pages with blank nodes (which go as an update) end up as one update writes them."""
    odd = ["two\nlines .\n", 'quote " .\n<http://x.test/> .', "tab\tand \\ backslash",
           "ünïcödé \u2028", "cr\r\n ."]
    unusual = ["_:b0 looks blank", "<<x>>"]  # such pages go as an update (either is fine)

    def awkward(first: int, cursor: dict, blank: bool = False, texts: list = odd) -> Batch:
        batch = page(first, 20, cursor)
        for n, (graph, triples) in enumerate(batch.replacements.items()):
            e = ox.NamedNode(graph)
            triples.append(ox.Triple(e, NAME, ox.Literal(texts[n % len(texts)], language="en")))
            if blank and n == 3:
                node = ox.BlankNode()
                triples += [ox.Triple(e, NAME, node), ox.Triple(node, NAME, ox.Literal("b"))]
        return batch

    bulk, plain, written = bulk_and_plain(tmp_path, monkeypatch)
    for store in (bulk, plain):
        store.apply(awkward(0, {"n": 1}))
        store.apply(awkward(20, {"n": 2}, blank=True))
        store.apply(awkward(40, {"n": 3}, texts=odd + unusual))
    assert len(written) == 1  # the page with a blank node went as one update

    def canonical(store: OxigraphStore) -> set:
        return {tuple("_:" if term.startswith("_:") else term for term in row)
                for row in dataset(store)}

    assert canonical(bulk) == canonical(plain) and len(dataset(bulk)) == len(dataset(plain))
    assert bulk.cursor("a") == {"n": 3} and bulk.graphs_of("a") == plain.graphs_of("a")
