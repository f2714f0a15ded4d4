"""The change feed over HTTP: a Linked Data Event Stream (SEMIC LDES 1.0) of the log.

URLs: ``/feed`` (the ``ldes:EventStream``), ``/feed/root`` (its root node),
``/feed/<n>`` (pages of FEED_PAGE_SIZE changes by sequence number: page n holds
seq (n-1)*size+1 .. n*size, so a page's content is fixed once the log has
passed its end) and ``/<collection>/<id>/versions/<n>`` (one member).
`exports.ldes` builds the triples; this module chooses the changes, the format
(Turtle, N-Triples, N-Quads, JSON-LD through the exports registry) and the
caching headers. Pages are read with keyset ranges on ``seq``; the time bounds of
full pages never change and are kept per process (`_PageIndex`).

Published timestamps are the running maximum of the changes' ``at``: two writers
may commit in the other order than they read the clock, and LDES #overview says
no member may be added with a timestamp earlier than the latest published one.

Pages never go away (compaction only empties them), so no link ever leads to a
410: some clients abort on one although Primer §5.1 says to read it as empty.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import wraps
from typing import Any

from flask import Blueprint, Flask, Response, current_app, g, request

import exports
import vocab
from exports import ldes
from exports.triples import FORMAT_NAMES, Triple
from vocab.fields import ENTITY_BY_COLLECTION

from . import __version__, changes, db, store
from .errors import AtlasError, Gone, NotAcceptable, NotFound

__all__ = ["answer", "bp", "choose_format", "feed_config", "limited", "short_cache_control"]

bp = Blueprint("feed", __name__)

RETENTIONS = ("full", "latest")
# Full pages and versions in a full-history feed never change (LDES Primer §2:
# "Cache-Control: immutable" on immutable pages).
IMMUTABLE = "public, max-age=31536000, immutable"
# Bump when the documents' triples change shape, so every ETag changes with them.
DOCUMENT_VERSION = 1
# Bytes of built documents kept per process, by ETag: every new harvester reads the
# same full pages, and building one costs far more than sending it (bench/feed_pages.py).
BODY_CACHE_BYTES = 32 * 1024 * 1024


class TooManyRequests(AtlasError):
    """The feed is busy in this process (LDES Primer §2: 429 when overloaded)."""

    status, title = 429, "Too Many Requests"

    def __init__(self, retry_after: int):
        super().__init__("too many feed requests at once; retry shortly")
        self.headers["Retry-After"] = str(retry_after)


# --------------------------------------------------------------------------- setup


def feed_config(app: Flask | None = None) -> ldes.FeedConfig:
    """The feed settings of an app, checked (ValueError names the bad key)."""
    config = (app or current_app).config
    cfg = ldes.FeedConfig(
        base=config["BASE_URL"], page_size=int(config["FEED_PAGE_SIZE"]),
        retention=str(config["FEED_RETENTION"]),
        keep_deletes_days=int(config["FEED_KEEP_DELETES_DAYS"]),
        polling_interval=int(config["FEED_POLLING_INTERVAL"]),
        title=f"Changes of {config['NODE_NAME']}", license=config.get("LICENSE") or "")
    checks = {"FEED_PAGE_SIZE": cfg.page_size >= 1,
              "FEED_RETENTION": cfg.retention in RETENTIONS,
              "FEED_KEEP_DELETES_DAYS": cfg.keep_deletes_days >= 0,
              "FEED_POLLING_INTERVAL": cfg.polling_interval >= 1}
    for key, ok in checks.items():
        if not ok:
            raise ValueError(f"invalid {key}: {config[key]!r}")
    return cfg


@bp.record_once
def _setup(state) -> None:
    feed_config(state.app)  # fail at start, not at the first request
    limit = int(state.app.config["FEED_MAX_CONCURRENT"])
    if limit < 1:
        raise ValueError(f"invalid FEED_MAX_CONCURRENT: {limit!r}")
    state.app.extensions["atlas_feed_gate"] = threading.BoundedSemaphore(limit)
    state.app.extensions["atlas_feed_index"] = _PageIndex()
    state.app.extensions["atlas_feed_bodies"] = _BodyCache(BODY_CACHE_BYTES)


def limited(view: Callable[..., Response]) -> Callable[..., Response]:
    """At most FEED_MAX_CONCURRENT feed requests run at once per process; others get
    429 at once (a non-blocking semaphore: waiting would only tie up more workers)."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Response:
        g.atlas_format = "problem"  # feed errors are problem+json, never HTML pages
        gate = current_app.extensions["atlas_feed_gate"]
        if not gate.acquire(blocking=False):
            raise TooManyRequests(retry_after=1)
        try:
            return view(*args, **kwargs)
        finally:
            gate.release()

    return wrapper


