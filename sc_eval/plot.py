"""Risk–coverage plots (optional extra ``sc-eval[plot]``: matplotlib, Agg, no display).

One figure, two panels, every (model, score) pair as a solid line and each
model's oracle (every error rejected first) dashed:

* left: selective risk ``r_k = E[E_k] / k`` against coverage ``k / n``
  (Geifman & El-Yaniv 2017);
* right: generalised risk ``E[E_k] / n`` against coverage, the curve whose
  area is AUGRC (Traub et al. 2024).

Curves are the tie-aware curves of :mod:`sc_eval.curves`. The format follows
the file suffix (``.png`` or ``.svg``); the file is written atomically.
matplotlib is imported only when a plot is made.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sc_eval.curves import RiskCoverage, sort_scores
from sc_eval.errors import UsageError
from sc_eval.metrics import OracleCurves
from sc_eval.pipeline import ScoredSamples

__all__ = ["PLOT_FORMATS", "check_plot_path", "plot_risk_coverage"]

PLOT_FORMATS: dict[str, str] = {".png": "png", ".svg": "svg"}
MAX_POINTS = 2000
INSTALL_HINT = "pip install 'sc-eval[plot]'"


def check_plot_path(path: str | os.PathLike[str]) -> str:
    """Validate a plot path before any work: known suffix, matplotlib installed.

    Returns
    -------
    str
        The format (``png`` or ``svg``).

    Raises
    ------
    UsageError
        Unknown suffix, or matplotlib missing (with the install command).
    """
    suffix = Path(path).suffix.lower()
    if suffix not in PLOT_FORMATS:
        raise UsageError(
            f"{path}: cannot tell the plot format from the suffix '{suffix}'; "
            f"use {' or '.join(PLOT_FORMATS)}"
        )
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise UsageError(
            f"plots need matplotlib, which is not installed; run: {INSTALL_HINT}"
        ) from None
    return PLOT_FORMATS[suffix]


def _points(n: int, max_points: int = MAX_POINTS) -> np.ndarray:
    """Integer coverages ``k`` to draw: all when few, else dense at both ends."""
    if n <= max_points:
        return np.arange(1, n + 1)
    half = max_points // 2
    k = np.concatenate([np.geomspace(1, n, half), np.linspace(1, n, half)])
    return np.unique(np.rint(k).astype(np.int64))


def _draw(ax_risk: Any, ax_gen: Any, curve: RiskCoverage, **style: Any) -> None:
    k = _points(curve.n)
    cov = k / curve.n
    ax_risk.plot(cov, 100 * curve.risk[k - 1], **style)
    ax_gen.plot(cov, 100 * curve.cum_errors[k - 1] / curve.n, **style)


def plot_risk_coverage(
    series: Sequence[tuple[str, ScoredSamples]],
    path: str | os.PathLike[str],
    *,
    scores: Sequence[str] | None = None,
    title: str | None = None,
    announce: bool = False,
) -> Path:
    """Draw risk–coverage and generalised-risk curves of models × scores to a file.

    Parameters
    ----------
    series : sequence of (str, ScoredSamples)
        Model name and its per-sample vectors (from
        :func:`sc_eval.pipeline.evaluate_source`).
    path : path-like
        ``.png`` or ``.svg``.
    scores : sequence of str, optional
        Scores to draw (default: every score of each model).
    title : str, optional

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    UsageError
        Unknown suffix or matplotlib missing (``pip install 'sc-eval[plot]'``).
    """
    fmt = check_plot_path(path)
    from matplotlib.figure import Figure

    from sc_eval.outputs import atomic_output

    fig = Figure(figsize=(12, 4.8), layout="constrained")
    ax_risk, ax_gen = fig.subplots(1, 2)
    colours = [f"C{i}" for i in range(10)]
    oracle_styles = ["--", "-.", ":", (0, (5, 2, 1, 2))]
    line = 0
    for m, (model, samples) in enumerate(series):
        names = list(scores) if scores is not None else list(samples.keys)
        for name in names:
            curve = RiskCoverage(sort_scores(samples.keys[name], samples.errors).blocks())
            label = f"{model} · {name}" if len(series) > 1 else name
            _draw(ax_risk, ax_gen, curve, color=colours[line % 10], lw=1.3, label=label)
            line += 1
        oracle = OracleCurves(samples.n, float(np.count_nonzero(samples.errors))).tied
        label = f"oracle · {model}" if len(series) > 1 else "oracle"
        _draw(
            ax_risk,
            ax_gen,
            oracle,
            color="black" if m == 0 else "0.45",
            ls=oracle_styles[m % len(oracle_styles)],
            lw=1.1,
            label=label,
        )
    ax_risk.set(xlabel="coverage", ylabel="selective risk (%)", title="risk–coverage", xlim=(0, 1))
    ax_gen.set(
        xlabel="coverage",
        ylabel="generalised risk (%)",
        title="generalised risk (area = AUGRC)",
        xlim=(0, 1),
    )
    for ax in (ax_risk, ax_gen):
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
    ax_gen.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize="small", frameon=False)
    if title:
        fig.suptitle(title)
    meta: dict[str, Any] = {"Date": None} if fmt == "svg" else {"Software": "sc-eval"}
    with atomic_output(path, announce=announce) as tmp:
        fig.savefig(tmp, format=fmt, dpi=150, metadata=meta)
    return Path(path)
