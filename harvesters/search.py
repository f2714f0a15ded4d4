"""Full-text search and facets across all sources: a SQLite FTS5 side index (issue 5 item 8).

Why: Oxigraph has no text index (ARCHITECTURE, "Full-text search needs its own index"), so
search is answered from SQLite FTS5 (stdlib), fed by the same load path: the pipeline hands
each page's Batch to `SearchIndex.apply_batch` just BEFORE `IndexStore.apply` (idempotent: a
crash in between is repaired when the run resumes at that page). Facets: `FACET_KEYS`;
``city`` is the source's (`set_source` / ``source.options["city"]``), ``language`` unites
languages, availableLanguage, inLanguage and contact points' languages.
Folding: unicode61 ``remove_diacritics 2`` maps ü->u, é->e but keeps ß ("giessen" does not
find "Gießen"), so texts and queries are NFKC-normalised and ``casefold``-ed (ß->ss) first;
column ``variants`` adds the German transliteration (ü->ue). Ranking: weighted ``bm25``.
Query safety: user text is never FTS5 syntax: only its words (letters/digits), each quoted
(no ``"`` inside), ANDed, the last a prefix (``"wor" *``); ``a" OR 1`` is the words a, or, 1.
Concurrency: WAL (readers never block the writer, across processes too); one writing and one
reading connection, each behind a lock; each `apply` is ONE ``BEGIN IMMEDIATE`` transaction.
"""

from __future__ import annotations

import json
import re
import sqlite3
import threading
import unicodedata
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, NamedTuple

import pyoxigraph as ox
from rdflib import BNode, Graph, Literal, URIRef

from vocab import ENTITIES, from_graph
from vocab.namespaces import RDF, XSD

from .errors import StoreError
from .sameas import ActorKeys, Candidate, actor_keys, candidates_from_keys
from .store import Batch

__all__ = ["FACET_KEYS", "Hit", "SearchIndex", "SearchResult", "fts_query", "records_from_triples"]

FACET_KEYS = ("source", "city", "kind", "actorTypes", "fieldsOfAction", "targetGroups",
              "engagementMode", "language", "status")
_RECORD_FACETS = ("actorTypes", "fieldsOfAction", "targetGroups", "engagementMode", "status")
_WEIGHTS = "10.0, 5.0, 1.0, 3.0"  # bm25 per column: name, alternate, texts, variants
MAX_TERMS, MAX_PER_PAGE = 12, 100
_WORD = re.compile(r"[^\W_]{1,64}")
_UMLAUT = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue"})
_SCHEMA = """CREATE TABLE IF NOT EXISTS sources(id TEXT PRIMARY KEY, name TEXT, city TEXT);
CREATE TABLE IF NOT EXISTS docs(id INTEGER PRIMARY KEY, entity TEXT NOT NULL UNIQUE, source TEXT
 NOT NULL, kind TEXT NOT NULL, names TEXT NOT NULL, sort TEXT NOT NULL, register TEXT, court TEXT,
 wikidata TEXT, domain TEXT, match_names TEXT);
CREATE TABLE IF NOT EXISTS facets(key TEXT NOT NULL, value TEXT NOT NULL, doc INTEGER NOT NULL,
 PRIMARY KEY(key, value, doc)) WITHOUT ROWID;
CREATE VIRTUAL TABLE IF NOT EXISTS fts USING fts5(name, alternate, texts, variants,
 tokenize="unicode61 remove_diacritics 2", prefix="2 3")""".split(";") + [
    f"CREATE INDEX IF NOT EXISTS {n} ON {on}" for n, on in (
        ("docs_source", "docs(source)"), ("docs_sort", "docs(sort, entity)"),
        ("facets_doc", "facets(doc, key, value)"),
        *((f"docs_{c}", f"docs({c}) WHERE {c} NOT NULL") for c in ("wikidata", "register",
                                                                   "domain")))]


class Hit(NamedTuple):
    entity: str
    kind: str
    source: str
    name: dict[str, str]  # name: {language: text}


class SearchResult(NamedTuple):
    total: int
    items: list[Hit]
    facet_counts: dict[str, dict[str, int]]  # {key: {value: count}}


def _fold(text: str) -> str:
    return unicodedata.normalize("NFKC", text).casefold()


def fts_query(text: str | None) -> str | None:
    """A safe FTS5 query for user text (module docstring), or None if it has no words."""
    terms = _WORD.findall(_fold(text or ""))[:MAX_TERMS]
    return " AND ".join(f'"{t}"' for t in terms) + " *" if terms else None


