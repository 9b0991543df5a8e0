"""Several models on the same test samples, with paired-bootstrap differences.

``sc-eval compare A B …`` answers "is model B's selective classification
better or worse than reference A's, and is the difference real?":

1. **Same samples.** Every source must hold the same labels in the same
   order, or every source has an ``index`` tensor (sample ids) with the same
   set of ids, and the sources are then aligned to the reference's order.
   Anything else is refused with the first mismatch named — different test
   sets are never compared silently.
2. **Same evaluation.** Every source goes through
   :func:`sc_eval.pipeline.evaluate_source` with the same
   :class:`~sc_eval.pipeline.EvalOptions` (scores, metrics, convention,
   tuning).
3. **Paired differences.** ``Δ = metric(model) - metric(reference)`` for each
   score and metric, with a percentile interval and a two-sided p-value from
   a paired bootstrap (the same resamples for every model and score; see
   :mod:`sc_eval.stats`).

The inputs are :class:`~sc_eval.io.Predictions`, however they were obtained
(a predictions file, or a checkpoint run through inference, both by
:func:`sc_eval.sources.load_source`).
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sc_eval.errors import InputError, UsageError
from sc_eval.io import Predictions, RawArray
from sc_eval.metrics import MODEL_METRICS
from sc_eval.ood import bootstrap_views
from sc_eval.pipeline import (
    EvalOptions,
    Evaluation,
    ScEvalWarning,
    ScoredSamples,
    evaluate_source,
    get_nan_policy,
    restrict_evaluation,
)
from sc_eval.scores import check_scores_for_input, default_scores
from sc_eval.stats import Difference, Interval, bootstrap_metrics

__all__ = [
    "DEFAULT_COMPARE_COVERAGES",
    "DEFAULT_COMPARE_METRICS",
    "BestPair",
    "BootstrapSettings",
    "Comparison",
    "MetricComparison",
    "ModelRow",
    "ScoreComparison",
    "align_predictions",
    "compare",
    "drop_shared_rows",
]

DEFAULT_COMPARE_METRICS: tuple[str, ...] = ("aurc", "e-aurc", "augrc", "auroc")
"""Selective metrics of a comparison table (``acc`` is always shown too)."""
DEFAULT_COMPARE_COVERAGES: tuple[float, ...] = (0.95, 0.9, 0.8)
"""Coverages of the ``risk@cov`` columns of a comparison table."""
BEST_BY = "aurc"


# --------------------------------------------------------------------------- results
@dataclass(frozen=True)
class MetricComparison:
    """One metric of one (model, score).

    Attributes
    ----------
    metric : str
    value : float
        On all samples (fractions; NaN where undefined).
    interval : Interval or None
        Bootstrap percentile interval of the value (None without bootstrap).
    delta : Difference or None
        ``value - reference value`` with its paired interval and p-value
        (None for the reference; NaN interval and p-value without bootstrap).
    """

    metric: str
    value: float
    interval: Interval | None = None
    delta: Difference | None = None


@dataclass(frozen=True)
class ModelRow:
    """One model under one score: the row of a comparison table."""

    model: str
    is_reference: bool
    params: dict[str, float]
    tuned: bool
    metrics: dict[str, MetricComparison]


@dataclass(frozen=True)
class ScoreComparison:
    """All models under one confidence score, reference first."""

    score: str
    rows: tuple[ModelRow, ...]


@dataclass(frozen=True)
class BestPair:
    """The (model, score) pair with the best value of ``metric`` (lowest AURC)."""

    model: str
    score: str
    metric: str
    value: float


@dataclass(frozen=True)
class BootstrapSettings:
    """How the intervals were made."""

    n_boot: int
    seed: int
    confidence: float
    method: str = "paired percentile bootstrap; two-sided bootstrap p-value"


@dataclass(frozen=True)
class Comparison:
    """The result of :func:`compare` (``sc-eval compare``).

    Attributes
    ----------
    models : tuple of str
        Source names, the reference first.
    n : int
        Evaluated samples (the same for every model).
    alignment : {"order", "index"}
        How samples were matched across sources.
    convention : str
    metrics : tuple of str
        Columns: model metrics (``acc`` …) then selective metrics.
    scores : tuple of ScoreComparison
    best : BestPair or None
    bootstrap : BootstrapSettings or None
    evaluations : tuple of Evaluation
        The full per-model results (as ``sc-eval score`` gives them).
    samples : tuple of ScoredSamples
        Per-sample vectors, aligned across models (for plots).
    """

    models: tuple[str, ...]
    n: int
    alignment: str
    convention: str
    metrics: tuple[str, ...]
    scores: tuple[ScoreComparison, ...]
    best: BestPair | None
    bootstrap: BootstrapSettings | None
    evaluations: tuple[Evaluation, ...] = field(repr=False)
    samples: tuple[ScoredSamples, ...] = field(repr=False, compare=False)

    @property
    def reference(self) -> str:
        return self.models[0]

    def to_dict(self) -> dict[str, Any]:
        """The JSON document of ``sc-eval compare --format json``."""
        # the document is built by the renderer, which imports this module
        from sc_eval.report import comparison_document

        return comparison_document(self)


# --------------------------------------------------------------------------- alignment
class _TakenRows:
    """Rows ``rows`` of a stored array, read lazily (chunk by chunk, no full copy)."""

    def __init__(self, data: object, rows: np.ndarray):
        self._data = data
        self._rows = rows
        self.shape = (int(rows.shape[0]), *tuple(data.shape)[1:])  # type: ignore[attr-defined]

    def __getitem__(self, key: slice) -> np.ndarray:
        return np.asarray(self._data[self._rows[key]])  # type: ignore[index]


def _take(preds: Predictions, rows: np.ndarray) -> Predictions:
    """``preds`` with its samples reordered to ``rows`` (lazy for the [N, C] values)."""
    values = RawArray(_TakenRows(preds.values.data, rows), preds.values.dtype)  # type: ignore[arg-type]
    return dataclasses.replace(
        preds,
        values=values,
        labels=preds.labels[rows],
        index=None if preds.index is None else preds.index[rows],
        extra={k: v[rows] for k, v in preds.extra.items()},
    )


def _refuse(other: Predictions, ref: Predictions, field_name: str, what: str) -> InputError:
    return InputError(
        f"{what}; it must hold the same samples as {ref.name}: the same "
        "labels in the same order, or an 'index' tensor (sample ids) in every file",
        path=other.name,
        field=field_name,
    )


def _align_by_index(ref: Predictions, other: Predictions) -> Predictions:
    assert ref.index is not None and other.index is not None
    ref_ids, ids = ref.index, other.index
    order = np.argsort(ids, kind="stable")
    pos = np.searchsorted(ids[order], ref_ids)
    pos_c = np.minimum(pos, ids.shape[0] - 1)
    found = ids[order][pos_c] == ref_ids
    if not found.all():
        i = int(np.argmin(found))
        raise _refuse(
            other, ref, "index", f"sample id {int(ref_ids[i])} (reference row {i}) is missing"
        )
    if ids.shape[0] != ref_ids.shape[0]:
        extra = np.setdiff1d(ids, ref_ids, assume_unique=True)
        raise _refuse(other, ref, "index", f"sample id {int(extra[0])} is not in the reference")
    rows = order[pos]
    _check_labels(other, ref, other.labels[rows], lambda i: f"sample id {int(ref_ids[i])}")
    if np.array_equal(rows, np.arange(rows.shape[0])):
        return other
    return _take(other, rows)


def _check_same_order(ref: Predictions, other: Predictions) -> None:
    if other.n != ref.n:
        raise _refuse(other, ref, "labels", f"{other.n} samples, the reference has {ref.n}")
    _check_labels(other, ref, other.labels, lambda i: f"row {i}")


def _check_labels(
    other: Predictions, ref: Predictions, labels: np.ndarray, where: Callable[[int], str]
) -> None:
    """Refuse the first sample whose label differs from the reference's (named by ``where``)."""
    bad = labels != ref.labels
    if bad.any():
        i = int(np.argmax(bad))
        raise _refuse(
            other,
            ref,
            "labels",
            f"{where(i)} has label {int(labels[i])}, the reference has {int(ref.labels[i])}",
        )


