"""Reading and writing entities: the only code that changes the node's tables.

Every write runs in one transaction that updates the entity, its facets and
the change log together, guarded by the version the writer last saw (optimistic
concurrency: a stale version is a `PreconditionFailed`, nothing is written).
Records passed in are already validated (`vocab.load_record`).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, delete, exists, func, insert, or_, select, text, update
from sqlalchemy.orm import Session

from vocab import entity

from .errors import BadRequest, Conflict, Gone, NotFound, PreconditionFailed
from .models import Change, EntityRow, Facet

__all__ = [
    "EntityState",
    "Page",
    "create",
    "delete_entity",
    "facet_keys",
    "find_by_external_id",
    "get",
    "list_page",
    "new_id",
    "referrers",
    "replace",
]

# Record keys whose values are copied into `facets` for filtering and look-ups.
_FACET_KINDS = {"concept", "language", "ref", "wikidata"}
_FACET_EXTRA = {"areaServed", "registerNumber", "url"}
# The identifiers an import may match an existing entity by (besides its id).
EXTERNAL_IDS = ("wikidata", "registerNumber", "url")
_SEARCHED = ("name", "alternateName", "description")
_ID_ALPHABET = "abcdefghijkmnpqrstuvwxyz23456789"  # no 0/o, 1/l: ids are read aloud


def now() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    """A fresh opaque id (10 characters, ~50 bits): never derived from a name."""
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(10))


def _utc(value: datetime | None) -> datetime | None:
    # SQLite hands back naive datetimes; everything we store is UTC.
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class EntityState:
    kind: str
    id: str
    data: dict[str, Any]
    version: int
    created: datetime
    modified: datetime
    deleted: datetime | None

    @property
    def record(self) -> dict[str, Any]:
        """The full record: id, the stored fields, and the node-set timestamps."""
        return {"id": self.id, **self.data, "created": iso(self.created),
                "modified": iso(self.modified)}

    @property
    def tombstone(self) -> dict[str, Any]:
        return {"id": self.id, "kind": self.kind, "deleted": iso(self.deleted)
                if self.deleted else None, "version": self.version}

    @classmethod
    def from_row(cls, row: EntityRow) -> EntityState:
        return cls(row.kind, row.id, row.data, row.version, _utc(row.created),
                   _utc(row.modified), _utc(row.deleted))


@dataclass(frozen=True)
class Page:
    items: list[EntityState]
    total: int
    page: int
    per_page: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))


# --------------------------------------------------------------------------- reads


def get(session: Session, kind: str, entity_id: str, *, allow_deleted: bool = False
        ) -> EntityState:
    """One entity. Raises NotFound for unknown ids and Gone for deleted ones."""
    row = session.scalar(select(EntityRow).where(EntityRow.kind == kind,
                                                 EntityRow.id == entity_id))
    if row is None:
        raise NotFound(f"no {kind} with id {entity_id!r}")
    state = EntityState.from_row(row)
    if state.deleted is not None and not allow_deleted:
        raise Gone(f"{kind} {entity_id!r} was deleted", tombstone=state.tombstone)
    return state


def facet_keys(kind: str) -> tuple[str, ...]:
    """Record keys a collection can be filtered by (each a query parameter)."""
    return tuple(f.key for f in entity(kind).fields
                 if f.kind in _FACET_KINDS or f.key in _FACET_EXTRA)


def list_page(session: Session, kind: str, *, filters: Mapping[str, Iterable[str]] = {},
              q: str | None = None, page: int = 1, per_page: int = 50) -> Page:
    """Live entities of a kind, newest change first, filtered and paginated.

    Several values of one filter match any of them; different filters must all match.
    """
    allowed = set(facet_keys(kind))
    conditions = [EntityRow.kind == kind, EntityRow.deleted.is_(None)]
    for key, values in filters.items():
        values = [v for v in values if v]
        if not values:
            continue
        if key not in allowed:
            raise BadRequest(f"unknown filter {key!r}; allowed: {', '.join(sorted(allowed))}")
        conditions.append(exists().where(Facet.entity_pk == EntityRow.pk, Facet.key == key,
                                         Facet.value.in_(values)))
    if q:
        for word in q.lower().split()[:10]:
            escaped = word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            conditions.append(EntityRow.search_text.like(f"%{escaped}%", escape="\\"))
    where = and_(*conditions)
    total = session.scalar(select(func.count()).select_from(EntityRow).where(where))
    rows = session.scalars(select(EntityRow).where(where)
                           .order_by(EntityRow.modified.desc(), EntityRow.pk.desc())
                           .limit(per_page).offset((page - 1) * per_page))
    return Page([EntityState.from_row(r) for r in rows], total or 0, page, per_page)


def referrers(session: Session, uri: str, pairs: Iterable[tuple[str, str]], limit: int
              ) -> dict[tuple[str, str], tuple[int, list[EntityState]]]:
    """Live entities whose reference field ``key`` (of kind ``kind``) holds ``uri``.

    For each wanted (kind, key) pair: the total and up to ``limit`` entities, newest
    change first — two queries however many pairs there are.
    """
    wanted = set(pairs)
    live = and_(Facet.value == uri, EntityRow.deleted.is_(None))
    counts = {
        (kind, key): total
        for kind, key, total in session.execute(
            select(EntityRow.kind, Facet.key, func.count())
            .join(Facet, Facet.entity_pk == EntityRow.pk).where(live)
            .group_by(EntityRow.kind, Facet.key))
        if (kind, key) in wanted
    }
    if not counts:
        return {}
    rank = func.row_number().over(partition_by=(EntityRow.kind, Facet.key),
                                  order_by=(EntityRow.modified.desc(), EntityRow.pk.desc()))
    ranked = (select(EntityRow.pk, Facet.key.label("key"), rank.label("rank"))
              .join(Facet, Facet.entity_pk == EntityRow.pk).where(live).subquery())
    rows = session.execute(
        select(EntityRow, ranked.c.key).join(ranked, ranked.c.pk == EntityRow.pk)
        .where(ranked.c.rank <= limit).order_by(ranked.c.rank))
    found: dict[tuple[str, str], list[EntityState]] = {pair: [] for pair in counts}
    for row, key in rows:
        if (row.kind, key) in found:
            found[(row.kind, key)].append(EntityState.from_row(row))
    return {pair: (counts[pair], found[pair]) for pair in counts}


def find_by_external_id(session: Session, kind: str, data: Mapping[str, Any]
                        ) -> EntityState | None:
    """A live entity sharing a Wikidata id, register number or website with ``data``."""
    pairs = [(key, data[key]) for key in EXTERNAL_IDS if data.get(key)]
    if not pairs:
        return None
    match = or_(*(and_(Facet.key == k, Facet.value == str(v)) for k, v in pairs))
    row = session.scalar(
        select(EntityRow).join(Facet, Facet.entity_pk == EntityRow.pk)
        .where(EntityRow.kind == kind, EntityRow.deleted.is_(None), match)
        .order_by(EntityRow.pk).limit(1))
    return EntityState.from_row(row) if row else None


# --------------------------------------------------------------------------- writes


def create(session: Session, kind: str, data: dict[str, Any], *, entity_id: str | None = None,
           at: datetime | None = None) -> EntityState:
    """Store a new entity and log its creation; ``entity_id`` only for imports and demos."""
    entity(kind)  # KeyError for unknown kinds
    at = at or now()
    entity_id = entity_id or new_id()
    with _writing(session):
        taken = session.scalar(select(EntityRow.pk).where(EntityRow.kind == kind,
                                                          EntityRow.id == entity_id))
        if taken is not None:
            raise Conflict(f"{kind} id {entity_id!r} is taken (ids are never reused)")
        row = EntityRow(kind=kind, id=entity_id, data=data, version=1, created=at, modified=at,
                        deleted=None, search_text=_search_text(data))
        session.add(row)
        session.flush()
        _write_facets(session, row.pk, kind, data)
        _log(session, kind, entity_id, "create", 1, at, _snapshot(entity_id, data, at, at))
    return EntityState.from_row(row)


def replace(session: Session, kind: str, entity_id: str, data: dict[str, Any], *,
            expected_version: int | None, at: datetime | None = None) -> EntityState:
    """Replace an entity's fields; ``expected_version`` None skips the check (imports)."""
    at = at or now()
    with _writing(session):
        current = get(session, kind, entity_id)
        version = _bump(session, kind, entity_id, current, expected_version,
                        data=data, modified=at, search_text=_search_text(data))
        pk = session.scalar(select(EntityRow.pk).where(EntityRow.kind == kind,
                                                       EntityRow.id == entity_id))
        session.execute(delete(Facet).where(Facet.entity_pk == pk))
        _write_facets(session, pk, kind, data)
        _log(session, kind, entity_id, "update", version, at,
             _snapshot(entity_id, data, current.created, at))
    return EntityState(kind, entity_id, data, version, current.created, at, None)


