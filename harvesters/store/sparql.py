"""The index layout written as SPARQL 1.1 Update text, and the store logic both backends share.

Both backends hold the same graphs and send the same requests; they differ only in how a
request travels (in-process `Store.update` or HTTP POST) and how bulk quads are written
(`Store.bulk_load`/`bulk_extend` or a Graph Store POST). `SparqlIndexStore` implements the whole
`IndexStore` contract on top of four primitives a backend provides.

Layout (per source id ``S``; ``idx:`` is `STATE_NS`):

- one named graph per entity, its IRI the entity IRI, holding that entity's triples only;
- one source graph ``<urn:x-engagement-atlas:source:S>`` holding ``<sg> idx:sourceId "S"``,
  ``<entity graph> idx:inSource <sg>`` for every graph the source owns, ``<sg> idx:cursor
  "json"``, the provenance triples of the batches, and during a bulk load the marker
  ``<sg> idx:bulkLoadStarted`` with ``<sg> idx:pendingGraph <g>`` write-ahead records.

Every term goes through pyoxigraph's constructors before it is written into a request
(IRIs are validated, literals escaped), so data cannot break out of the request text.
"""

from __future__ import annotations

import itertools
import json
import re
import threading
from abc import abstractmethod
from collections.abc import Callable, Collection, Iterable, Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, unquote

import pyoxigraph as ox
from rdflib.term import BNode, Literal, URIRef

from harvesters.errors import HarvestError, ParseError, StoreError

from .interface import Batch, BulkInput, IndexStore, TripleLike

__all__ = [
    "BULK_LOAD_STARTED",
    "CURSOR",
    "IN_SOURCE",
    "PENDING_GRAPH",
    "SOURCE_GRAPH_PREFIX",
    "SOURCE_ID",
    "STATE_NS",
    "SparqlIndexStore",
    "render_apply",
    "source_graph",
]

STATE_NS = "https://w3id.org/engagement-atlas/ns/index#"
SOURCE_ID = STATE_NS + "sourceId"
IN_SOURCE = STATE_NS + "inSource"
CURSOR = STATE_NS + "cursor"
BULK_LOAD_STARTED = STATE_NS + "bulkLoadStarted"
PENDING_GRAPH = STATE_NS + "pendingGraph"
SOURCE_GRAPH_PREFIX = "urn:x-engagement-atlas:source:"

_XSD_DATETIME = ox.NamedNode("http://www.w3.org/2001/XMLSchema#dateTime")
_PLAIN_LABEL = re.compile(r"[A-Za-z0-9_]+\Z")
_VALUES_CHUNK = 1000  # IRIs per VALUES block in ownership look-ups


def source_graph(source_id: str) -> str:
    """The IRI of the graph holding a source's state and provenance."""
    return SOURCE_GRAPH_PREFIX + quote(source_id, safe="")


def _source_id_of(graph: str) -> str:
    return unquote(graph[len(SOURCE_GRAPH_PREFIX):])


def _iri(value: str) -> str:
    """``<value>``; pyoxigraph refuses anything that is not an absolute IRI."""
    return str(ox.NamedNode(value))


def _entity_iri(value: str) -> str:
    if not isinstance(value, str) or value.startswith(SOURCE_GRAPH_PREFIX):
        raise ValueError(f"not an entity graph IRI: {value!r}")
    return _iri(value)


def _label(label: str, scope: str) -> str:
    # SPARQL blank node labels are scoped to the request (SPARQL 1.1 Update §3.1.1); the scope
    # prefix keeps two graphs of one batch from sharing a blank node by accident.
    return f"_:{scope}{label if _PLAIN_LABEL.match(label) else label.encode().hex()}"


def _term(term: Any, scope: str) -> str:
    if isinstance(term, ox.BlankNode):
        return _label(term.value, scope)
    if isinstance(term, (ox.NamedNode, ox.Literal)):
        return str(term)
    if isinstance(term, URIRef):
        return _iri(str(term))
    if isinstance(term, BNode):
        return _label(str(term), scope)
    if isinstance(term, Literal):
        datatype = None if term.language or term.datatype is None else ox.NamedNode(term.datatype)
        return str(ox.Literal(str(term), language=term.language, datatype=datatype))
    raise TypeError(f"not an RDF term: {term!r}")


_PLAIN_OBJECT = (ox.NamedNode, ox.Literal)


