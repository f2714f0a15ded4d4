"""Parse untrusted RDF from other servers into pyoxigraph triples, within caps.

Why a module of its own: every parser we have trusts its input (PITFALLS, "Parsers
trust their input"). rdflib's JSON-LD parser fetches any ``@context`` URL; 650 bytes
of nested XML entities abort the whole process inside pyoxigraph; a JSON document
nested 5,000 levels deep crashes pyoxigraph's JSON-LD parser with a segmentation
fault (measured here). So before a parser sees a byte:

- JSON-LD is decoded with Python's ``json`` after its size and number of JSON values
  are capped (pyoxigraph's JSON-LD parser buffers hundreds of bytes per value before it
  yields a triple: the triple caps alone let 12 KiB of gzip cost 4 GB), its nesting
  depth is capped, every ``@context`` goes through `vocab.context.inline_contexts`
  (our bundled context replaces its URL, any other remote context, scoped context or
  ``@import`` is refused, nothing is fetched), and pyoxigraph parses the re-serialised document
  (so duplicate keys cannot smuggle a second ``@context`` past the check).
  pyoxigraph has no document loader here, so it would refuse remote contexts too.
- RDF/XML is refused unless the caller enables it; even then any markup
  declaration (``<!DOCTYPE``, ``<!ENTITY``, ...) and any encoding other than UTF-8
  is refused before parsing.
- N-Triples, N-Quads and Turtle go straight to pyoxigraph's streaming parsers
  (Rust, no network, no recursion: 10^6 nested blank nodes parsed fine).

The result is a list of `pyoxigraph.Triple` (or an iterator, `iter_rdf`): the index
store is pyoxigraph, so the loader adds them as quads in its own named graphs
without conversion; `to_rdflib` converts an entity only for SHACL. Graph names
in N-Quads or JSON-LD are dropped: the index assigns graphs itself (issue 5 item 6)
and never lets a source choose one. Blank nodes are renamed to fresh ids so two
pages never share one by accident.

Caps (`ParseLimits`) are checked per triple while the parser streams, so parsing
stops at the first triple over a cap. Every failure is a `ParseError` whose
``reason`` is a short slug; caps name the `ParseLimits` field in the message.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO, Any
from urllib.parse import urlsplit

import pyoxigraph as ox
from rdflib import BNode, Graph, Literal, URIRef

from vocab.context import inline_contexts
from vocab.errors import RemoteContextRefused

from .errors import ParseError

__all__ = [
    "FORMATS",
    "Format",
    "ParseLimits",
    "detect_format",
    "iter_rdf",
    "parse_rdf",
    "quiet_ill_typed",
    "to_rdflib",
]


@dataclass(frozen=True)
class ParseLimits:
    """What one untrusted document may cost. Defaults fit a feed page of ~1,000 entities.

    The per-entity caps are enforced by `harvesters.checks` when it groups a page
    (a violation there quarantines the entity); the others stop parsing.
    """

    max_triples: int = 200_000  # per document (feed page, dump part)
    max_blank_nodes: int = 10_000  # distinct blank nodes per document
    max_triples_per_entity: int = 2_000
    max_blank_nodes_per_entity: int = 100
    max_literal_length: int = 100_000  # characters; shapes allow 10,000 for descriptions
    max_iri_length: int = 8_192
    max_json_depth: int = 64  # our documents nest ~6 levels; pyoxigraph crashed at 5,000
    # JSON-LD and RDF/XML are read whole and checked before parsing. pyoxigraph's JSON-LD
    # parser buffers 300-500 bytes per JSON value before its first triple comes out
    # (measured: one 24 MiB @list took 5.7 GB), so the caps above come too late for it.
    max_document_bytes: int = 64 * 2**20  # read-whole formats; big dumps: N-Triples
    max_json_values: int = 250_000  # our pages have 2-4 JSON values per triple
    # pyoxigraph's Turtle parser keeps ~520 bytes per open "[" or "(" (16 MiB of nested
    # blank nodes took 574 MB before the first triple): at most this many in a document
    # in memory (a feed page; streamed dumps are not read twice), so at most ~10 MB.
    max_turtle_brackets: int = 20_000


@dataclass(frozen=True)
class Format:
    """One accepted syntax: its names, media types and file extensions (one lookup)."""

    name: str
    rdf_format: ox.RdfFormat
    media_types: tuple[str, ...]
    extensions: tuple[str, ...]


FORMATS: dict[str, Format] = {
    f.name: f
    for f in (
        Format("n-triples", ox.RdfFormat.N_TRIPLES, ("application/n-triples",), (".nt",)),
        Format("n-quads", ox.RdfFormat.N_QUADS, ("application/n-quads",), (".nq",)),
        Format("turtle", ox.RdfFormat.TURTLE, ("text/turtle", "application/x-turtle"),
               (".ttl",)),
        # JSON-LD 1.1 §9.1: plain application/json is read as JSON-LD too; servers
        # often label .jsonld files that way.
        Format("json-ld", ox.RdfFormat.JSON_LD, ("application/ld+json", "application/json"),
               (".jsonld", ".json")),
        Format("rdf-xml", ox.RdfFormat.RDF_XML, ("application/rdf+xml",), (".rdf",)),
    )
}
_BY_MEDIA_TYPE = {m: f for f in FORMATS.values() for m in f.media_types}
_BY_EXTENSION = {e: f for f in FORMATS.values() for e in f.extensions}
# Labels that say nothing about the syntax: fall back to the file extension.
_GENERIC = {"", "application/octet-stream", "binary/octet-stream", "text/plain"}
_CHARSETS = {"utf-8", "utf8", "us-ascii"}  # RDF 1.1 N-Triples/Turtle and RFC 8259 JSON: UTF-8

DEFAULT_LIMITS = ParseLimits()


def detect_format(media_type: str | None, name: str | None = None) -> Format:
    """The format named by a Content-Type value (parameters allowed) or, when that is
    missing or generic, by the extension of ``name`` (a URL or file name)."""
    essence, _, params = (media_type or "").partition(";")
    essence = essence.strip().lower()
    for param in params.split(";"):
        key, _, value = param.partition("=")
        if key.strip().lower() == "charset" and value.strip().strip('"').lower() not in _CHARSETS:
            raise ParseError(f"unsupported charset in {media_type!r}", reason="unsupported-charset")
    if essence not in _GENERIC:
        if essence in _BY_MEDIA_TYPE:
            return _BY_MEDIA_TYPE[essence]
        raise ParseError(f"not an accepted RDF media type: {essence}", reason="unknown-format")
    path = urlsplit(name).path if name and "://" in name else (name or "")
    dot = path.rfind(".")
    if dot > path.rfind("/") and path[dot:].lower() in _BY_EXTENSION:
        return _BY_EXTENSION[path[dot:].lower()]
    raise ParseError(f"cannot tell the RDF format of {name or 'the document'} "
                     f"(Content-Type {media_type!r})", reason="unknown-format")


def parse_rdf(data: bytes, media_type: str | None, *, base_iri: str | None,
              limits: ParseLimits = DEFAULT_LIMITS, allow_rdfxml: bool = False) -> list[ox.Triple]:
    """All triples of one untrusted document (see `iter_rdf`)."""
    return list(iter_rdf(data, media_type, base_iri=base_iri, limits=limits,
                         allow_rdfxml=allow_rdfxml))


def iter_rdf(data: bytes | IO[bytes], media_type: str | None, *, base_iri: str | None,
             limits: ParseLimits = DEFAULT_LIMITS,
             allow_rdfxml: bool = False) -> Iterator[ox.Triple]:
    """Stream the triples of one untrusted document, raising `ParseError` on anything bad.

    ``media_type`` is the Content-Type as received (or None); ``base_iri`` is the
    document's URL (relative IRIs resolve against it, and its extension is the
    fallback for format detection). Refusals (format, remote context, DTD, JSON
    depth) happen in this call; syntax errors and caps surface while iterating.
    N-Triples, N-Quads and Turtle stream from a binary file object without reading
    it whole; JSON-LD and RDF/XML are read whole because they are checked first.
    """
    try:
        fmt = detect_format(media_type, base_iri)
        source: bytes | IO[bytes] = data
        if fmt.name == "json-ld":
            source = _checked_jsonld(_read_all(data, fmt.name, limits), limits)
        elif fmt.name == "rdf-xml":
            if not allow_rdfxml:
                raise ParseError("RDF/XML from other servers is refused (its entity expansion "
                                 "can exhaust the harvester's memory)", reason="rdfxml-refused")
            source = _checked_rdfxml(_read_all(data, fmt.name, limits))
        elif fmt.name == "turtle" and isinstance(data, bytes):
            _check_turtle_nesting(data, limits)  # a stream (a dump) is not read twice
    except ParseError as exc:  # say which document: a run report names one error per source
        if not base_iri or base_iri in str(exc):
            raise
        raise ParseError(f"{base_iri}: {exc}", reason=exc.reason) from exc
    label = f"{base_iri}: {fmt.name}" if base_iri else fmt.name
    try:
        quads = ox.parse(source, fmt.rdf_format, base_iri=base_iri, rename_blank_nodes=True)
    except (SyntaxError, ValueError, OSError) as exc:  # e.g. an invalid base IRI
        raise ParseError(f"{label}: {exc}", reason="syntax") from exc
    return _within_limits(quads, label, limits)


def _read_all(data: bytes | IO[bytes], fmt: str, limits: ParseLimits) -> bytes:
    cap = limits.max_document_bytes
    try:
        whole = data if isinstance(data, bytes) else data.read(cap + 1)
    except OSError as exc:
        raise ParseError(f"cannot read the document: {exc}", reason="syntax") from exc
    if len(whole) > cap:
        raise ParseError(f"{fmt}: more than {cap} bytes to read whole "
                         "(ParseLimits.max_document_bytes)", reason="document-too-large")
    return whole


# --------------------------------------------------------------------------- JSON-LD


def _checked_jsonld(data: bytes, limits: ParseLimits) -> bytes:
    """The document with our bundled context inlined, re-serialised for pyoxigraph."""
    # RFC 8259 §2: every value but the top one opens an array or object or follows a comma,
    # so this count bounds the values before json.loads or pyoxigraph builds any of them.
    values = data.count(b",") + data.count(b"[") + data.count(b"{") + 1
    if values > limits.max_json_values:
        raise ParseError(f"json-ld: more than {limits.max_json_values} JSON values (counting "
                         "commas and brackets; ParseLimits.max_json_values)",
                         reason="json-too-large")
    try:
        # RFC 8259 §8.1: JSON exchanged between systems is UTF-8 (a BOM is tolerated).
        document = json.loads(data.decode("utf-8").removeprefix("\ufeff"),
                              parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ParseError(f"json-ld: {exc}", reason="syntax") from exc
    if _too_deep(document, limits.max_json_depth):
        raise ParseError(f"json-ld: nested deeper than {limits.max_json_depth} levels "
                         "(ParseLimits.max_json_depth)", reason="json-too-deep")
    try:
        document = inline_contexts(document)
    except RemoteContextRefused as exc:
        raise ParseError(f"json-ld: {exc}; contexts are never fetched",
                         reason="remote-context") from exc
    # Re-serialised from the checked objects: what pyoxigraph parses is exactly
    # what inline_contexts saw (json.loads keeps the last of duplicate keys).
    return json.dumps(document, ensure_ascii=False, allow_nan=False).encode("utf-8")


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON (RFC 8259 §6)")


def _too_deep(document: Any, max_depth: int) -> bool:
    """True when arrays/objects nest deeper than ``max_depth`` (checked without recursion)."""
    stack = [(document, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            children: Iterable[Any] = value.values()
        elif isinstance(value, list):
            children = value
        else:
            continue
        if depth > max_depth:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


# --------------------------------------------------------------------------- Turtle


def _check_turtle_nesting(data: bytes, limits: ParseLimits) -> None:
    """Refuse Turtle with more "[" and "(" than ``max_turtle_brackets``.

    pyoxigraph's Turtle parser keeps about 520 bytes per open bracket until the innermost
    closes (1M nested blank nodes in 16 MiB: 574 MB before the first triple), so the
    blank-node cap comes too late for nesting. Counting every bracket (also those in
    strings, IRIs and comments: an over-count, never an under-count) bounds the nesting
    in one pass at C speed. Each "[" and each non-empty "(" makes a blank node, so a page
    within ``max_blank_nodes`` has few more brackets than that.
    """
    found = data.count(b"[") + data.count(b"(")
    if found > limits.max_turtle_brackets:
        raise ParseError(f"turtle: more than {limits.max_turtle_brackets} '[' and '(' "
                         "(ParseLimits.max_turtle_brackets)", reason="turtle-too-nested")


# --------------------------------------------------------------------------- RDF/XML

# XML 1.0 §2.8/§4.2: DTDs and entity declarations are markup declarations "<!NAME".
# Only comments "<!--" and CDATA sections "<![CDATA[" may start with "<!" otherwise;
# anything else is refused, whatever the case or position.
_DECLARATION = re.compile(r"<!(?!--|\[CDATA\[)\s*([A-Za-z]*)")
_XML_ENCODING = re.compile(r"""^\s*<\?xml[^>]*?\bencoding\s*=\s*["']([^"']*)["']""")


def _checked_rdfxml(data: bytes) -> bytes:
    """UTF-8 RDF/XML without any DTD, or ParseError — before any parser runs."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")) or b"\x00" in data:
        # UTF-16/32 would hide "<!DOCTYPE" from a byte-level search.
        raise ParseError("rdf-xml: only UTF-8 is accepted", reason="rdfxml-encoding")
    try:
        text = data.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as exc:
        raise ParseError(f"rdf-xml: not UTF-8: {exc}", reason="rdfxml-encoding") from exc
    declared = _XML_ENCODING.match(text)
    if declared and declared.group(1).lower() not in _CHARSETS:
        raise ParseError(f"rdf-xml: declared encoding {declared.group(1)!r} is refused",
                         reason="rdfxml-encoding")
    found = _DECLARATION.search(text)
    if found:
        raise ParseError(f"rdf-xml: markup declaration <!{found.group(1)} refused "
                         "(DTDs and entities are never expanded)", reason="dtd-refused")
    return text.encode("utf-8")


