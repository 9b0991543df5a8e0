"""The view of ``sc-eval threshold``: a list of :class:`~sc_eval.threshold.ThresholdResult`."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from sc_eval import numbers as num
from sc_eval.render.registry import register_view
from sc_eval.render.view import Grid, Page, Records, Section, View
from sc_eval.threshold import ThresholdResult, ood_line, result_dict

__all__ = ["grid", "headline"]


def _params_text(r: ThresholdResult) -> str:
    text = num.params_text(r.params)
    return f" ({text}{', tuned' if r.tuned else ''})" if text else ""


def headline(r: ThresholdResult) -> list[str]:
    """Human summary lines: what was asked, the threshold, and the promise."""
    c = r.control
    confidence = f"{100 * (1 - c.delta):.4g}%"
    if r.mode == "risk":
        assert c.target_risk is not None
        ask = (
            f"target: selective risk <= {num.pct(c.target_risk)}% with probability "
            f">= {confidence} (δ = {num.param(c.delta)}, {c.tests} tests "
            f"at δ/{c.tests} = {c.delta_per_test:.3g})"
        )
    else:
        assert c.target_coverage is not None
        ask = (
            f"target: coverage {num.pct(c.target_coverage)}%, risk bound at "
            f"confidence {confidence} (δ = {num.param(c.delta)})"
        )
    lines = [ask] + ([ood_line(r)] if r.n_ood else [])
    if c.feasible:
        lines.append(
            f"threshold: accept when {r.score}{_params_text(r)} >= {num.real(r.value)} "
            f"(rank key >= {c.key!r})"
        )
    else:
        b = c.best
        lines.append(
            f"infeasible: no threshold has a risk bound <= {num.pct(c.target_risk or 0.0)}%; "
            f"the lowest bound found is {num.pct(b.bound)}% at coverage "
            f"{num.pct(b.accepted / c.n)}% (try a larger --target-risk or --delta, "
            "or more calibration data)"
        )
    return lines


ROWS: tuple[tuple[str, str], ...] = (
    ("samples", "count"),
    ("accepted", "count"),
    ("coverage", "fraction"),
    ("selective risk", "fraction"),
    ("risk upper bound", "fraction"),
    ("risk 95% CI low", "fraction"),
    ("risk 95% CI high", "fraction"),
)


def _rows(r: ThresholdResult) -> list[tuple[str, str, float, float | None]]:
    """``(quantity, unit, calibration, test)`` rows (fractions; NaN where not applicable)."""
    c, t = r.control, r.test
    p = c.point if c.feasible else c.best
    nan = math.nan
    cal = [c.n, p.accepted, p.accepted / c.n, p.risk, p.bound, nan, nan]
    test = (
        None
        if t is None
        else [t.n, t.accepted, t.coverage, t.risk, nan, t.risk_interval[0], t.risk_interval[1]]
    )
    return [
        (name, unit, float(cal[i]), None if test is None else float(test[i]))
        for i, (name, unit) in enumerate(ROWS)
    ]


def _shown(x: float, unit: str) -> str:
    return f"{x:.0f}" if unit == "count" else num.pct(x)


def grid(r: ThresholdResult) -> Grid:
    """Calibration (and test) quantities, fractions in percent."""
    cal_header = "calibration" if r.feasible else "calibration (lowest bound found)"
    headers = ["quantity", cal_header] + (["test"] if r.test is not None else [])
    rows = []
    for name, unit, cal, test in _rows(r):
        if name.startswith("risk 95% CI"):
            continue
        label = name if unit == "count" else f"{name} (%)"
        if name == "risk upper bound":
            label = f"risk bound, {100 * (1 - r.control.delta):.4g}% confidence (%)"
        row = [label, _shown(cal, unit)]
        if test is not None:
            row.append(
                "" if math.isnan(test) and name == "risk upper bound" else _shown(test, unit)
            )
            if name == "selective risk" and r.test is not None:
                lo, hi = r.test.risk_interval
                row[-1] += f"\n95% CI [{num.pct(lo)}, {num.pct(hi)}]"
        rows.append(row)
    return Grid(f"{r.source} — threshold for '{r.score}'", headers, rows)


def page(results: Sequence[ThresholdResult], **_: Any) -> Page:
    sections = tuple(
        Section(
            f"{r.source} — threshold for '{r.score}'",
            summary_items=tuple(headline(r)),
            grids=(grid(r),),
            notes=(r.guarantee(),) if r.guarantee() else (),
            heading_in_table=False,
            plain_notes=True,
        )
        for r in results
    )
    return Page(f"sc-eval threshold: {', '.join(r.source for r in results)}", sections)


def document(results: Sequence[ThresholdResult], **_: Any) -> Any:
    docs = [result_dict(r) for r in results]
    return docs[0] if len(docs) == 1 else docs


def records(results: Sequence[ThresholdResult], **_: Any) -> Records:
    rows: list[list[Any]] = []
    for r in results:
        for name, v in (("threshold key", r.control.key), ("threshold value", r.value)):
            shown = float(v) if math.isfinite(v) else None
            rows.append([r.source, r.score, "calibration", name, shown, name.split()[1]])
        for name, unit, cal, test in _rows(r):
            for split, x in (("calibration", cal), ("test", test)):
                if x is not None and not math.isnan(x):
                    rows.append([r.source, r.score, split, name, _csv(x, unit), unit])
    return Records(["source", "score", "split", "quantity", "value", "unit"], rows)


def _csv(v: float, unit: str) -> Any:
    return int(v) if unit == "count" else float(v)


def provenance(results: Sequence[ThresholdResult], **_: Any) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for r in results:
        out += [
            (f"{r.source}: calibration", f"{r.input_kind}, N={r.control.n}, C={r.num_classes}"),
            (f"{r.source}: labels sha256", r.labels_sha256),
            (f"{r.source}: data sha256", r.data_sha256),
        ]
        if r.test is not None:
            out.append((f"{r.source}: test", f"{r.test.source}, N={r.test.n}"))
    return out


register_view(ThresholdResult, View(page, document, records, provenance), many=True)