def _term(t: Any) -> Any:
    """pyoxigraph term -> rdflib term (rdflib terms pass through)."""
    if isinstance(t, ox.Literal):
        datatype = None if t.language or t.datatype.value == str(XSD.string) else t.datatype.value
        return Literal(t.value, lang=t.language, datatype=datatype and URIRef(datatype))
    if isinstance(t, (ox.NamedNode, ox.BlankNode)):
        return (URIRef if isinstance(t, ox.NamedNode) else BNode)(t.value)
    return t


def records_from_triples(entity_iri: str, triples: Iterable[Any]) -> tuple[str, dict] | None:
    """(kind, record) via `vocab.mapping.from_graph`; None if no Atlas entity. The kind comes
    from the entity's rdf:type, the base from its IRI minus ``/{collection}/{id}``."""
    graph, types = Graph(), set()
    for triple in triples:
        try:
            s, p, o = (_term(t) for t in triple)
        except (TypeError, ValueError):  # an odd literal: leave it out, index the rest
            continue
        graph.add((s, p, o))
        if p == RDF.type and str(s) == entity_iri:
            types.add(str(o))
    base, collection, local_id = ["", "", *entity_iri.rsplit("/", 2)][-3:]
    for spec in ENTITIES.values():
        if str(spec.rdf_type) in types and collection == spec.collection:
            return next(((spec.kind, r) for r in from_graph(graph, spec.kind, base)
                         if r["id"] == local_id), None)
    return None


def _strings(value: Any) -> list[str]:
    return [value] if isinstance(value, str) else [v for v in value or () if isinstance(v, str)]


def _row(source_id: str, kind: str, record: Mapping[str, Any]) -> tuple[list, list, set]:
    """(docs columns, fts columns, facet pairs) of one record."""
    names = dict(record.get("name") or {})
    spec = ENTITIES.get(kind)  # every text field but the name: description, eligibility...
    keys = [f.key for f in spec.fields if f.kind == "text"] if spec else ["description"]
    texts = [t for key in keys if key != "name" for t in (record.get(key) or {}).values()]
    folded = [_fold("\n".join(x)) for x in (names.values(), _strings(
        record.get("alternateName")), texts)]
    variants = "\n".join(v for v, f in ((f.translate(_UMLAUT), f) for f in folded) if v != f)
    sort = _fold(names.get("de") or names.get("en") or next(iter(names.values()), ""))
    k = actor_keys(source_id, record) if kind == "actor" else ActorKeys(source_id)
    doc = [source_id, kind, json.dumps(names, ensure_ascii=False), sort, k.register, k.court,
           k.wikidata, k.domain, json.dumps(k.names, ensure_ascii=False)]
    facets = {("source", source_id), ("kind", kind)}
    facets |= {(key, v) for key in _RECORD_FACETS for v in _strings(record.get(key))}
    languages = [record.get(key) for key in ("languages", "availableLanguage", "inLanguage")]
    languages += [c.get("availableLanguage") for c in record.get("contactPoints") or ()]
    facets |= {("language", v.lower()) for value in languages for v in _strings(value)}
    return doc, [*folded, variants], facets


