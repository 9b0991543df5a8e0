"""Confidence-score registry (SPEC §3).

Each score maps a chunk of rows (logits or probabilities) to two float64
vectors: a *rank key* used for sorting, and the human-readable *value*. The
two order samples identically, but the key never saturates: float32 softmax
gives an MSP of exactly 1.0 for many confident samples, which would create
false ties; the MSP key is ``-log sum_{j != top} exp(z_j - z_top)`` computed in
float64 (and similar log-space keys for margin, gini and entropy).

Scores declare whether they need logits (``needs_logits``) or also accept
probabilities; input files declare which they hold, nothing is guessed.

References
----------
Hendrycks & Gimpel (2017) — MSP. Hendrycks et al. (2022) — MaxLogit.
Liu et al. (2020) — energy. Granese et al. (2021) — DOCTOR (gini).
Cattelan & Silva (2024), *How to fix a broken confidence estimator* — MaxLogit-pNorm.
Xia et al. (2024), arXiv 2403.14715 — logit normalisation repairs label smoothing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from sc_eval.errors import UsageError, unknown_name

__all__ = ["DEFAULT_SCORES", "SCORES", "RowStats", "Score", "get_score", "pnorm_normalise"]


class RowStats:
    """Softmax statistics of a chunk of rows, shared by every score (computed lazily).

    Parameters
    ----------
    logits : ndarray, shape (n, C), optional
    probs : ndarray, shape (n, C), optional
        Exactly one of the two.

    Notes
    -----
    Everything derives from ``logr[i, j] = log(p_ij / p_i,top)`` (0 at the top
    class), so logits and probabilities share one code path.
    """

    def __init__(self, *, logits: np.ndarray | None = None, probs: np.ndarray | None = None):
        if (logits is None) == (probs is None):
            raise ValueError("RowStats needs exactly one of logits or probs")
        self.is_logits = logits is not None
        self.z: np.ndarray | None = None
        rows = logits if logits is not None else probs
        assert rows is not None
        self._rows = np.arange(rows.shape[0])
        if logits is not None:
            self.z = np.asarray(logits, dtype=np.float64)
            self.top = np.argmax(self.z, axis=1)
            self.logr = self.z - self.z[self._rows, self.top][:, None]
        else:
            p = np.asarray(probs, dtype=np.float64)
            self.top = np.argmax(p, axis=1)
            with np.errstate(divide="ignore"):
                logp = np.log(p)
            self.logr = logp - logp[self._rows, self.top][:, None]

    @cached_property
    def _others(self) -> np.ndarray:
        """``logr`` with the top entry set to -inf."""
        o = self.logr.copy()
        o[self._rows, self.top] = -np.inf
        return o

    @cached_property
    def d2(self) -> np.ndarray:
        """``log(p_2 / p_1)``: the runner-up's log-ratio (``-inf`` when C = 1)."""
        return np.max(self._others, axis=1)

    @cached_property
    def _scaled(self) -> tuple[np.ndarray, np.ndarray]:
        """``S' = sum_{j != top} exp(logr_j - d2)`` and ``Q' = sum exp(2 (logr_j - d2))``."""
        with np.errstate(invalid="ignore"):
            e = np.exp(self._others - self.d2[:, None])
        e = np.nan_to_num(e, nan=0.0)
        return e.sum(axis=1), np.einsum("ij,ij->i", e, e)

    @cached_property
    def log_s(self) -> np.ndarray:
        """``log S`` with ``S = sum_{j != top} p_j / p_top`` (never underflows)."""
        with np.errstate(divide="ignore"):
            return self.d2 + np.log(self._scaled[0])

    @cached_property
    def log1p_s(self) -> np.ndarray:
        """``log(1 + S) = -log p_top``."""
        return np.logaddexp(0.0, self.log_s)

    @property
    def p_top(self) -> np.ndarray:
        return np.exp(-self.log1p_s)

    @cached_property
    def log_probs(self) -> np.ndarray:
        return self.logr - self.log1p_s[:, None]

    @cached_property
    def probs(self) -> np.ndarray:
        return np.exp(self.log_probs)


