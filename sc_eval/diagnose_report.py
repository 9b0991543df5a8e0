"""The JSON document of a :class:`~sc_eval.diagnosis.Diagnosis` (``sc-eval diagnose
--format json``): every number a fraction or in the unit it names, NaN as null.

Its tables, notes and CSV rows are in :mod:`sc_eval.render.diagnose`.
"""

from __future__ import annotations

import math
from typing import Any

from sc_eval.diagnosis import (
    DIAGNOSIS_SCHEMA,
    DIAGNOSIS_VERSION,
    QUANTILES,
    Diagnosis,
    GroupSummary,
    ModelDiagnosis,
)
from sc_eval.report import json_safe
from sc_eval.stats import Interval
from sc_eval.suppression import GROUPS, Suppression

__all__ = ["diagnosis_document"]


def _iv(iv: Interval | None) -> dict[str, float] | None:
    if iv is None:
        return None
    out = {"estimate": iv.estimate, "low": iv.low, "high": iv.high}
    p = getattr(iv, "p_value", None)
    if p is not None:
        out["p_value"] = p
    return out


def _grp(g: GroupSummary) -> dict[str, Any]:
    return {
        "n": g.n,
        "mean": g.mean,
        "quantiles": dict(zip(map(str, QUANTILES), g.quantiles, strict=True)),
    }


def _model_dict(m: ModelDiagnosis) -> dict[str, Any]:
    c = m.ceiling
    out: dict[str, Any] = {
        "name": m.name,
        "n": m.n,
        "num_classes": m.num_classes,
        "acc": _iv(m.acc),
        "ece": _iv(m.ece),
        "tuning": m.tuning,
        "statistics": {
            s.name: {
                "label": s.statistic.label,
                "formula": s.statistic.formula,
                "confident_high": s.statistic.confident_high,
                "correct": _grp(s.correct),
                "wrong": _grp(s.wrong),
                "auroc": _iv(s.auroc),
                "aurc": _iv(s.aurc),
            }
            for s in m.statistics
        },
        "ceiling": {
            "top": c.top,
            "band": c.band,
            "correct_share": c.correct_share,
            "wrong_share": c.wrong_share,
            "level": c.level,
            "alpha": c.alpha,
            "plateau": c.plateau,
            "finding": c.finding,
        },
        "reliability": [
            {
                "low": b.low,
                "high": b.high,
                "count": b.count,
                "confidence": b.confidence,
                "accuracy": b.accuracy,
            }
            for b in m.reliability
        ],
        "repair": [
            {
                "score": r.score,
                "params": r.params,
                "tuned": r.tuned,
                "auroc": _iv(r.auroc),
                "aurc": _iv(r.aurc),
                "delta_auroc": _iv(r.delta_auroc),
                "delta_aurc": _iv(r.delta_aurc),
            }
            for r in m.repair
        ],
        "features": None,
    }
    f = m.features
    if f is not None:
        nc = f.collapse
        out["features"] = {
            "path": f.path,
            "n": nc.n,
            "dim": nc.dim,
            "classes": nc.classes,
            "nc1": nc.nc1,
            "nc2_equinorm": nc.equinorm,
            "nc2_equiangular": nc.equiangular,
            "cos_mean": nc.cos_mean,
            "cos_std": nc.cos_std,
            "cos_etf": -1.0 / (nc.classes - 1) if nc.classes > 1 else math.nan,
            "nc3": nc.nc3 if f.has_W else None,
            "trace_within": nc.within,
            "trace_between": nc.between,
            "rank_between": nc.rank_between,
            "norm_correct": _grp(f.norm_correct),
            "norm_wrong": _grp(f.norm_wrong),
            "norm_auroc": f.norm_auroc,
        }
    return out


def _pair_dict(s: Suppression) -> dict[str, Any]:
    return {
        "first": s.first,
        "second": s.second,
        "statistic": "centred-maxlogit",
        "ratio": "sum over the cell of second / sum of first",
        "bins": [
            {
                "bin": b,
                "msp_min": lo,
                "msp_max": hi,
                "groups": {
                    g: {"n": s.cell(b, g).n, "ratio": _iv(s.cell(b, g).ratio)} for g in GROUPS
                },
            }
            for b, (lo, hi) in enumerate(s.edges)
        ],
        "overall": {g: _iv(iv) for g, iv in s.overall.items()},
        "trend": _iv(s.trend),
        "contrast": _iv(s.contrast),
        "verdict": s.verdict,
    }


def diagnosis_document(d: Diagnosis) -> dict[str, Any]:
    """The versioned JSON document of ``sc-eval diagnose --format json`` (NaN as null)."""
    from sc_eval import __version__

    return json_safe(
        {
            "schema": DIAGNOSIS_SCHEMA,
            "version": DIAGNOSIS_VERSION,
            "tool": f"sc-eval {__version__}",
            "command": "diagnose",
            "units": "fractions (acc, ece, auroc, aurc, shares, MSP); logit statistics in "
            "logit units; entropy in nats; feature norms in feature units; ratios unitless",
            "alignment": d.alignment,
            "bootstrap": {
                "n_boot": d.n_boot,
                "seed": d.seed,
                "confidence": d.confidence,
                "method": "percentile bootstrap over samples",
            },
            "models": [_model_dict(m) for m in d.models],
            "suppression": [_pair_dict(s) for s in d.suppression],
            "summary": list(d.lines),
        }
    )