def _triple_line(triple: TripleLike, scope: str) -> str:
    if (type(triple) is ox.Triple and type(triple.subject) is ox.NamedNode
            and type(triple.object) in _PLAIN_OBJECT):
        return f"{triple} ."  # no blank node: pyoxigraph writes the N-Triples line at once
    s, p, o = triple  # pyoxigraph Triples unpack like tuples; a Quad does not fit (ValueError)
    if isinstance(s, (ox.Literal, Literal)) or not isinstance(p, (ox.NamedNode, URIRef)):
        raise TypeError(f"not a valid triple: {triple!r}")
    return f"{_term(s, scope)} {_term(p, scope)} {_term(o, scope)} ."


def _graph_block(graph: str, triples: Iterable[TripleLike], scope: str) -> Iterator[str]:
    yield f"GRAPH {graph} {{"
    for triple in triples:
        yield _triple_line(triple, scope)
    yield "}"


def _values(iris: Iterable[str]) -> str:
    return " ".join(_iri(i) for i in iris)


def _cursor_literal(cursor: Any) -> str:
    text = json.dumps(cursor, sort_keys=True, ensure_ascii=False, allow_nan=False)
    return str(ox.Literal(text))


def render_apply(batch: Batch, *, absent: Collection[str] = ()) -> str:
    """One SPARQL Update request carrying the whole batch (executed as one transaction).

    ``absent``: graphs of the batch the caller found to hold no quads and no statements in
    the source graph (`SparqlIndexStore._present`, under its write lock); they need no DROP
    and no clean-up. A first harvest writes only new graphs, and Oxigraph took about twice
    as long for a request with 1,000 no-op DROPs as without them.
    """
    sg = _iri(source_graph(batch.source_id))
    touched = [iri for g in batch.graphs if (iri := _entity_iri(g)) and g not in absent]
    ops = [f"DROP SILENT GRAPH {g}" for g in touched]
    if touched:
        # What the source graph says about these entities (ownership, per-entity provenance)
        # goes with them; provenance inserted below may say it again.
        ops.append(f"DELETE {{ GRAPH {sg} {{ ?g ?p ?o }} }} WHERE {{ GRAPH {sg} {{ "
                   f"VALUES ?g {{ {' '.join(touched)} }} ?g ?p ?o }} }}")
    if batch.cursor is not None:
        ops.append(f"DELETE WHERE {{ GRAPH {sg} {{ {sg} <{CURSOR}> ?c }} }}")
    data = ["INSERT DATA {"]
    for n, (graph, triples) in enumerate(batch.replacements.items()):
        data.extend(_graph_block(_entity_iri(graph), triples, f"b{n}x"))
    data.append(f"GRAPH {sg} {{")
    data.append(f"{sg} <{SOURCE_ID}> {ox.Literal(batch.source_id)} .")
    data.extend(f"{_entity_iri(g)} <{IN_SOURCE}> {sg} ." for g in batch.replacements)
    data.extend(_triple_line(t, "p") for t in batch.provenance)
    if batch.cursor is not None:
        data.append(f"{sg} <{CURSOR}> {_cursor_literal(batch.cursor)} .")
    data.append("} }")
    ops.append("\n".join(data))
    return " ;\n".join(ops)


def _chunks(quads: Iterator[ox.Quad], size: int) -> Iterator[list[ox.Quad]]:
    """Lists of about ``size`` quads, cut only where the graph changes (a dump groups an
    entity's lines, so an entity never spans two requests)."""
    chunk: list[ox.Quad] = []
    for quad in quads:
        if len(chunk) >= size and quad.graph_name != chunk[-1].graph_name:
            yield chunk
            chunk = []
        chunk.append(quad)
    if chunk:
        yield chunk


def _subject_graph(quad: ox.Quad) -> str:
    """Default entity of a triple: its subject IRI without fragment (``{entity}#address``)."""
    if not isinstance(quad.subject, ox.NamedNode):
        raise ValueError("a blank-node subject needs graph_for to find its entity")
    return quad.subject.value.split("#", 1)[0]


def _bulk_quads(data: BulkInput, format: ox.RdfFormat,
                graph_for: Callable[[ox.Quad], str] | None) -> Iterator[ox.Quad]:
    if isinstance(data, str) or hasattr(data, "__fspath__"):
        items: Iterable[Any] = ox.parse(path=data, format=format, rename_blank_nodes=True)
    elif isinstance(data, bytes) or hasattr(data, "read"):
        items = ox.parse(data, format=format, rename_blank_nodes=True)
    else:
        items = _fresh_blank_nodes(data)
    to_graph = graph_for or _subject_graph
    for item in items:
        if isinstance(item, ox.Triple):
            item = ox.Quad(item.subject, item.predicate, item.object)
        if isinstance(item.graph_name, ox.DefaultGraph):
            item = ox.Quad(item.subject, item.predicate, item.object, ox.NamedNode(to_graph(item)))
        yield item


