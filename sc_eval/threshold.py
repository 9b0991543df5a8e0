"""A rejection threshold you can ship: Selection with Guaranteed Risk (SGR).

Given a calibration set and a confidence score, find the threshold ``θ`` on the
score's rank key such that *accept iff key ≥ θ* has the largest coverage whose
selective risk is certified, with probability at least ``1 - δ`` over the draw
of the calibration set, to be at most a target risk ``r*``.

The certificate is the exact one-sided binomial tail (Clopper–Pearson) bound.
Among ``m`` accepted calibration samples with ``k`` errors, the upper bound on
the true selective risk at confidence ``1 - δ`` is

.. math::

    B^*(k, m, δ) = \\sup \\{\\, b \\in [0, 1] : \\sum_{j=0}^{k} \\binom{m}{j}
    b^j (1 - b)^{m-j} \\ge δ \\,\\},

the ``1 - δ`` quantile of ``Beta(k + 1, m - k)``. SGR (Geifman & El-Yaniv 2017,
Algorithm 1) binary-searches the sorted calibration scores for the largest
coverage whose bound is at most ``r*``; because the search looks at up to
``⌈log2 n⌉`` thresholds, each bound is computed at ``δ / ⌈log2 n⌉`` (union
bound), so that *all* the tested bounds hold simultaneously with probability
at least ``1 - δ``.

Tied confidences are never split: candidate thresholds sit between tie blocks
of :func:`sc_eval.curves.sort_scores` (the one sort), so the accepted set, its
size and its errors are exact integers and a deployed ``key ≥ θ`` rule
reproduces the calibration decision exactly.

References
----------
Geifman, Y. & El-Yaniv, R. (2017). *Selective classification for deep neural
networks*. NeurIPS — Algorithm 1 (SGR) and its risk guarantee.
Clopper, C. J. & Pearson, E. S. (1934). *The use of confidence or fiducial
limits illustrated in the case of the binomial*. Biometrika 26(4).
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import os
import sys
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from sc_eval.curves import SortedScores, sort_scores
from sc_eval.errors import ScEvalWarning, UsageError
from sc_eval.io import Predictions, labels_sha256
from sc_eval.ood import check_ood_tuning
from sc_eval.pipeline import EvalOptions, ScoredSamples, get_nan_policy, score_samples
from sc_eval.scores import check_scores_for_input, get_score
from sc_eval.sources import KeyOptions, load_source
from sc_eval.tuning import tune

__all__ = [
    "OperatingPoint",
    "RiskControl",
    "TestOutcome",
    "ThresholdResult",
    "binomial_cdf",
    "binomial_upper_bound",
    "calibrate",
    "clopper_pearson",
    "data_sha256",
    "risk_bound_at_coverage",
    "select_threshold",
    "select_with_guaranteed_risk",
]

THRESHOLD_SCHEMA = "sc-eval/threshold"
THRESHOLD_VERSION = 1


# --------------------------------------------------------------------------- binomial tail
_BELOW_ONE = math.nextafter(1.0, 0.0)
_BRENTQ_RTOL = 4 * sys.float_info.epsilon  # the tightest relative tolerance brentq accepts
_ULP_STEPS = 512  # how far (in ulps) the quantile may miss the tail's root and still be used


def binomial_cdf(k: int, n: int, p: float) -> float:
    """Binomial cumulative probability ``P(X <= k)``, ``X ~ Binomial(n, p)``.

    Computed through the regularised incomplete beta function,

    .. math::

        P(X \\le k) = \\sum_{j=0}^{k} \\binom{n}{j} p^j (1-p)^{n-j}
                    = 1 - I_p(k + 1, n - k),

    with :func:`scipy.special.betaincc` (Boost's ``ibetac``), so it neither
    overflows nor loses the far tail.

    Examples
    --------
    >>> round(binomial_cdf(1, 3, 0.5), 6)
    0.5
    """
    if k < 0:
        return 0.0
    if k >= n or p <= 0.0:
        return 1.0
    if p >= 1.0:
        return 0.0
    from scipy import special  # 0.2 s to import: only once a bound is computed

    return float(special.betaincc(k + 1, n - k, p))


def _tail_minus_delta(k: int, n: int, delta: float) -> Callable[[float], float]:
    """``b ↦ P(Bin(n, b) <= k) - δ``, decreasing in ``b``.

    For ``δ > ½`` it is computed as ``(1 - δ) - I_b(k + 1, n - k)``: ``1 - δ``
    is exact there (Sterbenz), and the complement keeps the digits that
    ``tail - δ`` would cancel when both are close to 1.
    """
    from scipy import special

    a, b = k + 1, n - k
    if delta > 0.5:
        rest = 1.0 - delta
        return lambda x: rest - float(special.betainc(a, b, x))
    return lambda x: float(special.betaincc(a, b, x)) - delta


def _round_up_to_root(excess: Callable[[float], float], b: float) -> float | None:
    """The smallest double near ``b`` where ``excess`` turns negative (``None`` when that
    is more than :data:`_ULP_STEPS` ulps away: ``b`` was not an accurate root)."""
    if excess(b) >= 0:
        for _ in range(_ULP_STEPS):
            b = math.nextafter(b, 1.0)
            if excess(b) < 0:
                return b
        return None
    for _ in range(_ULP_STEPS):
        below = math.nextafter(b, 0.0)
        if below <= 0.0 or excess(below) >= 0:
            return b
        b = below
    return None


def binomial_upper_bound(k: int, n: int, delta: float) -> float:
    """One-sided Clopper–Pearson upper bound ``B*(k, n, δ)`` on a binomial proportion.

    .. math::

        B^* = \\sup \\{ b \\in [0, 1] : P(\\mathrm{Bin}(n, b) \\le k) \\ge δ \\}

    which is the ``1 - δ`` quantile of ``Beta(k + 1, n - k)``. If ``k`` errors
    are seen among ``n`` i.i.d. trials, the true error probability is at most
    ``B*`` with probability at least ``1 - δ``. ``k = 0`` has the closed form
    ``1 - δ^{1/n}``. Otherwise the quantile comes from
    :func:`scipy.special.betainccinv` (Boost's ``ibetac_inv``) and is rounded up
    to the first double at which the tail (:func:`binomial_cdf`) is below
    ``δ``, so that, as far as double precision can tell, it never under-states.
    Where the quantile misses by more than 512 ulps (about 1% of cases, and
    the far tail, e.g. ``k = 33``, ``n = 100``, ``δ = 1e-300``, where it is off
    by 1e-6), the tail's root is found with :func:`scipy.optimize.brentq`
    instead.

    Parameters
    ----------
    k : int
        Observed errors, ``0 <= k <= n``.
    n : int
        Trials, ``n >= 0`` (``n = 0`` gives 1).
    delta : float
        Allowed failure probability in (0, 1).

    Returns
    -------
    float

    References
    ----------
    Clopper & Pearson (1934), Biometrika 26(4). Geifman & El-Yaniv (2017), NeurIPS, Eq. (4).

    Examples
    --------
    >>> round(binomial_upper_bound(0, 100, 0.05), 6)   # 1 - 0.05 ** (1/100)
    0.029513
    >>> round(binomial_upper_bound(3, 10, 0.05), 6)    # scipy.stats.beta.isf(0.05, 4, 7)
    0.606624
    """
    if not 0.0 < delta < 1.0:
        raise ValueError(f"delta must be in (0, 1), got {delta}")
    if not 0 <= k <= n:
        raise ValueError(f"need 0 <= k <= n, got k={k}, n={n}")
    if k == n:
        return 1.0
    if k == 0:
        return float(-math.expm1(math.log(delta) / n))
    excess = _tail_minus_delta(k, n, delta)
    if excess(_BELOW_ONE) >= 0:  # the root lies above the largest double below 1
        return 1.0
    from scipy import special

    guess = float(special.betainccinv(k + 1, n - k, delta))
    bound = _round_up_to_root(excess, guess) if 0.0 < guess < 1.0 else None
    if bound is None:
        # scipy.optimize costs 0.4 s to import (linalg, sparse, fft): only for the far tail
        from scipy.optimize import brentq

        root = float(brentq(excess, 0.0, _BELOW_ONE, xtol=1e-300, rtol=_BRENTQ_RTOL, maxiter=2000))
        bound = _round_up_to_root(excess, root)
        if bound is None:  # a tail too flat to round on: brentq's root is within 4 ε
            return root
    return bound


def clopper_pearson(k: int, n: int, *, confidence: float = 0.95) -> tuple[float, float]:
    """Two-sided exact (Clopper–Pearson) interval for a binomial proportion ``k / n``.

    Each side has ``α/2 = (1 - confidence) / 2`` of the failure probability; the
    upper end is :func:`binomial_upper_bound` ``B*(k, n, α/2)``, the lower end
    ``1 - B*(n - k, n, α/2)`` by symmetry. ``n = 0`` gives ``(0, 1)``.

    Examples
    --------
    >>> [round(x, 4) for x in clopper_pearson(5, 10)]
    [0.1871, 0.8129]
    """
    if n == 0:
        return 0.0, 1.0
    alpha = (1.0 - confidence) / 2
    return 1.0 - binomial_upper_bound(n - k, n, alpha), binomial_upper_bound(k, n, alpha)


# --------------------------------------------------------------------------- SGR
@dataclass(frozen=True)
class OperatingPoint:
    """Accepting the ``blocks`` most confident tie blocks of the calibration set.

    Attributes
    ----------
    blocks : int
        Number of tie blocks accepted (0 = nothing).
    accepted : int
        Samples accepted.
    errors : int
        Misclassified samples among them.
    bound : float
        Upper confidence bound on the true selective risk (NaN when not computed).
    """

    blocks: int
    accepted: int
    errors: int
    bound: float = math.nan

    @property
    def risk(self) -> float:
        """Empirical selective risk ``errors / accepted`` (NaN when nothing is accepted)."""
        return self.errors / self.accepted if self.accepted else math.nan


@dataclass(frozen=True)
class RiskControl:
    """The outcome of :func:`select_with_guaranteed_risk` or :func:`risk_bound_at_coverage`.

    Attributes
    ----------
    key : float
        Threshold on the rank key: accept iff ``key >= self.key``
        (``inf`` when nothing can be accepted).
    n : int
        Calibration samples.
    point : OperatingPoint
        The chosen operating point (on the calibration set).
    delta : float
        Overall failure probability δ of the guarantee.
    tests : int
        Bounds the guarantee is union-bounded over; each one is computed at ``δ / tests``.
    feasible : bool
        Whether the chosen point's bound meets the target risk (always True
        in coverage mode).
    target_risk, target_coverage : float or None
        What was asked for (exactly one is set).
    searched : tuple of OperatingPoint
        Every operating point whose bound was computed, in search order.
    """

    key: float
    n: int
    point: OperatingPoint
    delta: float
    tests: int
    feasible: bool
    target_risk: float | None = None
    target_coverage: float | None = None
    searched: tuple[OperatingPoint, ...] = ()

    @property
    def coverage(self) -> float:
        return self.point.accepted / self.n

    @property
    def risk(self) -> float:
        return self.point.risk

    @property
    def bound(self) -> float:
        return self.point.bound

    @property
    def delta_per_test(self) -> float:
        return self.delta / self.tests

    @property
    def best(self) -> OperatingPoint:
        """The searched point with the lowest bound (largest coverage among equals)."""
        pts = [p for p in self.searched if p.accepted] or [self.point]
        return min(pts, key=lambda p: (p.bound, -p.accepted))


def _prefix(sorted_scores: SortedScores) -> tuple[np.ndarray, np.ndarray]:
    """Accepted samples and errors after each tie block (exact integers)."""
    blocks = sorted_scores.blocks()
    return np.cumsum(blocks.sizes), np.rint(np.cumsum(blocks.errors)).astype(np.int64)


def _key_after(keys_sorted: np.ndarray, accepted: int) -> float:
    """Threshold key that accepts exactly the first ``accepted`` sorted samples."""
    return float(keys_sorted[accepted - 1]) if accepted else math.inf


def _check(keys: np.ndarray, errors: np.ndarray, delta: float) -> tuple[np.ndarray, np.ndarray]:
    keys = np.asarray(keys, dtype=np.float64)
    errors = np.asarray(errors, dtype=bool)
    if keys.ndim != 1 or keys.shape != errors.shape or keys.size == 0:
        raise UsageError(
            "keys and errors must be non-empty 1-D arrays of one length, "
            f"got shapes {keys.shape} and {errors.shape}"
        )
    if np.isnan(keys).any():
        raise UsageError("confidence keys contain NaN")
    if not 0.0 < delta < 1.0 or math.isnan(delta):
        raise UsageError(f"delta must be in (0, 1), got {delta}")
    return keys, errors


def union_bound_tests(n: int) -> int:
    """``⌈log2 n⌉`` (at least 1): how many thresholds SGR's binary search may test."""
    return max(1, math.ceil(math.log2(n))) if n > 1 else 1


def select_with_guaranteed_risk(
    keys: np.ndarray, errors: np.ndarray, *, target_risk: float, delta: float = 0.05
) -> RiskControl:
    """Largest-coverage threshold whose selective-risk bound is at most ``target_risk``.

    Selection with Guaranteed Risk (Geifman & El-Yaniv 2017, Algorithm 1).
    Candidates are the ``B`` tie-block boundaries of the calibration scores
    (accept the ``c`` most confident blocks, ``c = 1..B``). A binary search
    over ``c`` tests at most ``T = ⌈log2 n⌉`` candidates; candidate ``c`` with
    ``m_c`` accepted samples and ``k_c`` errors gets the bound
    ``B*(k_c, m_c, δ / T)`` and is feasible when the bound is ``<= target_risk``;
    the search moves to larger coverage after a feasible candidate and to
    smaller coverage otherwise. The result is the largest-coverage feasible
    candidate tested. By the union bound over the ``T`` tests, with probability
    at least ``1 - δ`` over the i.i.d. calibration draw, the true selective
    risk of the returned threshold is at most its bound (hence at most
    ``target_risk``).

    Parameters
    ----------
    keys : ndarray, shape (n,)
        Rank keys of the calibration samples (higher is accepted first).
    errors : ndarray of bool, shape (n,)
        True where the calibration prediction is wrong.
    target_risk : float
        The selective risk ``r*`` to certify, in [0, 1].
    delta : float
        Failure probability of the guarantee, in (0, 1).

    Returns
    -------
    RiskControl
        ``feasible`` is False (and ``key`` is ``inf``) when no tested threshold
        is certified; ``best`` then holds the lowest bound found.

    References
    ----------
    Geifman & El-Yaniv (2017), *Selective classification for deep neural networks*, NeurIPS.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> s = rng.random(5000)
    >>> err = rng.random(5000) < 0.2 * (1 - s)   # errors concentrate at low confidence
    >>> rc = select_with_guaranteed_risk(s, err, target_risk=0.05, delta=0.05)
    >>> rc.feasible, rc.bound <= 0.05, 0.3 < rc.coverage < 0.7
    (True, True, True)
    """
    keys, errors = _check(keys, errors, delta)
    if not 0.0 <= target_risk <= 1.0:
        raise UsageError(f"target risk must be in [0, 1], got {target_risk}")
    s = sort_scores(keys, errors)
    accepted, errs = _prefix(s)
    n_blocks = accepted.shape[0]
    tests = union_bound_tests(s.n)
    d = delta / tests
    lo, hi = 0, n_blocks + 1  # lo: largest feasible found (0 = none); hi: smallest infeasible
    searched: list[OperatingPoint] = []
    while hi - lo > 1 and len(searched) < tests:
        mid = (lo + hi) // 2
        m, k = int(accepted[mid - 1]), int(errs[mid - 1])
        p = OperatingPoint(mid, m, k, binomial_upper_bound(k, m, d))
        searched.append(p)
        if p.bound <= target_risk:
            lo = mid
        else:
            hi = mid
    chosen = next((p for p in searched if p.blocks == lo), OperatingPoint(0, 0, 0))
    return RiskControl(
        key=_key_after(keys[s.order], chosen.accepted),
        n=s.n,
        point=chosen,
        delta=delta,
        tests=tests,
        feasible=lo > 0,
        target_risk=target_risk,
        searched=tuple(searched),
    )


def blocks_for_coverage(accepted: np.ndarray, n: int, coverage: float) -> int:
    """Fewest tie blocks whose accepted count reaches ``coverage · n`` (ties never split)."""
    need = coverage * n * (1 - 1e-12)
    return int(np.searchsorted(accepted, need, side="left")) + 1


def risk_bound_at_coverage(
    keys: np.ndarray, errors: np.ndarray, *, coverage: float, delta: float = 0.05
) -> RiskControl:
    """Selective-risk upper bound at the threshold reaching ``coverage``.

    The threshold accepts the fewest most-confident tie blocks that reach
    ``coverage · n`` samples (coverage may come out slightly higher when a tie
    block straddles the target). One threshold is tested, so the bound
    ``B*(k, m, δ)`` needs no union correction.

    Examples
    --------
    >>> rc = risk_bound_at_coverage(np.arange(10.0), np.arange(10) < 3, coverage=0.7)
    >>> rc.point.accepted, rc.point.errors, rc.key
    (7, 0, 3.0)
    """
    keys, errors = _check(keys, errors, delta)
    if not 0.0 < coverage <= 1.0:
        raise UsageError(f"target coverage must be in (0, 1], got {coverage}")
    s = sort_scores(keys, errors)
    accepted, errs = _prefix(s)
    c = blocks_for_coverage(accepted, s.n, coverage)
    m, k = int(accepted[c - 1]), int(errs[c - 1])
    point = OperatingPoint(c, m, k, binomial_upper_bound(k, m, delta))
    return RiskControl(
        key=_key_after(keys[s.order], m),
        n=s.n,
        point=point,
        delta=delta,
        tests=1,
        feasible=True,
        target_coverage=coverage,
        searched=(point,),
    )


# --------------------------------------------------------------------------- predictions level
@dataclass(frozen=True)
class TestOutcome:
    """What a threshold does on held-out test predictions.

    Attributes
    ----------
    source : str
    n, accepted, errors : int
    risk_interval : tuple of float
        Two-sided 95% Clopper–Pearson interval of the test selective risk.
    """

    __test__ = False  # not a pytest test class

    source: str
    n: int
    accepted: int
    errors: int
    risk_interval: tuple[float, float]

    @property
    def coverage(self) -> float:
        return self.accepted / self.n

    @property
    def risk(self) -> float:
        return self.errors / self.accepted if self.accepted else math.nan


@dataclass(frozen=True)
class ThresholdResult:
    """A calibrated threshold for one score on one predictions source.

    Attributes
    ----------
    source : str
    score : str
    params : dict
        Score parameters (fixed or tuned).
    tuned : bool
    control : RiskControl
    value : float
        The threshold in the score's human-readable value (e.g. MSP 0.83);
        the exact decision rule uses ``control.key``.
    input_kind : str
    num_classes : int
    labels_sha256, data_sha256 : str
        Identify the calibration samples that the guarantee is conditioned on.
    test : TestOutcome or None
    tuning : dict or None
        How ``params`` were tuned (split, sizes, decisions), when they were.
    n_ood : int
        Calibration samples that are OOD (label -1): each counts as an error
        when accepted, so the guarantee covers the ID/OOD mixture (docs/ood.md).
    """

    source: str
    score: str
    params: dict[str, float]
    tuned: bool
    control: RiskControl
    value: float
    input_kind: str
    num_classes: int
    labels_sha256: str
    data_sha256: str
    test: TestOutcome | None = None
    tuning: dict[str, Any] | None = None
    n_ood: int = 0

    @property
    def mode(self) -> str:
        return "risk" if self.control.target_risk is not None else "coverage"

    @property
    def feasible(self) -> bool:
        return self.control.feasible

    def to_dict(self) -> dict[str, Any]:
        """The JSON document of ``sc-eval threshold --format json``."""
        return result_dict(self)

    def guarantee(self) -> str:
        """The promise in one sentence (empty when infeasible)."""
        c = self.control
        if not c.feasible:
            return ""
        how = (
            f"binomial-tail bound at δ/{c.tests} for each of the {c.tests} thresholds "
            "SGR may test (union bound)"
            if c.tests > 1
            else "one-sided Clopper–Pearson bound"
        )
        return (
            f"With probability at least {1 - c.delta:.4g} over the draw of the {c.n} "
            f"calibration samples, the selective risk (error rate among accepted inputs) "
            f"of accepting inputs whose {self.score} >= {self.value:.6g} (exactly: rank key "
            f">= {c.key!r}) on new data drawn i.i.d. from the "
            f"calibration distribution is at most {math.ceil(10_000 * c.bound) / 100:.2f}% "
            f"({how}; Geifman & "
            "El-Yaniv 2017)." + (f" {ood_line(self)}" if self.n_ood else "")
        )


def ood_line(r: ThresholdResult) -> str:
    """What an error is when the calibration set holds OOD samples."""
    return (
        f"Errors include every accepted OOD sample ({r.n_ood} of the {r.control.n} calibration "
        "samples have label -1): the bound holds for inputs mixing ID and OOD samples as the "
        "calibration set does."
    )


def data_sha256(preds: Predictions, *, chunk_size: int = 65536) -> str:
    """SHA-256 of a predictions source's values (row-major, as loaded) and labels."""
    h = hashlib.sha256()
    h.update(preds.kind.encode())
    for _, rows in preds.chunks(chunk_size):
        h.update(np.ascontiguousarray(rows).tobytes())
    h.update(np.ascontiguousarray(preds.labels, dtype="<i8").tobytes())
    return h.hexdigest()


def _score_keys(
    preds: Predictions,
    score: str,
    params: Mapping[str, float],
    chunk_size: int | None,
    nan_policy: str = "refuse",
) -> ScoredSamples:
    return score_samples(
        preds, scores=[score], params={score: params}, chunk_size=chunk_size, nan_policy=nan_policy
    )


def calibrate(
    preds: Predictions,
    *,
    score: str = "msp",
    params: Mapping[str, float] | None = None,
    tuned: bool = False,
    target_risk: float | None = None,
    target_coverage: float | None = None,
    delta: float = 0.05,
    index: np.ndarray | None = None,
    tuning: dict[str, Any] | None = None,
    chunk_size: int | None = None,
    nan_policy: str = "refuse",
) -> ThresholdResult:
    """Calibrate a rejection threshold for ``score`` on a predictions source.

    Parameters
    ----------
    preds : Predictions
        Calibration predictions (i.i.d. from the deployment distribution).
    score : str
        Confidence score name (see :data:`sc_eval.scores.SCORES`).
    params : mapping, optional
        Score parameters (e.g. ``{"p": 2}``); defaults otherwise.
    tuned : bool
        Mark ``params`` as tuned (on data disjoint from ``index``).
    target_risk, target_coverage : float
        Exactly one: certify a selective risk (SGR), or bound the risk at a coverage.
    delta : float
        Failure probability of the guarantee.
    index : ndarray of int, optional
        Rows of ``preds`` to calibrate on (e.g. those not used for tuning).
    tuning : dict, optional
        Record of how ``params`` were tuned, kept in the result and the selector.
    nan_policy : {"refuse", "drop", "rank-last"}
        Rows with NaN or ±Inf (see :func:`sc_eval.pipeline.score_samples`): with
        ``rank-last`` they count as errors below every threshold, so the bound
        stays valid for a deployment that rejects such inputs.

    Returns
    -------
    ThresholdResult
    """
    if (target_risk is None) == (target_coverage is None):
        raise UsageError("give exactly one of --target-risk and --target-coverage")
    resolved = get_score(score).resolve(params)
    scored = _score_keys(preds, score, resolved, chunk_size, nan_policy)
    if index is not None:  # positions in the source; rows dropped for NaN/Inf are skipped
        scored = scored.take(scored.positions(np.asarray(index)))
    keys, values, errors = scored.keys[score], scored.values[score], scored.errors
    labels = preds.labels[scored.index]
    if target_risk is not None:
        control = select_with_guaranteed_risk(keys, errors, target_risk=target_risk, delta=delta)
    else:
        assert target_coverage is not None
        control = risk_bound_at_coverage(keys, errors, coverage=target_coverage, delta=delta)
    value = math.nan
    if control.point.accepted:
        at = keys == control.key
        value = float(values[np.flatnonzero(at)[0]])
        if math.isnan(value):  # the block of non-finite rows (rank-last): accepts everything
            value = -math.inf
    return ThresholdResult(
        source=preds.name,
        score=score,
        params=resolved,
        tuned=tuned,
        control=control,
        value=value,
        input_kind=preds.kind,
        num_classes=preds.num_classes,
        labels_sha256=labels_sha256(labels),
        data_sha256=data_sha256(preds),
        tuning=tuning,
        n_ood=int((labels < 0).sum()),
    )


def evaluate_on(
    preds: Predictions,
    *,
    score: str,
    params: Mapping[str, float],
    key: float,
    chunk_size: int | None = None,
    nan_policy: str = "refuse",
) -> TestOutcome:
    """Apply ``accept iff key >= threshold`` to test predictions and measure it."""
    scored = _score_keys(preds, score, params, chunk_size, nan_policy)
    keys, errors = scored.keys[score], scored.errors
    accept = keys >= key
    m, k = int(accept.sum()), int(errors[accept].sum())
    return TestOutcome(preds.name, scored.n, m, k, clopper_pearson(k, m))


def select_threshold(
    source: Predictions | str | os.PathLike[str],
    *,
    score: str = "msp",
    params: Mapping[str, float] | None = None,
    target_risk: float | None = None,
    target_coverage: float | None = None,
    delta: float = 0.05,
    test: Predictions | str | os.PathLike[str] | None = None,
    tune_split: float | None = None,
    val: Predictions | str | os.PathLike[str] | None = None,
    seed: int = 0,
    chunk_size: int | None = None,
    nan_policy: str = "refuse",
    keys: KeyOptions | None = None,
) -> ThresholdResult:
    """A rejection threshold with a risk guarantee, tuned and checked (``sc-eval threshold``).

    Parameters
    ----------
    source : Predictions, or a predictions file (read with ``keys``)
        Calibration predictions, i.i.d. with the deployment data.
    score : str
        The one confidence score to certify (see :data:`sc_eval.scores.SCORES`).
    params : mapping, optional
        Fixed parameters of ``score`` (e.g. ``{"p": 2}``); a tuned parameter not fixed
        here is chosen on the tuning data.
    target_risk, target_coverage : float
        Exactly one: certify this selective risk (SGR: the largest coverage whose
        bound is at most it), or bound the selective risk at this coverage.
    delta : float
        Failure probability of the guarantee (confidence ``1 - delta``).
    test : Predictions or a file, optional
        Held-out predictions on which the threshold's coverage and risk are measured
        (``ThresholdResult.test``); a warning says when they are the calibration data
        or exceed the target beyond chance.
    tune_split : float, optional
        Tune ``score``'s free parameters on this seeded fraction of ``source`` and
        calibrate on the rest (the guarantee stays valid).
    val : Predictions or a file, optional
        Tune on this separate file instead (refused when it is the calibration data).
    seed : int
        Seed of the tuning split.
    chunk_size, nan_policy
        As in :func:`sc_eval.pipeline.score_samples`.

    Returns
    -------
    ThresholdResult
        ``feasible`` is False when no threshold meets ``target_risk`` (``control.best``
        is then the lowest bound found).

    Raises
    ------
    UsageError
        Both or neither target, a target or ``delta`` out of range, an unknown score
        or one that needs logits on probabilities, a test file with other classes,
        tuning on the calibration data.
    """
    if (target_risk is None) == (target_coverage is None):
        raise UsageError("give exactly one of --target-risk and --target-coverage")
    if target_risk is not None and not 0.0 <= target_risk <= 1.0:
        raise UsageError(f"--target-risk must be in [0, 1], got {target_risk}")
    if target_coverage is not None and not 0.0 < target_coverage <= 1.0:
        raise UsageError(f"--target-coverage must be in (0, 1], got {target_coverage}")
    if not 0.0 < delta < 1.0:
        raise UsageError(f"--delta must be in (0, 1), got {delta}")
    nan_policy = get_nan_policy(nan_policy).name
    get_score(score)
    keys = keys or KeyOptions()
    cal = _load(source, keys)
    check_scores_for_input([score], has_logits=cal.has_logits, source=cal.name)
    test_preds = None if test is None else _load(test, keys)
    if test_preds is not None and test_preds.num_classes != cal.num_classes:
        raise UsageError(
            f"{test_preds.name}: {test_preds.num_classes} classes, but the calibration file "
            f"has {cal.num_classes}"
        )
    fixed = dict(params or {})
    tuned, index, tuning = False, None, None
    if tune_split is not None or val is not None:
        val_preds = None if val is None else _load(val, keys)
        opts = EvalOptions(
            scores=(score,), params={score: fixed}, tune_split=tune_split, val=val_preds, seed=seed
        )
        check_ood_tuning(cal, opts)
        if val_preds is not None and data_sha256(val_preds) == data_sha256(cal):
            raise UsageError(
                f"--val {val_preds.name} holds the calibration predictions; tuning on them "
                "would void the guarantee (use --tune-split or another file)"
            )
        t = tune(cal, opts)
        fixed, index, tuning, tuned = t.params[score], t.eval_index, t.info, score in t.tuned
    result = calibrate(
        cal,
        score=score,
        params=fixed,
        tuned=tuned,
        index=index,
        tuning=tuning,
        target_risk=target_risk,
        target_coverage=target_coverage,
        delta=delta,
        chunk_size=chunk_size,
        nan_policy=nan_policy,
    )
    if test_preds is None or not result.feasible:
        return result
    return _tested(result, test_preds, target_risk, chunk_size, nan_policy)


def _load(source: Predictions | str | os.PathLike[str], keys: KeyOptions) -> Predictions:
    return source if isinstance(source, Predictions) else load_source(source, keys=keys)


def _tested(
    result: ThresholdResult,
    test: Predictions,
    target_risk: float | None,
    chunk_size: int | None,
    nan_policy: str,
) -> ThresholdResult:
    """``result`` with its outcome on ``test``, warning when that is no independent check
    or when the test risk exceeds the target beyond chance."""
    if data_sha256(test) == result.data_sha256:
        warnings.warn(
            f"{test.name} holds the same predictions as the calibration file; "
            "its numbers are not an independent check",
            ScEvalWarning,
            stacklevel=3,
        )
    outcome = evaluate_on(
        test,
        score=result.score,
        params=result.params,
        key=result.control.key,
        chunk_size=chunk_size,
        nan_policy=nan_policy,
    )
    low = outcome.risk_interval[0]
    if target_risk is not None and outcome.accepted and low > target_risk:
        warnings.warn(
            f"{test.name}: the selective risk on test, {100 * outcome.risk:.2f}%, is above the "
            f"target {100 * target_risk:.2f}% beyond chance (its 95% interval starts at "
            f"{100 * low:.2f}%): the test data may not come from the calibration "
            "distribution, which the guarantee assumes",
            ScEvalWarning,
            stacklevel=3,
        )
    return dataclasses.replace(result, test=outcome)


# --------------------------------------------------------------------------- JSON
def result_dict(r: ThresholdResult) -> dict[str, Any]:
    """The versioned JSON document of ``sc-eval threshold`` (fractions; NaN/inf as null)."""
    from sc_eval import __version__

    c = r.control
    best = c.best

    def point(p: OperatingPoint) -> dict[str, Any]:
        return {
            "accepted": p.accepted,
            "errors": p.errors,
            "coverage": p.accepted / c.n,
            "risk": p.risk,
            "bound": p.bound,
        }

    doc = {
        "schema": THRESHOLD_SCHEMA,
        "version": THRESHOLD_VERSION,
        "tool": f"sc-eval {__version__}",
        "command": "threshold",
        "units": "fractions (multiply by 100 for %)",
        "source": r.source,
        "score": r.score,
        "params": r.params,
        "tuned": r.tuned,
        "mode": r.mode,
        "target_risk": c.target_risk,
        "target_coverage": c.target_coverage,
        "delta": c.delta,
        "feasible": c.feasible,
        "threshold": {"key": c.key, "value": r.value, "rule": "accept iff rank key >= key"},
        "calibration": {
            "n": c.n,
            "ood": r.n_ood,
            **point(c.point),
            "labels_sha256": r.labels_sha256,
            "data_sha256": r.data_sha256,
        },
        "best": None if c.feasible else point(best),
        "search": {
            "tests": c.tests,
            "delta_per_test": c.delta_per_test,
            "tested": [point(p) for p in c.searched],
        },
        "test": None
        if r.test is None
        else {
            "source": r.test.source,
            "n": r.test.n,
            "accepted": r.test.accepted,
            "errors": r.test.errors,
            "coverage": r.test.coverage,
            "risk": r.test.risk,
            "risk_ci95": list(r.test.risk_interval),
        },
        "tuning": r.tuning,
        "guarantee": r.guarantee(),
    }
    from sc_eval.report import json_safe

    return json_safe(doc)
