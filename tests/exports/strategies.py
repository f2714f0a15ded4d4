"""Hypothesis strategies for records that a spreadsheet must carry unchanged.

The records of tests/vocab/strategies.py, with free text shaped by the table
layout's one documented limit: strings inside lists never contain ";" (the
list separator).
"""

from __future__ import annotations

from hypothesis import strategies as st

from vocab.fields import Field, entity
from vocab.mapping import normalize

from ..vocab.strategies import BASE
from ..vocab.strategies import records as _records

__all__ = ["BASE", "expected", "records"]

_CHARS = "abcxyzäöüßÄ0123456789 .,-_&()'\"/=+@!?ЖдاБ€"
_TEXT = st.text(alphabet=_CHARS + ";\r\n\t", min_size=1, max_size=24).map(str.strip).filter(bool)


def expected(kind: str, record: dict) -> dict:
    """What an import of the record must give: its canonical form without id and read-only."""
    read_only = {f.key for f in entity(kind).fields if f.read_only}
    return {k: v for k, v in normalize(kind, record).items() if k != "id" and k not in read_only}


def _string(f: Field) -> st.SearchStrategy:
    # ";" separates list values: free strings in lists must not contain it (documented).
    alphabet = _CHARS if f.many else _CHARS + ";"
    size = min(f.max_length, 24)
    return st.text(alphabet=alphabet, min_size=1, max_size=size).map(str.strip).filter(bool)


def _text(_f: Field) -> st.SearchStrategy:
    return st.dictionaries(st.sampled_from(["de", "en", "uk", "fa", "de-ch"]), _TEXT,
                           min_size=1, max_size=3)


def records(kind: str) -> st.SearchStrategy[dict]:
    """Valid records of ``kind`` (with an id and read-only fields), every field covered."""
    return _records(kind, custom={"string": _string, "text": _text})
