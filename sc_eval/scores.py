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

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from sc_eval.errors import UsageError, unknown_name

__all__ = [
    "DEFAULT_SCORES",
    "MSP_FALLBACK",
    "SCORES",
    "RowStats",
    "Score",
    "default_scores",
    "get_score",
    "pnorm_normalise",
]

#: Flag parameter of ``maxlogit-pnorm``: 1 means rank by MSP instead (Cattelan & Silva's
#: fall-back, chosen by tuning when MSP has the lower AURC on the tuning split).
MSP_FALLBACK = "msp_fallback"


class RowStats:
    """Softmax statistics of a chunk of rows, shared by every score (computed lazily).

    Parameters
    ----------
    logits : ndarray, shape (n, C), optional
    probs : ndarray, shape (n, C), optional
        Exactly one of the two.

    Notes
    -----
    Everything derives from ``logr[i, j] = log(p_ij / p_i,top)`` for the
    non-top classes (the top entry is stored as ``-inf``), so logits and
    probabilities share one code path. With ``e = exp(logr)`` (0 at the top),
    ``S = sum_j e_j = (1 - p_top) / p_top`` and ``Q = sum_j e_j^2``; MSP, margin,
    gini, entropy, energy (T = 1) and the calibration terms all follow from
    ``S``, ``Q`` and one more row reduction, so the ``[n, C]`` matrix is
    exponentiated once. Rows where ``S`` underflows (a runner-up more than ~575
    nats below the top) are recomputed in log space, so keys never saturate.
    """

    TINY = 1e-250

    def __init__(self, *, logits: np.ndarray | None = None, probs: np.ndarray | None = None):
        if (logits is None) == (probs is None):
            raise ValueError("RowStats needs exactly one of logits or probs")
        self.is_logits = logits is not None
        raw = np.asarray(logits if logits is not None else probs)
        self._raw = raw
        self._rows = np.arange(raw.shape[0])
        self.top = np.argmax(raw, axis=1)
        if logits is not None:
            self.top_value = raw[self._rows, self.top].astype(np.float64)
            # float32 - float64 is computed in float64: exact differences of the stored logits
            self.logr = np.subtract(raw, self.top_value[:, None], dtype=np.float64)
        else:
            with np.errstate(divide="ignore"):
                logp = np.log(raw.astype(np.float64))
            self.top_value = logp[self._rows, self.top]
            self.logr = logp - self.top_value[:, None]
        # logr is 0 at the top class; the runner-up is the max with the top masked out
        self.logr[self._rows, self.top] = -np.inf
        #: ``log(p_2 / p_1)``: the runner-up's log-ratio, exact for logits.
        self.d2 = np.max(self.logr, axis=1)
        self.logr[self._rows, self.top] = 0.0

    @cached_property
    def row_sum(self) -> np.ndarray:
        """``sum_j logr_ij`` (``sum_j (z_j - z_top)`` for logits); non-finite iff the row is."""
        return self.logr.sum(axis=1)

    @cached_property
    def z(self) -> np.ndarray | None:
        """The logits in float64 (None for probabilities)."""
        return np.asarray(self._raw, dtype=np.float64) if self.is_logits else None

    @cached_property
    def e(self) -> np.ndarray:
        """``p_j / p_top`` for the non-top classes (0 at the top)."""
        e = np.exp(self.logr)
        e[self._rows, self.top] = 0.0
        return e

    @cached_property
    def _sums(self) -> tuple[np.ndarray, np.ndarray]:
        e = self.e
        return e.sum(axis=1), np.einsum("ij,ij->i", e, e)

    @property
    def s(self) -> np.ndarray:
        """``S = sum_{j != top} p_j / p_top`` (may underflow to 0; see :attr:`log_s`)."""
        return self._sums[0]

    @property
    def q(self) -> np.ndarray:
        return self._sums[1]

    @cached_property
    def tiny(self) -> np.ndarray:
        """Indices of rows whose ``S`` is too small for linear-space arithmetic."""
        return np.flatnonzero(self.s < self.TINY)

    @cached_property
    def log_s(self) -> np.ndarray:
        """``log S``, exact even where ``S`` underflows."""
        with np.errstate(divide="ignore"):
            out = np.log(self.s)
        t = self.tiny
        if t.size:
            d2 = self.d2[t]
            finite = np.isfinite(d2)
            others = self.logr[t]
            others[np.arange(t.size), self.top[t]] = -np.inf
            with np.errstate(invalid="ignore"):
                scaled = np.exp(others - np.where(finite, d2, 0.0)[:, None]).sum(axis=1)
            with np.errstate(divide="ignore"):
                out[t] = np.where(finite, d2 + np.log(scaled), -np.inf)
        return out

    @cached_property
    def log1p_s(self) -> np.ndarray:
        """``log(1 + S) = -log p_top``."""
        return np.log1p(self.s)

    @property
    def p_top(self) -> np.ndarray:
        return 1.0 / (1.0 + self.s)

    def log_p(self, cls: np.ndarray) -> np.ndarray:
        """``log p_{i, cls_i}`` for one class per row."""
        return self.logr[self._rows, cls] - self.log1p_s

    def sum_p_squared(self) -> np.ndarray:
        """``sum_j p_j^2 = (1 + Q) / (1 + S)^2``."""
        return (1.0 + self.q) / (1.0 + self.s) ** 2