# --------------------------------------------------------------------------- score functions
Params = Mapping[str, float]
ScoreFn = Callable[[RowStats, Params], tuple[np.ndarray, np.ndarray]]


def _msp(s: RowStats, params: Params) -> tuple[np.ndarray, np.ndarray]:
    return -s.log_s, s.p_top


def _maxlogit(s: RowStats, params: Params) -> tuple[np.ndarray, np.ndarray]:
    assert s.z is not None
    v = s.z[s._rows, s.top]
    return v, v


def _logit_margin(s: RowStats, params: Params) -> tuple[np.ndarray, np.ndarray]:
    # logr of the runner-up is z_2 - z_1, exact in float64
    v = -s.d2
    return v, v


def _margin(s: RowStats, params: Params) -> tuple[np.ndarray, np.ndarray]:
    # p1 - p2 = (1 - e^{d2}) / (1 + S); key = -log(1 - (p1 - p2)) = log(1+S) - log(S + e^{d2})
    key = s.log1p_s - np.logaddexp(s.log_s, s.d2)
    value = -np.expm1(s.d2) * s.p_top
    return key, value


def _gini(s: RowStats, params: Params) -> tuple[np.ndarray, np.ndarray]:
    # 1 - sum p^2 = (2S + S^2 - Q) / (1+S)^2, Q = sum_{j != top} (p_j/p_top)^2, computed in
    # units of e^{d2} so that nothing underflows
    s1, q1 = s._scaled
    with np.errstate(divide="ignore", invalid="ignore"):
        inner = 2 * s1 + np.exp(s.d2) * (s1 * s1 - q1)
        log_one_minus = s.d2 + np.log(inner) - 2 * s.log1p_s
    log_one_minus = np.where(np.isnan(log_one_minus), -np.inf, log_one_minus)
    value = -np.expm1(log_one_minus)
    return -log_one_minus, value


def _neg_entropy(s: RowStats, params: Params) -> tuple[np.ndarray, np.ndarray]:
    # H = log(1+S) + sum_{j != top} p_j (-logr_j): a sum of non-negative terms. Key = -log H.
    lp = s.log_probs
    others = s._others
    with np.errstate(divide="ignore", invalid="ignore"):
        log_terms = np.where(np.isfinite(others), lp + np.log(-others), -np.inf)
        log_l = np.where(
            s.log_s < -30.0, s.log_s + np.log1p(-0.5 * np.exp(s.log_s)), np.log(s.log1p_s)
        )
        log_h = np.logaddexp(log_l, _logsumexp_rows(log_terms))
    return -log_h, -np.exp(log_h)


def _logsumexp_rows(x: np.ndarray) -> np.ndarray:
    m = np.max(x, axis=1)
    safe = np.where(np.isfinite(m), m, 0.0)
    with np.errstate(divide="ignore"):
        return safe + np.log(np.sum(np.exp(x - safe[:, None]), axis=1))


def _energy(s: RowStats, params: Params) -> tuple[np.ndarray, np.ndarray]:
    assert s.z is not None
    t = float(params["T"])
    zt = s.z / t
    v = t * _logsumexp_rows(zt)
    return v, v


def pnorm_normalise(z: np.ndarray, p: float) -> np.ndarray:
    """Centre each row and divide it by its p-norm: ``(z - mean(z)) / ||z - mean(z)||_p``.

    ``p = 0`` means no normalisation and returns ``z`` unchanged. Rows whose
    centred norm is 0 (all logits equal) map to zeros.

    Examples
    --------
    >>> pnorm_normalise(np.array([[1.0, 3.0]]), 2).round(4).tolist()
    [[-0.7071, 0.7071]]
    """
    if p == 0:
        return z
    c = z - z.mean(axis=1, keepdims=True)
    scale = np.max(np.abs(c), axis=1, keepdims=True)
    safe = np.where(scale > 0, scale, 1.0)
    norm = safe * np.sum(np.abs(c / safe) ** p, axis=1, keepdims=True) ** (1.0 / p)
    return np.where(scale > 0, c / np.where(norm > 0, norm, 1.0), 0.0)


