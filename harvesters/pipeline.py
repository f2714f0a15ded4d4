"""The harvest pipeline: reader pages in, checked entities and provenance out, one atomic step
per page (issue 5 items 5 and 6).

Per page: the last member of an entity wins; an entity outside the source's fixed URI space,
or a statement whose subject is not the entity, its ``#fragment`` or a blank node, is dropped
(counted as dropped by authority); `validation.check_entities` judges the rest. Accepted entities
replace their graph (graph IRI = entity IRI), deletes drop it, and a violating entity is
QUARANTINED: not loaded, and its previous version dropped too (the index must not keep
asserting a state the source has replaced; the status page shows why it is missing). One
`Batch` carries this with the page's cursor: a crash leaves the previous consistent state and
the next run resumes from the saved cursor. Snapshots (``Page.snapshot``, `harvesters.model`)
are tracked in memory; the ``full_replace`` page also deletes the source's graphs (and
quarantine records) the snapshot did not contain.

Provenance in the source's bookkeeping graph (PROV-O; ``idx:`` = `store.STATE_NS`). The
entity IRI names the entity graph too, so these statements are about the harvested copy, and
the store replaces/drops them together with that graph:

- loaded entity ``e``: ``e prov:wasDerivedFrom <source entry URL>``, ``e prov:generatedAtTime``
  (retrieval time), ``e prov:wasGeneratedBy <run>``, ``e prov:hadPrimarySource <version IRI>``
  and ``e idx:versionTimestamp`` when the member has them, ``e idx:warning "field: msg"``;
- through a trusted index (source kind "index", members carrying their `model.Origin`):
  ``e prov:wasDerivedFrom`` names the ORIGINAL source's entry URL and ``e prov:hadPrimarySource``
  its version (each checked against the origin's URI space fixed at registration), plus
  ``e idx:harvestedVia <index entry>``. Such a member is left out (``RunReport.skipped``)
  when its origin is also registered directly here (direct harvest wins; graphs the index
  source held for it are handed over at the start of its run) or when another source owns
  the entity graph (a graph has one owner);
- quarantined ``e``: ``e idx:quarantineReason "field: msg"`` (one each), ``e idx:quarantinedAt``,
  ``e prov:wasDerivedFrom <entry>``, ``e prov:hadPrimarySource <version>``;
- run ``<urn:uuid:...>``: ``a prov:Activity``, ``prov:used <entry>``, ``prov:startedAtTime``,
  ``prov:endedAtTime``, ``idx:succeeded``, counts (``idx:pages``, ``idx:membersApplied``,
  ``idx:deletes``, ``idx:quarantinedCount``, ``idx:warnings``, ``idx:dropped``,
  ``idx:rejected``), ``idx:quarantined <e>``, ``idx:error "reason: message"``. The newest
  `RUN_HISTORY` runs are kept: the final batch lists older run IRIs among its deletions, so
  their statements leave the source graph (Batch: statements about a deleted graph IRI go
  with it); a polling loop must not grow the index without bound.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from uuid import uuid4

import pyoxigraph as ox

from .checks import in_uri_space
from .errors import HarvestError
from .model import Member, Page, Source
from .parse import DEFAULT_LIMITS, ParseLimits
from .sources import origins_of
from .store import STATE_NS, Batch, IndexStore, source_graph
from .validation import check_entities

if TYPE_CHECKING:
    from .journal import Journal
    from .search import SearchIndex

__all__ = ["RUN_HISTORY", "RunReport", "direct_spaces", "harvest", "harvest_all"]

log = logging.getLogger(__name__)
RUN_HISTORY = 20  # run records kept per source
MAX_LISTED = 1000  # quarantined entities listed per report (all are counted)
_PROV, _XSD = "http://www.w3.org/ns/prov#", "http://www.w3.org/2001/XMLSchema#"
_RDF_TYPE = ox.NamedNode("http://www.w3.org/1999/02/22-rdf-syntax-ns#type")


def _p(name: str) -> ox.NamedNode:  # PROV-O term
    return ox.NamedNode(_PROV + name)


def _i(name: str) -> ox.NamedNode:  # index bookkeeping term (idx:)
    return ox.NamedNode(STATE_NS + name)


def _time(value: datetime) -> ox.Literal:
    value = value if value.tzinfo else value.replace(tzinfo=UTC)  # xsd: no offset -> take UTC
    return ox.Literal(value.astimezone(UTC).isoformat(), datatype=ox.NamedNode(_XSD + "dateTime"))


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass
class RunReport:
    """What one harvest run of one source did; also stored as a prov:Activity."""

    source_id: str
    started: datetime
    run: str = field(default_factory=lambda: f"urn:uuid:{uuid4()}")
    ended: datetime | None = None
    pages: int = 0
    members_applied: int = 0
    deletes: int = 0
    quarantined: list[tuple[str, list[str]]] = field(default_factory=list)  # first MAX_LISTED
    quarantined_count: int = 0
    warnings: int = 0
    dropped: int = 0  # statements dropped by authority (readers' and the pipeline's)
    dropped_examples: list[str] = field(default_factory=list)
    rejected: int = 0  # items a reader skipped (Page.rejected)
    errors: list[str] = field(default_factory=list)  # "reason: message"
    cursor: Any = None  # of the last applied page
    # members of a trusted index left out (origin registered directly here, or the entity
    # graph owned by another source): "entity: why", the first MAX_LISTED; counted in rejected
    skipped: list[str] = field(default_factory=list)
    ok: bool = False


@dataclass
class _Outcome:
    """One page's batch and the counts that become true once it is applied."""

    batch: Batch | None = None
    members_applied: int = 0
    deletes: int = 0
    warnings: int = 0
    dropped: int = 0
    examples: list[str] = field(default_factory=list)
    quarantined: list[tuple[str, list[str]]] = field(default_factory=list)
    # entity -> (original entry URL, original version IRI), for the journal
    origins: dict[str, tuple[str | None, str | None]] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)


