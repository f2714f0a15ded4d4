"""Read a source's whole-dataset dump (``all.nt.gz``) as one snapshot in bounded pages.

Why: a first harvest from the dump is far cheaper than walking a long feed, and the dump
is how a harvester reconciles when its saved feed position was compacted away. A dump
can hold millions of entities, so nothing here holds more than one batch (plus, for
dumps that are not grouped by entity, temporary files on disk).

How: ``Fetcher.open`` streams the file (its caps and deadline, raised for dumps by the
``dump_*`` options); the gzip file itself (``application/gzip``, RFC 6713: the file is
the representation, no Content-Encoding) is inflated here with its own cap on the
inflated size (a gzip bomb stops there); ``harvesters.parse.iter_rdf`` streams the
triples within `ParseLimits` (``dump_parse_limits``). Statements are grouped per entity
(``{entity}`` with its ``#fragments`` and blank nodes), checked for authority
(`checks.split_by_authority`) and grouped by `checks.split_entities` in batches.

Grouping: the Engagement Atlas writes the triples of each entity together
(exports/dump.py: "sorted per entity instead of over the whole file"), so the reader
groups consecutive statements by entity and checks that no entity comes back later
(a set of 64-bit hashes). If one does (a foreign dump, or option ``dump_grouped`` false),
the dump is read again in spill mode: statements sorted by entity in bounded chunks on
disk and merged (an external sort), blank-node statements kept in memory up to a cap.
``ea:cooperatesWith`` statements are left out: they are the shortcut a cooperation states
about its partners (vocab/mapping.py), no part of any entity's own state, and the feed
leaves them out too (exports/ldes.py member_triples), so dump and feed give equal graphs.

Pages: every page of one read carries the same ``snapshot`` id; the last one has
``full_replace=True`` (see harvesters/model.py). ``read_dump``'s cursor
``{"v": 1, "reader": "dump", "dump": {"url", "etag", "last_modified"}}`` makes the next
read conditional (304: no pages at all); intermediate pages carry the cursor the run
started with, so an interrupted read starts over.
"""

from __future__ import annotations

import heapq
import io
import itertools
import tempfile
from collections import ChainMap, defaultdict
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pyoxigraph as ox

from vocab.namespaces import EA

from ..checks import closure, split_by_authority, split_entities, split_grouped
from ..errors import HarvestError, ParseError
from ..fetch import Fetcher
from ..model import Member, Page, Source
from ..parse import ParseLimits, detect_format, iter_rdf
from ._shared import (
    ACCEPT_RDF,
    InflatingReader,
    add_dropped,
    last_marked,
    new_snapshot,
    option,
    parse_limits,
)

__all__ = ["DumpRun", "dump_pages", "read_dump"]

_CHUNK = 1 << 16
_COOPERATES_WITH = ox.NamedNode(str(EA.cooperatesWith))
_GZIP_TYPES = {"", "application/gzip", "application/x-gzip", "application/octet-stream",
               "binary/octet-stream"}
DUMP_LIMITS = ParseLimits(max_triples=200_000_000, max_blank_nodes=2_000_000)


class _NotGrouped(Exception):
    """An entity's statements came back after another entity's: re-read in spill mode."""


