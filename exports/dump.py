"""Whole-dataset dumps: N-Triples, Turtle, JSON-LD and CSV written as a stream.

A dump can hold every entity of a node, so nothing here keeps more than one
record (and one output buffer) in memory: records come from a *source*, a
callable returning a fresh iterable of ``(kind, record)`` pairs (the service
reads them from the database in keyset batches), and every writer emits one
entity at a time. `write_gzip_file` compresses the stream into a temporary file
and renames it over the dump with `os.replace`, so a reader sees either the
previous complete file or the new complete one, never half of one.

Each format states exactly what the per-request exports state:

- N-Triples: the lines of `exports.ntriples` (W3C RDF 1.1 N-Triples), sorted
  per entity instead of over the whole file.
- Turtle: the prefixes once, then one subject block per resource (W3C RDF 1.1
  Turtle §2.3). rdflib's serializer needs the whole graph in memory, so blocks
  are written here; the mapping produces no blank nodes, which keeps that simple.
- JSON-LD: byte for byte what `exports.jsonld` writes for a collection page,
  ``{"@context": CONTEXT_URL, "@graph": [...]}``, one node object at a time.
- CSV: byte for byte `exports.csv` (the `exports.tabular` layout). Its language
  columns depend on every record, so the source is read twice.

N-Triples and Turtle terms are written by `exports.triples`, as in feed pages.
This module never imports Flask or the service.
"""

from __future__ import annotations

import csv
import gzip
import io
import os
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import orjson
from rdflib import BNode
from rdflib.namespace import RDF

from vocab.mapping import CONTEXT_URL, entity_uri, to_graph, to_jsonld

from .errors import ExportError
from .graph import PREFIXES
from .tabular import columns, record_to_row, text_languages
from .triples import Names, nt_term, turtle_term

__all__ = [
    "COMPRESS_MEDIA_TYPE",
    "DUMP_FORMATS",
    "RDF_DUMP_FORMATS",
    "DumpFile",
    "Source",
    "write_dump",
    "write_gzip_file",
]

Source = Callable[[], Iterable[tuple[str, dict]]]

# Registry names of the formats a dump can have; CSV only for one kind at a time.
RDF_DUMP_FORMATS = ("ntriples", "turtle", "jsonld")
DUMP_FORMATS = (*RDF_DUMP_FORMATS, "csv")
# RFC 6713: the media type of a gzip file.
COMPRESS_MEDIA_TYPE = "application/gzip"

_FLUSH_AT = 1 << 16
_PREFIXES = {prefix: str(namespace) for prefix, namespace in PREFIXES.items()}


@dataclass(frozen=True)
class DumpFile:
    """What `write_gzip_file` wrote: entity count, sizes, and the file's inode (which
    lets readers check that the metadata they hold belongs to the file they opened)."""

    records: int
    raw_bytes: int
    size: int
    inode: int


class _Sink:
    """Collects small writes into ~64 KiB chunks (gzip is slow on tiny writes) and
    counts the uncompressed bytes."""

    def __init__(self, out):
        self.out, self.parts, self.pending, self.total = out, [], 0, 0

    def write(self, data: bytes) -> None:
        self.parts.append(data)
        self.pending += len(data)
        self.total += len(data)
        if self.pending >= _FLUSH_AT:
            self.flush()

    def flush(self) -> None:
        if self.parts:
            self.out.write(b"".join(self.parts))
            self.parts, self.pending = [], 0


def write_dump(format_name: str, source: Source, base: str, out, *,
               kind: str | None = None) -> int:
    """Write one dump to the binary stream ``out``; returns the number of entities.

    ``kind`` is required for CSV (one table per kind) and ignored otherwise.
    """
    writer = _WRITERS.get(format_name)
    if writer is None:
        raise ExportError(f"no dump format {format_name!r}; formats: {', '.join(DUMP_FORMATS)}")
    if format_name == "csv" and kind is None:
        raise ExportError("a CSV dump holds one kind of entity: give kind")
    sink = out if isinstance(out, _Sink) else _Sink(out)
    count = writer(source, base, sink.write, kind)
    sink.flush()
    return count


