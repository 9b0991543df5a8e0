"""Renderers for evaluation results: ``table`` (Rich), ``json``, ``csv``, ``markdown``.

A renderer turns a list of :class:`~sc_eval.pipeline.Evaluation` into text.
Human formats (table, markdown) show percent for fraction metrics and say so
in each header; machine formats (json, csv) hold fractions and name units.
Tables are built once as a :class:`Grid` and drawn by Rich or as Markdown.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sc_eval.metrics import MODEL_METRICS, get_metric
from sc_eval.pipeline import RESULT_SCHEMA, RESULT_VERSION, Evaluation

__all__ = ["FORMATS", "Grid", "metric_info", "render", "result_document"]


def metric_info(name: str) -> tuple[bool, bool, str]:
    """``(higher_is_better, shown_in_percent, unit)`` of any metric name."""
    if name in MODEL_METRICS:
        m = MODEL_METRICS[name]
        return m.higher_is_better, m.percent, m.unit
    s = get_metric(name)
    return s.higher_is_better, s.percent, s.unit


def fmt_value(name: str, value: float) -> str:
    """Human-readable value: percent with 2 decimals, otherwise 4 decimals; NaN is n/a."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    _, percent, _ = metric_info(name)
    return f"{100 * value:.2f}" if percent else f"{value:.4f}"


def header(name: str) -> str:
    _, percent, _ = metric_info(name)
    label = {"acc": "Acc", "ece": "ECE", "nll": "NLL", "brier": "Brier"}.get(name)
    if label is None:
        if name.startswith("risk@cov="):
            label = f"risk@{100 * float(name.split('=')[1]):g}%"
        elif name.startswith("cov@risk="):
            label = f"cov@risk≤{100 * float(name.split('=')[1]):g}%"
        else:
            label = name.upper() if name != "e-aurc" else "E-AURC"
    return f"{label} (%)" if percent and "%" not in label else label


def format_params(params: dict[str, float], tuned: bool) -> str:
    if not params:
        return ""
    text = ", ".join(f"{k}={v:g}" for k, v in params.items())
    return f"{text} (tuned)" if tuned else text


# --------------------------------------------------------------------------- grid
@dataclass(frozen=True)
class Grid:
    """A titled table of strings with the best cell of each column marked."""

    title: str
    headers: list[str]
    rows: list[list[str]]
    best: set[tuple[int, int]]
    caption: str = ""


def _best_cells(values: list[list[float]], hib: list[bool], offset: int) -> set[tuple[int, int]]:
    best: set[tuple[int, int]] = set()
    if len(values) < 2:
        return best
    for j, higher in enumerate(hib):
        col = [row[j] for row in values]
        finite = [v for v in col if not math.isnan(v)]
        if not finite or min(finite) == max(finite):
            continue
        target = max(finite) if higher else min(finite)
        best |= {(i, j + offset) for i, v in enumerate(col) if v == target}
    return best


def _score_grid(ev: Evaluation, names: Sequence[str], title: str) -> Grid:
    lead = ["score", "params"]
    rows, vals = [], []
    for s in ev.scores.values():
        rows.append(
            [s.name, format_params(s.params, s.tuned)] + [fmt_value(m, s.metrics[m]) for m in names]
        )
        vals.append([s.metrics[m] for m in names])
    hib = [metric_info(m)[0] for m in names]
    return Grid(title, lead + [header(m) for m in names], rows, _best_cells(vals, hib, len(lead)))


def summary_line(ev: Evaluation) -> str:
    parts = [f"N={ev.n}", f"C={ev.num_classes}", f"input={ev.input_kind}"]
    parts += [f"{header(k)}={fmt_value(k, v)}" for k, v in ev.model_metrics.items()]
    parts.append(f"AURC convention={ev.convention}")
    return ", ".join(parts)


def grids(ev: Evaluation) -> list[Grid]:
    """The metrics table and the risk–coverage table of one evaluation."""
    area = [m for m in ev.metric_names if "@cov=" not in m and "@risk=" not in m]
    curve = [m for m in ev.metric_names if m not in area]
    out = [_score_grid(ev, area, f"{ev.source} — selective classification")]
    if curve:
        out.append(
            _score_grid(ev, curve, f"{ev.source} — risk–coverage (selective risk at coverage)")
        )
    return out


def notes_of(ev: Evaluation) -> list[str]:
    seen: dict[str, list[str]] = {}
    for s in ev.scores.values():
        for metric, why in s.notes.items():
            seen.setdefault(f"{header(metric)}: {why}", []).append(s.name)
    lines = [f"n/a — {reason}" for reason in seen]
    if ev.tuning:
        lines.append(_tuning_line(ev.tuning))
    return lines + list(ev.notes)


def _tuning_line(tuning: dict[str, Any]) -> str:
    text = ", ".join(f"{k}={v}" for k, v in tuning.items() if not isinstance(v, list | dict))
    return f"tuning: {text}"


