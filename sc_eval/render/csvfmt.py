"""``--format csv``: the result's long-format records, one row per number.

Floats keep full precision (``repr``); NaN and missing values are empty
cells; text cells cannot become spreadsheet formulas (:class:`CsvWriter`).
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable
from typing import Any

from sc_eval.errors import printable
from sc_eval.render.registry import register_format
from sc_eval.render.view import View

__all__ = ["CsvWriter", "csv_value", "render_csv"]


class CsvWriter:
    """``csv.writer`` whose text cells cannot become spreadsheet formulas: a cell that
    starts with ``= + - @`` (or a tab or carriage return) and is not a number gets a
    leading ``'`` (OWASP's advice for CSV injection); control characters are escaped."""

    def __init__(self, buf: Any):
        self._w = csv.writer(buf, lineterminator="\n")

    @staticmethod
    def _cell(value: Any) -> Any:
        if not isinstance(value, str) or not value:
            return value
        value = printable(value)
        if value[0] in "=+-@\t\r":
            try:
                float(value)
            except ValueError:
                return "'" + value
        return value

    def writerow(self, row: Iterable[Any]) -> None:
        self._w.writerow([self._cell(v) for v in row])


def csv_value(v: Any) -> Any:
    """A cell: floats as ``repr`` (full precision), NaN and None empty, the rest as is."""
    if v is None:
        return ""
    if isinstance(v, float):
        return "" if math.isnan(v) else repr(float(v))
    return v


@register_format("csv")
def render_csv(view: View, result: Any, **opts: Any) -> str:
    records = view.records(result, **opts)
    buf = io.StringIO()
    w = CsvWriter(buf)
    w.writerow(records.header)
    for row in records.rows:
        w.writerow([csv_value(v) for v in row])
    return buf.getvalue()
