"""Readers against real node processes over loopback HTTP: feed, dump, catalog.

Each node is a ``python -m service.cli serve`` process with its own SQLite database,
reached through a logging proxy (test_readers_support.py); entities are created, renamed
and deleted through the node's API. Replicas are built from the Pages as the pipeline
would apply them and compared with the node's own records (JSON-LD, `vocab.from_graph`).
"""

from __future__ import annotations

import time
from email.utils import parsedate_to_datetime

import pyoxigraph as ox
import pytest

from harvesters.model import Source
from harvesters.pipeline import harvest
from harvesters.readers import read, read_ckan, read_dump, read_feed
from harvesters.readers._shared import iso
from harvesters.store import OxigraphStore
from vocab.namespaces import DCAT, DCTERMS, EA

from .test_readers_support import CountingFetcher, apply, assert_replica_matches, running_node


def actor(n: int) -> dict:
    return {"name": {"de": f"Verein {n}"}, "actorTypes": ["verein"],
            "geo": {"latitude": 51.05, "longitude": 13.74},
            "contactPoints": [{"contactType": {"de": "Info"}, "email": f"info{n}@v.example"}]}


def test_feed_replicates_the_node_then_resumes_with_only_the_new_changes(tmp_path):
    with running_node(tmp_path, feed_page_size=10) as node:
        actors = [node.create("actors", actor(n)) for n in range(22)]
        node.create("cooperations", {"partners": actors[:2], "levels": ["professional"]})
        node.create("projects", {"name": {"de": "Code Door"}})
        node.create("offers", {"name": {"de": "Sprachcafé"}, "offerTypes": ["course"],
                               "provider": actors[3]})
        # 25 changes: pages 1 and 2 full (immutable), page 3 filling
        source, fetcher, replica = node.source(prefer_dump=False), CountingFetcher(), {}
        feed = source.feed_url
        first = apply(read_feed(source, None, fetcher), replica)
        assert_replica_matches(node, replica)
        assert [p.url for p in first] == [f"{feed}/1", f"{feed}/2", f"{feed}/3"]
        assert sum(len(p.members) for p in first) == 25
        # without the dump, the whole stream is one snapshot: the last page reconciles
        assert len({p.snapshot for p in first}) == 1 and first[0].snapshot
        assert [p.full_replace for p in first] == [False, False, True]
        cursor = first[-1].cursor
        assert cursor["done"] == [f"{feed}/1", f"{feed}/2"] and cursor["complete"]
        assert set(cursor["pages"]) == {feed, f"{feed}/root", f"{feed}/3"}
        for page in first:  # the version's timestamp is provenance, not entity state
            for member in page.members:
                assert member.version.startswith(member.entity + "/versions/")
                assert not any("generatedAtTime" in t.predicate.value for t in member.triples)

        fetcher.log.clear()
        assert list(read_feed(source, cursor, fetcher)) == []  # nothing changed
        assert sorted(fetcher.log) == sorted([(feed, 304), (f"{feed}/root", 304),
                                              (f"{feed}/3", 304)])

        node.rename(actors[5], "Neu")
        node.rename(actors[6], "Neu")
        node.delete(actors[7])
        node.delete(actors[20])
        added = node.create("actors", actor(99))
        fetcher.log.clear()
        second = apply(read_feed(source, cursor, fetcher), replica)
        members = [m for p in second for m in p.members]
        assert sorted(m.entity for m in members) == sorted(
            [actors[5], actors[6], actors[7], actors[20], added])
        assert sorted(m.entity for m in members if m.deleted) == sorted([actors[7], actors[20]])
        assert all(m.triples == [] for m in members if m.deleted)
        assert all(p.snapshot is None and not p.full_replace for p in second)
        assert f"{feed}/1" not in dict(fetcher.log)  # immutable pages are never re-read
        assert_replica_matches(node, replica)
        cursor = second[-1].cursor
        assert f"{feed}/3" in cursor["done"]  # it filled up and became immutable
        assert list(read_feed(source, cursor, fetcher)) == []


