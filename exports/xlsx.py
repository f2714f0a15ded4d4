"""XLSX (Office Open XML workbook) with the spreadsheet layout of `exports.tabular`.

Every cell is written as a string (cell type "s", stored inline), so a value
such as ``=HYPERLINK(...)`` is shown as text and never evaluated: this is the
export people open in spreadsheet programs, so it is where formula injection
is prevented (the CSV stays untouched, see `exports.csv`). Empty cells are
left out entirely. Characters XML 1.0 cannot carry (control characters, which
`load_record` never lets in) become U+FFFD rather than failing the export.
"""

from __future__ import annotations

import io

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from openpyxl.styles import Font

from vocab.fields import entity

from .registry import Format, Payload, register
from .tabular import XLSX_MEDIA_TYPE, table

__all__ = ["FORMAT", "render"]


def render(payload: Payload) -> bytes:
    names, rows = table(payload.kind, payload.records)
    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet(entity(payload.kind).collection)
    sheet.freeze_panes = "B2"  # keep the header and the id column in view
    bold = Font(bold=True)
    sheet.append([_text_cell(sheet, name, bold) for name in names])
    for row in rows:
        sheet.append([_text_cell(sheet, value) if value else None for value in row])
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()


def _text_cell(sheet, value: str, font: Font | None = None) -> WriteOnlyCell:
    cell = WriteOnlyCell(sheet, value=ILLEGAL_CHARACTERS_RE.sub("\ufffd", value))
    # Assigning a str starting with "=" makes openpyxl type it as a formula.
    cell.data_type = "s"
    if font is not None:
        cell.font = font
    return cell


FORMAT = Format(
    name="xlsx",
    media_types=(XLSX_MEDIA_TYPE,),
    extensions=("xlsx",),
    render=render,
    text=False,
)
register(FORMAT)
