"""Risk–coverage plots (optional extra ``sc-eval[plot]``: matplotlib, Agg, no display).

One figure, two panels; a score keeps its colour across models and a model
keeps its line style across scores, so 2 models × 4 scores read as 4 colours
in 2 styles; each model's oracle (every error rejected first) is black in the
model's style. Tuned parameters are in the legend; a tuned score that fell
back to MSP is drawn as a wide pale band under MSP (it is the same curve). With
many scores and no explicit choice, a default subset is drawn:

* left: selective risk ``r_k = E[E_k] / k`` against coverage ``k / n``
  (Geifman & El-Yaniv 2017);
* right: generalised risk ``E[E_k] / n`` against coverage, the curve whose
  area is AUGRC (Traub et al. 2024).

Curves are the tie-aware curves of :mod:`sc_eval.curves`. The format follows
the file suffix (``.png`` or ``.svg``); the file is written atomically.
matplotlib is imported only when a plot is made.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sc_eval.curves import RiskCoverage, sort_scores
from sc_eval.errors import UsageError, printable
from sc_eval.metrics import OracleCurves
from sc_eval.ood import plot_series
from sc_eval.pipeline import ScoredSamples

__all__ = [
    "PLOT_FORMATS",
    "Curve",
    "check_plot_path",
    "curves_of",
    "curves_of_models",
    "plot_curves",
    "plot_risk_coverage",
    "svg_text",
]

PLOT_FORMATS: dict[str, str] = {".png": "png", ".svg": "svg"}
#: Curves drawn when the caller names no scores and there would be more than
#: :data:`MAX_CURVES`: the baseline, the raw logit and the two post-hoc fixes.
DEFAULT_SUBSET = ("msp", "maxlogit", "maxlogit-pnorm", "msp-pnorm", "msp-ts")
MAX_CURVES = 10
MODEL_STYLES: tuple[Any, ...] = ("-", "--", ":", "-.", (0, (5, 1, 1, 1)), (0, (1, 3)))
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


def _label(name: str, params: dict[str, float] | None) -> str:
    """``maxlogit-pnorm (p=4)``; a fall-back to MSP says so."""
    shown = {k: v for k, v in (params or {}).items() if k != "msp_fallback"}
    text = name + (" (" + ", ".join(f"{k}={v:g}" for k, v in shown.items()) + ")" if shown else "")
    if (params or {}).get("msp_fallback"):
        text += " = msp (fall-back)"
    return text


def choose_scores(available: Sequence[str], n_models: int) -> tuple[list[str], bool]:
    """The scores to draw when none were named: all of them, or :data:`DEFAULT_SUBSET`
    (those present) when all would give more than :data:`MAX_CURVES` curves.

    Returns ``(scores, subset_taken)``.
    """
    names = list(dict.fromkeys(available))
    if len(names) * n_models <= MAX_CURVES:
        return names, False
    subset = [s for s in DEFAULT_SUBSET if s in names] or names[: max(1, MAX_CURVES // n_models)]
    return subset, True


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
    params: Sequence[dict[str, dict[str, float]]] | None = None,
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
        Scores to draw (default: every score, or :data:`DEFAULT_SUBSET` when
        that would be more than :data:`MAX_CURVES` curves; a warning says so).
    title : str, optional
    announce : bool
        Print ``sc-eval: wrote PATH`` once the file is in place.
    params : sequence of dict, optional
        Per model, each score's parameters (``Evaluation.scores[s].params``),
        shown in the legend.

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    UsageError
        Unknown suffix or matplotlib missing (``pip install 'sc-eval[plot]'``).
    """
    curves = curves_of(series, scores=scores, params=params)
    return plot_curves(curves, path, title=title, announce=announce)


@dataclass(frozen=True)
class Curve:
    """One line of a risk–coverage figure: a score's keys and the errors they rank
    (``keys`` None: the oracle, every error rejected first)."""

    label: str
    keys: np.ndarray | None
    errors: np.ndarray
    colour: str
    style: Any = "-"
    faint: bool = False  #: drawn as a wide pale band (a curve equal to another)


