"""The index's change journal (harvesters/journal.py) and the pipeline writing it.

What must hold: entries get increasing seqs and never-decreasing published times; a member
identical to the entity's latest entry adds nothing (a resumed page, a no-change harvest);
compaction keeps the latest entry per entity, deletions included; the pipeline journals each
batch with the ORIGINAL source's entry URL and version.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pyoxigraph as ox
import pytest

from harvesters.journal import Journal
from harvesters.model import Member, Origin, Page, Source
from harvesters.parse import parse_rdf
from harvesters.pipeline import harvest
from harvesters.store import STATE_NS, OxigraphStore
from vocab import to_graph

A = "http://a.test"
T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def triples(entity: str, name: str) -> list[ox.Triple]:
    return [ox.Triple(ox.NamedNode(entity), ox.NamedNode("https://schema.org/name"),
                      ox.Literal(name, language="de")),
            ox.Triple(ox.NamedNode(entity), ox.NamedNode("https://schema.org/address"),
                      ox.BlankNode()),
            ]


def canonical(found) -> set[str]:
    dataset = ox.Dataset(ox.Quad(t.subject, t.predicate, t.object) for t in found)
    dataset.canonicalize(ox.CanonicalizationAlgorithm.UNSTABLE)  # blank node labels
    return {str(quad) for quad in dataset}


class Clock:
    def __init__(self, at: datetime):
        self.at = at

    def __call__(self) -> datetime:
        return self.at


@pytest.fixture
def journal(tmp_path):
    clock = Clock(T0)
    with Journal(tmp_path / "index.journal.sqlite3", clock=clock) as j:
        j.clock_ = clock
        yield j


def test_entries_are_ordered_and_published_never_goes_back(journal):
    e1, e2 = f"{A}/actors/1", f"{A}/actors/2"
    assert journal.record("a", {e1: triples(e1, "Eins")}, origins={e1: (A + "/", None)}) == 1
    journal.clock_.at = T0 - timedelta(hours=1)  # the clock went back (another writer, NTP)
    assert journal.record("a", {e2: triples(e2, "Zwei")}) == 1
    first, second = journal.entries_between(1, 10)
    assert (first.seq, second.seq) == (1, 2)
    assert second.published >= first.published == T0
    assert first.origin == A + "/" and first.version is None and not first.deleted
    assert {str(t.object) for t in first.triples()} >= {'"Eins"@de'}


def test_the_same_state_again_adds_nothing(journal):
    e1 = f"{A}/actors/1"
    journal.record("a", {e1: triples(e1, "Eins")}, origins={e1: (A + "/", A + "/v/1")})
    # Parsed again: other blank node labels, another version IRI, same content.
    assert journal.record("a", {e1: triples(e1, "Eins")},
                          origins={e1: (A + "/", A + "/v/2")}) == 0
    assert journal.record("a", {}, [f"{A}/actors/never"]) == 0  # never published
    assert journal.latest_seq() == 1


def test_compaction_keeps_the_latest_entry_per_entity_and_deletions(journal):
    e1, e2 = f"{A}/actors/1", f"{A}/actors/2"
    journal.record("a", {e1: triples(e1, "Eins"), e2: triples(e2, "Zwei")})
    journal.record("a", {e1: triples(e1, "Eins neu")})
    journal.record("a", {}, [e2])
    assert journal.record("a", {}, [e2]) == 0  # already deleted
    kept = journal.entries_between(1, 100)
    assert [(e.seq, e.entity, e.deleted) for e in kept] == [(3, e1, False), (4, e2, True)]
    assert journal.latest_seq() == 4
    assert journal.entry(1) is None  # compacted away
    stats = journal.page_stats(2, 2)
    assert [(s.number, s.count) for s in stats] == [(1, 0), (2, 2)]
    assert journal.counts() == {}  # no origins recorded here


def test_a_reader_sees_what_the_writer_committed(journal, tmp_path):
    e1 = f"{A}/actors/1"
    journal.record("a", {e1: triples(e1, "Eins")})
    with Journal(tmp_path / "index.journal.sqlite3", readonly=True) as reader:
        assert reader.latest_seq() == 1
        journal.record("a", {e1: triples(e1, "Eins neu")})
        assert [e.seq for e in reader.entries_between(1, 5)] == [2]


# --------------------------------------------------------------------------- with the pipeline


def member(base: str, n: int, name: str, *, version: int = 1, deleted: bool = False,
           origin: Origin | None = None) -> Member:
    entity = f"{base}/actors/a{n}"
    data = to_graph("actor", {"id": f"a{n}", "name": {"de": name}, "actorTypes": ["verein"],
                              "status": "active"}, base).serialize(format="nt", encoding="utf-8")
    state = [] if deleted else parse_rdf(data, "application/n-triples", base_iri=None)
    return Member(entity, f"{entity}/versions/{version}", "2026-01-01T10:00:00Z", deleted,
                  state, origin)


def test_the_pipeline_journals_batches_idempotently(tmp_path):
    src = Source("a.test", A + "/", A + "/", A + "/feed", None, name="A")
    with OxigraphStore(tmp_path / "index") as store, \
            Journal(tmp_path / "index.journal.sqlite3") as journal:
        page = Page(A + "/feed/1", [member(A, 1, "Eins"), member(A, 2, "Zwei")], {"p": 1})
        assert harvest(src, [page], store, journal=journal).ok
        assert harvest(src, [page], store, journal=journal).ok  # resumed: applied again
        entries = journal.entries_between(1, 100)
        assert [e.entity for e in entries] == [f"{A}/actors/a1", f"{A}/actors/a2"]
        assert entries[0].origin == A + "/" and entries[0].version == f"{A}/actors/a1/versions/1"
        gone = Page(A + "/feed/1", [member(A, 2, "", version=2, deleted=True)], {"p": 2})
        assert harvest(src, [gone], store, journal=journal).ok
        last = journal.entries_between(3, 3)[0]
        assert last.deleted and last.entity == f"{A}/actors/a2"


def test_an_index_older_than_its_journal_is_seeded_from_its_store(tmp_path):
    src = Source("a.test", A + "/", A + "/", A + "/feed", None, name="A")
    with OxigraphStore(tmp_path / "index") as store:
        page = Page(A + "/feed/1", [member(A, 1, "Eins"), member(A, 2, "Zwei")], {"p": 1})
        assert harvest(src, [page], store).ok  # no journal yet
        with Journal(tmp_path / "new.journal.sqlite3") as journal:
            assert journal.seed(store, chunk=1) == 2
            entries = journal.entries_between(1, 100)
            assert [(e.entity, e.origin, e.version) for e in entries] == [
                (f"{A}/actors/a{n}", A + "/", f"{A}/actors/a{n}/versions/1") for n in (1, 2)]
            stored = list(store.query(f"CONSTRUCT {{ ?s ?p ?o }} WHERE {{ GRAPH "
                                      f"<{A}/actors/a1> {{ ?s ?p ?o }} }}"))
            assert len(canonical(stored)) > 3
            assert canonical(stored) == canonical(entries[0].triples())
            assert journal.seed(store) == 0  # a journal in use is never seeded again
            # the pipeline's next record of the same state adds nothing
            assert harvest(src, [page], store, journal=journal).ok
            assert journal.latest_seq() == 2


def test_members_through_a_trusted_index_keep_their_original_source(tmp_path):
    """A source of kind "index": authority by the origin's space; provenance names the
    origin (wasDerivedFrom, hadPrimarySource) and the index (harvestedVia); the journal
    carries the ORIGIN, not the intermediary; a directly registered origin wins."""
    index = "http://idx.test/index"
    origins = [{"entry_url": A + "/", "uri_space": A + "/", "name": "A"},
               {"entry_url": "http://b.test/", "uri_space": "http://b.test/", "name": "B"}]
    src = Source("idx.test-index", index, "http://idx.test/index/", index + "/feed", None,
                 kind="index", name="Index", options={"origins": origins})
    a = Origin(A + "/", A + "/", "A", f"{A}/actors/a1/versions/4")
    b = Origin("http://b.test/", "http://b.test/", "B", "http://b.test/actors/a1/versions/2")
    liar = Origin(A + "/", "http://b.test/", "A")  # names A, entity in B's space
    page = Page(index + "/feed/1", [
        member(A, 1, "Eins", origin=a),
        member("http://b.test", 1, "Bee", origin=b),
        member("http://b.test", 2, "Falsch", origin=liar)], {"p": 1})
    with OxigraphStore(tmp_path / "index") as store, \
            Journal(tmp_path / "index.journal.sqlite3") as journal:
        report = harvest(src, [page], store, journal=journal, direct=["http://b.test/"])
        assert report.ok and report.members_applied == 1
        assert report.dropped >= 1  # the member naming A for an entity of B
        assert report.skipped == ["http://b.test/actors/a1: origin registered directly in "
                                  "this index"]
        assert store.graphs_of(src.id) == {f"{A}/actors/a1"}
        rows = store.query(f"SELECT ?p ?o WHERE {{ GRAPH ?g {{ <{A}/actors/a1> ?p ?o }} "
                           f"FILTER(STRSTARTS(STR(?g), 'urn:')) }}")
        prov = {(r["p"].value, r["o"].value) for r in rows}
        assert ("http://www.w3.org/ns/prov#wasDerivedFrom", A + "/") in prov
        assert ("http://www.w3.org/ns/prov#hadPrimarySource", a.version) in prov
        assert (STATE_NS + "harvestedVia", index) in prov
        (entry,) = journal.entries_between(1, 10)
        assert (entry.origin, entry.version, entry.source) == (A + "/", a.version, src.id)


def test_a_graph_has_one_owner_and_a_direct_registration_takes_over(tmp_path):
    """Two trusted indexes naming the same origin: the second one's member is left out (the
    graph is owned). Once the origin is registered directly, the index source hands its
    graphs over at the start of its next run (journalled as deletions)."""
    origins = {"origins": [{"entry_url": A + "/", "uri_space": A + "/", "name": "A"}]}
    one = Source("one", "http://one.test/index", "http://one.test/index/",
                 "http://one.test/index/feed", None, kind="index", options=origins)
    two = Source("two", "http://two.test/index", "http://two.test/index/",
                 "http://two.test/index/feed", None, kind="index", options=origins)
    a = Origin(A + "/", A + "/", "A", f"{A}/actors/a1/versions/1")
    with OxigraphStore(tmp_path / "index") as store, \
            Journal(tmp_path / "index.journal.sqlite3") as journal:
        assert harvest(one, [Page("p1", [member(A, 1, "Eins", origin=a)], {"p": 1})], store,
                       journal=journal).members_applied == 1
        second = harvest(two, [Page("p2", [member(A, 1, "Eins", origin=a)], {"p": 1})], store,
                         journal=journal)
        assert second.ok and second.members_applied == 0
        assert second.skipped == [f"{A}/actors/a1: entity graph owned by source one"]
        handed = harvest(one, [], store, journal=journal, direct=[A + "/"])
        assert handed.ok and handed.deletes == 1 and store.graphs_of("one") == set()
        direct = Source("a.test", A + "/", A + "/", A + "/feed", None)
        assert harvest(direct, [Page("p3", [member(A, 1, "Eins")], {"p": 1})], store,
                       journal=journal, direct=[A + "/"]).members_applied == 1
        kept = journal.entries_between(1, 10)
        assert [(e.source, e.deleted) for e in kept] == [("a.test", False)]


def test_large_batches_compare_and_compact_every_entity(journal):
    """More entities than one look-up chunk (500): unchanged ones add nothing, changed ones
    replace their entry, in batches with and without blank nodes."""
    def plain(entity: str, name: str) -> list[ox.Triple]:
        return triples(entity, name)[:1]

    entities = [f"{A}/actors/{n}" for n in range(1200)]
    make = {e: (triples if n % 2 else plain) for n, e in enumerate(entities)}
    assert journal.record("a", {e: make[e](e, e) for e in entities}) == 1200
    assert journal.record("a", {e: make[e](e, e) for e in entities}) == 0
    changed = [entities[3], entities[700], entities[1101]]
    again = {e: make[e](e, e + (" neu" if e in changed else "")) for e in entities}
    assert journal.record("a", again, [entities[5]]) == 4
    assert journal.latest_seq() == 1204
    kept = journal.entries_between(1, 1204)
    assert len(kept) == 1200 and len({k.entity for k in kept}) == 1200
    assert {k.entity for k in kept if k.seq > 1200} == {*changed, entities[5]}