def align_predictions(preds: Sequence[Predictions]) -> tuple[list[Predictions], str]:
    """Put every source's samples in the reference's (the first source's) order.

    Parameters
    ----------
    preds : sequence of Predictions
        The reference first.

    Returns
    -------
    aligned : list of Predictions
        Row ``i`` of every element is the same test sample.
    alignment : {"order", "index"}
        ``index`` when every source has sample ids (they are then matched by
        id, whatever the order), ``order`` otherwise (labels must agree row
        by row).

    Raises
    ------
    InputError
        Naming the first source, field and sample that do not match.

    Examples
    --------
    >>> from sc_eval.io import predictions_from_arrays
    >>> z = np.eye(3)
    >>> a = predictions_from_arrays(z, np.array([0, 1, 2]), index=np.array([10, 11, 12]))
    >>> b = predictions_from_arrays(z[::-1], np.array([2, 1, 0]), index=np.array([12, 11, 10]))
    >>> aligned, how = align_predictions([a, b])
    >>> how, aligned[1].labels.tolist(), aligned[1].index.tolist()
    ('index', [0, 1, 2], [10, 11, 12])
    """
    ref, *others = preds
    if all(p.index is not None for p in preds):
        return [ref, *(_align_by_index(ref, p) for p in others)], "index"
    for p in others:
        _check_same_order(ref, p)
    return list(preds), "order"


