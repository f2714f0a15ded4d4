"""Running harvests: due sources, one round of concurrent runs, the watch loop.

Why apart from the CLI: ``atlas harvest run|watch`` (service/harvest_cli.py) is one way to
drive this; a cron job, a test or another program can call `run_once` / `watch` directly. No
Flask, no click: `HarvestSettings` (harvesters/settings.py) come from a plain mapping.

Due (issue 5 item 10): a source is due when it never ran, or when its polling interval has
passed since its last run ended (the newest ``prov:endedAtTime`` of its runs in the store,
`pipeline`). The interval is the feed's ``ldes:pollingInterval`` when the reader exposes it
in its cursor (``cursor["polling_interval"]``, seconds), else ``source.options
["polling_interval"]``, else the configured default; never below `MIN_INTERVAL`. A failed
run counts as a run, so a broken source is retried at its interval, not in a tight loop.

Progress: `run_sources` reports events (plain dicts) through ``on_event``: ``source-started``,
``page-applied`` (after the pipeline applied a page: it asks for the next one only then),
``source-finished`` (with the run report's counts and errors). Sources run concurrently in
threads sharing one `Fetcher` (its per-host limit holds across them); one failing source
never stops the others (`pipeline.harvest`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from . import readers
from .errors import HarvestError
from .fetch import Fetcher
from .journal import Journal
from .model import Page, Source
from .pipeline import RunReport, direct_spaces, harvest
from .sameas import SAME_AS_GRAPH, candidate_triples
from .search import SearchIndex
from .settings import MIN_INTERVAL, HarvestSettings, open_store
from .store import STATE_NS, IndexStore, OxigraphStore

__all__ = ["MIN_INTERVAL", "HarvestSettings", "UnknownSource", "due_sources", "last_runs",
           "open_search", "open_store", "polling_interval", "publish_same_as", "report_event",
           "run_once", "run_sources", "watch"]

log = logging.getLogger(__name__)
_PROV = "http://www.w3.org/ns/prov#"
Event = dict[str, Any]
EventSink = Callable[[Event], None]
Reader = Callable[[Source, "dict | None", Fetcher], Iterable[Page]]


class UnknownSource(HarvestError):
    """A source id that is not registered."""


def _datetime(text: str) -> datetime | None:
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def last_runs(store: IndexStore) -> dict[str, tuple[datetime, bool]]:
    """Per source id: when its newest recorded run ended, and whether it succeeded."""
    rows = store.query(
        f"SELECT ?id ?end ?ok WHERE {{ GRAPH ?sg {{ ?sg <{STATE_NS}sourceId> ?id . "
        f"?run a <{_PROV}Activity> ; <{_PROV}endedAtTime> ?end . "
        f"OPTIONAL {{ ?run <{STATE_NS}succeeded> ?ok }} }} }}")
    found: dict[str, tuple[datetime, bool]] = {}
    for row in rows:
        end = _datetime(row["end"].value)
        if end is not None and (row["id"].value not in found or end > found[row["id"].value][0]):
            ok = row["ok"] is not None and row["ok"].value == "true"
            found[row["id"].value] = (end, ok)
    return found


def polling_interval(source: Source, cursor: Any, default: float) -> float:
    """Seconds between runs of ``source`` (module docstring: feed, options, default)."""
    for holder in (cursor, source.options):
        try:
            value = float(holder.get("polling_interval"))  # type: ignore[union-attr]
        except (AttributeError, TypeError, ValueError):
            continue
        if value == value:  # not NaN
            return max(MIN_INTERVAL, value)
    return max(MIN_INTERVAL, default)


def due_sources(sources: Iterable[Source], store: IndexStore, *, default_interval: float,
                now: datetime | None = None, tried: Mapping[str, datetime] | None = None
                ) -> tuple[list[Source], float | None]:
    """The sources due now, and seconds until the next other one is due (None: no others).

    ``tried`` adds run times the store may not know (a run whose record failed to store),
    so the watch loop never spins on such a source.
    """
    now, tried = now or datetime.now(UTC), tried or {}
    ended = {key: end for key, (end, _ok) in last_runs(store).items()}
    due, wait = [], None
    for source in sources:
        last = max(filter(None, (ended.get(source.id), tried.get(source.id))), default=None)
        if last is None:
            due.append(source)
            continue
        interval = polling_interval(source, store.cursor(source.id), default_interval)
        left = interval - (now - last).total_seconds()
        if left <= 0:
            due.append(source)
        else:
            wait = left if wait is None else min(wait, left)
    return due, wait


def report_event(r: RunReport) -> Event:
    """The ``source-finished`` event of a run report (JSON-serialisable)."""
    return {"event": "source-finished", "source": r.source_id, "ok": r.ok, "run": r.run,
            "pages": r.pages, "members_applied": r.members_applied, "deletes": r.deletes,
            "quarantined": r.quarantined_count, "warnings": r.warnings, "dropped": r.dropped,
            "dropped_examples": list(r.dropped_examples), "rejected": r.rejected,
            "errors": list(r.errors),
            "seconds": (r.ended - r.started).total_seconds() if r.ended else None}


def _observed(source: Source, pages: Iterable[Page], emit: EventSink) -> Iterator[Page]:
    """``pages`` unchanged; a page counts as applied when the pipeline asks for the next."""
    inner, count = iter(pages), 0
    try:
        for page in inner:
            yield page
            count += 1
            emit({"event": "page-applied", "source": source.id, "page": page.url,
                  "pages": count, "members": len(page.members)})
    finally:
        getattr(inner, "close", lambda: None)()  # a generator reader releases its responses


def _emitter(on_event: EventSink | None) -> EventSink:
    def emit(event: Event) -> None:
        try:
            if on_event is not None:
                on_event(event)
        except Exception:  # noqa: BLE001 - a broken progress display never stops a harvest
            log.exception("progress report failed")
    return emit


def _failing(exc: BaseException) -> Iterator[Page]:
    raise exc
    yield  # pragma: no cover - makes this a generator


def run_sources(sources: Iterable[Source], store: IndexStore, fetcher: Fetcher, *,
                workers: int = 4, on_event: EventSink | None = None,
                read: Reader | None = None,
                search: SearchIndex | None = None, journal: Journal | None = None,
                direct: Iterable[str] = ()) -> list[RunReport]:
    """Harvest ``sources`` concurrently; reports in the sources' order (`pipeline.harvest`).

    ``read`` is the reader entry point (default `harvesters.readers.read`); ``search`` the
    full-text side index each page is mirrored into (`open_search`); ``journal`` the index's
    change journal its feed is served from (harvesters/journal.py); ``direct`` the URI spaces
    of sources registered directly (`pipeline.direct_spaces`: they win over trusted indexes).
    """
    sources, read, emit = list(sources), read or readers.read, _emitter(on_event)

    def one(source: Source) -> RunReport:
        emit({"event": "source-started", "source": source.id, "entry": source.entry_url})
        if search is not None:  # the city facet and name, even before the first page
            try:
                search.set_source(source.id, name=source.name,
                                  city=(source.options or {}).get("city"))
            except HarvestError as exc:
                log.warning("search index: source %s not recorded: %s", source.id, exc)
        try:
            pages: Iterable[Page] = _observed(source, read(source, store.cursor(source.id),
                                                           fetcher), emit)
        except Exception as exc:  # noqa: BLE001 - reported like a failure while reading
            pages = _failing(exc)
        try:
            report = harvest(source, pages, store, search=search, journal=journal,
                             direct=direct)
        except Exception as exc:  # noqa: BLE001 - harvest reports its own; this is a bug
            log.exception("harvest of %s crashed", source.id)
            report = RunReport(source.id, started=datetime.now(UTC), ended=datetime.now(UTC),
                               errors=[f"internal-error: {exc}"[:1000]])
        emit(report_event(report))
        return report

    if not sources:
        return []
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(sources))),
                            thread_name_prefix="harvest") as pool:
        return list(pool.map(one, sources))


def _select(settings: HarvestSettings, store: IndexStore, source_ids: Iterable[str] | None,
            every: bool) -> list[Source]:
    registered = settings.registry().all()
    if source_ids:
        known = {s.id: s for s in registered}
        missing = [key for key in source_ids if key not in known]
        if missing:
            raise UnknownSource(f"no source {', '.join(missing)} (see `atlas harvest list`)",
                                reason="unknown-source")
        return [known[key] for key in dict.fromkeys(source_ids)]
    if every:
        return registered
    return due_sources(registered, store, default_interval=settings.interval)[0]


@contextmanager
def open_search(settings: HarvestSettings) -> Iterator[SearchIndex]:
    """The search side index ``{INDEX_STORE}.search.sqlite3`` (settings.search_path)."""
    settings.search_path.parent.mkdir(parents=True, exist_ok=True)
    search = SearchIndex(str(settings.search_path))
    try:
        yield search
    finally:
        search.close()


def publish_same_as(store: IndexStore, search: SearchIndex) -> int:
    """Recompute the same-actor candidates over all sources and REPLACE the index's own graph
    `sameas.SAME_AS_GRAPH` with them (one transaction; never a source graph). Returns how
    many candidates it holds now; a failure is logged and leaves the previous candidates."""
    try:
        found = search.same_actor_candidates()
        store.replace_graph(SAME_AS_GRAPH, candidate_triples(found, SAME_AS_GRAPH,
                                                             generated=datetime.now(UTC)))
    except HarvestError as exc:
        log.warning("same-actor candidates not published: %s", exc)
        return 0
    return len(found)


def _publish(store: IndexStore, search: SearchIndex | None = None) -> None:
    """End of a round: the same-actor candidates (with ``search``), then a snapshot that lets
    read-only query workers of the index service see the new state (oxigraph.py)."""
    if search is not None:
        publish_same_as(store, search)
    if isinstance(store, OxigraphStore):
        try:
            store.publish_snapshot()
        except HarvestError as exc:
            log.warning("no snapshot published: %s", exc)


def run_once(settings: HarvestSettings, *, source_ids: Iterable[str] | None = None,
             every: bool = False, on_event: EventSink | None = None,
             on_selected: Callable[[list[Source]], None] | None = None,
             fetcher: Fetcher | None = None, read: Reader | None = None) -> list[RunReport]:
    """One round: the given sources, or all (``every``), or else the due ones.

    ``on_selected`` learns the sources before they start (to size a progress bar).
    """
    with open_store(settings) as store, open_search(settings) as search, \
            Journal(settings.journal_path) as journal:
        journal.seed(store)  # an index older than its journal: publish what it holds
        chosen = _select(settings, store, list(source_ids or ()), every)
        if on_selected is not None:
            on_selected(chosen)
        reports = run_sources(chosen, store, fetcher or Fetcher(settings.policy()),
                              workers=settings.workers, on_event=on_event, read=read,
                              search=search, journal=journal,
                              direct=direct_spaces(settings.registry().all()))
        if reports:
            _publish(store, search)
        return reports


def watch(settings: HarvestSettings, *, max_runs: int | None = None,
          stop: threading.Event | None = None, on_event: EventSink | None = None,
          fetcher: Fetcher | None = None, read: Reader | None = None,
          max_sleep: float = 60.0) -> list[list[RunReport]]:
    """Harvest due sources round after round until ``stop`` is set or ``max_runs`` rounds
    ran; sleeps until the next source is due (at most ``max_sleep``, re-reading the
    registry then, so sources added meanwhile join). Returns the last 100 rounds' reports.
    """
    stop, emit = stop or threading.Event(), _emitter(on_event)
    fetcher = fetcher or Fetcher(settings.policy())
    rounds: deque[list[RunReport]] = deque(maxlen=100)
    tried: dict[str, datetime] = {}
    with open_store(settings) as store, open_search(settings) as search, \
            Journal(settings.journal_path) as journal:
        journal.seed(store)
        while not stop.is_set() and (max_runs is None or len(rounds) < max_runs):
            try:
                due, wait = due_sources(settings.registry().all(), store,
                                        default_interval=settings.interval, tried=tried)
            except HarvestError as exc:  # registry or remote store briefly unusable
                log.warning("watch: cannot tell which sources are due: %s", exc)
                due, wait = [], max_sleep
            if not due:
                stop.wait(min(max_sleep, wait if wait is not None else max_sleep))
                continue
            emit({"event": "round-started", "round": len(rounds) + 1,
                  "sources": [s.id for s in due]})
            started = time.monotonic()
            reports = run_sources(due, store, fetcher, workers=settings.workers,
                                  on_event=on_event, read=read, search=search,
                                  journal=journal,
                                  direct=direct_spaces(settings.registry().all()))
            tried.update({r.source_id: r.ended or datetime.now(UTC) for r in reports})
            _publish(store, search)
            rounds.append(reports)
            emit({"event": "round-finished", "round": len(rounds),
                  "ok": all(r.ok for r in reports),
                  "failed": [r.source_id for r in reports if not r.ok],
                  "seconds": round(time.monotonic() - started, 3)})
    return list(rounds)
