"""Renderers of a :class:`~sc_eval.diagnose.Diagnosis`: ``table`` (Rich), ``json``, ``csv``,
``markdown``.

Each table is declared once as a :class:`sc_eval.report.Grid` and drawn by Rich
or as Markdown; JSON and CSV hold every number as a fraction (or in the unit
it names). Human tables show AUROC, accuracy and ECE in percent and say so.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Callable, Iterator
from typing import Any

from sc_eval.diagnose import (
    DIAGNOSIS_SCHEMA,
    DIAGNOSIS_VERSION,
    QUANTILES,
    Diagnosis,
    GroupSummary,
    ModelDiagnosis,
)
from sc_eval.report import Grid, _md_table, csv_writer, json_safe
from sc_eval.stats import Interval
from sc_eval.suppression import GROUPS, Suppression

__all__ = ["FORMATS", "diagnosis_document", "render", "sections"]

SHOWN_GROUPS = ("all", "both right", "both wrong")
"""Suppression groups the tables show (JSON and CSV hold all of :data:`GROUPS`)."""


# --------------------------------------------------------------------------- cells
def _num(x: float) -> str:
    return "n/a" if math.isnan(x) else f"{x:.4g}"


def _pct(x: float) -> str:
    return "n/a" if math.isnan(x) else f"{100 * x:.2f}"


def _pct_iv(iv: Interval) -> str:
    if math.isnan(iv.low):
        return _pct(iv.estimate)
    return f"{_pct(iv.estimate)}\n[{_pct(iv.low)}, {_pct(iv.high)}]"


def _ratio_iv(iv: Interval) -> str:
    if math.isnan(iv.estimate):
        return "n/a"
    if math.isnan(iv.low):
        return f"{iv.estimate:.3f}"
    return f"{iv.estimate:.3f}\n[{iv.low:.3f}, {iv.high:.3f}]"


def _delta(iv: Interval | None) -> str:
    if iv is None:
        return ""
    text = "n/a" if math.isnan(iv.estimate) else f"{100 * iv.estimate:+.2f}"
    if math.isnan(iv.low):
        return text
    return f"{text}\n[{100 * iv.low:+.2f}, {100 * iv.high:+.2f}]"


def _spread(g: GroupSummary) -> str:
    if g.n == 0:
        return "n/a (none)"
    return f"{_num(g.q(0.5))}\n[{_num(g.q(0.25))}, {_num(g.q(0.75))}]"


# --------------------------------------------------------------------------- grids
def _statistics_grid(m: ModelDiagnosis) -> Grid:
    rows = [
        [s.statistic.label, _pct_iv(s.auroc), _spread(s.correct), _spread(s.wrong)]
        for s in m.statistics
    ]
    heads = ["statistic", "AUROC (%)", "correct: median [IQR]", "wrong: median [IQR]"]
    return Grid(f"{m.name} — correct vs wrong", heads, rows, set(), lead=1)


def _score_label(score: str, params: dict[str, float], tuned: bool) -> str:
    if params.get("msp_fallback"):
        return f"{score}\n(tuned: fell back\nto MSP)"
    text = ", ".join(f"{k}={v:g}" for k, v in params.items())
    if not text:
        return score
    return f"{score}\n({text}{', tuned' if tuned else ''})"


def _with_delta(value: Interval, delta: Interval | None) -> str:
    text = _pct_iv(value)
    if delta is None:
        return text
    return f"{text}\nΔ {_delta(delta)}"


def _repair_grid(m: ModelDiagnosis) -> Grid:
    rows = [
        [
            _score_label(r.score, r.params, r.tuned),
            _with_delta(r.auroc, r.delta_auroc),
            _with_delta(r.aurc, r.delta_aurc),
        ]
        for r in m.repair
    ]
    heads = ["score", "AUROC (%)", "AURC (%)"]
    title = f"{m.name} — post-hoc repair (Δ = score − MSP, points)"
    return Grid(title, heads, rows, set(), lead=1)


def _ceiling_grid(m: ModelDiagnosis) -> Grid:
    c = m.ceiling
    rows = [
        ["top MSP (99.9% quantile)", f"{c.top:.4f}"],
        [f"correct with MSP ≥ top − {c.band:g} (%)", _pct(c.correct_share)],
        [f"wrong with MSP ≥ top − {c.band:g} (%)", _pct(c.wrong_share)],
        ["median MSP of those correct", "n/a" if math.isnan(c.level) else f"{c.level:.4f}"],
        ["α estimate", "not estimated" if math.isnan(c.alpha) else f"{c.alpha:.4f}"],
    ]
    return Grid(f"{m.name} — confidence ceiling", ["quantity", "value"], rows, set(), lead=1)


def _reliability_grid(m: ModelDiagnosis) -> Grid:
    rows = [
        [
            f"{100 * b.low:.1f}–{100 * b.high:.1f}",
            str(b.count),
            _pct(b.confidence),
            _pct(b.accuracy),
            f"{100 * (b.accuracy - b.confidence):+.2f}",
        ]
        for b in m.reliability
        if b.count
    ]
    heads = ["confidence bin (%)", "n", "mean conf. (%)", "accuracy (%)", "acc − conf"]
    title = f"{m.name} — reliability (15 bins; ECE {_pct(m.ece.estimate)}%)"
    return Grid(title, heads, rows, set(), lead=1)


def _collapse_grid(m: ModelDiagnosis) -> Grid | None:
    f = m.features
    if f is None:
        return None
    nc = f.collapse
    etf = -1.0 / (nc.classes - 1) if nc.classes > 1 else math.nan
    rows = [
        ["NC1 tr(Σ_W Σ_B†)/C", _num(nc.nc1), "0"],
        ["NC2 equinorm (CV of ‖μ_c − μ_G‖)", _num(nc.equinorm), "0"],
        ["NC2 equiangularity (mean |cos + 1/(C−1)|)", _num(nc.equiangular), "0"],
        ["pairwise cosine: mean", _num(nc.cos_mean), f"{etf:.4g}"],
        ["pairwise cosine: std", _num(nc.cos_std), "0"],
        ["NC3 ‖W/‖W‖ − M/‖M‖‖²_F", "no W in file" if not f.has_W else _num(nc.nc3), "0"],
        ["tr Σ_W / tr Σ_B", _num(nc.within / nc.between) if nc.between else "n/a", "0"],
        ["‖h‖₂ correct: median [IQR]", _spread(f.norm_correct).replace("\n", " "), ""],
        ["‖h‖₂ wrong: median [IQR]", _spread(f.norm_wrong).replace("\n", " "), ""],
        ["‖h‖₂ AUROC correct vs wrong (%)", _pct(f.norm_auroc), "50"],
    ]
    title = f"{m.name} — neural collapse (N={nc.n}, D={nc.dim}, C={nc.classes})"
    return Grid(title, ["measure", "value", "collapse"], rows, set(), lead=1)


def _suppression_grid(s: Suppression) -> Grid:
    rows = []
    for b, (lo, hi) in enumerate(s.edges):
        cells = [s.cell(b, g) for g in SHOWN_GROUPS]
        rows.append(
            [
                f"{lo:.4g}–{hi:.4g}",
                str(cells[0].n),
                *(_ratio_iv(c.ratio) if c.n else "n/a" for c in cells),
            ]
        )
    rows.append(["all bins", str(sum(c.n for c in s.cells if c.group == "all")),
                 *(_ratio_iv(s.overall[g]) for g in SHOWN_GROUPS)])  # fmt: skip
    heads = ["first's MSP", "n", *SHOWN_GROUPS]
    title = (
        f"suppression — centred max-logit of second / first, in {len(s.edges)} equal-count "
        f"bins of the first's MSP; "
        f"first = {s.first}, second = {s.second}"
    )
    return Grid(title, heads, rows, set(), lead=1)


def _suppression_notes(s: Suppression) -> list[str]:
    def d(x: Interval) -> str:
        tail = "" if math.isnan(x.low) else f" [{x.low:+.3f}, {x.high:+.3f}]"
        return f"{x.estimate:+.3f}{tail}"

    return [
        f"trend (most − least confident bin, all samples): {d(s.trend)}; contrast (both right − "
        f"both wrong): {d(s.contrast)}; suppression pattern: {s.verdict}",
        "ratio = Σ centred max-logit of the second model / Σ of the first, over the cell; "
        "'first right' and 'second right' cells are in the JSON and CSV output",
    ]


def _model_head(m: ModelDiagnosis) -> str:
    t = m.tuning or {}
    split = ""
    if t.get("split") == "val":
        split = f"; p-norm tuned on {t.get('val')} ({t.get('n_tune')} samples)"
    elif t.get("n_tune"):
        split = f"; p-norm tuned on {t['n_tune']} held-out samples, every number on the other {m.n}"
    return (
        f"{m.name}: N={m.n}, C={m.num_classes}, accuracy {_pct(m.acc.estimate)}%, "
        f"ECE {_pct(m.ece.estimate)}%{split}"
    )


def sections(d: Diagnosis) -> Iterator[tuple[str, list[Grid], list[str]]]:
    """``(heading, grids, notes)`` in display order: each model, then each pair, then summary."""
    for m in d.models:
        grids = [_statistics_grid(m), _ceiling_grid(m), _reliability_grid(m), _repair_grid(m)]
        nc = _collapse_grid(m)
        if nc is not None:
            grids.append(nc)
        notes = [f"ceiling: {m.ceiling.finding}"]
        if m.features is not None:
            notes.append(
                f"features: {m.features.path}; neural collapse on all {m.features.collapse.n} "
                "samples of the file"
            )
        yield _model_head(m), grids, notes
    for s in d.suppression:
        yield (
            f"suppression by confidence: {s.second} vs {s.first}",
            [_suppression_grid(s)],
            (_suppression_notes(s)),
        )
    bs = (
        f"[low, high]: {100 * d.confidence:g}% percentile bootstrap interval, B={d.n_boot}, "
        f"seed={d.seed}"
        if d.n_boot
        else "no bootstrap (--bootstrap 0): no intervals"
    )
    yield "summary", [], [*d.lines, bs]


# --------------------------------------------------------------------------- renderers
def render_table(d: Diagnosis, *, console: Any = None, **_: Any) -> str:
    """Rich tables (printed to ``console`` when given, else returned as plain text)."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    buf = io.StringIO()
    console = console or Console(file=buf, no_color=True, width=100, highlight=False)
    for heading, grids, notes in sections(d):
        console.print(f"[bold]{escape(heading)}[/bold]")
        for g in grids:
            console.print(f"[italic]{escape(g.title)}[/italic]")
            t = Table(show_lines=any("\n" in c for row in g.rows for c in row))
            for j, h in enumerate(g.headers):
                t.add_column(h, justify="left" if j < g.lead else "right", overflow="fold")
            for row in g.rows:
                t.add_row(*(escape(c) for c in row))
            console.print(t)
        for line in notes:
            console.print(escape(line) if heading == "summary" else f"[dim]{escape(line)}[/dim]")
        console.print()
    return buf.getvalue()