def drop_shared_rows(
    preds: Sequence[Predictions],
    results: Sequence[tuple[Evaluation, ScoredSamples]],
    opts: EvalOptions,
) -> list[tuple[Evaluation, ScoredSamples]]:
    """Under ``--nan-policy drop``, drop the union of every model's non-finite rows from
    every model, so that all of them are still evaluated on the same samples.

    ``preds`` must be aligned (row ``i`` is the same sample everywhere) and
    ``results`` their :func:`~sc_eval.pipeline.evaluate_source` results. No
    file is read again.

    Raises
    ------
    InputError
        No sample is finite in every model.
    """
    bad = [s.nonfinite for _, s in results]
    if get_nan_policy(opts.nan_policy).keeps_rows or not any(b.size for b in bad):
        return list(results)
    union = bad[0]
    for b in bad[1:]:
        union = np.union1d(union, b)
    n = preds[0].n
    counts = ", ".join(f"{p.name}: {b.size}" for p, b in zip(preds, bad, strict=True))
    if union.size >= n:
        raise InputError(
            f"expected samples that are finite in every model, found none ({counts} rows "
            "with NaN or Inf)",
            path=preds[0].name,
        )
    note = (
        f"{union.size} of {n} samples hold NaN or Inf in at least one model ({counts}) "
        f"(--nan-policy drop): dropped from every model; every metric is on the other "
        f"{n - union.size}"
    )
    warnings.warn(note, ScEvalWarning, stacklevel=2)
    return [
        restrict_evaluation(p, ev, s, opts, drop=union, note=note)
        for p, (ev, s) in zip(preds, results, strict=True)
    ]


# --------------------------------------------------------------------------- comparison
def _model_metric_names(metrics: Sequence[str]) -> tuple[str, ...]:
    return ("acc", *(m for m in metrics if m in MODEL_METRICS and m != "acc"))


def _best(evals: Sequence[Evaluation]) -> BestPair | None:
    best: BestPair | None = None
    for ev in evals:
        for name, s in ev.scores.items():
            v = s.metrics.get(BEST_BY, math.nan)
            if not math.isnan(v) and (best is None or v < best.value):
                best = BestPair(ev.source, name, BEST_BY, v)
    return best


