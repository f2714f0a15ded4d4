"""The index's own change feed: a Linked Data Event Stream of what it harvested (issue 5 item 8).

Registered only in INDEX_MODE. URLs under the index's URI space ``{BASE_URL}/index/``:
``/index/feed`` (the ``ldes:EventStream``), ``/index/feed/root`` (its root node),
``/index/feed/<n>`` (pages of FEED_PAGE_SIZE journal entries by sequence number, as the
node's feed pages) and ``/index/feed/members/<seq>`` (one member). The documents have the
node feed's shape (`exports.ldes`; service/feed.py answers HTTP the same way: formats
through the exports registry, weak ETags, 304, Cache-Control, the concurrency gate).

Source: the change journal the harvester writes (harvesters/journal.py), read-only; the
store itself is never opened here. A member ``{BASE_URL}/index/feed/members/{seq}`` is the
entity's state as harvested (its IRI and ``#fragments`` rewritten to the member's, as the
node does), ``dct:isVersionOf`` the ORIGINAL entity IRI, ``prov:generatedAtTime`` the
journal's published time, ``prov:wasDerivedFrom`` the original source's entry URL and
``prov:hadPrimarySource`` the original version IRI (for entities harvested through a
trusted index: the source that index named, so chains keep attribution).

Retention: the journal keeps the latest entry per entity (deletions kept), declared as the
node declares FEED_RETENTION "latest" (`ldes._retention`: ``ldes:LatestVersionSubset``).
Compaction empties pages, so no page is ever immutable (LDES Primer §5.1), as on a node
with that retention; pages never go away (no link leads to a 410). A compacted member
answers 410 Gone. ``ldes:pollingInterval`` is HARVEST_INTERVAL: the index changes when
it harvests.
"""

from __future__ import annotations

from typing import Any

import pyoxigraph as ox
from flask import Blueprint, Flask, Response, current_app
from rdflib import BNode, Literal, URIRef

import vocab
from exports import ldes
from exports.triples import Triple
from harvesters.journal import Journal, JournalEntry
from vocab.namespaces import PROV

from . import __version__
from .errors import Gone, NotFound
from .feed import answer, choose_format, limited, short_cache_control
from .index import harvest_settings

__all__ = ["bp", "index_feed_config", "member_iri", "open_journal"]

bp = Blueprint("index_feed", __name__, url_prefix="/index/feed")
DOCUMENT_VERSION = 1
_XSD_STRING = "http://www.w3.org/2001/XMLSchema#string"
_LANG_STRING = "http://www.w3.org/1999/02/22-rdf-syntax-ns#langString"


def index_feed_config(app: Flask | None = None) -> ldes.FeedConfig:
    """The index feed's settings: the node feed's shape under ``{BASE_URL}/index``."""
    config = (app or current_app).config
    return ldes.FeedConfig(
        base=f"{config['BASE_URL']}/index", page_size=int(config["FEED_PAGE_SIZE"]),
        retention="latest", keep_deletes_days=0,
        polling_interval=max(1, int(float(config.get("HARVEST_INTERVAL") or 60))),
        title=f"Changes of the index {config['NODE_NAME']}",
        license=config.get("LICENSE") or "")


def member_iri(cfg: ldes.FeedConfig, seq: int) -> str:
    return f"{cfg.base}/feed/members/{seq}"


def open_journal(app: Flask | None = None) -> Journal | None:
    """The journal, read-only; None before the first harvest wrote one."""
    path = harvest_settings(app).journal_path
    return Journal(path, readonly=True) if path.exists() else None


class _NoJournal:
    """An empty journal: the feed exists (and is empty) before the first harvest."""

    def latest_seq(self) -> int:
        return 0

    def page_stats(self, size: int, pages: int) -> list:
        return []

    def entries_between(self, first: int, last: int) -> list:
        return []

    def entry(self, seq: int) -> None:
        return None

    def close(self) -> None:
        pass


def _journal() -> Any:
    return open_journal() or _NoJournal()


def _settings(cfg: ldes.FeedConfig) -> list[Any]:
    return ["index", cfg.base, cfg.page_size, cfg.polling_interval, cfg.title, cfg.license,
            DOCUMENT_VERSION, __version__, vocab.VOCAB_VERSION]


# --------------------------------------------------------------------------- routes


