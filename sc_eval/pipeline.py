"""The evaluation pipeline: predictions → scores → curves → metrics → result objects.

:func:`score_samples` makes one chunked pass over the predictions and keeps
only O(N) vectors (rank keys, correctness, calibration terms);
:func:`evaluate_scored` turns them into frozen :class:`Evaluation` results.
:func:`evaluate` is the one-call Python API mirroring ``sc-eval score``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import warnings
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from sc_eval import progress
from sc_eval.curves import sort_scores
from sc_eval.errors import InputError, NonFiniteInput, ScEvalWarning, UsageError, unknown_name
from sc_eval.io import Predictions, available_memory, labels_sha256, predictions_from_arrays
from sc_eval.metrics import (
    DEFAULT_SELECTIVE,
    MODEL_METRICS,
    Curves,
    SampleStats,
    get_convention,
    get_metric,
    resolve_metrics,
)
from sc_eval.ood import add_views, check_cost, check_ood_tuning, view_intervals
from sc_eval.scores import (
    RowStats,
    check_scores_for_input,
    default_scores,
    get_score,
)
from sc_eval.stats import EvaluationIntervals, evaluation_intervals
from sc_eval.tuning import tune

__all__ = [
    "DEFAULT_COVERAGES",
    "DEFAULT_RISKS",
    "NAN_POLICIES",
    "EvalOptions",
    "Evaluation",
    "ScEvalWarning",
    "ScoreReport",
    "ScoreResult",
    "ScoredSamples",
    "evaluate",
    "evaluate_predictions",
    "evaluate_scored",
    "evaluate_source",
    "evaluate_sources",
    "get_nan_policy",
    "restrict_evaluation",
    "score_samples",
]

DEFAULT_COVERAGES: tuple[float, ...] = (1.0, 0.99, 0.95, 0.9, 0.8, 0.7, 0.5)
DEFAULT_RISKS: tuple[float, ...] = (0.01, 0.05)
RESULT_SCHEMA = "sc-eval/result"
RESULT_VERSION = 1
CHUNK_BYTES = 4 * 1024 * 1024


# --------------------------------------------------------------------------- per-sample pass
@dataclass(frozen=True)
class ScoredSamples:
    """O(N) per-sample vectors of one predictions source.

    Attributes
    ----------
    errors : ndarray of bool
        True where ``argmax != label``.
    keys, values : dict of str to ndarray
        Rank key and human-readable value of each score.
    stats : SampleStats
        Calibration terms of the (untransformed) softmax.
    params : dict
        The parameters each score was computed with.
    index : ndarray of int64
        Positions of these samples in the source (after any tuning split and
        any rows dropped by the NaN policy), ascending.
    nonfinite : ndarray of int64
        Positions in the source of the rows holding NaN or ±Inf (dropped or
        ranked last, see :data:`NAN_POLICIES`); empty for clean input.
    """

    errors: np.ndarray
    keys: dict[str, np.ndarray]
    values: dict[str, np.ndarray]
    stats: SampleStats
    params: dict[str, dict[str, float]]
    index: np.ndarray
    nonfinite: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))

    @property
    def n(self) -> int:
        return int(self.errors.shape[0])

    def take(self, idx: np.ndarray) -> ScoredSamples:
        """The subset of samples at positions ``idx``."""
        return ScoredSamples(
            self.errors[idx],
            {k: v[idx] for k, v in self.keys.items()},
            {k: v[idx] for k, v in self.values.items()},
            self.stats.take(idx),
            self.params,
            self.index[idx],
            self.nonfinite,
        )

    def positions(self, rows: np.ndarray) -> np.ndarray:
        """Where the source positions ``rows`` sit in these samples (those present)."""
        if self.n == 0:
            return np.empty(0, dtype=np.int64)
        pos = np.minimum(np.searchsorted(self.index, rows), self.n - 1)
        return pos[self.index[pos] == rows]


#: float64 ``[rows, C]`` working arrays alive at once per chunk (logr, exp, centred copy …)
WORKING_COPIES = 6


def default_chunk_size(num_classes: int, *, workers: int = 1) -> int:
    """Rows per chunk: one float64 working copy of about 4 MiB (cache-sized), smaller when memory
    is short.

    All ``workers`` chunks in flight, with their :data:`WORKING_COPIES` temporaries,
    stay within a quarter of the available memory.
    """
    row_bytes = 8 * max(num_classes, 1)
    budget = CHUNK_BYTES
    avail = available_memory()
    if avail is not None:
        budget = min(budget, avail // (4 * WORKING_COPIES * max(workers, 1)))
    return max(64, budget // row_bytes)


# --------------------------------------------------------------------------- NaN policies
@dataclass(frozen=True)
class NanPolicy:
    """What to do with rows whose logits/probabilities hold NaN or ±Inf.

    Attributes
    ----------
    name : str
    keeps_rows : bool
        True when such rows stay in the evaluation (as errors ranked last).
    """

    name: str
    keeps_rows: bool


NAN_POLICIES: dict[str, NanPolicy] = {
    p.name: p
    for p in (
        # refuse: an error naming the count and the first row
        NanPolicy("refuse", keeps_rows=False),
        # drop: evaluate the other rows only; the count is reported in the notes
        NanPolicy("drop", keeps_rows=False),
        # rank-last: wrong predictions with the lowest confidence (rejected first; a
        # uniform prediction for ece/nll/brier); the count is reported in the notes
        NanPolicy("rank-last", keeps_rows=True),
    )
}
"""Registry of ``--nan-policy`` values."""


def get_nan_policy(name: str) -> NanPolicy:
    """Look up a NaN policy (``UsageError`` with the closest name otherwise)."""
    if name not in NAN_POLICIES:
        raise unknown_name("--nan-policy", name, NAN_POLICIES)
    return NAN_POLICIES[name]


def _nan_note(policy: NanPolicy, count: int, n: int, what: str) -> str:
    """The note/warning text for ``count`` of ``n`` non-finite rows."""
    head = f"{count} of {n} rows hold NaN or Inf {what} (--nan-policy {policy.name})"
    if policy.keeps_rows:
        return (
            f"{head}: counted as errors and ranked below every other sample "
            "(rejected first); ece/nll/brier treat them as uniform predictions"
        )
    return f"{head}: dropped from the evaluation"


def _score_chunk(
    preds: Predictions,
    start: int,
    stop: int,
    names: Sequence[str],
    params: Mapping[str, Mapping[str, float]],
    refuse: bool = True,
) -> dict[str, Any]:
    rows = preds.values.rows(start, stop)
    labels = preds.labels[start:stop]
    rs: RowStats | None = None
    if preds.has_logits:
        # sum_j (z_j - z_top) is finite iff every logit of the row is: the check costs no
        # extra pass over the chunk (the sum is reused by the p-norm scores)
        with np.errstate(invalid="ignore"):
            rs = RowStats(logits=rows)
        nonfinite = ~np.isfinite(rs.row_sum)
    else:  # probabilities may hold exact zeros (log 0 = -inf): check the values
        nonfinite = ~np.isfinite(rows).all(axis=1)
    bad = np.flatnonzero(nonfinite)
    out: dict[str, Any] = {"bad": bad + start}
    if bad.size:
        if refuse:
            return out
        # score a uniform prediction in their place, then mark them wrong and last
        fill = 0.0 if preds.has_logits else 1.0 / rows.shape[1]
        rows = np.where(nonfinite[:, None], np.asarray(fill, dtype=rows.dtype), rows)
        rs = None
    if rs is None:
        rs = RowStats(logits=rows) if preds.has_logits else RowStats(probs=rows)
    if not preds.has_logits:
        sums = np.asarray(rows, dtype=np.float64).sum(axis=1)
        tol = 1e-3 + rows.shape[1] * float(np.finfo(rows.dtype).eps)
        off = (np.abs(sums - 1) > tol) | (np.asarray(rows) < 0).any(axis=1)
        if off.any():
            i = int(np.argmax(off))
            out["probs_bad"] = (int(off.sum()), start + i, float(sums[i]))
            return out
    out["correct"] = rs.top == labels
    out["confidence"] = rs.p_top
    out["log_p_true"] = rs.log_p(labels)
    p_true = np.exp(out["log_p_true"])
    out["brier"] = rs.sum_p_squared() - 2 * p_true + 1
    for name in names:
        out["key:" + name], out["value:" + name] = get_score(name)(rs, params.get(name))
    if bad.size:
        out["correct"] = out["correct"] & ~nonfinite
        for name in names:
            out["key:" + name] = np.where(nonfinite, -np.inf, out["key:" + name])
            out["value:" + name] = np.where(nonfinite, np.nan, out["value:" + name])
    return out


def score_samples(
    preds: Predictions,
    *,
    scores: Sequence[str] | None = None,
    params: Mapping[str, Mapping[str, float]] | None = None,
    chunk_size: int | None = None,
    workers: int | None = None,
    nan_policy: str = "refuse",
) -> ScoredSamples:
    """Compute every score's rank key and the calibration terms in one chunked pass.

    Only O(N) vectors are kept, so memory does not grow with ``N × C``.

    Parameters
    ----------
    nan_policy : {"refuse", "drop", "rank-last"}
        Rows holding NaN or ±Inf: an error (default); dropped (``index`` then
        skips them); or kept as errors whose rank key is ``-inf`` (below every
        finite key, so rejected first), whose displayed score is NaN and whose
        calibration terms are those of a uniform prediction. Either way
        ``nonfinite`` lists them and a :class:`ScEvalWarning` says how many.

    Raises
    ------
    InputError
        Non-finite values under ``nan_policy="refuse"`` (with the count and the
        first row), only non-finite rows under ``"drop"``, or probability rows
        that do not sum to 1.
    UsageError
        Unknown score name or NaN policy, or a logit-only score on probabilities.
    """
    policy = get_nan_policy(nan_policy)
    refuse = policy.name == "refuse"
    if scores is None:
        scores = default_scores(has_logits=preds.has_logits)
    names = list(dict.fromkeys(scores))
    for name in names:
        get_score(name)
    check_scores_for_input(names, has_logits=preds.has_logits, source=preds.name)
    resolved = {n: get_score(n).resolve((params or {}).get(n)) for n in names}
    size = chunk_size or default_chunk_size(preds.num_classes, workers=min(os.cpu_count() or 1, 8))
    bounds = [(s, min(s + size, preds.n)) for s in range(0, preds.n, size)]
    workers = workers or min(len(bounds), os.cpu_count() or 1, 8)
    parts = []
    with (
        progress.task(f"scoring {preds.name}", len(bounds), unit="chunks", delay=2.0) as advance,
        ThreadPoolExecutor(workers) if workers > 1 else contextlib.nullcontext() as pool,
    ):
        run = pool.map if pool is not None else map
        for part in run(lambda b: _score_chunk(preds, b[0], b[1], names, resolved, refuse), bounds):
            parts.append(part)
            advance(1)
    nonfinite = np.concatenate([p["bad"] for p in parts]).astype(np.int64)
    if nonfinite.size and refuse:
        raise NonFiniteInput(
            f"expected finite values, found NaN or Inf in {nonfinite.size} of {preds.n} rows "
            f"(first at row {int(nonfinite[0])}); --nan-policy drop or rank-last evaluates "
            "the file anyway",
            path=preds.path,
            field=preds.kind,
            rows=int(nonfinite.size),
            first=int(nonfinite[0]),
        )
    if nonfinite.size == preds.n:
        raise InputError(
            f"expected finite values, found NaN or Inf in every one of the {preds.n} rows; "
            "nothing left to evaluate",
            path=preds.path,
            field=preds.kind,
        )
    bad_probs = [p["probs_bad"] for p in parts if "probs_bad" in p]
    if bad_probs:
        count = sum(b[0] for b in bad_probs)
        _, row, total = bad_probs[0]
        raise InputError(
            f"expected probability rows in [0, 1] summing to 1, {count} rows do not "
            f"(first at row {row}, sum {total:.6g})",
            path=preds.path,
            field="probs",
        )

    def cat(key: str) -> np.ndarray:
        return np.concatenate([p[key] for p in parts])

    correct = cat("correct")
    if preds.has_logits and preds.n >= 16:
        _warn_if_probabilities(preds)
    scored = ScoredSamples(
        errors=~correct,
        keys={n: cat("key:" + n) for n in names},
        values={n: cat("value:" + n) for n in names},
        stats=SampleStats(correct, cat("confidence"), cat("log_p_true"), cat("brier")),
        params=resolved,
        index=np.arange(preds.n),
        nonfinite=nonfinite,
    )
    if nonfinite.size:
        warnings.warn(
            f"{preds.name}: {_nan_note(policy, nonfinite.size, preds.n, preds.kind)}",
            ScEvalWarning,
            stacklevel=2,
        )
        if not policy.keeps_rows:
            keep = np.ones(preds.n, dtype=bool)
            keep[nonfinite] = False
            scored = scored.take(np.flatnonzero(keep))
    return scored


def _warn_if_probabilities(preds: Predictions) -> None:
    head = np.asarray(preds.values.rows(0, min(preds.n, 1024)), dtype=np.float64)
    if head.min() >= 0 and head.max() <= 1 and np.allclose(head.sum(axis=1), 1, atol=1e-3):
        warnings.warn(
            f"{preds.name}: the 'logits' rows look like probabilities (in [0, 1], summing "
            "to 1); if they are, store them under 'probs' (or pass --probs-key)",
            ScEvalWarning,
            stacklevel=3,
        )


# --------------------------------------------------------------------------- results
@dataclass(frozen=True)
class ScoreResult:
    """Metrics of one confidence score on one source.

    Attributes
    ----------
    name : str
    params : dict
        Parameters the score was computed with (tuned or fixed).
    tuned : bool
        True when ``params`` were chosen on a tuning split.
    metrics : dict
        Metric name → value (fractions; NaN where undefined).
    notes : dict
        Metric name → why it is undefined.
    """

    name: str
    params: dict[str, float]
    tuned: bool
    metrics: dict[str, float]
    notes: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Evaluation:
    """The result of evaluating one predictions source (``sc-eval score``)."""

    source: str
    n: int
    num_classes: int
    input_kind: str
    labels_sha256: str
    convention: str
    model_metrics: dict[str, float]
    scores: dict[str, ScoreResult]
    coverages: tuple[float, ...]
    risks: tuple[float, ...]
    metric_names: tuple[str, ...]
    tuning: dict[str, Any] | None = None
    notes: tuple[str, ...] = ()
    #: set on a test set with OOD samples: ``n_id``, ``n_ood``, ``cost`` (see sc_eval.ood)
    ood: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON document of ``sc-eval score SOURCE --format json`` for this one result
        (``results[0]`` is the evaluation, as ``gate`` reads a baseline)."""
        # the document is built by the renderer, which imports this module
        from sc_eval.report import result_document

        return result_document([self])

    def metric(self, score: str, metric: str) -> float:
        """One value: a selective metric of ``score`` or a model metric (``acc`` …)."""
        if metric in self.model_metrics:
            return self.model_metrics[metric]
        return self.scores[score].metrics[metric]


