"""The index store's contract: what a harvest hands over (`Batch`) and what a backend offers.

Why a contract of its own: the pipeline, the index service and the tests talk to one small
interface, and the backend (embedded Oxigraph by default, a remote SPARQL 1.1 server for
scale-out) is chosen by configuration, as Warehouse does with its file storage. Every
backend raises only `harvesters.errors` exceptions; driver errors never leak out.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import IO, Any

import pyoxigraph as ox

__all__ = ["Batch", "BulkInput", "IndexStore", "QueryResult", "TripleLike"]

# A triple as pyoxigraph makes it, or an (s, p, o) tuple of pyoxigraph or rdflib terms.
TripleLike = ox.Triple | tuple[Any, Any, Any]
# What bulk_load_source reads: a file path, bytes, a binary stream, or quads (or triples).
BulkInput = str | os.PathLike | bytes | IO[bytes] | Iterable[ox.Quad | ox.Triple]
# pyoxigraph's own result types, whichever backend answered: the SPARQL endpoint can stream
# them with `.serialize(output, format)` or by iterating.
QueryResult = ox.QuerySolutions | ox.QueryBoolean | ox.QueryTriples | Iterable[ox.Triple]


@dataclass
class Batch:
    """One atomic step of a harvest: entity graphs to replace or drop, plus the source's state.

    ``replacements`` maps an entity graph IRI (= the entity IRI) to its complete new triples;
    ``deletions`` lists entity graph IRIs to drop; ``provenance`` triples go into the source's
    graph (triples whose subject is an entity graph IRI of this batch are per-entity
    provenance: they are replaced and dropped together with that entity); ``cursor`` is the
    source's harvest position (JSON-serialisable; None keeps the saved one).
    """

    source_id: str
    replacements: Mapping[str, Iterable[TripleLike]] = field(default_factory=dict)
    deletions: Collection[str] = ()
    provenance: Iterable[TripleLike] = ()
    cursor: Any = None

    def __post_init__(self) -> None:
        if not isinstance(self.source_id, str) or not self.source_id:
            raise ValueError("a batch needs a non-empty source id")
        both = set(self.replacements) & set(self.deletions)
        if both:
            # A feed page that deletes and re-creates an entity must say which comes last.
            raise ValueError(f"graphs both replaced and deleted: {sorted(both)[:5]}")

    @property
    def graphs(self) -> list[str]:
        """Every entity graph IRI this batch touches."""
        return [*self.replacements, *self.deletions]


class IndexStore(ABC):
    """The index: one named graph per entity, grouped by source, with each source's state."""

    @abstractmethod
    def apply(self, batch: Batch) -> None:
        """Replace and drop entity graphs and save provenance and cursor, all or nothing."""

    @abstractmethod
    def cursor(self, source_id: str) -> Any | None:
        """The harvest position saved by the last applied batch, or None."""

    @abstractmethod
    def graphs_of(self, source_id: str) -> set[str]:
        """The entity graph IRIs the source currently owns."""

    @abstractmethod
    def sources(self) -> set[str]:
        """Ids of every source with state in the store."""

    @abstractmethod
    def drop_source(self, source_id: str) -> None:
        """Remove a source: its entity graphs, provenance and cursor, in one atomic step."""

    @abstractmethod
    def bulk_load_source(self, source_id: str, data: BulkInput, *,
                         format: ox.RdfFormat = ox.RdfFormat.N_QUADS,
                         graph_for: Callable[[ox.Quad], str] | None = None,
                         cursor: Any = None, provenance: Iterable[TripleLike] = (),
                         chunk_size: int = 100_000) -> int:
        """Replace all of a source's data from a dump at bulk speed; returns quads loaded."""

    @abstractmethod
    def replace_graph(self, iri: str, triples: Iterable[TripleLike]) -> None:
        """Replace the INDEX-OWNED graph ``iri`` (e.g. `harvesters.sameas.SAME_AS_GRAPH`) with
        ``triples``, all or nothing. Never a source's graph or an entity graph a source owns
        (StoreError "graph-owned-by-other-source"); not listed by `sources`/`graphs_of`."""

    @abstractmethod
    def recover_incomplete_loads(self) -> list[str]:
        """Undo bulk loads a crash interrupted; returns the ids of the sources reset."""

    @abstractmethod
    def query(self, sparql: str, *, timeout: float | None = None) -> QueryResult:
        """Run a SPARQL 1.1 query (SELECT, ASK, CONSTRUCT, DESCRIBE) over the whole index."""

    @abstractmethod
    def count_triples(self, source_id: str | None = None) -> int:
        """Triples in entity graphs (bookkeeping excluded), of one source or of all."""

    @abstractmethod
    def close(self) -> None:
        """Release the backend (files, locks, connections)."""

    def __enter__(self) -> IndexStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