# --------------------------------------------------------------------------- renderers
def render_table(evals: Sequence[Evaluation], *, console: Any = None, **_: Any) -> str:
    """Rich tables. Printed to ``console`` when given (colour as the terminal allows,
    ``NO_COLOR`` honoured); otherwise rendered as plain text and returned."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    buf = io.StringIO()
    target = console or Console(file=buf, no_color=True, width=160, highlight=False)
    console = target
    for ev in evals:
        console.print(f"[bold]{escape(ev.source)}[/bold]: {escape(summary_line(ev))}")
        for g in grids(ev):
            t = Table(title=escape(g.title), title_justify="left")
            for j, h in enumerate(g.headers):
                t.add_column(h, justify="left" if j < 2 else "right", no_wrap=j < 2)
            for i, row in enumerate(g.rows):
                t.add_row(
                    *[
                        f"[bold green]{escape(c)}[/bold green]" if (i, j) in g.best else escape(c)
                        for j, c in enumerate(row)
                    ]
                )
            console.print(t)
        for line in notes_of(ev):
            console.print(f"[dim]{escape(line)}[/dim]")
        console.print()
    return buf.getvalue()


def _md_table(g: Grid) -> str:
    lines = [f"**{g.title}**", "", "| " + " | ".join(g.headers) + " |"]
    lines.append("|" + "|".join("---" if j < 2 else "---:" for j in range(len(g.headers))) + "|")
    for i, row in enumerate(g.rows):
        cells = [f"**{c}**" if (i, j) in g.best else c for j, c in enumerate(row)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def render_markdown(evals: Sequence[Evaluation], **_: Any) -> str:
    parts = []
    for ev in evals:
        parts.append(f"### {ev.source}\n\n{summary_line(ev)}\n")
        parts += [_md_table(g) + "\n" for g in grids(ev)]
        notes = notes_of(ev)
        if notes:
            parts.append("\n".join(f"- {n}" for n in notes) + "\n")
    return "\n".join(parts)


def _clean(x: Any) -> Any:
    if isinstance(x, float):
        return None if math.isnan(x) or math.isinf(x) else x
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_clean(v) for v in x]
    return x


def evaluation_dict(ev: Evaluation) -> dict[str, Any]:
    """One evaluation as plain JSON-able data (fractions; NaN as null)."""
    return _clean(
        {
            "source": ev.source,
            "n": ev.n,
            "num_classes": ev.num_classes,
            "input_kind": ev.input_kind,
            "labels_sha256": ev.labels_sha256,
            "convention": ev.convention,
            "coverages": list(ev.coverages),
            "risks": list(ev.risks),
            "model_metrics": dict(ev.model_metrics),
            "scores": {
                s.name: {
                    "params": s.params,
                    "tuned": s.tuned,
                    "metrics": s.metrics,
                    "notes": s.notes,
                }
                for s in ev.scores.values()
            },
            "tuning": ev.tuning,
            "notes": list(ev.notes),
        }
    )


def result_document(evals: Sequence[Evaluation], *, command: str = "score") -> dict[str, Any]:
    """The versioned JSON document that ``--format json`` writes (and ``gate`` reads)."""
    from sc_eval import __version__

    names: list[str] = list(MODEL_METRICS)
    for ev in evals:
        names += [m for m in ev.metric_names if m not in names]
    return {
        "schema": RESULT_SCHEMA,
        "version": RESULT_VERSION,
        "tool": f"sc-eval {__version__}",
        "command": command,
        "units": "fractions (multiply by 100 for %); nll in nats",
        "metrics": {
            m: {"higher_is_better": metric_info(m)[0], "unit": metric_info(m)[2]} for m in names
        },
        "results": [evaluation_dict(ev) for ev in evals],
    }


def render_json(evals: Sequence[Evaluation], **_: Any) -> str:
    return json.dumps(result_document(evals), indent=2, allow_nan=False) + "\n"


def render_csv(evals: Sequence[Evaluation], **kwargs: Any) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(
        ["source", "score", "params", "metric", "value", "unit", "higher_is_better", "convention"]
    )
    for ev in evals:
        for name, v in ev.model_metrics.items():
            hib, _, unit = metric_info(name)
            w.writerow([ev.source, "", "", name, _csv_num(v), unit, hib, ev.convention])
        for s in ev.scores.values():
            p = ";".join(f"{k}={v:g}" for k, v in s.params.items())
            for name, value in s.metrics.items():
                higher, _, unit_name = metric_info(name)
                w.writerow(
                    [ev.source, s.name, p, name, _csv_num(value), unit_name, higher, ev.convention]
                )
    return buf.getvalue()


def _csv_num(v: float) -> str:
    return "" if math.isnan(v) else repr(float(v))


FORMATS: dict[str, Callable[..., str]] = {
    "table": render_table,
    "json": render_json,
    "csv": render_csv,
    "markdown": render_markdown,
}


def render(evals: Sequence[Evaluation], fmt: str, **kwargs: Any) -> str:
    """Render evaluations in format ``fmt`` (a key of :data:`FORMATS`)."""
    return FORMATS[fmt](evals, **kwargs)
