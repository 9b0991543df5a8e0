"""sc-eval: does your classifier know when it is wrong?

Selective-classification evaluation — tie-aware risk–coverage curves, AURC,
E-AURC, NAURC, AUGRC, AUROC, risk at coverage and calibration — for saved
logits or model checkpoints.

The public names below are imported lazily (PEP 562), so ``sc-eval --help``
and ``import sc_eval.cli`` do not pay for numpy.

>>> import numpy as np, sc_eval
>>> ev = sc_eval.evaluate(np.array([[3.0, 0.0], [0.0, 1.0]]), np.array([0, 0]), scores=["msp"])
>>> ev.model_metrics["acc"]
0.5
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS: dict[str, str] = {
    "InputError": "sc_eval.errors",
    "ScEvalError": "sc_eval.errors",
    "UsageError": "sc_eval.errors",
    "EvalOptions": "sc_eval.pipeline",
    "Evaluation": "sc_eval.pipeline",
    "ScoreResult": "sc_eval.pipeline",
    "evaluate": "sc_eval.pipeline",
    "evaluate_predictions": "sc_eval.pipeline",
    "evaluate_sources": "sc_eval.pipeline",
    "ScoreReport": "sc_eval.pipeline",
    "Predictions": "sc_eval.io",
    "load_predictions": "sc_eval.io",
    "write_predictions": "sc_eval.io",
    "selective_metrics": "sc_eval.metrics",
    "compare": "sc_eval.comparison",
    "Comparison": "sc_eval.comparison",
    "run_gate": "sc_eval.gate",
    "GateReport": "sc_eval.gate",
    "select_threshold": "sc_eval.threshold",
    "ThresholdResult": "sc_eval.threshold",
    "Selector": "sc_eval.selector",
    "diagnose": "sc_eval.diagnosis",
    "Diagnosis": "sc_eval.diagnosis",
    "neural_collapse": "sc_eval.collapse",
}

__all__ = [
    "Comparison",
    "Diagnosis",
    "EvalOptions",
    "Evaluation",
    "GateReport",
    "InputError",
    "Predictions",
    "ScEvalError",
    "ScoreReport",
    "ScoreResult",
    "Selector",
    "ThresholdResult",
    "UsageError",
    "__version__",
    "compare",
    "diagnose",
    "evaluate",
    "evaluate_predictions",
    "evaluate_sources",
    "load_predictions",
    "neural_collapse",
    "run_gate",
    "select_threshold",
    "selective_metrics",
    "write_predictions",
]

if TYPE_CHECKING:
    from sc_eval.collapse import neural_collapse
    from sc_eval.comparison import Comparison, compare
    from sc_eval.diagnosis import Diagnosis, diagnose
    from sc_eval.errors import InputError, ScEvalError, UsageError
    from sc_eval.gate import GateReport, run_gate
    from sc_eval.io import Predictions, load_predictions, write_predictions
    from sc_eval.metrics import selective_metrics
    from sc_eval.pipeline import (
        EvalOptions,
        Evaluation,
        ScoreReport,
        ScoreResult,
        evaluate,
        evaluate_predictions,
        evaluate_sources,
    )
    from sc_eval.selector import Selector
    from sc_eval.threshold import ThresholdResult, select_threshold


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'sc_eval' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
