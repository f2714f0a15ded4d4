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
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import cache, lru_cache
from typing import Any, NamedTuple

import pyoxigraph as ox
from rdflib import BNode, Literal, URIRef

from vocab import ENTITIES, entity_id, from_graph
from vocab.fields import ENTITY_BY_COLLECTION
from vocab.namespaces import RDF, XSD, scheme_uri

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
    if isinstance(t, (ox.Literal, ox.NamedNode, ox.BlankNode)):
        return _converted(t)
    return t


@lru_cache(maxsize=65536)  # predicates, types, concepts and languages repeat in every entity
def _converted(t: ox.Literal | ox.NamedNode | ox.BlankNode) -> Any:
    if isinstance(t, ox.Literal):
        datatype = None if t.language or t.datatype.value == str(XSD.string) else t.datatype.value
        return Literal(t.value, lang=t.language, datatype=datatype and URIRef(datatype))
    return (URIRef if isinstance(t, ox.NamedNode) else BNode)(t.value)


class _Lookups:
    """The two look-ups `vocab.mapping.from_graph` makes of a graph (``subjects`` of a type,
    ``objects`` of a subject and predicate), as dicts: the same terms an rdflib Graph of
    the triples would give (rdflib's term equality dedupes them alike), without the cost
    of the Graph's indexes (search apply went from ~0.37 to ~0.1 ms per actor)."""

    def __init__(self) -> None:
        self._objects: dict[tuple, dict] = {}
        self._typed: dict[Any, dict] = {}

    def add(self, triple: tuple) -> None:
        s, p, o = triple
        self._objects.setdefault((s, p), {})[o] = None
        if p == RDF.type:
            self._typed.setdefault(o, {})[s] = None

    def objects(self, subject: Any, predicate: Any) -> Iterator[Any]:
        return iter(list(self._objects.get((subject, predicate), ())))

    def subjects(self, predicate: Any, obj: Any) -> Iterator[Any]:
        if predicate != RDF.type:
            raise NotImplementedError("only rdf:type look-ups")
        return iter(list(self._typed.get(obj, ())))


def records_from_triples(entity_iri: str, triples: Iterable[Any], *,
                         indexed_only: bool = False) -> tuple[str, dict] | None:
    """(kind, record) via `vocab.mapping.from_graph`; None if no Atlas entity. The kind comes
    from the entity's rdf:type, the base from its IRI minus ``/{collection}/{id}``.
    ``indexed_only``: the record holds only the keys the side index reads (`_READ`), which
    gives the same rows for a fraction of the work (tests/harvesters/test_search_rows.py)."""
    graph, types = _Lookups(), set()
    for triple in triples:
        if indexed_only and str(triple[1]) not in _READ:  # ox.NamedNode's str is "<iri>"
            continue
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
            return next(((spec.kind, r) for r in from_graph(graph, spec.kind, base)  # type: ignore[arg-type]
                         if r["id"] == local_id), None)
    return None


def _read_predicates() -> frozenset[str]:
    """Predicates of the record keys `_row` and `sameas.actor_keys` read, and rdf:type, in
    rdflib's and pyoxigraph's string forms: other statements cannot change a row."""
    keys = {"name", "alternateName", "registerNumber", "registerCourt", "wikidata", "url",
            "languages", "availableLanguage", "inLanguage", "contactPoints", *_RECORD_FACETS}
    iris = {str(RDF.type)} | {str(f.predicate) for spec in ENTITIES.values()
                              for f in spec.fields if f.key in keys or f.kind == "text"}
    iris |= {str(f.predicate) for spec in ENTITIES.values() for n in spec.fields
             if n.key == "contactPoints" for f in n.node.fields if f.key == "availableLanguage"}
    return frozenset(iris | {f"<{iri}>" for iri in iris})


_READ = _read_predicates()
_XSD_STRING = str(XSD.string)
_WIKIDATA = "http://www.wikidata.org/entity/"
_WIKIDATA_ITEM = re.compile(re.escape(_WIKIDATA) + r"Q\d+")
_AVAILABLE_LANGUAGE = "https://schema.org/availableLanguage"


class _Unusual(Exception):
    """Input `_direct_record` does not read: `records_from_triples` (from_graph) decides."""


_LANG_TAG = re.compile(r"[a-zA-Z]+(?:-[a-zA-Z0-9]+)*\Z")  # what rdflib accepts (term.py)
_NEEDED = ("name", "alternateName", "registerNumber", "registerCourt", "wikidata", "url",
           "languages", "availableLanguage", "inLanguage", "contactPoints", *_RECORD_FACETS)


def _plain(values: list) -> list[str]:
    """Lexical forms of xsd:string literals (what from_graph reads of such objects)."""
    if any(type(v) is not ox.Literal or v.language or v.datatype.value != _XSD_STRING
           for v in values):
        raise _Unusual
    return [v.value for v in values]