class _Run:
    def __init__(self, source: Source, store: IndexStore, report: RunReport,
                 clock: Callable[[], datetime], limits: ParseLimits,
                 direct: Iterable[str] = ()) -> None:
        self.source, self.store, self.report = source, store, report
        self.clock, self.limits = clock, limits
        self.entry, self.run = ox.NamedNode(source.entry_url), ox.NamedNode(report.run)
        self.snapshots: dict[str, set[str]] = {}
        self.via = source.kind == "index"
        self.origins = origins_of(source) if self.via else {}
        self.direct = tuple(direct)

    def page(self, page: Page) -> _Outcome:
        now, source = _time(self.clock()), self.source
        latest: dict[str, Member] = {}
        out = _Outcome(dropped=page.dropped, examples=list(page.examples))
        for member in page.members:
            # Catalog entries (kind "ckan") are datasets, often named by fragment IRIs.
            fragment_ok = source.kind == "ckan" or "#" not in member.entity
            space = self._space(member)
            if space is not None and in_uri_space(member.entity, space) and fragment_ok:
                latest.pop(member.entity, None)  # the last member of an entity wins
                latest[member.entity] = member
            else:
                out.dropped += max(len(member.triples), 1)
                out.examples.append(member.entity)
        if self.via:
            self._leave_out(latest, out)
        live = {e: self._own(e, m.triples, out) for e, m in latest.items() if not m.deleted}
        verdicts = check_entities(live, limits=self.limits) if live else {}
        replacements, deletions, prov = {}, [], []
        for entity, member in latest.items():
            e = ox.NamedNode(entity)
            version = self._version(member)
            entry = ox.NamedNode(member.origin.entry_url) if self.via else self.entry
            out.origins[entity] = (entry.value, version.value if version else None)
            if member.deleted:
                deletions.append(entity)
                out.deletes += 1
                continue
            verdict = verdicts[entity]
            prov += [ox.Triple(e, _p("wasDerivedFrom"), entry)]
            prov += [ox.Triple(e, _p("hadPrimarySource"), version)] if version else []
            # Through a trusted index: the original source above, the intermediary here.
            prov += [ox.Triple(e, _i("harvestedVia"), self.entry)] if self.via else []
            if verdict.accepted:
                replacements[entity] = live[entity]
                prov += [ox.Triple(e, _p("generatedAtTime"), now),
                         ox.Triple(e, _p("wasGeneratedBy"), self.run)]
                prov += [ox.Triple(e, _i("versionTimestamp"), t) for t in self._stamp(member)]
                prov += [ox.Triple(e, _i("warning"), ox.Literal(_line(w.field, w.message)))
                         for w in verdict.warnings]
                out.members_applied += 1
                out.warnings += len(verdict.warnings)
            else:
                deletions.append(entity)
                prov += [ox.Triple(e, _i("quarantinedAt"), now)]
                prov += [ox.Triple(e, _i("quarantineReason"), ox.Literal(r[:1000]))
                         for r in verdict.reasons]
                out.quarantined.append((entity, verdict.reasons))
        if page.snapshot is not None or page.full_replace:
            key = page.snapshot or f"page:{page.url}"
            seen = self.snapshots.setdefault(key, set())
            seen.update(latest)
            if page.full_replace:
                gone = self.store.graphs_of(source.id) - seen
                out.deletes += len(gone)
                deletions += sorted(gone | (self._quarantine_records() - seen - gone))
                del self.snapshots[key]
        out.batch = Batch(source.id, replacements, deletions, prov, page.cursor)
        return out

    def _own(self, entity: str, triples: list, out: _Outcome) -> list:
        """Statements about the entity, its #fragments or blank nodes; the rest is dropped.

        A catalog entry (kind "ckan") also keeps the resources of its own URI space the
        reader attached to it (distributions, contact points), which carry the downloads.
        """
        if self.source.kind == "ckan":
            def own(s: str) -> bool:
                return in_uri_space(s, self.source.uri_space)
        else:
            def own(s: str) -> bool:
                return s == entity or s.startswith(entity + "#")
        kept = [t for t in triples if isinstance(s := t.subject, ox.BlankNode)
                or (isinstance(s, ox.NamedNode) and own(s.value))]
        if len(kept) < len(triples):
            out.dropped += len(triples) - len(kept)
            out.examples.append(entity)
        return kept

    def _version(self, member: Member) -> ox.NamedNode | None:
        if self.via:  # the original version the trusted index named, in the origin's space
            version = member.origin.version if member.origin else None
            space = self._space(member)
        else:
            version, space = member.version, self.source.uri_space
        if version and space and in_uri_space(version, space):
            try:
                return ox.NamedNode(version)
            except ValueError:
                pass
        return None

    def _space(self, member: Member) -> str | None:
        """Where the member's entity must lie: the source's space, or for a trusted index
        the space of the origin it names as fixed at registration (None: unknown origin)."""
        if not self.via:
            return self.source.uri_space
        known = self.origins.get(member.origin.entry_url) if member.origin else None
        return known.uri_space if known is not None else None

    def _leave_out(self, latest: dict[str, Member], out: _Outcome) -> None:
        """Members of a trusted index that this index must not load: their origin is
        registered here directly (direct harvest wins), or their entity graph belongs to
        another source (a graph has one owner)."""
        why: dict[str, str] = {}
        for entity, member in latest.items():
            space = self._space(member) or ""
            if any(space.startswith(d) or d.startswith(space) for d in self.direct):
                why[entity] = "origin registered directly in this index"
        rest = [e for e in latest if e not in why]
        for entity, owner in self._owners(rest).items():
            why[entity] = f"entity graph owned by source {owner}"
        for entity, reason in why.items():
            del latest[entity]
            out.skipped.append(f"{entity}: {reason}")

    def _owners(self, entities: list[str]) -> dict[str, str]:
        """Entity graph -> id of the OTHER source that owns it."""
        found: dict[str, str] = {}
        mine = source_graph(self.source.id)
        for start in range(0, len(entities), 500):
            values = " ".join(str(ox.NamedNode(e)) for e in entities[start:start + 500])
            rows = self.store.query(
                f"SELECT ?g ?id WHERE {{ VALUES ?g {{ {values} }} GRAPH ?sg {{ "
                f"?g <{STATE_NS}inSource> ?sg . ?sg <{STATE_NS}sourceId> ?id }} "
                f"FILTER(?sg != <{mine}>) }}")
            found.update({row["g"].value: row["id"].value for row in rows})
        return found

    def handover(self) -> _Outcome | None:
        """Graphs this trusted index source holds for origins now registered directly:
        dropped, so that the direct source can load them (direct harvest wins)."""
        if not self.via or not self.direct:
            return None
        gone = sorted(g for g in self.store.graphs_of(self.source.id)
                      if any(in_uri_space(g, d) for d in self.direct))
        if not gone:
            return None
        out = _Outcome(deletes=len(gone))
        out.batch = Batch(self.source.id, deletions=gone)
        return out

    @staticmethod
    def _stamp(member: Member) -> list[ox.Literal]:
        try:  # untrusted lexical form: only a real xsd:dateTime is recorded
            return [_time(datetime.fromisoformat(member.timestamp.replace("Z", "+00:00")))]
        except (AttributeError, ValueError, TypeError):
            return []

    def _quarantine_records(self) -> set[str]:
        sg = source_graph(self.source.id)
        rows = self.store.query(f"SELECT DISTINCT ?e WHERE {{ GRAPH <{sg}> {{ "
                                f"?e <{STATE_NS}quarantineReason> ?r }} }}")
        return {row["e"].value for row in rows}

    def record(self) -> Batch:
        """The final batch: this run as a prov:Activity, older runs beyond RUN_HISTORY dropped."""
        r, run = self.report, self.run
        sg = source_graph(self.source.id)
        rows = self.store.query(f"SELECT ?run ?end WHERE {{ GRAPH <{sg}> {{ ?run a <{_PROV}"
                                f"Activity> ; <{_PROV}endedAtTime> ?end }} }}")
        older = sorted(((row["end"].value, row["run"].value) for row in rows), reverse=True)
        counts = {"pages": r.pages, "membersApplied": r.members_applied, "deletes": r.deletes,
                  "quarantinedCount": r.quarantined_count, "warnings": r.warnings,
                  "dropped": r.dropped, "rejected": r.rejected}
        prov = [ox.Triple(run, _RDF_TYPE, _p("Activity")), ox.Triple(run, _p("used"), self.entry),
                ox.Triple(run, _p("startedAtTime"), _time(r.started)),
                ox.Triple(run, _p("endedAtTime"), _time(r.ended or r.started)),
                ox.Triple(run, _i("succeeded"), ox.Literal(r.ok))]
        prov += [ox.Triple(run, _i(name), ox.Literal(value)) for name, value in counts.items()]
        prov += [ox.Triple(run, _i("quarantined"), ox.NamedNode(e)) for e, _ in r.quarantined]
        prov += [ox.Triple(run, _i("error"), ox.Literal(message)) for message in r.errors]
        return Batch(self.source.id, deletions=[iri for _, iri in older[RUN_HISTORY - 1:]],
                     provenance=prov)


