"""A shippable selective classifier: score + parameters + threshold, as versioned JSON.

``sc-eval threshold … -o selector.json`` writes a :class:`Selector`; a service
loads it and calls :meth:`Selector.accept` on its logits. The decision uses the
very same score code as the command line (:func:`sc_eval.scores.get_score`
applied to :class:`sc_eval.scores.RowStats`) and compares the float64 *rank
key* with the stored threshold, so the calibration decision is reproduced
exactly, ties included.

>>> import numpy as np
>>> sel = Selector(score="msp", params={}, threshold=1.0, threshold_value=0.7311,
...                mode="coverage", target=0.5, delta=0.05, bound=0.6)
>>> sel.accept(np.array([[2.0, 0.0], [0.2, 0.0]])).tolist()
[True, False]
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from sc_eval import __version__
from sc_eval.errors import InputError, UsageError
from sc_eval.files import read_json
from sc_eval.io import RawArray, _as_numpy
from sc_eval.outputs import write_text
from sc_eval.pipeline import default_chunk_size
from sc_eval.report import json_safe
from sc_eval.scores import SCORES, RowStats, get_score

if TYPE_CHECKING:
    from sc_eval.io import ArrayInput
    from sc_eval.threshold import ThresholdResult

__all__ = ["SELECTOR_SCHEMA", "SELECTOR_VERSION", "Selector"]

SELECTOR_SCHEMA = "sc-eval/selector"
SELECTOR_VERSION = 1


@dataclass(frozen=True)
class Selector:
    """Accept an input iff its confidence rank key is at least ``threshold``.

    Attributes
    ----------
    score : str
        Confidence score name (a key of :data:`sc_eval.scores.SCORES`).
    params : dict
        Score parameters, fixed or tuned (e.g. ``{"p": 2.0}``).
    threshold : float
        Threshold on the score's rank key (exact decision rule: ``key >= threshold``).
    threshold_value : float
        The same threshold in the score's human-readable value (for reading only).
    mode : {"risk", "coverage"}
        Whether the threshold certifies a target risk or sits at a target coverage.
    target : float
        The target risk (mode ``risk``) or coverage (mode ``coverage``).
    delta : float
        Failure probability of the guarantee.
    bound : float
        Upper bound on the selective risk holding with probability ``>= 1 - delta``.
    tuned : bool
        True when ``params`` were tuned (on data disjoint from the calibration samples).
    calibration : dict
        ``n``, ``accepted``, ``errors``, ``coverage``, ``risk``, ``tests``,
        ``source``, ``input_kind``, ``num_classes``, ``labels_sha256``, ``data_sha256``
        and ``tuning`` (how ``params`` were tuned, or None).
    guarantee : str
        The promise in words.
    tool : str
        The sc-eval version that wrote it.
    """

    score: str
    params: dict[str, float]
    threshold: float
    threshold_value: float
    mode: str
    target: float
    delta: float
    bound: float
    tuned: bool = False
    calibration: dict[str, Any] = field(default_factory=dict)
    guarantee: str = ""
    tool: str = ""

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_result(cls, result: ThresholdResult) -> Selector:
        """Build from a feasible :class:`sc_eval.threshold.ThresholdResult`."""

        c = result.control
        if not c.feasible:
            raise UsageError("no feasible threshold: nothing to save as a selector")
        target = c.target_risk if c.target_risk is not None else c.target_coverage
        assert target is not None  # a risk control has a target risk or a target coverage
        return cls(
            score=result.score,
            params=dict(result.params),
            threshold=float(c.key),
            threshold_value=float(result.value),
            mode=result.mode,
            target=float(target),
            delta=float(c.delta),
            bound=float(c.bound),
            tuned=bool(result.tuned),
            calibration={
                "source": result.source,
                "input_kind": result.input_kind,
                "num_classes": result.num_classes,
                "n": c.n,
                "accepted": c.point.accepted,
                "errors": c.point.errors,
                "coverage": c.coverage,
                "risk": c.risk,
                "tests": c.tests,
                "labels_sha256": result.labels_sha256,
                "data_sha256": result.data_sha256,
                "tuning": json_safe(result.tuning),
            },
            guarantee=result.guarantee(),
            tool=f"sc-eval {__version__}",
        )

    # ------------------------------------------------------------------ JSON
    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able data with ``schema`` and ``version`` first.

        An infinite threshold (possible when the accepted block's keys are
        ``+inf``) is written as the string ``"inf"`` / ``"-inf"`` (strict JSON).
        """
        doc = {"schema": SELECTOR_SCHEMA, "version": SELECTOR_VERSION, **asdict(self)}
        for name in ("threshold", "threshold_value"):
            if math.isinf(doc[name]):
                doc[name] = "inf" if doc[name] > 0 else "-inf"
        return doc

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, allow_nan=False, ensure_ascii=False) + "\n"

    def save(self, path: str | os.PathLike[str], *, announce: bool = False) -> None:
        """Write the selector as JSON, atomically (no partial file on failure)."""

        write_text(path, self.to_json(), announce=announce)

    @classmethod
    def from_dict(cls, doc: Any, *, path: object = None) -> Selector:
        """Validate a parsed selector document (``InputError`` naming the field)."""

        if not isinstance(doc, dict):
            raise InputError("expected a JSON object", path=path)
        if doc.get("schema") != SELECTOR_SCHEMA:
            raise InputError(
                f"expected '{SELECTOR_SCHEMA}', got {doc.get('schema')!r}",
                path=path,
                field="schema",
            )
        if doc.get("version") != SELECTOR_VERSION:
            raise InputError(
                f"expected version {SELECTOR_VERSION} (this sc-eval reads only that), "
                f"got {doc.get('version')!r}",
                path=path,
                field="version",
            )
        score = doc.get("score")
        if not isinstance(score, str) or score not in SCORES:
            raise InputError(
                f"expected a known score name, got {score!r}", path=path, field="score"
            )
        params = doc.get("params", {})
        if not isinstance(params, dict) or not all(
            isinstance(v, int | float) and not isinstance(v, bool) for v in params.values()
        ):
            raise InputError("expected an object of numbers", path=path, field="params")
        nums = {}
        for name in ("threshold", "threshold_value", "target", "delta", "bound"):
            v = doc.get(name)
            if name.startswith("threshold") and v in ("inf", "-inf"):
                v = float(v)
            if not isinstance(v, int | float) or isinstance(v, bool) or math.isnan(v):
                raise InputError(f"expected a number, got {v!r}", path=path, field=name)
            nums[name] = float(v)
        if not isinstance(doc.get("calibration", {}), dict | None):
            raise InputError("expected an object", path=path, field="calibration")
        if doc.get("mode") not in ("risk", "coverage"):
            raise InputError(
                f"expected 'risk' or 'coverage', got {doc.get('mode')!r}", path=path, field="mode"
            )
        return cls(
            score=score,
            params={str(k): float(v) for k, v in params.items()},
            mode=doc["mode"],
            tuned=bool(doc.get("tuned", False)),
            calibration=dict(doc.get("calibration") or {}),
            guarantee=str(doc.get("guarantee", "")),
            tool=str(doc.get("tool", "")),
            **nums,
        )

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Selector:
        """Read a selector written by :meth:`save` (or ``sc-eval threshold -o``)."""

        return cls.from_dict(read_json(path, "selector file"), path=path)

    # ------------------------------------------------------------------ decisions
    def confidence(
        self, logits: ArrayInput | None = None, *, probs: ArrayInput | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Rank keys and human-readable values of the selector's score.

        Parameters
        ----------
        logits : array-like, shape (n, C), optional
            numpy array or torch tensor (any float dtype, any device).
        probs : array-like, shape (n, C), optional
            Probabilities, for scores that accept them. Give exactly one.

        Returns
        -------
        keys, values : ndarray of float64, shape (n,)
        """

        values = logits if logits is not None else probs
        if values is None or (logits is not None and probs is not None):
            raise UsageError("Selector needs exactly one of logits or probs")
        score = get_score(self.score)
        kind = "logits" if logits is not None else "probs"
        if kind == "probs" and score.needs_logits:
            raise UsageError(f"score '{self.score}' needs logits, got probabilities")
        arr, dtype = _as_numpy(values)
        raw = RawArray(arr, dtype)
        if len(raw.shape) != 2:
            raise InputError(
                f"expected a 2-D [n, C] array, got shape {list(raw.shape)}", field=kind
            )
        expected = self.calibration.get("num_classes")
        if expected is not None and raw.shape[1] != expected:
            raise InputError(
                f"expected C = {expected} classes as in calibration, got {raw.shape[1]}",
                field=kind,
            )
        n = raw.shape[0]
        size = default_chunk_size(raw.shape[1])
        keys = np.empty(n, dtype=np.float64)
        values = np.empty(n, dtype=np.float64)
        for start in range(0, n, size):
            stop = min(start + size, n)
            rows = raw.rows(start, stop)
            if not np.issubdtype(rows.dtype, np.floating):
                rows = rows.astype(np.float64)
            if not np.isfinite(rows).all():
                bad = start + int(np.argmax(~np.isfinite(rows).all(axis=1)))
                raise InputError(
                    f"expected finite values, found NaN or Inf at row {bad}", field=kind
                )
            stats = RowStats(logits=rows) if kind == "logits" else RowStats(probs=rows)
            keys[start:stop], values[start:stop] = score(stats, self.params)
        return keys, values

    def accept(
        self, logits: ArrayInput | None = None, *, probs: ArrayInput | None = None
    ) -> np.ndarray:
        """Boolean mask of the inputs to accept (``True``) or reject (``False``).

        Parameters
        ----------
        logits : array-like, shape (n, C)
            numpy array or torch tensor; use ``probs=`` for probabilities.

        Returns
        -------
        ndarray of bool, shape (n,)
            A numpy mask (``torch.from_numpy(mask)`` gives a tensor).
        """
        keys, _ = self.confidence(logits, probs=probs)
        return keys >= self.threshold