def render_markdown(d: Diagnosis, **_: Any) -> str:
    parts = []
    for heading, grids, notes in sections(d):
        parts.append(f"### {heading}\n")
        parts += [_md_table(g) + "\n" for g in grids]
        if notes:
            parts.append("\n".join(f"- {n}" for n in notes) + "\n")
    return "\n".join(parts)


def _iv(iv: Interval | None) -> dict[str, float] | None:
    if iv is None:
        return None
    out = {"estimate": iv.estimate, "low": iv.low, "high": iv.high}
    p = getattr(iv, "p_value", None)
    if p is not None:
        out["p_value"] = p
    return out


def _grp(g: GroupSummary) -> dict[str, Any]:
    return {
        "n": g.n,
        "mean": g.mean,
        "quantiles": dict(zip(map(str, QUANTILES), g.quantiles, strict=True)),
    }


def _model_dict(m: ModelDiagnosis) -> dict[str, Any]:
    c = m.ceiling
    out: dict[str, Any] = {
        "name": m.name,
        "n": m.n,
        "num_classes": m.num_classes,
        "acc": _iv(m.acc),
        "ece": _iv(m.ece),
        "tuning": m.tuning,
        "statistics": {
            s.name: {
                "label": s.statistic.label,
                "formula": s.statistic.formula,
                "confident_high": s.statistic.confident_high,
                "correct": _grp(s.correct),
                "wrong": _grp(s.wrong),
                "auroc": _iv(s.auroc),
                "aurc": _iv(s.aurc),
            }
            for s in m.statistics
        },
        "ceiling": {
            "top": c.top,
            "band": c.band,
            "correct_share": c.correct_share,
            "wrong_share": c.wrong_share,
            "level": c.level,
            "alpha": c.alpha,
            "plateau": c.plateau,
            "finding": c.finding,
        },
        "reliability": [
            {
                "low": b.low,
                "high": b.high,
                "count": b.count,
                "confidence": b.confidence,
                "accuracy": b.accuracy,
            }
            for b in m.reliability
        ],
        "repair": [
            {
                "score": r.score,
                "params": r.params,
                "tuned": r.tuned,
                "auroc": _iv(r.auroc),
                "aurc": _iv(r.aurc),
                "delta_auroc": _iv(r.delta_auroc),
                "delta_aurc": _iv(r.delta_aurc),
            }
            for r in m.repair
        ],
        "features": None,
    }
    f = m.features
    if f is not None:
        nc = f.collapse
        out["features"] = {
            "path": f.path,
            "n": nc.n,
            "dim": nc.dim,
            "classes": nc.classes,
            "nc1": nc.nc1,
            "nc2_equinorm": nc.equinorm,
            "nc2_equiangular": nc.equiangular,
            "cos_mean": nc.cos_mean,
            "cos_std": nc.cos_std,
            "cos_etf": -1.0 / (nc.classes - 1) if nc.classes > 1 else math.nan,
            "nc3": nc.nc3 if f.has_W else None,
            "trace_within": nc.within,
            "trace_between": nc.between,
            "rank_between": nc.rank_between,
            "norm_correct": _grp(f.norm_correct),
            "norm_wrong": _grp(f.norm_wrong),
            "norm_auroc": f.norm_auroc,
        }
    return out