def _fresh_blank_nodes(items: Iterable[Any]) -> Iterator[Any]:
    # Blank nodes keep their labels in an embedded store: two dumps both saying _:b0 would
    # share one node. Give each load its own (parse() does the same with rename_blank_nodes).
    fresh: dict[str, ox.BlankNode] = {}

    def f(term: Any) -> Any:
        if isinstance(term, ox.BlankNode):
            return fresh.setdefault(term.value, ox.BlankNode())
        return term

    for item in items:
        if isinstance(item, ox.Quad) and (isinstance(item.subject, ox.BlankNode)
                                          or isinstance(item.object, ox.BlankNode)):
            item = ox.Quad(f(item.subject), item.predicate, f(item.object), item.graph_name)
        elif isinstance(item, ox.Triple):
            item = ox.Triple(f(item.subject), item.predicate, f(item.object))
        yield item


class SparqlIndexStore(IndexStore):
    """`IndexStore` over any engine that runs SPARQL 1.1 Query and Update requests.

    A backend provides `_update` (one request, one transaction), `_select` (rows of plain
    strings), `_write_quads` (fast, not necessarily atomic), `query` and `close`.
    """

    def __init__(self) -> None:
        # Ownership check and write must not interleave with another writer of this process.
        self._lock = threading.RLock()

    @abstractmethod
    def _update(self, sparql: str) -> None: ...

    @abstractmethod
    def _select(self, sparql: str) -> list[dict[str, str]]: ...

    @abstractmethod
    def _write_quads(self, quads: list[ox.Quad] | bytes) -> None:
        """Write quads (a list, or an N-Quads document without blank nodes)."""

    # -- the contract ----------------------------------------------------------------------

    # Backends whose `_write_quads` is much faster than an update (Oxigraph's bulk_extend:
    # ~4.5x for 45,000-quad pages) write large pages of new graphs through `_apply_bulk`.
    _bulk_pages = False
    BULK_PAGE_MIN = 2000  # quads

    def apply(self, batch: Batch) -> None:
        with self._lock:
            bulk = None
            try:  # an IRI that is none fails in the look-ups already
                self._check_owner(batch.source_id, batch.graphs)
                absent = set(batch.graphs) - self._present(batch.source_id, batch.graphs)
                if self._bulk_pages:
                    bulk = self._bulk_parts(batch, absent)
                if bulk is None:
                    text = render_apply(batch, absent=absent) if absent else render_apply(batch)
            except (TypeError, ValueError) as exc:
                raise StoreError(f"batch for {batch.source_id!r} refused: {exc}",
                                 reason="invalid-batch") from exc
            if bulk is not None:
                self._apply_bulk(batch.source_id, *bulk)
            else:
                self._update(text)

    def _bulk_parts(self, batch: Batch, absent: set[str]
                    ) -> tuple[bytes, str, str] | None:
        """For a batch that only writes new graphs (all ``absent``, no deletions), without
        blank nodes, of at least BULK_PAGE_MIN quads: its quads as N-Quads, the write-ahead
        request and the finishing request. None: the batch goes as one update.

        The N-Quads come from pyoxigraph's N-Triples writer, one graph at a time, with the
        graph IRI put before each line's final " ." (N-Triples §7/N-Quads §6: the writer
        escapes line breaks inside literals, so a line ends at the only "\\n"): building
        a `Quad` per triple in Python cost ~1.3 us each for literal objects (pyoxigraph's
        term extraction), four times what the writer needs."""
        if (batch.deletions or not batch.replacements or len(absent) < len(batch.replacements)
                or not all(isinstance(v, (list, tuple)) for v in batch.replacements.values())
                or sum(map(len, batch.replacements.values())) < self.BULK_PAGE_MIN):
            return None
        sg = _iri(source_graph(batch.source_id))
        # Ownership and the provenance about the page's (pending) graphs go with the bulk
        # quads: `_discard_bulk` removes what the source graph says about pending graphs,
        # which said nothing before (``absent``), so a crash still undoes the whole page.
        about, rest = [], []
        for t in batch.provenance:
            subject = t.subject if type(t) is ox.Triple else None
            mine = type(subject) is ox.NamedNode and subject.value in batch.replacements
            (about if mine else rest).append(t)
        parts = []
        for graph, triples in [*batch.replacements.items(), (None, about)]:
            g = _entity_iri(graph) if graph is not None else sg
            if not all(type(t) is ox.Triple for t in triples):
                return None
            text = ox.serialize(triples, format=ox.RdfFormat.N_TRIPLES).decode("utf-8")
            # Blank nodes ("_:") and triple terms ("<<") go as an update; the strings may also
            # occur inside IRIs or literals, and such a batch just takes the update too.
            if "_:" in text or "<<" in text or text.count("\n") != len(triples):
                return None
            parts.append(text.replace(" .\n", f" {g} .\n"))
        parts += [f"{_iri(g)} <{IN_SOURCE}> {sg} {sg} .\n" for g in batch.replacements]
        quads = "".join(parts).encode("utf-8")
        now = ox.Literal(datetime.now(UTC).isoformat(), datatype=_XSD_DATETIME)
        pending = ", ".join(_iri(g) for g in batch.replacements)
        begin = (f"INSERT DATA {{ GRAPH {sg} {{ {sg} <{SOURCE_ID}> {ox.Literal(batch.source_id)}"
                 f" ; <{BULK_LOAD_STARTED}> {now} ; <{PENDING_GRAPH}> {pending} }} }}")
        finish = self._render_finish(sg, batch.cursor, rest, owned=True)
        if batch.cursor is not None:
            finish = f"DELETE WHERE {{ GRAPH {sg} {{ {sg} <{CURSOR}> ?c }} }} ;\n{finish}"
        return quads, begin, finish

    def _apply_bulk(self, source_id: str, quads: bytes, begin: str, finish: str) -> None:
        """A page of new graphs, all or nothing, at bulk speed: the graphs are recorded as
        pending with the bulk-load marker (one update), written by `_write_quads` with their
        ownership and provenance statements, then the pending records and the marker go
        with the cursor set (one update). A crash in between leaves the marker: opening
        the store (`recover_incomplete_loads`) drops the pending graphs and what the source
        graph says about them, none of which existed before, so the previous state is back
        and the run resumes from the saved cursor. (A new source's ``idx:sourceId`` may
        stay.)"""
        self._update(begin)
        try:
            self._write_quads(quads)
            self._update(finish)
        except Exception:
            try:
                self._discard_bulk(source_id)
            except StoreError:
                pass  # the marker stays; recover_incomplete_loads finishes the clean-up
            raise

    def cursor(self, source_id: str) -> Any | None:
        sg = _iri(source_graph(source_id))
        rows = self._select(f"SELECT ?c WHERE {{ GRAPH {sg} {{ {sg} <{CURSOR}> ?c }} }}")
        if not rows:
            return None
        try:
            return json.loads(rows[0]["c"])
        except ValueError as exc:
            raise StoreError(f"unreadable cursor for {source_id!r}", reason="bad-state") from exc

    def graphs_of(self, source_id: str) -> set[str]:
        sg = _iri(source_graph(source_id))
        rows = self._select(f"SELECT ?g WHERE {{ GRAPH {sg} {{ ?g <{IN_SOURCE}> {sg} }} }}")
        return {row["g"] for row in rows}

    def sources(self) -> set[str]:
        rows = self._select(f"SELECT ?id WHERE {{ GRAPH ?sg {{ ?sg <{SOURCE_ID}> ?id }} }}")
        return {row["id"] for row in rows}

    def drop_source(self, source_id: str) -> None:
        sg = source_graph(source_id)
        with self._lock:
            graphs = self.graphs_of(source_id) | self._pending_graphs(source_id)
            ops = [f"DROP SILENT GRAPH {_iri(g)}" for g in sorted(graphs)]
            ops.append(f"DROP SILENT GRAPH {_iri(sg)}")
            self._update(" ;\n".join(ops))

    def count_triples(self, source_id: str | None = None) -> int:
        sg = _iri(source_graph(source_id)) if source_id is not None else "?sg"
        rows = self._select(f"SELECT (COUNT(*) AS ?n) WHERE {{ GRAPH {sg} {{ ?g <{IN_SOURCE}> "
                            f"{sg} }} GRAPH ?g {{ ?s ?p ?o }} }}")
        return int(rows[0]["n"]) if rows else 0

    def bulk_load_source(self, source_id: str, data: BulkInput, *,
                         format: ox.RdfFormat = ox.RdfFormat.N_QUADS,
                         graph_for: Callable[[ox.Quad], str] | None = None,
                         cursor: Any = None, provenance: Iterable[TripleLike] = (),
                         chunk_size: int = 100_000) -> int:
        """Replace all of a source's data at bulk speed (PITFALLS: 5-10x `load`).

        Not atomic for readers: the source's old data go first, and queries see the load
        progress. Crash safety instead: a marker is committed before the first quad, each
        chunk's graphs are recorded before the chunk is written, and ownership, provenance
        and cursor are committed last in one transaction that also removes the marker. A
        crash leaves the marker and no cursor; `recover_incomplete_loads` (run when an
        OxigraphStore opens) drops the recorded graphs, and the harvester, seeing no cursor,
        loads the dump again. Quads in the default graph go to ``graph_for(quad)``.
        """
        sg = _iri(source_graph(source_id))
        try:
            tail = self._render_finish(sg, cursor, provenance)
        except (TypeError, ValueError) as exc:
            raise StoreError(f"bulk load for {source_id!r} refused: {exc}",
                             reason="invalid-batch") from exc
        self._begin_bulk(source_id)
        loaded, known = 0, set()
        try:
            for chunk in _chunks(_bulk_quads(data, format, graph_for), chunk_size):
                new = {q.graph_name for q in chunk if q.graph_name not in known}
                for graph in new:
                    if not isinstance(graph, ox.NamedNode):
                        raise ValueError(f"not an entity graph: {graph}")
                    _entity_iri(graph.value)
                with self._lock:
                    self._check_owner(source_id, [g.value for g in new])
                    if new:  # write-ahead: the graphs are recorded before any quad lands
                        self._update(f"INSERT DATA {{ GRAPH {sg} {{ " + " ".join(
                            f"{sg} <{PENDING_GRAPH}> {g} ." for g in new) + " } }")
                    self._write_quads(chunk)
                known |= new
                loaded += len(chunk)
            self._update(tail)
        except Exception as exc:
            try:
                self._discard_bulk(source_id)
            except StoreError:
                pass  # the marker stays; recover_incomplete_loads finishes the clean-up
            if isinstance(exc, HarvestError):
                raise
            if isinstance(exc, SyntaxError):
                raise ParseError(f"bulk data for {source_id!r}: {exc}") from exc
            raise StoreError(f"bulk load for {source_id!r} failed: {exc}",
                             reason="invalid-batch" if isinstance(exc, (TypeError, ValueError))
                             else "bulk-load-failed") from exc
        return loaded

    def replace_graph(self, iri: str, triples: Iterable[TripleLike]) -> None:
        """One request: DROP the graph, INSERT DATA its new triples (one transaction)."""
        try:
            if not isinstance(iri, str) or iri.startswith(SOURCE_GRAPH_PREFIX):
                raise ValueError(f"not an index-owned graph: {iri!r}")
            graph = _iri(iri)
            text = "\n".join([f"DROP SILENT GRAPH {graph} ;", "INSERT DATA {",
                              *_graph_block(graph, triples, "i"), "}"])
        except (TypeError, ValueError) as exc:
            raise StoreError(f"graph {iri!r} refused: {exc}", reason="invalid-batch") from exc
        with self._lock:
            rows = self._select(f"SELECT ?sg WHERE {{ GRAPH ?sg {{ {{ {graph} <{IN_SOURCE}> ?sg }}"
                                f" UNION {{ ?sg <{PENDING_GRAPH}> {graph} }} }} }} LIMIT 1")
            if rows:
                raise StoreError(f"{iri} belongs to source {_source_id_of(rows[0]['sg'])!r}",
                                 reason="graph-owned-by-other-source")
            self._update(text)

    def recover_incomplete_loads(self) -> list[str]:
        rows = self._select(f"SELECT ?id WHERE {{ GRAPH ?sg {{ ?sg <{BULK_LOAD_STARTED}> ?t ; "
                            f"<{SOURCE_ID}> ?id }} }}")
        ids = sorted({row["id"] for row in rows})
        for source_id in ids:
            self._discard_bulk(source_id)
        return ids

    # -- helpers -----------------------------------------------------------------------------

    def _check_owner(self, source_id: str, graphs: Iterable[str]) -> None:
        """Refuse graphs another source owns or is loading: a source never touches another's."""
        mine = _iri(source_graph(source_id))
        it = iter(graphs)
        while chunk := list(itertools.islice(it, _VALUES_CHUNK)):
            rows = self._select(
                f"SELECT ?g ?sg WHERE {{ VALUES ?g {{ {_values(chunk)} }} GRAPH ?sg {{ "
                f"{{ ?g <{IN_SOURCE}> ?sg }} UNION {{ ?sg <{PENDING_GRAPH}> ?g }} }} "
                f"FILTER(?sg != {mine}) }} LIMIT 1")
            if rows:
                raise StoreError(f"{rows[0]['g']} belongs to source "
                                 f"{_source_id_of(rows[0]['sg'])!r}, not {source_id!r}",
                                 reason="graph-owned-by-other-source")

    def _present(self, source_id: str, graphs: Iterable[str]) -> set[str]:
        """Those of ``graphs`` that hold quads or that the source graph says something about."""
        sg = _iri(source_graph(source_id))
        found: set[str] = set()
        it = iter(graphs)
        while chunk := list(itertools.islice(it, _VALUES_CHUNK)):
            rows = self._select(f"SELECT DISTINCT ?g WHERE {{ VALUES ?g {{ {_values(chunk)} }} {{ "
                                f"GRAPH ?g {{ ?s ?p ?o }} }} UNION {{ GRAPH {sg} {{ ?g ?q ?v }} "
                                "} }")
            found |= {row["g"] for row in rows}
        return found

    def _pending_graphs(self, source_id: str) -> set[str]:
        sg = _iri(source_graph(source_id))
        rows = self._select(f"SELECT ?g WHERE {{ GRAPH {sg} {{ {sg} <{PENDING_GRAPH}> ?g }} }}")
        return {row["g"] for row in rows}

    def _begin_bulk(self, source_id: str) -> None:
        sg = _iri(source_graph(source_id))
        now = ox.Literal(datetime.now(UTC).isoformat(), datatype=_XSD_DATETIME)
        with self._lock:
            graphs = self.graphs_of(source_id) | self._pending_graphs(source_id)
            ops = [f"DROP SILENT GRAPH {_iri(g)}" for g in sorted(graphs)]
            ops.append(f"DROP SILENT GRAPH {sg}")
            ops.append(f"INSERT DATA {{ GRAPH {sg} {{ {sg} <{SOURCE_ID}> "
                       f"{ox.Literal(source_id)} ; <{BULK_LOAD_STARTED}> {now} }} }}")
            self._update(" ;\n".join(ops))

    def _render_finish(self, sg: str, cursor: Any, provenance: Iterable[TripleLike], *,
                       owned: bool = False) -> str:
        """The request that ends a bulk load: pending graphs become owned (``owned``: the
        ownership statements were written with the quads), provenance, cursor, no marker."""
        data = [_triple_line(t, "p") for t in provenance]
        if cursor is not None:
            data.append(f"{sg} <{CURSOR}> {_cursor_literal(cursor)} .")
        own = "" if owned else f"INSERT {{ GRAPH {sg} {{ ?g <{IN_SOURCE}> {sg} }} }} "
        return " ;\n".join([
            f"DELETE {{ GRAPH {sg} {{ {sg} <{PENDING_GRAPH}> ?g }} }} {own}"
            f"WHERE {{ GRAPH {sg} {{ {sg} <{PENDING_GRAPH}> ?g }} }}",
            f"DELETE WHERE {{ GRAPH {sg} {{ {sg} <{BULK_LOAD_STARTED}> ?t }} }}",
            f"INSERT DATA {{ GRAPH {sg} {{ {' '.join(data)} }} }}",
        ])

    def _discard_bulk(self, source_id: str) -> None:
        """Drop what an unfinished bulk load wrote, and its marker (one transaction)."""
        sg = _iri(source_graph(source_id))
        with self._lock:
            ops = [f"DROP SILENT GRAPH {_iri(g)}" for g in sorted(self._pending_graphs(source_id))]
            # What the source graph says about pending graphs (ownership, provenance) was
            # written with them (`_bulk_parts`); it said nothing about them before.
            ops.append(f"DELETE {{ GRAPH {sg} {{ ?g ?p ?o }} }} WHERE {{ GRAPH {sg} {{ "
                       f"{sg} <{PENDING_GRAPH}> ?g . ?g ?p ?o }} }}")
            ops.append(f"DELETE WHERE {{ GRAPH {sg} {{ {sg} <{PENDING_GRAPH}> ?g }} }}")
            ops.append(f"DELETE WHERE {{ GRAPH {sg} {{ {sg} <{BULK_LOAD_STARTED}> ?t }} }}")
            self._update(" ;\n".join(ops))