class DumpRun:
    """One read of a dump: ``pages()`` yields its batches as Pages; afterwards ``etag``,
    ``last_modified`` (the file's validators) and ``not_modified`` describe what was read."""

    def __init__(self, source: Source, fetcher: Fetcher, url: str, *, snapshot: str,
                 cursor: dict, etag: str | None = None, last_modified: str | None = None) -> None:
        self.source, self.url, self.snapshot, self.cursor = source, url, snapshot, cursor
        self.fetcher = fetcher.derive(
            deadline=float(option(source, "dump_deadline", 900.0)),
            max_bytes=int(option(source, "dump_max_bytes", 4 << 30)),
            max_decompressed=int(option(source, "dump_max_bytes", 4 << 30)))
        self.inflated_cap = int(option(source, "dump_max_inflated", 32 << 30))
        self.limits = parse_limits(source, "dump_parse_limits", DUMP_LIMITS)
        self.batch = int(option(source, "dump_batch", 1000))
        self.validators = (etag, last_modified)
        self.etag: str | None = None
        self.last_modified: str | None = None
        self.not_modified = False
        self.pages_made = 0

    def pages(self) -> Iterator[Page]:
        """The dump's entities in pages of ``dump_batch``; none if it answered 304."""
        if option(self.source, "dump_grouped", True):
            try:
                yield from self._read(spill=False)
                return
            except _NotGrouped:
                # Pages already yielded came from a file that may have changed since: a
                # new snapshot id makes only the second read count (model.py).
                self.snapshot, self.validators = new_snapshot("dump"), (None, None)
        yield from self._read(spill=True)

    def _read(self, *, spill: bool) -> Iterator[Page]:
        etag, last_modified = self.validators
        with self.fetcher.open(self.url, accept=f"application/gzip, {ACCEPT_RDF}", etag=etag,
                               last_modified=last_modified) as stream:
            self.etag, self.last_modified = stream.etag, stream.last_modified
            self.not_modified = stream.not_modified
            if stream.not_modified:
                return
            body = InflatingReader(stream, self.inflated_cap, stream.url)
            media_type = stream.headers.get("content-type", "").split(";")[0].strip().lower()
            if media_type in _GZIP_TYPES or body.gzipped:
                path = urlsplit(stream.url).path
                media_type = detect_format(None, path[:-3] if path.endswith(".gz")
                                           else path).media_types[0]
            try:
                triples = iter_rdf(io.BufferedReader(body, _CHUNK), media_type,
                                   base_iri=stream.url, limits=self.limits)
                with tempfile.TemporaryDirectory(prefix="atlas-dump-") as tmp:
                    runs = _spilled(triples, Path(tmp), self.limits) if spill else _grouped(
                        triples)
                    yield from self._batches(runs, stream.url)
            except ParseError as exc:
                if body.error is not None:  # the real cause: a cap, the deadline, the network
                    raise body.error from exc
                raise

    def _batches(self, runs: Iterable[tuple[str | None, list]], url: str) -> Iterator[Page]:
        batch: list[tuple[str | None, list]] = []
        count = size = 0
        for key, run in runs:
            batch.append((key, run))
            count, size = count + 1, size + len(run)
            if count >= self.batch or size >= self.limits.max_triples_per_entity * 50:
                yield self._page(batch, url)
                batch, count, size = [], 0, 0
        if batch:
            yield self._page(batch, url)

    def _page(self, runs: list[tuple[str | None, list]], url: str) -> Page:
        space = self.source.uri_space
        split = split_grouped(runs, space)  # the common case: no blank nodes
        if split is None:
            accepted, dropped = split_by_authority([t for _k, run in runs for t in run], space)
            entities, _rest = split_entities(accepted, space)
        else:
            entities, dropped = split
        page = Page(url, [Member(iri, None, None, False, group)
                          for iri, group in entities.items()],
                    cursor=self.cursor, snapshot=self.snapshot)
        add_dropped(page, dropped)
        self.pages_made += 1
        return page


def _key(subject: ox.NamedNode) -> str:
    return subject.value.split("#", 1)[0]


def _grouped(triples: Iterable[ox.Triple]) -> Iterator[tuple[str | None, list]]:
    """Runs of consecutive statements about one entity (and its #fragments).

    Blank-node statements go with the run that points to them; Turtle parsers emit
    them before the statement that points to them, so they wait for the next named
    subject. Raises _NotGrouped when an entity's run starts a second time.
    """
    seen: set[int] = set()
    key: str | None = None
    run: list[ox.Triple] = []
    blanks_in_run: set[ox.BlankNode] = set()
    pending: list[ox.Triple] = []
    for t in triples:
        if t.predicate == _COOPERATES_WITH:
            continue
        subject = t.subject
        if type(subject) is ox.BlankNode:
            pending.append(t)
            continue
        k = _key(subject)
        if k != key:
            if pending and any(p.subject in blanks_in_run for p in pending):
                run += pending
                pending = []
            if run:
                yield key, run
            marker = hash(k)
            if marker in seen:
                raise _NotGrouped(k)
            seen.add(marker)
            key, run, blanks_in_run = k, pending, set()
            pending = []
        elif pending:
            run += pending
            pending = []
        run.append(t)
        if type(obj := t.object) is ox.BlankNode:
            blanks_in_run.add(obj)
    run += pending
    if run:
        yield key, run


