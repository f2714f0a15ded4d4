"""The index store: where harvested data live, kept apart per source, behind one interface.

Backends: `OxigraphStore` (embedded pyoxigraph on disk, the default) and
`RemoteSparqlStore` (any SPARQL 1.1 server, the scale-out choice: ARCHITECTURE measured
Virtuoso ~35x faster on aggregates). Both speak the same SPARQL text (`store.sparql`).

Graph layout: ONE NAMED GRAPH PER ENTITY (graph IRI = entity IRI), grouped by source
through a per-source graph that records which graphs the source owns, its provenance and
its harvest cursor. Why not one graph per source:

- a feed member replaces one entity: ``DROP GRAPH <e>`` + ``INSERT DATA`` — no need to
  know the old triples and no ``DELETE WHERE`` scanning a big source graph (blank nodes
  and fragment resources such as ``{entity}#address`` go with their entity);
- removing a source drops the graphs it owns, listed in its source graph;
- authority is enforced before loading (issue 5 item 5), so an entity IRI lies inside
  its source's URI space; the store still refuses a batch that touches a graph another
  source owns (reason "graph-owned-by-other-source"), so one source never overwrites
  another even if two registrations overlap;
- per-entity provenance (source, retrieval time, feed version) sits in the source graph
  with the entity IRI as subject, and SPARQL users see it with ``GRAPH ?g``.

Atomicity (issue 5 item 6): `IndexStore.apply` sends a batch — dropped graphs, replaced
graphs, provenance and cursor — as ONE SPARQL Update request, which Oxigraph runs as one
transaction; a crash leaves the old or the new state, never a mix, and the cursor is
always the one that belongs to the data. `bulk_load_source` trades atomicity for speed
and keeps crash safety with a marker (see `SparqlIndexStore.bulk_load_source`):
`OxigraphStore` undoes an interrupted bulk load when it opens; with a remote store the
(single) writing harvester calls `recover_incomplete_loads()` when it starts.
"""

from __future__ import annotations

from .interface import Batch, BulkInput, IndexStore, QueryResult, TripleLike
from .oxigraph import OxigraphStore, latest_snapshot
from .remote import RemoteSparqlStore
from .sparql import STATE_NS, source_graph

__all__ = [
    "STATE_NS",
    "Batch",
    "BulkInput",
    "IndexStore",
    "OxigraphStore",
    "QueryResult",
    "RemoteSparqlStore",
    "TripleLike",
    "latest_snapshot",
    "source_graph",
]