def delete_entity(session: Session, kind: str, entity_id: str, *,
                  expected_version: int | None, at: datetime | None = None) -> EntityState:
    """Turn an entity into a tombstone: its URI answers 410 and the feed says so."""
    at = at or now()
    with _writing(session):
        current = get(session, kind, entity_id)
        version = _bump(session, kind, entity_id, current, expected_version,
                        deleted=at, modified=at)
        pk = session.scalar(select(EntityRow.pk).where(EntityRow.kind == kind,
                                                       EntityRow.id == entity_id))
        session.execute(delete(Facet).where(Facet.entity_pk == pk))
        _log(session, kind, entity_id, "delete", version, at, None)
    return EntityState(kind, entity_id, current.data, version, current.created, at, at)


class _writing:
    """One write transaction; on PostgreSQL the change log is locked so that
    sequence numbers become visible in commit order (the feed relies on it)."""

    def __init__(self, session: Session):
        self.session = session

    def __enter__(self):
        if self.session.in_transaction():
            self.session.commit()
        self.session.begin()
        if self.session.get_bind().dialect.name == "postgresql":
            self.session.execute(text("LOCK TABLE changes IN EXCLUSIVE MODE"))
        return self.session

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.session.commit()
        else:
            self.session.rollback()
        return False


def _bump(session: Session, kind: str, entity_id: str, current: EntityState,
          expected_version: int | None, **values: Any) -> int:
    if expected_version is not None and expected_version != current.version:
        raise PreconditionFailed(
            f"{kind} {entity_id!r} is at version {current.version}, not {expected_version}")
    version = current.version + 1
    result = session.execute(
        update(EntityRow)
        .where(EntityRow.kind == kind, EntityRow.id == entity_id,
               EntityRow.version == current.version)
        .values(version=version, **values))
    if result.rowcount != 1:  # another writer got there between our read and write
        raise PreconditionFailed(f"{kind} {entity_id!r} was changed concurrently")
    return version


def _log(session: Session, kind: str, entity_id: str, op: str, version: int, at: datetime,
         data: dict | None) -> None:
    session.execute(insert(Change).values(at=at, kind=kind, entity_id=entity_id, op=op,
                                          version=version, data=data))


def _snapshot(entity_id: str, data: dict, created: datetime, modified: datetime) -> dict:
    return {"id": entity_id, **data, "created": iso(created), "modified": iso(modified)}


def _search_text(data: Mapping[str, Any]) -> str:
    parts: list[str] = []
    for key in _SEARCHED:
        value = data.get(key)
        if isinstance(value, dict):
            parts.extend(value.values())
        elif isinstance(value, list):
            parts.extend(value)
    return " ".join(parts).lower()


def _write_facets(session: Session, pk: int, kind: str, data: Mapping[str, Any]) -> None:
    rows = set()
    for f in entity(kind).fields:
        if f.kind not in _FACET_KINDS and f.key not in _FACET_EXTRA:
            continue
        value = data.get(f.key)
        for item in value if isinstance(value, list) else ([value] if value else []):
            rows.add((f.key, str(item)[:2000]))
    if rows:
        session.execute(insert(Facet), [{"entity_pk": pk, "key": k, "value": v}
                                        for k, v in sorted(rows)])