def _pair_dict(s: Suppression) -> dict[str, Any]:
    return {
        "first": s.first,
        "second": s.second,
        "statistic": "centred-maxlogit",
        "ratio": "sum over the cell of second / sum of first",
        "bins": [
            {
                "bin": b,
                "msp_min": lo,
                "msp_max": hi,
                "groups": {
                    g: {"n": s.cell(b, g).n, "ratio": _iv(s.cell(b, g).ratio)} for g in GROUPS
                },
            }
            for b, (lo, hi) in enumerate(s.edges)
        ],
        "overall": {g: _iv(iv) for g, iv in s.overall.items()},
        "trend": _iv(s.trend),
        "contrast": _iv(s.contrast),
        "verdict": s.verdict,
    }


def diagnosis_document(d: Diagnosis) -> dict[str, Any]:
    """The versioned JSON document of ``sc-eval diagnose --format json`` (NaN as null)."""
    from sc_eval import __version__

    return json_safe(
        {
            "schema": DIAGNOSIS_SCHEMA,
            "version": DIAGNOSIS_VERSION,
            "tool": f"sc-eval {__version__}",
            "command": "diagnose",
            "units": "fractions (acc, ece, auroc, aurc, shares, MSP); logit statistics in "
            "logit units; entropy in nats; feature norms in feature units; ratios unitless",
            "alignment": d.alignment,
            "bootstrap": {
                "n_boot": d.n_boot,
                "seed": d.seed,
                "confidence": d.confidence,
                "method": "percentile bootstrap over samples",
            },
            "models": [_model_dict(m) for m in d.models],
            "suppression": [_pair_dict(s) for s in d.suppression],
            "summary": list(d.lines),
        }
    )


