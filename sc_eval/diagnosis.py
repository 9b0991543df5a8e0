"""Why does a model rank its errors badly? Measurements behind ``sc-eval diagnose``.

``score`` and ``compare`` say *that* a model (often a label-smoothed one)
ranks its errors badly; :func:`diagnose` measures the handles the literature
gives for *why*. Per model, on the samples the tuning split did not see:

* **correct vs wrong** — quantiles of seven per-sample statistics of the
  logits ``z`` (see :data:`STATISTICS`) for correct and for wrong predictions,
  and each statistic's AUROC as a correct/wrong separator, with bootstrap
  intervals;
* **confidence ceiling** — an LS-trained model at its optimum gives every
  confident sample the top probability ``1 − α + α/C`` (the LS target
  ``(1 − α)·onehot + α/C``), so its MSP piles up on a plateau below 1. The
  plateau is reported when the data show one, and only then
  ``α̂ = (1 − level)·C/(C − 1)`` (see :func:`confidence_ceiling`);
* **calibration** — 15 equal-width reliability bins (confidence, accuracy,
  count) and the ECE (Guo et al. 2017), which LS tends to improve (Müller et
  al. 2019);
* **post-hoc repair** — MSP against max-logit p-norm tuned on a held-out
  split exactly as ``score --tune-split`` does (Xia et al. 2024; Cattelan &
  Silva 2024), with paired differences;
* **neural collapse** of penultimate features when given (see
  :mod:`sc_eval.collapse`).

For two or more models on the same samples (aligned as in ``compare``),
**suppression by confidence** (Xia et al. 2024): the ratio of the second
model's centred max-logit to the first's, in equal-count bins of the first
model's MSP and split by which model is right (see :mod:`sc_eval.suppression`).

Every interval is a percentile bootstrap over samples (:mod:`sc_eval.stats`);
the closing sentences (:func:`summary_lines`) only restate the measurements.

References
----------
Xia, Bouganis et al. (2024), arXiv 2403.14715. Müller, Kornblith & Hinton (2019),
*When does label smoothing help?*, NeurIPS. Guo et al. (2024), arXiv 2402.03979.
Papyan, Han & Donoho (2020), PNAS. Guo, Pleiss, Sun & Weinberger (2017), ICML.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sc_eval import numbers as num
from sc_eval.collapse import Collapse, FeatureFile, neural_collapse
from sc_eval.comparison import align_predictions
from sc_eval.curves import sort_scores
from sc_eval.errors import InputError, NonFiniteInput, UsageError
from sc_eval.io import Predictions
from sc_eval.metrics import ECE_BINS, Curves, SampleStats, get_convention, get_metric
from sc_eval.pipeline import EvalOptions, evaluate_source
from sc_eval.scores import MSP_FALLBACK
from sc_eval.stats import Difference, Interval, bootstrap_metrics, paired_difference
from sc_eval.suppression import SUPPRESSION_BINS, Suppression, suppression
from sc_eval.tuning import DEFAULT_TUNE_FRACTION

__all__ = [
    "DIAGNOSIS_SCHEMA",
    "DIAGNOSIS_VERSION",
    "QUANTILES",
    "STATISTICS",
    "Ceiling",
    "Diagnosis",
    "FeatureSummary",
    "GroupSummary",
    "ModelDiagnosis",
    "ReliabilityBin",
    "RepairRow",
    "Statistic",
    "StatisticSummary",
    "confidence_ceiling",
    "diagnose",
    "logit_statistics",
    "pnorm_statistic",
    "reliability",
    "statistics_for",
    "summary_lines",
]

DIAGNOSIS_SCHEMA = "sc-eval/diagnosis"
DIAGNOSIS_VERSION = 1
QUANTILES: tuple[float, ...] = (0.05, 0.25, 0.5, 0.75, 0.95)
REPAIR_SCORES: tuple[str, ...] = ("msp", "maxlogit-pnorm")
CEILING_QUANTILE = 0.999
CEILING_BAND = 0.02
SATURATION = 0.005
PLATEAU_SHARE = 0.2
CHUNK_ELEMENTS = 4 * 1024 * 1024


# --------------------------------------------------------------------------- statistics
Values = tuple[np.ndarray, np.ndarray]


@dataclass(frozen=True)
class Statistic:
    """A per-sample statistic of the logits.

    Attributes
    ----------
    name, label : str
        Key (JSON/CSV) and what tables show.
    formula : str
    confident_high : bool
        True when a higher value means a more confident prediction (the AUROC
        is computed in that direction; False only for entropy).
    fn : callable
        ``fn(z)`` for float64 logits ``[k, C]`` → ``(value, rank key)``; the key
        is monotone in the confidence and does not saturate where the value
        rounds (MSP near 1).
    """

    name: str
    label: str
    formula: str
    confident_high: bool
    fn: Callable[[np.ndarray], Values] = field(repr=False)


def _top2(z: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    top = np.argmax(z, axis=1)
    zt = z[np.arange(z.shape[0]), top]
    if z.shape[1] < 2:
        return top, zt, zt
    second = np.partition(z, -2, axis=1)[:, -2]
    return top, zt, second


def _softmax_parts(z: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(r, d, w)``: ``d = z − z_top`` (≤ 0), ``w = exp(d)``, ``r = Σ_{j≠top} w_j``."""
    d = z - z.max(axis=1, keepdims=True)
    w = np.exp(d)
    r = w.sum(axis=1) - 1.0
    return np.maximum(r, 0.0), d, w