def _spilled(triples: Iterable[ox.Triple], tmp: Path,
             limits: ParseLimits, chunk_lines: int = 200_000
             ) -> Iterator[tuple[str | None, list]]:
    """Statements per entity for dumps in any order: an external sort by entity key.

    Named-subject statements go to sorted chunk files as ``key<TAB>N-Triples line``
    (at most ``chunk_lines`` in memory), merged with heapq.merge; blank-node statements
    stay in memory (at most ``limits.max_blank_nodes`` of them) and join the entities
    that reach them.
    """
    blanks: dict[ox.BlankNode, list[ox.Triple]] = defaultdict(list)
    held = 0
    files: list[Path] = []
    chunk: list[str] = []

    def spill() -> None:
        path = tmp / f"chunk-{len(files)}.txt"
        with open(path, "w", encoding="utf-8") as out:
            out.writelines(sorted(chunk))
        files.append(path)
        chunk.clear()

    for t in triples:
        if t.predicate == _COOPERATES_WITH:
            continue
        if type(t.subject) is ox.BlankNode:
            held += 1
            if held > limits.max_blank_nodes:
                raise ParseError(f"more than {limits.max_blank_nodes} blank-node statements "
                                 "in an unsorted dump", reason="too-many-blank-nodes")
            blanks[t.subject].append(t)
            continue
        chunk.append(f"{_key(t.subject)}\t{t} .\n")
        if len(chunk) >= chunk_lines:
            spill()
    if chunk:
        spill()
    handles = [open(path, encoding="utf-8") for path in files]  # noqa: SIM115
    try:
        blank_statements = dict(blanks)
        merged = heapq.merge(*handles)
        for key, lines in itertools.groupby(merged, key=lambda line: line.split("\t", 1)[0]):
            text = "".join(line.split("\t", 1)[1] for line in lines).encode("utf-8")
            named: dict = defaultdict(list)
            for q in ox.parse(text, ox.RdfFormat.N_TRIPLES):
                named[q.triple.subject].append(q.triple)
            # plain dicts: a defaultdict would answer [] before ChainMap asks ``blanks``
            yield key, closure(list(named), ChainMap(dict(named), blank_statements))
    finally:
        for handle in handles:
            handle.close()


def dump_pages(run: DumpRun, final_cursor: Callable[[DumpRun], dict]) -> Iterator[Page]:
    """The pages of ``run`` with the snapshot completed: the last one gets
    ``full_replace=True`` and ``final_cursor(run)``; an empty dump still yields one
    (empty) full_replace page. A 304 yields nothing."""
    for page, last in last_marked(run.pages()):
        if last:
            page.full_replace, page.cursor = True, final_cursor(run)
            page.snapshot = run.snapshot
        yield page
    if not run.pages_made and not run.not_modified:
        yield Page(run.url, [], final_cursor(run), full_replace=True, snapshot=run.snapshot)


def read_dump(source: Source, cursor: dict | None, fetcher: Fetcher) -> Iterator[Page]:
    """Pages of the source's dump (``source.dump_url``), a snapshot; conditional on the
    validators of the last complete read when the URL is the same."""
    if not source.dump_url:
        raise HarvestError(f"source {source.id} has no dump", reason="no-dump")
    cursor = cursor or {}
    saved = cursor.get("dump") if cursor.get("reader") == "dump" else None
    same = isinstance(saved, dict) and saved.get("url") == source.dump_url
    run = DumpRun(source, fetcher, source.dump_url, snapshot=new_snapshot("dump"),
                  cursor=dict(cursor), etag=saved.get("etag") if same else None,
                  last_modified=saved.get("last_modified") if same else None)
    yield from dump_pages(run, lambda r: {"v": 1, "reader": "dump", "dump": {
        "url": r.url, "etag": r.etag, "last_modified": r.last_modified}})