# --------------------------------------------------------------------------- score functions
Params = Mapping[str, float]
ScoreFn = Callable[[RowStats, Params], tuple[np.ndarray, np.ndarray]]


def _msp(s: RowStats, params: Params) -> tuple[np.ndarray, np.ndarray]:
    return -s.log_s, s.p_top


def _maxlogit(s: RowStats, params: Params) -> tuple[np.ndarray, np.ndarray]:
    return s.top_value, s.top_value


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
    # 1 - sum p^2 = (2S + S^2 - Q) / (1+S)^2 with S^2 >= Q: no cancellation against 2S
    with np.errstate(divide="ignore"):
        log_one_minus = np.log(2 * s.s + (s.s * s.s - s.q)) - 2 * s.log1p_s
    t = s.tiny
    if t.size:  # 2S dominates: log(1 - gini) = log 2 + log S to within S
        log_one_minus[t] = np.log(2.0) + s.log_s[t]
    return -log_one_minus, -np.expm1(log_one_minus)


def _neg_entropy(s: RowStats, params: Params) -> tuple[np.ndarray, np.ndarray]:
    # H = log(1+S) + sum_{j != top} p_j (-logr_j): non-negative terms. Key = -log H.
    e, logr = s.e, s.logr
    if not s.is_logits:  # zero probabilities: e = 0 and logr = -inf
        logr = np.where(np.isfinite(logr), logr, 0.0)
    h = s.log1p_s - np.einsum("ij,ij->i", e, logr) * s.p_top
    with np.errstate(divide="ignore"):
        log_h = np.log(h)
    t = s.tiny
    if t.size:
        log_h[t] = _tiny_log_entropy(logr[t], s.log_s[t])
    return -log_h, -np.exp(log_h)