@bp.get("")
@limited
def stream() -> Response:
    """The ldes:EventStream: its context and its one tree:view, the root node."""
    cfg = index_feed_config()
    fmt, negotiated = choose_format()
    return answer(fmt, negotiated, ["index-stream", _settings(cfg)], short_cache_control(cfg),
                   lambda: ldes.stream_triples(cfg))


@bp.get("/root")
@limited
def root() -> Response:
    """The root node: relations to every page that holds members, and the page filling."""
    cfg = index_feed_config()
    fmt, negotiated = choose_format()
    journal = _journal()
    try:
        latest = journal.latest_seq()
        stats = journal.page_stats(cfg.page_size, latest // cfg.page_size)
    finally:
        journal.close()
    spans, floor = [], None
    for page in stats:
        if page.count:  # compaction may have emptied a page: it is linked no more
            spans.append(ldes.PageSpan(page.number, page.first, ldes.upper_bound(page.last)))
            floor = page.last
    # Published times never decrease with seq: what comes later is never earlier.
    spans.append(ldes.PageSpan(latest // cfg.page_size + 1, floor, None))
    return answer(fmt, negotiated, ["index-root", spans, _settings(cfg)], short_cache_control(cfg),
                   lambda: ldes.root_triples(cfg, spans))


@bp.get("/<int:number>")
@limited
def page(number: int) -> Response:
    """One page of journal entries; 404 beyond the page now filling."""
    cfg = index_feed_config()
    fmt, negotiated = choose_format()
    journal = _journal()
    try:
        latest = journal.latest_seq()
        if not 1 <= number <= latest // cfg.page_size + 1:
            raise NotFound(f"feed page {number} does not exist (yet)")
        first, last = cfg.page_range(number)
        entries = journal.entries_between(first, min(last, latest))
    finally:
        journal.close()
    state = [number, [(e.seq, e.published) for e in entries]]

    def triples() -> list[Triple]:
        return ldes.page_triples(cfg, number, [_member(cfg, e) for e in entries], False)

    return answer(fmt, negotiated, ["index-page", state, _settings(cfg)], short_cache_control(cfg),
                   triples)


@bp.get("/members/<int:seq>")
@limited
def member(seq: int) -> Response:
    """One member, dereferenced; 404 if it never was, 410 once compaction removed it."""
    cfg = index_feed_config()
    fmt, negotiated = choose_format()
    journal = _journal()
    try:
        entry, latest = journal.entry(seq), journal.latest_seq()
    finally:
        journal.close()
    if entry is None:
        if 1 <= seq <= latest:
            raise Gone(f"member {seq} is no longer retained (the index feed keeps the "
                       "latest version of each entity)")
        raise NotFound(f"the index feed has no member {seq}")
    return answer(fmt, negotiated, ["index-member", seq, entry.published, _settings(cfg)],
                   short_cache_control(cfg), lambda: ldes.raw_member_triples(_member(cfg, entry)))


# --------------------------------------------------------------------------- members


def _member(cfg: ldes.FeedConfig, entry: JournalEntry) -> ldes.RawMember:
    iri = URIRef(member_iri(cfg, entry.seq))
    extra: list[Triple] = []
    if entry.origin:
        extra.append((iri, PROV.wasDerivedFrom, URIRef(entry.origin)))
    if entry.version:
        extra.append((iri, PROV.hadPrimarySource, URIRef(entry.version)))
    state = [] if entry.deleted else [_rdflib(t, entry.seq) for t in entry.triples()]
    return ldes.RawMember(str(iri), entry.entity, entry.deleted, entry.published, state, extra)


def _rdflib(triple: ox.Triple, seq: int) -> Triple:
    return tuple(_term(t, seq) for t in (triple.subject, triple.predicate, triple.object))


def _term(term: Any, seq: int) -> Any:
    """pyoxigraph -> rdflib, lexical forms kept (no normalisation: the state must arrive as
    harvested); blank nodes renamed per member, so members on one page never share one."""
    if isinstance(term, ox.NamedNode):
        return URIRef(term.value)
    if isinstance(term, ox.BlankNode):
        return BNode(f"m{seq}x{term.value}")
    datatype = term.datatype.value
    if term.language or datatype in (_XSD_STRING, _LANG_STRING):
        return Literal(term.value, lang=term.language or None, normalize=False)
    return Literal(term.value, datatype=URIRef(datatype), normalize=False)
