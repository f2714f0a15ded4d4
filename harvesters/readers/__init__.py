"""Readers: turn what a source publishes into Pages for the pipeline (harvesters/model.py).

Every reader has the signature ``read(source, cursor, fetcher) -> Iterator[Page]``: it
fetches only through the given `harvesters.fetch.Fetcher`, parses only through
`harvesters.parse`, applies the authority check itself (``Page.dropped``) and never
touches the index. ``cursor`` is the ``page.cursor`` of the last page the pipeline applied
(None on a first run); each reader documents its cursor in its module.

- `read_feed` (readers/ldes.py): LDES feeds of nodes and indexes; first harvest from the
  dump plus the feed position, later runs only new members, recovery through the dump.
  A trusted index's feed (kind "index") names each member's original source; readers/index.py
  maps its members back to their entities and origins.
- `read_dump` (readers/dump.py): a whole-dataset dump as a snapshot.
- `read_ckan` (readers/ckan.py): DCAT catalogs of CKAN-style portals.
- `read_csv` (readers/csv.py): a CSV file with a column mapping.

`reader_for` picks one by ``source.kind``; `read` runs it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from ..errors import HarvestError
from ..fetch import Fetcher
from ..model import Page, Source
from .ckan import read_ckan
from .csv import read_csv
from .dump import read_dump
from .ldes import read_feed

__all__ = ["READERS", "Reader", "read", "read_ckan", "read_csv", "read_dump", "read_feed",
           "reader_for"]

Reader = Callable[[Source, "dict | None", Fetcher], Iterator[Page]]
READERS: dict[str, Reader] = {"node": read_feed, "index": read_feed, "ckan": read_ckan,
                              "csv": read_csv, "dump": read_dump}


def reader_for(source: Source) -> Reader:
    """The reader for ``source.kind``; a node or index without a feed is read from its dump."""
    if source.kind in ("node", "index") and not source.feed_url and source.dump_url:
        return read_dump
    try:
        return READERS[source.kind]
    except KeyError:
        raise HarvestError(f"source {source.id}: no reader for kind {source.kind!r}",
                           reason="unknown-kind") from None


def read(source: Source, cursor: dict | None, fetcher: Fetcher) -> Iterator[Page]:
    """The pages of one harvest run of ``source`` from ``cursor``."""
    return reader_for(source)(source, cursor, fetcher)