class SearchIndex:
    """The search side index in the SQLite file ``path`` (created if missing)."""

    def __init__(self, path: str) -> None:
        self.path, self._sources = str(path), {}
        self._locks = {True: threading.Lock(), False: threading.Lock()}  # writer, reader
        try:  # not check_same_thread: any thread may use a connection, one at a time (locks)
            self._cons = {write: sqlite3.connect(self.path, timeout=30, isolation_level=None,
                                                 check_same_thread=False) for write in self._locks}
            for con in self._cons.values():  # WAL + NORMAL: durable at checkpoints, never corrupt
                con.executescript("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; CREATE "
                                  "TEMP TABLE hits(id INTEGER PRIMARY KEY, rank REAL)")
        except sqlite3.Error as exc:
            raise StoreError(f"search index: {exc}", reason="search-index-failed") from exc
        with self._use(True) as con:
            _ = [con.execute(statement) for statement in _SCHEMA]

    @contextmanager
    def _use(self, write: bool) -> Iterator[sqlite3.Connection]:
        """The writer (``BEGIN IMMEDIATE``) or reader (one state per search) in a transaction."""
        with self._locks[write]:
            if (con := self._cons.get(write)) is None:
                raise StoreError("the search index is closed", reason="store-closed")
            try:
                con.execute("BEGIN IMMEDIATE" if write else "BEGIN")
                yield con
                con.execute("COMMIT")
            except BaseException as exc:
                if con.in_transaction:
                    con.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error):
                    raise StoreError(f"search index: {exc}", reason="search-index-failed") from exc
                raise

    def close(self) -> None:
        """Close both connections; the index cannot be used afterwards."""
        with self._locks[True], self._locks[False]:
            _ = [con.close() for con in self._cons.values()]
            self._cons = {}

    def set_source(self, source_id: str, *, name: str = "", city: str | None = None) -> None:
        """Record a source's name and city (the ``city`` facet of all its entities)."""
        if self._sources.get(source_id) != (name, city):
            with self._use(True) as con:
                con.execute("INSERT INTO sources VALUES (?, ?, ?) ON CONFLICT(id) DO UPDATE SET "
                            "name=excluded.name, city=excluded.city", (source_id, name, city))
                con.execute("DELETE FROM facets WHERE key='city' AND doc IN (SELECT id FROM docs "
                            "WHERE source=?)", (source_id,))
                con.execute("INSERT INTO facets SELECT 'city', ?, id FROM docs WHERE source=? AND "
                            "? IS NOT NULL", (city, source_id, city))
            self._sources[source_id] = (name, city)

    def apply(self, source_id: str, upserts: Mapping[str, tuple[str, Mapping[str, Any]]],
              deletes: Iterable[str] = ()) -> None:
        """Index ``{entity: (kind, record)}``, unindex ``deletes``: ONE transaction."""
        with self._use(True) as con:
            con.execute("INSERT OR IGNORE INTO sources(id) VALUES (?)", (source_id,))
            city = con.execute("SELECT city FROM sources WHERE id=?", (source_id,)).fetchone()[0]
            for entity in [*deletes, *upserts]:
                for (old,) in con.execute("SELECT id FROM docs WHERE entity=? AND source=?",
                                          (entity, source_id)).fetchall():
                    for table, column in (("fts", "rowid"), ("facets", "doc"), ("docs", "id")):
                        con.execute(f"DELETE FROM {table} WHERE {column}=?", (old,))
            for entity, (kind, record) in upserts.items():
                doc, texts, facets = _row(source_id, kind, record)
                cur = con.execute("INSERT INTO docs(entity, source, kind, names, sort, register, "
                                  "court, wikidata, domain, match_names) VALUES (?,?,?,?,?,?,?,?,"
                                  "?,?) ON CONFLICT(entity) DO NOTHING", [entity, *doc])
                if cur.rowcount == 1:  # 0: another source's entity (the store refuses it too)
                    con.execute("INSERT INTO fts(rowid, name, alternate, texts, variants) "
                                "VALUES (?,?,?,?,?)", [cur.lastrowid, *texts])
                    con.executemany("INSERT INTO facets VALUES (?,?,?)", [(k, v, cur.lastrowid) for
                                    k, v in facets | ({("city", city)} if city else set())])

    def apply_batch(self, batch: Batch, source: Any = None) -> None:
        """Mirror a store Batch (the pipeline hook); ``source``: its `model.Source` (city)."""
        if source is not None:
            self.set_source(source.id, name=source.name, city=(source.options or {}).get("city"))
        found = {e: records_from_triples(e, triples) for e, triples in batch.replacements.items()}
        self.apply(batch.source_id, {e: f for e, f in found.items() if f},
                   [*batch.deletions, *(e for e, f in found.items() if f is None)])

    def drop_source(self, source_id: str) -> None:
        """Remove a source and everything indexed for it, in one transaction."""
        with self._use(True) as con:
            for table, column in (("fts", "rowid"), ("facets", "doc"), ("docs", "id")):
                con.execute(f"DELETE FROM {table} WHERE {column} IN (SELECT id FROM docs WHERE "
                            "source=?)", (source_id,))
            con.execute("DELETE FROM sources WHERE id=?", (source_id,))
        self._sources.pop(source_id, None)

    def search(self, q: str | None = None, facets: Mapping[str, Iterable[str]] | None = None,
               page: int = 1, per_page: int = 20, *, facet_limit: int = 50) -> SearchResult:
        """Matches of ``q`` (bm25; by name without) and ``facets`` (OR in a key, AND across keys),
        with the counts of each facet value among all matches."""
        chosen = {k: sorted({str(v) for v in vs}) for k, vs in (facets or {}).items() if vs}
        if unknown := set(chosen) - set(FACET_KEYS):
            raise ValueError(f"unknown facet keys: {sorted(unknown)}")
        match, per_page = fts_query(q), min(max(1, int(per_page)), MAX_PER_PAGE)
        window, columns = [per_page, (max(1, int(page)) - 1) * per_page], "entity,kind,source,names"
        with self._use(False) as con:
            if not match and not chosen:  # browsing everything: the name index
                total = con.execute("SELECT count(*) FROM docs").fetchone()[0]
                rows = con.execute(f"SELECT {columns} FROM docs ORDER BY sort, entity LIMIT ? "
                                   "OFFSET ?", window).fetchall()
                counting = "SELECT key, value, count(*) FROM facets GROUP BY key, value"
            else:
                self._fill(con, match, chosen)
                total = con.execute("SELECT count(*) FROM temp.hits").fetchone()[0]
                rows = con.execute(  # without text: walk the name index, stop after the page
                    f"SELECT {columns} FROM temp.hits h JOIN docs d ON d.id=h.id ORDER BY h.rank,"
                    " sort, entity LIMIT ? OFFSET ?" if match else f"SELECT {columns} FROM docs "
                    "WHERE id IN (SELECT id FROM temp.hits) ORDER BY sort, entity LIMIT ? OFFSET ?",
                    window).fetchall()  # CROSS JOIN: hit by hit through the index facets_doc
                counting = ("SELECT f.key, f.value, count(*) FROM temp.hits h CROSS JOIN facets f"
                            " ON f.doc = h.id GROUP BY f.key, f.value")
            counts = self._grouped(con, counting, [], facet_limit)
        return SearchResult(total, [Hit(e, k, s, json.loads(n)) for e, k, s, n in rows], counts)

    @staticmethod
    def _fill(con: sqlite3.Connection, match: str | None, chosen: Mapping[str, list]) -> None:
        """Temp table hits := (id, bm25 or 0) of the docs matching ``match`` and ``chosen``."""
        # "+rowid": a bare FTS5 rowid constraint would run one MATCH per listed rowid (measured)
        where = "".join(f" AND {'+rowid' if match else 'id'} IN (SELECT doc FROM facets WHERE "
                        "key=? AND value IN (SELECT value FROM json_each(?)))" for _ in chosen)
        params = [p for key, values in chosen.items() for p in (key, json.dumps(values))]
        con.execute("DELETE FROM temp.hits")
        con.execute("INSERT INTO temp.hits " + (
            f"SELECT rowid, bm25(fts, {_WEIGHTS}) FROM fts WHERE fts MATCH ?{where}" if match
            else f"SELECT id, 0 FROM docs WHERE 1{where}"), [match, *params] if match else params)

    @staticmethod
    def _grouped(con: sqlite3.Connection, sql: str, params: list, limit: int) -> dict:
        """{key: {value: count}} from (key, value, count) rows, the ``limit`` biggest per key."""
        counts: dict[str, dict[str, int]] = {key: {} for key in FACET_KEYS}
        for key, value, n in sorted(con.execute(sql, params), key=lambda r: (-r[2], r[1])):
            if len(counts.setdefault(key, {})) < limit:
                counts[key][value] = n
        return counts

    def facet_values(self, key: str, *, limit: int = 1000) -> dict[str, int]:
        """Every value of a facet key with its count over the whole index, most frequent first."""
        if key not in FACET_KEYS:
            raise ValueError(f"unknown facet key {key!r}")
        with self._use(False) as con:
            return self._grouped(con, "SELECT key, value, count(*) FROM facets WHERE key=? "
                                 "GROUP BY value", [key], limit)[key]

    def same_actor_candidates(self) -> list[Candidate]:
        """`harvesters.sameas` candidates: SQL (indexed GROUP BYs) picks the actors sharing a
        Wikidata id, register number or domain with another source; `sameas` pairs them."""
        shared = " OR ".join(f"{c} IN (SELECT {c} FROM docs WHERE kind='actor' AND {c} NOT NULL "
                             f"GROUP BY {c} HAVING count(DISTINCT source) > 1)"
                             for c in ("wikidata", "register", "domain"))
        with self._use(False) as con:
            rows = con.execute("SELECT entity, source, register, court, wikidata, domain, "
                               f"match_names FROM docs WHERE kind='actor' AND ({shared})")
            return candidates_from_keys({e: ActorKeys(s, r, c, w, d, tuple(json.loads(n)))
                                         for e, s, r, c, w, d, n in rows})
