"""The index's change journal: what the index published, so another index can harvest it.

Why (issue 5 item 8, "indexes of indexes"): an index publishes its own LDES feed
(service/index_feed.py). The feed needs an ordered log of changes to entity graphs, and the
index store keeps only the current state, so the pipeline writes each applied batch here
just BEFORE the store applies it (like the search side index, harvesters/search.py).

File: ``{INDEX_STORE}.journal.sqlite3`` (`HarvestSettings.journal_path`), SQLite in WAL mode:
the index service reads it while the harvester writes, across processes, without blocking.

Each entry: ``seq`` (increasing), ``published`` (xsd:dateTime, the running maximum of the
clock: LDES #overview forbids adding a member earlier than the latest published one), the
entity IRI, the source id, ``deleted``, the entity graph as N-Triples, and the ORIGINAL
source's entry URL and version IRI (for a member harvested through a trusted index: the
source the index named, never the intermediary, so chains keep attribution).

Idempotent: a member identical to the entity's latest entry (same content digest, deleted
flag and origin) adds nothing, so a page applied again after a crash, or a harvest that
changes nothing, leaves the journal as it was. A delete of an entity the journal never
published (or already shows deleted) adds nothing either.

Retention (LDES #retention, ``ldes:LatestVersionSubset`` with amount 1): the journal keeps
the latest entry per entity; writing a new one removes the superseded ones in the same
transaction (compaction). Deletions are kept: they are the latest entry of their entity.
The digest ignores blank node labels (a parser names them afresh on every read).
"""

from __future__ import annotations

import hashlib
import re
import sqlite3
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyoxigraph as ox

from .errors import StoreError
from .store import STATE_NS, source_graph

if TYPE_CHECKING:
    from .store import IndexStore

__all__ = ["Journal", "JournalEntry", "PageStats"]

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS entries(seq INTEGER PRIMARY KEY AUTOINCREMENT, "
    "published TEXT NOT NULL, entity TEXT NOT NULL, source TEXT NOT NULL, "
    "deleted INTEGER NOT NULL, triples TEXT NOT NULL, origin TEXT, version TEXT, "
    "digest TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS entries_entity ON entries(entity, seq)",
)
_PROV = "http://www.w3.org/ns/prov#"
_BLANK = re.compile(r"_:[A-Za-z0-9_\-.]+")


def _now() -> datetime:
    return datetime.now(UTC)


def _iso(value: datetime) -> str:
    """xsd:dateTime lexical in UTC, always with microseconds (text order = time order)."""
    return value.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@dataclass(frozen=True)
class JournalEntry:
    """One published change of one entity graph."""

    seq: int
    published: datetime
    entity: str
    source: str
    deleted: bool
    ntriples: str  # the entity graph's triples (empty when deleted)
    origin: str | None  # the original source's entry URL
    version: str | None  # the original source's version IRI, when it named one

    def triples(self) -> list[ox.Triple]:
        """The entity graph's triples (pyoxigraph terms)."""
        if not self.ntriples:
            return []
        return [q.triple for q in ox.parse(self.ntriples.encode("utf-8"),
                                           ox.RdfFormat.N_TRIPLES)]


@dataclass(frozen=True)
class PageStats:
    """The retained entries of one page of ``size`` sequence numbers."""

    number: int
    count: int
    first: datetime | None
    last: datetime | None


def _digest(lines: str, deleted: bool, origin: str | None) -> str:
    split = lines.splitlines() if "_:" not in lines else [
        _BLANK.sub("_:b", line) for line in lines.splitlines()]  # no "_:": nothing to replace
    body = "\n".join(sorted(split))
    return hashlib.sha256(f"{int(deleted)}\n{origin or ''}\n{body}".encode()).hexdigest()


def _ntriples(triples: Iterable[Any]) -> str:
    items = [t if isinstance(t, ox.Triple) else ox.Triple(*t) for t in triples]
    if not items:
        return ""
    return ox.serialize(items, format=ox.RdfFormat.N_TRIPLES).decode("utf-8")


