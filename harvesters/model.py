"""Shared types between the readers and the pipeline: Source, Member, Page.

Why: readers (harvesters/readers/) turn what a source publishes (LDES feed, dump, DCAT catalog,
CSV) into a stream of Pages; the pipeline (harvesters/pipeline.py) checks each Page, loads it
and saves ``page.cursor`` in the same atomic store transaction. Readers never touch the index;
the pipeline never parses what sources publish. These three types are the whole contract.

Reader signature: ``read(source, cursor: dict | None, fetcher) -> Iterator[Page]``.
``cursor`` is the ``page.cursor`` of the last page the pipeline applied (None on a first run).

Snapshots and ``full_replace`` (dumps, CKAN catalogs, CSV files; the LDES reader's first
harvest from the dump or, without one, its walk of the whole stream; its fallback to the dump
when the saved feed position was compacted away):

* A snapshot is a complete picture of the source. It may be cut into several Pages (bounded
  batches of a big dump). Every Page of one snapshot carries the same ``snapshot`` id (a string
  unique per run, e.g. ``"dump:2025-01-01T00:00:00Z:3f2a"``), and each of them is applied
  atomically on its own, like any page.
* Only the LAST Page of a snapshot has ``full_replace=True`` (its ``members`` may be empty).
  When the pipeline applies it, it deletes every graph of the source whose entity was not in
  any Page carrying this ``snapshot`` id during this run (including that last page). A
  one-page snapshot simply has ``snapshot`` set and ``full_replace=True`` on that page.
  How the pipeline remembers the entities seen (an in-memory set of entity IRIs for the
  current snapshot, or a per-graph mark in its provenance) is the pipeline's choice.
* If a run stops before the final Page (crash, fetch error), the deletion never happens, so no
  data are lost; the cursors of the intermediate Pages make the next run restart the snapshot
  from the beginning (with a fresh ``snapshot`` id), so the pipeline need not persist the set.
* A ``full_replace`` Page without ``snapshot`` (legacy form) means: this single page is the
  snapshot.

Members are in the order in which they must be applied (LDES: timestamp order); an entity can
occur more than once (several versions in a feed page or a walked stream): the LAST one wins,
and a deleted member still counts as "in the snapshot" (its delete is applied anyway).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Origin", "Source", "Member", "Page"]


@dataclass(frozen=True)
class Source:
    """A registered source; its URI space is fixed at registration, never taken from pages."""

    id: str                  # short stable slug chosen at registration (e.g. host-derived)
    entry_url: str           # the node's root URL
    uri_space: str           # fixed at registration from the entry description (void:uriSpace),
                             # never from pages
    feed_url: str | None
    dump_url: str | None     # all.nt.gz
    kind: str = "node"       # node | index | ckan | csv
    name: str = ""
    # reader options (csv column mapping, ...); each reader documents its own
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Origin:
    """The original source of a member harvested through a trusted index (kind "index").

    ``entry_url``, ``uri_space`` and ``name`` come from the index's description as fixed at
    registration (``source.options["origins"]``), never from feed pages; ``version`` is the
    original version IRI the index named for this member (``prov:hadPrimarySource``).
    """

    entry_url: str
    uri_space: str
    name: str = ""
    version: str | None = None


@dataclass
class Member:
    """One change of one entity, already mapped back to the entity IRI."""

    entity: str
    version: str | None      # version member IRI (None for dump/csv/ckan items)
    timestamp: str | None    # xsd:dateTime lexical
    deleted: bool
    # pyoxigraph Triples of the entity state (subjects = entity IRI / its #fragments, blank
    # nodes; readers/ckan.py adds the dataset's distributions); [] if deleted
    triples: list
    # set only by the reader of a trusted index: the source the entity really comes from
    origin: Origin | None = None


@dataclass
class Page:
    """One unit the pipeline applies atomically, together with ``cursor``."""

    url: str
    members: list[Member]
    cursor: dict             # the reader's position AFTER this page (JSON-serializable);
                             # saved with the page
    dropped: int = 0         # statements dropped by the authority check
    examples: list[str] = field(default_factory=list)   # a few dropped subjects, for the report
    # True on the LAST page of a snapshot (module docstring): graphs of the source whose
    # entity was in no page of this snapshot are deleted
    full_replace: bool = False
    # id shared by all pages of one snapshot (dump/csv/ckan/whole-feed walk); None otherwise
    snapshot: str | None = None
    # items the reader skipped (e.g. invalid CSV rows: "row 7: name: ..."), for the run
    # report; not loaded, not quarantined
    rejected: list[str] = field(default_factory=list)
