"""Streaming dumps: each format states what the mapping states, equals the page
exports, is written atomically, and needs the same small memory for any size."""

from __future__ import annotations

import copy
import gc
import gzip
import io
import tracemalloc

import pytest
import rdflib
from rdflib import Literal, URIRef
from rdflib.compare import isomorphic

import exports
from exports import ExportError, Payload
from exports.dump import DUMP_FORMATS, RDF_DUMP_FORMATS, write_dump, write_gzip_file
from exports.tabular import read_table, table
from tests.rdf_helpers import graph_of, parse_output

from .conftest import BASE

COOPERATION = {
    "id": "c00p1",
    "partners": [f"{BASE}/actors/k7f3q2", f"{BASE}/actors/p0c1x9",
                 "https://other.example/actors/x9"],
    "levels": ["normative", "professional"],
    "description": {"de": 'Zitat: "Gemeinsam"\\ und\r\nmehr"'},
    "since": "2019-05-01",
}


@pytest.fixture(autouse=True)
def _literals_as_written(monkeypatch):
    """rdflib's parsers would rewrite "Z" as "+00:00"; the mapping keeps its lexical forms."""
    monkeypatch.setattr(rdflib, "NORMALIZE_LITERALS", False)


class _Null:
    """An output that keeps nothing, so tracemalloc sees only the writer's memory."""

    def __init__(self):
        self.size = 0

    def write(self, data: bytes) -> None:
        self.size += len(data)


def dumped(format_name: str, pairs: list[tuple[str, dict]], kind: str | None = None) -> bytes:
    out = io.BytesIO()
    count = write_dump(format_name, lambda: iter(pairs), BASE, out, kind=kind)
    assert count == len(pairs)
    return out.getvalue()


@pytest.fixture
def mixed(actors, offer) -> list[tuple[str, dict]]:
    return [("actor", a) for a in actors] + [("offer", offer),
                                             ("cooperation", copy.deepcopy(COOPERATION))]


@pytest.mark.parametrize("format_name", RDF_DUMP_FORMATS)
def test_rdf_dump_states_exactly_what_the_mapping_states(format_name, mixed):
    graph = parse_output(format_name, dumped(format_name, mixed))
    assert len(graph) > 100
    assert isomorphic(graph, graph_of(mixed, BASE))


@pytest.mark.parametrize("format_name", RDF_DUMP_FORMATS)
def test_empty_dump_is_a_valid_empty_document(format_name):
    assert len(parse_output(format_name, dumped(format_name, []))) == 0


def test_ntriples_dump_has_the_lines_of_the_page_export(actors):
    body = dumped("ntriples", [("actor", a) for a in actors])
    page = exports.get("ntriples").render(Payload("actor", actors, BASE, single=False))
    assert sorted(body.splitlines()) == sorted(page.splitlines())


def test_jsonld_dump_is_byte_for_byte_the_collection_page(actors):
    body = dumped("jsonld", [("actor", a) for a in actors])
    assert body == exports.get("jsonld").render(Payload("actor", actors, BASE, single=False))


def test_csv_dump_is_byte_for_byte_the_csv_export_and_reads_back(actors):
    body = dumped("csv", [("actor", a) for a in actors], kind="actor")
    assert body == exports.get("csv").render(Payload("actor", actors, BASE, single=False))
    header, rows = read_table(body, "csv")
    names, cells = table("actor", actors)
    assert header == names
    assert rows == [dict(zip(names, row, strict=True)) for row in cells]
    assert "description@uk" in header  # a language beyond de/en gets its column


def test_csv_dump_of_nothing_is_the_header():
    body = dumped("csv", [], kind="offer")
    assert body == exports.get("csv").render(Payload("offer", [], BASE, single=False))


def test_turtle_dump_writes_the_prefixes_once_and_one_block_per_subject(mixed):
    text = dumped("turtle", mixed).decode("utf-8")
    assert text.count("@prefix schema:") == 1
    assert text.startswith("@prefix dct:")
    assert f"<{BASE}/actors/k7f3q2> a ea:Actor, schema:Organization ;" in text
    assert text.index(f"<{BASE}/actors/k7f3q2> a") < text.index(f"<{BASE}/actors/k7f3q2#address>")


