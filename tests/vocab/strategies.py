"""Hypothesis strategies for records, generated from the entity table itself."""

from __future__ import annotations

import string
from collections.abc import Callable

from hypothesis import strategies as st

from vocab.fields import WEEKDAYS, Field, entity
from vocab.mapping import normalize
from vocab.terms import notations

BASE = "http://node.test"

Custom = dict[str, Callable[[Field], st.SearchStrategy]]

_ids = st.text(alphabet=string.ascii_lowercase + string.digits, min_size=1, max_size=12)
_languages = st.sampled_from(["de", "en", "ar", "fa", "uk", "tr", "de-CH", "sr-Latn"])
_plain = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=40
).map(str.strip).filter(bool)
_urls = st.builds(lambda host, path: f"https://{host}.example/{path}",
                  st.text(alphabet=string.ascii_lowercase, min_size=1, max_size=10),
                  st.text(alphabet=string.ascii_lowercase + "-", max_size=10))
_dates = st.dates().map(lambda d: d.isoformat()).filter(lambda s: len(s) == 10)
_datetimes = st.datetimes(timezones=st.just(__import__("datetime").UTC)).map(
    lambda d: d.isoformat(timespec="seconds").replace("+00:00", "Z")
).filter(lambda s: len(s) == 20)
_times = st.builds(lambda h, m: f"{h:02d}:{m:02d}", st.integers(0, 23), st.integers(0, 59))


def _value(f: Field, custom: Custom):
    kind = f.kind
    if kind in custom:
        return custom[kind](f)
    if kind == "text":
        return st.dictionaries(_languages, _plain, min_size=1, max_size=3)
    if kind == "string":
        return _plain
    if kind == "email":
        return st.builds(lambda a, b: f"{a}@{b}.example",
                         st.text(alphabet=string.ascii_lowercase, min_size=1, max_size=8),
                         st.text(alphabet=string.ascii_lowercase, min_size=1, max_size=8))
    if kind == "language":
        return _languages
    if kind == "iri":
        return _urls
    if kind == "ref":
        return st.builds(lambda i: f"{BASE}/actors/{i}", _ids)
    if kind == "concept":
        return st.sampled_from(sorted(notations(f.scheme)))
    if kind == "date":
        return _dates
    if kind == "datetime":
        return _datetimes
    if kind == "time":
        return _times
    if kind == "decimal":
        low = f.minimum if f.minimum is not None else -1e6
        high = f.maximum if f.maximum is not None else 1e6
        return st.floats(low, high, allow_nan=False, allow_infinity=False).map(
            lambda x: round(x, 6))
    if kind == "boolean":
        return st.booleans()
    if kind == "weekday":
        return st.sampled_from(WEEKDAYS)
    if kind == "wikidata":
        return st.integers(1, 10**9).map(lambda n: f"Q{n}")
    if kind == "node":
        return _fields(f.node.fields, custom)
    raise AssertionError(kind)


def _field_values(f: Field, custom: Custom):
    if f.many and f.kind != "text":
        low, high = f.cardinality or (1 if f.required else 0, 3)
        unique = f.kind != "node"
        return st.lists(_value(f, custom), min_size=low, max_size=high, unique=unique)
    return _value(f, custom)


def _fields(fields, custom: Custom) -> st.SearchStrategy[dict]:
    required = {f.key: _field_values(f, custom) for f in fields if f.required}
    optional = {f.key: _field_values(f, custom) for f in fields if not f.required}
    return st.fixed_dictionaries(required, optional=optional).map(
        lambda data: _consistent(fields, data))


def _consistent(fields, data: dict) -> dict:
    """Follow the cross-field rules load_record checks (order of dates, consent)."""
    for f in fields:
        if f.not_after and f.key in data and f.not_after in data:
            data[f.key], data[f.not_after] = sorted([data[f.key], data[f.not_after]])
    if data.get("personName"):
        data["consentRecorded"] = True
    return data


def records(kind: str, custom: Custom | None = None) -> st.SearchStrategy[dict]:
    """Canonical records of ``kind`` (with an id), covering every field of the table.

    ``custom`` maps a field kind to a function giving the strategy for such a field,
    for tests whose format has limits of its own (e.g. spreadsheets' list separator).
    """
    spec = entity(kind)
    return st.builds(lambda i, body: normalize(kind, {"id": i, **body}), _ids,
                     _fields(spec.fields, custom or {}))
