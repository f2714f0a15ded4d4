"""The LDES reader when its saved position is lost, and when a page speaks for others.

A real node (retention "latest", deletions kept one day) behind the logging proxy of
test_readers_support.py; the proxy appends foreign statements to a page and later makes
a saved page disappear (410), as a compacting or rebuilt server would.
"""

from __future__ import annotations

from datetime import timedelta

from harvesters.readers import read_feed
from harvesters.readers._shared import iso, now

from .test_readers import actor
from .test_readers_support import CountingFetcher, apply, assert_replica_matches, running_node

FOREIGN = (b'<http://other.example/actors/x> <https://schema.org/name> "Fremd"@de .\n'
           b"<http://other.example/actors/x> <http://www.w3.org/1999/02/22-rdf-syntax-ns#type>"
           b" <https://w3id.org/engagement-atlas/ns#Actor> .\n")


def test_foreign_statements_are_dropped_and_a_lost_position_falls_back_to_the_dump(tmp_path):
    with running_node(tmp_path, feed_page_size=10, feed_retention="latest",
                      feed_keep_deletes_days=1) as node:
        actors = [node.create("actors", actor(n)) for n in range(12)]
        source, fetcher, replica = node.source(prefer_dump=False), CountingFetcher(), {}
        feed = source.feed_url
        node.proxy.inject["/feed/2"] = FOREIGN
        pages = apply(read_feed(source, None, fetcher), replica)
        assert_replica_matches(node, replica)  # nothing about other.example got in
        by_url = {p.url: p for p in pages}
        assert by_url[f"{feed}/2"].dropped == 2
        assert by_url[f"{feed}/2"].examples == ["http://other.example/actors/x"]
        assert by_url[f"{feed}/1"].dropped == 0
        cursor = pages[-1].cursor
        # "latest" retention: compaction may change any page, so none is immutable
        assert cursor["done"] == [] and f"{feed}/1" in cursor["pages"]
        assert cursor["retention"] == {"from": None, "log": None, "deletes": 86400.0}

        # the saved page is gone (a rebuilt or compacted server): read the dump, reconcile
        node.delete(actors[11])  # its delete member would have been on the lost page
        node.delete(actors[0])
        node.proxy.gone.add("/feed/2")
        del node.proxy.inject["/feed/2"]
        fetcher.log.clear()
        again = apply(read_feed(source, cursor, fetcher), replica)
        assert ("/feed/2", 410) in node.proxy.log
        assert again[0].url == source.dump_url and again[0].full_replace
        assert_replica_matches(node, replica)
        cursor = again[-1].cursor
        assert cursor["dump"] and cursor["since"] and cursor["complete"]

        # a position older than the feed keeps deletions: the dump again
        node.proxy.gone.clear()
        stale = {**cursor, "checked": iso(now() - timedelta(days=3))}
        node.delete(actors[5])
        third = apply(read_feed(source, stale, fetcher), replica)
        assert third[0].url == source.dump_url and third[0].full_replace
        assert_replica_matches(node, replica)
        # a recent position just goes on with the feed
        node.delete(actors[6])
        fourth = apply(read_feed(source, third[-1].cursor, fetcher), replica)
        assert [m.entity for p in fourth for m in p.members] == [actors[6]]
        assert all(p.snapshot is None for p in fourth)
        assert_replica_matches(node, replica)