# --------------------------------------------------------------------------- caps


def _within_limits(quads: Iterable[ox.Quad], fmt: str,
                   limits: ParseLimits) -> Iterator[ox.Triple]:
    """Yield triples while every cap holds; translate parser errors to ParseError."""
    blank_nodes: set[str] = set()
    count = 0
    max_iri, max_literal = limits.max_iri_length, limits.max_literal_length
    named, literal = ox.NamedNode, ox.Literal

    def check(term) -> None:  # any term in subject or object position
        kind = type(term)
        if kind is ox.NamedNode:
            if len(term.value) > max_iri:
                raise _iri_too_long(fmt, limits)
        elif kind is ox.Literal:
            if len(term.value) > max_literal:
                raise ParseError(f"{fmt}: a literal longer than {max_literal} "
                                 "characters (ParseLimits.max_literal_length)",
                                 reason="literal-too-long")
        elif kind is ox.BlankNode:
            blank_nodes.add(term.value)
            if len(blank_nodes) > limits.max_blank_nodes:
                raise ParseError(f"{fmt}: more than {limits.max_blank_nodes} blank "
                                 "nodes (ParseLimits.max_blank_nodes)",
                                 reason="too-many-blank-nodes")
        else:  # RDF 1.2 triple terms: nothing in our vocabulary uses them
            raise ParseError(f"{fmt}: triple terms are not accepted",
                             reason="triple-term-refused")

    try:
        for quad in quads:
            count += 1
            if count > limits.max_triples:
                raise ParseError(f"{fmt}: more than {limits.max_triples} triples "
                                 "(ParseLimits.max_triples)", reason="too-many-triples")
            triple = quad.triple  # cheaper than building a Triple from the quad's terms
            subject, predicate, obj = triple  # one call for the three terms
            if len(predicate.value) > max_iri:
                raise _iri_too_long(fmt, limits)
            # The common case inline (an IRI subject, an IRI or literal object); `check`
            # applies the same caps to every other term.
            if type(subject) is not named or len(subject.value) > max_iri:
                check(subject)
            kind = type(obj)
            if not ((kind is named and len(obj.value) <= max_iri)
                    or (kind is literal and len(obj.value) <= max_literal)):
                check(obj)
            yield triple
    except ParseError:
        raise
    except RecursionError as exc:
        raise ParseError(f"{fmt}: nested too deeply", reason="syntax") from exc
    except Exception as exc:  # vendor errors (SyntaxError, ValueError, OSError) end here
        raise ParseError(f"{fmt}: {exc}", reason="syntax") from exc