def _maxlogit(z: np.ndarray) -> Values:
    v = z.max(axis=1)
    return v, v


def _centred_maxlogit(z: np.ndarray) -> Values:
    v = z.max(axis=1) - z.mean(axis=1)
    return v, v


def _logit_norm(z: np.ndarray) -> Values:
    v = np.linalg.norm(z, axis=1)
    return v, v


def _centred_norm(z: np.ndarray) -> Values:
    v = np.linalg.norm(z - z.mean(axis=1, keepdims=True), axis=1)
    return v, v


def _logit_margin(z: np.ndarray) -> Values:
    _, zt, second = _top2(z)
    v = zt - second
    return v, v


def _msp(z: np.ndarray) -> Values:
    r, _, _ = _softmax_parts(z)
    return 1.0 / (1.0 + r), -np.log1p(r)


def _entropy(z: np.ndarray) -> Values:
    # H = log S − Σ p_j d_j with S = 1 + r: two non-negative terms, no cancellation
    r, d, w = _softmax_parts(z)
    h = np.log1p(r) - (w * d).sum(axis=1) / (1.0 + r)
    return h, -h


STATISTICS: dict[str, Statistic] = {
    s.name: s
    for s in (
        Statistic("maxlogit", "max-logit", "max_j z_j", True, _maxlogit),
        Statistic("centred-maxlogit", "centred max-logit", "max_j z_j − mean_j z_j", True,
                  _centred_maxlogit),
        Statistic("logit-norm", "‖z‖₂", "‖z‖₂", True, _logit_norm),
        Statistic("centred-norm", "‖z − μ‖₂", "‖z − mean_j z_j‖₂", True, _centred_norm),
        Statistic("logit-margin", "logit margin", "z_(1) − z_(2)", True, _logit_margin),
        Statistic("msp", "MSP", "max_j softmax(z)_j", True, _msp),
        Statistic("entropy", "entropy", "−Σ_j p_j log p_j (nats)", False, _entropy),
    )
}  # fmt: skip
"""The correct-vs-wrong statistics, in table order."""


def pnorm_statistic(p: float) -> Statistic:
    """``‖z − μ‖_p``: the normaliser of max-logit p-norm at a (tuned) ``p``."""

    def fn(z: np.ndarray) -> Values:
        v = np.linalg.norm(z - z.mean(axis=1, keepdims=True), ord=p, axis=1)
        return v, v

    return Statistic("centred-pnorm", f"‖z − μ‖ p={p:g}", f"‖z − mean_j z_j‖_{p:g}", True, fn)


def statistics_for(p: float | None = None) -> dict[str, Statistic]:
    """:data:`STATISTICS`, plus ``‖z − μ‖_p`` after ``‖z − μ‖₂`` when ``p`` is given."""
    if p is None:
        return dict(STATISTICS)
    out: dict[str, Statistic] = {}
    for name, stat in STATISTICS.items():
        out[name] = stat
        if name == "centred-norm":
            out["centred-pnorm"] = pnorm_statistic(p)
    return out