# --------------------------------------------------------------------------- routes


@bp.get("/feed")
@limited
def stream() -> Response:
    """The ldes:EventStream: its context and its one tree:view, the root node."""
    cfg = feed_config()
    fmt, negotiated = choose_format()
    return answer(fmt, negotiated, ["stream", _settings(cfg)], short_cache_control(cfg),
                   lambda: ldes.stream_triples(cfg))


@bp.get("/feed/root")
@limited
def root() -> Response:
    """The root node: relations to every page. Never immutable: new pages appear."""
    cfg = feed_config()
    fmt, negotiated = choose_format()
    latest = changes.latest_seq(db.session())
    # The bounds of full pages never change and are kept in memory: the spans cost
    # no query once known, and they are all the document depends on.
    spans = _spans(cfg, latest // cfg.page_size)
    return answer(fmt, negotiated, ["root", spans, _settings(cfg)], short_cache_control(cfg),
                   lambda: ldes.root_triples(cfg, spans))


@bp.get("/feed/<int:number>")
@limited
def page(number: int) -> Response:
    """One page of changes; 404 beyond the page now filling (never linked before)."""
    cfg = feed_config()
    fmt, negotiated = choose_format()
    session = db.session()
    latest = changes.latest_seq(session)
    if not 1 <= number <= latest // cfg.page_size + 1:
        raise NotFound(f"feed page {number} does not exist (yet)")
    first, last = cfg.page_range(number)
    full = latest >= last
    last = min(last, latest)
    # What the page shows: its changes (fixed once full; otherwise up to `latest`),
    # published no earlier than the pages before it.
    if full:
        stats = _full_pages(session, cfg, number)[-1]
        state: list[Any] = [stats.count, stats.min_at, stats.max_at]
    else:
        state = [last, changes.max_at_between(session, first, last)]
    state.append(_floor(session, cfg, number))
    retained = None
    if cfg.retention == "latest":
        retained = changes.retained_latest(session, first, last, _deletes_since(cfg))
        state.append(_digest(retained))
        # Compaction removes superseded versions from full pages too, so no page is
        # immutable here (Primer §5.1: never change an immutable page's content).
        immutable, cache = False, short_cache_control(cfg)
    else:
        immutable, cache = full, IMMUTABLE if full else short_cache_control(cfg)

    def triples() -> list[Triple]:
        members = _members(session, cfg, number, first, last, retained)
        return ldes.page_triples(cfg, number, members, immutable)

    return answer(fmt, negotiated, ["page", number, state, _settings(cfg)], cache, triples)


@bp.get("/<collection_name>/<entity_id>/versions/<int:version>")
@limited
def version_member(collection_name: str, entity_id: str, version: int) -> Response:
    """One member, dereferenced (TREE #member-extraction-algorithm: out of band). 404 for versions
    that never were; 410 for those the retention policy no longer keeps."""
    spec = ENTITY_BY_COLLECTION.get(collection_name)
    if spec is None:
        raise NotFound(f"no collection {collection_name!r}")
    cfg = feed_config()
    fmt, negotiated = choose_format()
    session = db.session()
    entry = changes.change_of_version(session, spec.kind, entity_id, version)
    if entry is None:
        raise NotFound(f"{spec.kind} {entity_id!r} has no version {version}")
    cache = IMMUTABLE
    if cfg.retention == "latest":
        if entry.seq not in changes.retained_latest(session, entry.seq, entry.seq,
                                                    _deletes_since(cfg)):
            raise Gone(f"version {version} of {spec.kind} {entity_id!r} is no longer "
                       "retained (the feed keeps the latest version of each entity)")
        cache = short_cache_control(cfg)  # it may be superseded, and then it is gone

    def triples() -> list[Triple]:
        number = (entry.seq - 1) // cfg.page_size + 1
        first, _last = cfg.page_range(number)
        at = _max(_floor(session, cfg, number), changes.max_at_between(session, first,
                                                                        entry.seq))
        return ldes.member_triples(cfg.base, _member(entry, at))

    return answer(fmt, negotiated, ["version", entry.seq, entry.at, _settings(cfg)], cache,
                   triples)


# --------------------------------------------------------------------------- pages


class _PageIndex:
    """Count and time span of each full page: fixed once the log has passed the page,
    so each is read once per process, with one aggregate query for all new ones."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._size = 0
        self._pages: list[changes.PageStats] = []

    def full_pages(self, session, page_size: int, count: int) -> list[changes.PageStats]:
        with self._lock:
            if page_size != self._size:
                self._size, self._pages = page_size, []
            have = len(self._pages)
            if count > have:
                found = {s.number: s for s in changes.page_stats(session, page_size,
                                                                 have + 1, count)}
                self._pages += [found.get(n, changes.PageStats(n, 0, None, None))
                                for n in range(have + 1, count + 1)]
            return self._pages[:count]


def _full_pages(session, cfg: ldes.FeedConfig, count: int) -> list[changes.PageStats]:
    return current_app.extensions["atlas_feed_index"].full_pages(session, cfg.page_size, count)


def _spans(cfg: ldes.FeedConfig, closed: int) -> list[ldes.PageSpan]:
    """The root's view of the pages: bounds of the published (clamped) timestamps."""
    spans, floor = [], None
    counted = cfg.retention == "full"  # with compaction, counts shrink
    for stats in _full_pages(db.session(), cfg, closed):
        if not stats.count:
            continue  # sequence numbers that were never committed: an empty page forever
        lower, highest = _max(floor, stats.min_at), _max(floor, stats.max_at)
        spans.append(ldes.PageSpan(stats.number, lower, ldes.upper_bound(highest),
                                   stats.count if counted else None))
        floor = highest
    # The page now filling: its members will never be earlier than what came before.
    spans.append(ldes.PageSpan(closed + 1, floor, None))
    return spans


def _floor(session, cfg: ldes.FeedConfig, number: int) -> datetime | None:
    """The latest timestamp published before page ``number``."""
    floor = None
    for stats in _full_pages(session, cfg, number - 1):
        floor = _max(floor, stats.max_at)
    return floor


def _members(session, cfg: ldes.FeedConfig, number: int, first: int, last: int,
             retained: list[int] | None) -> list[ldes.Member]:
    keep = None if retained is None else set(retained)
    published = _floor(session, cfg, number)
    members = []
    for entry in changes.changes_between(session, first, last):
        published = _max(published, entry.at)
        if keep is None or entry.seq in keep:
            members.append(_member(entry, published))
    return members


def _member(entry: changes.ChangeEntry, at: datetime) -> ldes.Member:
    return ldes.Member(entry.kind, entry.entity_id, entry.version, entry.op == "delete",
                       entry.data, at)


def _max(a: datetime | None, b: datetime | None) -> datetime | None:
    return b if a is None else a if b is None else max(a, b)


def _deletes_since(cfg: ldes.FeedConfig) -> datetime | None:
    if not cfg.keep_deletes_days:
        return None
    return store.now() - timedelta(days=cfg.keep_deletes_days)


# --------------------------------------------------------------------------- HTTP


def choose_format() -> tuple[exports.Format, bool]:
    """The response format and whether it was negotiated; raises NotAcceptable (406).

    ``?format=`` first, then Accept (RFC 9110 §12.5.1, decided by the registry).
    There is no HTML view: a bare request and a browser (which prefers HTML but
    takes anything) get Turtle, the most readable of the four.
    """
    requested = request.args.get("format")
    if requested is not None:
        fmt = exports.get(requested)
        if fmt is None or fmt.name not in FORMAT_NAMES:
            raise _not_acceptable(f"unknown feed format {requested!r}")
        return fmt, False
    accept = (request.headers.get("Accept") or "").strip()
    turtle = exports.get("turtle")
    if accept in ("", "*/*"):
        return turtle, True
    best = exports.negotiate(accept)
    if best is not None and best.name == "html" and exports.negotiate(accept, ["turtle"]):
        return turtle, True
    fmt = exports.negotiate(accept, FORMAT_NAMES)
    if fmt is None:
        raise _not_acceptable("none of the feed's media types is acceptable")
    return fmt, True


def _not_acceptable(detail: str) -> NotAcceptable:
    available = [exports.get(name) for name in FORMAT_NAMES]
    error = NotAcceptable(detail, formats=list(FORMAT_NAMES),
                          media_types=[f.media_types[0] for f in available])
    error.headers["Vary"] = "Accept"
    return error


def short_cache_control(cfg: ldes.FeedConfig) -> str:
    """Pages that still change: cacheable briefly, then revalidated with the ETag."""
    return f"public, max-age={min(cfg.polling_interval, 60)}"


def _settings(cfg: ldes.FeedConfig) -> list[Any]:
    return [cfg.base, cfg.page_size, cfg.retention, cfg.keep_deletes_days,
            cfg.polling_interval, cfg.title, cfg.license, DOCUMENT_VERSION, __version__,
            vocab.VOCAB_VERSION]


def _digest(parts: Any) -> str:
    text = json.dumps(parts, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:24]


def answer(fmt: exports.Format, negotiated: bool, state: list[Any], cache_control: str,
           triples: Callable[[], list[Triple]]) -> Response:
    """The document, or 304 when the client's copy is current (RFC 9110 §13.1.2: weak
    comparison). ``state`` is everything the document depends on, so the ETag is
    known before anything is built and a revalidation costs one or two queries."""
    opaque = _digest([*state, fmt.name])
    # Weak: the same statements may be written differently by another release.
    headers = {"ETag": f'W/"{opaque}"', "Cache-Control": cache_control,
               "Access-Control-Allow-Origin": "*"}
    if negotiated:
        headers["Vary"] = "Accept"
    if "If-None-Match" in request.headers and request.if_none_match.contains_weak(opaque):
        return Response(status=304, headers=headers)
    # The ETag digests everything the document depends on, so a body found under it
    # is the body we would build.
    bodies = current_app.extensions["atlas_feed_bodies"]
    body = bodies.get(opaque)
    if body is None:
        body = ldes.serialize(triples(), fmt.name)
        bodies.put(opaque, body)
    return Response(body, headers=headers, content_type=exports.content_type(fmt))


class _BodyCache:
    """The most recently used documents by ETag, up to a byte budget (LRU)."""

    def __init__(self, max_bytes: int):
        self._lock = threading.Lock()
        self._max, self._size = max_bytes, 0
        self._bodies: OrderedDict[str, bytes] = OrderedDict()

    def get(self, key: str) -> bytes | None:
        with self._lock:
            body = self._bodies.get(key)
            if body is not None:
                self._bodies.move_to_end(key)
            return body

    def put(self, key: str, body: bytes) -> None:
        if len(body) > self._max // 4:
            return
        with self._lock:
            if key in self._bodies:
                return
            self._bodies[key] = body
            self._size += len(body)
            while self._size > self._max:
                _old, evicted = self._bodies.popitem(last=False)
                self._size -= len(evicted)
