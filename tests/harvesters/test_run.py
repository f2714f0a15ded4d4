"""Running harvests (harvesters/run.py, harvesters/settings.py).

Readers are replaced by small fakes (the real ones run against real nodes in
tests/e2e/test_index_harvest.py): what must hold here is the orchestration — settings from
the configuration, which sources are due, concurrent runs where one failure never stops the
others, a page reported only once it is applied, and the watch loop's rounds. The commands
are in test_run_cli.py.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from harvesters.errors import FetchError, HarvestError
from harvesters.fetch import Fetcher, FetchPolicy
from harvesters.model import Member, Page, Source
from harvesters.parse import parse_rdf
from harvesters.pipeline import harvest
from harvesters.run import (
    UnknownSource,
    due_sources,
    last_runs,
    polling_interval,
    run_once,
    run_sources,
    watch,
)
from harvesters.settings import MIN_INTERVAL, HarvestSettings, open_store
from harvesters.store import OxigraphStore, latest_snapshot
from vocab import to_graph


def source(key: str, **options) -> Source:
    base = f"http://{key}.test"
    return Source(key, base + "/", base + "/", base + "/feed", None, options=options)


def actor(key: str, n: int) -> Member:
    base = f"http://{key}.test"
    data = to_graph("actor", {"id": f"a{n}", "name": {"de": f"Verein {n}"},
                              "actorTypes": ["verein"]}, base)
    triples = parse_rdf(data.serialize(format="nt", encoding="utf-8"), "application/n-triples",
                        base_iri=None)
    return Member(f"{base}/actors/a{n}", None, None, False, triples)


class FakeReader:
    """Pages per source id: ``pages[id]`` is a list of Pages or an exception to raise
    after the pages before it; ``broken`` ids raise when the reader is asked for."""

    def __init__(self, pages: dict, broken: set[str] = frozenset()) -> None:
        self.pages, self.broken, self.cursors = pages, broken, []

    def __call__(self, src: Source, cursor, fetcher):
        self.cursors.append((src.id, cursor))
        if src.id in self.broken:
            raise HarvestError("no reader", reason="unknown-kind")
        return self._pages(src)

    def _pages(self, src: Source):
        for item in self.pages.get(src.id, []):
            if isinstance(item, Exception):
                raise item
            yield item


def page(key: str, n: int, count: int = 2) -> Page:
    return Page(f"http://{key}.test/feed/{n}",
                [actor(key, n * 10 + i) for i in range(count)], {"page": n})


FETCHER = Fetcher(FetchPolicy(allow_private=True, retries=0))


# --------------------------------------------------------------------------- settings


def test_settings_come_from_the_configuration(tmp_path):
    config = {"INDEX_STORE": "", "HARVEST_ALLOW_PRIVATE": "true", "HARVEST_WORKERS": "3",
              "CONTACT_EMAIL": "index@example.org", "HARVEST_INTERVAL": 0}
    settings = HarvestSettings.from_mapping(config, tmp_path)
    assert settings.store_path == tmp_path / "index"
    assert settings.allow_private is True and settings.workers == 3
    assert settings.interval == MIN_INTERVAL  # never polls in a tight loop
    assert "mailto:index@example.org" in settings.policy().user_agent
    assert settings.registry().path == tmp_path / "index.sources.json"

    other = HarvestSettings.from_mapping({"INDEX_STORE": "data/idx",
                                          "HARVEST_USER_AGENT": "https://idx.example/about"},
                                         tmp_path)
    assert other.store_path == tmp_path / "data" / "idx" and other.allow_private is False
    assert other.policy().user_agent.endswith("(+https://idx.example/about)")
    assert HarvestSettings.from_mapping({"INDEX_STORE": "/srv/idx"}, tmp_path).store_path == \
        Path("/srv/idx")


def test_a_remote_store_needs_both_urls(tmp_path):
    settings = HarvestSettings.from_mapping({"INDEX_STORE_URL": "http://127.0.0.1:1/query"},
                                            tmp_path)
    with pytest.raises(HarvestError) as refused:
        open_store(settings)
    assert refused.value.reason == "bad-config"


def test_the_polling_interval_comes_from_the_feed_then_the_options_then_the_default():
    assert polling_interval(source("a"), {"polling_interval": 120}, 60) == 120
    assert polling_interval(source("a", polling_interval=30), {"v": 1}, 60) == 30
    assert polling_interval(source("a"), None, 60) == 60
    assert polling_interval(source("a"), {"polling_interval": 0}, 60) == MIN_INTERVAL
    assert polling_interval(source("a"), {"polling_interval": "soon"}, 60) == 60


# --------------------------------------------------------------------------- one round


def test_sources_run_concurrently_and_one_failure_never_stops_the_others(tmp_path):
    fake = FakeReader({"a": [page("a", 1), page("a", 2), page("a", 3)],
                       "b": [page("b", 1), FetchError("node went away", reason="timeout")]},
                      broken={"c"})
    events, applied = [], {}
    with OxigraphStore(tmp_path / "index") as store:
        def sink(event):
            events.append(event)
            if event["event"] == "page-applied":  # the page is in the store already
                applied[(event["source"], event["pages"])] = store.cursor(event["source"])

        reports = run_sources([source("a"), source("b"), source("c")], store, FETCHER,
                              workers=3, on_event=sink, read=fake)
        assert [r.source_id for r in reports] == ["a", "b", "c"]
        a, b, c = reports
        assert a.ok and a.pages == 3 and a.members_applied == 6
        assert not b.ok and b.pages == 1 and b.errors == ["timeout: node went away"]
        assert not c.ok and c.errors == ["unknown-kind: no reader"]
        assert len(store.graphs_of("a")) == 6 and len(store.graphs_of("b")) == 2
        assert store.cursor("b") == {"page": 1}  # the last applied page's
    assert applied == {("a", 1): {"page": 1}, ("a", 2): {"page": 2}, ("a", 3): {"page": 3},
                       ("b", 1): {"page": 1}}
    finished = {e["source"]: e for e in events if e["event"] == "source-finished"}
    assert finished["b"]["ok"] is False and finished["b"]["errors"] == b.errors
    assert finished["a"]["members_applied"] == 6
    for key in "abc":  # started before its pages, finished after them
        mine = [e["event"] for e in events if e.get("source") == key]
        assert mine[0] == "source-started" and mine[-1] == "source-finished"


def test_a_failing_progress_display_never_stops_a_harvest(tmp_path):
    def sink(event):
        raise BrokenPipeError("stdout went away")

    with OxigraphStore(tmp_path / "index") as store:
        (report,) = run_sources([source("a")], store, FETCHER, on_event=sink,
                                read=FakeReader({"a": [page("a", 1)]}))
    assert report.ok and report.members_applied == 2


def test_due_sources_follow_the_last_run_and_the_interval(tmp_path):
    then = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    with OxigraphStore(tmp_path / "index") as store:
        harvest(source("a"), [page("a", 1)], store, clock=lambda: then)
        harvest(source("c"), [Page("http://c.test/feed", [], {"polling_interval": 10})],
                store, clock=lambda: then)
        assert {key: ok for key, (_end, ok) in last_runs(store).items()} == {"a": True,
                                                                            "c": True}
        sources = [source("a"), source("b"), source("c")]
        due, wait = due_sources(sources, store, default_interval=60,
                                now=then + timedelta(seconds=30))
        # b never ran; c's feed asks for 10 s; a waits another 30 s
        assert [s.id for s in due] == ["b", "c"] and wait == pytest.approx(30)
        due, wait = due_sources(sources, store, default_interval=60,
                                now=then + timedelta(seconds=61))
        assert [s.id for s in due] == ["a", "b", "c"] and wait is None
        # a run the store has no record of still counts (the watch loop never spins)
        due, _ = due_sources(sources, store, default_interval=60, now=then + timedelta(hours=1),
                             tried={"b": then + timedelta(minutes=59, seconds=30)})
        assert [s.id for s in due] == ["a", "c"]


def settings_for(tmp_path, *keys: str, **options) -> HarvestSettings:
    settings = HarvestSettings(store_path=tmp_path / "index", allow_private=True, workers=2)
    registry = settings.registry()
    for key in keys:
        registry.add(source(key, **options))
    return settings


def test_run_once_harvests_the_due_sources_or_the_ones_asked_for(tmp_path):
    settings = settings_for(tmp_path, "a", "b")
    fake = FakeReader({"a": [page("a", 1)], "b": [page("b", 1)]})
    first = run_once(settings, read=fake, fetcher=FETCHER)
    assert [(r.source_id, r.ok) for r in first] == [("a", True), ("b", True)]
    assert latest_snapshot(settings.store_path) is not None  # for the index service
    assert run_once(settings, read=fake, fetcher=FETCHER) == []  # nothing due yet
    assert [r.source_id for r in run_once(settings, source_ids=["b"], read=fake,
                                          fetcher=FETCHER)] == ["b"]
    assert [r.source_id for r in run_once(settings, every=True, read=fake,
                                          fetcher=FETCHER)] == ["a", "b"]
    assert sorted(fake.cursors[-2:]) == [("a", {"page": 1}), ("b", {"page": 1})]  # resumed
    with pytest.raises(UnknownSource):
        run_once(settings, source_ids=["nope"], read=fake, fetcher=FETCHER)


def test_the_embedded_store_has_one_writer_at_a_time(tmp_path):
    settings = settings_for(tmp_path, "a")
    with open_store(settings):
        with pytest.raises(HarvestError) as busy:
            run_once(settings, read=FakeReader({}), fetcher=FETCHER)
    assert busy.value.reason == "store-unavailable"


# --------------------------------------------------------------------------- watch


def test_watch_runs_rounds_at_each_sources_interval(tmp_path):
    settings = settings_for(tmp_path, "a", polling_interval=1)
    fake = FakeReader({"a": [page("a", 1)]})
    events: list[dict] = []
    started = time.monotonic()
    rounds = watch(settings, max_runs=2, read=fake, fetcher=FETCHER, on_event=events.append)
    assert time.monotonic() - started >= 1  # the second round waited for the interval
    assert [[r.source_id for r in reports] for reports in rounds] == [["a"], ["a"]]
    kinds = [e["event"] for e in events]
    assert kinds.count("round-started") == 2 and kinds[-1] == "round-finished"
    assert events[-1]["ok"] is True and events[-1]["round"] == 2


def test_watch_stops_when_asked_while_it_waits(tmp_path):
    settings = settings_for(tmp_path, "a")  # default interval: 60 s
    stop = threading.Event()
    threading.Timer(0.5, stop.set).start()
    started = time.monotonic()
    rounds = watch(settings, stop=stop, read=FakeReader({"a": [page("a", 1)]}),
                   fetcher=FETCHER)
    assert time.monotonic() - started < 10 and len(rounds) == 1


def test_a_remote_store_from_the_settings_runs_the_same_rounds(tmp_path):
    from tests.harvesters.test_store import OxigraphServer

    server = OxigraphServer(tmp_path / "oxigraph")
    server.start()
    try:
        settings = HarvestSettings.from_mapping(
            {"INDEX_STORE": str(tmp_path / "index"), "INDEX_STORE_URL": f"{server.base}/query",
             "INDEX_UPDATE_URL": f"{server.base}/update"}, tmp_path)
        settings.registry().add(source("a"))
        fake = FakeReader({"a": [page("a", 1), page("a", 2)]})
        (report,) = run_once(settings, read=fake, fetcher=FETCHER)
        assert report.ok and report.members_applied == 4
        assert run_once(settings, read=fake, fetcher=FETCHER) == []  # not due again yet
        with open_store(settings) as store:
            assert len(store.graphs_of("a")) == 4 and store.cursor("a") == {"page": 2}
            assert last_runs(store)["a"][1] is True
        assert not (tmp_path / "index").exists()  # nothing embedded was opened
    finally:
        server.stop()
