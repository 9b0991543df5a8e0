"""Metric registry built on the one tie-aware curve (:mod:`sc_eval.curves`).

Two kinds of metrics:

* **selective metrics** depend on a confidence score: they are computed from
  the :class:`Curves` of one score (``aurc``, ``e-aurc``, ``naurc``, ``augrc``,
  ``auroc``, ``fpr@95tpr`` and the families ``risk@cov=c`` and ``cov@risk=r``);
* **model metrics** depend only on the predicted probabilities: ``acc``,
  ``ece``, ``nll``, ``brier``.

Every metric declares ``higher_is_better`` as data. Area metrics follow one of
the named *conventions* (``mean``, ``trapezoid``, ``torch-uncertainty``); see
``docs/metrics.md`` for the exact formulas.

References
----------
Geifman, Uziel & El-Yaniv (2019), *Bias-reduced uncertainty estimation for deep
neural classifiers*, ICLR — AURC, E-AURC.
Cattelan & Silva (2024), *How to fix a broken confidence estimator*, WACV — NAURC.
Traub et al. (2024), *Overcoming common flaws in the evaluation of selective
classification systems*, NeurIPS — AUGRC.
Guo et al. (2017), *On calibration of modern neural networks*, ICML — ECE.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from sc_eval.curves import ResampledBlocks, RiskCoverage, SortedScores, TieBlocks, lazy
from sc_eval.errors import UsageError, unknown_name

__all__ = [
    "CONVENTIONS",
    "DEFAULT_SELECTIVE",
    "MODEL_METRICS",
    "SELECTIVE_METRICS",
    "Convention",
    "Curves",
    "Metric",
    "MetricInfo",
    "ModelMetric",
    "OracleCurves",
    "SampleStats",
    "aurc_star",
    "get_metric",
    "metric_info",
    "resolve_metrics",
    "selective_metrics",
]


# --------------------------------------------------------------------------- curves
class Curves:
    """The curves of one score, optionally re-weighted by bootstrap counts.

    ``tied`` is the tie-aware curve; ``sequential`` breaks ties by input order
    (only the ``torch-uncertainty`` convention uses it).
    """

    def __init__(self, scores: SortedScores, weights: np.ndarray | None = None):
        self._scores = scores
        self._weights = weights

    @lazy
    def blocks(self) -> TieBlocks:
        return self._scores.blocks(self._weights)

    @lazy
    def tied(self) -> RiskCoverage:
        return RiskCoverage(self.blocks)

    @lazy
    def sequential(self) -> RiskCoverage:
        if self._weights is None and self.blocks.sizes.shape[0] == self._scores.n:
            return self.tied  # no ties: breaking them by input order changes nothing
        return self._scores.curve(self._weights, tie_aware=False)

    @property
    def n(self) -> int:
        return self.tied.n

    @property
    def n_errors(self) -> float:
        return self.tied.n_errors

    @property
    def error_rate(self) -> float:
        return self.tied.error_rate

    def oracle(self) -> Curves:
        """Curves of the oracle ranking (all errors last) on the same samples."""
        return OracleCurves(self.n, self.n_errors)


class OracleCurves(Curves):
    """Curves of the ranking that accepts every correct sample before any error."""

    def __init__(self, n: int, n_errors: float):
        n_err = round(n_errors)
        self._oracle = RiskCoverage(
            TieBlocks(
                np.array([n - n_err, n_err], dtype=np.int64),
                np.array([0.0, float(n_err)]),
            )
        )

    @lazy
    def blocks(self) -> TieBlocks:
        return self._oracle.blocks

    @lazy
    def tied(self) -> RiskCoverage:
        return self._oracle

    @lazy
    def sequential(self) -> RiskCoverage:
        return self._oracle


# --------------------------------------------------------------------------- conventions
def _aurc_mean(c: Curves) -> float:
    return float(np.mean(c.tied.risk))


def _aurc_trapezoid(c: Curves) -> float:
    r = c.tied.risk
    return float(np.mean(r) - r[-1] / (2 * r.shape[0]))


def _aurc_torch_uncertainty(c: Curves) -> float:
    r = c.sequential.risk
    n = r.shape[0]
    if n < 2:
        return math.nan
    return float((np.sum(r) - (r[0] + r[-1]) / 2) / n / (1 - 1 / n))


def _augrc_mean(c: Curves) -> float:
    return float(np.mean(c.tied.cum_errors) / c.n)


def _augrc_trapezoid(c: Curves) -> float:
    return _augrc_mean(c) - c.error_rate / (2 * c.n)


# the same areas for a batch of resamples (one value per row of a ResampledBlocks)
Batch = Callable[[ResampledBlocks], np.ndarray]


def _batch_aurc_mean(rb: ResampledBlocks) -> np.ndarray:
    return rb.risk_sum / rb.N


def _batch_aurc_trapezoid(rb: ResampledBlocks) -> np.ndarray:
    return rb.risk_sum / rb.N - (rb.E / rb.N) / (2 * rb.N)


def _batch_aurc_torch_uncertainty(rb: ResampledBlocks) -> np.ndarray:
    n = rb.N
    with np.errstate(divide="ignore", invalid="ignore"):
        v = (rb.sequential_risk_sum - (rb.first_is_error + rb.E / n) / 2) / n / (1 - 1 / n)
    return np.where(n < 2, math.nan, v)


def _batch_augrc_mean(rb: ResampledBlocks) -> np.ndarray:
    return rb.cum_errors_sum / rb.N / rb.N


def _batch_augrc_trapezoid(rb: ResampledBlocks) -> np.ndarray:
    return _batch_augrc_mean(rb) - (rb.E / rb.N) / (2 * rb.N)


@dataclass(frozen=True)
class Convention:
    """How an area under a curve is discretised.

    Attributes
    ----------
    name : str
    aurc, augrc : callable
        Area of the selective-risk and generalised-risk curves.
    formula : str
        One line for the docs and ``--help``.
    aurc_batch, augrc_batch : callable
        The same areas for every resample of a
        :class:`~sc_eval.curves.ResampledBlocks` (the bootstrap's fast path;
        tests check them against ``aurc`` / ``augrc`` on re-sorted resamples).
    """

    name: str
    aurc: Callable[[Curves], float]
    augrc: Callable[[Curves], float]
    formula: str
    aurc_batch: Batch
    augrc_batch: Batch


CONVENTIONS: dict[str, Convention] = {
    c.name: c
    for c in (
        Convention(
            "mean",
            _aurc_mean,
            _augrc_mean,
            "mean over k=1..n of the tie-aware selective risk E[E_k]/k",
            _batch_aurc_mean,
            _batch_augrc_mean,
        ),
        Convention(
            "trapezoid",
            _aurc_trapezoid,
            _augrc_trapezoid,
            "trapezoid rule over (0,0),(1/n,r_1),...,(1,r_n) = mean - err/(2n)",
            _batch_aurc_trapezoid,
            _batch_augrc_trapezoid,
        ),
        Convention(
            "torch-uncertainty",
            _aurc_torch_uncertainty,
            _augrc_trapezoid,
            "trapezoid over (k/n, r_k), k=1..n, divided by 1-1/n, ties not averaged "
            "(AUGRC keeps trapezoid)",
            _batch_aurc_torch_uncertainty,
            _batch_augrc_trapezoid,
        ),
    )
}


def get_convention(name: str) -> Convention:
    """Look up a convention by name (``UsageError`` naming the choices otherwise)."""
    try:
        return CONVENTIONS[name]
    except KeyError:
        raise unknown_name("AURC convention", name, CONVENTIONS) from None


def aurc_star(error_rate: float) -> float:
    """Analytic optimal AURC ``err + (1 - err) ln(1 - err)`` (Geifman et al. 2019)."""
    if error_rate >= 1.0:
        return 1.0
    return error_rate + (1 - error_rate) * math.log1p(-error_rate)


def _aurc_star_batch(error_rate: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        v = error_rate + (1 - error_rate) * np.log1p(-error_rate)
    return np.where(error_rate >= 1.0, 1.0, v)


# --------------------------------------------------------------------------- selective metrics
def _naurc(c: Curves, conv: Convention) -> float:
    err = c.error_rate
    if err <= 0.0 or err >= 1.0:
        return math.nan
    opt = conv.aurc(c.oracle())
    return (conv.aurc(c) - opt) / (err - opt)


def _auroc(c: Curves, conv: Convention) -> float:
    b = c.blocks
    neg = b.errors
    pos = b.sizes - neg
    n_pos, n_neg = pos.sum(), neg.sum()
    if n_pos <= 0 or n_neg <= 0:
        return math.nan
    below = n_neg - np.cumsum(neg)  # errors ranked strictly lower than each block
    return float(np.sum(pos * (below + neg / 2)) / (n_pos * n_neg))


TPR_TARGET = 0.95


def _fpr_at_95_tpr(c: Curves, conv: Convention) -> float:
    b = c.blocks
    neg = b.errors
    pos = b.sizes - neg
    n_pos, n_neg = pos.sum(), neg.sum()
    if n_pos <= 0 or n_neg <= 0:
        return math.nan
    tpr = np.cumsum(pos) / n_pos
    fpr = np.cumsum(neg) / n_neg
    return float(np.min(fpr[tpr >= TPR_TARGET]))


def _batch_naurc(rb: ResampledBlocks, conv: Convention) -> np.ndarray:
    err = rb.E / rb.N
    opt = conv.aurc_batch(rb.oracle())
    with np.errstate(divide="ignore", invalid="ignore"):
        v = (conv.aurc_batch(rb) - opt) / (err - opt)
    return np.where((err <= 0.0) | (err >= 1.0), math.nan, v)


def _batch_auroc(rb: ResampledBlocks, conv: Convention) -> np.ndarray:
    n_pos, n_neg = rb.N - rb.E, rb.E
    with np.errstate(divide="ignore", invalid="ignore"):
        v = rb.correct_above_errors / (n_pos * n_neg)
    return np.where((n_pos <= 0) | (n_neg <= 0), math.nan, v)


def _batch_fpr_at_95_tpr(rb: ResampledBlocks, conv: Convention) -> np.ndarray:
    n_pos, n_neg = rb.N - rb.E, rb.E
    both = (n_pos > 0) & (n_neg > 0)
    denom = np.maximum(n_pos, 1)
    # the least correct weight c with c / n_pos >= 0.95, as the float comparison says
    c = np.ceil(TPR_TARGET * denom).astype(np.int64)
    c = np.where((c > 1) & ((c - 1) / denom >= TPR_TARGET), c - 1, c)
    c = np.where(c / denom < TPR_TARGET, c + 1, c)
    c = np.clip(c, 1, denom)
    if not both.any():
        return np.full(rb.N.shape, math.nan)
    fp = rb.errors_at_correct(np.where(both, c, 1))
    return np.where(both, fp / np.maximum(n_neg, 1), math.nan)


def _needs_both_classes(c: Curves) -> str | None:
    if c.n_errors <= 0:
        return "no misclassified samples: correct-vs-wrong separation is undefined"
    if c.n_errors >= c.n:
        return "no correctly classified samples: correct-vs-wrong separation is undefined"
    return None


def _naurc_reason(c: Curves) -> str | None:
    if c.n_errors <= 0:
        return "error rate is 0: NAURC divides by err - AURC_opt = 0"
    if c.n_errors >= c.n:
        return "error rate is 1: every ranking is optimal"
    return None


@dataclass(frozen=True)
class MetricInfo:
    """What tables, JSON documents, ``sc-eval list`` and ``gate`` know of a metric.

    Attributes
    ----------
    name : str
        What a user types (``aurc``, ``risk@cov=0.9``, ``ood:auroc``).
    label : str
        Column header without unit (``AURC``, ``risk@90%``, ``OOD AUROC``).
    higher_is_better : bool
    unit : str
        ``fraction`` (shown in percent in human-readable tables; JSON and CSV keep
        fractions), ``ratio``, ``nats`` or ``sum of squares``.
    description : str
    """

    name: str
    label: str
    higher_is_better: bool
    unit: str
    description: str

    @property
    def percent(self) -> bool:
        """Shown as a percentage in human-readable tables."""
        return self.unit == FRACTION

    @property
    def header(self) -> str:
        """Column header: the label, with ``(%)`` when shown in percent."""
        return f"{self.label} (%)" if self.percent and "%" not in self.label else self.label


FRACTION = "fraction"


class _Described:
    """``name`` and ``higher_is_better`` of a registry entry, read from its ``info``."""

    info: MetricInfo

    @property
    def name(self) -> str:
        return self.info.name

    @property
    def higher_is_better(self) -> bool:
        return self.info.higher_is_better


@dataclass(frozen=True)
class Metric(_Described):
    """A metric of one confidence score.

    Attributes
    ----------
    info : MetricInfo
        Name, label, direction, unit and description.
    fn : callable
        ``fn(curves, convention) -> float``.
    why_undefined : callable, optional
        Reason the value is NaN for these curves, or None when it is defined.
    batch : callable, optional
        The bootstrap's fast path: ``batch(blocks, convention)`` gives the
        metric of every resample of a :class:`~sc_eval.curves.ResampledBlocks`
        at once, equal to ``fn`` on the re-sorted resample (tested). Without
        it the bootstrap evaluates ``fn`` on each re-weighted curve.
    point : (str, float), optional
        A metric read off the curve at one value (``("risk_at_coverage", 0.9)``):
        the bootstrap reads every value of one such method at once, through the
        plural method of :class:`~sc_eval.curves.ResampledBlocks`
        (``risk_at_coverages``), instead of one call per metric.
    """

    info: MetricInfo
    fn: Callable[[Curves, Convention], float]
    why_undefined: Callable[[Curves], str | None] | None = None
    batch: Callable[[ResampledBlocks, Convention], np.ndarray] | None = None
    point: tuple[str, float] | None = None

    def __call__(self, curves: Curves, convention: Convention) -> float:
        return self.fn(curves, convention)


def _lower(name: str, label: str, description: str, unit: str = FRACTION) -> MetricInfo:
    return MetricInfo(name, label, higher_is_better=False, unit=unit, description=description)


def _higher(name: str, label: str, description: str, unit: str = FRACTION) -> MetricInfo:
    return MetricInfo(name, label, higher_is_better=True, unit=unit, description=description)


SELECTIVE_METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric(
            _lower("aurc", "AURC", "area under the risk-coverage curve"),
            fn=lambda c, conv: conv.aurc(c),
            batch=lambda rb, conv: conv.aurc_batch(rb),
        ),
        Metric(
            _lower("e-aurc", "E-AURC", "AURC minus the analytic optimum err + (1-err) ln(1-err)"),
            fn=lambda c, conv: conv.aurc(c) - aurc_star(c.error_rate),
            batch=lambda rb, conv: conv.aurc_batch(rb) - _aurc_star_batch(rb.E / rb.N),
        ),
        Metric(
            _lower(
                "naurc",
                "NAURC",
                "(AURC - AURC_opt) / (err - AURC_opt): 0 oracle, 1 random",
                unit="ratio",
            ),
            fn=_naurc,
            why_undefined=_naurc_reason,
            batch=_batch_naurc,
        ),
        Metric(
            _lower("augrc", "AUGRC", "area under the generalised-risk (accept and wrong) curve"),
            fn=lambda c, conv: conv.augrc(c),
            batch=lambda rb, conv: conv.augrc_batch(rb),
        ),
        Metric(
            _higher(
                "auroc",
                "AUROC",
                "AUROC of the score separating correct from wrong (ties count 1/2)",
            ),
            fn=_auroc,
            why_undefined=_needs_both_classes,
            batch=_batch_auroc,
        ),
        Metric(
            _lower("fpr@95tpr", "FPR@95TPR", "smallest FPR with TPR >= 0.95, correct = positive"),
            fn=_fpr_at_95_tpr,
            why_undefined=_needs_both_classes,
            batch=_batch_fpr_at_95_tpr,
        ),
    )
}

DEFAULT_SELECTIVE: tuple[str, ...] = ("aurc", "e-aurc", "naurc", "augrc", "auroc", "fpr@95tpr")


def _parse_fraction(text: str, what: str, *, allow_zero: bool) -> float:
    try:
        value = float(text)
    except ValueError:
        raise UsageError(f"{what} '{text}' is not a number") from None
    lo_ok = value >= 0 if allow_zero else value > 0
    if not (lo_ok and value <= 1) or math.isnan(value):
        interval = "[0, 1]" if allow_zero else "(0, 1]"
        hint = (
            f"; {what}s are fractions: did you mean {value / 100:g} for {text}%?"
            if 1 < value <= 100
            else ""
        )
        raise UsageError(f"{what} {text} is outside {interval}{hint}")
    return value + 0.0  # -0 is 0 (a name never reads "-0")


def _read_off(info: MetricInfo, point: str, value: float) -> Metric:
    """A metric read off the tie-aware curve at one point: ``point`` names the method
    of :class:`~sc_eval.curves.RiskCoverage` and of
    :class:`~sc_eval.curves.ResampledBlocks` (its bootstrap fast path) taking ``value``."""
    return Metric(
        info,
        fn=lambda c, conv: getattr(c.tied, point)(value),
        batch=lambda rb, conv: getattr(rb, point)(value),
        point=(point, value),
    )


def risk_at_coverage(coverage: float) -> Metric:
    """The metric ``risk@cov=c``: tie-aware selective risk at coverage ``c``."""
    label = f"risk@{100 * coverage:g}%"
    info = _lower(f"risk@cov={coverage:g}", label, f"selective risk at {coverage:.0%} coverage")
    return _read_off(info, "risk_at_coverage", coverage)


def coverage_at_risk(risk: float) -> Metric:
    """The metric ``cov@risk=r``: largest coverage with selective risk at most ``r``."""
    description = f"largest coverage whose selective risk is at most {risk:.2%}"
    info = _higher(f"cov@risk={risk:g}", f"cov@risk≤{100 * risk:g}%", description)
    return _read_off(info, "coverage_at_risk", risk)


def parse_coverage(text: str) -> float:
    """Parse a coverage in (0, 1] (``UsageError`` otherwise)."""
    return _parse_fraction(text, "coverage", allow_zero=False)


def parse_risk(text: str) -> float:
    """Parse a target risk in [0, 1] (``UsageError`` otherwise)."""
    return _parse_fraction(text, "risk", allow_zero=True)


def get_metric(name: str) -> Metric:
    """Look up a selective metric; ``risk@cov=c`` and ``cov@risk=r`` are parsed.

    ``view:metric`` names (``id:aurc``, ``ood:auroc``, ``scod:aurc``) are the
    views of a test set with OOD samples (:func:`view_metric`).
    """
    if name in SELECTIVE_METRICS:
        return SELECTIVE_METRICS[name]
    if ":" in name:
        return view_metric(name)
    family, _, value = name.partition("=")
    if family == "risk@cov" and value:
        return risk_at_coverage(parse_coverage(value))
    if family == "cov@risk" and value:
        return coverage_at_risk(parse_risk(value))
    raise unknown_name(
        "metric", name, [*SELECTIVE_METRICS, *MODEL_METRICS, "risk@cov=C", "cov@risk=R"]
    )


def resolve_metrics(
    metrics: Sequence[str], coverages: Sequence[float], risks: Sequence[float]
) -> tuple[Metric, ...]:
    """The selective metrics of an evaluation, resolved once: ``metrics`` (model metrics
    skipped), then ``risk@cov=c`` for each coverage and ``cov@risk=r`` for each risk.

    A metric's name is its canonical form (coverages and risks to 6 significant
    digits, e.g. ``risk@cov=0.9``), and its value is computed at that canonical
    coverage or risk; a name given twice is kept once.

    Raises
    ------
    UsageError
        An unknown metric, a coverage outside (0, 1] or a risk outside [0, 1], or two
        different values with the same canonical name (``0.9000001`` and ``0.9000002``).
    """
    out: dict[str, Metric] = {}
    given: dict[str, float] = {}  # canonical name → the value asked for

    def add_parameterised(family: str, value: float) -> None:
        name = get_metric(f"{family}={value!r}").name  # range-checked; canonical name
        if given.setdefault(name, value) != value:
            what = "coverages" if family == "risk@cov" else "risks"
            raise UsageError(
                f"{what} {given[name]!r} and {value!r} are the same metric {name} "
                f"({what} are named to 6 significant digits); give distinct values (the "
                f"command's default --{what} apply unless you name yours)"
            )
        out.setdefault(name, get_metric(name))  # computed at the value its name says

    for name in metrics:
        family, _, text = name.partition("=")
        if family in ("risk@cov", "cov@risk") and text:
            get_metric(name)  # the user's spelling checked (range, number)
            add_parameterised(family, float(text))
        elif name not in MODEL_METRICS:
            m = get_metric(name)
            out.setdefault(m.name, m)
    for family, values in (("risk@cov", coverages), ("cov@risk", risks)):
        for v in values:
            add_parameterised(family, float(v))
    return tuple(out.values())


def selective_metrics(
    confidence: np.ndarray,
    errors: np.ndarray,
    *,
    metrics: tuple[str, ...] | list[str] = DEFAULT_SELECTIVE,
    convention: str = "mean",
) -> dict[str, float]:
    """Selective-classification metrics of one confidence vector.

    Parameters
    ----------
    confidence : ndarray, shape (n,)
        Higher means accepted first. Ties are averaged over (see module docs).
    errors : ndarray of bool, shape (n,)
        True where the prediction is wrong.
    metrics : sequence of str
        Names from :data:`SELECTIVE_METRICS` or ``risk@cov=c`` / ``cov@risk=r``.
    convention : str
        ``mean`` (default), ``trapezoid`` or ``torch-uncertainty``.

    Returns
    -------
    dict
        Metric name to value (fractions; NaN where undefined).

    Examples
    --------
    >>> m = selective_metrics(np.array([3.0, 2.0, 1.0]), np.array([False, False, True]))
    >>> round(m["aurc"], 6), m["auroc"]
    (0.111111, 1.0)
    """
    conv = get_convention(convention)
    curves = Curves(sort_scores_checked(confidence, errors))
    for name in metrics:
        if name in MODEL_METRICS:
            get_metric(name)  # not a metric of a score: UsageError with the choices
    resolved = {m.name: m for m in resolve_metrics(metrics, (), ())}  # collisions refused
    return {name: resolved[get_metric(name).name](curves, conv) for name in metrics}


def sort_scores_checked(confidence: np.ndarray, errors: np.ndarray) -> SortedScores:
    """:func:`sc_eval.curves.sort_scores` after checking shapes and NaN."""
    from sc_eval.curves import sort_scores

    confidence = np.asarray(confidence)
    errors = np.asarray(errors)
    if confidence.ndim != 1 or errors.shape != confidence.shape or confidence.size == 0:
        raise UsageError(
            f"confidence and errors must be non-empty 1-D arrays of one length, "
            f"got shapes {confidence.shape} and {errors.shape}"
        )
    if np.isnan(confidence).any():
        raise UsageError("confidence contains NaN")
    return sort_scores(confidence, errors.astype(bool))


# --------------------------------------------------------------------------- model metrics
@dataclass(frozen=True)
class SampleStats:
    """Per-sample quantities that model metrics need (all float64, shape (n,)).

    Attributes
    ----------
    correct : ndarray of bool
    confidence : ndarray
        Top-label softmax probability.
    log_p_true : ndarray
        Log-probability of the true label.
    brier : ndarray
        ``sum_j (p_j - 1[j=y])^2``.
    """

    correct: np.ndarray
    confidence: np.ndarray
    log_p_true: np.ndarray
    brier: np.ndarray

    def take(self, index: np.ndarray) -> SampleStats:
        return SampleStats(
            self.correct[index], self.confidence[index], self.log_p_true[index], self.brier[index]
        )


def _wmean(x: np.ndarray, w: np.ndarray | None) -> float:
    if w is None:
        return float(np.mean(x))
    # elementwise product + reduce, not np.dot: a multi-threaded BLAS call on a
    # vector costs milliseconds of thread wake-up per bootstrap resample
    return float(np.add.reduce(x * w) / np.add.reduce(w))


def _wmean_batch(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``_wmean`` for every row of a (B, n) weight matrix (``einsum``, not BLAS: its
    threads stall for milliseconds per call on a busy machine)."""
    return np.einsum("ij,j->i", w, np.asarray(x, dtype=np.float64)) / w.sum(axis=1)


