"""Read a source's LDES feed (SEMIC LDES 1.0 over TREE): first harvest, resume, recover.

Walk: from ``source.feed_url`` (the ldes:EventStream; its ``tree:view`` is followed) the
reader follows ``tree:relation``/``tree:node`` links (TREE #traversing) with a visited set
and a page cap per run (option ``max_pages``), only to pages of the feed's own origin (a
feed cannot send the harvester to other hosts). Children are read in the order of their
lower bounds on the timestamp path (LDES servers page chronologically), else in document
order. Each page is fetched with `Fetcher` (conditionally, with the saved validators),
parsed by `harvesters.parse` within `ParseLimits` (option ``parse_limits``), checked for
authority (`checks.split_by_authority`: ``Page.dropped``) and its version members mapped
back to their entities (`checks.split_versions`). One Page per page answered 200 (a 304
yields nothing), members in timestamp order.

Cursor (JSON): ``{"v": 1, "reader": "ldes", "feed": start URL, "since": ts | None,
"pages": {url: {"etag", "last_modified", "latest", "at_latest": [version IRIs], "links"}},
"done": [url...], "complete": bool, "checked": ts, "timestamp_path": IRI,
"retention": {"from", "log", "deletes"} | None, "dump": {...} | None}``.

- ``pages``: the pages that may still change (no ``immutable`` in Cache-Control and no
  ``ldes:immutable``), re-polled every run with their ETags (PITFALLS: LDES clients).
  ``latest``/``at_latest`` is the page's watermark: LDES #overview forbids adding a member
  earlier than the latest published one, so a member is new when its timestamp is later,
  or equal and not among ``at_latest``. The cursor stays small however long the page.
- ``done``: immutable pages fully applied, never fetched again.
- ``since``: members earlier than this were applied from the dump; pages whose
  tree:LessThan(OrEqualTo)Relation bound lies before it are not fetched at all.
- ``complete``: the last walk reached its end. Intermediate pages carry False: a run that
  stopped half-way re-reads pages with links unconditionally (a 304 hides the relations).

First harvest (no usable cursor): with option ``prefer_dump`` (default True) and a
``source.dump_url``, the dump is read as a snapshot (readers/dump.py, model.py) and the
feed position taken from the dump's Last-Modified: ``since`` = that time (HTTP-date,
whole seconds, so members of that very second are applied again — harmless, each member
carries its entity's whole state); then the feed is walked from there. Otherwise (or if the
dump is 404/410) the whole stream is walked as a snapshot: every entity the feed still knows
occurs in it, so the last page's ``full_replace`` removes the rest (its other pages carry a
cursor that starts the walk over, as model.py asks of unfinished snapshots). Pages without members
are not yielded on their own: the next page's cursor contains their state.

Another index (``source.kind == "index"``, registered as trusted): its members are
``{index space}feed/members/{seq}`` versions of the ORIGINAL entities; readers/index.py maps
them back and attaches each member's `model.Origin` (authority: the origin's space).

Recovery: a saved page that answers 404/410, or a retention policy on the view
(LDES #retention: ``ldes:startingFrom``, ``ldes:fullLogDuration``, ``DurationAgoPolicy``,
``ldes:versionDeleteDuration``) whose window no longer reaches back to our last complete
read (``checked``), means the position is lost: the reader falls back to the dump (or a
whole-stream snapshot) and the snapshot's ``full_replace`` reconciles the index.
"""

from __future__ import annotations

import json
import logging
from collections import deque
from collections.abc import Iterator
from datetime import timedelta
from email.utils import parsedate_to_datetime

import pyoxigraph as ox

from vocab.namespaces import PROV

from ..checks import split_by_authority, split_versions
from ..errors import HarvestError
from ..fetch import Fetcher, HTTPStatusError
from ..model import Member, Page, Source
from ..parse import parse_rdf
from ..sources import origins_of
from ._shared import (
    ACCEPT_RDF,
    add_dropped,
    iso,
    new_snapshot,
    now,
    option,
    parse_limits,
    parse_time,
    same_origin,
)
from .dump import DumpRun, dump_pages
from .index import index_members
from .tree import Document

__all__ = ["read_feed"]

log = logging.getLogger(__name__)
_N = ox.NamedNode
_DEFAULT_TS = str(PROV.generatedAtTime)


class _PositionLost(Exception):
    """The saved feed position can no longer be continued (page gone, retention)."""


def read_feed(source: Source, cursor: dict | None, fetcher: Fetcher) -> Iterator[Page]:
    """Pages of the source's feed since ``cursor`` (module docstring: first harvest,
    resume, recovery)."""
    start = source.feed_url
    if not start:
        raise HarvestError(f"source {source.id} has no feed", reason="no-feed")
    state = _resume(cursor, start)
    gap = state and _retention_gap(state)
    if state is None or gap:
        yield from _restart(source, fetcher, start, gap or None)
        return
    try:
        yield from _Walk(source, fetcher, state).pages()
    except _PositionLost as exc:
        yield from _restart(source, fetcher, start, str(exc))


