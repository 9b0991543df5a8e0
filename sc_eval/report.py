"""The versioned JSON documents of evaluations and comparisons (what ``--format json``
writes, what ``gate`` reads back, what the Python API's results hold).

Documents hold fractions (multiply by 100 for %), NaN as null and ±inf as
``"inf"``/``"-inf"`` (:func:`json_safe`). Human formats and the other formats
are drawn from these results by :mod:`sc_eval.render`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from sc_eval.metrics import MODEL_METRICS, metric_info
from sc_eval.pipeline import RESULT_SCHEMA, RESULT_VERSION, Evaluation

if TYPE_CHECKING:
    from sc_eval.comparison import Comparison
    from sc_eval.stats import EvaluationIntervals, Interval

__all__ = [
    "COMPARISON_SCHEMA",
    "COMPARISON_VERSION",
    "comparison_document",
    "evaluation_dict",
    "json_safe",
    "result_document",
]

COMPARISON_SCHEMA = "sc-eval/comparison"
COMPARISON_VERSION = 1


def json_safe(x: Any) -> Any:
    """JSON-safe values, recursively: NaN → null (its reason goes in ``notes``),
    ±inf → ``"inf"``/``"-inf"``; every JSON document sc-eval writes goes through this."""
    if isinstance(x, float):
        if math.isnan(x):
            return None
        return ("inf" if x > 0 else "-inf") if math.isinf(x) else x
    if isinstance(x, dict):
        return {k: json_safe(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [json_safe(v) for v in x]
    return x


def evaluation_dict(ev: Evaluation) -> dict[str, Any]:
    """One evaluation as plain JSON-able data (fractions; NaN as null)."""
    return json_safe(
        {
            "source": ev.source,
            "n": ev.n,
            "num_classes": ev.num_classes,
            "input_kind": ev.input_kind,
            "labels_sha256": ev.labels_sha256,
            "convention": ev.convention,
            "coverages": list(ev.coverages),
            "risks": list(ev.risks),
            "model_metrics": dict(ev.model_metrics),
            "scores": {
                s.name: {
                    "params": s.params,
                    "tuned": s.tuned,
                    "metrics": s.metrics,
                    "notes": s.notes,
                }
                for s in ev.scores.values()
            },
            "tuning": ev.tuning,
            "notes": list(ev.notes),
            **({"ood": ev.ood} if ev.ood is not None else {}),
        }
    )


def _add_intervals(result: dict[str, Any], iv: EvaluationIntervals) -> dict[str, Any]:
    """Add ``[low, high]`` pairs (fractions) and the bootstrap settings to a result dict."""

    def pair(i: Interval) -> list[float | None]:
        return json_safe([i.low, i.high])

    result["bootstrap"] = {
        "n_boot": iv.n_boot,
        "seed": iv.seed,
        "confidence": iv.confidence,
        "method": "percentile bootstrap",
    }
    result["model_intervals"] = {m: pair(i) for m, i in iv.model.items()}
    for name, entry in result["scores"].items():
        entry["intervals"] = {m: pair(i) for m, i in iv.scores.get(name, {}).items()}
    return result


def result_document(
    evals: Sequence[Evaluation],
    *,
    command: str = "score",
    intervals: Sequence[EvaluationIntervals | None] | None = None,
) -> dict[str, Any]:
    """The versioned JSON document that ``--format json`` writes (and ``gate`` reads).

    With ``intervals`` (``score --bootstrap``) each result also holds
    ``bootstrap``, ``model_intervals`` and per-score ``intervals`` as
    ``[low, high]`` fractions.
    """
    from sc_eval import __version__

    names: list[str] = list(MODEL_METRICS)
    for ev in evals:
        names += [m for m in ev.metric_names if m not in names]
    ivs = list(intervals) if intervals is not None else [None] * len(evals)
    results = [
        _add_intervals(evaluation_dict(ev), iv) if iv is not None else evaluation_dict(ev)
        for ev, iv in zip(evals, ivs, strict=True)
    ]
    return {
        "schema": RESULT_SCHEMA,
        "version": RESULT_VERSION,
        "tool": f"sc-eval {__version__}",
        "command": command,
        "units": "fractions (multiply by 100 for %); nll in nats",
        "metrics": {
            m: {"higher_is_better": metric_info(m).higher_is_better, "unit": metric_info(m).unit}
            for m in names
        },
        "results": results,
    }


def _interval_dict(i: Interval | None) -> dict[str, Any] | None:
    return None if i is None else {"low": i.low, "high": i.high}


def comparison_document(cmp: Comparison) -> dict[str, Any]:
    """The versioned JSON document of ``sc-eval compare --format json``.

    ``comparisons[*].rows[*].metrics[m]`` holds ``value``, its ``interval``
    and, for every model but the reference, ``delta`` = value − reference with
    ``low``, ``high`` and ``p_value`` (fractions; null where undefined or
    without bootstrap). ``results`` holds each model's full evaluation as in
    ``sc-eval score --format json``.
    """
    from sc_eval import __version__

    names = list(dict.fromkeys([*cmp.metrics, *MODEL_METRICS]))
    bs = cmp.bootstrap
    doc = {
        "schema": COMPARISON_SCHEMA,
        "version": COMPARISON_VERSION,
        "tool": f"sc-eval {__version__}",
        "command": "compare",
        "units": "fractions (multiply by 100 for %); nll in nats; delta = model - reference",
        "metrics": {
            m: {"higher_is_better": metric_info(m).higher_is_better, "unit": metric_info(m).unit}
            for m in names
        },
        "reference": cmp.reference,
        "models": list(cmp.models),
        "n": cmp.n,
        "alignment": cmp.alignment,
        "convention": cmp.convention,
        "bootstrap": None
        if bs is None
        else {
            "n_boot": bs.n_boot,
            "seed": bs.seed,
            "confidence": bs.confidence,
            "method": bs.method,
        },
        "best": None
        if cmp.best is None
        else {
            "model": cmp.best.model,
            "score": cmp.best.score,
            "metric": cmp.best.metric,
            "value": cmp.best.value,
        },
        "comparisons": [
            {
                "score": sc.score,
                "rows": [
                    {
                        "model": r.model,
                        "reference": r.is_reference,
                        "params": r.params,
                        "tuned": r.tuned,
                        "metrics": {
                            m: {
                                "value": c.value,
                                "interval": _interval_dict(c.interval),
                                "delta": None
                                if c.delta is None
                                else {
                                    "estimate": c.delta.estimate,
                                    "low": c.delta.low,
                                    "high": c.delta.high,
                                    "p_value": c.delta.p_value,
                                    "excludes_zero": c.delta.excludes_zero,
                                },
                            }
                            for m, c in r.metrics.items()
                        },
                    }
                    for r in sc.rows
                ],
            }
            for sc in cmp.scores
        ],
    }
    doc = json_safe(doc)
    doc["results"] = [evaluation_dict(ev) for ev in cmp.evaluations]
    return doc