def _iri_too_long(fmt: str, limits: ParseLimits) -> ParseError:
    return ParseError(f"{fmt}: an IRI longer than {limits.max_iri_length} characters "
                      "(ParseLimits.max_iri_length)", reason="iri-too-long")


# --------------------------------------------------------------------------- rdflib


_XSD_STRING = "http://www.w3.org/2001/XMLSchema#string"
_converting = threading.local()


class _QuietIllTyped(logging.Filter):
    """rdflib logs a traceback for every ill-typed literal it builds (and pyshacl builds
    them again); a hostile page would flood the log. SHACL reports them as violations
    (sh:datatype), so this thread mutes those records while it converts and validates."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (getattr(_converting, "active", False)
                    and record.getMessage().startswith("Failed to convert Literal"))


logging.getLogger("rdflib.term").addFilter(_QuietIllTyped())


@contextmanager
def quiet_ill_typed() -> Iterator[None]:
    """Mute rdflib's ill-typed-literal log records in this thread (see `_QuietIllTyped`)."""
    outer = getattr(_converting, "active", False)
    _converting.active = True
    try:
        yield
    finally:
        _converting.active = outer


def to_rdflib(triples: Iterable[ox.Triple], graph: Graph | None = None) -> Graph:
    """pyoxigraph triples as an rdflib graph (lexical forms kept as they are)."""
    g = graph if graph is not None else Graph()
    terms: dict = {}

    def convert(term):
        done = terms.get(term)
        if done is None:
            kind = type(term)
            if kind is ox.NamedNode:
                done = URIRef(term.value)
            elif kind is ox.BlankNode:
                done = BNode(term.value)
            elif term.language:
                done = Literal(term.value, lang=term.language)
            elif term.datatype.value == _XSD_STRING:
                done = Literal(term.value)  # RDF 1.1: the same literal as a plain one
            else:
                done = Literal(term.value, datatype=URIRef(term.datatype.value), normalize=False)
            terms[term] = done
        return done

    with quiet_ill_typed():
        for t in triples:
            g.add((convert(t.subject), convert(t.predicate), convert(t.object)))
    return g
