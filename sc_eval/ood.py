"""Test sets with out-of-distribution samples: the SCOD, ID-only and OOD-detection views.

A predictions file may hold samples of classes the model never saw (label
``-1``, or a boolean ``ood`` mask; see :mod:`sc_eval.io`). Such a test set is
evaluated in three views, each a set of metric names of one
:class:`~sc_eval.pipeline.Evaluation`:

* **SCOD** (unprefixed names, also accepted as ``scod:…``): selective
  classification with OOD data. A sample's residual is 0 for a correctly
  classified ID sample, 1 for a misclassified one and ``β`` (``--ood-cost``,
  default 1) for an OOD sample, which is wrong whatever the model predicts.
  With ``β = 1`` this is fd-shifts' evaluation of new-class shifts; ``β`` is
  the relative cost of accepting an OOD sample of Xia & Bouganis (2022).
  ``auroc`` and ``fpr@95tpr`` separate successes from failures (misclassified
  or OOD) and do not depend on ``β``.
* **ID only** (``id:…``): today's metrics on the in-distribution samples alone,
  identical to scoring a file holding only those rows.
* **OOD detection** (``ood:…``): AUROC, AUPR-in, AUPR-out and FPR@95TPR of the
  score separating ID (positive) from OOD samples, ties counting ½.

Model metrics (``acc``, ``ece``, ``nll``, ``brier``) of such a set describe the
ID samples: an OOD sample has no true class to be calibrated against.

References
----------
Xia & Bouganis (2022), *Augmenting softmax information for selective
classification with out-of-distribution data*, ACCV — SCOD and its weighted risk.
Jaeger et al. (2023), *A call to reflect on evaluation practices for failure
detection in image classification*, ICLR — fd-shifts, new-class shifts.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from sc_eval.curves import sort_scores
from sc_eval.errors import InputError, UsageError
from sc_eval.io import OOD_LABEL, Predictions, predictions_from_arrays
from sc_eval.metrics import (
    DETECTION_METRICS,
    MODEL_METRICS,
    SELECTIVE_METRICS,
    Curves,
    Metric,
    get_convention,
    get_metric,
)
from sc_eval.stats import (
    BootstrapResult,
    EvaluationIntervals,
    Interval,
    bootstrap_metrics,
)

if TYPE_CHECKING:
    from sc_eval.pipeline import EvalOptions, Evaluation, ScoredSamples

__all__ = [
    "DETECTION_NAMES",
    "add_views",
    "bootstrap_views",
    "check_cost",
    "check_ood_tuning",
    "mix_predictions",
    "plot_series",
    "residuals",
    "view_intervals",
    "view_of",
    "view_samples",
]

#: The OOD-detection metrics every evaluation of a set with OOD samples reports.
DETECTION_NAMES: tuple[str, ...] = tuple(f"ood:{m}" for m in DETECTION_METRICS)

#: SCOD metrics that separate success from failure: they ignore the OOD cost β.
BINARY_FAILURE = ("auroc", "fpr@95tpr")


#: Largest accepted ``--ood-cost`` (the weight of an accepted OOD sample).
MAX_OOD_COST = 1e6


def check_cost(cost: float) -> float:
    """``--ood-cost``: a number in [0, 10⁶] (``UsageError`` otherwise): a cost ratio
    beyond that only loses precision (areas add costs in floating point)."""
    if not (0 <= cost <= MAX_OOD_COST):
        raise UsageError(f"--ood-cost must be a number in [0, {MAX_OOD_COST:g}], got {cost}")
    return float(cost)


def residuals(errors: np.ndarray, ood: np.ndarray, *, cost: float = 1.0) -> np.ndarray:
    """SCOD residual of each sample: 1 misclassified ID, ``cost`` OOD, 0 otherwise.

    Examples
    --------
    >>> residuals(np.array([False, True, True]), np.array([False, False, True]), cost=0.5)
    array([0. , 1. , 0.5])
    """
    err = np.asarray(errors, dtype=np.float64)
    return np.where(ood, cost, err)


def check_ood_tuning(preds: Predictions, opts: EvalOptions) -> None:
    """Tuned scores learn from labelled ID samples: no tuning split of a set with OOD samples.

    ``opts`` is an :class:`~sc_eval.pipeline.EvalOptions` (its ``tune_split`` and ``val``).
    """
    if opts.tune_split is not None and preds.has_ood:
        raise UsageError(
            f"{preds.name} holds OOD samples (label -1): a tuning split would tune on them; "
            "give --val with in-distribution predictions instead"
        )
    if opts.val is not None and opts.val.has_ood:
        raise InputError(
            "expected in-distribution tuning samples, found OOD rows (label -1)",
            path=opts.val.name,
            field="labels",
        )


def view_of(name: str) -> str:
    """The view a metric name belongs to: ``id``, ``ood``, ``model`` or ``scod``."""
    if name in MODEL_METRICS:
        return "model"
    view, sep, _ = name.partition(":")
    return view if sep and view in ("id", "ood") else "scod"


def view_samples(
    scored: ScoredSamples, ood: np.ndarray, view: str, *, cost: float = 1.0
) -> ScoredSamples:
    """The per-sample vectors of one view (``scod``, ``id`` or ``ood``).

    ``scod`` replaces the errors by the residuals, ``id`` keeps the ID samples,
    ``ood`` makes the OOD samples the "errors" (so that ``auroc`` of the view
    is the AUROC of ID versus OOD).
    """
    if view == "id":
        return scored.take(np.flatnonzero(~ood))
    if view == "ood":
        return dataclasses.replace(scored, errors=np.asarray(ood, dtype=bool))
    err = scored.errors | ood if cost == 1.0 else residuals(scored.errors, ood, cost=cost)
    return dataclasses.replace(scored, errors=err)


def _values(
    keys: np.ndarray, errors: np.ndarray, specs: Sequence[Metric], convention: str
) -> tuple[dict[str, float], dict[str, str]]:
    """Metric values of one score on one view, and why the undefined ones are undefined."""
    conv = get_convention(convention)
    curves = Curves(sort_scores(keys, errors))
    values = {m.name: m(curves, conv) for m in specs}
    undefined = {}
    for m in specs:
        reason = m.why_undefined(curves) if m.why_undefined and math.isnan(values[m.name]) else None
        if reason:
            undefined[m.name] = reason
    return values, undefined


def _weighted_scod(
    keys: np.ndarray, res: np.ndarray, names: Sequence[str], convention: str
) -> tuple[dict[str, float], dict[str, str]]:
    """SCOD metrics on residuals with OOD cost β ≠ 1 (success/failure metrics excluded)."""
    conv = get_convention(convention)
    specs = [get_metric(n) for n in names if n not in BINARY_FAILURE]
    values, undefined = _values(keys, res, [m for m in specs if m.name != "naurc"], convention)
    if "e-aurc" in values:
        values["e-aurc"] = math.nan
        undefined["e-aurc"] = (
            "--ood-cost is not 1: the analytic optimum of E-AURC assumes 0/1 losses (see naurc)"
        )
    if "naurc" in names:
        err = float(res.mean())
        oracle = Curves(sort_scores(-res, res))  # every cheaper sample first
        opt = conv.aurc(oracle)
        aurc = conv.aurc(Curves(sort_scores(keys, res)))
        values["naurc"] = (aurc - opt) / (err - opt) if err > opt else math.nan
        if math.isnan(values["naurc"]):
            undefined["naurc"] = "every ranking is optimal: NAURC divides by err - AURC_opt = 0"
    return values, undefined


def add_views(
    ev: Evaluation, scored: ScoredSamples, ood: np.ndarray, *, cost: float = 1.0
) -> Evaluation:
    """Add the ID-only and OOD-detection views to the evaluation of a set with OOD samples.

    Parameters
    ----------
    ev : Evaluation
        The evaluation of ``scored`` as it stands: its selective metrics count
        every OOD sample as an error, i.e. the SCOD view with ``β = 1``.
    scored : ScoredSamples
    ood : ndarray of bool, shape (scored.n,)
        True for the OOD samples.
    cost : float
        ``β``, the residual of an accepted OOD sample.

    Returns
    -------
    Evaluation
        Unprefixed selective metrics: SCOD; ``id:…``: ID samples only;
        ``ood:…``: ID-vs-OOD detection; model metrics on the ID samples;
        ``ev.ood`` holds the counts and ``β``.
    """
    cost = check_cost(cost)
    ood = np.asarray(ood, dtype=bool)
    n_ood = int(ood.sum())
    n_id = scored.n - n_ood
    id_idx = np.flatnonzero(~ood)
    scod_names = [n for n in ev.metric_names if view_of(n) == "scod"]
    id_specs = [get_metric(f"id:{n}") for n in scod_names]
    det_specs = [get_metric(n) for n in DETECTION_NAMES]
    res = residuals(scored.errors, ood, cost=cost)
    results = {}
    for name, r in ev.scores.items():
        metrics = {n: r.metrics[n] for n in scod_names}
        notes = {n: why for n, why in r.notes.items() if n in metrics}
        if cost != 1.0:
            values, undefined = _weighted_scod(scored.keys[name], res, scod_names, ev.convention)
            metrics.update(values)
            notes = {n: why for n, why in notes.items() if n in BINARY_FAILURE} | undefined
        if n_id:
            key = scored.keys[name]
            for spec_list, k, e in (
                (id_specs, key[id_idx], scored.errors[id_idx]),
                (det_specs, key, ood),
            ):
                values, undefined = _values(k, e, spec_list, ev.convention)
                metrics.update(values)
                notes.update(undefined)
        else:  # said once, in the evaluation's notes
            metrics.update({m.name: math.nan for m in (*id_specs, *det_specs)})
        results[name] = dataclasses.replace(r, metrics=metrics, notes=notes)
    if n_id:
        stats = scored.stats.take(id_idx)
        model = {name: m(stats) for name, m in MODEL_METRICS.items()}
    else:
        model = {name: math.nan for name in MODEL_METRICS}
    beta = "" if cost == 1.0 else f", an accepted OOD sample costing β = {cost:g}"
    lines = [
        f"{n_ood} of {scored.n} samples are OOD (label -1): unprefixed metrics are SCOD "
        f"(failure = misclassified ID sample or any OOD sample{beta}); id:… the {n_id} ID "
        "samples alone; ood:… the score separating ID from OOD; acc/ece/nll/brier on the "
        "ID samples"
    ]
    if not n_id:
        lines.append(
            "every sample is OOD: the ID-only view, OOD detection and acc/ece/nll/brier are "
            "undefined (n/a); SCOD counts every sample as a failure"
        )
    return dataclasses.replace(
        ev,
        model_metrics=model,
        scores=results,
        metric_names=(*scod_names, *(m.name for m in id_specs), *DETECTION_NAMES),
        notes=(*ev.notes, *lines),
        ood={"n_id": n_id, "n_ood": n_ood, "cost": cost},
    )


def bootstrap_views(
    samples: Sequence[ScoredSamples],
    oods: Sequence[np.ndarray],
    *,
    metrics: Sequence[str],
    scores: Sequence[str],
    convention: str,
    n_boot: int,
    seed: int,
    cost: float = 1.0,
) -> BootstrapResult:
    """Paired bootstrap replicates of the metrics of every view of aligned models.

    The SCOD and OOD-detection views resample the mixed set (ID and OOD samples
    together, the same counts for both views and every model); the ID-only
    view and the model metrics resample the ID samples alone. With ``cost``
    ≠ 1 the SCOD risk metrics are computed on re-weighted curves of the
    fractional residuals (the closed-form kernels assume 0/1 errors), and
    ``e-aurc``/``naurc`` have no replicates (NaN), as in :func:`add_views`.
    """
    names = tuple(dict.fromkeys(metrics))
    groups: dict[tuple[str, float], list[str]] = {}
    for name in names:
        groups.setdefault(_bootstrap_group(name, cost), []).append(name)
    out = np.full((n_boot, len(samples), len(scores), len(names)), math.nan)
    for (view, view_cost), group in groups.items():
        if view == "id" and not int((~oods[0]).sum()):
            continue  # no ID samples: those metrics stay undefined
        inner = [_bootstrap_name(n, view_cost) for n in group]
        run = [n for n in inner if n is not None]
        if not run:
            continue
        res = bootstrap_metrics(
            [view_samples(s, o, view, cost=view_cost) for s, o in zip(samples, oods, strict=True)],
            metrics=run,
            scores=scores,
            convention=convention,
            n_boot=n_boot,
            seed=seed,
        )
        for name, inner_name in zip(group, inner, strict=True):
            if inner_name is not None:
                k = res.metrics.index(inner_name)
                out[:, :, :, names.index(name)] = res.values[:, :, :, k]
    return BootstrapResult(out, tuple(scores), names, n_boot, seed)


def _bootstrap_group(name: str, cost: float) -> tuple[str, float]:
    """``(view, residual cost)`` of the samples a metric is bootstrapped on."""
    view = view_of(name)
    if view == "model":
        return ("id", 1.0)
    if view == "scod" and name not in BINARY_FAILURE:
        return ("scod", cost)
    return (view, 1.0)


def _bootstrap_name(name: str, cost: float) -> str | None:
    """The name to bootstrap ``name`` under (None: no replicates)."""
    view, sep, base = name.partition(":")
    if sep and (view == "id" or (view == "ood" and base in SELECTIVE_METRICS)):
        return base  # id:aurc is aurc on the ID samples; ood:auroc is auroc on "errors = OOD"
    if not sep and cost != 1.0:
        # scod:m resolves to m but is not a fast-kernel name: re-weighted curves, exact
        return None if name in ("e-aurc", "naurc") else f"scod:{name}"
    return name


def has_views(ev: Evaluation) -> bool:
    """True when ``ev`` is the evaluation of a set with OOD samples."""
    return getattr(ev, "ood", None) is not None


def require_views(ev: Evaluation, metric: str) -> None:
    """``UsageError`` when ``metric`` is an ``id:``/``ood:`` name and ``ev`` has no OOD samples."""
    if view_of(metric) in ("id", "ood") and not has_views(ev):
        hint = f"; use '{metric[3:]}'" if metric.startswith("id:") else ""
        raise UsageError(
            f"{ev.source} holds no OOD samples (label -1): '{metric}' is only defined on a test "
            f"set with OOD samples{hint}"
        )


def view_intervals(
    ev: Evaluation,
    scored: ScoredSamples,
    ood: np.ndarray,
    *,
    n_boot: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
) -> EvaluationIntervals:
    """Percentile intervals of every metric of every view (``score --bootstrap``).

    As :func:`sc_eval.stats.evaluation_intervals`, resampling as in :func:`bootstrap_views`.
    """
    scores = tuple(ev.scores)
    res = bootstrap_views(
        [scored],
        [np.asarray(ood, dtype=bool)],
        metrics=(*ev.model_metrics, *ev.metric_names),
        scores=scores,
        convention=ev.convention,
        n_boot=n_boot,
        seed=seed,
        cost=(ev.ood or {}).get("cost", 1.0),
    )

    def interval(score: str | None, metric: str, value: float) -> Interval:
        if score is None:
            return Interval(value, math.nan, math.nan, confidence)
        return res.interval(0, score, metric, estimate=value, confidence=confidence)

    first = scores[0] if scores else None
    model = {m: interval(first, m, v) for m, v in ev.model_metrics.items()}
    per_score = {
        s: {m: interval(s, m, r.metrics[m]) for m in ev.metric_names} for s, r in ev.scores.items()
    }
    return EvaluationIntervals(per_score, model, n_boot, seed, confidence)


def plot_series(
    name: str, scored: ScoredSamples, ood: np.ndarray | None
) -> list[tuple[str, ScoredSamples]]:
    """The curves to draw for one model: SCOD and ID-only on a set with OOD samples.

    The SCOD curve counts an OOD sample as one error (``β = 1``, whatever
    ``--ood-cost``), so that its oracle curve is the usual one. Without OOD
    samples (``ood`` None or all False), the model's own curve.
    """
    if ood is None or not ood.any():
        return [(name, scored)]
    out = [(f"{name} · SCOD", view_samples(scored, ood, "scod"))]
    if not ood.all():
        out.append((f"{name} · ID only", view_samples(scored, ood, "id")))
    return out


def mix_predictions(id_preds: Predictions, ood_preds: Predictions) -> Predictions:
    """One predictions source holding ID samples, then OOD samples marked with label -1.

    ``ood_preds``' labels are ignored (its classes are not the model's). Sample
    ids stay unique: the OOD samples' ids (or positions) follow the largest ID id.

    Examples
    --------
    >>> a = predictions_from_arrays(np.eye(2), np.array([0, 1]))
    >>> b = predictions_from_arrays(np.ones((1, 2)), np.array([0]))
    >>> m = mix_predictions(a, b)
    >>> m.labels.tolist(), m.index.tolist()
    ([0, 1, -1], [0, 1, 2])
    """
    if id_preds.num_classes != ood_preds.num_classes or id_preds.kind != ood_preds.kind:
        raise InputError(
            f"expected {id_preds.kind} with {id_preds.num_classes} classes like the ID "
            f"predictions, got {ood_preds.kind} with {ood_preds.num_classes}",
            path=ood_preds.path,
        )
    ids = id_preds.index if id_preds.index is not None else np.arange(id_preds.n)
    oods = ood_preds.index if ood_preds.index is not None else np.arange(ood_preds.n)
    start = int(ids.max()) + 1 - int(oods.min())
    values = np.concatenate(
        [np.asarray(id_preds.values.full()), np.asarray(ood_preds.values.full())]
    )
    mixed = predictions_from_arrays(
        **{id_preds.kind: values},
        labels=np.concatenate([id_preds.labels, np.full(ood_preds.n, OOD_LABEL)]),
        index=np.concatenate([ids, oods + start]),
    )
    meta = {**id_preds.metadata, **{f"ood_{k}": v for k, v in ood_preds.metadata.items()}}
    return dataclasses.replace(mixed, path=id_preds.path, metadata=meta)
