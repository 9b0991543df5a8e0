"""Plots of a :class:`~sc_eval.diagnosis.Diagnosis` (``sc-eval diagnose --plot DIR``).

Written to a directory, one PNG per view, each atomically:

* ``statistics-<model>.png`` — empirical CDFs of each statistic for correct
  (solid) and wrong (dashed) predictions, the separation AUROC in each title;
  the feature norm too when features were given;
* ``calibration.png`` — per model, the reliability diagram (accuracy per
  confidence bin against the diagonal, ECE in the title) above the MSP
  histogram of correct and wrong predictions, the confidence ceiling marked;
* ``suppression-<second>-vs-<first>.png`` — the ratio of centred max-logits by
  the first model's confidence bin, for all samples, both right and both
  wrong, with bootstrap intervals.

matplotlib (``pip install 'sc-eval[plot]'``) is imported only here.
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from sc_eval.diagnosis import Diagnosis, FeatureSummary, ModelDiagnosis
from sc_eval.errors import UsageError
from sc_eval.outputs import atomic_output
from sc_eval.plot import INSTALL_HINT
from sc_eval.suppression import Suppression

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["check_plot_dir", "plot_diagnosis"]

MAX_POINTS = 2000


def check_plot_dir(path: str | os.PathLike[str]) -> Path:
    """Refuse a plot directory that cannot be made, or a missing matplotlib, before any work."""
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise UsageError(f"--plot {p}: exists and is not a directory")
    parent = p.parent if str(p.parent) else Path(".")
    if not p.exists() and not parent.is_dir():
        raise UsageError(f"--plot {p}: its parent directory does not exist")
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise UsageError(
            f"plots need matplotlib, which is not installed; run: {INSTALL_HINT}"
        ) from None
    return p


def _slug(name: str) -> str:
    stem = Path(name).name
    for suffix in (".safetensors", ".npz", ".pt", ".pth", ".predictions"):
        stem = stem.removesuffix(suffix)
    return re.sub(r"[^A-Za-z0-9._-]+", "_", stem) or "model"


def _ecdf(ax: Axes, x: np.ndarray, **style: Any) -> None:
    if x.size == 0:
        return
    xs = np.sort(x)
    ys = np.arange(1, xs.size + 1) / xs.size
    if xs.size > MAX_POINTS:
        k = np.unique(np.linspace(0, xs.size - 1, MAX_POINTS).astype(np.int64))
        xs, ys = xs[k], ys[k]
    ax.step(xs, ys, where="post", **style)


def _save(fig: Figure, path: Path) -> Path:
    with atomic_output(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120, metadata={"Software": "sc-eval"})
    return path


def _statistics_figure(m: ModelDiagnosis, path: Path, label: str) -> Path:
    from matplotlib.figure import Figure

    panels = len(m.statistics) + 1
    rows, cols = (2, 4) if panels <= 8 else (3, 3)
    fig = Figure(figsize=(3.25 * cols, 3.1 * rows), layout="constrained")
    axes = fig.subplots(rows, cols).ravel()
    for ax in axes[panels:]:
        ax.set_visible(False)
    err = m.errors
    for ax, s in zip(axes, m.statistics, strict=False):
        x = m.values[s.name]
        _ecdf(ax, x[~err], color="C0", lw=1.4, label="correct")
        _ecdf(ax, x[err], color="C3", lw=1.4, ls="--", label="wrong")
        ax.set_title(f"{s.statistic.label} — AUROC {100 * s.auroc.estimate:.1f}%", fontsize=10)
        ax.grid(alpha=0.3)
    ax = axes[len(m.statistics)]
    f = m.features
    if f is None:
        ax.set_visible(False)
    else:
        _norm_panel(ax, f)
    for a in axes[::cols]:
        a.set_ylabel("fraction of group ≤ x")
    axes[0].legend(loc="lower right", fontsize="small")
    fig.suptitle(f"{label}: correct (solid) vs wrong (dashed), empirical CDFs, N={m.n}")
    return _save(fig, path)


def _norm_panel(ax: Axes, f: FeatureSummary) -> None:
    ax.boxplot(
        [[f.norm_correct.q(q) for q in (0.05, 0.25, 0.5, 0.75, 0.95)],
         [f.norm_wrong.q(q) for q in (0.05, 0.25, 0.5, 0.75, 0.95)]],
        whis=(0, 100),
    )  # fmt: skip
    ax.set_xticks([1, 2], ["correct", "wrong"])
    ax.set_title(f"feature ‖h‖₂ (5–95%) — AUROC {100 * f.norm_auroc:.1f}%", fontsize=10)
    ax.grid(alpha=0.3)


def _calibration_figure(d: Diagnosis, path: Path, labels: list[str]) -> Path:
    from matplotlib.figure import Figure

    k = len(d.models)
    fig = Figure(figsize=(4.6 * k + 0.6, 7.6), layout="constrained")
    axes = np.asarray(fig.subplots(2, k, squeeze=False))
    for j, (m, name) in enumerate(zip(d.models, labels, strict=True)):
        ax = axes[0, j]
        bins = [b for b in m.reliability if b.count]
        mid = [(b.low + b.high) / 2 for b in bins]
        ax.bar(mid, [b.accuracy for b in bins], width=1 / 15, color="C0", alpha=0.75,
               edgecolor="white", label="accuracy")  # fmt: skip
        ax.plot([b.confidence for b in bins], [b.accuracy for b in bins], "o", color="C1",
                ms=4, label="(mean confidence, accuracy)")  # fmt: skip
        ax.plot([0, 1], [0, 1], color="black", lw=1, ls="--", label="perfect calibration")
        ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="confidence (MSP)", ylabel="accuracy")
        ax.set_title(f"{name}: reliability, ECE {100 * m.ece.estimate:.2f}%", fontsize=10)
        ax.grid(alpha=0.3)
        if j == 0:
            ax.legend(loc="upper left", fontsize="small")
        ax = axes[1, j]
        msp = m.values["msp"]
        edges = np.linspace(0, 1, 101)
        ax.hist(msp[~m.errors], bins=edges, color="C0", alpha=0.7, label="correct")
        ax.hist(msp[m.errors], bins=edges, color="C3", alpha=0.6, label="wrong")
        c = m.ceiling
        ax.axvspan(c.top - c.band, min(1.0, c.top), color="0.5", alpha=0.2, label="ceiling band")
        if not math.isnan(c.alpha):
            ax.axvline(c.level, color="black", lw=1, label=f"plateau, α≈{c.alpha:.3f}")
        ax.set(xlim=(0, 1), xlabel="MSP", ylabel="samples")
        ax.set_title(f"{name}: MSP of correct and wrong predictions", fontsize=10)
        ax.legend(loc="upper left", fontsize="small")
        ax.grid(alpha=0.3)
    return _save(fig, path)


def _suppression_figure(s: Suppression, path: Path, first: str, second: str) -> Path:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 4.8), layout="constrained")
    ax = fig.subplots()
    x = np.arange(1, len(s.edges) + 1)
    styles = {"all": ("black", "o-"), "both right": ("C0", "s-"), "both wrong": ("C3", "^--")}
    for offset, (group, (colour, fmt)) in zip((-0.12, 0.0, 0.12), styles.items(), strict=True):
        cells = [s.cell(b, group) for b in range(len(s.edges))]
        est = np.array([c.ratio.estimate for c in cells])
        lo = np.array([c.ratio.low for c in cells])
        hi = np.array([c.ratio.high for c in cells])
        yerr = np.vstack([est - lo, hi - est])
        yerr = np.where(np.isfinite(yerr), yerr, 0.0)
        ax.errorbar(x + offset, est, yerr=yerr, fmt=fmt, color=colour, ms=4, capsize=2,
                    lw=1.2, label=group)  # fmt: skip
    labels = [f"{lo:.4g}–{hi:.4g}" for lo, hi in s.edges]
    ax.set_xticks(x, labels, rotation=35, ha="right", fontsize=8)
    ax.set(
        xlabel=f"{first}'s MSP (equal-count bins, least confident first)",
        ylabel=f"Σ c({second}) / Σ c({first}),  c = max z − mean z",
    )
    ax.set_title(
        f"{second} vs {first}: centred max-logit ratio by {first}'s confidence — "
        f"suppression pattern {s.verdict}",
        fontsize=10,
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    return _save(fig, path)


def plot_diagnosis(d: Diagnosis, directory: str | os.PathLike[str]) -> list[Path]:
    """Write every plot of ``d`` into ``directory`` (created); return the paths.

    Raises
    ------
    UsageError
        matplotlib missing, or ``directory`` cannot be a directory.
    """
    out = check_plot_dir(directory)
    out.mkdir(exist_ok=True)
    slugs: list[str] = []
    for m in d.models:
        s = _slug(m.name)
        slugs.append(s if s not in slugs else f"{s}-{len(slugs) + 1}")
    paths = [
        _statistics_figure(m, out / f"statistics-{s}.png", s)
        for m, s in zip(d.models, slugs, strict=True)
    ]
    paths.append(_calibration_figure(d, out / "calibration.png", slugs))
    for k, pair in enumerate(d.suppression, start=1):
        target = out / f"suppression-{slugs[k]}-vs-{slugs[0]}.png"
        paths.append(_suppression_figure(pair, target, slugs[0], slugs[k]))
    return paths
