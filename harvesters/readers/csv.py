"""Read a CSV file from a URL with a column mapping: for cities without a node yet.

Why: many cities keep their list of associations as a spreadsheet on a web server. With a
mapping from the vocabulary's spreadsheet columns to the file's own headers, the index can
list those entries next to the nodes' entities, and the city can move to a node later.

Options (``source.options``, fixed at registration):

- ``csv_url``: the file (default ``source.entry_url``);
- ``kind``: entity kind of every row (default ``"actor"``);
- ``columns``: ``{column: header}``, column names as in `exports.tabular` (``id``,
  ``name@de``, ``actorTypes``, ``address.postalCode``, ...), e.g.
  ``{"id": "ID", "name@de": "Name", "url": "Webseite", "actorTypes": "Typ"}``; ``id`` is
  required: entity IRIs must stay the same from one run to the next;
- ``values``: ``{column: {cell text: value}}`` to translate a city's own words into the
  vocabulary's (``{"actorTypes": {"Verein": "verein"}}``), applied per ``;``-separated item;
- ``base``: base of the entity IRIs, ``{base}/{collection}/{id}`` (`vocab.entity_uri`),
  default ``source.uri_space``; every IRI must lie inside ``source.uri_space``;
- ``batch``: members per page (default 1000).

Rows become records through `exports.tabular.row_to_data` and `vocab.load_record` (the same
rules as the node's spreadsheet import), then triples through `vocab.to_graph`. A row that
cannot become a valid record is skipped and reported in ``Page.rejected`` ("row 7: ...");
the run goes on. The file is a snapshot (model.py): pages share a ``snapshot`` id, the last
has ``full_replace``. Cursor ``{"v": 1, "reader": "csv", "csv": {"url", "etag",
"last_modified"}}`` makes the next fetch conditional (304: no pages).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

import pyoxigraph as ox
from rdflib import BNode, Literal, URIRef

import vocab
from exports.tabular import LIST_SEPARATOR, TabularError, read_numbered_table, row_to_data

from ..checks import in_uri_space
from ..errors import HarvestError
from ..fetch import Fetcher
from ..model import Member, Page, Source
from ._shared import new_snapshot, option

__all__ = ["read_csv", "row_member"]

# Local ids as the node makes them: one safe path segment (RFC 3986 §3.3 unreserved).
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._~-]{0,127}")


def read_csv(source: Source, cursor: dict | None, fetcher: Fetcher) -> Iterator[Page]:
    """The rows of the source's CSV file as one snapshot (module docstring)."""
    url = option(source, "csv_url", source.entry_url)
    kind = option(source, "kind", "actor")
    columns: Mapping[str, str] = option(source, "columns", {})
    base = str(option(source, "base", source.uri_space)).rstrip("/")
    if kind not in vocab.ENTITIES or "id" not in columns:
        raise HarvestError(f"source {source.id}: CSV options need a known kind and an 'id' "
                           "column mapping", reason="csv-mapping")
    cursor = cursor or {}
    saved = cursor.get("csv") if cursor.get("reader") == "csv" else None
    same = isinstance(saved, dict) and saved.get("url") == url
    resp = fetcher.fetch(url, accept="text/csv, text/plain;q=0.5",
                         etag=saved.get("etag") if same else None,
                         last_modified=saved.get("last_modified") if same else None)
    if resp.not_modified:
        return
    try:
        header, rows = read_numbered_table(resp.body, "csv")
    except TabularError as exc:
        raise HarvestError(f"{url}: {exc}", reason="csv-unreadable") from exc
    missing = sorted(set(columns.values()) - set(header))
    if missing:
        raise HarvestError(f"{url}: columns {missing} not in the file", reason="csv-mapping")
    values: Mapping[str, Mapping[str, Any]] = option(source, "values", {})
    size = int(option(source, "batch", 1000))
    snapshot, final = new_snapshot("csv"), {"v": 1, "reader": "csv", "csv": {
        "url": url, "etag": resp.etag, "last_modified": resp.last_modified}}
    page = Page(url, [], dict(cursor), snapshot=snapshot)
    seen: set[str] = set()
    for number, row in rows:
        try:
            member = row_member(source, kind, base, columns, values, row)
            if member.entity in seen:
                raise ValueError(f"id: {row.get(columns['id'], '')!r} occurs more than once")
        except (ValueError, TabularError, vocab.InvalidRecord) as exc:
            page.rejected.append(f"row {number}: {_message(exc)}")
            continue
        seen.add(member.entity)
        if len(page.members) >= size:
            yield page
            page = Page(url, [], dict(cursor), snapshot=snapshot)
        page.members.append(member)
    if rows and not seen:  # a mapping that fits no row must not empty the index
        raise HarvestError(f"{url}: none of {len(rows)} rows is usable, e.g. "
                           f"{page.rejected[0]}", reason="csv-no-valid-rows")
    page.full_replace, page.cursor = True, final
    yield page