ECE_BINS = 15


def _ece_bins(s: SampleStats) -> np.ndarray:
    return np.clip(np.ceil(s.confidence * ECE_BINS).astype(np.int64) - 1, 0, ECE_BINS - 1)


def _ece(s: SampleStats, w: np.ndarray | None) -> float:
    bins = _ece_bins(s)
    gap = s.correct.astype(np.float64) - s.confidence
    if w is not None:
        gap = gap * w
    total = float(w.sum()) if w is not None else float(s.correct.shape[0])
    return float(np.abs(np.bincount(bins, weights=gap, minlength=ECE_BINS)).sum() / total)


def _ece_batch(s: SampleStats, w: np.ndarray) -> np.ndarray:
    bins = _ece_bins(s)
    gap = s.correct.astype(np.float64) - s.confidence
    per_bin = np.stack([np.bincount(bins, weights=row * gap, minlength=ECE_BINS) for row in w])
    return np.abs(per_bin).sum(axis=1) / w.sum(axis=1)


@dataclass(frozen=True)
class ModelMetric(_Described):
    """A metric of the model's predicted probabilities (no confidence score involved).

    ``fn(stats, weights)`` takes optional per-sample weights (bootstrap counts);
    ``batch(stats, weights)`` takes a (B, n) float matrix of them and returns
    the B values at once (the bootstrap's fast path, tested against ``fn``).
    """

    info: MetricInfo
    fn: Callable[[SampleStats, np.ndarray | None], float]
    batch: Callable[[SampleStats, np.ndarray], np.ndarray]

    def __call__(self, stats: SampleStats, weights: np.ndarray | None = None) -> float:
        return self.fn(stats, weights)


