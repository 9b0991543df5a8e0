"""Post-hoc tuning of confidence scores on held-out data.

Some scores have free parameters that must be chosen on data the evaluation
never sees: the p-norm of ``maxlogit-pnorm`` and ``msp-pnorm`` and the
temperature of ``msp-pnorm`` and ``msp-ts``. :func:`tune` chooses them on a
*tuning split* and tells the pipeline which samples remain for evaluation.

Tuning split
    Either a seeded random fraction of the input (:func:`split_indices`; the
    split depends only on ``n``, the fraction and the seed, so every model of
    a comparison over the same samples gets the same split), or a separate
    validation file, in which case the input is evaluated whole.

Criteria (by each score's ``Score.tuning`` in the registry)
    ``"aurc"`` — grid search minimising the tie-aware AURC (``mean``
    convention) on the tuning split over the candidates the score declares
    (``Score.grid``): ``p ∈ {0, …, 9}`` (``p = 0`` is centred, not
    normalised) and, for temperatures, 13 values ``T = s · 2^k``,
    ``k = -6..6``, with ``s`` the median gap between the top (normalised) logit
    and the row mean. A score that accepts the ``msp_fallback`` flag
    (``maxlogit-pnorm``) falls back to MSP when MSP has a strictly lower AURC
    on the tuning split than the best ``p`` (Cattelan & Silva); the fall-back
    is recorded as ``msp_fallback = 1`` in the score's parameters (``p`` then
    keeps the best p-norm candidate, unused).

    ``"nll"`` — the temperature minimising the negative log-likelihood
    (:func:`fit_temperature`).

Parameters the user fixed (``--pnorm-p``, ``--temperature``) are not tuned; a
score whose parameters are all fixed is not tuned at all (in particular a fixed
``p`` for ``maxlogit-pnorm`` also switches the MSP fall-back off).

References
----------
Cattelan & Silva (2024), *How to fix a broken confidence estimator: evaluating
post-hoc methods for selective classification with deep neural networks*, UAI
(arXiv 2305.15508) — MaxLogit-pNorm, the ``p`` grid and the MSP fall-back.
Xia, Bouganis et al. (2024), *Towards understanding why label smoothing degrades
selective classification and how to fix it*, arXiv 2403.14715.
Guo et al. (2017), *On calibration of modern neural networks*, ICML —
temperature scaling.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from sc_eval import progress
from sc_eval.curves import sort_scores
from sc_eval.errors import InputError, NonFiniteInput, ScEvalWarning, UsageError
from sc_eval.metrics import Curves, get_convention
from sc_eval.scores import (
    MSP_FALLBACK,
    P_GRID,
    SCORES,
    RowStats,
    Score,
    default_scores,
    get_score,
    pnorm_normalise,
)

if TYPE_CHECKING:
    from sc_eval.io import Predictions
    from sc_eval.pipeline import EvalOptions

__all__ = [
    "DEFAULT_TUNE_FRACTION",
    "P_GRID",
    "TEMPERATURE_STEPS",
    "TuningResult",
    "fit_temperature",
    "split_indices",
    "tune",
    "tuning_aurc",
]

DEFAULT_TUNE_FRACTION = 0.1
TEMPERATURE_STEPS: tuple[float, ...] = tuple(2.0**k for k in range(-6, 7))
T_BOUNDS = (1e-4, 1e4)
CRITERION_CONVENTION = "mean"
_CHUNK_ELEMENTS = 512 * 1024  # 4 MiB of float64 per chunk: cache-sized temporaries


# --------------------------------------------------------------------------- split
def split_indices(n: int, *, fraction: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Seeded random split of ``n`` sample positions into tuning and evaluation sets.

    The split depends only on ``(n, fraction, seed)``: two predictions files
    over the same ``n`` samples (in the same order) get the same split.

    Parameters
    ----------
    n : int
        Number of samples.
    fraction : float
        Fraction in (0, 1) held out for tuning; ``round(fraction * n)`` samples
        (at least 1, and at least 1 left for evaluation).
    seed : int
        Seed of :func:`numpy.random.default_rng`.

    Returns
    -------
    tune, evaluate : ndarray of int64
        Sorted, disjoint positions whose union is ``0 .. n-1``.

    Raises
    ------
    UsageError
        ``fraction`` outside (0, 1), or too few samples to split.

    Examples
    --------
    >>> t, e = split_indices(10, fraction=0.2, seed=0)
    >>> len(t), len(e), sorted(np.concatenate([t, e]).tolist()) == list(range(10))
    (2, 8, True)
    """
    if not (0.0 < fraction < 1.0):
        raise UsageError(f"--tune-split must be a fraction in (0, 1), got {fraction}")
    k = max(1, round(fraction * n))
    if k >= n:
        raise UsageError(
            f"--tune-split {fraction} of N = {n} samples leaves none to evaluate; "
            "use a smaller fraction or --val"
        )
    perm = np.random.default_rng(seed).permutation(n)
    return np.sort(perm[:k]).astype(np.int64), np.sort(perm[k:]).astype(np.int64)


