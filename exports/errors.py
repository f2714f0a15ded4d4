"""Errors raised by the exports package (one family, one base class)."""

from __future__ import annotations

__all__ = ["ExportError", "TabularError"]


class ExportError(Exception):
    """Base of every error the exports package raises; ``status`` is the HTTP answer."""

    status = 400


class TabularError(ExportError):
    """A spreadsheet (CSV/XLSX) cannot be read or a cell cannot become record data.

    ``column`` names the offending column (None for file-level problems such as
    a bad encoding) and ``row`` its line in the file, header = 1, when known, so
    an import report can point people at the exact cell.
    """

    def __init__(self, column: str | None, message: str, row: int | None = None):
        where = []
        if row is not None:
            where.append(f"row {row}")
        if column is not None:
            where.append(f"column {column!r}")
        super().__init__(f"{', '.join(where)}: {message}" if where else message)
        self.column = column
        self.message = message
        self.row = row