def selective_metric_names(
    metrics: Sequence[str], coverages: Sequence[float], risks: Sequence[float]
) -> tuple[str, ...]:
    """Names of :func:`resolve_metrics`."""
    return tuple(m.name for m in resolve_metrics(metrics, coverages, risks))


def _canonical(family: str, values: Sequence[float]) -> tuple[float, ...]:
    """Coverages or risks at the precision of their metric names (see :func:`resolve_metrics`)."""
    names = (get_metric(f"{family}={float(v)!r}").name for v in values)
    return tuple(float(name.partition("=")[2]) for name in names)


def evaluate_scored(
    scored: ScoredSamples,
    *,
    source: str = "<arrays>",
    num_classes: int,
    input_kind: str,
    labels_sha256: str,
    metrics: Sequence[str] = DEFAULT_SELECTIVE,
    coverages: Sequence[float] = DEFAULT_COVERAGES,
    risks: Sequence[float] = DEFAULT_RISKS,
    convention: str = "mean",
    tuned: Sequence[str] = (),
    tuning: dict[str, Any] | None = None,
    notes: Sequence[str] = (),
) -> Evaluation:
    """Turn per-sample vectors into metric values (one sort per score)."""
    conv = get_convention(convention)
    specs = resolve_metrics(metrics, coverages, risks)
    names = tuple(m.name for m in specs)
    results: dict[str, ScoreResult] = {}
    tied = []
    for score, key in scored.keys.items():
        ordered = sort_scores(key, scored.errors)
        if scored.n > 1 and ordered.block_ids[-1] == 0:
            tied.append(score)
        curves = Curves(ordered)
        values = {m.name: m(curves, conv) for m in specs}
        undefined = {}
        for m in specs:
            if math.isnan(values[m.name]) and m.why_undefined is not None:
                reason = m.why_undefined(curves)
                if reason:
                    undefined[m.name] = reason
        results[score] = ScoreResult(score, scored.params[score], score in tuned, values, undefined)
    model = {name: m(scored.stats) for name, m in MODEL_METRICS.items()}
    return Evaluation(
        source=source,
        n=scored.n,
        num_classes=num_classes,
        input_kind=input_kind,
        labels_sha256=labels_sha256,
        convention=convention,
        model_metrics=model,
        scores=results,
        coverages=_canonical("risk@cov", coverages),
        risks=_canonical("cov@risk", risks),
        metric_names=names,
        tuning=tuning,
        notes=(*notes, *_degenerate_notes(scored, tied)),
    )


