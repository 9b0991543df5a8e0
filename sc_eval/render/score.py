"""The view of ``sc-eval score`` results: a list of :class:`~sc_eval.pipeline.Evaluation`
(one per source), with bootstrap intervals when asked for.

Options: ``intervals`` (one :class:`~sc_eval.stats.EvaluationIntervals` or None
per evaluation) and, for the html plot, ``samples`` (``(name, scored samples,
OOD mask, evaluation)`` per source, as :func:`sc_eval.plot.curves_of_models` takes).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

from sc_eval import numbers as num
from sc_eval.metrics import metric_info
from sc_eval.ood import view_of
from sc_eval.pipeline import Evaluation
from sc_eval.plot import curves_of_models
from sc_eval.render.registry import register_view
from sc_eval.render.view import Grid, Page, Records, Section, View
from sc_eval.report import result_document
from sc_eval.stats import EvaluationIntervals, Interval

__all__ = ["OOD_VIEW_TITLES", "grids", "notes_of", "summary_line"]

Intervals = Sequence[EvaluationIntervals | None] | None


def with_interval(name: str, value: float, iv: Interval | None, sep: str = " ") -> str:
    """``value [low, high]`` in display units (just the value when ``iv`` is None)."""
    text = num.metric_value(name, value)
    if iv is None or math.isnan(iv.low):
        return text
    return f"{text}{sep}[{num.metric_value(name, iv.low)}, {num.metric_value(name, iv.high)}]"


def params_cell(params: dict[str, float], tuned: bool) -> str:
    text = num.params_text(params)
    return f"{text} (tuned)" if text and tuned else text


def best_cells(
    values: list[list[float]], hib: list[bool], offset: int
) -> dict[tuple[int, int], tuple[str, ...]]:
    """The best value of each column (bold green), when there are two rows or more."""
    best: dict[tuple[int, int], tuple[str, ...]] = {}
    if len(values) < 2:
        return best
    for j, higher in enumerate(hib):
        col = [row[j] for row in values]
        finite = [v for v in col if not math.isnan(v)]
        if not finite or min(finite) == max(finite):
            continue
        target = max(finite) if higher else min(finite)
        best |= {(i, j + offset): ("bold green",) for i, v in enumerate(col) if v == target}
    return best


def _score_grid(
    ev: Evaluation, names: Sequence[str], title: str, iv: EvaluationIntervals | None = None
) -> Grid:
    params = [params_cell(s.params, s.tuned) for s in ev.scores.values()]
    lead = ["score", "params"] if any(params) else ["score"]  # no empty column
    rows, vals = [], []
    for s, p in zip(ev.scores.values(), params, strict=True):
        cis = iv.scores.get(s.name, {}) if iv is not None else {}
        rows.append(
            [s.name, p][: len(lead)]
            + [with_interval(m, s.metrics[m], cis.get(m), "\n") for m in names]
        )
        vals.append([s.metrics[m] for m in names])
    hib = [metric_info(m).higher_is_better for m in names]
    heads = lead + [metric_info(m).header for m in names]
    return Grid(title, heads, rows, lead=len(lead), styles=best_cells(vals, hib, len(lead)))


def summary_line(ev: Evaluation, iv: EvaluationIntervals | None = None) -> str:
    parts = [f"N={ev.n}", f"C={ev.num_classes}", f"input={ev.input_kind}"]
    if ev.ood is not None:
        parts[0] = f"N={ev.n} ({ev.ood['n_id']} ID + {ev.ood['n_ood']} OOD)"
    model_iv = iv.model if iv is not None else {}
    parts += [
        f"{metric_info(k).header}={with_interval(k, v, model_iv.get(k))}"
        for k, v in ev.model_metrics.items()
    ]
    parts.append(f"AURC convention={ev.convention}")
    return ", ".join(parts)


def bootstrap_line(iv: EvaluationIntervals) -> str:
    """How the ``[low, high]`` intervals were made."""
    return (
        f"[low, high]: {100 * iv.confidence:g}% percentile bootstrap interval, "
        f"B={iv.n_boot}, seed={iv.seed}"
    )


def _curve_metric(name: str) -> bool:
    return "@cov=" in name or "@risk=" in name


def grids(ev: Evaluation, iv: EvaluationIntervals | None = None) -> list[Grid]:
    """The metrics table and the risk–coverage table of one evaluation."""
    if ev.ood is not None:
        return ood_grids(ev, iv)
    area = [m for m in ev.metric_names if not _curve_metric(m)]
    curve = [m for m in ev.metric_names if _curve_metric(m)]
    out = [_score_grid(ev, area, f"{ev.source} — selective classification", iv)]
    if curve:
        out.append(_score_grid(ev, curve, f"{ev.source} — risk–coverage, all in %", iv))
    return out


#: Table titles of the views of a test set with OOD samples (see sc_eval.ood)
OOD_VIEW_TITLES = {
    "scod": "SCOD (failure = misclassified ID or any OOD sample{cost})",
    "id": "ID only (the {n_id} in-distribution samples; metrics id:…)",
    "ood": "OOD detection (score separating {n_id} ID from {n_ood} OOD; metrics ood:…)",
}


def ood_grids(ev: Evaluation, iv: EvaluationIntervals | None = None) -> list[Grid]:
    """The three views of a test set with OOD samples, one labelled table (or two) each."""
    info = dict(ev.ood or {})
    info["cost"] = "" if info.get("cost", 1.0) == 1.0 else f"; OOD cost β={info['cost']:g}"
    out = []
    for view, title in OOD_VIEW_TITLES.items():
        names = [m for m in ev.metric_names if view_of(m) == view]
        area = [m for m in names if not _curve_metric(m)]
        curve = [m for m in names if _curve_metric(m)]
        label = title.format(**info)
        parts = [_score_grid(ev, area, f"{ev.source} — {label}", iv)]
        if curve:
            parts.append(_score_grid(ev, curve, f"{ev.source} — {label}: risk–coverage, in %", iv))
        prefix = f"{view.upper()} "  # the title names the view: plain column headers
        out += [
            dataclasses.replace(g, headers=[h.removeprefix(prefix) for h in g.headers])
            for g in parts
        ]
    return out


def tuning_line(tuning: dict[str, Any]) -> str:
    """``tuning: split=random, fraction=0.2, …`` (numbers in the shared style)."""

    def shown(v: Any) -> str:
        return num.real(v) if isinstance(v, float) else str(v)

    text = ", ".join(f"{k}={shown(v)}" for k, v in tuning.items() if not isinstance(v, list | dict))
    return f"tuning: {text}"


def notes_of(ev: Evaluation) -> list[str]:
    """Why values are n/a, how scores were tuned, and the evaluation's own notes."""
    seen: dict[str, list[str]] = {}
    for s in ev.scores.values():
        for metric, why in s.notes.items():
            seen.setdefault(f"{metric_info(metric).header}: {why}", []).append(s.name)
    lines = [f"n/a — {reason}" for reason in seen]
    if ev.tuning:
        lines.append(tuning_line(ev.tuning))
    return lines + list(ev.notes)


