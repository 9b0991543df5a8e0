"""Renderers for evaluation results: ``table`` (Rich), ``json``, ``csv``, ``markdown``.

A renderer turns a list of :class:`~sc_eval.pipeline.Evaluation` into text.
Human formats (table, markdown) show percent for fraction metrics and say so
in each header; machine formats (json, csv) hold fractions and name units.
Tables are built once as a :class:`Grid` and drawn by Rich or as Markdown.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sc_eval.errors import printable
from sc_eval.metrics import MODEL_METRICS, metric_info
from sc_eval.ood import view_of
from sc_eval.pipeline import RESULT_SCHEMA, RESULT_VERSION, Evaluation

if TYPE_CHECKING:
    from sc_eval.comparison import Comparison, MetricComparison, ModelRow
    from sc_eval.stats import EvaluationIntervals, Interval

__all__ = [
    "COMPARE_FORMATS",
    "FORMATS",
    "Grid",
    "comparison_document",
    "render",
    "render_comparison",
    "result_document",
]


def fmt_value(name: str, value: float) -> str:
    """Human-readable value: percent with 2 decimals, otherwise 4 decimals; NaN is n/a."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{100 * value:.2f}" if metric_info(name).percent else f"{value:.4f}"


def fmt_with_interval(name: str, value: float, iv: Interval | None, sep: str = " ") -> str:
    """``value [low, high]`` in display units (just the value when ``iv`` is None)."""
    text = fmt_value(name, value)
    if iv is None or math.isnan(iv.low):
        return text
    return f"{text}{sep}[{fmt_value(name, iv.low)}, {fmt_value(name, iv.high)}]"


def header(name: str) -> str:
    """Column header of a metric: ``AURC (%)``, ``risk@90%``, ``ID AURC (%)``, ``NLL``."""
    return metric_info(name).header


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
    #: leading text columns (left-aligned, never wrapped); the rest are numbers
    lead: int = 2


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


def _score_grid(
    ev: Evaluation, names: Sequence[str], title: str, iv: EvaluationIntervals | None = None
) -> Grid:
    params = [format_params(s.params, s.tuned) for s in ev.scores.values()]
    lead = ["score", "params"] if any(params) else ["score"]  # no empty column
    rows, vals = [], []
    for s, p in zip(ev.scores.values(), params, strict=True):
        cis = iv.scores.get(s.name, {}) if iv is not None else {}
        rows.append(
            [s.name, p][: len(lead)]
            + [fmt_with_interval(m, s.metrics[m], cis.get(m), "\n") for m in names]
        )
        vals.append([s.metrics[m] for m in names])
    hib = [metric_info(m).higher_is_better for m in names]
    heads = lead + [header(m) for m in names]
    return Grid(title, heads, rows, _best_cells(vals, hib, len(lead)), lead=len(lead))


