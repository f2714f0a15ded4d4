"""The one format registry: name, media types, extensions -> renderer.

Modelled on rdflib's plugin registry: a single `get` answers names, file
extensions and media types alike ("turtle", "ttl", "text/turtle"), and content
negotiation asks the registry, nothing else. Built-in formats register
themselves through the same `register` a third party (or the service, for
"html") uses.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

__all__ = [
    "PREFERENCE",
    "Format",
    "Payload",
    "content_type",
    "formats",
    "get",
    "negotiate",
    "register",
    "unregister",
]


@dataclass(frozen=True)
class Payload:
    """What every renderer receives: canonical records of one kind, never deleted ones."""

    kind: str
    records: Sequence[dict]
    base: str
    single: bool
    page_url: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Format:
    name: str
    media_types: tuple[str, ...]  # the first is the Content-Type we answer with
    extensions: tuple[str, ...]
    render: Callable[[Payload], bytes]
    rdf: bool = False
    text: bool = True


# The server's order of preference when clients accept several formats equally
# (and the default without an Accept header): people first, then RDF, then the rest.
PREFERENCE = ("html", "jsonld", "turtle", "ntriples", "rdfxml", "csv", "geojson")

_formats: dict[str, Format] = {}
_lookup: dict[str, Format] = {}


def _keys(fmt: Format) -> list[str]:
    return [k.lower() for k in (fmt.name, *fmt.extensions, *fmt.media_types)]


def register(fmt: Format) -> None:
    """Add a format, replacing one of the same name (the service re-registers "html").

    A name, extension or media type already owned by a *different* format is a
    ValueError: silently re-routing e.g. ``application/json`` would change what
    clients get without anyone noticing.
    """
    if not fmt.name or not fmt.media_types:
        raise ValueError("a format needs a name and at least one media type")
    for key in _keys(fmt):
        owner = _lookup.get(key)
        if owner is not None and owner.name != fmt.name:
            raise ValueError(f"{key!r} already belongs to format {owner.name!r}")
    unregister(fmt.name)
    _formats[fmt.name] = fmt
    for key in _keys(fmt):
        _lookup[key] = fmt


def unregister(name: str) -> None:
    """Remove a format by name (for tests and plugins); unknown names are ignored."""
    fmt = _formats.pop(name, None)
    if fmt is not None:
        for key in _keys(fmt):
            _lookup.pop(key, None)


def get(name_or_extension_or_media_type: str) -> Format | None:
    """The format known by this name, extension (".ttl" or "ttl") or media type."""
    key = name_or_extension_or_media_type.split(";", 1)[0].strip().lower()
    return _lookup.get(key.removeprefix("."))


def formats() -> list[Format]:
    """All registered formats in the server's order of preference."""
    rank = {name: i for i, name in enumerate(PREFERENCE)}
    order = {name: i for i, name in enumerate(_formats)}
    return sorted(_formats.values(),
                  key=lambda f: (rank.get(f.name, len(PREFERENCE)), order[f.name]))


def content_type(fmt: Format) -> str:
    """The Content-Type header value for a format (charset only for text formats)."""
    return f"{fmt.media_types[0]}; charset=utf-8" if fmt.text else fmt.media_types[0]


# --------------------------------------------------------------------------- negotiation


class _Range(NamedTuple):
    type: str
    subtype: str
    q: float


# RFC 9110 §5.6.2 token and §12.4.2 qvalue (at most three decimals, never above 1).
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9a-z-]+")
_QVALUE = re.compile(r"0(\.[0-9]{0,3})?|1(\.0{0,3})?")


def negotiate(accept_header: str | None, names: Iterable[str] | None = None) -> Format | None:
    """The best registered format for an Accept header (RFC 9110 §12.5.1), or None (406).

    ``names`` limits the candidates (names, extensions or media types; unknown
    ones are ignored); their order does not matter, ties always go to
    `PREFERENCE`. A missing, empty or entirely malformed header accepts
    anything, so the first candidate wins (html when registered, else jsonld).
    For each media type the most specific matching range sets its q; ``q=0``
    refuses it. A format may be served when one of its media types is
    acceptable, unless its canonical type (the Content-Type we would send) is
    refused. Among formats with the same q a range naming the type
    exactly beats a wildcard match, then the server's preference decides.
    """
    candidates = formats()
    if names is not None:
        wanted = {fmt.name for fmt in map(get, names) if fmt is not None}
        candidates = [fmt for fmt in candidates if fmt.name in wanted]
    ranges = _parse_accept(accept_header or "")
    if not ranges:
        return candidates[0] if candidates else None
    best, best_key = None, (0.0, -1)
    for fmt in candidates:
        matches = [_match(ranges, media_type) for media_type in fmt.media_types]
        if matches[0] is not None and matches[0][0] == 0:
            continue  # we would answer with the canonical type, and it is refused
        key = max((m for m in matches if m is not None), default=(0.0, -1))
        if key[0] > 0 and key > best_key:
            best, best_key = fmt, key
    return best


def _match(ranges: list[_Range], media_type: str) -> tuple[float, int] | None:
    """(q, specificity) of the most specific range matching ``media_type``, if any."""
    type_, _, subtype = media_type.lower().partition("/")
    found: tuple[float, int] | None = None
    for r in ranges:
        if r.type == "*":
            specificity = 0
        elif r.type == type_ and r.subtype == "*":
            specificity = 1
        elif r.type == type_ and r.subtype == subtype:
            specificity = 2
        else:
            continue
        # Equally specific duplicates ("a/b;q=0.2, a/b") are read generously: highest q.
        if found is None or (specificity, r.q) > (found[1], found[0]):
            found = (r.q, specificity)
    return found


def _parse_accept(header: str) -> list[_Range]:
    """Media ranges with their q; malformed elements are skipped, other parameters ignored."""
    ranges = []
    for element in _split(header, ","):
        parts = _split(element, ";")
        media_range = parts[0].strip().lower()
        if media_range == "*":
            # Not RFC syntax, but old Java clients send "*; q=.2" meaning */*.
            media_range = "*/*"
        type_, slash, subtype = media_range.partition("/")
        if not (slash and _TOKEN.fullmatch(type_) and _TOKEN.fullmatch(subtype)):
            continue
        if type_ == "*" and subtype != "*":
            continue
        q: float | None = 1.0
        for param in parts[1:]:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                value = value.strip()
                q = float(value) if _QVALUE.fullmatch(value) else None
                break
        if q is not None:
            ranges.append(_Range(type_, subtype, q))
    return ranges


def _split(text: str, separator: str) -> list[str]:
    """Split at ``separator`` outside quoted strings (RFC 9110 §5.6.4), escapes honoured."""
    parts, current, quoted, escaped = [], [], False, False
    for char in text:
        if escaped:
            escaped = False
        elif quoted and char == "\\":
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == separator and not quoted:
            parts.append("".join(current))
            current = []
            continue
        current.append(char)
    parts.append("".join(current))
    return [p for p in parts if p.strip()] if separator == "," else parts