def _degenerate_notes(scored: ScoredSamples, tied: Sequence[str]) -> list[str]:
    """Explanations for valid but degenerate input (the numbers stand; these say why)."""
    out = []
    if tied:
        out.append(
            f"{', '.join(tied)}: all {scored.n} samples have the same score (one tie block): "
            "the ranking carries no information, so every selective risk equals the error "
            "rate (AURC = error rate)"
        )
    return out


@dataclass(frozen=True)
class EvalOptions:
    """Everything that decides how sources are evaluated: the one list of the options of
    :func:`evaluate`, :func:`evaluate_predictions`, ``sc-eval score``, ``compare`` and
    ``gate``.

    Names are checked once, here: constructing options with an unknown score, metric,
    convention or NaN policy, a coverage or risk out of range, or an OOD cost out of
    range raises :class:`~sc_eval.errors.UsageError`; sequences are stored as tuples,
    the convention and NaN policy by their canonical names.

    Attributes
    ----------
    scores : sequence of str or None
        Names from :data:`sc_eval.scores.SCORES`; None: the default set for the
        input's kind (:data:`~sc_eval.scores.DEFAULT_SCORES` for logits, its
        probability-based members for probabilities).
    params : mapping
        Fixed score parameters, e.g. ``{"maxlogit-pnorm": {"p": 4}}``.
    metrics : sequence of str
        Selective metric names (model metrics are always computed; named here they
        become columns of a comparison).
    coverages, risks : sequence of float
        Add ``risk@cov=c`` and ``cov@risk=r`` for each value (see :func:`resolve_metrics`).
    convention : {"mean", "trapezoid", "torch-uncertainty"}
        Discretisation of the area metrics.
    chunk_size : int or None
        Rows scored at a time (default: about 4 MiB of float64).
    tune_split : float or None
        Tune ``maxlogit-pnorm``, ``msp-pnorm`` and ``msp-ts`` on this seeded random
        fraction of each source (see :mod:`sc_eval.tuning`); every score is then
        evaluated on the remaining samples only.
    val : Predictions or None
        Tune on these predictions instead (e.g.
        ``sc_eval.io.predictions_from_arrays(val_logits, val_labels)``); the source is
        then evaluated whole.
    seed : int
        Seed of the tuning split (and of a comparison's bootstrap).
    nan_policy : {"refuse", "drop", "rank-last"}
        Rows with NaN or ±Inf: an :class:`~sc_eval.errors.InputError` (default),
        dropped, or kept as errors ranked last (see :func:`score_samples`). Dropped
        or kept rows are counted in ``Evaluation.notes``.
    ood_cost : float
        ``β``: on a test set with OOD samples (label ``-1``), the SCOD cost of
        accepting one, a misclassification costing 1 (see :mod:`sc_eval.ood`).
    """

    scores: Sequence[str] | None = None
    params: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    metrics: Sequence[str] = DEFAULT_SELECTIVE
    coverages: Sequence[float] = DEFAULT_COVERAGES
    risks: Sequence[float] = DEFAULT_RISKS
    convention: str = "mean"
    chunk_size: int | None = None
    tune_split: float | None = None
    val: Predictions | None = None
    seed: int = 0
    nan_policy: str = "refuse"
    ood_cost: float = 1.0

    def __post_init__(self) -> None:
        def put(name: str, value: object) -> None:
            object.__setattr__(self, name, value)

        if self.scores is not None:
            put("scores", tuple(self.scores))
            for name in self.scores:
                get_score(name)
        put("params", self.params if self.params is not None else {})
        put("metrics", tuple(self.metrics))
        put("coverages", tuple(self.coverages))
        put("risks", tuple(self.risks))
        resolve_metrics(self.metrics, self.coverages, self.risks)
        put("convention", get_convention(self.convention).name)
        put("nan_policy", get_nan_policy(self.nan_policy).name)
        put("ood_cost", check_cost(self.ood_cost))

    @property
    def tuning_requested(self) -> bool:
        return self.tune_split is not None or self.val is not None

    @classmethod
    def of(cls, options: EvalOptions | None = None, **changes: Any) -> EvalOptions:
        """``options`` (default: the defaults) with ``changes``, each the name of an
        attribute (``TypeError`` otherwise, like any misspelt keyword)."""
        return dataclasses.replace(options or cls(), **changes)


