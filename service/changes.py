"""Reading the change log: how far it goes, and ranges of it in commit order.

Derived data (dumps, the SPARQL mirror, catalog dates, the LDES feed) ask
`latest_seq` / `last_change_at` whether they are stale. The feed reads ranges
with keyset queries on ``seq`` (never OFFSET over the whole log).

Sequence numbers become visible in commit order (the store serializes writers),
so once a change with seq ``n`` is visible no change with a smaller seq will
ever appear; PostgreSQL may leave gaps (rolled-back writes).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime, Integer, func, select, text
from sqlalchemy.orm import Session, aliased

from .models import Change

__all__ = [
    "ChangeEntry",
    "PageStats",
    "change_of_version",
    "changes_between",
    "last_change_at",
    "latest_seq",
    "max_at_between",
    "page_stats",
    "retained_latest",
]


def _utc(value: datetime | str | None) -> datetime | None:
    if isinstance(value, str):  # SQLite's min()/max() over DATETIME answer with text
        value = datetime.fromisoformat(value)
    # SQLite hands back naive datetimes; everything stored is UTC.
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def latest_seq(session: Session) -> int:
    """The sequence number of the newest change; 0 when the log is empty."""
    return session.scalar(select(func.max(Change.seq))) or 0


def last_change_at(session: Session) -> datetime | None:
    """When the newest change happened (UTC); None when the log is empty."""
    return _utc(session.scalar(select(Change.at).order_by(Change.seq.desc()).limit(1)))


@dataclass(frozen=True)
class ChangeEntry:
    """One row of the change log, detached from the session."""

    seq: int
    at: datetime
    kind: str
    entity_id: str
    op: str  # create | update | delete
    version: int
    data: dict[str, Any] | None  # full record snapshot; None for deletes


_COLUMNS = (Change.seq, Change.at, Change.kind, Change.entity_id, Change.op, Change.version,
            Change.data)


def _entry(row: Any) -> ChangeEntry:
    seq, at, kind, entity_id, op, version, data = row
    return ChangeEntry(seq, _utc(at), kind, entity_id, op, version, data)


def changes_between(session: Session, first: int, last: int) -> Iterator[ChangeEntry]:
    """Changes with ``first <= seq <= last`` in sequence order (a range on the key)."""
    rows = session.execute(select(*_COLUMNS).where(Change.seq >= first, Change.seq <= last)
                           .order_by(Change.seq))
    return (_entry(row) for row in rows)


def change_of_version(session: Session, kind: str, entity_id: str, version: int
                      ) -> ChangeEntry | None:
    """The change that made ``version`` of an entity, if there is one."""
    row = session.execute(select(*_COLUMNS).where(
        Change.kind == kind, Change.entity_id == entity_id, Change.version == version)).first()
    return _entry(row) if row else None


def max_at_between(session: Session, first: int, last: int) -> datetime | None:
    """The latest ``at`` among changes ``first..last`` (None when there are none)."""
    return _utc(session.scalar(select(func.max(Change.at))
                               .where(Change.seq >= first, Change.seq <= last)))


@dataclass(frozen=True)
class PageStats:
    """Count and time span of the changes in one fixed-size range of sequence numbers."""

    number: int
    count: int
    min_at: datetime | None
    max_at: datetime | None


# GROUP BY 1: PostgreSQL would not match two separately bound copies of the expression.
_PAGE_STATS = text(
    "SELECT (seq - 1) / :size + 1 AS number, count(*) AS count, min(at) AS min_at, "
    "max(at) AS max_at FROM changes WHERE seq > :after AND seq <= :upto GROUP BY 1"
).columns(number=Integer(), count=Integer(), min_at=DateTime(timezone=True),
          max_at=DateTime(timezone=True))


def page_stats(session: Session, page_size: int, first: int, last: int) -> list[PageStats]:
    """Stats of pages ``first..last`` (1-based; page n holds seq (n-1)*size+1 .. n*size),
    one aggregate pass over that key range; pages without changes are left out."""
    rows = session.execute(_PAGE_STATS, {"size": page_size, "after": (first - 1) * page_size,
                                         "upto": last * page_size})
    return sorted((PageStats(n, c, _utc(lo), _utc(hi)) for n, c, lo, hi in rows),
                  key=lambda s: s.number)


def retained_latest(session: Session, first: int, last: int,
                    deletes_since: datetime | None = None) -> list[int]:
    """Of the changes ``first..last``, the seqs that are still their entity's newest
    change; deletions older than ``deletes_since`` are left out."""
    outer = aliased(Change)
    newest = (select(func.max(Change.seq))
              .where(Change.kind == outer.kind, Change.entity_id == outer.entity_id)
              .scalar_subquery())
    rows = session.execute(select(outer.seq, outer.op, outer.at).where(
        outer.seq >= first, outer.seq <= last, outer.seq == newest).order_by(outer.seq))
    return [seq for seq, op, at in rows
            if not (op == "delete" and deletes_since is not None and _utc(at) < deletes_since)]