def test_first_harvest_reads_the_dump_then_the_feed_after_it(tmp_path):
    with running_node(tmp_path, feed_page_size=10) as node:
        for n in range(20):
            node.create("actors", actor(n))
        time.sleep(1.05 - time.time() % 1)  # the next change falls in a later second
        last = node.create("actors", actor(20))
        source, fetcher, replica = node.source(), CountingFetcher(), {}
        feed, dump = source.feed_url, source.dump_url
        pages = apply(read_feed(source, None, fetcher), replica)
        assert_replica_matches(node, replica)
        assert pages[0].url == dump and pages[0].full_replace and pages[0].snapshot
        assert sorted(m.entity for m in pages[0].members) == sorted(node.live)
        # the feed position after the dump: pages wholly before its Last-Modified are skipped
        fetched = [url for url, _status in fetcher.log]
        assert f"{feed}/1" not in fetched and f"{feed}/2" not in fetched
        assert [p.url for p in pages[1:]] == [f"{feed}/3"]
        assert [m.entity for m in pages[1].members] == [last]
        cursor = pages[-1].cursor
        modified = node.http.head(f"{node.api}/dumps/all.nt.gz").headers["Last-Modified"]
        assert cursor["since"] == iso(parsedate_to_datetime(modified))
        assert cursor["dump"]["url"] == dump and not pages[-1].full_replace

        node.rename(last, "Umbenannt")
        gone = next(iter(node.live))
        node.delete(gone)
        later = apply(read(source, cursor, fetcher), replica)
        assert sorted(m.entity for p in later for m in p.members) == sorted([last, gone])
        assert_replica_matches(node, replica)


@pytest.fixture(scope="module")
def filled(tmp_path_factory):
    """A node with entities of several kinds (read only by the tests below)."""
    with running_node(tmp_path_factory.mktemp("filled")) as node:
        actors = [node.create("actors", actor(n)) for n in range(6)]
        node.create("cooperations", {"partners": actors[:2], "levels": ["professional"]})
        node.create("offers", {"name": {"de": "Sprachcafé"}, "offerTypes": ["course"],
                               "provider": actors[0]})
        node.create("events", {"name": {"de": "Fest"}, "startDate": "2026-06-01T14:00:00Z"})
        yield node


@pytest.mark.parametrize("options", [{}, {"dump_batch": 3}, {"dump_grouped": False}],
                         ids=["one-page", "batches", "spill"])
def test_the_dump_reader_yields_every_entity(filled, options):
    source, replica = filled.source(**options), {}
    pages = apply(read_dump(source, None, CountingFetcher()), replica)
    assert_replica_matches(filled, replica)
    assert len({p.snapshot for p in pages}) == 1
    assert [p.full_replace for p in pages] == [False] * (len(pages) - 1) + [True]
    assert len(pages) == (3 if options.get("dump_batch") else 1)
    shortcut = ox.NamedNode(str(EA.cooperatesWith))  # a cooperation's, not the actors' state
    assert not any(t.predicate == shortcut for p in pages for m in p.members for t in m.triples)
    assert all(p.dropped == 0 and not p.rejected for p in pages)
    assert list(read_dump(source, pages[-1].cursor, CountingFetcher())) == []  # 304


def test_the_ckan_reader_reads_the_node_catalog(filled):
    source = Source("catalog", filled.base + "/catalog", filled.base + "/", None, None,
                    kind="ckan")
    pages = list(read(source, None, CountingFetcher()))
    assert len(pages) == 1 and pages[0].full_replace and pages[0].snapshot
    members = {m.entity: m for m in pages[0].members}
    collections = ("actors", "offers", "events", "projects", "funding-programmes",
                   "cooperations")
    assert sorted(members) == sorted(f"{filled.base}/catalog#{c}" for c in collections)
    actors = members[f"{filled.base}/catalog#actors"]
    subjects = {t.subject.value for t in actors.triples}
    titles = {t.object.value for t in actors.triples
              if t.subject.value == actors.entity and t.predicate.value == str(DCTERMS.title)}
    assert titles == {"Akteur*innen", "Actors"}
    # its distributions come with it (one hop inside the URI space), other datasets do not
    assert f"{filled.base}/catalog#actors-dump-nt" in subjects
    assert not subjects & {f"{filled.base}/catalog#offers", f"{filled.base}/catalog"}
    download = {t.object.value for t in actors.triples
                if t.predicate.value == str(DCAT.downloadURL)}
    assert f"{filled.base}/dumps/actors.nt.gz" in download
    assert list(read_ckan(source, pages[0].cursor, CountingFetcher())) == []  # 304


def test_catalog_entries_load_into_the_index_with_their_distributions(filled, tmp_path):
    source = Source("catalog", filled.base + "/catalog", filled.base + "/", None, None,
                    kind="ckan")
    with OxigraphStore(tmp_path / "index") as store:
        report = harvest(source, read(source, None, CountingFetcher()), store)
        assert report.ok and report.members_applied == 6 and report.quarantined_count == 0
        graph = f"{filled.base}/catalog#actors"
        rows = list(store.query(
            f"SELECT ?url WHERE {{ GRAPH <{graph}> {{ ?d <{DCAT.downloadURL}> ?url }} }}"))
        assert f"{filled.base}/dumps/actors.nt.gz" in {r["url"].value for r in rows}