def evaluate_predictions(
    preds: Predictions, options: EvalOptions | None = None, **changes: Any
) -> Evaluation:
    """Evaluate a loaded :class:`~sc_eval.io.Predictions`.

    ``options`` and the keywords ``changes`` are as in :func:`evaluate`.
    """
    return evaluate_source(preds, EvalOptions.of(options, **changes))[0]


def evaluate_source(preds: Predictions, opts: EvalOptions) -> tuple[Evaluation, ScoredSamples]:
    """Evaluate one source; also return its per-sample vectors (for bootstrap and plots).

    When ``opts`` asks for tuning, the tunable scores' parameters are chosen by
    :func:`sc_eval.tuning.tune` and all scores are evaluated on the samples
    that tuning did not see.
    """
    check_ood_tuning(preds, opts)
    if opts.scores is None:  # the default set for this input's kind
        opts = dataclasses.replace(opts, scores=default_scores(has_logits=preds.has_logits))
    assert opts.scores is not None
    params: Mapping[str, Mapping[str, float]] = opts.params
    eval_index: np.ndarray | None = None
    tuned: tuple[str, ...] = ()
    info: dict[str, Any] | None = None
    if opts.tuning_requested:
        t = tune(preds, opts)
        params, eval_index, tuned, info = t.params, t.eval_index, t.tuned, t.info
    scored = score_samples(
        preds,
        scores=opts.scores,
        params=params,
        chunk_size=opts.chunk_size,
        nan_policy=opts.nan_policy,
    )
    if eval_index is not None:
        scored = scored.take(scored.positions(eval_index))
    return _evaluation(preds, scored, opts, tuned, info), scored