def row_member(source: Source, kind: str, base: str, columns: Mapping[str, str],
               values: Mapping[str, Mapping[str, Any]], row: Mapping[str, str]) -> Member:
    """One row as a member; ValueError, TabularError or InvalidRecord when it cannot be."""
    mapped = {column: _translate(row.get(header, ""), values.get(column))
              for column, header in columns.items()}
    local_id = mapped.pop("id").strip()
    if not _ID.fullmatch(local_id):
        raise ValueError(f"id: {local_id!r} is not a usable id (letters, digits, . _ ~ -)")
    record = vocab.load_record(kind, row_to_data(kind, mapped))
    record["id"] = local_id
    entity = str(vocab.entity_uri(base, kind, local_id))
    if not in_uri_space(entity, source.uri_space):
        raise ValueError(f"id: {entity} lies outside the source's URI space")
    # Only the entity's own statements (a cooperation's shortcuts about its partners are
    # not part of its state, as in the feed: exports/ldes.py member_triples).
    triples = [_triple(t) for t in vocab.to_graph(kind, record, base, graph=set())
               if str(t[0]) == entity or str(t[0]).startswith(entity + "#")]
    return Member(entity, None, record.get("modified"), False, triples)


def _translate(cell: str | None, table: Mapping[str, Any] | None) -> str:
    text = (cell or "").strip()
    if not table or not text:
        return text
    parts = [p.strip() for p in text.split(LIST_SEPARATOR.strip())]
    return LIST_SEPARATOR.join(str(table.get(p, p)) for p in parts if p)


def _message(exc: Exception) -> str:
    if isinstance(exc, vocab.InvalidRecord):
        return "; ".join(f"{field}: {detail}" for field, detail in _flat(exc.errors))
    return str(exc)


def _flat(errors: Any, prefix: str = "") -> Iterator[tuple[str, str]]:
    if isinstance(errors, dict):
        for key, value in errors.items():
            yield from _flat(value, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(errors, list) and all(isinstance(e, str) for e in errors):
        yield prefix or "record", " ".join(errors)
    else:
        yield prefix or "record", str(errors)


def _term(term: Any) -> ox.NamedNode | ox.BlankNode | ox.Literal:
    if isinstance(term, URIRef):
        return ox.NamedNode(str(term))
    if isinstance(term, BNode):
        return ox.BlankNode(str(term))
    if isinstance(term, Literal):
        if term.language:
            return ox.Literal(str(term), language=term.language)
        if term.datatype is not None:
            return ox.Literal(str(term), datatype=ox.NamedNode(str(term.datatype)))
        return ox.Literal(str(term))
    raise TypeError(f"not an RDF term: {term!r}")


def _triple(t: tuple) -> ox.Triple:
    return ox.Triple(_term(t[0]), _term(t[1]), _term(t[2]))
