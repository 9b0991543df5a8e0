"""The view of ``sc-eval diagnose``: a :class:`~sc_eval.diagnosis.Diagnosis`.

Each model's signals, confidence ceiling, reliability, repair and neural
collapse; each pair's suppression; a summary. Human tables show AUROC,
accuracy and ECE in percent and say so; CSV holds every number as a fraction
(or in the unit it names).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

from sc_eval import numbers as num
from sc_eval.diagnose_report import diagnosis_document
from sc_eval.diagnosis import QUANTILES, Diagnosis, GroupSummary, ModelDiagnosis
from sc_eval.render.registry import register_view
from sc_eval.render.view import Grid, Page, Records, Section, View
from sc_eval.stats import Interval
from sc_eval.suppression import Suppression

__all__ = ["SHOWN_GROUPS", "sections"]

SHOWN_GROUPS = ("all", "both right", "both wrong")
"""Suppression groups the tables show (JSON and CSV hold all of them)."""


# --------------------------------------------------------------------------- cells
def _num(x: float) -> str:
    return num.NA if math.isnan(x) else f"{x:.4g}"


def _pct(x: float) -> str:
    return num.pct(x)


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
    text = num.pct_delta(iv.estimate)
    if math.isnan(iv.low):
        return text
    return f"{text}\n[{num.pct_delta(iv.low)}, {num.pct_delta(iv.high)}]"


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
    return Grid(f"{m.name} — correct vs wrong", heads, rows)


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
    return Grid(title, heads, rows)


def _ceiling_grid(m: ModelDiagnosis) -> Grid:
    c = m.ceiling
    rows = [
        ["top MSP (99.9% quantile)", f"{c.top:.4f}"],
        [f"correct with MSP ≥ top − {c.band:g} (%)", _pct(c.correct_share)],
        [f"wrong with MSP ≥ top − {c.band:g} (%)", _pct(c.wrong_share)],
        ["median MSP of those correct", "n/a" if math.isnan(c.level) else f"{c.level:.4f}"],
        ["α estimate", "not estimated" if math.isnan(c.alpha) else f"{c.alpha:.4f}"],
    ]
    return Grid(f"{m.name} — confidence ceiling", ["quantity", "value"], rows)


def _reliability_grid(m: ModelDiagnosis) -> Grid:
    rows = [
        [
            f"{100 * b.low:.1f}–{100 * b.high:.1f}",
            str(b.count),
            _pct(b.confidence),
            _pct(b.accuracy),
            num.pct_delta(b.accuracy - b.confidence),
        ]
        for b in m.reliability
        if b.count
    ]
    heads = ["confidence bin (%)", "n", "mean conf. (%)", "accuracy (%)", "acc − conf"]
    title = f"{m.name} — reliability (15 bins; ECE {_pct(m.ece.estimate)}%)"
    return Grid(title, heads, rows)


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
    return Grid(title, ["measure", "value", "collapse"], rows)


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
    return Grid(title, heads, rows)


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


def diagnosis_document_view(d: Diagnosis, **_: Any) -> Any:
    return diagnosis_document(d)


def page(d: Diagnosis, **_: Any) -> Page:
    out = []
    for heading, grids, notes in sections(d):
        summary = heading == "summary"
        out.append(Section(heading, grids=tuple(grids), notes=tuple(notes), plain_notes=summary))
    return Page(f"sc-eval diagnose: {', '.join(m.name for m in d.models)}", tuple(out))


def records(d: Diagnosis, **_: Any) -> Records:
    """Long format: one row per number (model, section, item, group, quantity, value, low,
    high, unit); empty cells where undefined."""
    header = ["model", "section", "item", "group", "quantity", "value", "low", "high", "unit"]
    return Records(header, list(_csv_rows(d)))


def provenance(d: Diagnosis, **_: Any) -> list[tuple[str, str]]:
    out = [("alignment", d.alignment)]
    for m in d.models:
        out.append((f"{m.name}: samples", f"N={m.n}, C={m.num_classes}"))
        if m.features is not None:
            out.append((f"{m.name}: features", m.features.path))
    return out


register_view(Diagnosis, View(page, diagnosis_document_view, records, provenance))