def _tiny_log_entropy(logr: np.ndarray, log_s: np.ndarray) -> np.ndarray:
    """``log H`` in log space for rows whose ``S`` underflows (``log(1+S) ~ S``)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(np.isfinite(logr), logr + np.log(-logr), -np.inf)
        return np.logaddexp(log_s, _logsumexp_rows(terms))


def _logsumexp_rows(x: np.ndarray) -> np.ndarray:
    m = np.max(x, axis=1)
    safe = np.where(np.isfinite(m), m, 0.0)
    with np.errstate(divide="ignore"):
        return safe + np.log(np.sum(np.exp(x - safe[:, None]), axis=1))


def _energy(s: RowStats, params: Params) -> tuple[np.ndarray, np.ndarray]:
    t = float(params["T"])
    # at T = 1, logsumexp(z) = z_top + log(1 + S) is already known
    if t == 1.0:
        return s.top_value + s.log1p_s, s.top_value + s.log1p_s
    assert s.z is not None
    v = t * _logsumexp_rows(s.z / t)
    return v, v


def _row_pnorm_fast(c: np.ndarray, p: float) -> np.ndarray:
    if math.isinf(p):  # the max-norm, the limit p -> inf
        return np.abs(c).max(axis=1)
    if p == 2:
        return np.sqrt(np.einsum("ij,ij->i", c, c))
    a = np.abs(c)
    if p == 1:
        return a.sum(axis=1)
    if float(p).is_integer() and 2 < p <= 16:
        acc = a.copy()
        for _ in range(int(p) - 1):
            acc *= a
        return acc.sum(axis=1) ** (1.0 / p)
    return (a**p).sum(axis=1) ** (1.0 / p)


def _row_pnorm(c: np.ndarray, p: float) -> np.ndarray:
    """``||c_i||_p`` of each row; rows whose powers over- or underflow are rescaled."""
    with np.errstate(over="ignore", under="ignore"):
        norm = _row_pnorm_fast(c, p)
    redo = np.flatnonzero(~np.isfinite(norm) | (norm < 1e-280))
    if redo.size:
        sub = c[redo]
        scale = np.max(np.abs(sub), axis=1)
        safe = np.where(scale > 0, scale, 1.0)
        norm[redo] = scale * _row_pnorm_fast(sub / safe[:, None], p)
    return norm


def _two_class_pnorm(p: float) -> float:
    """``max(c) / ||c||_p`` for a centred two-class row ``c = (d/2, -d/2)``, ``d > 0``."""
    return 1.0 if math.isinf(p) else float(2.0 ** (-1.0 / p))


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
    if z.shape[1] == 2:  # exact: every non-degenerate row is (+-2^(-1/p), -+2^(-1/p))
        return np.sign(c) * _two_class_pnorm(p)
    norm = _row_pnorm(c, p)[:, None]
    return np.where(norm > 0, c / np.where(norm > 0, norm, 1.0), 0.0)


def _maxlogit_pnorm(s: RowStats, params: Params) -> tuple[np.ndarray, np.ndarray]:
    if params.get(MSP_FALLBACK):
        return _msp(s, params)
    # max_j (z_j - mu) / ||z - mu||_p = (z_top - mu) / ||z - mu||_p: one norm per row
    p = params["p"]
    if p == 0:
        return s.top_value, s.top_value
    if s.logr.shape[1] == 2:
        # two classes: the centred row is (d/2, -d/2), so the score is exactly
        # 2^(-1/p) (0 for equal logits); computing it would only rank rounding noise
        v = np.where(s.d2 < 0, _two_class_pnorm(p), 0.0)
        return v, v
    # centre logr = z - z_top instead of z: same differences, and z_top - mean(z) = -mean(logr)
    mu = s.row_sum / s.logr.shape[1]
    norm = _row_pnorm(s.logr - mu[:, None], p)
    v = np.where(norm > 0, -mu / np.where(norm > 0, norm, 1.0), 0.0)
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
    flags : tuple of str
        Optional parameters absent from ``defaults`` that :meth:`resolve` keeps
        when given (e.g. :data:`MSP_FALLBACK`, set only by tuning).
    higher_is_better : bool
        Always True: a confidence, higher is accepted first.
    """

    name: str
    fn: ScoreFn
    needs_logits: bool
    description: str
    defaults: Mapping[str, float] = field(default_factory=dict)
    tuning: str | None = None
    flags: tuple[str, ...] = ()
    higher_is_better: bool = True

    def resolve(self, overrides: Mapping[str, float] | None = None) -> dict[str, float]:
        """Default parameters updated with ``overrides`` that this score takes."""
        params = dict(self.defaults)
        for k, v in (overrides or {}).items():
            if k in params or k in self.flags:
                try:
                    params[k] = float(v)
                except (TypeError, ValueError):
                    raise UsageError(
                        f"{self.name}: parameter {k} must be a number, got {v!r}"
                    ) from None
                if math.isnan(params[k]) or not _PARAM_OK.get(k, _any)(params[k]):
                    raise UsageError(f"{self.name}: parameter {k} = {v!r} is out of range")
        return params

    def __call__(
        self, stats: RowStats, params: Mapping[str, float] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        return self.fn(stats, self.resolve(params))


def _any(value: float) -> bool:
    return math.isfinite(value)


#: Domains of the score parameters: p-norm order p >= 0 (inf: the max-norm),
#: temperature 0 < T < inf.
_PARAM_OK: dict[str, Callable[[float], bool]] = {
    "p": lambda v: v >= 0,
    "T": lambda v: 0 < v < math.inf,
}


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
            flags=(MSP_FALLBACK,),
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


def default_scores(*, has_logits: bool) -> tuple[str, ...]:
    """The default score set for an input: all of :data:`DEFAULT_SCORES` for logits,
    the probability-based ones for probabilities."""
    if has_logits:
        return DEFAULT_SCORES
    return tuple(n for n in DEFAULT_SCORES if not SCORES[n].needs_logits)


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
