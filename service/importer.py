"""Spreadsheet import: plan every row first, write only a plan without errors.

An import is two steps so that a bad file changes nothing: `plan_import` reads
and validates every row (the spreadsheet layout is `exports.tabular`, the
rules are `vocab.load_record`) and decides per row whether it creates,
changes or leaves alone an entity; `apply_plan` then writes. Rows find their
entity by the ``id`` column, else by an external identifier (Wikidata id,
register number, website), else they create one.

A column missing from the file leaves that field as it is (a file may hold
just ``id`` and ``name@de``); an empty cell in a present column clears the
field. Unchanged rows write nothing, so they get no new version and no feed
member.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from exports.tabular import (
    TabularError,
    read_numbered_table,
    record_to_row,
    row_to_data,
    text_languages,
)
from exports.tabular import columns as table_columns
from vocab import InvalidRecord, entity, load_record

from . import store
from .errors import Gone, NotFound

__all__ = ["ImportFileError", "ImportPlan", "PlannedRow", "RowError", "apply_plan",
           "live_entities", "plan_file", "plan_import"]

_ID = re.compile(r"^[a-z0-9-]{1,64}$")
_HEADER_ROW = 1


@dataclass(frozen=True)
class RowError:
    """One problem, located like a person finds it: row (header = 1) and column."""

    row: int | None
    column: str | None
    message: str

    def __str__(self) -> str:
        where = [f"row {self.row}"] if self.row is not None else []
        where += [f"column {self.column!r}"] if self.column else []
        return f"{', '.join(where)}: {self.message}" if where else self.message


class ImportFileError(Exception):
    """The file as a whole cannot be imported (unreadable, too big, bad header)."""

    def __init__(self, errors: Sequence[RowError]):
        super().__init__("; ".join(map(str, errors)))
        self.errors = list(errors)


@dataclass(frozen=True)
class PlannedRow:
    row: int
    entity_id: str
    record: dict[str, Any]
    # For changes: the version the plan was made against, and the fields that differ.
    version: int | None = None
    changed: tuple[str, ...] = ()


@dataclass
class ImportPlan:
    kind: str
    creates: list[PlannedRow] = field(default_factory=list)
    updates: list[PlannedRow] = field(default_factory=list)
    unchanged: list[PlannedRow] = field(default_factory=list)
    deletes: list[store.EntityState] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)

    @property
    def skipped_rows(self) -> list[int]:
        return sorted({e.row for e in self.errors if e.row is not None})


def plan_file(session: Session, kind: str, path: Path, *, delete_missing: bool = False,
              max_bytes: int | None = None) -> ImportPlan:
    """Read a .csv or .xlsx file and plan its import; ImportFileError if unreadable."""
    if max_bytes is not None and path.stat().st_size > max_bytes:
        raise ImportFileError([RowError(None, None, f"the file is larger than {max_bytes} "
                                                    "bytes (MAX_IMPORT_BYTES)")])
    try:
        header, rows = read_numbered_table(path.read_bytes(), path.name)
    except TabularError as exc:
        raise ImportFileError([RowError(exc.row, exc.column, exc.message)]) from None
    return plan_import(session, kind, header, rows, delete_missing=delete_missing)


def plan_import(session: Session, kind: str, header: Sequence[str],
                rows: Iterable[tuple[int, Mapping[str, str]]], *,
                delete_missing: bool = False) -> ImportPlan:
    """Decide for every row what it does; nothing is written.

    ``rows`` are (row number, cells) as `exports.tabular.read_numbered_table`
    gives them: numbers count the header as row 1 and blank lines too, so every
    error points at the right line of the file. Deletes (entities of the kind
    the file does not mention) are planned only with ``delete_missing`` and
    only for a file without errors: a skipped row must never delete its entity.
    """
    kind = entity(kind).kind
    _check_header(kind, header)
    plan = ImportPlan(kind)
    claimed: dict[str, int] = {}  # entity id -> the row that matched or created it
    for number, row in rows:
        try:
            target, item = _plan_row(session, kind, header, number, row, claimed)
        except _RowInvalid as exc:
            plan.errors.extend(exc.errors)
            continue
        claimed[item.entity_id] = number
        {"create": plan.creates, "update": plan.updates,
         "unchanged": plan.unchanged}[target].append(item)
    if delete_missing and not plan.errors:
        plan.deletes = [s for s in live_entities(session, kind) if s.id not in claimed]
    return plan


def apply_plan(session: Session, plan: ImportPlan) -> None:
    """Write a plan. Changes carry the version they were planned against, so an
    entity edited in between is not overwritten (PreconditionFailed)."""
    for item in plan.creates:
        store.create(session, plan.kind, item.record, entity_id=item.entity_id)
    for item in plan.updates:
        store.replace(session, plan.kind, item.entity_id, item.record,
                      expected_version=item.version)
    for state in plan.deletes:
        store.delete_entity(session, plan.kind, state.id, expected_version=state.version)


# --------------------------------------------------------------------------- one row


def _check_header(kind: str, header: Sequence[str]) -> None:
    errors = []
    for column in header:
        if column == "id":
            continue
        try:
            row_to_data(kind, {column: ""})  # an empty cell: only the column name is checked
        except TabularError as exc:
            errors.append(RowError(_HEADER_ROW, column, exc.message))
    if errors:
        raise ImportFileError(errors)


class _RowInvalid(Exception):
    def __init__(self, errors: list[RowError]):
        super().__init__(errors)
        self.errors = errors


def _plan_row(session: Session, kind: str, header: Sequence[str], number: int,
              row: Mapping[str, str], claimed: Mapping[str, int]) -> tuple[str, PlannedRow]:
    """What one row does: ("create" | "update" | "unchanged", planned row)."""
    data = _row_data(kind, row, number)
    file_id = str(row.get("id") or "").strip()
    current = _match(session, kind, file_id, data, number)
    if current is None:
        # The id is unused here: _match found no entity or tombstone with it.
        keep = _ID.match(file_id) and file_id not in claimed
        record = _validate(kind, data, number)
        return "create", PlannedRow(number, file_id if keep else store.new_id(), record)
    if current.id in claimed:
        raise _RowInvalid([RowError(number, "id", f"matches {kind} {current.id!r}, as row "
                                                  f"{claimed[current.id]} already does")])
    record = _validate(kind, _row_data(kind, _merge(kind, header, current, row), number),
                       number)
    changed = tuple(sorted(k for k in {*record, *current.data}
                           if record.get(k) != current.data.get(k)))
    return ("update" if changed else "unchanged",
            PlannedRow(number, current.id, record, current.version, changed))


def _row_data(kind: str, row: Mapping[str, str], number: int) -> dict:
    try:
        return row_to_data(kind, row)
    except TabularError as exc:
        raise _RowInvalid([RowError(number, exc.column, exc.message)]) from None


def _match(session: Session, kind: str, file_id: str, data: dict, number: int
           ) -> store.EntityState | None:
    """The entity a row updates: by id, else by an external identifier; None to create."""
    if file_id:
        try:
            return store.get(session, kind, file_id)
        except Gone:
            raise _RowInvalid([RowError(number, "id", f"{kind} {file_id!r} was deleted; ids "
                                        "are never reused (leave the cell empty)")]) from None
        except NotFound:
            pass
    return store.find_by_external_id(session, kind, data)


def _merge(kind: str, header: Sequence[str], current: store.EntityState,
           row: Mapping[str, str]) -> dict[str, str]:
    """The row of an existing entity: the file's cells over its current values.

    The current record is laid out with the tabular module itself, so fields
    (and languages) without a column in the file keep their values exactly.
    """
    names = table_columns(kind, text_languages(kind, [current.data]))
    cells = dict(zip(names, record_to_row(kind, current.data, names), strict=True))
    cells.update({column: row.get(column, "") for column in header})
    return cells


def _validate(kind: str, data: dict, number: int) -> dict:
    try:
        return load_record(kind, data)
    except InvalidRecord as exc:
        raise _RowInvalid([RowError(number, column, message)
                           for column, message in _located(kind, exc.errors)]) from None


def _located(kind: str, messages: Mapping) -> list[tuple[str | None, str]]:
    """marshmallow's nested messages as (column, message) pairs of the spreadsheet layout."""
    out: list[tuple[str | None, str]] = []

    def walk(fields, tree: Mapping, prefix: str) -> None:
        by_key = {f.key: f for f in fields}
        for key, value in tree.items():
            f = by_key.get(key)
            column = f"{prefix}{key}" if key != "_schema" else (prefix.rstrip(".") or None)
            if f is not None and f.kind == "text" and isinstance(value, Mapping):
                for lang, sub in value.items():
                    out.append((f"{column}@{lang}", _flat(sub)))
            elif f is not None and f.kind == "node" and not f.many and isinstance(value, Mapping):
                walk(f.node.fields, value, f"{column}.")
            else:
                out.append((column, _flat(value)))

    walk(entity(kind).fields, messages, "")
    return out


def _flat(tree: Any) -> str:
    """Messages of a nested marshmallow error, with the item or sub-field they concern."""
    if isinstance(tree, Mapping):
        parts = []
        for key, value in tree.items():
            label = f"item {key + 1}" if isinstance(key, int) else \
                ("" if key in {"value", "_schema"} else str(key))
            parts.append(f"{label}: {_flat(value)}" if label else _flat(value))
        return " ".join(parts)
    if isinstance(tree, list | tuple):
        return " ".join(map(_flat, tree))
    return str(tree)


def live_entities(session: Session, kind: str, per_page: int = 500) -> list[store.EntityState]:
    """Every entity of a kind that is not deleted, paging through the store."""
    states, page = [], 1
    while True:
        result = store.list_page(session, kind, page=page, per_page=per_page)
        states.extend(result.items)
        if page >= result.pages:
            return states
        page += 1