def _mean_metric(
    info: MetricInfo, of: Callable[[SampleStats], np.ndarray], *, sign: float = 1.0
) -> ModelMetric:
    """A model metric that is the (weighted) mean of a per-sample quantity, times ``sign``."""
    return ModelMetric(
        info,
        fn=lambda s, w: sign * _wmean(of(s), w),
        batch=lambda s, w: sign * _wmean_batch(of(s), w),
    )


MODEL_METRICS: dict[str, ModelMetric] = {
    m.name: m
    for m in (
        _mean_metric(_higher("acc", "Acc", "top-1 accuracy"), lambda s: s.correct),
        ModelMetric(
            _lower(
                "ece", "ECE", f"top-label expected calibration error, {ECE_BINS} equal-width bins"
            ),
            fn=_ece,
            batch=_ece_batch,
        ),
        _mean_metric(
            _lower("nll", "NLL", "mean negative log-likelihood of the true label", unit="nats"),
            lambda s: s.log_p_true,
            sign=-1.0,
        ),
        _mean_metric(
            _lower("brier", "Brier", "mean multi-class Brier score", unit="sum of squares"),
            lambda s: s.brier,
        ),
    )
}


# --------------------------------------------------------------------------- OOD views
def _detection_counts(c: Curves) -> tuple[np.ndarray, np.ndarray]:
    """Per tie block, (in-distribution, OOD) counts: the curve's "errors" are the OOD samples."""
    b = c.blocks
    return b.sizes - b.errors, b.errors


