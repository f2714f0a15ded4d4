"""CSV (RFC 4180): the spreadsheet layout of `exports.tabular`, UTF-8, comma, CRLF.

No byte order mark: the Content-Type names the charset and a BOM would end up
in the first column name of naive readers. People who open files in Excel get
the XLSX export, which Excel reads without guessing.

Cells are written as they are. Cells starting with ``=``, ``+``, ``-`` or ``@``
are *not* prefixed against formula injection (OWASP "CSV injection"): the CSV
is a data format that must round trip (re-importing it must give the same
records) and a prefix would corrupt values such as "-" or "+49 351 ..." for
every program that is not a spreadsheet. The XLSX export is the one meant for
spreadsheets and stores every cell as text, so nothing there is a formula.
"""

from __future__ import annotations

import csv
import io

from .registry import Format, Payload, register
from .tabular import table

__all__ = ["FORMAT", "render"]


def render(payload: Payload) -> bytes:
    names, rows = table(payload.kind, payload.records)
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(names)
    writer.writerows(rows)
    return out.getvalue().encode("utf-8")


FORMAT = Format(
    name="csv",
    media_types=("text/csv",),
    extensions=("csv",),
    render=render,
)
register(FORMAT)