def _direct_value(f: Any, values: list) -> Any:
    """One field's record value as `vocab.mapping._read_fields` gives it, for the kinds and
    terms the side index reads; `_Unusual` for anything else."""
    kind = f.kind
    if kind == "text":
        texts: dict[str, str] = {}
        for v in values:
            if type(v) is not ox.Literal or not v.language or not _LANG_TAG.match(v.language):
                raise _Unusual
            lang = v.language.lower()
            if lang in texts:
                raise _Unusual  # from_graph keeps the last in rdflib's term order
            texts[lang] = v.value
        return dict(sorted(texts.items())) or None
    if kind in {"string", "language"}:
        found = _plain(values)
        found = [x.lower() for x in found] if kind == "language" else found
    elif kind == "iri":
        found = [v.value for v in values if type(v) is ox.NamedNode]
    elif kind == "concept":
        prefix = f"{scheme_uri(f.scheme)}/"
        found = [v.value[len(prefix):] for v in values if type(v) is ox.NamedNode
                 and v.value.startswith(prefix) and "/" not in v.value[len(prefix):]]
    elif kind == "wikidata":
        texts_ = [v.value for v in values if type(v) is ox.NamedNode]
        texts_ += _plain([v for v in values if type(v) is ox.Literal])
        found = [t[len(_WIKIDATA):] for t in texts_ if _WIKIDATA_ITEM.fullmatch(t)]
    else:
        raise _Unusual
    if not found:
        return None
    return sorted(set(found)) if f.many else min(found)


_RDF_TYPE = str(RDF.type)


@cache
def _read_fields(kind: str) -> tuple[ox.NamedNode, tuple[tuple[Any, str], ...]]:
    """An entity kind's class, and its fields `_direct_record` reads with their predicate
    IRIs (in the entity table's order), computed once instead of per entity."""
    spec = ENTITIES[kind]
    return ox.NamedNode(str(spec.rdf_type)), tuple(
        (f, str(f.predicate)) for f in spec.fields if f.key in _NEEDED or f.kind == "text")


def _direct_record(entity_iri: str, triples: Iterable[Any]) -> tuple[str, dict] | None:
    """(kind, record) with the keys `_row` reads, straight from pyoxigraph triples: the
    record `records_from_triples` gives, restricted to those keys (same rows, tested in
    tests/harvesters/test_search_rows.py), without building rdflib terms."""
    by: dict[str, dict[str, list]] = {}
    for t in triples:
        if type(t) is not ox.Triple:
            raise _Unusual
        predicate = t.predicate.value
        if predicate in _READ and type(subject := t.subject) is ox.NamedNode:
            values = by.setdefault(subject.value, {}).setdefault(predicate, [])
            if (value := t.object) not in values:
                values.append(value)
    base, collection, local_id = ["", "", *entity_iri.rsplit("/", 2)][-3:]
    spec = ENTITY_BY_COLLECTION.get(collection)
    own = by.get(entity_iri, {})
    types = [o for o in own.get(_RDF_TYPE, ()) if type(o) is ox.NamedNode]
    if spec is None or _read_fields(spec.kind)[0] not in types:
        return None
    if base.endswith("/") or entity_id(base, spec.kind, entity_iri) != local_id:
        raise _Unusual
    record: dict[str, Any] = {"id": local_id}
    for f, predicate in _read_fields(spec.kind)[1]:
        values = own.get(predicate)
        if not values:
            continue
        if f.key == "contactPoints":
            nodes = [v.value for v in values if type(v) is ox.NamedNode]
            items = [{"availableLanguage": sorted(set(x.lower() for x in _plain(found)))}
                     if (found := by.get(n, {}).get(_AVAILABLE_LANGUAGE)) else {}
                     for n in nodes]
            if items:
                record[f.key] = items
            continue
        value = _direct_value(f, values)
        if value is not None:
            record[f.key] = value
    return spec.kind, record


def indexed_record(entity_iri: str, triples: Sequence[Any]) -> tuple[str, dict] | None:
    """What the side index reads of an entity: `_direct_record`, or for input it does not
    read, ``records_from_triples(..., indexed_only=True)``."""
    try:
        return _direct_record(entity_iri, triples)
    except _Unusual:
        return records_from_triples(entity_iri, triples, indexed_only=True)


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
            entities = list(dict.fromkeys([*deletes, *upserts]))
            for start in range(0, len(entities), 500):  # one look-up per 500, not per entity
                chunk = entities[start:start + 500]
                for (old,) in con.execute(f"SELECT id FROM docs WHERE source=? AND entity IN "
                                          f"({', '.join('?' * len(chunk))})",
                                          [source_id, *chunk]).fetchall():
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
        found = {e: indexed_record(e, list(triples))
                 for e, triples in batch.replacements.items()}
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