@pytest.mark.parametrize("text", [
    'ends with a quote"', 'two ""', '"""triple"""', "back\\slash\\", "line\nbreak\r\n",
    "tab\tand unicode ✓ \u2028", "",
])
@pytest.mark.parametrize("format_name", ["ntriples", "turtle"])
def test_awkward_literals_round_trip(format_name, text, actor):
    actor["description"] = {"de": text or "x", "en": text + '"'}
    graph = parse_output(format_name, dumped(format_name, [("actor", actor)]))
    assert isomorphic(graph, graph_of([("actor", actor)], BASE))


def test_a_blank_node_is_refused(monkeypatch, actor):
    import exports.dump as dump

    monkeypatch.setattr(dump, "_triples", lambda *_a: {(rdflib.BNode(), URIRef("urn:p"),
                                                        Literal("x"))})
    for format_name in ("ntriples", "turtle"):
        with pytest.raises(ExportError, match="blank nodes"):
            dumped(format_name, [("actor", actor)])


def test_unknown_format_and_csv_without_kind_are_errors(actors):
    with pytest.raises(ExportError, match="no dump format"):
        dumped("rdfxml", [])
    with pytest.raises(ExportError, match="one kind"):
        dumped("csv", [("actor", a) for a in actors])
    with pytest.raises(ExportError, match="got a offer record"):
        dumped("csv", [("offer", {"id": "x", "name": {"de": "x"}})], kind="actor")


# --------------------------------------------------------------------------- files


@pytest.mark.parametrize("format_name", DUMP_FORMATS)
def test_gzip_file_is_deterministic_and_reports_its_size(tmp_path, format_name, actors):
    pairs = [("actor", a) for a in actors]
    first = write_gzip_file(tmp_path / "a.gz", format_name, lambda: iter(pairs), BASE,
                            kind="actor")
    second = write_gzip_file(tmp_path / "b.gz", format_name, lambda: iter(pairs), BASE,
                             kind="actor")
    data = (tmp_path / "a.gz").read_bytes()
    assert data == (tmp_path / "b.gz").read_bytes()  # no name, no timestamp in the header
    assert first.size == len(data) == second.size
    assert first.records == 2
    assert first.raw_bytes == len(gzip.decompress(data))
    assert first.inode == (tmp_path / "a.gz").stat().st_ino
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.gz", "b.gz"]


def test_a_failing_source_leaves_the_previous_file_and_no_temporary_file(tmp_path, actors):
    path = tmp_path / "actors.nt.gz"
    write_gzip_file(path, "ntriples", lambda: iter([("actor", actors[0])]), BASE)
    before = path.read_bytes()

    def broken():
        yield "actor", actors[1]
        raise RuntimeError("database went away")

    with pytest.raises(RuntimeError):
        write_gzip_file(path, "ntriples", broken, BASE)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["actors.nt.gz"]


# --------------------------------------------------------------------------- memory


def _synthetic(actor: dict, count: int):
    def source():
        for n in range(count):
            record = copy.deepcopy(actor)
            record["id"] = f"a{n:07d}"
            record["name"] = {"de": f"Verein {n}", "en": f"Association {n}"}
            yield "actor", record
    return source


def _peak(format_name: str, source) -> tuple[int, int]:
    gc.collect()
    out = _Null()
    tracemalloc.start()
    try:
        write_dump(format_name, source, BASE, out, kind="actor")
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak, out.size


@pytest.mark.parametrize("format_name", DUMP_FORMATS)
def test_memory_does_not_grow_with_the_number_of_records(format_name, actor):
    write_dump(format_name, _synthetic(actor, 20), BASE, _Null(), kind="actor")  # warm caches
    small_peak, _ = _peak(format_name, _synthetic(actor, 200))
    peak, size = _peak(format_name, _synthetic(actor, 3000))
    # A behaviour, not a timing: ten times the records, (almost) the same memory —
    # the output buffer and one record — and far below the dump itself.
    assert size > 3_000_000
    assert peak < size / 10
    assert peak < 1.5 * small_peak + 64 * 1024