def _average_precision(pos: np.ndarray, neg: np.ndarray) -> float:
    """Step-wise average precision over tie blocks ranked first to last (sklearn's definition)."""
    n_pos = pos.sum()
    if n_pos <= 0 or neg.sum() <= 0:
        return math.nan
    tp = np.cumsum(pos)
    ranked = tp + np.cumsum(neg)  # 0 only before the first sample (empty bootstrap blocks)
    precision = np.divide(tp, ranked, out=np.zeros_like(tp, dtype=np.float64), where=ranked > 0)
    return float(np.sum(precision * pos) / n_pos)


def _aupr_in(c: Curves, conv: Convention) -> float:
    ident, ood = _detection_counts(c)
    return _average_precision(ident, ood)


def _aupr_out(c: Curves, conv: Convention) -> float:
    ident, ood = _detection_counts(c)
    return _average_precision(ood[::-1], ident[::-1])


def _needs_id_and_ood(c: Curves) -> str | None:
    if c.n_errors <= 0:
        return "no OOD samples: ID-vs-OOD separation is undefined"
    if c.n_errors >= c.n:
        return "no in-distribution samples: ID-vs-OOD separation is undefined"
    return None


#: Metrics of the score separating ID (positive) from OOD samples; computed on curves
#: whose "errors" are the OOD samples (``ood:`` names, see :func:`view_metric`).
DETECTION_METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric(
            _higher(
                "auroc",
                "AUROC",
                "AUROC of the score separating ID (positive) from OOD (ties count 1/2)",
            ),
            fn=_auroc,
            why_undefined=_needs_id_and_ood,
        ),
        Metric(
            _higher(
                "aupr-in", "AUPR-IN", "average precision with ID as positive, ranked by the score"
            ),
            fn=_aupr_in,
            why_undefined=_needs_id_and_ood,
        ),
        Metric(
            _higher(
                "aupr-out",
                "AUPR-OUT",
                "average precision with OOD as positive, ranked by the negated score",
            ),
            fn=_aupr_out,
            why_undefined=_needs_id_and_ood,
        ),
        Metric(
            _lower(
                "fpr@95tpr",
                "FPR@95TPR",
                "fraction of OOD samples accepted at the first threshold accepting >= 95% of ID",
            ),
            fn=_fpr_at_95_tpr,
            why_undefined=_needs_id_and_ood,
        ),
    )
}

