"""sc-eval: does your classifier know when it is wrong?

Selective-classification evaluation — tie-aware risk–coverage curves, AURC,
E-AURC, NAURC, AUGRC, AUROC, risk at coverage and calibration — for saved
logits or model checkpoints.

>>> import numpy as np, sc_eval
>>> ev = sc_eval.evaluate(np.array([[3.0, 0.0], [0.0, 1.0]]), np.array([0, 0]), scores=["msp"])
>>> ev.model_metrics["acc"]
0.5
"""

from sc_eval.errors import InputError, ScEvalError, UsageError
from sc_eval.io import Predictions, load_predictions, write_predictions
from sc_eval.metrics import selective_metrics
from sc_eval.pipeline import Evaluation, ScoreResult, evaluate, evaluate_predictions

__version__ = "0.1.0"

__all__ = [
    "Evaluation",
    "InputError",
    "Predictions",
    "ScEvalError",
    "ScoreResult",
    "UsageError",
    "__version__",
    "evaluate",
    "evaluate_predictions",
    "load_predictions",
    "selective_metrics",
    "write_predictions",
]