def _maxlogit_pnorm(s: RowStats, params: Params) -> tuple[np.ndarray, np.ndarray]:
    assert s.z is not None
    v = np.max(pnorm_normalise(s.z, params["p"]), axis=1)
    return v, v


def _msp_of(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return _msp(RowStats(logits=z), {})


def _msp_pnorm(s: RowStats, params: Params) -> tuple[np.ndarray, np.ndarray]:
    assert s.z is not None
    return _msp_of(pnorm_normalise(s.z, params["p"]) / float(params["T"]))


def _msp_ts(s: RowStats, params: Params) -> tuple[np.ndarray, np.ndarray]:
    assert s.z is not None
    return _msp_of(s.z / float(params["T"]))


# --------------------------------------------------------------------------- registry
@dataclass(frozen=True)
class Score:
    """A named confidence score.

    Attributes
    ----------
    name : str
    fn : callable
        ``fn(rowstats, params) -> (rank_key, value)``, both float64 of shape (n,).
    needs_logits : bool
        False when the score is defined from probabilities alone.
    description : str
    defaults : mapping
        Parameter names and their fixed default values.
    tuning : str or None
        How the parameters are tuned when a tuning split is given: ``"aurc"``
        (grid minimising AURC), ``"nll"`` (temperature by likelihood) or None.
    higher_is_better : bool
        Always True: a confidence, higher is accepted first.
    """

    name: str
    fn: ScoreFn
    needs_logits: bool
    description: str
    defaults: Mapping[str, float] = field(default_factory=dict)
    tuning: str | None = None
    higher_is_better: bool = True

    def resolve(self, overrides: Mapping[str, float] | None = None) -> dict[str, float]:
        """Default parameters updated with ``overrides`` that this score takes."""
        params = dict(self.defaults)
        for k, v in (overrides or {}).items():
            if k in params:
                params[k] = float(v)
        return params

    def __call__(
        self, stats: RowStats, params: Mapping[str, float] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        return self.fn(stats, self.resolve(params))


SCORES: dict[str, Score] = {
    s.name: s
    for s in (
        Score("msp", _msp, False, "maximum softmax probability"),
        Score("maxlogit", _maxlogit, True, "maximum logit"),
        Score("margin", _margin, False, "top-1 minus top-2 softmax probability"),
        Score("logit-margin", _logit_margin, True, "top-1 minus top-2 logit"),
        Score("neg-entropy", _neg_entropy, False, "negative Shannon entropy of the softmax"),
        Score("gini", _gini, False, "sum of squared softmax probabilities (DOCTOR)"),
        Score("energy", _energy, True, "T * logsumexp(z / T)", {"T": 1.0}),
        Score(
            "maxlogit-pnorm",
            _maxlogit_pnorm,
            True,
            "max_j (z_j - mean z) / ||z - mean z||_p (p = 0: plain max logit)",
            {"p": 2.0},
            tuning="aurc",
        ),
        Score(
            "msp-pnorm",
            _msp_pnorm,
            True,
            "MSP of (z - mean z) / (T ||z - mean z||_p)",
            {"p": 2.0, "T": 1.0},
            tuning="aurc",
        ),
        Score(
            "msp-ts", _msp_ts, True, "MSP after temperature scaling z / T", {"T": 1.0}, tuning="nll"
        ),
    )
}

DEFAULT_SCORES: tuple[str, ...] = (
    "msp",
    "maxlogit",
    "margin",
    "logit-margin",
    "neg-entropy",
    "gini",
    "energy",
    "maxlogit-pnorm",
)


def get_score(name: str) -> Score:
    """Look up a score by name (``UsageError`` suggesting the closest name otherwise)."""
    try:
        return SCORES[name]
    except KeyError:
        raise unknown_name("score", name, SCORES) from None


def check_scores_for_input(names: list[str] | tuple[str, ...], *, has_logits: bool) -> None:
    """Refuse logit-only scores on a probabilities input."""
    if has_logits:
        return
    bad = [n for n in names if get_score(n).needs_logits]
    if bad:
        ok = [s.name for s in SCORES.values() if not s.needs_logits]
        raise UsageError(
            f"score(s) {', '.join(bad)} need logits but the input holds probabilities; "
            f"on probabilities use: {', '.join(ok)}"
        )
