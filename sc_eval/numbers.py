"""One number style for every human-readable output (tables, Markdown, HTML, notes).

The same quantity has the same decimals everywhere:

* a metric in percent (its :class:`~sc_eval.metrics.MetricInfo` unit is
  ``fraction``) has 2 decimals, any other metric 4 (:func:`metric_value`);
  a difference of a metric is signed with the same decimals (:func:`metric_delta`);
* a fraction shown as a percentage (coverage, risk, share) has 2 decimals (:func:`pct`);
* a p-value has 3 decimals, ``<0.001`` below that and ``≤x`` at the smallest value its
  bootstrap can give (:func:`p_value`);
* any other real (a threshold, a tuning statistic) has 6 significant digits
  (:func:`real`); a parameter such as ``p=4`` or ``T=1.5`` is shown as typed (:func:`param`).

NaN is ``n/a``; a value that rounds to zero never shows as ``-0.00``. Machine
formats (JSON, CSV) keep full precision and never go through this module.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from sc_eval.metrics import metric_info

__all__ = [
    "NA",
    "metric_delta",
    "metric_value",
    "p_text",
    "p_value",
    "param",
    "params_text",
    "pct",
    "pct_delta",
    "real",
]

NA = "n/a"


def _fixed(x: float, digits: int, *, sign: bool = False) -> str:
    """``x`` with ``digits`` decimals; no ``-0.00`` (a value that rounds to zero is unsigned)."""
    if math.isnan(x):
        return NA
    if math.isinf(x):
        return ("+inf" if sign else "inf") if x > 0 else "-inf"
    text = f"{x:{'+' if sign else ''}.{digits}f}"
    if float(text) == 0.0:
        return f"{0.0:.{digits}f}"
    return text


def metric_value(name: str, x: float) -> str:
    """A metric in display units: percent with 2 decimals, otherwise 4 decimals.

    >>> metric_value("aurc", 0.06274), metric_value("nll", 0.42913), metric_value("aurc", -1e-9)
    ('6.27', '0.4291', '0.00')
    """
    if metric_info(name).percent:
        return _fixed(100 * x, 2)
    return _fixed(x, 4)


def metric_delta(name: str, x: float) -> str:
    """A signed difference of a metric in display units (percentage points for percent
    metrics).

    >>> metric_delta("aurc", 0.1736), metric_delta("aurc", -0.00001)
    ('+17.36', '0.00')
    """
    if metric_info(name).percent:
        return _fixed(100 * x, 2, sign=True)
    return _fixed(x, 4, sign=True)


def pct(x: float | None) -> str:
    """A fraction as a percentage with 2 decimals (``0.0334`` → ``3.34``); None is n/a."""
    return NA if x is None else _fixed(100 * x, 2)


def pct_delta(x: float) -> str:
    """A signed difference of fractions in percentage points, 2 decimals."""
    return _fixed(100 * x, 2, sign=True)


def p_value(p: float, *, floor: float = 0.0) -> str:
    """A p-value: 3 decimals, ``<0.001`` below that; ``≤x`` at ``floor``, the smallest
    p-value the test can give (a bootstrap of B resamples: ``1/(B+1)`` one-sided,
    ``2/(B+1)`` two-sided), where the data allow no finer statement.

    >>> p_value(0.0392), p_value(0.000999), p_value(2 / 1001, floor=2 / 1001)
    ('0.039', '<0.001', '≤0.002')
    >>> p_value(float("nan"))
    'n/a'
    """
    if math.isnan(p):
        return NA
    if p < 0.001:
        return "<0.001"
    if p <= floor:
        return f"≤{math.ceil(floor * 1000) / 1000:.3f}"
    return f"{p:.3f}"


def p_text(p: float, *, floor: float = 0.0) -> str:
    """``p=0.039``, ``p<0.001``, ``p≤0.002`` (see :func:`p_value`) or ``p n/a``."""
    text = p_value(p, floor=floor)
    if text == NA:
        return "p n/a"
    return f"p{text}" if text[0] in "<≤" else f"p={text}"


def real(x: float) -> str:
    """Any other real number: 6 significant digits (``0.033426183844`` → ``0.0334262``)."""
    if math.isnan(x):
        return NA
    text = f"{x:.6g}"
    return "0" if text == "-0" else text


def param(x: float) -> str:
    """A score parameter or a tolerance as typed: ``4``, ``1.5``, ``0.1``."""
    return f"{x:g}"


def params_text(params: Mapping[str, float]) -> str:
    """``p=4, T=1.5`` (empty for no parameters)."""
    return ", ".join(f"{k}={param(v)}" for k, v in params.items())
