"""THE spreadsheet layout of every entity kind, in both directions (CSV and XLSX).

The columns are derived from `vocab.fields`, never listed by hand, so a new
field appears in every table export and is accepted by every import at once:

- ``id`` first (the entity's local id; imports use it to find the record,
  `row_to_data` itself ignores it), then one column per field in table order;
- text fields get one column per language, ``name@de``, ``name@en``, then any
  other language of the exported records (sorted), so a translator sees every
  language side by side;
- many-valued plain fields share one cell, values joined with ``"; "``.
  Concept notations, IRIs and language tags never contain ";". Free strings
  (``alternateName``, ``areaServed``) are *not* escaped: a value containing
  ";" comes back as two values. Escaping would make the cell unreadable to the
  people who edit it, and such names are rare;
- a single nested node is flattened into dotted columns (``address.postalCode``,
  ``geo.latitude``);
- many-valued nested nodes (``openingHours``, ``contactPoints``) are a JSON
  array of record-form objects in one cell. Each item has its own many-valued
  and multilingual sub-fields, so columns would need an arbitrary maximum
  count (``contactPoints.3.contactType@en``...); JSON is lossless, round trips,
  and stays editable by hand;
- read-only fields (``created``, ``modified``) are exported for information and
  ignored on import.

Round trip: ``load_record(kind, row_to_data(kind, row))`` equals the record's
`normalize` form without ``id`` and read-only fields, for ``row`` made by
`record_to_row` with columns covering the record's languages.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import date, datetime, time, timedelta
from functools import cache
from typing import Any

import openpyxl
import orjson

from vocab.fields import Field, entity
from vocab.mapping import decimal_lexical

from .errors import TabularError

__all__ = [
    "DEFAULT_LANGUAGES",
    "LIST_SEPARATOR",
    "XLSX_MEDIA_TYPE",
    "TabularError",
    "columns",
    "read_numbered_table",
    "read_table",
    "record_to_row",
    "row_to_data",
    "table",
    "text_languages",
]

DEFAULT_LANGUAGES = ("de", "en")
LIST_SEPARATOR = "; "
XLSX_MEDIA_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

_NUMBER = re.compile(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?")
# Spreadsheet users type booleans in many ways; German Excel shows WAHR/FALSCH.
_BOOLEANS = {"true": True, "1": True, "yes": True, "ja": True, "wahr": True,
             "false": False, "0": False, "no": False, "nein": False, "falsch": False}


# --------------------------------------------------------------------------- layout


def columns(kind: str, languages: Iterable[str] = ()) -> list[str]:
    """The column names for ``kind``: de and en columns always, other languages after."""
    extra = sorted(set(languages) - set(DEFAULT_LANGUAGES))
    langs = [*DEFAULT_LANGUAGES, *extra]
    names = ["id"]
    for f in entity(kind).fields:
        names.extend(_field_columns(f, "", langs))
    return names


def _field_columns(f: Field, prefix: str, langs: Sequence[str]) -> list[str]:
    key = prefix + f.key
    if f.kind == "text":
        return [f"{key}@{lang}" for lang in langs]
    if f.kind == "node" and not f.many:
        return [c for sub in f.node.fields for c in _field_columns(sub, key + ".", langs)]
    return [key]


def text_languages(kind: str, records: Iterable[Mapping[str, Any]]) -> set[str]:
    """Languages of the text cells the records fill (JSON cells keep their own)."""
    found: set[str] = set()
    for record in records:
        _collect_languages(entity(kind).fields, record, found)
    return found


def _collect_languages(fields: Iterable[Field], record: Mapping, found: set[str]) -> None:
    for f in fields:
        value = record.get(f.key)
        if f.kind == "text" and value:
            found.update(value)
        elif f.kind == "node" and not f.many and value:
            _collect_languages(f.node.fields, value, found)


@cache
def _paths(kind: str) -> dict[str, tuple[Field, ...]]:
    """Column key (without "@lang") -> the fields leading to its value."""
    out: dict[str, tuple[Field, ...]] = {}

    def walk(fields: Iterable[Field], prefix: str, trail: tuple[Field, ...]) -> None:
        for f in fields:
            if f.kind == "node" and not f.many:
                walk(f.node.fields, f"{prefix}{f.key}.", (*trail, f))
            else:
                out[prefix + f.key] = (*trail, f)

    walk(entity(kind).fields, "", ())
    return out


def _resolve(kind: str, column: str) -> tuple[tuple[Field, ...], str | None]:
    key, at, lang = column.partition("@")
    path = _paths(kind).get(key)
    if path is None:
        raise TabularError(column, f"unknown column for {kind} records")
    if path[-1].kind == "text" and not (at and lang):
        raise TabularError(column, f"text needs one column per language, e.g. '{key}@de'")
    if path[-1].kind != "text" and at:
        raise TabularError(column, f"'{key}' has no languages; name the column '{key}'")
    return path, lang or None


# --------------------------------------------------------------------------- records -> rows


def table(kind: str, records: Sequence[Mapping[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """Columns and rows for a set of records, with a column for every language they use."""
    names = columns(kind, text_languages(kind, records))
    return names, [record_to_row(kind, r, names) for r in records]


def record_to_row(kind: str, record: Mapping[str, Any], columns: Sequence[str]) -> list[str]:
    """The cells of one record under ``columns`` ("" for no value).

    Text in a language without a column is left out: build ``columns`` with
    the records' `text_languages` (as `table` does) to keep everything.
    """
    row = []
    for column in columns:
        if column == "id":
            row.append(str(record.get("id", "")))
            continue
        path, lang = _resolve(kind, column)
        value: Any = record
        for f in path:
            value = value.get(f.key) if isinstance(value, Mapping) else None
        if lang is not None:
            value = value.get(lang) if isinstance(value, Mapping) else None
        row.append(_cell(path[-1], value, lang is not None))
    return row


def _cell(f: Field, value: Any, is_text: bool) -> str:
    if value is None or value == [] or value == {}:
        return ""
    if is_text:
        return str(value)
    if f.kind == "node":
        return orjson.dumps(value).decode()
    if f.many:
        return LIST_SEPARATOR.join(_scalar(f, v) for v in value)
    return _scalar(f, value)


def _scalar(f: Field, value: Any) -> str:
    if f.kind == "decimal":
        return decimal_lexical(value)
    if f.kind == "boolean":
        return "true" if value else "false"
    return str(value)


# --------------------------------------------------------------------------- rows -> data


def row_to_data(kind: str, row: Mapping[str, str]) -> dict:
    """Record data from one row, ready for `vocab.schemas.load_record`.

    Splits lists, parses numbers and booleans, rebuilds nested nodes and drops
    empty cells; ``id`` and read-only columns are ignored. Validation is
    load_record's job; this raises `TabularError` only for cells that cannot
    become data at all (unknown column, bad number or JSON).
    """
    data: dict[str, Any] = {}
    for column, cell in row.items():
        if column == "id":
            continue
        path, lang = _resolve(kind, column)
        leaf = path[-1]
        text = "" if cell is None else str(cell).strip()
        if not text or any(f.read_only for f in path):
            continue
        value = text if lang is not None else _parse(leaf, text, column)
        if value is None:
            continue
        target = data
        for f in path[:-1]:
            target = target.setdefault(f.key, {})
        if lang is not None:
            target.setdefault(leaf.key, {})[lang] = value
        else:
            target[leaf.key] = value
    return data


def _parse(f: Field, text: str, column: str) -> Any:
    if f.kind == "node":
        try:
            items = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            raise TabularError(column, f"not valid JSON ({exc})") from None
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            raise TabularError(column, "expected a JSON array of objects, e.g. [{...}]")
        return items or None
    if f.many:
        parts = [p.strip() for p in text.split(LIST_SEPARATOR.strip())]
        return [_parse_scalar(f, p, column) for p in parts if p] or None
    return _parse_scalar(f, text, column)


def _parse_scalar(f: Field, text: str, column: str) -> Any:
    if f.kind == "decimal":
        # German spreadsheets write a decimal comma ("51,05").
        number = text.replace(",", ".") if "." not in text else text
        if not _NUMBER.fullmatch(number):
            raise TabularError(column, f"not a number: {text!r}")
        return float(number)
    if f.kind == "boolean":
        if text.lower() not in _BOOLEANS:
            raise TabularError(column, f"not true or false: {text!r}")
        return _BOOLEANS[text.lower()]
    return text


# --------------------------------------------------------------------------- reading files


def read_table(data: bytes, filename_or_format: str) -> tuple[list[str], list[dict[str, str]]]:
    """The header and the rows (column -> cell text) of an uploaded CSV or XLSX file.

    ``filename_or_format`` is a file name ("actors.csv"), an extension or format
    name ("xlsx") or a media type. Blank rows are skipped; every other problem
    is a `TabularError` with the row (header = 1) where it was found.
    """
    header, numbered = read_numbered_table(data, filename_or_format)
    return header, [row for _number, row in numbered]


def read_numbered_table(data: bytes, filename_or_format: str
                        ) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    """Like `read_table`, each row with its row number in the file (header = 1), so
    that reports stay right when blank rows were skipped."""
    kind = _file_kind(filename_or_format)
    if not data:
        raise TabularError(None, "the file is empty")
    return _read_csv(data) if kind == "csv" else _read_xlsx(data)


def _file_kind(filename_or_format: str) -> str:
    value = filename_or_format.split(";", 1)[0].strip().lower()
    if value in {"csv", "text/csv"} or value.endswith(".csv"):
        return "csv"
    if value in {"xlsx", XLSX_MEDIA_TYPE} or value.endswith(".xlsx"):
        return "xlsx"
    raise TabularError(None, f"cannot read {filename_or_format!r}: use a .csv or .xlsx file")


def _read_csv(data: bytes) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    try:
        text = data.decode("utf-8-sig")  # Excel's "CSV UTF-8" starts with a BOM
    except UnicodeDecodeError as exc:
        raise TabularError(None, f"not UTF-8 text (byte {exc.start}); "
                                 "save the file as 'CSV UTF-8'") from None
    if not text.strip():
        raise TabularError(None, "the file is empty")
    # German Excel separates with ";" (the comma is its decimal mark); take the
    # delimiter that splits the header into more cells.
    widths = {d: len(next(csv.reader(io.StringIO(text, newline=""), delimiter=d), []))
              for d in ",;"}
    delimiter = ";" if widths[";"] > widths[","] else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)

    def rows() -> Iterator[tuple[int, list[str]]]:
        number = 0
        try:
            for number, cells in enumerate(reader, start=1):
                yield number, cells
        except csv.Error as exc:
            raise TabularError(None, f"not valid CSV ({exc})", row=number + 1) from None

    return _table(rows(), pad_short=False)


def _read_xlsx(data: bytes) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    try:
        # data_only: the values Excel last computed, never formula text.
        workbook = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as exc:
        raise TabularError(None, "not a readable XLSX workbook") from exc
    try:
        if not workbook.worksheets:
            raise TabularError(None, "the workbook has no worksheet")
        sheet = workbook.worksheets[0]
        # Some writers declare a wrong sheet size; read what is really there.
        sheet.reset_dimensions()
        rows = ((n, [_xlsx_text(v) for v in values])
                for n, values in enumerate(sheet.iter_rows(values_only=True), start=1))
        # XLSX does not store trailing empty cells, so short rows are normal here.
        return _table(rows, pad_short=True)
    except TabularError:
        raise
    except Exception as exc:
        raise TabularError(None, "not a readable XLSX workbook") from exc
    finally:
        workbook.close()


def _xlsx_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        # Excel has no date type: a date cell is a datetime at midnight.
        if value.tzinfo is None and value.time() == time(0):
            return value.date().isoformat()
        return value.isoformat(timespec="seconds")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, time):
        return value.isoformat(timespec="minutes" if value.second == 0 else "seconds")
    if isinstance(value, timedelta):
        return str(value)
    if isinstance(value, float):
        return decimal_lexical(value)
    return str(value)


def _table(rows: Iterable[tuple[int, list[str]]],
           pad_short: bool) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    iterator = iter(rows)
    first = next(iterator, None)
    if first is None:
        raise TabularError(None, "the file is empty")
    header = [name.strip() for name in first[1]]
    while header and not header[-1]:
        header.pop()  # spreadsheet programs write stray empty columns at the end
    if not header:
        raise TabularError(None, "the first row must hold the column names", row=1)
    for index, name in enumerate(header, start=1):
        if not name:
            raise TabularError(None, f"column {index} has no name", row=1)
    seen: set[str] = set()
    for name in header:
        if name in seen:
            raise TabularError(name, "duplicate column", row=1)
        seen.add(name)

    width = len(header)
    out = []
    for number, cells in iterator:
        if not any(c.strip() for c in cells):
            continue
        if len(cells) > width:
            if any(c.strip() for c in cells[width:]):
                raise TabularError(None, f"{len(cells)} cells, but the header has {width} "
                                         "columns", row=number)
            cells = cells[:width]
        elif len(cells) < width:
            if not pad_short:
                raise TabularError(None, f"only {len(cells)} cells, but the header has "
                                         f"{width} columns", row=number)
            cells = [*cells, *[""] * (width - len(cells))]
        out.append((number, dict(zip(header, cells, strict=True))))
    return header, out
