"""Sources: what a user names on the command line, resolved to :class:`Predictions`.

A source is a predictions file today; a model checkpoint (with ``--data``)
resolves through inference and a cache (see :mod:`sc_eval.infer`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from sc_eval.io import Predictions, load_predictions

__all__ = ["KeyOptions", "load_source"]


@dataclass(frozen=True)
class KeyOptions:
    """Tensor names to read from predictions files."""

    logits_key: str | None = None
    probs_key: str | None = None
    labels_key: str = "labels"
    index_key: str = "index"


def load_source(path: str | os.PathLike[str], *, keys: KeyOptions = KeyOptions()) -> Predictions:
    """Resolve one command-line source to validated predictions."""
    return load_predictions(
        path,
        logits_key=keys.logits_key,
        probs_key=keys.probs_key,
        labels_key=keys.labels_key,
        index_key=keys.index_key,
    )
