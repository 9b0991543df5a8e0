"""Bootstrap intervals and paired comparisons, without re-sorting per resample.

A bootstrap resample of ``n`` samples is a vector of multinomial counts
``w`` (``w_i`` = how often sample ``i`` was drawn, ``sum w = n``), obtained
as ``bincount(rng.integers(0, n, n))``. A *paired* bootstrap applies the same
counts to every model and every score, so a difference is measured on the
same resampled test set.

Resampling never changes the order of the samples, only their multiplicity:
a drawn sample keeps its confidence, its duplicates tie with it, and tie
blocks of the original sort stay tie blocks (possibly empty). Each score is
therefore sorted **once** (:func:`sc_eval.curves.sort_scores`) and every
resample re-weights the sorted samples in O(n):

* :class:`WeightedBlocks` gathers the counts into sorted order, takes one
  cumulative sum of the weights and one of the weighted errors, and keeps,
  for every tie block that holds an error, its start ``a`` (weight ranked
  above it), its size ``m`` and its errors ``t``, and the errors ``e0``
  ranked above it;
* the area metrics then have closed forms over those blocks. With
  ``H_x = sum_{i<=x} 1/i`` and ``N`` the total weight,

  - ``N * AURC = sum_k E[E_k] / k = sum_b t_b (H_N - mean_{j<m_b} H_{a_b+j})``
    where ``mean_{j<m} H_{a+j} = H_{a+m} - 1 + (a/m)(H_{a+m} - H_a)``
    (an error at position ``p`` is counted in ``r_k`` for every ``k >= p``);
  - ``N^2 * AUGRC = sum_k E[E_k] = sum_b t_b (N - a_b - (m_b - 1) / 2)``;
  - ``AUROC = sum_b t_b (a_b - e0_b + (m_b - t_b) / 2) / (N_correct N_wrong)``
    (correct samples ranked above an error, ties counting one half);
  - ``E[E_k]`` at any ``k`` by binary search, for ``risk@cov=c``;

* every other metric is computed by the ordinary metric code on the
  re-weighted tie blocks, ``Curves(sorted_scores, counts)`` (still O(n), no
  sort).

Intervals are percentile intervals of the replicates; a paired difference
also gets a two-sided bootstrap p-value.

References
----------
Efron & Tibshirani (1993), *An Introduction to the Bootstrap*, ch. 13 (percentile
intervals) and ch. 16 (bootstrap hypothesis tests).
Geifman, Uziel & El-Yaniv (2019), ICLR — AURC. Traub et al. (2024), NeurIPS — AUGRC.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Protocol

import numpy as np

from sc_eval.curves import SortedScores, sort_scores
from sc_eval.errors import UsageError
from sc_eval.metrics import (
    MODEL_METRICS,
    Convention,
    Curves,
    SampleStats,
    aurc_star,
    get_convention,
    get_metric,
)

if TYPE_CHECKING:
    from sc_eval.pipeline import Evaluation

__all__ = [
    "BOOTSTRAP_STREAM",
    "BootstrapResult",
    "Difference",
    "EvaluationIntervals",
    "Interval",
    "PairedBootstrap",
    "WeightedBlocks",
    "bootstrap_counts",
    "bootstrap_metrics",
    "bootstrap_rng",
    "evaluation_intervals",
    "paired_difference",
    "percentile_interval",
]

BOOTSTRAP_STREAM = 1
"""Spawn key of the bootstrap's random stream: ``SeedSequence(seed, spawn_key=(1,))``.