def curves_of(
    series: Sequence[tuple[str, ScoredSamples]],
    *,
    scores: Sequence[str] | None = None,
    params: Sequence[dict[str, dict[str, float]]] | None = None,
) -> list[Curve]:
    """The :class:`Curve` of each model × score, and each model's oracle (see
    :func:`plot_risk_coverage` for the arguments)."""
    available = [s for _, samples in series for s in samples.keys]
    names, subset = (
        (list(scores), False) if scores is not None else choose_scores(available, len(series))
    )
    if subset:
        import warnings

        warnings.warn(
            f"the plot shows {len(names)} of {len(set(available))} scores "
            f"({', '.join(names)}); name others with --scores",
            stacklevel=2,
        )
    colour = {name: f"C{i % 10}" for i, name in enumerate(dict.fromkeys(names))}
    curves: list[Curve] = []
    for m, (model, samples) in enumerate(series):
        style = MODEL_STYLES[m % len(MODEL_STYLES)]
        model_params = params[m] if params is not None else {}
        for name in names:
            if name not in samples.keys:
                continue
            text = _label(name, model_params.get(name))
            fallback = bool((model_params.get(name) or {}).get("msp_fallback"))
            curves.append(
                Curve(
                    f"{model} · {text}" if len(series) > 1 else text,
                    samples.keys[name],
                    samples.errors,
                    colour[name],
                    style,
                    faint=fallback,
                )
            )
        label = f"oracle · {model}" if len(series) > 1 else "oracle"
        curves.append(Curve(label, None, samples.errors, "black", style))
    return curves


def curves_of_models(models: Sequence[tuple[str, ScoredSamples, Any, Any]]) -> list[Curve]:
    """Curves of ``(name, scored samples, OOD mask or None, evaluation)`` per model: the
    SCOD and ID-only curves of a mixed set, the tuned parameters in the legend."""
    series = [(plot_series(name, s, ood), ev) for name, s, ood, ev in models]
    return curves_of(
        [curve for parts, _ in series for curve in parts],
        params=[{n: r.params for n, r in ev.scores.items()} for parts, ev in series for _ in parts],
    )


def plot_curves(
    curves: Sequence[Curve],
    path: str | os.PathLike[str],
    *,
    title: str | None = None,
    announce: bool = False,
) -> Path:
    """Draw the risk–coverage and generalised-risk panels of ``curves`` to a file."""
    fmt = check_plot_path(path)
    fig = _figure(curves, title)
    meta: dict[str, Any] = {"Date": None} if fmt == "svg" else {"Software": "sc-eval"}
    from sc_eval.outputs import atomic_output

    with atomic_output(path, announce=announce) as tmp:
        fig.savefig(tmp, format=fmt, dpi=150, metadata=meta)
    return Path(path)


def _figure(curves: Sequence[Curve], title: str | None) -> Any:
    """The two-panel figure of ``curves`` (matplotlib imported here: it is optional)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(12, 4.8), layout="constrained")
    ax_risk, ax_gen = fig.subplots(1, 2)
    for c in curves:
        if c.keys is None:
            curve = OracleCurves(c.errors.shape[0], float(np.count_nonzero(c.errors))).tied
            look: dict[str, Any] = {"lw": 0.9}
        else:
            curve = RiskCoverage(sort_scores(c.keys, c.errors).blocks())
            look = {"lw": 4.5, "alpha": 0.3, "zorder": 1} if c.faint else {"lw": 1.4}
        label = printable(c.label)  # a file name's control characters, shown escaped
        _draw(ax_risk, ax_gen, curve, color=c.colour, ls=c.style, label=label, **look)
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
        fig.suptitle(printable(title))
    return fig


def svg_text(curves: Sequence[Curve], *, title: str | None = None) -> str | None:
    """The figure of ``curves`` as an ``<svg>`` element to inline in HTML (no XML
    declaration, no DOCTYPE, no date), or None when matplotlib is not installed."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return None
    fig = _figure(curves, title)
    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata={"Date": None})
    text = buf.getvalue()
    return text[text.index("<svg") :]