def _ivs(evals: Sequence[Evaluation], intervals: Intervals) -> list[EvaluationIntervals | None]:
    return list(intervals) if intervals is not None else [None] * len(evals)


def page(evals: Sequence[Evaluation], *, intervals: Intervals = None, **_: Any) -> Page:
    sections = []
    for ev, iv in zip(evals, _ivs(evals, intervals), strict=True):
        notes = notes_of(ev) + ([bootstrap_line(iv)] if iv is not None else [])
        sections.append(
            Section(ev.source, summary_line(ev, iv), tuple(grids(ev, iv)), tuple(notes))
        )
    title = f"sc-eval score: {', '.join(ev.source for ev in evals)}"
    return Page(title, tuple(sections))


def document(evals: Sequence[Evaluation], *, intervals: Intervals = None, **_: Any) -> Any:
    return result_document(evals, intervals=intervals)


def records(evals: Sequence[Evaluation], *, intervals: Intervals = None, **_: Any) -> Records:
    """Long format, one row per value; with intervals, ``low``, ``high`` and ``confidence``."""
    ivs = _ivs(evals, intervals)
    with_ci = any(iv is not None for iv in ivs)
    header = ["source", "score", "params", "metric", "value", "unit", "higher_is_better",
              "convention"] + (["low", "high", "confidence"] if with_ci else [])  # fmt: skip

    def ci(i: Interval | None) -> list[Any]:
        if not with_ci:
            return []
        return [None, None, None] if i is None else [i.low, i.high, i.confidence]

    rows: list[list[Any]] = []
    for ev, iv in zip(evals, ivs, strict=True):
        for name, v in ev.model_metrics.items():
            info = metric_info(name)
            model_ci = ci(iv.model.get(name) if iv is not None else None)
            rows.append([ev.source, "", "", name, float(v), info.unit, info.higher_is_better,
                         ev.convention, *model_ci])  # fmt: skip
        for s in ev.scores.values():
            p = ";".join(f"{k}={v:g}" for k, v in s.params.items())
            score_ivs = iv.scores.get(s.name, {}) if iv is not None else {}
            for name, value in s.metrics.items():
                info = metric_info(name)
                rows.append([ev.source, s.name, p, name, float(value), info.unit,
                             info.higher_is_better, ev.convention,
                             *ci(score_ivs.get(name))])  # fmt: skip
    return Records(header, rows)


def provenance(evals: Sequence[Evaluation], **_: Any) -> list[tuple[str, str]]:
    out = []
    for ev in evals:
        out += [
            (f"{ev.source}: input", f"{ev.input_kind}, N={ev.n}, C={ev.num_classes}"),
            (f"{ev.source}: labels sha256", ev.labels_sha256),
            (f"{ev.source}: AURC convention", ev.convention),
        ]
    return out


def curves(evals: Sequence[Evaluation], *, samples: Any = None, **_: Any) -> list[Any]:
    """Curves of the html plot: from ``samples`` when the caller kept the scored samples."""
    if samples is None:
        return []
    return curves_of_models(samples)


register_view(Evaluation, View(page, document, records, provenance, curves), many=True)