def _gather(preds: Predictions, index: np.ndarray | None) -> np.ndarray:
    """The rows at sorted positions ``index`` (all rows when None), read chunk by chunk."""
    size = max(1, _CHUNK_ELEMENTS // max(preds.num_classes, 1))
    parts = []
    for start in range(0, preds.n, size):
        stop = min(start + size, preds.n)
        if index is None:
            parts.append(preds.values.rows(start, stop))
            continue
        lo, hi = np.searchsorted(index, [start, stop])
        if hi > lo:
            parts.append(preds.values.rows(start, stop)[index[lo:hi] - start])
    return np.concatenate(parts) if parts else np.empty((0, preds.num_classes))


def _chunks(rows: np.ndarray) -> list[tuple[int, int]]:
    size = max(1, _CHUNK_ELEMENTS // max(rows.shape[1], 1))
    return [(s, min(s + size, rows.shape[0])) for s in range(0, rows.shape[0], size)]


# --------------------------------------------------------------------------- criteria
def tuning_aurc(confidence: np.ndarray, errors: np.ndarray) -> float:
    """The tuning criterion: tie-aware AURC (``mean`` convention) of a ranking.

    Examples
    --------
    >>> tuning_aurc(np.array([2.0, 1.0]), np.array([False, True]))
    0.25
    """
    conv = get_convention(CRITERION_CONVENTION)
    return float(conv.aurc(Curves(sort_scores(confidence, errors))))


def _score_keys(score: Score, rows: np.ndarray, params: Mapping[str, float]) -> np.ndarray:
    # the stored dtype as is: RowStats sorts it (float32 sorts twice as fast as float64)
    # and takes exact float64 differences, so the keys equal the evaluation's
    keys = [score(RowStats(logits=rows[a:b]), params)[0] for a, b in _chunks(rows)]
    return np.concatenate(keys)


def _logit_scale(rows: np.ndarray, p: float | None) -> float:
    """Median gap between the top entry and the row mean of the (p-normalised) logits."""
    gaps = []
    for a, b in _chunks(rows):
        z = np.asarray(rows[a:b], dtype=np.float64)
        if p is not None:
            z = pnorm_normalise(z, p)
        gaps.append(z.max(axis=1) - z.mean(axis=1))
    s = float(np.median(np.concatenate(gaps)))
    return s if s > 0 and math.isfinite(s) else 1.0


def _nll_terms(rows: np.ndarray, labels: np.ndarray, beta: float) -> tuple[float, float, float]:
    """NLL of ``softmax(beta z)`` and its first two derivatives in ``beta`` (means over rows)."""
    nll = grad = curv = 0.0
    for a, b in _chunks(rows):
        z = np.asarray(rows[a:b], dtype=np.float64)
        z = z - z.max(axis=1, keepdims=True)
        zb = beta * z
        m = zb.max(axis=1, keepdims=True)
        e = np.exp(zb - m)
        s = e.sum(axis=1, keepdims=True)
        prob = e / s
        z_true = z[np.arange(b - a), labels[a:b]]
        ez = np.einsum("ij,ij->i", prob, z)
        dev = z - ez[:, None]
        nll += float(np.sum(m[:, 0] + np.log(s[:, 0]) - beta * z_true))
        grad += float(np.sum(ez - z_true))
        curv += float(np.sum(np.einsum("ij,ij->i", prob, dev * dev)))
    n = rows.shape[0]
    return nll / n, grad / n, curv / n


def fit_temperature(
    logits: np.ndarray,
    labels: np.ndarray,
    *,
    bounds: tuple[float, float] = T_BOUNDS,
    tol: float = 1e-10,
    max_iter: int = 200,
) -> float:
    """Temperature ``T`` minimising the NLL of ``softmax(z / T)`` (temperature scaling).

    With ``beta = 1 / T`` the mean NLL, ``mean_i(logsumexp(beta z_i) - beta z_{i,y_i})``,
    is convex in ``beta``; its derivative ``mean_i(E_{p_i}[z] - z_{i,y_i})`` is
    increasing. The root is found by Newton's method safeguarded by bisection in
    ``log beta``, so the search cannot diverge. When the optimum lies outside
    ``bounds`` the nearest bound is returned.

    Parameters
    ----------
    logits : ndarray, shape (n, C)
    labels : ndarray of int, shape (n,)
    bounds : (float, float)
        Smallest and largest temperature considered.
    tol : float
        Stop when the bracket on ``log T`` is narrower than this.
    max_iter : int

    Returns
    -------
    float

    References
    ----------
    Guo et al. (2017), *On calibration of modern neural networks*, ICML.

    Examples
    --------
    >>> z = np.array([[4.0, 0.0], [0.0, 4.0], [4.0, 0.0], [4.0, 0.0]])
    >>> round(fit_temperature(z, np.array([0, 1, 0, 1])), 3)  # 3 of 4 right: p = 0.75
    3.641
    """
    labels = np.asarray(labels, dtype=np.int64)
    lo, hi = math.log(1.0 / bounds[1]), math.log(1.0 / bounds[0])  # bracket on log beta
    if _nll_terms(logits, labels, math.exp(lo))[1] >= 0:
        return float(bounds[1])
    if _nll_terms(logits, labels, math.exp(hi))[1] <= 0:
        return float(bounds[0])
    u = min(max(0.0, lo), hi)
    for _ in range(max_iter):
        beta = math.exp(u)
        _, grad, curv = _nll_terms(logits, labels, beta)
        if grad == 0:
            break
        if grad > 0:
            hi = u
        else:
            lo = u
        if hi - lo < tol:
            break
        if curv > 0 and beta - grad / curv > 0:  # Newton step in beta
            u_new = math.log(beta - grad / curv)
            if abs(u_new - u) < tol:
                u = u_new
                break
        else:
            u_new = 0.5 * (lo + hi)
        u = u_new if lo < u_new < hi else 0.5 * (lo + hi)
    return float(1.0 / math.exp(u))


# --------------------------------------------------------------------------- tuners
@dataclass
class _Choice:
    """What a tuner decided for one score."""

    params: dict[str, float]
    tuned: bool
    details: dict[str, Any] = field(default_factory=dict)
    note: str | None = None


def _grid(score: Score, rows: np.ndarray, fixed: Mapping[str, float]) -> list[dict[str, float]]:
    """Candidate parameter sets: every combination of the free parameters' values in
    ``score.grid`` (a fixed one keeps its value), each with a free ``T`` over
    :data:`TEMPERATURE_STEPS` times the logit scale of its ``p``."""
    combos: list[dict[str, float]] = [{}]
    for name, values in score.grid.items():
        choices = [float(fixed[name])] if name in fixed else list(values)
        combos = [{**c, name: v} for c in combos for v in choices]
    out = []
    for base in combos:
        if "T" not in score.defaults:
            out.append(base)
        elif "T" in fixed:
            out.append({**base, "T": float(fixed["T"])})
        else:
            s = _logit_scale(rows, base.get("p"))
            out += [{**base, "T": s * k} for k in TEMPERATURE_STEPS]
    return out


def _tune_aurc(
    score: Score, rows: np.ndarray, labels: np.ndarray, errors: np.ndarray, fixed: dict[str, float]
) -> _Choice:
    if all(k in fixed for k in score.defaults):
        return _Choice(score.resolve(fixed), False, {"fixed": sorted(fixed)})
    if not errors.any() or errors.all():
        what = "no misclassified" if not errors.any() else "only misclassified"
        why = (
            f"{score.name}: the tuning split has {what} samples, so AURC cannot choose "
            "parameters; kept the defaults"
        )
        warnings.warn(why, ScEvalWarning, stacklevel=4)
        return _Choice(score.resolve(fixed), False, {"fixed": sorted(fixed)}, why)
    candidates = _grid(score, rows, fixed)
    aurcs = []
    with progress.task(f"tuning {score.name}", len(candidates), unit="candidates") as advance:
        for c in candidates:
            aurcs.append(tuning_aurc(_score_keys(score, rows, c), errors))
            advance(1)
    best = int(np.argmin(aurcs))
    params = score.resolve(candidates[best])
    details: dict[str, Any] = {
        "criterion": f"aurc ({CRITERION_CONVENTION} convention, tuning split)",
        "fixed": sorted(fixed),
        "candidates": [{**c, "aurc": a} for c, a in zip(candidates, aurcs, strict=True)],
        "best_aurc": aurcs[best],
    }
    note: str | None = None
    if MSP_FALLBACK in score.flags:
        msp_aurc = tuning_aurc(_score_keys(get_score("msp"), rows, {}), errors)
        details["msp_aurc"] = msp_aurc
        fell_back = msp_aurc < aurcs[best]
        details["fallback"] = "msp" if fell_back else None
        if fell_back:
            params[MSP_FALLBACK] = 1.0
            note = (
                f"{score.name} ranks by MSP (fall-back): MSP's tuning AURC "
                f"{100 * msp_aurc:.2f}% < {100 * aurcs[best]:.2f}% at best p={params['p']:g}"
            )
    return _Choice(params, True, details, note)


def _tune_nll(
    score: Score, rows: np.ndarray, labels: np.ndarray, errors: np.ndarray, fixed: dict[str, float]
) -> _Choice:
    if "T" in fixed:
        return _Choice(score.resolve(fixed), False, {"fixed": ["T"]})
    t = fit_temperature(rows, labels)
    at_bound = t in T_BOUNDS
    details = {
        "criterion": "nll (tuning split)",
        "fixed": sorted(fixed),
        "nll_at_T=1": _nll_terms(rows, labels, 1.0)[0],
        "nll": _nll_terms(rows, labels, 1.0 / t)[0],
        "at_bound": at_bound,
    }
    note = None
    if at_bound:
        note = f"{score.name}: the NLL-optimal temperature lies at the search bound T={t:g}"
        warnings.warn(note, ScEvalWarning, stacklevel=4)
    return _Choice(score.resolve({**fixed, "T": t}), True, details, note)


TunerFn = Callable[[Score, np.ndarray, np.ndarray, np.ndarray, dict[str, float]], _Choice]
TUNERS: dict[str, TunerFn] = {"aurc": _tune_aurc, "nll": _tune_nll}


# --------------------------------------------------------------------------- entry point
@dataclass(frozen=True)
class TuningResult:
    """What :func:`tune` decided.

    Attributes
    ----------
    params : dict
        Score name → parameters, for every requested score (fixed, default or tuned).
    eval_index : ndarray of int64 or None
        Sorted positions of the samples to evaluate (those tuning never saw);
        None when tuning used a separate validation file (evaluate everything).
    tune_index : ndarray of int64 or None
        Sorted positions used for tuning (None with a validation file).
    tuned : tuple of str
        Scores whose parameters were chosen here.
    info : dict
        JSON-able record: split, seed, sizes, per-score candidates and decisions.
    """

    params: dict[str, dict[str, float]]
    eval_index: np.ndarray | None
    tune_index: np.ndarray | None
    tuned: tuple[str, ...]
    info: dict[str, Any]


def _check_val(preds: Predictions, val: Predictions, names: Sequence[str]) -> None:
    if val.num_classes != preds.num_classes:
        raise InputError(
            f"expected C = {preds.num_classes} classes to match {preds.name}, "
            f"got C = {val.num_classes}",
            path=val.name,
            field=val.kind,
        )
    needs = [n for n in names if get_score(n).needs_logits]
    if needs and not val.has_logits:
        raise InputError(
            f"expected logits to tune {', '.join(needs)}, the file holds probabilities",
            path=val.name,
            field=val.kind,
        )


def _rows(n: int) -> str:
    return f"{n} row" if n == 1 else f"{n} rows"


def tune(preds: Predictions, opts: EvalOptions) -> TuningResult:
    """Choose the parameters of the tunable scores in ``opts.scores`` on held-out data.

    Parameters
    ----------
    preds : Predictions
        The input being evaluated.
    opts : EvalOptions
        ``tune_split`` (fraction of ``preds`` held out, seeded by ``opts.seed``)
        or ``val`` (a separate tuning file); ``params`` holds user-fixed values.

    Returns
    -------
    TuningResult

    Raises
    ------
    UsageError
        Both or neither of ``tune_split`` and ``val``; a bad fraction.
    InputError
        A validation file with another number of classes, probabilities where
        logits are needed, or non-finite rows.
    """
    if (opts.tune_split is None) == (opts.val is None):
        raise UsageError("give exactly one of --tune-split and --val")
    names = list(
        dict.fromkeys(
            opts.scores if opts.scores is not None else default_scores(has_logits=preds.has_logits)
        )
    )
    tunable = [n for n in names if get_score(n).tuning is not None]
    info: dict[str, Any]
    tune_index: np.ndarray | None
    eval_index: np.ndarray | None
    if opts.val is not None:
        source = opts.val
        _check_val(preds, source, tunable)
        tune_index = eval_index = None
        info = {"split": "val", "val": source.name, "n_tune": source.n, "n_eval": preds.n}
    else:
        assert opts.tune_split is not None
        source = preds
        tune_index, eval_index = split_indices(preds.n, fraction=opts.tune_split, seed=opts.seed)
        info = {
            "split": "random",
            "fraction": opts.tune_split,
            "seed": opts.seed,
            "n_tune": int(tune_index.shape[0]),
            "n_eval": int(eval_index.shape[0]),
            # the whole input's labels: what another run needs to reproduce this split
            "labels_sha256_all": preds.labels_sha256,
        }
    params = {n: dict(opts.params.get(n, {})) for n in names}
    tuned: list[str] = []
    per_score: dict[str, Any] = {}
    notes: list[str] = []
    if tunable:
        rows = _gather(source, tune_index)
        labels = source.labels if tune_index is None else source.labels[tune_index]
        bad = ~np.isfinite(rows).all(axis=1)
        if bad.any():
            if opts.nan_policy == "refuse":
                at = np.flatnonzero(bad)
                first = int(at[0] if tune_index is None else tune_index[at[0]])
                raise NonFiniteInput(
                    f"expected finite values, found NaN or Inf in {_rows(at.size)} of the "
                    f"tuning split (first at row {first}); --nan-policy drop or rank-last "
                    "tunes on the finite rows",
                    path=source.name,
                    field=source.kind,
                    rows=int(at.size),
                    first=first,
                )
            # parameters are chosen on the finite rows only, whatever the evaluation does
            rows, labels = rows[~bad], labels[~bad]
            info["tune_nonfinite_dropped"] = int(bad.sum())
            if rows.shape[0] == 0:
                raise InputError(
                    "every tuning row holds NaN or Inf", path=source.name, field=source.kind
                )
        errors = np.argmax(rows, axis=1) != labels
        info["tune_error_rate"] = float(errors.mean())
        with progress.task("tuning", len(tunable), unit="scores") as advance:
            for name in tunable:
                score = get_score(name)
                assert score.tuning is not None
                fixed = {k: float(v) for k, v in params[name].items()}
                choice = TUNERS[score.tuning](score, rows, labels, errors, fixed)
                params[name] = choice.params
                per_score[name] = {"params": choice.params, "tuned": choice.tuned, **choice.details}
                if choice.tuned:
                    tuned.append(name)
                if choice.note:
                    notes.append(choice.note)
                advance(1)
    else:
        effect = (
            f"--val {opts.val.name} is not used"
            if opts.val is not None
            else "the split only removes samples from the evaluation"
        )
        tunable_names = ", ".join(n for n, s in SCORES.items() if s.tuning is not None)
        warnings.warn(
            f"tuning was requested but none of the scores is tunable ({tunable_names}): {effect}",
            ScEvalWarning,
            stacklevel=3,
        )
    if notes:
        info["decisions"] = "; ".join(notes)
    info["scores"] = per_score
    return TuningResult(params, eval_index, tune_index, tuple(tuned), info)