#: The views of a test set with OOD samples; unprefixed selective names are the SCOD view.
VIEWS: dict[str, str] = {
    "scod": "SCOD: failure = misclassified ID sample or any accepted OOD sample",
    "id": "ID only: the in-distribution samples alone",
    "ood": "OOD detection: the score separating ID (positive) from OOD samples",
}


def view_metric(name: str) -> Metric:
    """The metric ``view:base`` of a test set with OOD samples (see docs/ood.md).

    ``scod:m`` is ``m`` itself (the SCOD view is the default on such a set);
    ``id:m`` is ``m`` on the in-distribution samples; ``ood:m`` is one of
    :data:`DETECTION_METRICS`.
    """
    view, _, base = name.partition(":")
    if view == "scod":
        return get_metric(base)
    if view == "id":
        m = get_metric(base)
        if ":" in base:
            raise unknown_name("metric", name, [f"id:{k}" for k in SELECTIVE_METRICS])
        return _in_view(m, "id", f"{m.info.description} (ID samples only)")
    if view == "ood" and base in DETECTION_METRICS:
        m = DETECTION_METRICS[base]
        return _in_view(m, "ood", m.info.description)
    choices = [*(f"{v}:aurc" for v in ("scod", "id")), *(f"ood:{k}" for k in DETECTION_METRICS)]
    raise unknown_name("metric", name, choices)


def _in_view(m: Metric, view: str, description: str) -> Metric:
    info = dataclasses.replace(
        m.info,
        name=f"{view}:{m.name}",
        label=f"{view.upper()} {m.info.label}",
        description=description,
    )
    return dataclasses.replace(m, info=info)


def metric_info(name: str) -> MetricInfo:
    """The :class:`MetricInfo` of any metric name: model, selective or ``view:`` metric."""
    if name in MODEL_METRICS:
        return MODEL_METRICS[name].info
    return get_metric(name).info


def canonical_metric_name(name: str) -> str:
    """``scod:aurc`` → ``aurc`` (the SCOD view is unprefixed); other names unchanged."""
    return name.removeprefix("scod:")