def _line(name: str | None, message: str) -> str:  # like validation.Verdict.reasons
    text = message if name and message.startswith(f"{name}:") else f"{name or 'entity'}: {message}"
    return text[:1000]


def _error(exc: BaseException) -> str:
    reason = exc.reason if isinstance(exc, HarvestError) else "internal-error"
    return f"{reason}: {exc}"[:1000]


def harvest(source: Source, reader_pages: Iterable[Page], store: IndexStore, *,
            clock: Callable[[], datetime] = _now,
            limits: ParseLimits = DEFAULT_LIMITS,
            search: SearchIndex | None = None,
            journal: Journal | None = None,
            direct: Iterable[str] = ()) -> RunReport:
    """Apply ``reader_pages`` to ``store`` page by page; returns (and stores) the run report.

    ``search`` (optional) mirrors each page's batch into the full-text side index just
    BEFORE the store applies it: `SearchIndex.apply_batch` is idempotent, so a crash in
    between is repaired when the run resumes at that page (harvesters/search.py).
    ``journal`` (optional) records the batch for the index's own feed at the same point,
    idempotent too (harvesters/journal.py). ``direct`` are the URI spaces of the sources
    registered directly in this index (`direct_spaces`): a trusted index's members for
    them are left out, and graphs it held for them are handed over.

    A failure while reading (FetchError, ParseError, ...) or applying a page ends the run
    with ``ok=False`` and the error recorded: pages applied before stay, nothing of the
    failing page is applied, and the saved cursor is that of the last applied page.
    """
    report = RunReport(source.id, started=clock())
    run = _Run(source, store, report, clock, limits, direct)
    pages = iter(reader_pages)

    def apply(outcome: _Outcome) -> None:
        if search is not None:
            search.apply_batch(outcome.batch, source)
        if journal is not None:
            batch = outcome.batch
            journal.record(source.id, batch.replacements, batch.deletions, outcome.origins)
        store.apply(outcome.batch)

    try:
        handed = run.handover()
        if handed is not None:
            apply(handed)
            report.deletes += handed.deletes
        for page in pages:
            outcome = run.page(page)
            apply(outcome)
            report.pages, report.cursor = report.pages + 1, page.cursor
            for name in ("members_applied", "deletes", "warnings", "dropped"):
                setattr(report, name, getattr(report, name) + getattr(outcome, name))
            report.dropped_examples = (report.dropped_examples + outcome.examples)[:5]
            report.rejected += len(page.rejected) + len(outcome.skipped)
            report.skipped += outcome.skipped[:MAX_LISTED - len(report.skipped)]
            report.quarantined_count += len(outcome.quarantined)
            report.quarantined += outcome.quarantined[:MAX_LISTED - len(report.quarantined)]
    except Exception as exc:  # noqa: BLE001 - one source's failure is its report, not a crash
        if not isinstance(exc, HarvestError):
            log.exception("harvest of %s failed unexpectedly", source.id)
        report.errors.append(_error(exc))
    finally:
        try:  # a generator reader releases its open responses
            getattr(pages, "close", lambda: None)()
        except Exception:  # noqa: BLE001 - the run's outcome is already decided
            log.exception("closing the reader of %s failed", source.id)
    report.ended = clock()
    report.ok = not report.errors
    try:
        store.apply(run.record())
    except Exception as exc:  # noqa: BLE001 - the report still goes back to the caller
        log.warning("run record of %s not stored: %s", source.id, exc)
        report.errors.append(_error(exc))
        report.ok = False
    return report