def compare(
    preds: Sequence[Predictions],
    opts: EvalOptions,
    *,
    n_boot: int = 1000,
    confidence: float = 0.95,
    vals: Sequence[Predictions] | None = None,
) -> Comparison:
    """Evaluate several models on the same samples and test their differences.

    Parameters
    ----------
    preds : sequence of Predictions
        Two or more sources; the first is the reference.
    opts : EvalOptions
        Applied to every source. ``opts.seed`` also seeds the bootstrap.
        Model metrics named in ``opts.metrics`` (``ece`` …) become columns
        beside ``acc``.
    n_boot : int
        Bootstrap resamples ``B``; 0 gives the differences without intervals.
    confidence : float
        Coverage of the intervals (e.g. 0.95).
    vals : sequence of Predictions, optional
        One validation file per model, in the order of ``preds``: each model's
        tunable scores are tuned on its own validation predictions (instead of
        ``opts.val``, which would tune every model on one model's outputs).

    Returns
    -------
    Comparison

    Raises
    ------
    InputError
        The sources do not hold the same samples.
    UsageError
        Fewer than two sources, or a bad ``n_boot`` / ``confidence``.

    Examples
    --------
    >>> from sc_eval.io import predictions_from_arrays
    >>> y = np.array([0, 1, 0, 1])  # the last two samples are misclassified by both
    >>> ce = predictions_from_arrays(np.array([[3, 0], [0, 3], [0, 1], [1, 0.]]), y)
    >>> ls = predictions_from_arrays(np.array([[1, 0], [0, 1], [0, 3], [3, 0.]]), y)
    >>> c = compare([ce, ls], EvalOptions(scores=("maxlogit",), metrics=("aurc",)), n_boot=0)
    >>> [round(r.metrics["aurc"].value, 4) for r in c.scores[0].rows]
    [0.2083, 0.7917]
    >>> round(c.scores[0].rows[1].metrics["aurc"].delta.estimate, 4), c.best.score
    (0.5833, 'maxlogit')
    """
    if len(preds) < 2:
        raise UsageError(f"compare needs at least two sources, got {len(preds)}")
    if n_boot < 0:
        raise UsageError(f"--bootstrap must be >= 0, got {n_boot}")
    if not 0.0 < confidence < 1.0:
        raise UsageError(f"--confidence must be in (0, 1), got {confidence}")
    if vals is not None and len(vals) != len(preds):
        raise UsageError(
            f"give one validation file per model: {len(preds)} models, {len(vals)} "
            "validation files (in the order of the models)"
        )
    if opts.scores is None:  # the default set every model can give
        has_logits = all(p.has_logits for p in preds)
        opts = dataclasses.replace(opts, scores=default_scores(has_logits=has_logits))
    for p in preds:  # before any model is scored
        check_scores_for_input(opts.scores or (), has_logits=p.has_logits, source=p.name)
    per_model = (
        [opts] * len(preds)
        if vals is None
        else [dataclasses.replace(opts, val=v, tune_split=None) for v in vals]
    )
    aligned, alignment = align_predictions(preds)
    results = drop_shared_rows(
        aligned, [evaluate_source(p, o) for p, o in zip(aligned, per_model, strict=True)], opts
    )
    evals = [ev for ev, _ in results]
    samples = [s for _, s in results]
    for ev, s in zip(evals[1:], samples[1:], strict=True):
        if not np.array_equal(s.index, samples[0].index):
            raise UsageError(
                f"{ev.source}: evaluated on other samples than the reference "
                "(the tuning split differs); compare cannot pair them"
            )
    ref = evals[0]
    names = (*_model_metric_names(opts.metrics), *ref.metric_names)
    boot = (
        bootstrap_metrics(
            samples,
            metrics=names,
            scores=tuple(ref.scores),
            convention=opts.convention,
            n_boot=n_boot,
            seed=opts.seed,
        )
        if n_boot and ref.ood is None
        else None
    )
    if n_boot and ref.ood is not None:  # OOD samples: every view, ID and OOD resampled together
        boot = bootstrap_views(
            samples,
            [p.ood[s.index] for p, s in zip(aligned, samples, strict=True)],
            metrics=names,
            scores=tuple(ref.scores),
            convention=opts.convention,
            n_boot=n_boot,
            seed=opts.seed,
            cost=opts.ood_cost,
        )
    nan = math.nan

    def cell(i: int, score: str, metric: str) -> MetricComparison:
        value = evals[i].metric(score, metric)
        if boot is None:
            iv = None
            delta = (
                None
                if i == 0
                else Difference(value - ref.metric(score, metric), nan, nan, confidence, nan)
            )
        else:
            iv = boot.interval(i, score, metric, estimate=value, confidence=confidence)
            delta = (
                None
                if i == 0
                else boot.difference(
                    i,
                    score,
                    metric,
                    estimate=value - ref.metric(score, metric),
                    confidence=confidence,
                )
            )
        return MetricComparison(metric, value, iv, delta)

    tables = []
    for score in ref.scores:
        rows = []
        for i, ev in enumerate(evals):
            res = ev.scores[score]
            rows.append(
                ModelRow(
                    ev.source,
                    i == 0,
                    res.params,
                    res.tuned,
                    {m: cell(i, score, m) for m in names},
                )
            )
        tables.append(ScoreComparison(score, tuple(rows)))
    return Comparison(
        models=tuple(ev.source for ev in evals),
        n=ref.n,
        alignment=alignment,
        convention=opts.convention,
        metrics=names,
        scores=tuple(tables),
        best=_best(evals),
        bootstrap=BootstrapSettings(n_boot, opts.seed, confidence) if boot is not None else None,
        evaluations=tuple(evals),
        samples=tuple(samples),
    )