@dataclass(frozen=True)
class ScoreReport:
    """The result of :func:`evaluate_sources` (``sc-eval score``): one evaluation per
    source and, with a bootstrap, the percentile intervals of each."""

    evaluations: tuple[Evaluation, ...]
    intervals: tuple[EvaluationIntervals, ...] | None = None
    #: Per-sample vectors of each source (for plots).
    samples: tuple[ScoredSamples, ...] = field(default=(), repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """The JSON document of ``sc-eval score --format json``."""
        # the document is built by the renderer, which imports this module
        from sc_eval.report import result_document

        return result_document(self.evaluations, intervals=self.intervals)


def evaluate_sources(
    preds: Sequence[Predictions],
    options: EvalOptions,
    *,
    vals: Sequence[Predictions] | None = None,
    n_boot: int = 0,
    confidence: float = 0.95,
) -> ScoreReport:
    """Evaluate each source with ``options`` (``sc-eval score``).

    Parameters
    ----------
    preds : sequence of Predictions
    options : EvalOptions
    vals : sequence of Predictions, optional
        One validation file per source, in order: each source's tunable scores are
        tuned on its own (instead of ``options.val``).
    n_boot : int
        Bootstrap resamples for percentile intervals of every metric (0: none), seeded
        by ``options.seed``; with OOD samples every view is resampled together.
    confidence : float
        Coverage of the intervals.
    """
    if vals is not None and len(vals) != len(preds):
        raise UsageError(f"give one validation file per source: {len(preds)} sources, "
                         f"{len(vals)} validation files")  # fmt: skip
    per_source = (
        [options] * len(preds)
        if vals is None
        else [dataclasses.replace(options, val=v, tune_split=None) for v in vals]
    )
    results = [evaluate_source(p, o) for p, o in zip(preds, per_source, strict=True)]
    intervals = None
    if n_boot:
        ci: dict[str, Any] = {"n_boot": n_boot, "seed": options.seed, "confidence": confidence}
        intervals = tuple(
            view_intervals(ev, s, p.ood[s.index], **ci)
            if ev.ood is not None
            else evaluation_intervals(ev, s, **ci)
            for p, (ev, s) in zip(preds, results, strict=True)
        )
    return ScoreReport(tuple(ev for ev, _ in results), intervals, tuple(s for _, s in results))


def _evaluation(
    preds: Predictions,
    scored: ScoredSamples,
    opts: EvalOptions,
    tuned: Sequence[str],
    tuning: dict[str, Any] | None,
    notes: Sequence[str] | None = None,
) -> Evaluation:
    if notes is None:
        notes = ()
        if scored.nonfinite.size:
            policy = get_nan_policy(opts.nan_policy)
            notes = (_nan_note(policy, scored.nonfinite.size, preds.n, preds.kind),)
    labels = preds.labels[scored.index]
    ood = labels < 0
    if ood.any() and not ood.all():
        labels = labels[~ood]  # the one-class note is about the ID samples
    if scored.n > 1 and labels.min() == labels.max() and not ood.all():
        notes = (
            *notes,
            f"every label is class {int(labels[0])} (one of C = {preds.num_classes}): the "
            "metrics are valid but describe that class only",
        )
    ev = evaluate_scored(
        scored,
        source=preds.name,
        num_classes=preds.num_classes,
        input_kind=preds.kind,
        labels_sha256=labels_sha256(preds.labels[scored.index]),
        metrics=opts.metrics,
        coverages=opts.coverages,
        risks=opts.risks,
        convention=opts.convention,
        tuned=tuned,
        tuning=tuning,
        notes=notes,
    )
    return add_views(ev, scored, ood, cost=opts.ood_cost) if ood.any() else ev


def restrict_evaluation(
    preds: Predictions,
    ev: Evaluation,
    scored: ScoredSamples,
    opts: EvalOptions,
    *,
    drop: np.ndarray,
    note: str,
) -> tuple[Evaluation, ScoredSamples]:
    """Re-evaluate ``ev`` without the samples at source positions ``drop`` (no re-read).

    ``compare`` and ``gate`` use it to drop the union of every model's
    non-finite rows, so that all models are evaluated on the same samples.
    ``note`` replaces the evaluation's NaN note.
    """
    gone = scored.positions(np.asarray(drop, dtype=np.int64))
    keep = np.ones(scored.n, dtype=bool)
    keep[gone] = False
    if keep.all() and not scored.nonfinite.size:
        return ev, scored
    sub = scored.take(np.flatnonzero(keep))
    sub = dataclasses.replace(sub, nonfinite=np.asarray(drop, dtype=np.int64))
    tuned = [name for name, res in ev.scores.items() if res.tuned]
    return _evaluation(preds, sub, opts, tuned, ev.tuning, notes=(note,)), sub


def evaluate(
    logits: ArrayLike | None = None,
    labels: ArrayLike | None = None,
    *,
    probs: ArrayLike | None = None,
    options: EvalOptions | None = None,
    **changes: Any,
) -> Evaluation:
    """Evaluate selective classification of in-memory predictions.

    Parameters
    ----------
    logits : array-like, shape (N, C), optional
        Logits (numpy or torch). Give either ``logits`` or ``probs``.
    labels : array-like of int, shape (N,)
    probs : array-like, shape (N, C), optional
        Probabilities; only probability-based scores are then allowed.
    options : EvalOptions, optional
        How to evaluate (scores, metrics, coverages, convention, tuning, NaN policy …);
        default ``EvalOptions()``.
    **changes
        Attributes of :class:`EvalOptions` to set instead, e.g. ``scores=["msp"]``,
        ``params={"maxlogit-pnorm": {"p": 4}}``, ``convention="trapezoid"``,
        ``tune_split=0.1``, ``val=...``, ``seed``, ``nan_policy``, ``ood_cost``,
        ``chunk_size`` (each documented there).

    Returns
    -------
    Evaluation

    Raises
    ------
    InputError
        Malformed arrays (shape, dtype, label range), non-finite values under
        ``nan_policy="refuse"``, probabilities that do not sum to 1.
    UsageError
        Unknown score, metric, convention or NaN policy; bad coverages/risks.
    TypeError
        A keyword that is not an attribute of :class:`EvalOptions`.

    Examples
    --------
    >>> import numpy as np
    >>> ev = evaluate(np.array([[2.0, 0.0], [0.0, 1.0], [0.5, 0.0]]), np.array([0, 0, 0]),
    ...               scores=["maxlogit"])
    >>> round(ev.model_metrics["acc"], 4), round(ev.scores["maxlogit"].metrics["aurc"], 4)
    (0.6667, 0.2778)
    """
    opts = EvalOptions.of(options, **changes)
    if labels is None:
        raise UsageError("evaluate() needs labels")
    return evaluate_predictions(predictions_from_arrays(logits, labels, probs=probs), opts)