class Journal:
    """The append-only (compacted) change log of one index (module docstring)."""

    def __init__(self, path: str | Path, *, readonly: bool = False,
                 clock: Callable[[], datetime] = _now) -> None:
        self.path, self.readonly, self.clock = Path(path), readonly, clock
        self._lock = threading.Lock()
        try:
            if readonly:
                self._db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True,
                                           check_same_thread=False)
            else:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._db = sqlite3.connect(str(self.path), check_same_thread=False,
                                           isolation_level=None)
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=NORMAL")
                for statement in _SCHEMA:
                    self._db.execute(statement)
        except sqlite3.Error as exc:
            raise StoreError(f"journal {self.path} unusable: {exc}",
                             reason="store-unavailable") from exc

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- writing -------------------------------------------------------------------------------

    def record(self, source_id: str, replacements: Mapping[str, Iterable[Any]],
               deletions: Iterable[str] = (),
               origins: Mapping[str, tuple[str | None, str | None]] | None = None) -> int:
        """Journal one batch (entity graphs replaced and dropped); returns entries added.

        ``origins`` maps an entity to (original entry URL, original version IRI).
        One transaction: all of the batch or nothing.
        """
        origins = origins or {}
        items = [(e, _ntriples(ts), False) for e, ts in replacements.items()]
        items += [(e, "", True) for e in deletions]
        if not items:
            return 0
        added = 0
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                row = self._db.execute("SELECT published FROM entries ORDER BY seq DESC "
                                       "LIMIT 1").fetchone()
                floor = _parse(row[0]) if row else None
                now = self.clock()
                now = now if now.tzinfo else now.replace(tzinfo=UTC)
                published = _iso(max(now, floor) if floor else now)
                known = self._latest([entity for entity, _lines, _deleted in items])
                for entity, lines, deleted in items:
                    origin, version = origins.get(entity, (None, None))
                    digest = _digest(lines, deleted, origin)
                    latest = known.get(entity)
                    if latest is not None and latest[0] == digest:
                        continue  # the same state again (a resumed page, no change)
                    if deleted and (latest is None or latest[1]):
                        continue  # nothing published to delete
                    cursor = self._db.execute(
                        "INSERT INTO entries(published, entity, source, deleted, triples, "
                        "origin, version, digest) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        (published, entity, source_id, int(deleted), lines, origin, version,
                         digest))
                    if latest is not None:  # none: the entity has no older entry to remove
                        # Compaction: only the latest entry of an entity is retained.
                        self._db.execute("DELETE FROM entries WHERE entity = ? AND seq < ?",
                                         (entity, cursor.lastrowid))
                    known[entity] = (digest, int(deleted))
                    added += 1
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise StoreError(f"journal {self.path}: {exc}", reason="store-unavailable") \
                    from exc
        return added

    def seed(self, store: IndexStore, *, chunk: int = 500) -> int:
        """Journal what ``store`` holds when this journal has never recorded anything.

        For an index that held data before it kept a journal (or whose journal file was
        lost): without this, its feed would show those entities only once they change.
        Each entity graph is recorded with the original source and version its provenance
        names (for one harvested through a trusted index: the original, as `record`
        gets it from the pipeline). Returns the entries added; 0 if the journal was in use.
        """
        if self.latest_seq():
            return 0
        added = 0
        for source_id in sorted(store.sources()):
            sg = ox.NamedNode(source_graph(source_id))
            origins: dict[str, tuple[str | None, str | None]] = {}
            for row in store.query(
                    f"SELECT ?g ?from ?version WHERE {{ GRAPH {sg} {{ ?g <{STATE_NS}inSource> "
                    f"{sg} OPTIONAL {{ ?g <{_PROV}wasDerivedFrom> ?from }} OPTIONAL {{ ?g "
                    f"<{_PROV}hadPrimarySource> ?version }} }} }}"):
                origins[row["g"].value] = tuple(  # type: ignore[assignment]
                    row[name].value if row[name] is not None else None
                    for name in ("from", "version"))
            graphs = sorted(origins)
            for start in range(0, len(graphs), chunk):
                part = graphs[start:start + chunk]
                values = " ".join(str(ox.NamedNode(g)) for g in part)
                states: dict[str, list[ox.Triple]] = {g: [] for g in part}
                for row in store.query(f"SELECT ?g ?s ?p ?o WHERE {{ VALUES ?g {{ {values} }} "
                                       "GRAPH ?g { ?s ?p ?o } }"):
                    states[row["g"].value].append(ox.Triple(row["s"], row["p"], row["o"]))
                added += self.record(source_id, states, (), {g: origins[g] for g in part})
        return added

    def _latest(self, entities: list[str]) -> dict[str, tuple[str, int]]:
        """entity -> (digest, deleted) of its latest entry, for those that have one (inside
        the writing transaction; SQLite takes a bare column's values from the MAX row)."""
        found: dict[str, tuple[str, int]] = {}
        unique = list(dict.fromkeys(entities))
        for start in range(0, len(unique), 500):  # SQLite's host-parameter limit
            chunk = unique[start:start + 500]
            rows = self._db.execute(
                "SELECT entity, digest, deleted, MAX(seq) FROM entries WHERE entity IN "
                f"({', '.join('?' * len(chunk))}) GROUP BY entity", chunk).fetchall()
            found.update({entity: (digest, deleted) for entity, digest, deleted, _ in rows})
        return found

    # -- reading -------------------------------------------------------------------------------

    def _rows(self, sql: str, args: tuple = ()) -> list[tuple]:
        with self._lock:
            try:
                return self._db.execute(sql, args).fetchall()
            except sqlite3.Error as exc:
                raise StoreError(f"journal {self.path}: {exc}",
                                 reason="store-unavailable") from exc

    def latest_seq(self) -> int:
        """The highest sequence number ever given (compaction never removes the last one)."""
        rows = self._rows("SELECT MAX(seq) FROM entries")
        return int(rows[0][0] or 0)

    def entries_between(self, first: int, last: int) -> list[JournalEntry]:
        """Retained entries with ``first <= seq <= last``, in sequence order."""
        return [self._entry(r) for r in self._rows(
            "SELECT seq, published, entity, source, deleted, triples, origin, version "
            "FROM entries WHERE seq BETWEEN ? AND ? ORDER BY seq", (first, last))]

    def entry(self, seq: int) -> JournalEntry | None:
        found = self.entries_between(seq, seq)
        return found[0] if found else None

    def page_stats(self, size: int, pages: int) -> list[PageStats]:
        """Count and first/last published time of the retained entries of pages 1..``pages``
        (page n holds seq (n-1)*size+1 .. n*size), one aggregate query."""
        rows = self._rows("SELECT (seq - 1) / ? + 1 AS n, COUNT(*), MIN(published), "
                          "MAX(published) FROM entries WHERE seq <= ? GROUP BY n",
                          (size, size * pages))
        found = {int(n): (int(c), _parse(lo), _parse(hi)) for n, c, lo, hi in rows}
        return [PageStats(n, *found.get(n, (0, None, None))) for n in range(1, pages + 1)]

    def counts(self) -> dict[str, int]:
        """Live (not deleted) entities per origin entry URL."""
        return {origin: n for origin, n in self._rows(
            "SELECT origin, COUNT(*) FROM entries WHERE deleted = 0 AND origin IS NOT NULL "
            "GROUP BY origin")}

    @staticmethod
    def _entry(row: tuple) -> JournalEntry:
        seq, published, entity, source, deleted, lines, origin, version = row
        return JournalEntry(seq, _parse(published), entity, source, bool(deleted), lines,
                            origin, version)
