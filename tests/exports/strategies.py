"""Hypothesis strategies for records that a spreadsheet must carry unchanged.

Like tests/vocab/strategies.py, but shaped by the table layout's one documented
limit: free strings inside lists never contain ";" (the list separator).
Values are what load_record keeps: stripped, without control characters.
"""

from __future__ import annotations

from datetime import date, datetime

from hypothesis import strategies as st

from vocab.fields import WEEKDAYS, Field, entity
from vocab.mapping import normalize
from vocab.terms import notations

BASE = "http://127.0.0.1:5001"


def expected(kind: str, record: dict) -> dict:
    """What an import of the record must give: its canonical form without id and read-only."""
    read_only = {f.key for f in entity(kind).fields if f.read_only}
    return {k: v for k, v in normalize(kind, record).items() if k != "id" and k not in read_only}

_CHARS = "abcxyzäöüßÄ0123456789 .,-_&()'\"/=+@!?ЖдاБ€"
_TEXT = st.text(alphabet=_CHARS + ";\r\n\t", min_size=1, max_size=24).map(str.strip).filter(bool)


def _string(f: Field) -> st.SearchStrategy:
    # ";" separates list values: free strings in lists must not contain it (documented).
    alphabet = _CHARS if f.many else _CHARS + ";"
    size = min(f.max_length, 24)
    return st.text(alphabet=alphabet, min_size=1, max_size=size).map(str.strip).filter(bool)


def _leaf(f: Field) -> st.SearchStrategy:
    kind = f.kind
    if kind == "text":
        return st.dictionaries(st.sampled_from(["de", "en", "uk", "fa", "de-CH"]), _TEXT,
                               min_size=1, max_size=3)
    if kind == "string":
        return _string(f)
    if kind == "email":
        return st.sampled_from(["info@verein.example.org", "a.b@c.de"])
    if kind == "language":
        return st.sampled_from(["ar", "de", "en", "fa", "uk", "de-CH"])
    if kind == "iri":
        return st.sampled_from(["https://example.org/", "http://verein.example/a?b=1#c"])
    if kind == "ref":
        return st.text(alphabet="abc123", min_size=3, max_size=6).map(
            lambda i: f"{BASE}/actors/{i}")
    if kind == "concept":
        return st.sampled_from(sorted(notations(f.scheme)))
    if kind == "date":
        return st.dates(date(1900, 1, 1), date(2100, 1, 1)).map(date.isoformat)
    if kind == "datetime":
        return st.builds(lambda d, zone: d.isoformat(timespec="seconds") + zone,
                         st.datetimes(datetime(1990, 1, 1), datetime(2100, 1, 1)),
                         st.sampled_from(["Z", "+02:00"]))
    if kind == "time":
        return st.builds("{:02d}:{:02d}".format, st.integers(0, 23), st.integers(0, 59))
    if kind == "decimal":
        low = f.minimum if f.minimum is not None else -1e9
        high = f.maximum if f.maximum is not None else 1e9
        return st.floats(low, high, allow_nan=False, allow_infinity=False)
    if kind == "boolean":
        return st.booleans()
    if kind == "weekday":
        return st.sampled_from(WEEKDAYS)
    if kind == "wikidata":
        return st.integers(1, 10**9).map(lambda n: f"Q{n}")
    raise AssertionError(kind)


def _value(f: Field) -> st.SearchStrategy:
    item = _fields(f.node.fields) if f.kind == "node" else _leaf(f)
    if not f.many:
        return item
    low, high = f.cardinality or (1, 3)
    return st.lists(item, min_size=low, max_size=high, unique=f.kind != "node")


def _fields(fields: tuple[Field, ...]) -> st.SearchStrategy:
    required = {f.key: _value(f) for f in fields if f.required}
    optional = {f.key: _value(f) for f in fields if not f.required}
    return st.fixed_dictionaries(required, optional=optional).map(
        lambda data: _consistent(fields, data))


def _consistent(fields: tuple[Field, ...], data: dict) -> dict:
    """Apply the cross-field rules load_record checks (order of dates, consent)."""
    for f in fields:
        if f.not_after and f.key in data and f.not_after in data:
            data[f.key], data[f.not_after] = sorted([data[f.key], data[f.not_after]])
    if data.get("personName"):
        data["consentRecorded"] = True
    return data


def records(kind: str) -> st.SearchStrategy[dict]:
    """Valid records of ``kind`` (with an id and read-only fields), every field covered."""
    return _fields(entity(kind).fields).map(lambda data: {"id": "x1", **data})