def harvest_all(sources: Iterable[Source],
                reader_for: Callable[[Source, Any], Iterable[Page]], store: IndexStore, *,
                workers: int = 4, clock: Callable[[], datetime] = _now,
                limits: ParseLimits = DEFAULT_LIMITS,
                search: SearchIndex | None = None) -> list[RunReport]:
    """Harvest sources concurrently (threads); one failing source never stops the others.

    ``reader_for(source, cursor)`` returns the pages of one run, ``cursor`` being the one
    the store saved for that source (None at first), e.g.
    ``lambda s, c: readers.read(s, c, fetcher)``. Reports come back in the sources' order.
    """
    def one(source: Source) -> RunReport:
        try:
            pages = reader_for(source, store.cursor(source.id))
        except Exception as exc:  # noqa: BLE001 - reported like a failure while reading
            pages = _raising(exc)
        return harvest(source, pages, store, clock=clock, limits=limits, search=search)

    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="harvest") as pool:
        return list(pool.map(one, list(sources)))


def direct_spaces(sources: Iterable[Source]) -> tuple[str, ...]:
    """URI spaces of the sources harvested directly (not through a trusted index)."""
    return tuple(s.uri_space for s in sources if s.kind != "index")


def _raising(exc: Exception) -> Iterator[Page]:
    raise exc
    yield  # pragma: no cover - makes this a generator