def _fresh(start: str) -> dict:
    return {"v": 1, "reader": "ldes", "feed": start, "since": None, "pages": {}, "done": [],
            "complete": False, "checked": None, "timestamp_path": _DEFAULT_TS,
            "retention": None, "dump": None}


def _resume(cursor: dict | None, start: str) -> dict | None:
    if not cursor or cursor.get("v") != 1 or cursor.get("reader") != "ldes" or (
            cursor.get("feed") != start or "pages" not in cursor):
        return None  # none, another reader's, or a dump read that did not finish
    return json.loads(json.dumps(cursor))


def _restart(source: Source, fetcher: Fetcher, start: str, lost: str | None = None
             ) -> Iterator[Page]:
    """A first harvest, or a recovery when the saved position is ``lost`` (why)."""
    dump = bool(source.dump_url) and (lost is not None or option(source, "prefer_dump", True))
    if lost is not None:
        log.warning("source %s: feed position lost (%s); reading %s", source.id, lost,
                    "the dump" if dump else "the whole stream")
    if dump:
        yield from _from_dump(source, fetcher, start)
    else:
        yield from _Walk(source, fetcher, _fresh(start), snapshot=new_snapshot("feed")).pages()


def _from_dump(source: Source, fetcher: Fetcher, start: str) -> Iterator[Page]:
    """The dump as a snapshot, then the feed from the dump's Last-Modified on."""
    run = DumpRun(source, fetcher, source.dump_url, snapshot=new_snapshot("dump"),
                  cursor={"v": 1, "reader": "ldes", "feed": start, "state": "dump-incomplete"})
    position = _fresh(start)

    def final(r: DumpRun) -> dict:
        try:
            position["since"] = iso(parsedate_to_datetime(r.last_modified or ""))
        except (TypeError, ValueError):
            position["since"] = None  # no usable date: the whole feed follows (idempotent)
        position["dump"] = {"url": r.url, "etag": r.etag, "last_modified": r.last_modified}
        return json.loads(json.dumps(position))

    try:
        yield from dump_pages(run, final)
    except HTTPStatusError as exc:
        if exc.status not in (404, 410) or run.pages_made:
            raise
        log.warning("source %s: dump %s answered %s; walking the whole stream", source.id,
                    source.dump_url, exc.status)
        yield from _Walk(source, fetcher, _fresh(start), snapshot=new_snapshot("feed")).pages()
        return
    yield from _Walk(source, fetcher, position).pages()


def _retention_gap(state: dict) -> str | None:
    """Why the feed's retention may have dropped members we have not read, or None."""
    ret, checked = state.get("retention"), parse_time(state.get("checked"))
    if not ret or checked is None:
        return None
    begins = parse_time(ret.get("from"))
    if begins and begins > checked:
        return f"the feed keeps members from {ret['from']} on; last complete read {iso(checked)}"
    for key in ("log", "deletes"):
        seconds = ret.get(key)
        if seconds is not None and checked < now() - timedelta(seconds=seconds):
            return (f"the feed keeps {'members' if key == 'log' else 'deletions'} for "
                    f"{seconds:.0f} s; last complete read {iso(checked)}")
    return None