def summary_line(ev: Evaluation, iv: EvaluationIntervals | None = None) -> str:
    parts = [f"N={ev.n}", f"C={ev.num_classes}", f"input={ev.input_kind}"]
    if ev.ood is not None:
        parts[0] = f"N={ev.n} ({ev.ood['n_id']} ID + {ev.ood['n_ood']} OOD)"
    model_iv = iv.model if iv is not None else {}
    parts += [
        f"{header(k)}={fmt_with_interval(k, v, model_iv.get(k))}"
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


def _intervals(kwargs: dict[str, Any], count: int) -> list[EvaluationIntervals | None]:
    ivs = kwargs.get("intervals")
    return list(ivs) if ivs is not None else [None] * count


def grids(ev: Evaluation, iv: EvaluationIntervals | None = None) -> list[Grid]:
    """The metrics table and the risk–coverage table of one evaluation."""
    if ev.ood is not None:
        return ood_grids(ev, iv)
    area = [m for m in ev.metric_names if "@cov=" not in m and "@risk=" not in m]
    curve = [m for m in ev.metric_names if m not in area]
    out = [_score_grid(ev, area, f"{ev.source} — selective classification", iv)]
    if curve:
        out.append(
            _score_grid(
                ev,
                curve,
                f"{ev.source} — risk–coverage, all in %",
                iv,
            )
        )
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
        area = [m for m in names if "@cov=" not in m and "@risk=" not in m]
        curve = [m for m in names if m not in area]
        label = title.format(**info)
        grids = [_score_grid(ev, area, f"{ev.source} — {label}", iv)]
        if curve:
            grids.append(_score_grid(ev, curve, f"{ev.source} — {label}: risk–coverage, in %", iv))
        prefix = f"{view.upper()} "  # the title names the view: plain column headers
        out += [
            dataclasses.replace(g, headers=[h.removeprefix(prefix) for h in g.headers])
            for g in grids
        ]
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
def fold_columns(
    headers: Sequence[str], rows: Sequence[Sequence[str]], lead: int, width: int
) -> list[list[int]]:
    """Split a table's columns into groups that each fit ``width`` characters, the
    ``lead`` columns (names) repeated in every group: a table too wide for the
    terminal is stacked, never cut (a number is never shown as ``2.…``)."""
    natural = [
        max(
            len(line)
            for cell in [h, *(r[j] for r in rows)]
            for line in str(cell).splitlines() or [""]
        )
        + 3
        for j, h in enumerate(headers)
    ]
    head = list(range(min(lead, len(headers))))
    base = sum(natural[j] for j in head) + 1
    groups: list[list[int]] = []
    current: list[int] = []
    used = base
    for j in range(len(head), len(headers)):
        if current and used + natural[j] > width:
            groups.append(head + current)
            current, used = [], base
        current.append(j)
        used += natural[j]
    if current or not groups:
        groups.append(head + current)
    return groups


def print_grid(
    console: Any,
    g: Grid,
    *,
    style: Callable[[int, int], str | None] | None = None,
    text_columns: frozenset[int] = frozenset(),
) -> None:
    """Print a :class:`Grid` as Rich tables, folded to the console's width; ``style(i, j)``
    may colour cell ``(i, j)`` (the best cells are bold green); ``text_columns`` beyond
    the leading ones are left-aligned like them."""
    from rich.markup import escape
    from rich.table import Table

    groups = fold_columns(g.headers, g.rows, g.lead, console.width)
    for part, columns in enumerate(groups):
        if part:
            console.print(f"[dim]{escape(g.title)} (continued)[/dim]")
        t = Table()
        for j in columns:
            left = j < g.lead or j in text_columns
            t.add_column(g.headers[j], justify="left" if left else "right", no_wrap=True)
        for i, row in enumerate(g.rows):
            cells = []
            for j in columns:
                look = "bold green" if (i, j) in g.best else (style(i, j) if style else None)
                cells.append(f"[{look}]{escape(row[j])}[/]" if look else escape(row[j]))
            t.add_row(*cells)
        console.print(t)


def render_table(evals: Sequence[Evaluation], *, console: Any = None, **kwargs: Any) -> str:
    """Rich tables. Printed to ``console`` when given (colour as the terminal allows,
    ``NO_COLOR`` honoured); otherwise rendered as plain text and returned."""
    from rich.console import Console
    from rich.markup import escape

    buf = io.StringIO()
    target = console or Console(file=buf, no_color=True, width=160, highlight=False)
    console = target
    for ev, iv in zip(evals, _intervals(kwargs, len(evals)), strict=True):
        console.print(f"[bold]{escape(ev.source)}[/bold]: {escape(summary_line(ev, iv))}")
        for g in grids(ev, iv):
            console.print(f"[italic]{escape(g.title)}[/italic]")
            print_grid(console, g)
        for line in notes_of(ev) + ([bootstrap_line(iv)] if iv is not None else []):
            console.print(f"[dim]{escape(line)}[/dim]")
        console.print()
    return buf.getvalue()


def _md_table(g: Grid) -> str:
    lines = [f"**{md_cell(g.title)}**", "", "| " + " | ".join(g.headers) + " |"]
    lines.append(
        "|" + "|".join("---" if j < g.lead else "---:" for j in range(len(g.headers))) + "|"
    )
    for i, row in enumerate(g.rows):
        cells = [
            (f"**{md_cell(c)}**" if (i, j) in g.best else md_cell(c)) for j, c in enumerate(row)
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def render_markdown(evals: Sequence[Evaluation], **kwargs: Any) -> str:
    parts = []
    for ev, iv in zip(evals, _intervals(kwargs, len(evals)), strict=True):
        parts.append(f"### {md_cell(ev.source)}\n\n{md_cell(summary_line(ev, iv))}\n")
        parts += [_md_table(g) + "\n" for g in grids(ev, iv)]
        notes = notes_of(ev) + ([bootstrap_line(iv)] if iv is not None else [])
        if notes:
            parts.append("\n".join(f"- {n}" for n in notes) + "\n")
    return "\n".join(parts)


class _CsvWriter:
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

    def writerows(self, rows: Iterable[Iterable[Any]]) -> None:
        for row in rows:
            self.writerow(row)


def csv_writer(buf: Any) -> _CsvWriter:
    """The CSV writer of every sc-eval table (see :class:`_CsvWriter`)."""
    return _CsvWriter(buf)


def md_cell(text: str) -> str:
    """Text safe inside a Markdown table cell or heading: control characters escaped,
    ``|`` escaped (a file name cannot add a column, a line or a heading)."""
    return printable(text).replace("|", "\\|")


def json_safe(x: Any) -> Any:
    """JSON-safe values, recursively: NaN → null (its reason goes in ``notes``),
    ±inf → ``"inf"``/``"-inf"``; every JSON document sc-eval writes goes through this."""
    if isinstance(x, float):
        if math.isnan(x):
            return None
        return ("inf" if x > 0 else "-inf") if math.isinf(x) else x
    if isinstance(x, dict):
        return {k: json_safe(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [json_safe(v) for v in x]
    return x


def evaluation_dict(ev: Evaluation) -> dict[str, Any]:
    """One evaluation as plain JSON-able data (fractions; NaN as null)."""
    return json_safe(
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
            **({"ood": ev.ood} if ev.ood is not None else {}),
        }
    )


def _add_intervals(result: dict[str, Any], iv: EvaluationIntervals) -> dict[str, Any]:
    """Add ``[low, high]`` pairs (fractions) and the bootstrap settings to a result dict."""

    def pair(i: Interval) -> list[float | None]:
        return json_safe([i.low, i.high])

    result["bootstrap"] = {
        "n_boot": iv.n_boot,
        "seed": iv.seed,
        "confidence": iv.confidence,
        "method": "percentile bootstrap",
    }
    result["model_intervals"] = {m: pair(i) for m, i in iv.model.items()}
    for name, entry in result["scores"].items():
        entry["intervals"] = {m: pair(i) for m, i in iv.scores.get(name, {}).items()}
    return result


def result_document(
    evals: Sequence[Evaluation],
    *,
    command: str = "score",
    intervals: Sequence[EvaluationIntervals | None] | None = None,
) -> dict[str, Any]:
    """The versioned JSON document that ``--format json`` writes (and ``gate`` reads).

    With ``intervals`` (``score --bootstrap``) each result also holds
    ``bootstrap``, ``model_intervals`` and per-score ``intervals`` as
    ``[low, high]`` fractions.
    """
    from sc_eval import __version__

    names: list[str] = list(MODEL_METRICS)
    for ev in evals:
        names += [m for m in ev.metric_names if m not in names]
    ivs = list(intervals) if intervals is not None else [None] * len(evals)
    results = [
        _add_intervals(evaluation_dict(ev), iv) if iv is not None else evaluation_dict(ev)
        for ev, iv in zip(evals, ivs, strict=True)
    ]
    return {
        "schema": RESULT_SCHEMA,
        "version": RESULT_VERSION,
        "tool": f"sc-eval {__version__}",
        "command": command,
        "units": "fractions (multiply by 100 for %); nll in nats",
        "metrics": {
            m: {"higher_is_better": metric_info(m).higher_is_better, "unit": metric_info(m).unit}
            for m in names
        },
        "results": results,
    }


def render_json(evals: Sequence[Evaluation], **kwargs: Any) -> str:
    doc = result_document(evals, intervals=kwargs.get("intervals"))
    return json.dumps(doc, indent=2, allow_nan=False) + "\n"


def render_csv(evals: Sequence[Evaluation], **kwargs: Any) -> str:
    """Long format, one row per value; with intervals, ``low`` and ``high`` columns too."""
    buf = io.StringIO()
    w = csv_writer(buf)
    ivs = _intervals(kwargs, len(evals))
    with_ci = any(iv is not None for iv in ivs)
    w.writerow(
        ["source", "score", "params", "metric", "value", "unit", "higher_is_better", "convention"]
        + (["low", "high", "confidence"] if with_ci else [])
    )

    def ci(i: Interval | None) -> list[str]:
        if not with_ci:
            return []
        if i is None:
            return ["", "", ""]
        return [_csv_num(i.low), _csv_num(i.high), repr(i.confidence)]

    for ev, iv in zip(evals, ivs, strict=True):
        for name, v in ev.model_metrics.items():
            info = metric_info(name)
            hib, unit = info.higher_is_better, info.unit
            model_ci = ci(iv.model.get(name) if iv is not None else None)
            w.writerow([ev.source, "", "", name, _csv_num(v), unit, hib, ev.convention, *model_ci])
        for s in ev.scores.values():
            p = ";".join(f"{k}={v:g}" for k, v in s.params.items())
            score_ivs = iv.scores.get(s.name, {}) if iv is not None else {}
            for name, value in s.metrics.items():
                info = metric_info(name)
                higher, unit_name = info.higher_is_better, info.unit
                row = [ev.source, s.name, p, name, _csv_num(value), unit_name, higher]
                w.writerow([*row, ev.convention, *ci(score_ivs.get(name))])
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


# --------------------------------------------------------------------------- compare
COMPARISON_SCHEMA = "sc-eval/comparison"
COMPARISON_VERSION = 1

Line = tuple[str, str]
"""One line of a table cell: ``(text, style)``; style is a Rich style ('' = plain)."""


@dataclass(frozen=True)
class StyledGrid:
    """A titled table whose cells are lists of styled lines (drawn by Rich or as Markdown)."""

    title: str
    headers: list[str]
    rows: list[list[list[Line]]]


def fmt_delta(name: str, value: float) -> str:
    """Signed difference in display units (percentage points for percent metrics)."""
    if math.isnan(value):
        return "n/a"
    percent = metric_info(name).percent
    return f"{100 * value:+.2f}" if percent else f"{value:+.4f}"


def fmt_p(p: float) -> str:
    if math.isnan(p):
        return "p n/a"
    return "p<0.001" if p < 0.001 else f"p={p:.3f}"


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
    lines: list[Line] = [(fmt_value(name, cell.value), "")]
    d = cell.delta
    if d is None:
        return lines
    style = delta_style(name, cell)
    if math.isnan(d.low):
        lines.append((f"Δ {fmt_delta(name, d.estimate)}", style))
        return lines
    lines.append((f"Δ {fmt_delta(name, d.estimate)} ({fmt_p(d.p_value)})", style))
    lines.append((f"[{fmt_delta(name, d.low)}, {fmt_delta(name, d.high)}]", style))
    return lines


def _model_cell(row: ModelRow) -> list[Line]:
    lines: list[Line] = [(row.model, "bold" if row.is_reference else "")]
    if row.is_reference:
        lines.append(("(reference)", "dim"))
    params = format_params(row.params, row.tuned)
    if params:
        lines.append((params, "dim"))
    return lines


#: Table titles of the views of a comparison on a test set with OOD samples
COMPARE_VIEW_TITLES = {
    "scod": "SCOD (failure = misclassified ID or any OOD sample)",
    "id": "ID only",
    "ood": "OOD detection (ID vs OOD)",
}


def comparison_grids(cmp: Comparison) -> list[StyledGrid]:
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
            rows = [
                [_model_cell(r), *(_compare_cell(m, r.metrics[m]) for m in names)] for r in sc.rows
            ]
            label = f" — {COMPARE_VIEW_TITLES[view]}" if view else ""
            headers = ["model", *(header(m) for m in names)]
            out.append(StyledGrid(f"{sc.score}{label} — Δ = model − reference", headers, rows))
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
        label = header(b.metric).removesuffix(" (%)")
        notes.append(
            f"best (model, score) by {label}: {b.model} × {b.score} "
            f"({label} {fmt_value(b.metric, b.value)}{unit})"
        )
    tuning = cmp.evaluations[0].tuning if cmp.evaluations else None
    if tuning and tuning.get("split") == "val":  # validation files are per model
        for model, ev in zip(cmp.models, cmp.evaluations, strict=True):
            t = ev.tuning or {}
            line = f"{model}: tuned on {t.get('val')} (n_tune={t.get('n_tune')})"
            notes.append(line + (f"; {t['decisions']}" if t.get("decisions") else ""))
    elif tuning:  # the split is the same for every model; the decisions are per model
        shared = ("split", "val", "fraction", "seed", "n_tune", "n_eval")
        notes.append(_tuning_line({k: tuning[k] for k in shared if k in tuning}))
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
    legend = "green = better than the reference, red = worse, " if colour else ""
    notes.append(
        f"percent metrics and their Δ in % (percentage points); {legend}bold = interval excludes 0"
    )
    return head, notes


def render_comparison_table(cmp: Comparison, *, console: Any = None, **_: Any) -> str:
    """Rich tables (printed to ``console`` when given, else returned as plain text)."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    buf = io.StringIO()
    console = console or Console(file=buf, no_color=True, width=160, highlight=False)
    head, notes = comparison_lines(cmp)
    console.print(f"[bold]{escape(head)}[/bold]")
    for g in comparison_grids(cmp):
        console.print(f"[italic]{escape(g.title)}[/italic]")
        t = Table(show_lines=True)
        for j, h in enumerate(g.headers):
            t.add_column(h, justify="left" if j == 0 else "right", overflow="fold")
        for row in g.rows:
            t.add_row(
                *[
                    "\n".join(
                        f"[{style}]{escape(text)}[/{style}]" if style else escape(text)
                        for text, style in cell
                    )
                    for cell in row
                ]
            )
        console.print(t)
    for line in notes:
        console.print(f"[dim]{escape(line)}[/dim]")
    console.print()
    return buf.getvalue()


def render_comparison_markdown(cmp: Comparison, **_: Any) -> str:
    """GitHub Markdown: one table per score, lines of a cell joined by ``<br>``,
    significant differences in bold."""
    head, notes = comparison_lines(cmp, colour=False)
    parts = [f"### sc-eval compare\n\n{head}\n"]
    for g in comparison_grids(cmp):
        lines = [f"**{md_cell(g.title)}**", "", "| " + " | ".join(g.headers) + " |"]
        lines.append(
            "|" + "|".join("---" if j == 0 else "---:" for j in range(len(g.headers))) + "|"
        )
        for row in g.rows:
            cells = [
                "<br>".join(f"**{t}**" if "bold" in st else t for t, st in cell) for cell in row
            ]
            lines.append("| " + " | ".join(cells) + " |")
        parts.append("\n".join(lines) + "\n")
    parts.append("\n".join(f"- {n}" for n in notes) + "\n")
    return "\n".join(parts)


def _interval_dict(i: Interval | None) -> dict[str, Any] | None:
    return None if i is None else {"low": i.low, "high": i.high}


def comparison_document(cmp: Comparison) -> dict[str, Any]:
    """The versioned JSON document of ``sc-eval compare --format json``.

    ``comparisons[*].rows[*].metrics[m]`` holds ``value``, its ``interval``
    and, for every model but the reference, ``delta`` = value − reference with
    ``low``, ``high`` and ``p_value`` (fractions; null where undefined or
    without bootstrap). ``results`` holds each model's full evaluation as in
    ``sc-eval score --format json``.
    """
    from sc_eval import __version__

    names = list(dict.fromkeys([*cmp.metrics, *MODEL_METRICS]))
    bs = cmp.bootstrap
    doc = {
        "schema": COMPARISON_SCHEMA,
        "version": COMPARISON_VERSION,
        "tool": f"sc-eval {__version__}",
        "command": "compare",
        "units": "fractions (multiply by 100 for %); nll in nats; delta = model - reference",
        "metrics": {
            m: {"higher_is_better": metric_info(m).higher_is_better, "unit": metric_info(m).unit}
            for m in names
        },
        "reference": cmp.reference,
        "models": list(cmp.models),
        "n": cmp.n,
        "alignment": cmp.alignment,
        "convention": cmp.convention,
        "bootstrap": None
        if bs is None
        else {
            "n_boot": bs.n_boot,
            "seed": bs.seed,
            "confidence": bs.confidence,
            "method": bs.method,
        },
        "best": None
        if cmp.best is None
        else {
            "model": cmp.best.model,
            "score": cmp.best.score,
            "metric": cmp.best.metric,
            "value": cmp.best.value,
        },
        "comparisons": [
            {
                "score": sc.score,
                "rows": [
                    {
                        "model": r.model,
                        "reference": r.is_reference,
                        "params": r.params,
                        "tuned": r.tuned,
                        "metrics": {
                            m: {
                                "value": c.value,
                                "interval": _interval_dict(c.interval),
                                "delta": None
                                if c.delta is None
                                else {
                                    "estimate": c.delta.estimate,
                                    "low": c.delta.low,
                                    "high": c.delta.high,
                                    "p_value": c.delta.p_value,
                                    "excludes_zero": c.delta.excludes_zero,
                                },
                            }
                            for m, c in r.metrics.items()
                        },
                    }
                    for r in sc.rows
                ],
            }
            for sc in cmp.scores
        ],
    }
    doc = json_safe(doc)
    doc["results"] = [evaluation_dict(ev) for ev in cmp.evaluations]
    return doc


def render_comparison_json(cmp: Comparison, **_: Any) -> str:
    return json.dumps(comparison_document(cmp), indent=2, allow_nan=False) + "\n"


def render_comparison_csv(cmp: Comparison, **kwargs: Any) -> str:
    """Long format: one row per (score, model, metric) with value, interval, Δ and p."""
    buf = io.StringIO()
    w = csv_writer(buf)
    w.writerow(
        [
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
    )
    for sc in cmp.scores:
        for r in sc.rows:
            p = ";".join(f"{k}={v:g}" for k, v in r.params.items())
            for m, c in r.metrics.items():
                info = metric_info(m)
                hib, unit = info.higher_is_better, info.unit
                iv = c.interval
                d = c.delta
                w.writerow(
                    [
                        sc.score,
                        r.model,
                        r.is_reference,
                        p,
                        m,
                        _csv_num(c.value),
                        "" if iv is None else _csv_num(iv.low),
                        "" if iv is None else _csv_num(iv.high),
                        "" if d is None else _csv_num(d.estimate),
                        "" if d is None else _csv_num(d.low),
                        "" if d is None else _csv_num(d.high),
                        "" if d is None else _csv_num(d.p_value),
                        unit,
                        hib,
                        cmp.convention,
                    ]
                )
    return buf.getvalue()


COMPARE_FORMATS: dict[str, Callable[..., str]] = {
    "table": render_comparison_table,
    "json": render_comparison_json,
    "csv": render_comparison_csv,
    "markdown": render_comparison_markdown,
}


def render_comparison(cmp: Comparison, fmt: str, **kwargs: Any) -> str:
    """Render a :class:`~sc_eval.comparison.Comparison` in format ``fmt`` (a key of
    :data:`COMPARE_FORMATS`)."""
    return COMPARE_FORMATS[fmt](cmp, **kwargs)