def write_gzip_file(path: str | os.PathLike, format_name: str, source: Source, base: str, *,
                    kind: str | None = None, compresslevel: int = 6) -> DumpFile:
    """Write a gzip-compressed dump to ``path`` atomically (temporary file + os.replace).

    The gzip header carries no file name and mtime 0 (RFC 1952 §2.3.1), so the
    same data give the same bytes. On any error the previous file stays as it was.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{threading.get_ident()}.tmp")
    try:
        with open(tmp, "wb") as raw:
            with gzip.GzipFile(filename="", mode="wb", fileobj=raw,
                               compresslevel=compresslevel, mtime=0) as gz:
                sink = _Sink(gz)
                count = write_dump(format_name, source, base, sink, kind=kind)
            raw.flush()
            os.fsync(raw.fileno())
            stat = os.fstat(raw.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return DumpFile(records=count, raw_bytes=sink.total, size=stat.st_size, inode=stat.st_ino)


# --------------------------------------------------------------------------- writers


def _triples(kind: str, record: dict, base: str) -> set:
    """The statements of one record, exactly those of `vocab.mapping.to_graph`.

    to_graph only ever calls ``graph.add``, so a plain set collects them: six times
    faster than an rdflib Graph per entity, and no Graph reference cycles waiting
    for the garbage collector (tests compare the result with a real Graph).
    """
    return to_graph(kind, record, base, graph=set())


def _statements(kind: str, record: dict, base: str) -> set:
    """The statements of one record, refusing blank nodes: the mapping makes none, and
    the Turtle blocks and sorted N-Triples lines below rely on that."""
    triples = _triples(kind, record, base)
    for triple in triples:
        for term in triple:
            if isinstance(term, BNode):
                raise ExportError(f"a dump cannot write {type(term).__name__} {term!r}: the "
                                  "mapping makes no blank nodes")
    return triples


def _ntriples(source: Source, base: str, write, _kind) -> int:
    count = 0
    for kind, record in source():
        lines = sorted(f"{nt_term(s)} {nt_term(p)} {nt_term(o)} .\n"
                       for s, p, o in _statements(kind, record, base))
        write("".join(lines).encode("utf-8"))
        count += 1
    return count


def _turtle_header() -> bytes:
    return "".join(f"@prefix {prefix}: <{ns}> .\n"
                   for prefix, ns in sorted(_PREFIXES.items())).encode("utf-8") + b"\n"


def _turtle(source: Source, base: str, write, _kind) -> int:
    write(_turtle_header())
    count = 0
    for kind, record in source():
        # One Names per record: it remembers every IRI, and memory must not grow with the dump.
        names = Names(_PREFIXES)
        subjects: dict = {}
        for s, p, o in _statements(kind, record, base):
            subjects.setdefault(s, {}).setdefault(p, []).append(o)
        own = str(entity_uri(base, kind, record["id"]))
        # The entity first, then its fragments, then a cooperation's shortcut subjects.
        order = sorted(subjects, key=lambda s: (
            0 if str(s) == own else 1 if str(s).startswith(own + "#") else 2, str(s)))
        blocks = []
        for subject in order:
            predicates = subjects[subject]
            lines = []
            for predicate in sorted(predicates, key=lambda p: (p != RDF.type, str(p))):
                verb = "a" if predicate == RDF.type else turtle_term(predicate, names)
                objects = sorted(turtle_term(o, names) for o in predicates[predicate])
                lines.append(f"{verb} {', '.join(objects)}")
            blocks.append(f"{turtle_term(subject, names)} " + " ;\n    ".join(lines) + " .\n\n")
        write("".join(blocks).encode("utf-8"))
        count += 1
    return count


def _jsonld(source: Source, base: str, write, _kind) -> int:
    # Same bytes as exports.jsonld for a collection page: orjson, no spaces.
    write(b'{"@context":' + orjson.dumps(CONTEXT_URL) + b',"@graph":[')
    count = 0
    for kind, record in source():
        doc = to_jsonld(kind, record, base)
        del doc["@context"]
        write((b"," if count else b"") + orjson.dumps(doc))
        count += 1
    write(b"]}")
    return count


def _csv(source: Source, _base: str, write, kind: str) -> int:
    # First pass: the languages of the text columns (exports.tabular.table does the
    # same over a list); second pass: the rows.
    languages = text_languages(kind, (record for _kind, record in source()))
    names = columns(kind, languages)
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\r\n")

    def emit(row: list[str]) -> None:
        writer.writerow(row)
        write(buffer.getvalue().encode("utf-8"))
        buffer.seek(0)
        buffer.truncate()

    emit(names)
    count = 0
    for record_kind, record in source():
        if record_kind != kind:
            raise ExportError(f"a CSV dump of {kind} records got a {record_kind} record")
        emit(record_to_row(kind, record, names))
        count += 1
    return count


_WRITERS = {"ntriples": _ntriples, "turtle": _turtle, "jsonld": _jsonld, "csv": _csv}
