"""The view of ``sc-eval compare``: a :class:`~sc_eval.comparison.Comparison`.

One table per score (and per view on a test set with OOD samples): a row per
model, a column per metric, the difference to the reference under each value
(green better, red worse, bold when its interval excludes 0).
"""

from __future__ import annotations

import math
from typing import Any

from sc_eval import numbers as num
from sc_eval.comparison import Comparison, MetricComparison, ModelRow
from sc_eval.metrics import metric_info
from sc_eval.ood import view_of
from sc_eval.plot import curves_of_models
from sc_eval.render.registry import register_view
from sc_eval.render.score import params_cell, tuning_line
from sc_eval.render.view import Grid, Page, Records, Section, View
from sc_eval.report import comparison_document

__all__ = ["COMPARE_VIEW_TITLES", "comparison_grids", "comparison_lines"]

#: Table titles of the views of a comparison on a test set with OOD samples
COMPARE_VIEW_TITLES = {
    "scod": "SCOD (failure = misclassified ID or any OOD sample)",
    "id": "ID only",
    "ood": "OOD detection (ID vs OOD)",
}

Line = tuple[str, str]
"""One line of a cell: ``(text, Rich style)``."""


def delta_style(name: str, cell: MetricComparison) -> str:
    """``green`` when the model is better than the reference, ``red`` when worse, ``bold``
    added when the interval of the difference excludes 0."""
    d = cell.delta
    if d is None or math.isnan(d.estimate) or d.estimate == 0:
        return ""
    better = (d.estimate > 0) == metric_info(name).higher_is_better
    colour = "green" if better else "red"
    return f"bold {colour}" if d.excludes_zero else colour


def _compare_cell(name: str, cell: MetricComparison) -> list[Line]:
    lines: list[Line] = [(num.metric_value(name, cell.value), "")]
    d = cell.delta
    if d is None:
        return lines
    style = delta_style(name, cell)
    if math.isnan(d.low):
        lines.append((f"Δ {num.metric_delta(name, d.estimate)}", style))
        return lines
    lines.append(
        (
            f"Δ {num.metric_delta(name, d.estimate)} ({num.p_text(d.p_value, floor=d.p_floor)})",
            style,
        )
    )
    lines.append((f"[{num.metric_delta(name, d.low)}, {num.metric_delta(name, d.high)}]", style))
    return lines


def _model_cell(row: ModelRow) -> list[Line]:
    lines: list[Line] = [(row.model, "bold" if row.is_reference else "")]
    if row.is_reference:
        lines.append(("(reference)", "dim"))
    params = params_cell(row.params, row.tuned)
    if params:
        lines.append((params, "dim"))
    return lines


def _grid(title: str, headers: list[str], cells: list[list[list[Line]]]) -> Grid:
    rows = [["\n".join(text for text, _ in cell) for cell in row] for row in cells]
    styles = {
        (i, j): tuple(style for _, style in cell)
        for i, row in enumerate(cells)
        for j, cell in enumerate(row)
        if any(style for _, style in cell)
    }
    return Grid(title, headers, rows, lead=1, styles=styles)


def comparison_grids(cmp: Comparison) -> list[Grid]:
    """One table per score: a row per model, a column per metric, Δ under each value.

    On a test set with OOD samples, one table per score and view (SCOD, ID only,
    OOD detection); model metrics (on the ID samples) go with the ID view.
    """
    has_ood = any(ev.ood is not None for ev in cmp.evaluations)
    views: dict[str, list[str]] = {}
    for m in cmp.metrics:
        view = view_of(m).replace("model", "id") if has_ood else ""
        views.setdefault(view, []).append(m)
    order = ("", "scod", "id", "ood")
    out = []
    for sc in cmp.scores:
        for view, names in sorted(views.items(), key=lambda kv: order.index(kv[0])):
            cells = [
                [_model_cell(r), *(_compare_cell(m, r.metrics[m]) for m in names)] for r in sc.rows
            ]
            label = f" — {COMPARE_VIEW_TITLES[view]}" if view else ""
            headers = ["model", *(metric_info(m).header for m in names)]
            out.append(_grid(f"{sc.score}{label} — Δ = model − reference", headers, cells))
    return out


