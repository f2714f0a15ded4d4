"""Helpers the readers share: options, time stamps, snapshot ids, origins, lookahead, and a
capped gzip-inflating file over a fetched stream.

Why a module of its own: ldes.py, dump.py, ckan.py and csv.py each need them, and the
package's ``__init__`` imports those modules (a helper there would be a circular import).
"""

from __future__ import annotations

import io
import re
import secrets
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import fields, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from ..checks import Dropped
from ..errors import FetchError, HarvestError, ResponseTooLarge
from ..model import Page, Source
from ..parse import DEFAULT_LIMITS, ParseLimits

__all__ = [
    "ACCEPT_RDF",
    "InflatingReader",
    "add_dropped",
    "duration_seconds",
    "iso",
    "last_marked",
    "new_snapshot",
    "now",
    "option",
    "parse_limits",
    "parse_time",
    "same_origin",
]

# N-Triples first: it streams and is the cheapest to parse; JSON-LD last (PITFALLS: costly).
# RDF/XML is never asked for (PITFALLS: entity expansion).
ACCEPT_RDF = ("application/n-triples, application/n-quads;q=0.9, text/turtle;q=0.8, "
              "application/ld+json;q=0.5")
_EXAMPLES = 5
_CHUNK = 1 << 16


def option(source: Source, key: str, default: Any) -> Any:
    """A reader option from ``source.options`` (registration), else ``default``."""
    value = source.options.get(key) if source.options else None
    return default if value is None else value


def parse_limits(source: Source, key: str = "parse_limits",
                 base: ParseLimits = DEFAULT_LIMITS) -> ParseLimits:
    """`ParseLimits` with the fields a source's options override (unknown keys ignored)."""
    given = option(source, key, {}) or {}
    known = {f.name for f in fields(ParseLimits)}
    return replace(base, **{k: int(v) for k, v in given.items() if k in known})


def now() -> datetime:
    return datetime.now(UTC)


def iso(value: datetime) -> str:
    """xsd:dateTime lexical in UTC with "Z" (microseconds only when there are any)."""
    spec = "microseconds" if value.microsecond else "seconds"
    return value.astimezone(UTC).isoformat(timespec=spec).replace("+00:00", "Z")


def parse_time(text: str | None) -> datetime | None:
    """An xsd:dateTime lexical form as an aware datetime (no zone: UTC), None if it is not one."""
    if not text:
        return None
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


_DURATION = re.compile(r"P(?:(\d+)Y)?(?:(\d+)M)?(?:(\d+)W)?(?:(\d+)D)?"
                       r"(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?")


def duration_seconds(text: str | None) -> float | None:
    """Seconds of an xsd:duration (XSD 1.1 §3.3.6; years as 365 days, months as 30: a
    retention window is read conservatively short), None when it is not one."""
    match = _DURATION.fullmatch((text or "").strip())
    if not match or text.strip() in ("P", "PT"):
        return None
    y, mo, w, d, h, mi, s = (float(g) if g else 0.0 for g in match.groups())
    return timedelta(days=365 * y + 30 * mo + 7 * w + d, hours=h, minutes=mi,
                     seconds=s).total_seconds()


def new_snapshot(kind: str) -> str:
    """An id shared by the pages of one snapshot (model.py: full_replace), unique per run."""
    return f"{kind}:{iso(now())}:{secrets.token_hex(4)}"


def same_origin(url: str, other: str) -> bool:
    """RFC 6454 §4 origin equality (scheme, host, port), default ports made explicit."""
    try:
        a, b = urlsplit(url), urlsplit(other)
        ports = {"http": 80, "https": 443}
        return (a.scheme.lower(), (a.hostname or "").lower(), a.port or ports.get(a.scheme)) == (
            b.scheme.lower(), (b.hostname or "").lower(), b.port or ports.get(b.scheme))
    except ValueError:
        return False


def add_dropped(page: Page, dropped: Dropped) -> None:
    """Count statements refused by the authority check on ``page``, keep a few examples."""
    page.dropped += dropped.count
    for example in dropped.examples:  # checks gives N-Triples terms: "<iri>" -> "iri"
        if example.startswith("<") and example.endswith(">"):
            example = example[1:-1]
        if len(page.examples) < _EXAMPLES and example not in page.examples:
            page.examples.append(example)


def last_marked(pages: Iterable[Page]) -> Iterator[tuple[Page, bool]]:
    """Each page with a flag telling whether it is the last one (one page of lookahead)."""
    held: Page | None = None
    for page in pages:
        if held is not None:
            yield held, False
        held = page
    if held is not None:
        yield held, True


class InflatingReader(io.RawIOBase):
    """A binary file over a Stream's chunks, inflating gzip (RFC 1952, several members
    allowed) with a cap on the inflated bytes. Errors are kept in ``error``: the parser
    reports any read error as a syntax error, and the reader re-raises the real one."""

    def __init__(self, chunks: Iterator[bytes], cap: int, url: str) -> None:
        self._chunks, self._cap, self._url = chunks, cap, url
        first = next(chunks, b"")
        self.gzipped = first[:2] == b"\x1f\x8b"
        self._z = zlib.decompressobj(31) if self.gzipped else None
        self._input, self._out, self._total, self._eof = first, bytearray(), 0, not first
        self.error: HarvestError | None = None

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        try:
            while not self._out and not self._eof:
                self._fill()
        except HarvestError as exc:
            self.error = exc
            raise OSError(str(exc)) from exc
        n = min(len(buffer), len(self._out))
        buffer[:n] = self._out[:n]
        del self._out[:n]
        return n

    def _fill(self) -> None:
        if not self._input:
            self._input = next(self._chunks, b"")
            if not self._input:
                self._eof = True
                if self._z is not None and not self._z.eof:
                    raise FetchError(f"{self._url}: the gzip file is cut off", reason="truncated")
                return
        if self._z is None:
            out, self._input = self._input, b""
        else:
            if self._z.eof:  # RFC 1952 §2.2: a gzip file is a series of members
                self._z = zlib.decompressobj(31)
            try:
                out = self._z.decompress(self._input, _CHUNK)
            except zlib.error as exc:
                raise FetchError(f"{self._url}: broken gzip data ({exc})",
                                 reason="decode-error") from exc
            self._input = self._z.unused_data if self._z.eof else self._z.unconsumed_tail
        self._total += len(out)
        if self._total > self._cap:
            raise ResponseTooLarge(f"{self._url}: inflated dump over {self._cap} bytes "
                                   "(option dump_max_inflated)", reason="too-large-decompressed")
        self._out += out
