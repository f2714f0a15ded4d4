"""Reading uploaded spreadsheets: CSV dialects, XLSX cell types, and clear errors."""

from __future__ import annotations

import io
from datetime import date, datetime, time

import openpyxl
import pytest

from exports.tabular import XLSX_MEDIA_TYPE, TabularError, read_table


def xlsx(rows: list[list]) -> bytes:
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    for row in rows:
        sheet.append(row)
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()


# --------------------------------------------------------------------------- CSV


def test_csv_with_bom_quotes_and_newlines():
    data = '\ufeffid,name@de,description@de\r\nk1,"Tafel, Dresden","Zeile 1\nZeile ""2"""\r\n'
    header, rows = read_table(data.encode("utf-8"), "actors.csv")
    assert header == ["id", "name@de", "description@de"]
    assert rows == [{"id": "k1", "name@de": "Tafel, Dresden",
                     "description@de": 'Zeile 1\nZeile "2"'}]


def test_csv_semicolon_delimiter_is_sniffed():
    data = "id;name@de;geo.latitude\nk1;Tafel, Dresden;51,05\n"
    header, rows = read_table(data.encode(), "text/csv; charset=utf-8")
    assert header == ["id", "name@de", "geo.latitude"]
    assert rows[0]["name@de"] == "Tafel, Dresden" and rows[0]["geo.latitude"] == "51,05"


def test_csv_blank_lines_trailing_empty_columns_and_header_spaces():
    data = " id , name@de ,,\n\nk1,Tafel,,\n,,,\nk2,Laden,\n"
    header, rows = read_table(data.encode(), "CSV")
    assert header == ["id", "name@de"]
    assert rows == [{"id": "k1", "name@de": "Tafel"}, {"id": "k2", "name@de": "Laden"}]


def test_csv_header_only():
    assert read_table(b"id,name@de\r\n", "a.csv") == (["id", "name@de"], [])


@pytest.mark.parametrize(("data", "message", "row", "column"), [
    ("id,name@de\nk1,Café\n".encode("latin-1"), "not UTF-8", None, None),
    ("id,name\n".encode("utf-16"), "not UTF-8", None, None),
    (b"", "empty", None, None),
    (b"\xef\xbb\xbf \r\n\r\n", "empty", None, None),
    (b",,\nk1,Tafel,x\n", "first row must hold the column names", 1, None),
    (b"id,,name@de\nk1,,Tafel\n", "column 2 has no name", 1, None),
    (b"id,name@de,id\nk1,Tafel,k2\n", "duplicate column", 1, "id"),
    (b"id,name@de\nk1,Tafel\nk2\n", "only 1 cells", 3, None),
    (b"id,name@de\nk1,Tafel,Dresden\n", "3 cells", 2, None),
    (b'id,name@de\nk1,"Tafel"x\n', "not valid CSV", 2, None),
])
def test_csv_errors(data, message, row, column):
    with pytest.raises(TabularError, match=message) as info:
        read_table(data, "actors.csv")
    assert (info.value.row, info.value.column) == (row, column)


@pytest.mark.parametrize("name", ["actors.xls", "actors.ods", "application/json", "txt", ""])
def test_unknown_file_kinds(name):
    with pytest.raises(TabularError, match="csv or .xlsx"):
        read_table(b"id\n", name)


# --------------------------------------------------------------------------- XLSX


def test_xlsx_cells_become_strings():
    data = xlsx([
        ["id", "foundingDate", "modified", "geo.latitude", "registerNumber", "flag", "opens"],
        ["k1", date(2015, 9, 1), datetime(2026, 1, 20, 8, 30), 51.05, 4711, True, time(9, 30)],
        ["k2", datetime(2015, 9, 1), None, 13, "VR 1", False, None],
    ])
    header, rows = read_table(data, "Akteure.XLSX")
    assert header[0] == "id"
    assert rows == [
        {"id": "k1", "foundingDate": "2015-09-01", "modified": "2026-01-20T08:30:00",
         "geo.latitude": "51.05", "registerNumber": "4711", "flag": "true", "opens": "09:30"},
        {"id": "k2", "foundingDate": "2015-09-01", "modified": "", "geo.latitude": "13",
         "registerNumber": "VR 1", "flag": "false", "opens": ""},
    ]


def test_xlsx_reads_the_first_sheet_values_not_formulas():
    workbook = openpyxl.Workbook()
    workbook.active.append(["id", "name@de"])
    workbook.active.append(["k1", "=1+1"])
    workbook.create_sheet("other").append(["ignored"])
    out = io.BytesIO()
    workbook.save(out)
    # openpyxl stores no computed value: a formula cell without one reads as empty
    header, rows = read_table(out.getvalue(), XLSX_MEDIA_TYPE)
    assert header == ["id", "name@de"] and rows == [{"id": "k1", "name@de": ""}]


def test_xlsx_short_rows_are_padded_but_long_rows_are_ragged():
    header, rows = read_table(xlsx([["id", "name@de", "url"], ["k1", "Tafel"]]), "xlsx")
    assert rows == [{"id": "k1", "name@de": "Tafel", "url": ""}]
    with pytest.raises(TabularError, match="4 cells") as info:
        read_table(xlsx([["id", "name@de"], [], ["k1", "Tafel", None, "x"]]), "xlsx")
    assert info.value.row == 3


@pytest.mark.parametrize(("data", "message"), [
    (b"", "empty"),
    (b"id,name\nk1,x\n", "not a readable XLSX"),
    (b"PK\x03\x04 broken zip", "not a readable XLSX"),
])
def test_xlsx_errors(data, message):
    with pytest.raises(TabularError, match=message):
        read_table(data, "a.xlsx")


def test_xlsx_without_rows_is_empty():
    with pytest.raises(TabularError, match="empty"):
        read_table(xlsx([]), "a.xlsx")


def test_xlsx_duplicate_header():
    with pytest.raises(TabularError, match="duplicate") as info:
        read_table(xlsx([["id", "url", "url"]]), "a.xlsx")
    assert info.value.column == "url"