def comparison_lines(cmp: Comparison, *, colour: bool = True) -> tuple[str, list[str]]:
    """The heading line and the notes (best pair, how intervals were made, legend)."""
    head = (
        f"compare: reference {cmp.reference} vs {', '.join(cmp.models[1:])}; "
        f"N={cmp.n} samples matched by {cmp.alignment}; AURC convention={cmp.convention}"
    )
    notes = []
    if cmp.best is not None:
        b = cmp.best
        unit = "%" if metric_info(b.metric).percent else ""
        label = metric_info(b.metric).label
        notes.append(
            f"best (model, score) by {label}: {b.model} × {b.score} "
            f"({label} {num.metric_value(b.metric, b.value)}{unit})"
        )
    tuning = cmp.evaluations[0].tuning if cmp.evaluations else None
    if tuning and tuning.get("split") == "val":  # validation files are per model
        for model, ev in zip(cmp.models, cmp.evaluations, strict=True):
            t = ev.tuning or {}
            line = f"{model}: tuned on {t.get('val')} (n_tune={t.get('n_tune')})"
            notes.append(line + (f"; {t['decisions']}" if t.get("decisions") else ""))
    elif tuning:  # the split is the same for every model; the decisions are per model
        shared = ("split", "val", "fraction", "seed", "n_tune", "n_eval")
        notes.append(tuning_line({k: tuning[k] for k in shared if k in tuning}))
        for model, ev in zip(cmp.models, cmp.evaluations, strict=True):
            if ev.tuning and ev.tuning.get("decisions"):
                notes.append(f"{model}: {ev.tuning['decisions']}")
    ev_notes = [ev.notes for ev in cmp.evaluations]
    if ev_notes and all(n == ev_notes[0] for n in ev_notes):  # e.g. rows dropped from all
        notes += ev_notes[0]
    else:
        notes += [f"{m}: {n}" for m, ns in zip(cmp.models, ev_notes, strict=True) for n in ns]
    if cmp.bootstrap is not None:
        bs = cmp.bootstrap
        notes.append(
            f"Δ [low, high]: {100 * bs.confidence:g}% paired percentile bootstrap interval, "
            f"B={bs.n_boot}, seed={bs.seed}; p: two-sided bootstrap p-value of Δ = 0"
        )
    else:
        notes.append("no bootstrap (--bootstrap 0): differences without intervals")
    legend = ["percent metrics and their Δ in % (percentage points)"]
    if colour:
        legend.append("green = better than the reference, red = worse")
    if cmp.bootstrap is not None:
        legend.append("bold = interval excludes 0")
    notes.append("; ".join(legend))
    return head, notes


def page(cmp: Comparison, *, colour: bool = True, **_: Any) -> Page:
    head, notes = comparison_lines(cmp, colour=colour)
    section = Section(
        "sc-eval compare",
        head,
        tuple(comparison_grids(cmp)),
        tuple(notes),
        heading_in_table=False,
    )
    return Page(f"sc-eval compare: {', '.join(cmp.models)}", (section,))


def document(cmp: Comparison, **_: Any) -> Any:
    return comparison_document(cmp)


CSV_HEADER = [
    "score",
    "model",
    "reference",
    "params",
    "metric",
    "value",
    "low",
    "high",
    "delta",
    "delta_low",
    "delta_high",
    "p_value",
    "unit",
    "higher_is_better",
    "convention",
]


def records(cmp: Comparison, **_: Any) -> Records:
    """Long format: one row per (score, model, metric) with value, interval, Δ and p."""
    rows: list[list[Any]] = []
    for sc in cmp.scores:
        for r in sc.rows:
            p = ";".join(f"{k}={v:g}" for k, v in r.params.items())
            for m, c in r.metrics.items():
                info = metric_info(m)
                iv, d = c.interval, c.delta
                rows.append(
                    [
                        sc.score,
                        r.model,
                        r.is_reference,
                        p,
                        m,
                        float(c.value),
                        None if iv is None else float(iv.low),
                        None if iv is None else float(iv.high),
                        None if d is None else float(d.estimate),
                        None if d is None else float(d.low),
                        None if d is None else float(d.high),
                        None if d is None else float(d.p_value),
                        info.unit,
                        info.higher_is_better,
                        cmp.convention,
                    ]
                )
    return Records(CSV_HEADER, rows)


def provenance(cmp: Comparison, **_: Any) -> list[tuple[str, str]]:
    out = [("samples", f"N={cmp.n}, matched by {cmp.alignment}")]
    out += [
        (f"{m}: labels sha256", ev.labels_sha256)
        for m, ev in zip(cmp.models, cmp.evaluations, strict=True)
    ]
    out.append(("AURC convention", cmp.convention))
    return out


def curves(cmp: Comparison, *, samples: Any = None, **_: Any) -> list[Any]:
    """Every model's curves: ``samples`` when given (``(name, scored samples, OOD mask,
    evaluation)`` per model, the mask marking the reference's OOD rows), else the
    comparison's own scored samples."""
    if samples is None:
        samples = [
            (m, s, None, ev)
            for m, s, ev in zip(cmp.models, cmp.samples, cmp.evaluations, strict=True)
        ]
    return curves_of_models(samples)


register_view(Comparison, View(page, document, records, provenance, curves))