class _Walk:
    """One traversal of the feed from ``state`` (the cursor being built)."""

    def __init__(self, source: Source, fetcher: Fetcher, state: dict, *,
                 snapshot: str | None = None) -> None:
        self.source, self.fetcher, self.state, self.snapshot = source, fetcher, state, snapshot
        self.limits = parse_limits(source)
        self.max_pages = int(option(source, "max_pages", 100_000))
        self.done = set(state["done"])
        # Another index (kind "index", trusted): its members name their original sources.
        self.origins = origins_of(source) if source.kind == "index" else None

    def pages(self) -> Iterator[Page]:
        st, started = self.state, now()
        was_complete, st["complete"] = st["complete"], False
        queue = deque(dict.fromkeys([st["feed"], *st["pages"]]))
        visited: set[str] = set()
        self.parents: dict[str, str] = {}  # page -> the page whose link queued it first
        held: Page | None = None
        while queue:
            url = queue.popleft()
            if url in visited or url in self.done:
                continue
            visited.add(url)
            if len(visited) > self.max_pages:
                raise HarvestError(f"more than {self.max_pages} feed pages in one run "
                                   "(option max_pages)", reason="too-many-pages")
            known = st["pages"].get(url)
            conditional = known is not None and (was_complete or not known.get("links"))
            try:
                resp = self.fetcher.fetch(
                    url, accept=ACCEPT_RDF, etag=known.get("etag") if conditional else None,
                    last_modified=known.get("last_modified") if conditional else None)
            except HTTPStatusError as exc:
                if exc.status not in (404, 410):
                    raise
                if known is not None:
                    raise _PositionLost(f"{url} answered {exc.status}") from exc
                log.warning("feed page %s answered %s: read as empty (LDES #retention)",
                            url, exc.status)
                continue
            if resp.not_modified:
                continue
            page = self._page(url, resp, queue, visited)
            if held is not None and (held.members or held.dropped or held.rejected):
                yield held  # else its cursor is contained in the next page's
            held = page
        st["complete"], st["checked"] = True, iso(started)
        if held is None and was_complete and not self._refresh_due():
            return
        held = held or Page(st["feed"], [], {}, snapshot=self.snapshot)
        held.cursor, held.full_replace = self._cursor(final=True), self.snapshot is not None
        yield held

    def _refresh_due(self) -> bool:
        """Whether ``checked`` should be saved although nothing changed (retention window)."""
        ret, checked = self.state.get("retention") or {}, parse_time(self.state.get("checked"))
        windows = [s for s in (ret.get("log"), ret.get("deletes")) if s is not None]
        return bool(windows) and checked is not None and (
            checked < now() - timedelta(seconds=min(windows) / 4))

    def _cursor(self, final: bool = False) -> dict:
        if self.snapshot and not final:  # model.py: an unfinished snapshot starts over
            return {"v": 1, "reader": "ldes", "feed": self.state["feed"], "state": "snapshot"}
        return json.loads(json.dumps(self.state))

    def _page(self, url: str, resp, queue: deque, visited: set[str]) -> Page:
        st, space = self.state, self.source.uri_space
        triples = parse_rdf(resp.body, resp.headers.get("content-type"), base_iri=resp.url,
                            limits=self.limits)
        doc = Document(triples, {url, resp.url})
        st["timestamp_path"] = doc.timestamp_path or st["timestamp_path"]
        if doc.retention is not None:
            st["retention"] = doc.retention
            gap = _retention_gap(st)
            if gap:
                raise _PositionLost(gap)
        rejected = []
        for node in doc.children(st["timestamp_path"], parse_time(st["since"])):
            if not same_origin(node, st["feed"]):
                rejected.append(f"{url}: link to {node} ignored (another origin)")
            elif node in (url, resp.url):
                continue  # the document itself, e.g. the root named as the stream's view
            elif node in visited:
                if self._ancestor(node, url):  # a cycle: read once, reported (issue 5)
                    rejected.append(f"{url}: link to {node} not followed: a paging loop "
                                    f"({node} links to {url} through its children)")
            elif node not in self.done:
                self.parents.setdefault(node, url)
                queue.append(node)
        accepted, dropped = split_by_authority(triples, space)
        origin_of: dict = {}
        if self.origins is not None:
            versions, origin_of, refused = index_members(accepted, space, self.origins)
        else:
            versions, _rest = split_versions(accepted, space, rewrite=False)
        members = self._select(url, versions, rejected, origin_of)
        cache_control = resp.headers.get("cache-control", "").lower()
        if doc.immutable or "immutable" in [t.strip() for t in cache_control.split(",")]:
            st["pages"].pop(url, None)  # LDES Primer §2: an immutable page never changes
            st["done"].append(url)
            self.done.add(url)
        else:
            st["pages"][url] = {**st["pages"].get(url, {}), "etag": resp.etag,
                                "last_modified": resp.last_modified, "links": doc.has_links}
        page = Page(url, members, self._cursor(), snapshot=self.snapshot, rejected=rejected)
        add_dropped(page, dropped)
        if self.origins is not None:
            add_dropped(page, refused)
        return page

    def _ancestor(self, node: str, url: str) -> bool:
        """Whether ``url`` was reached from ``node``: a link back is a loop. A link to a page
        read earlier on another path (e.g. a page re-polled from the cursor) is not."""
        seen = {url}
        while url in self.parents:
            url = self.parents[url]
            if url == node:
                return True
            if url in seen:
                return False
            seen.add(url)
        return False

    def _select(self, url: str, versions, rejected: list[str],
                origin_of: dict | None = None) -> list[Member]:
        """New members of a page in timestamp order; updates the page's watermark."""
        st = self.state
        info = st["pages"].setdefault(url, {})
        latest, at_latest = parse_time(info.get("latest")), set(info.get("at_latest", ()))
        since, path = parse_time(st["since"]), _N(st["timestamp_path"])
        chosen, stamped = [], []
        for vm in versions:
            text = vm.stamp(path)
            when = parse_time(text)
            if when is None:
                rejected.append(f"{vm.iri}: no timestamp ({st['timestamp_path']})")
                continue
            stamped.append((when, vm.iri))
            if (since and when < since) or (latest and (
                    when < latest or (when == latest and vm.iri in at_latest))):
                continue  # applied before: from the dump or an earlier read of this page
            vm = vm.rewritten()  # only the members kept (most of a page may be old)
            state = [] if vm.deleted else [t for t in vm.triples if t.predicate != path]
            chosen.append((when, vm.version, Member(vm.entity, vm.iri, text, vm.deleted, state,
                                                    (origin_of or {}).get(vm.iri))))
        if stamped:
            top = max(when for when, _iri in stamped)
            if latest is None or top > latest:
                latest, at_latest = top, set()
            at_latest |= {iri for when, iri in stamped if when == latest}
            info.update(latest=iso(latest), at_latest=sorted(at_latest))
        chosen.sort(key=lambda item: (item[0], item[1]))
        return [member for _when, _n, member in chosen]