def render_json(d: Diagnosis, **_: Any) -> str:
    return json.dumps(diagnosis_document(d), indent=2, allow_nan=False) + "\n"


def _csv_rows(d: Diagnosis) -> Iterator[list[Any]]:
    def iv_row(model: str, section: str, item: str, group: str, q: str, iv: Interval | None,
               unit: str) -> list[Any]:  # fmt: skip
        if iv is None:
            return [model, section, item, group, q, "", "", "", unit]
        return [model, section, item, group, q, iv.estimate, iv.low, iv.high, unit]

    for m in d.models:
        yield iv_row(m.name, "model", "", "", "acc", m.acc, "fraction")
        yield iv_row(m.name, "calibration", "", "", "ece", m.ece, "fraction")
        for s in m.statistics:
            yield iv_row(m.name, "statistics", s.name, "", "auroc", s.auroc, "fraction")
            yield iv_row(m.name, "statistics", s.name, "", "aurc", s.aurc, "fraction")
            for grp, g in (("correct", s.correct), ("wrong", s.wrong)):
                yield [m.name, "statistics", s.name, grp, "n", g.n, "", "", "count"]
                yield [m.name, "statistics", s.name, grp, "mean", g.mean, "", "", "value"]
                for lev, v in zip(QUANTILES, g.quantiles, strict=True):
                    yield [m.name, "statistics", s.name, grp, f"q{lev:g}", v, "", "", "value"]
        c = m.ceiling
        for q, v, unit in (("top", c.top, "msp"), ("band", c.band, "msp"),
                           ("correct_share", c.correct_share, "fraction"),
                           ("wrong_share", c.wrong_share, "fraction"),
                           ("level", c.level, "msp"), ("alpha", c.alpha, "fraction")):  # fmt: skip
            yield [m.name, "ceiling", "", "", q, v, "", "", unit]
        for i, b in enumerate(m.reliability):
            for q, v, unit in (("count", b.count, "count"), ("confidence", b.confidence,
                               "fraction"), ("accuracy", b.accuracy, "fraction")):  # fmt: skip
                yield [m.name, "reliability", f"bin{i}:{b.low:.4f}-{b.high:.4f}", "", q, v, "",
                       "", unit]  # fmt: skip
        for r in m.repair:
            item = r.score + "".join(f";{k}={v:g}" for k, v in r.params.items())
            yield iv_row(m.name, "repair", item, "", "auroc", r.auroc, "fraction")
            yield iv_row(m.name, "repair", item, "", "aurc", r.aurc, "fraction")
            if r.delta_auroc is not None:
                yield iv_row(m.name, "repair", item, "", "delta_auroc", r.delta_auroc, "fraction")
                yield iv_row(m.name, "repair", item, "", "delta_aurc", r.delta_aurc, "fraction")
        f = m.features
        if f is not None:
            nc = f.collapse
            for q, v in (("nc1", nc.nc1), ("nc2_equinorm", nc.equinorm),
                         ("nc2_equiangular", nc.equiangular), ("cos_mean", nc.cos_mean),
                         ("cos_std", nc.cos_std), ("nc3", nc.nc3 if f.has_W else math.nan),
                         ("norm_auroc", f.norm_auroc)):  # fmt: skip
                yield [m.name, "collapse", "", "", q, v, "", "", "unitless"]
            for grp, g in (("correct", f.norm_correct), ("wrong", f.norm_wrong)):
                for lev, v in zip(QUANTILES, g.quantiles, strict=True):
                    yield [m.name, "feature-norm", "", grp, f"q{lev:g}", v, "", "", "feature"]
    for sup in d.suppression:
        pair = f"{sup.second}/{sup.first}"
        for cell in sup.cells:
            lo, hi = sup.edges[cell.bin]
            item = f"bin{cell.bin}:{lo:.6g}-{hi:.6g}"
            yield [pair, "suppression", item, cell.group, "n", cell.n, "", "", "count"]
            yield iv_row(pair, "suppression", item, cell.group, "ratio", cell.ratio, "ratio")
        for name, iv in sup.overall.items():
            yield iv_row(pair, "suppression", "all bins", name, "ratio", iv, "ratio")
        yield iv_row(pair, "suppression", "", "", "trend", sup.trend, "ratio")
        yield iv_row(pair, "suppression", "", "", "contrast", sup.contrast, "ratio")


def render_csv(d: Diagnosis, **_: Any) -> str:
    """Long format: one row per number (model, section, item, group, quantity, value, low,
    high, unit); empty cells where undefined."""
    buf = io.StringIO()
    w = csv_writer(buf)
    w.writerow(["model", "section", "item", "group", "quantity", "value", "low", "high", "unit"])
    for row in _csv_rows(d):
        w.writerow(
            [
                ""
                if isinstance(v, float) and math.isnan(v)
                else (repr(float(v)) if isinstance(v, float) else v)
                for v in row
            ]
        )
    return buf.getvalue()


FORMATS: dict[str, Callable[..., str]] = {
    "table": render_table,
    "json": render_json,
    "csv": render_csv,
    "markdown": render_markdown,
}


def render(d: Diagnosis, fmt: str, **kwargs: Any) -> str:
    """Render a diagnosis in format ``fmt`` (a key of :data:`FORMATS`)."""
    return FORMATS[fmt](d, **kwargs)