``--seed`` also seeds the tuning split; a separate stream keeps the two
independent while one seed reproduces both."""


# --------------------------------------------------------------------------- intervals
@dataclass(frozen=True)
class Interval:
    """A point estimate with its bootstrap percentile interval.

    Attributes
    ----------
    estimate : float
        Value on the full (not resampled) data.
    low, high : float
        Percentile interval of the bootstrap replicates (NaN without replicates).
    confidence : float
        Nominal coverage of the interval, e.g. 0.95.
    """

    estimate: float
    low: float
    high: float
    confidence: float

    @property
    def excludes_zero(self) -> bool:
        """True when the interval lies strictly on one side of 0."""
        return bool(self.low > 0 or self.high < 0)


@dataclass(frozen=True)
class Difference(Interval):
    """A paired difference ``other - reference`` with its interval and p-value.

    Attributes
    ----------
    p_value : float
        Two-sided bootstrap p-value of ``difference = 0`` (see
        :func:`paired_difference`); NaN without replicates.
    """

    p_value: float = math.nan


def _check_confidence(confidence: float) -> float:
    if not 0.0 < confidence < 1.0 or math.isnan(confidence):
        raise UsageError(f"confidence must be in (0, 1), got {confidence}")
    return float(confidence)


def percentile_interval(
    replicates: np.ndarray, *, estimate: float, confidence: float = 0.95
) -> Interval:
    """Percentile bootstrap interval.

    ``[q_{α/2}, q_{1-α/2}]`` of the finite replicates, ``α = 1 - confidence``
    (Efron & Tibshirani 1993, §13.3). Non-finite replicates (a metric undefined
    on a resample, e.g. AUROC without errors) are left out.

    Examples
    --------
    >>> iv = percentile_interval(np.arange(101.0), estimate=50.0, confidence=0.5)
    >>> iv.low, iv.high
    (25.0, 75.0)
    """
    alpha = 1.0 - _check_confidence(confidence)
    x = np.asarray(replicates, dtype=np.float64)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return Interval(float(estimate), math.nan, math.nan, confidence)
    low, high = np.percentile(x, [100 * alpha / 2, 100 * (1 - alpha / 2)])
    return Interval(float(estimate), float(low), float(high), confidence)


def paired_difference(
    deltas: np.ndarray, *, estimate: float, confidence: float = 0.95
) -> Difference:
    """Interval and two-sided p-value of a paired bootstrap difference.

    Parameters
    ----------
    deltas : ndarray, shape (B,)
        ``metric(other) - metric(reference)`` on each resample (same counts
        for both).
    estimate : float
        The difference on the full data.
    confidence : float
        Coverage of the percentile interval.

    Notes
    -----
    ``p = min(1, 2 min(#{δ* <= 0} + 1, #{δ* >= 0} + 1) / (B + 1))``: twice
    the smaller tail of the bootstrap distribution beyond 0 (Efron &
    Tibshirani 1993, §16.4), with the usual ``+1`` so that ``p > 0``. The
    interval excludes 0 at level ``1 - confidence`` roughly when ``p < 1 -
    confidence``. Identical models give ``δ* = 0`` everywhere and ``p = 1``.

    Examples
    --------
    >>> d = paired_difference(np.full(99, 0.5), estimate=0.5)
    >>> d.low, d.high, d.p_value
    (0.5, 0.5, 0.02)
    """
    iv = percentile_interval(deltas, estimate=estimate, confidence=confidence)
    d = np.asarray(deltas, dtype=np.float64)
    d = d[np.isfinite(d)]
    if d.size == 0:
        return Difference(iv.estimate, iv.low, iv.high, iv.confidence, math.nan)
    below = int(np.count_nonzero(d <= 0)) + 1
    above = int(np.count_nonzero(d >= 0)) + 1
    p = min(1.0, 2.0 * min(below, above) / (d.size + 1))
    return Difference(iv.estimate, iv.low, iv.high, iv.confidence, p)


# --------------------------------------------------------------------------- resampling
def bootstrap_rng(seed: int) -> np.random.Generator:
    """The bootstrap's generator for ``--seed`` (its own stream, see :data:`BOOTSTRAP_STREAM`)."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(BOOTSTRAP_STREAM,)))


def bootstrap_counts(n: int, n_boot: int, *, seed: int = 0) -> Iterator[np.ndarray]:
    """Yield ``n_boot`` multinomial count vectors of ``n`` draws with replacement.

    ``counts = bincount(rng.integers(0, n, n), minlength=n)``: resample ``b``
    holds sample ``i`` exactly ``counts[i]`` times. The same seed gives the
    same sequence.

    Examples
    --------
    >>> [int(c.sum()) for c in bootstrap_counts(5, 3, seed=0)]
    [5, 5, 5]
    """
    rng = bootstrap_rng(seed)
    for _ in range(n_boot):
        yield np.bincount(rng.integers(0, n, size=n), minlength=n)


def _harmonic(n: int) -> np.ndarray:
    """``H[x] = sum_{i=1..x} 1/i`` for ``x = 0..n``."""
    h = np.zeros(n + 1)
    np.cumsum(1.0 / np.arange(1, n + 1, dtype=np.float64), out=h[1:])
    return h


class _SortIndex:
    """What :class:`WeightedBlocks` needs of one sort, computed once per score."""

    def __init__(self, scores: SortedScores):
        n = scores.n
        bid = scores.block_ids
        self.scores = scores
        self.order = scores.order
        self.block_ids = bid
        starts = np.flatnonzero(np.r_[True, bid[1:] != bid[:-1]]) if n else np.zeros(0, np.int64)
        self.starts = starts
        self.ends = np.r_[starts[1:], n].astype(np.int64)
        # sorted positions of the errors, and the error-holding blocks
        self.err_pos = np.flatnonzero(scores.errors)
        eb = bid[self.err_pos]
        first = np.flatnonzero(np.r_[True, eb[1:] != eb[:-1]]) if eb.size else eb
        self.eb_first = first
        self.eb_last = np.r_[first[1:], eb.size].astype(np.int64)
        self.eb_start = starts[eb[first]]
        self.eb_end = self.ends[eb[first]]


class WeightedBlocks:
    """One score's tie blocks re-weighted by bootstrap counts, in O(n), without sorting.

    Parameters
    ----------
    index : _SortIndex
        Built once per score from its :class:`~sc_eval.curves.SortedScores`.
    counts : ndarray of int, shape (n,)
        Multiplicity of every sample in the original order.
    harmonic : ndarray
        ``H[0..N]`` for ``N = counts.sum()``.

    Attributes
    ----------
    N, E : int
        Total weight and weighted number of errors.
    a, m, t, e0 : ndarray of int64
        For each block holding an error: weight ranked above it, its weight,
        its weighted errors, weighted errors ranked above it.
    """

    def __init__(self, index: _SortIndex, counts: np.ndarray, harmonic: np.ndarray):
        self._index = index
        self._counts = counts
        self.harmonic = harmonic
        w = counts[index.order]
        cw = np.empty(w.shape[0] + 1, dtype=np.int64)
        cw[0] = 0
        np.cumsum(w, out=cw[1:])
        ce = np.empty(index.err_pos.shape[0] + 1, dtype=np.int64)
        ce[0] = 0
        np.cumsum(w[index.err_pos], out=ce[1:])
        self.cw, self.ce = cw, ce
        self.N = int(cw[-1])
        self.E = int(ce[-1])
        self.a = cw[index.eb_start]
        self.m = cw[index.eb_end] - self.a
        self.e0 = ce[index.eb_first]
        self.t = ce[index.eb_last] - self.e0

    @cached_property
    def curves(self) -> Curves:
        """The general re-weighted curves, for metrics without a closed form here."""
        return Curves(self._index.scores, self._counts)

    @property
    def error_rate(self) -> float:
        return self.E / self.N

    def aurc_mean(self) -> float:
        """Tie-aware ``(1/N) sum_k E[E_k]/k`` (the ``mean`` convention)."""
        return self._aurc_mean

    @cached_property
    def _aurc_mean(self) -> float:  # shared by aurc, e-aurc and naurc
        return _aurc_sum(self.a, self.m, self.t, self.N, self.harmonic) / self.N

    def oracle_aurc_mean(self) -> float:
        """``aurc_mean`` of the oracle ranking (every error last)."""
        e = np.array([self.E], dtype=np.int64)
        return _aurc_sum(np.array([self.N - self.E]), e, e, self.N, self.harmonic) / self.N

    def augrc_mean(self) -> float:
        """Tie-aware ``(1/N^2) sum_k E[E_k]``."""
        s = _sumprod(self.t, self.N - self.a - (self.m - 1) / 2)
        return float(s / self.N / self.N)

    def auroc(self) -> float:
        """AUROC of correct vs wrong, ties counting one half; NaN without both classes."""
        n_pos, n_neg = self.N - self.E, self.E
        if n_pos <= 0 or n_neg <= 0:
            return math.nan
        s = _sumprod(self.t, (self.a - self.e0) + (self.m - self.t) / 2)
        return float(s / (n_pos * n_neg))

    def cum_errors_at(self, k: int) -> float:
        """``E[E_k]`` for an integer ``1 <= k <= N`` (tie-aware)."""
        ix = self._index
        pos = int(np.searchsorted(self.cw, k, side="left")) - 1  # sorted sample holding k
        b = int(ix.block_ids[pos])
        s, e = int(ix.starts[b]), int(ix.ends[b])
        a = int(self.cw[s])
        m = int(self.cw[e]) - a
        i0 = int(np.searchsorted(ix.err_pos, s))
        i1 = int(np.searchsorted(ix.err_pos, e))
        e0 = float(self.ce[i0])
        t = int(self.ce[i1]) - int(self.ce[i0])
        return e0 + ((k - a) * t) / m

    def risk_at_coverage(self, coverage: float) -> float:
        """Selective risk at ``coverage``, linear in ``k`` between integers (as
        :meth:`sc_eval.curves.RiskCoverage.risk_at_coverage`)."""
        k = coverage * self.N
        if k <= 1.0:
            return self.cum_errors_at(1)
        lo = math.floor(k)
        frac = k - lo
        r_lo = self.cum_errors_at(lo) / lo
        if frac == 0.0:
            return r_lo
        return r_lo + frac * (self.cum_errors_at(lo + 1) / (lo + 1) - r_lo)


def _sumprod(x: np.ndarray, y: np.ndarray) -> float:
    """``sum(x * y)`` without BLAS: ``np.dot`` may wake BLAS threads, which costs
    milliseconds per call on a busy machine (the bootstrap makes thousands)."""
    return float(np.add.reduce(x * y))


def _aurc_sum(a: np.ndarray, m: np.ndarray, t: np.ndarray, n: int, h: np.ndarray) -> float:
    """``sum_b t_b (H_n - mean_{j<m_b} H_{a_b + j})`` over error blocks (``m_b = 0`` → 0)."""
    am = a + m
    m_safe = np.maximum(m, 1)
    mean_h = h[am] - 1.0 + (a / m_safe) * (h[am] - h[a])
    return float(_sumprod(t, h[n] - mean_h))


# --------------------------------------------------------------------------- metric kernels
Kernel = Callable[[WeightedBlocks], float]


def _trapezoid(area: Kernel) -> Kernel:
    """``mean`` area minus ``err/(2N)``: the trapezoid convention (SPEC §2)."""
    return lambda wb: area(wb) - wb.error_rate / (2 * wb.N)


_AURC: dict[str, Kernel] = {
    "mean": WeightedBlocks.aurc_mean,
    "trapezoid": _trapezoid(WeightedBlocks.aurc_mean),
}
_ORACLE_AURC: dict[str, Kernel] = {
    "mean": WeightedBlocks.oracle_aurc_mean,
    "trapezoid": _trapezoid(WeightedBlocks.oracle_aurc_mean),
}
_AUGRC: dict[str, Kernel] = {
    "mean": WeightedBlocks.augrc_mean,
    "trapezoid": _trapezoid(WeightedBlocks.augrc_mean),
    "torch-uncertainty": _trapezoid(WeightedBlocks.augrc_mean),
}


def _naurc(aurc: Kernel, oracle: Kernel) -> Kernel:
    def fn(wb: WeightedBlocks) -> float:
        err = wb.error_rate
        if err <= 0.0 or err >= 1.0:
            return math.nan
        opt = oracle(wb)
        return (aurc(wb) - opt) / (err - opt)

    return fn


def _kernel(name: str, conv: Convention) -> Kernel | None:
    """The closed-form evaluator of a selective metric, or None (use the general curves)."""
    aurc = _AURC.get(conv.name)
    by_name: dict[str, Kernel | None] = {
        "aurc": aurc,
        "e-aurc": (lambda wb: aurc(wb) - aurc_star(wb.error_rate)) if aurc else None,
        "naurc": _naurc(aurc, _ORACLE_AURC[conv.name]) if aurc else None,
        "augrc": _AUGRC.get(conv.name),
        "auroc": WeightedBlocks.auroc,
    }
    if name in by_name:
        return by_name[name]
    family, _, value = name.partition("=")
    if family == "risk@cov":
        coverage = float(value)
        return lambda wb: wb.risk_at_coverage(coverage)
    return None


def _evaluator(name: str, conv: Convention) -> Kernel:
    fast = _kernel(name, conv)
    if fast is not None:
        return fast
    metric = get_metric(name)
    return lambda wb: metric(wb.curves, conv)


# --------------------------------------------------------------------------- bootstrap
class Resamplable(Protocol):
    """What the bootstrap needs of one model (e.g. :class:`~sc_eval.pipeline.ScoredSamples`)."""

    @property
    def errors(self) -> np.ndarray: ...
    @property
    def keys(self) -> dict[str, np.ndarray]: ...
    @property
    def stats(self) -> SampleStats: ...


@dataclass(frozen=True, eq=False)
class BootstrapResult:
    """Bootstrap replicates of every metric of every (model, score), paired.

    Attributes
    ----------
    values : ndarray, shape (B, models, scores, metrics)
        ``values[b, i, j, k]``: metric ``k`` of score ``j`` of model ``i`` on
        resample ``b``. Model metrics (``acc`` …) repeat across scores.
    scores, metrics : tuple of str
    n_boot, seed : int
    """

    values: np.ndarray = field(repr=False)
    scores: tuple[str, ...]
    metrics: tuple[str, ...]
    n_boot: int
    seed: int

    def replicates(self, model: int, score: str, metric: str) -> np.ndarray:
        """The ``B`` replicates of one metric."""
        return self.values[:, model, self.scores.index(score), self.metrics.index(metric)]

    def interval(
        self, model: int, score: str, metric: str, *, estimate: float, confidence: float = 0.95
    ) -> Interval:
        """Percentile interval of one metric (see :func:`percentile_interval`)."""
        return percentile_interval(
            self.replicates(model, score, metric), estimate=estimate, confidence=confidence
        )

    def difference(
        self,
        model: int,
        score: str,
        metric: str,
        *,
        estimate: float,
        reference: int = 0,
        confidence: float = 0.95,
    ) -> Difference:
        """Paired difference ``model - reference`` (see :func:`paired_difference`)."""
        deltas = self.replicates(model, score, metric) - self.replicates(reference, score, metric)
        return paired_difference(deltas, estimate=estimate, confidence=confidence)


class PairedBootstrap:
    """Sorted once, evaluated on any number of resamples (see :func:`bootstrap_metrics`).

    Parameters
    ----------
    samples : sequence of ScoredSamples
        One per model, **aligned**: sample ``i`` is the same test sample in
        every model.
    metrics : sequence of str
        Selective metric names (``aurc``, ``risk@cov=0.9`` …) and/or model
        metric names (``acc``, ``ece``, ``nll``, ``brier``).
    scores : sequence of str, optional
        Confidence scores (default: those of the first model).
    convention : str
        Discretisation of the area metrics.
    """

    def __init__(
        self,
        samples: Sequence[Resamplable],
        *,
        metrics: Sequence[str],
        scores: Sequence[str] | None = None,
        convention: str = "mean",
    ):
        if not samples:
            raise UsageError("a bootstrap needs at least one model")
        n = int(samples[0].errors.shape[0])
        if any(int(s.errors.shape[0]) != n for s in samples):
            raise UsageError("a paired bootstrap needs the same number of samples for every model")
        conv = get_convention(convention)
        self.n = n
        self.samples = tuple(samples)
        self.scores = tuple(scores) if scores is not None else tuple(samples[0].keys)
        self.metrics = tuple(dict.fromkeys(metrics))
        self._model = [
            (k, MODEL_METRICS[m]) for k, m in enumerate(self.metrics) if m in MODEL_METRICS
        ]
        self._selective = [
            (k, _evaluator(m, conv)) for k, m in enumerate(self.metrics) if m not in MODEL_METRICS
        ]
        self._index = [
            [_SortIndex(sort_scores(s.keys[name], s.errors)) for name in self.scores]
            for s in self.samples
        ]
        self._harmonic = _harmonic(n)

    def replicate(self, counts: np.ndarray) -> np.ndarray:
        """Every metric on one resample: array of shape (models, scores, metrics)."""
        out = np.empty((len(self.samples), len(self.scores), len(self.metrics)))
        for i, s in enumerate(self.samples):
            for k, mm in self._model:
                out[i, :, k] = mm(s.stats, counts)
            for j, ix in enumerate(self._index[i]):
                wb = WeightedBlocks(ix, counts, self._harmonic)
                for k, fn in self._selective:
                    out[i, j, k] = fn(wb)
        return out


def bootstrap_metrics(
    samples: Sequence[Resamplable],
    *,
    metrics: Sequence[str],
    scores: Sequence[str] | None = None,
    convention: str = "mean",
    n_boot: int = 1000,
    seed: int = 0,
) -> BootstrapResult:
    """Paired bootstrap replicates of metrics, one sort per score.

    Parameters
    ----------
    samples : sequence of ScoredSamples
        One per model, **aligned**: sample ``i`` is the same test sample in
        every model.
    metrics : sequence of str
        Selective metric names (``aurc``, ``risk@cov=0.9`` …) and/or model
        metric names (``acc``, ``ece``, ``nll``, ``brier``).
    scores : sequence of str, optional
        Confidence scores (default: those of the first model).
    convention : str
        Discretisation of the area metrics.
    n_boot : int
        Number of resamples ``B``.
    seed : int
        Seeds the resampling (:func:`bootstrap_counts`).

    Returns
    -------
    BootstrapResult

    Notes
    -----
    Every resample draws one count vector and applies it to every model and
    score. Cost per resample and score is O(n) (a gather, two cumulative sums,
    closed forms over the error blocks); no resample is sorted.

    Examples
    --------
    >>> from sc_eval.metrics import SampleStats
    >>> from types import SimpleNamespace
    >>> err = np.array([False, True, False, True])
    >>> m = SimpleNamespace(errors=err, keys={"s": np.array([4.0, 3.0, 2.0, 1.0])},
    ...                     stats=SampleStats(~err, np.ones(4), np.zeros(4), np.zeros(4)))
    >>> r = bootstrap_metrics([m, m], metrics=["aurc"], n_boot=50, seed=0)
    >>> r.values.shape, bool((r.replicates(0, "s", "aurc") == r.replicates(1, "s", "aurc")).all())
    ((50, 2, 1, 1), True)
    """
    if n_boot < 1:
        raise UsageError(f"the number of bootstrap resamples must be >= 1, got {n_boot}")
    boot = PairedBootstrap(samples, metrics=metrics, scores=scores, convention=convention)
    out = np.empty((n_boot, len(boot.samples), len(boot.scores), len(boot.metrics)))
    for b, counts in enumerate(bootstrap_counts(boot.n, n_boot, seed=seed)):
        out[b] = boot.replicate(counts)
    return BootstrapResult(out, boot.scores, boot.metrics, n_boot, seed)


# --------------------------------------------------------------------------- single model
@dataclass(frozen=True)
class EvaluationIntervals:
    """Bootstrap intervals of one evaluation (``sc-eval score --bootstrap``).

    Attributes
    ----------
    scores : dict
        Score name → metric name → :class:`Interval`.
    model : dict
        Model metric name (``acc`` …) → :class:`Interval`.
    n_boot, seed : int
    confidence : float
    """

    scores: dict[str, dict[str, Interval]]
    model: dict[str, Interval]
    n_boot: int
    seed: int
    confidence: float


def evaluation_intervals(
    evaluation: Evaluation,
    samples: Resamplable,
    *,
    n_boot: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
) -> EvaluationIntervals:
    """Percentile intervals for every metric of an :class:`~sc_eval.pipeline.Evaluation`.

    Parameters
    ----------
    evaluation : Evaluation
        The point estimates (from :func:`sc_eval.pipeline.evaluate_source`).
    samples : ScoredSamples
        The per-sample vectors returned with it.
    n_boot, seed, confidence
        As in :func:`bootstrap_metrics` and :func:`percentile_interval`.
    """
    ev = evaluation
    _check_confidence(confidence)
    scores = tuple(ev.scores)
    names = (*ev.model_metrics, *ev.metric_names)
    res = bootstrap_metrics(
        [samples], metrics=names, scores=scores, convention=ev.convention, n_boot=n_boot, seed=seed
    )
    first = scores[0] if scores else None
    model = {
        m: res.interval(0, first, m, estimate=v, confidence=confidence)
        if first is not None
        else Interval(v, math.nan, math.nan, confidence)
        for m, v in ev.model_metrics.items()
    }
    per_score = {
        s: {
            m: res.interval(0, s, m, estimate=r.metrics[m], confidence=confidence)
            for m in ev.metric_names
        }
        for s, r in ev.scores.items()
    }
    return EvaluationIntervals(per_score, model, n_boot, seed, confidence)