def logit_statistics(
    preds: Predictions,
    rows: np.ndarray | None = None,
    *,
    statistics: dict[str, Statistic] = STATISTICS,
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Every statistic's value and rank key (default: :data:`STATISTICS`) of the samples at
    sorted positions ``rows`` (all when None), read chunk by chunk in float64.

    Returns
    -------
    values, keys : dict of str to ndarray
    """
    index = np.arange(preds.n) if rows is None else rows
    size = max(1, CHUNK_ELEMENTS // max(preds.num_classes, 1))
    values: dict[str, list[np.ndarray]] = {n: [] for n in statistics}
    keys: dict[str, list[np.ndarray]] = {n: [] for n in statistics}
    for lo in range(0, index.size, size):
        part = index[lo : lo + size]
        if part.size == 0:
            continue
        block = preds.values.rows(int(part[0]), int(part[-1]) + 1)
        z = np.asarray(block[part - part[0]], dtype=np.float64)
        for name, stat in statistics.items():
            v, k = stat.fn(z)
            values[name].append(v)
            keys[name].append(k)
    empty = np.empty(0)
    return (
        {n: np.concatenate(v) if v else empty for n, v in values.items()},
        {n: np.concatenate(k) if k else empty for n, k in keys.items()},
    )


# --------------------------------------------------------------------------- results
@dataclass(frozen=True)
class GroupSummary:
    """Quantiles of one statistic over one group of samples (NaN when the group is empty)."""

    n: int
    mean: float
    quantiles: tuple[float, ...]

    def q(self, level: float) -> float:
        return self.quantiles[QUANTILES.index(level)]


@dataclass(frozen=True)
class StatisticSummary:
    """One statistic, correct vs wrong.

    Attributes
    ----------
    statistic : Statistic
        One of :data:`STATISTICS` or :func:`pnorm_statistic`.
    correct, wrong : GroupSummary
    auroc : Interval
        AUROC of the statistic (in its confident direction) as a correct/wrong
        separator: the chance a random correct sample is more confident than a
        random wrong one, ties ½; 0.5 = no separation.
    aurc : Interval
        AURC when the statistic is used as the confidence score.
    """

    statistic: Statistic
    correct: GroupSummary
    wrong: GroupSummary
    auroc: Interval
    aurc: Interval

    @property
    def name(self) -> str:
        return self.statistic.name


@dataclass(frozen=True)
class Ceiling:
    """Where the MSP tops out and how much of the correct mass sits there.

    Attributes
    ----------
    top : float
        The ``CEILING_QUANTILE`` (99.9%) quantile of the MSP over all samples.
    band : float
        Width of the band ``[top − band, 1]`` examined.
    correct_share, wrong_share : float
        Fraction of the correct (wrong) predictions in the band.
    level : float
        Median MSP of the correct predictions in the band (NaN when none).
    alpha : float
        ``(1 − level)·C/(C − 1)`` when the evidence supports an LS plateau
        (top more than ``SATURATION`` below 1 and at least ``PLATEAU_SHARE``
        of the correct mass in the band); NaN otherwise.
    finding : str
        What the data show, in words (why α was or was not estimated).
    """

    top: float
    band: float
    correct_share: float
    wrong_share: float
    level: float
    alpha: float
    finding: str

    @property
    def plateau(self) -> bool:
        return not math.isnan(self.alpha)


@dataclass(frozen=True)
class ReliabilityBin:
    """One of the 15 equal-width confidence bins ``(low, high]`` (the first includes 0)."""

    low: float
    high: float
    count: int
    confidence: float
    accuracy: float


@dataclass(frozen=True)
class RepairRow:
    """MSP or tuned max-logit p-norm on the evaluated samples.

    ``delta_*`` = this score − MSP (paired bootstrap); None for MSP itself.
    """

    score: str
    params: dict[str, float]
    tuned: bool
    auroc: Interval
    aurc: Interval
    delta_auroc: Difference | None
    delta_aurc: Difference | None


@dataclass(frozen=True)
class FeatureSummary:
    """Neural collapse of one model's penultimate features and their norms, correct vs wrong.

    Measured on all ``N`` samples of the features file (the tuning split does
    not apply: nothing here is tuned); ``norm_auroc`` is the AUROC of ``‖h‖₂``
    as a correct/wrong separator.
    """

    path: str
    collapse: Collapse
    norm_correct: GroupSummary
    norm_wrong: GroupSummary
    norm_auroc: float
    has_W: bool


@dataclass(frozen=True)
class ModelDiagnosis:
    """Everything :func:`diagnose` measured for one model."""

    name: str
    n: int
    num_classes: int
    acc: Interval
    statistics: tuple[StatisticSummary, ...]
    ceiling: Ceiling
    reliability: tuple[ReliabilityBin, ...]
    ece: Interval
    repair: tuple[RepairRow, ...]
    features: FeatureSummary | None
    tuning: dict[str, object] | None
    errors: np.ndarray = field(repr=False, compare=False)
    values: dict[str, np.ndarray] = field(repr=False, compare=False)
    keys: dict[str, np.ndarray] = field(repr=False, compare=False)

    def statistic(self, name: str) -> StatisticSummary:
        return next(s for s in self.statistics if s.name == name)


@dataclass(frozen=True)
class Diagnosis:
    """The result of :func:`diagnose` (``sc-eval diagnose``)."""

    models: tuple[ModelDiagnosis, ...]
    suppression: tuple[Suppression, ...]
    alignment: str
    n_boot: int
    seed: int
    confidence: float
    lines: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        """The JSON document of ``sc-eval diagnose --format json``."""
        # the document is built by the renderer, which imports this module
        from sc_eval.diagnose_report import diagnosis_document

        return diagnosis_document(self)


# --------------------------------------------------------------------------- pieces
def _group(x: np.ndarray) -> GroupSummary:
    if x.size == 0:
        return GroupSummary(0, math.nan, tuple(math.nan for _ in QUANTILES))
    q = np.quantile(x, QUANTILES)
    return GroupSummary(int(x.size), float(x.mean()), tuple(float(v) for v in q))


def _metric(name: str, key: np.ndarray, errors: np.ndarray) -> float:
    return get_metric(name)(Curves(sort_scores(key, errors)), get_convention("mean"))


def confidence_ceiling(msp: np.ndarray, correct: np.ndarray, *, num_classes: int) -> Ceiling:
    """Where the MSP tops out, how much of the correct mass sits there, and α when supported.

    The LS target ``(1 − α)·onehot + α/C`` is matched at the optimum by a top
    probability of ``1 − α + α/C``: an LS model that reached it shows a plateau
    of correct predictions at that level, clearly below 1. CE training has no
    such ceiling (its MSP saturates towards 1).

    Rules: ``top`` is the 99.9% quantile of the MSP; the band is
    ``[top − 0.02, 1]``. When ``top ≥ 1 − 0.005`` there is no ceiling below 1;
    when fewer than 20% of the correct predictions are in the band there is
    no plateau; otherwise ``level`` = the median MSP of the correct
    predictions in the band and ``α̂ = (1 − level)·C/(C − 1)``.

    Examples
    --------
    >>> msp = np.r_[np.full(80, 0.73), np.linspace(0.2, 0.6, 20)]  # α = 0.3, C = 10
    >>> c = confidence_ceiling(msp, np.arange(100) < 80, num_classes=10)
    >>> round(c.alpha, 4), c.correct_share
    (0.3, 1.0)
    """
    correct = np.asarray(correct, dtype=bool)
    top = float(np.quantile(msp, CEILING_QUANTILE))
    in_band = msp >= top - CEILING_BAND
    share_c = float(in_band[correct].mean()) if correct.any() else math.nan
    share_w = float(in_band[~correct].mean()) if (~correct).any() else math.nan
    level = float(np.median(msp[in_band & correct])) if (in_band & correct).any() else math.nan
    alpha = math.nan
    c = num_classes
    where = f"{num.pct(share_c)}% of the correct predictions lie within {CEILING_BAND:g} of it"
    if top >= 1.0 - SATURATION:
        finding = (
            f"MSP reaches {top:.4f} (99.9% quantile), within {SATURATION:g} of 1: no ceiling "
            f"below 1, as with cross-entropy training; {where}; α not estimated"
        )
    elif not share_c >= PLATEAU_SHARE:
        finding = (
            f"MSP tops out at {top:.4f} (99.9% quantile), but only {where}: no plateau, "
            "α not estimated"
        )
    else:
        alpha = (1.0 - level) * c / (c - 1)
        finding = (
            f"MSP tops out at {top:.4f} (99.9% quantile) and {where}, median {level:.4f}: a "
            f"plateau below 1, the level 1 − α + α/C that label smoothing with α ≈ {alpha:.3f} "
            "gives at its optimum"
        )
    return Ceiling(top, CEILING_BAND, share_c, share_w, level, alpha, finding)


def reliability(confidence: np.ndarray, correct: np.ndarray) -> tuple[ReliabilityBin, ...]:
    """The 15 equal-width bins of the top-label reliability diagram.

    Bin ``b`` holds confidences in ``(b/15, (b+1)/15]`` (the first also 0),
    as in the ``ece`` metric, so ``Σ_b count_b |accuracy_b − confidence_b| / N``
    equals it.
    """
    bins = np.clip(np.ceil(confidence * ECE_BINS).astype(np.int64) - 1, 0, ECE_BINS - 1)
    count = np.bincount(bins, minlength=ECE_BINS)
    conf = np.bincount(bins, weights=confidence, minlength=ECE_BINS)
    acc = np.bincount(bins, weights=correct.astype(np.float64), minlength=ECE_BINS)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf, mean_acc = conf / count, acc / count
    return tuple(
        ReliabilityBin(b / ECE_BINS, (b + 1) / ECE_BINS, int(count[b]), float(mean_conf[b]),
                       float(mean_acc[b]))
        for b in range(ECE_BINS)
    )  # fmt: skip


@dataclass(frozen=True)
class _Samples:
    """What the bootstrap resamples (see :class:`sc_eval.stats.Resamplable`)."""

    errors: np.ndarray
    keys: dict[str, np.ndarray]
    stats: SampleStats


# --------------------------------------------------------------------------- per model
def _features_summary(feats: FeatureFile, preds: Predictions) -> FeatureSummary:
    """Collapse and feature norms on every sample of the features file (its own row order)."""
    nc = neural_collapse(feats, preds.labels, num_classes=preds.num_classes)
    err = _errors_of(preds)
    both = err.any() and (~err).any()
    auroc = _metric("auroc", nc.norms, err) if both else math.nan
    return FeatureSummary(
        feats.path, nc, _group(nc.norms[~err]), _group(nc.norms[err]), auroc, feats.W is not None
    )


def _model(
    preds: Predictions,
    original: Predictions,
    opts: EvalOptions,
    feats: FeatureFile | None,
    *,
    n_boot: int,
    seed: int,
    confidence: float,
) -> ModelDiagnosis:
    ev, scored = evaluate_source(preds, opts)
    rows = scored.index
    pnorm = ev.scores["maxlogit-pnorm"].params
    p = pnorm.get("p")
    extra = None if p is None or p in (0.0, 2.0) or pnorm.get(MSP_FALLBACK) else p
    statistics = statistics_for(extra)
    values, keys = logit_statistics(preds, rows, statistics=statistics)
    errors = scored.errors
    correct = ~errors
    both = bool(errors.any() and correct.any())
    metrics = ("auroc", "aurc")
    all_keys = {**{f"stat:{k}": v for k, v in keys.items()},
                **{f"repair:{s}": scored.keys[s] for s in REPAIR_SCORES}}  # fmt: skip
    point = {k: {m: _metric(m, v, errors) for m in metrics} for k, v in all_keys.items()}
    model_point = {"acc": ev.model_metrics["acc"], "ece": ev.model_metrics["ece"]}
    boot = (
        bootstrap_metrics(
            [_Samples(errors, all_keys, scored.stats)],
            metrics=(*metrics, "acc", "ece"),
            scores=tuple(all_keys),
            n_boot=n_boot,
            seed=seed,
        )
        if n_boot
        else None
    )

    def iv(key: str, metric: str, est: float) -> Interval:
        if boot is None or (metric in metrics and not both):
            return Interval(est, math.nan, math.nan, confidence)
        return boot.interval(0, key, metric, estimate=est, confidence=confidence)

    stats = tuple(
        StatisticSummary(
            stat,
            _group(values[name][correct]),
            _group(values[name][errors]),
            iv(f"stat:{name}", "auroc", point[f"stat:{name}"]["auroc"]),
            iv(f"stat:{name}", "aurc", point[f"stat:{name}"]["aurc"]),
        )
        for name, stat in statistics.items()
    )
    repair = []
    for s in REPAIR_SCORES:
        key = f"repair:{s}"
        deltas: list[Difference | None] = [None, None]
        if s != "msp":
            for i, m in enumerate(("auroc", "aurc")):
                est = point[key][m] - point["repair:msp"][m]
                if boot is None or not both:
                    deltas[i] = Difference(est, math.nan, math.nan, confidence, math.nan)
                else:
                    d = boot.replicates(0, key, m) - boot.replicates(0, "repair:msp", m)
                    deltas[i] = paired_difference(d, estimate=est, confidence=confidence)
        res = ev.scores[s]
        repair.append(
            RepairRow(s, dict(res.params), res.tuned, iv(key, "auroc", point[key]["auroc"]),
                      iv(key, "aurc", point[key]["aurc"]), deltas[0], deltas[1])
        )  # fmt: skip
    feature_summary = None if feats is None else _features_summary(feats, original)
    first_key = f"stat:{next(iter(STATISTICS))}"
    return ModelDiagnosis(
        name=preds.name,
        n=scored.n,
        num_classes=preds.num_classes,
        acc=iv(first_key, "acc", model_point["acc"]),
        statistics=stats,
        ceiling=confidence_ceiling(values["msp"], correct, num_classes=preds.num_classes),
        reliability=reliability(scored.stats.confidence, scored.stats.correct),
        ece=iv(first_key, "ece", model_point["ece"]),
        repair=tuple(repair),
        features=feature_summary,
        tuning=ev.tuning,
        errors=errors,
        values=values,
        keys=keys,
    )


def _errors_of(preds: Predictions) -> np.ndarray:
    size = max(1, CHUNK_ELEMENTS // max(preds.num_classes, 1))
    out = np.empty(preds.n, dtype=bool)
    for start, rows in preds.chunks(size):
        out[start : start + rows.shape[0]] = (
            np.argmax(rows, axis=1) != preds.labels[start : start + rows.shape[0]]
        )
    return out


# --------------------------------------------------------------------------- entry point
def diagnose(
    preds: Sequence[Predictions],
    *,
    features: Sequence[FeatureFile | None] | None = None,
    tune_split: float | None = DEFAULT_TUNE_FRACTION,
    val: Predictions | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
    bins: int = SUPPRESSION_BINS,
) -> Diagnosis:
    """Diagnose why models rank their errors as they do (see the module docstring).

    Parameters
    ----------
    preds : sequence of Predictions
        One or more models' logits; with two or more they must hold the same
        samples (aligned as in ``compare``; the first is the reference of the
        suppression pairs).
    features : sequence of FeatureFile or None, optional
        Penultimate features per model (same order as ``preds``, rows as in
        that model's own file); None entries skip the collapse section.
    tune_split : float or None
        Fraction of the samples (seeded) on which max-logit p-norm is tuned;
        every per-sample number is then on the other samples. None with
        ``val`` (tune there, evaluate everything); None without ``val``:
        p-norm at its default ``p`` and nothing held out.
    val : Predictions, optional
        A separate tuning file.
    n_boot : int
        Bootstrap resamples for every interval (0: point estimates only).
    seed : int
        Seeds the split and the bootstrap.
    confidence : float
        Coverage of the intervals.
    bins : int
        Confidence bins of the suppression analysis.

    Returns
    -------
    Diagnosis

    Raises
    ------
    InputError
        Probabilities instead of logits, non-finite values, sources that do
        not hold the same samples, features that do not match.
    UsageError
        Bad ``n_boot``, ``confidence``, ``bins`` or split.

    Examples
    --------
    >>> from sc_eval.io import predictions_from_arrays
    >>> rng = np.random.default_rng(0)
    >>> y = rng.integers(0, 5, 400)
    >>> z = rng.normal(size=(400, 5)) + 3 * np.eye(5)[y]
    >>> d = diagnose([predictions_from_arrays(z, y)], n_boot=0)
    >>> m = d.models[0]
    >>> m.n, [s.name for s in m.statistics][:3], m.ceiling.plateau
    (360, ['maxlogit', 'centred-maxlogit', 'logit-norm'], False)
    """
    if not preds:
        raise UsageError("diagnose needs at least one source")
    if n_boot < 0:
        raise UsageError(f"--bootstrap must be >= 0, got {n_boot}")
    if not 0.0 < confidence < 1.0:
        raise UsageError(f"--confidence must be in (0, 1), got {confidence}")
    if bins < 1:
        raise UsageError(f"the number of confidence bins must be >= 1, got {bins}")
    for p in preds:
        n_ood = int(np.count_nonzero(p.labels < 0))
        if n_ood:
            raise InputError(
                f"holds {n_ood} OOD samples (label -1); diagnose studies how a model ranks "
                "its misclassifications of in-distribution samples: write the rows with a "
                "label >= 0 to a new file and diagnose that (OOD rejection is measured by "
                "sc-eval score's SCOD and OOD views)",
                path=p.name,
                field="labels",
            )
        if not p.has_logits:
            raise InputError(
                "expected logits; diagnose reads max-logits and logit norms, which "
                "probabilities do not have",
                path=p.name,
                field=p.kind,
            )
    feats = list(features) if features is not None else [None] * len(preds)
    if len(feats) != len(preds):
        raise UsageError(
            f"give one features file per source ({len(preds)} sources, {len(feats)} features)"
        )
    aligned, alignment = align_predictions(preds) if len(preds) > 1 else (list(preds), "single")
    opts = EvalOptions(
        scores=REPAIR_SCORES,
        metrics=("aurc", "auroc"),
        coverages=(),
        risks=(),
        tune_split=None if val is not None else tune_split,
        val=val,
        seed=seed,
    )
    try:
        models = tuple(
            _model(a, p, opts, f, n_boot=n_boot, seed=seed, confidence=confidence)
            for a, p, f in zip(aligned, preds, feats, strict=True)
        )
    except NonFiniteInput as e:  # diagnose has no --nan-policy: say what to do instead
        raise InputError(
            f"expected finite logits, found NaN or Inf in {e.rows} row{'s' * (e.rows != 1)} "
            f"(first at row "
            f"{e.first}); diagnose needs every row finite: write the finite rows to a new "
            "file (sc-eval score --nan-policy drop evaluates such a file as it is)",
            path=e.path,
            field=e.field,
        ) from None
    ref = models[0]
    pairs = tuple(
        suppression(
            (ref.name, ref.keys["msp"], ref.values["centred-maxlogit"], ref.errors),
            (m.name, m.values["centred-maxlogit"], m.errors),
            bins=bins,
            n_boot=n_boot,
            seed=seed,
            confidence=confidence,
        )
        for m in models[1:]
    )
    result = Diagnosis(models, pairs, alignment, n_boot, seed, confidence, ())
    return dataclasses.replace(result, lines=tuple(summary_lines(result)))


# --------------------------------------------------------------------------- words
def _pct(x: float) -> str:
    return f"{num.pct(x)}%"


def _ci(d: Interval, scale: float = 100.0, fmt: str = "+.2f") -> str:
    if math.isnan(d.low):
        return "no interval"
    return f"[{scale * d.low:{fmt}}, {scale * d.high:{fmt}}]"


def summary_lines(d: Diagnosis) -> list[str]:
    """A few plain sentences, each restating a measurement of ``d`` (no advice)."""
    lines = []
    for m in d.models:
        msp = m.statistic("msp")
        if math.isnan(msp.auroc.estimate):
            every = "correct" if msp.wrong.n == 0 else "wrong"
            lines.append(
                f"{m.name}: accuracy {_pct(m.acc.estimate)}; every evaluated prediction is "
                f"{every}, so no statistic can separate correct from wrong; ECE "
                f"{_pct(m.ece.estimate)}."
            )
        else:
            best = max(m.statistics, key=lambda s: s.auroc.estimate)
            lines.append(
                f"{m.name}: accuracy {_pct(m.acc.estimate)}; the best correct/wrong separator "
                f"is {best.statistic.label} (AUROC {_pct(best.auroc.estimate)}), MSP gives "
                f"{_pct(msp.auroc.estimate)}, max-logit "
                f"{_pct(m.statistic('maxlogit').auroc.estimate)}; ECE {_pct(m.ece.estimate)}."
            )
        lines.append(f"{m.name}: {m.ceiling.finding}.")
        fix = m.repair[-1]
        if fix.delta_auroc is not None and not math.isnan(fix.delta_auroc.estimate):
            p = fix.params
            how = "fell back to MSP" if p.get("msp_fallback") else f"p={p.get('p', math.nan):g}"
            sig = "" if math.isnan(fix.delta_auroc.low) else (
                ", interval excludes 0" if fix.delta_auroc.excludes_zero else
                ", interval includes 0")  # fmt: skip
            lines.append(
                f"{m.name}: max-logit p-norm ({how}{', tuned' if fix.tuned else ''}) changes the "
                f"AUROC from {_pct(m.repair[0].auroc.estimate)} (MSP) to "
                f"{_pct(fix.auroc.estimate)} ({num.pct_delta(fix.delta_auroc.estimate)} points"
                f"{sig}) and the AURC from {_pct(m.repair[0].aurc.estimate)} to "
                f"{_pct(fix.aurc.estimate)}."
            )
        if m.features is not None and m.features.collapse.classes < 2:
            lines.append(f"{m.name} features: one class only; neural collapse is undefined.")
        elif m.features is not None:
            nc = m.features.collapse
            nc3 = "" if math.isnan(nc.nc3) else f", NC3 {nc.nc3:.3f}"
            lines.append(
                f"{m.name} features: NC1 {nc.nc1:.3g}, NC2 equinorm {nc.equinorm:.3f}, "
                f"equiangularity {nc.equiangular:.3f}{nc3}; median feature norm "
                f"{m.features.norm_correct.q(0.5):.3g} when correct, "
                f"{m.features.norm_wrong.q(0.5):.3g} when wrong."
            )
    with_nc = [m for m in d.models if m.features is not None]
    if len(with_nc) > 1:
        order = sorted(with_nc, key=lambda m: m.features.collapse.nc1)  # type: ignore[union-attr]
        lines.append(
            "Collapse: NC1 from lowest (most collapsed) to highest: "
            + ", ".join(f"{m.name} {m.features.collapse.nc1:.3g}" for m in order)  # type: ignore[union-attr]
            + "."
        )
    for s in d.suppression:
        lo = s.cell(0, "all").ratio.estimate
        hi = s.cell(len(s.edges) - 1, "all").ratio.estimate
        right, wrong = s.overall["both right"].estimate, s.overall["both wrong"].estimate
        split = (
            f"it is {right:.3f} where both are right and {wrong:.3f} where both are wrong "
            f"(Δ {s.contrast.estimate:+.3f} {_ci(s.contrast, 1.0, '+.3f')})"
            if not math.isnan(s.contrast.estimate)
            else f"no sample is {'wrong' if math.isnan(wrong) else 'right'} in both models, so "
            "correctness cannot split it"
        )
        head = (
            f"{s.second} vs {s.first}: the ratio of {s.second}'s centred max-logit to "
            f"{s.first}'s goes from {lo:.3f} in {s.first}'s least confident "
            f"{100 / len(s.edges):g}% to {hi:.3f} in its most confident (Δ {s.trend.estimate:+.3f} "
            f"{_ci(s.trend, 1.0, '+.3f')}); {split}"
        )
        tail = {
            "detected": f"{s.second} suppresses the max logit more where a prediction is "
            "likely correct: the pattern Xia et al. (2024) describe for label smoothing.",
            "partly": "only one of the two contrasts is below 0: the pattern of Xia et al. "
            "(2024) is partly there.",
            "reversed": "the max logit is suppressed less, not more, where a prediction is "
            "likely correct: the opposite of Xia et al.'s (2024) pattern.",
            "absent": "neither contrast is clearly below 0: this pair does not show Xia et "
            "al.'s (2024) suppression pattern.",
        }[s.verdict]
        lines.append(f"{head}: {tail}")
    return lines
