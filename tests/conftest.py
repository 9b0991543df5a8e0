"""Shared fixtures and small data builders for the sc-eval tests.

Hypothesis profiles (choose with ``HYPOTHESIS_PROFILE=...``):

* ``default`` — fast, for every run: 60 examples, no deadline;
* ``thorough`` — 1000 examples, for an occasional deep run.

Golden files (``tests/golden/``) are compared through the ``golden`` fixture;
rewrite them after an intended output change with ``SC_EVAL_UPDATE_GOLDEN=1``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "default",
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "thorough",
    max_examples=1000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

GOLDEN_DIR = Path(__file__).parent / "golden"
UPDATE_GOLDEN = os.environ.get("SC_EVAL_UPDATE_GOLDEN") == "1"


# --------------------------------------------------------------------------- data builders
def make_logits(
    n: int, c: int, *, seed: int = 0, scale: float = 3.0, accuracy: float = 0.7
) -> tuple[np.ndarray, np.ndarray]:
    """Random float32 logits whose argmax equals the label about ``accuracy`` of the time."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, c, n)
    z = rng.normal(size=(n, c)) * scale
    hit = rng.random(n) < accuracy
    z[np.arange(n), labels] += np.where(hit, 2 * scale, 0.0)
    return z.astype(np.float32), labels.astype(np.int64)


def predictions_file(path: Path, n: int, c: int, *, seed: int = 0) -> Path:
    """Write :func:`make_logits` predictions to a ``.safetensors`` file and return its path."""
    from sc_eval.io import write_predictions

    z, y = make_logits(n, c, seed=seed)
    write_predictions(path, logits=z, labels=y)
    return path


def fixed_predictions() -> tuple[np.ndarray, np.ndarray]:
    """A small fixed predictions set (no RNG: identical on every platform).

    24 samples, 3 classes, 6 errors (mostly, not only, on unconfident rows),
    exactly tied rows and a row whose float32 MSP saturates to 1.0.
    """
    n = 24
    labels = (np.arange(n) * 5 % 3).astype(np.int64)
    z = np.zeros((n, 3), dtype=np.float32)
    for i in range(n):
        y = int(labels[i])
        z[i, (y + 1) % 3] = ((i * 7) % 5 - 2) / 4
        z[i, (y + 2) % 3] = ((i * 3) % 4 - 1) / 4
        z[i, y] = 0.3 * (i % 12) + 0.4 + (i % 5) / 8
    for i in (0, 2, 7, 13, 18):  # errors: another class wins
        z[i, (labels[i] + 1) % 3] = z[i].max() + 0.2 * (1 + i % 3)
    z[5] = z[4]  # exact ties: equal rows, equal labels
    labels[5] = labels[4]
    z[19] = z[18]
    labels[19] = labels[18]
    z[20] = [40.0, -10.0, 0.0]  # float32 MSP saturates to 1.0
    labels[20] = 0
    return z, labels


@pytest.fixture
def fixed_preds() -> tuple[np.ndarray, np.ndarray]:
    return fixed_predictions()


@pytest.fixture
def random_preds() -> tuple[np.ndarray, np.ndarray]:
    return make_logits(300, 5, seed=1)


@pytest.fixture
def golden():
    """Compare text with ``tests/golden/NAME`` (or rewrite it with SC_EVAL_UPDATE_GOLDEN=1)."""

    def check(name: str, text: str) -> str:
        path = GOLDEN_DIR / name
        if UPDATE_GOLDEN:
            GOLDEN_DIR.mkdir(exist_ok=True)
            path.write_text(text, encoding="utf-8")
        assert path.exists(), f"missing golden file {path}; run with SC_EVAL_UPDATE_GOLDEN=1"
        return path.read_text(encoding="utf-8")

    return check
