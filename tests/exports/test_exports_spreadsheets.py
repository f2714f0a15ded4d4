"""CSV and XLSX exports: they read back into the same records, and XLSX holds no formulas."""

from __future__ import annotations

import io
import zipfile

import openpyxl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exports import Payload, content_type, get
from exports.tabular import read_table, row_to_data
from vocab.fields import ENTITIES
from vocab.schemas import load_record

from .strategies import BASE, expected, records


def reimported(kind: str, body: bytes, name: str) -> list[dict]:
    header, rows = read_table(body, name)
    return [load_record(kind, row_to_data(kind, row)) for row in rows]


@pytest.mark.parametrize("name", ["csv", "xlsx"])
def test_export_reads_back_into_the_same_records(name, actors, offer):
    fmt = get(name)
    body = fmt.render(Payload("actor", actors, BASE, single=False, page_url=f"{BASE}/actors"))
    assert reimported("actor", body, f"actors.{name}") == [expected("actor", r) for r in actors]
    header, rows = read_table(body, name)
    assert [row["id"] for row in rows] == [r["id"] for r in actors]
    assert "description@uk" in header  # every language of the records has its column

    body = fmt.render(Payload("offer", [offer], BASE, single=True))
    assert reimported("offer", body, name) == [expected("offer", offer)]


@pytest.mark.parametrize("name", ["csv", "xlsx"])
@pytest.mark.parametrize("kind", sorted(ENTITIES))
@settings(max_examples=25, database=None, deadline=None)
@given(data=st.data())
def test_any_records_survive_the_file(name, kind, data):
    batch = data.draw(st.lists(records(kind), min_size=1, max_size=3))
    body = get(name).render(Payload(kind, batch, BASE, single=False))
    assert reimported(kind, body, name) == [expected(kind, r) for r in batch]


@pytest.mark.parametrize("name", ["csv", "xlsx"])
def test_empty_export_is_a_header(name):
    header, rows = read_table(get(name).render(Payload("event", [], BASE, single=False)), name)
    assert header[:3] == ["id", "name@de", "name@en"] and rows == []


def test_csv_is_plain_rfc4180(actor):
    body = get("csv").render(Payload("actor", [actor], BASE, single=True))
    assert not body.startswith(b"\xef\xbb\xbf")
    assert body.startswith(b"id,name@de,name@en,") and body.endswith(b"\r\n")
    assert content_type(get("csv")) == "text/csv; charset=utf-8"


DANGEROUS = ["=HYPERLINK(\"https://evil.example\",\"klick\")", "+49 351 1", "-", "@SUM(A1)"]


def test_csv_keeps_formula_like_cells_verbatim(actor):
    actor["alternateName"] = DANGEROUS
    body = get("csv").render(Payload("actor", [actor], BASE, single=True))
    assert reimported("actor", body, "csv")[0]["alternateName"] == sorted(DANGEROUS)


def test_xlsx_stores_every_cell_as_text(actor):
    actor["alternateName"] = DANGEROUS[:1]
    actor["name"]["de"] = "=1+1"
    body = get("xlsx").render(Payload("actor", [actor], BASE, single=True))
    with zipfile.ZipFile(io.BytesIO(body)) as archive:
        sheet_xml = archive.read("xl/worksheets/sheet1.xml").decode()
    assert "<f>" not in sheet_xml and "<v>" not in sheet_xml  # no formulas, no numbers

    workbook = openpyxl.load_workbook(io.BytesIO(body))
    sheet = workbook["actors"]
    cells = [cell for row in sheet.iter_rows() for cell in row if cell.value is not None]
    assert cells and all(cell.data_type == "s" for cell in cells)
    assert sheet["B2"].value == "=1+1"
    assert sheet["A1"].font.b and sheet.freeze_panes == "B2"
    assert reimported("actor", body, "xlsx")[0]["name"]["de"] == "=1+1"


def test_xlsx_replaces_characters_xml_cannot_hold():
    record = {"id": "c1", "name": {"de": "Tafel\x0bDresden"}, "actorTypes": ["verein"]}
    body = get("xlsx").render(Payload("actor", [record], BASE, single=True))
    assert read_table(body, "xlsx")[1][0]["name@de"] == "Tafel\ufffdDresden"


def test_xlsx_format_is_binary():
    fmt = get("xlsx")
    assert not fmt.text and content_type(fmt) == fmt.media_types[0]
