"""Confidence-score registry.

Each score maps a chunk of rows (logits or probabilities) to two float64
vectors: a *rank key* used for sorting, and the human-readable *value*. The
two order samples identically, but the key never saturates: float32 softmax
gives an MSP of exactly 1.0 for many confident samples, which would create
false ties; the MSP key is ``-log sum_{j != top} exp(z_j - z_top)`` computed in
float64 (and similar log-space keys for margin, gini and entropy).

Equal confidences are exact ties (docs/metrics.md, "Rank-safe keys"): every key is a
function of the row's multiset of values. :class:`RowStats` sorts each row
before any row reduction, so a row in another class order gets bit-identical
keys; the shift-invariant scores use only ``z_j - z_top`` (exact for fp32 and
smaller logits), so exactly shifted rows tie; and the p-norm scores are the
p-th root of a ratio that is exact for quantised logits (:class:`_Centred`),
which keeps their identities (``p = 1`` with one logit above the mean is ½).

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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from sc_eval.errors import UsageError, unknown_name

__all__ = [
    "DEFAULT_SCORES",
    "MSP_FALLBACK",
    "P_GRID",
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

#: The p-norm orders tuning tries (Cattelan & Silva): ``p = 0`` (centred, not normalised)
#: to 9.
P_GRID: tuple[float, ...] = tuple(float(p) for p in range(10))


class RowStats:
    """Softmax statistics of a chunk of rows, shared by every score (computed lazily).

    Parameters
    ----------
    logits : ndarray, shape (n, C), optional
    probs : ndarray, shape (n, C), optional
        Exactly one of the two.
    ascending : bool
        The rows are already sorted in ascending order (skips the sort).

    Notes
    -----
    Each row is sorted first, so everything below is a function of the row's
    *multiset* of values: a row in another class order gives bit-identical
    statistics (the reductions run over the same sequence). Everything derives
    from ``logr[i, j] = log(p_ij / p_i,top)`` for the ``C - 1`` non-top entries
    in ascending order (``z_j - z_top`` for logits, exact in float64 for
    float32 and smaller inputs; a row shifted by a constant whose differences
    ``z_j - z_top`` are exact gives the same ``logr``). With ``e = p_j / p_top``,
    ``S = sum_j e_j = (1 - p_top) / p_top`` and ``Q = sum_j e_j^2``; MSP, margin,
    gini, entropy, energy (T = 1) and the calibration terms all follow from
    ``S``, ``Q`` and one more row reduction, so the ``[n, C - 1]`` matrix is
    exponentiated once. Rows where ``S`` underflows (a runner-up more than ~575
    nats below the top) are recomputed in log space, so keys never saturate.
    """

    TINY = 1e-250

    def __init__(
        self,
        *,
        logits: np.ndarray | None = None,
        probs: np.ndarray | None = None,
        ascending: bool = False,
    ):
        if (logits is None) == (probs is None):
            raise ValueError("RowStats needs exactly one of logits or probs")
        self.is_logits = logits is not None
        raw = np.asarray(logits if logits is not None else probs)
        if raw.dtype not in (np.float16, np.float32, np.float64):
            raw = raw.astype(np.float64)
        self._raw = raw
        self._rows = np.arange(raw.shape[0])
        self.num_classes = raw.shape[1]
        #: The predicted class: the first largest entry.
        self.top = np.argmax(raw, axis=1)
        if ascending:  # the caller built the rows in ascending order
            srt = raw
        else:  # float16 has no fast sort; float32 holds it exactly
            srt = np.sort(raw.astype(np.float32) if raw.dtype == np.float16 else raw, axis=1)
        #: The row in ascending order (the canonical order of its multiset).
        self.ascending = srt
        if logits is not None:
            self.top_value = srt[:, -1].astype(np.float64)
            # float32 - float64 is computed in float64: exact differences of the stored logits
            self.logr = np.subtract(srt[:, :-1], self.top_value[:, None], dtype=np.float64)
        else:
            with np.errstate(divide="ignore"):
                logp = np.log(srt.astype(np.float64))
            self.top_value = logp[:, -1].copy()
            self.logr = logp[:, :-1] - self.top_value[:, None]
        #: ``log(p_2 / p_1)``: the runner-up's log-ratio, exact for logits.
        self.d2 = self.logr[:, -1] if self.num_classes > 1 else np.full(raw.shape[0], -np.inf)

    @cached_property
    def row_sum(self) -> np.ndarray:
        """``sum_j logr_ij`` (``sum_j (z_j - z_top)`` for logits); non-finite iff the row is."""
        return self.logr.sum(axis=1)

    @cached_property
    def e(self) -> np.ndarray:
        """``p_j / p_top`` for the non-top classes, ascending (``exp(logr)``; for
        probabilities the stored ratio itself, so equal ratios stay equal)."""
        if self.is_logits:
            return np.exp(self.logr)
        p = self.ascending
        return np.divide(p[:, :-1], p[:, -1:], dtype=np.float64)

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
            with np.errstate(invalid="ignore"):
                scaled = np.exp(self.logr[t] - np.where(finite, d2, 0.0)[:, None]).sum(axis=1)
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
        v = self._raw[self._rows, cls].astype(np.float64)
        if not self.is_logits:
            with np.errstate(divide="ignore"):
                v = np.log(v)
        return (v - self.top_value) - self.log1p_s

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
    # p1 - p2 = (1 - e^{d2}) / (1 + S); key = -log(1 - (p1 - p2)), from the margin itself
    # while it is at most 1/2 (exactly 0 for a tied top-2, positive otherwise), else in
    # log space: log(1+S) - log(S + e^{d2}), which never saturates
    value = -np.expm1(s.d2) * s.p_top
    with np.errstate(divide="ignore"):
        key = np.where(
            value <= 0.5,
            -np.log1p(-np.minimum(value, 0.5)),
            s.log1p_s - np.logaddexp(s.log_s, s.d2),
        )
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
    # T logsumexp(z / T) = z_top + T log(1 + sum_{j != top} exp((z_j - z_top) / T));
    # at T = 1 the sum is S, already known
    if t == 1.0:
        v = s.top_value + s.log1p_s
    else:
        v = s.top_value + t * np.log1p(np.exp(s.logr / t).sum(axis=1))
    return v, v


def _with_top(rest: np.ndarray, top: np.ndarray | float) -> np.ndarray:
    """Rows ``[rest..., top]``: an ascending row rebuilt from its non-top entries."""
    out = np.empty((rest.shape[0], rest.shape[1] + 1))
    out[:, :-1] = rest
    out[:, -1] = top
    return out


def _pow_abs(a: np.ndarray, p: float) -> np.ndarray:
    """``|a|^p`` elementwise; integer ``p`` by repeated multiplication, so powers of
    exactly representable small values stay exact and scale exactly by powers of two."""
    a = np.abs(a)
    if p == 1 or math.isinf(p):  # p = inf: the norm is a max, the ratio linear
        return a
    if float(p).is_integer() and 2 <= p <= 16:
        acc = a * a
        for _ in range(int(p) - 2):
            acc *= a
        return acc
    return a**p


def _root(r: np.ndarray, p: float) -> np.ndarray:
    """``r^(1/p)`` (square roots for ``p`` = 2 and 4, correctly rounded)."""
    if p == 1 or math.isinf(p):
        return r
    if p == 2:
        return np.sqrt(r)
    if p == 4:
        return np.sqrt(np.sqrt(r))
    return r ** (1.0 / p)


@dataclass(frozen=True)
class _Centred:
    """A row centred on its mean, in the form the p-norm scores need exactly.

    ``d = C (z - mu) / 2^E = (C (z - z_top) - t) / 2^E`` with ``t = sum_j (z_j - z_top)``
    and ``2^E`` a power of two above ``max |d|``: ``top = d_top = -t / 2^E`` and
    ``rest`` the non-top entries, ascending. ``C`` and ``2^E`` cancel in every
    p-norm ratio and both scalings are exact, so a tie in exact arithmetic (a
    shift, a power-of-two scale, an equal rational ratio) stays a tie whenever
    ``t`` and the powers are exact (quantised or low-precision logits).
    """

    top: np.ndarray
    rest: np.ndarray
    #: ``C / 2^E``: ``d_top - d_j = -factor * (z_j - z_top)``
    factor: np.ndarray

    @classmethod
    def of(cls, s: RowStats, index: np.ndarray | None = None) -> _Centred:
        """The centred rows of ``s`` (rows ``index`` only when given)."""
        c, t, logr = s.num_classes, s.row_sum, s.logr
        if index is not None:
            t, logr = t[index], logr[index]
        span = np.maximum(-t, t - c * logr[:, 0])  # >= max_j |C logr_j - t|
        scale = np.ldexp(1.0, -np.frexp(span)[1])
        factor = c * scale
        rest = np.multiply(logr, factor[:, None])
        np.subtract(rest, (t * scale)[:, None], out=rest)
        return cls(top=-t * scale, rest=rest, factor=factor)

    def norm_p(self, p: float) -> np.ndarray:
        """``||d||_p^p`` (``||d||_1 = 2 sum d^+`` since ``sum d = 0``; max for p = inf)."""
        if math.isinf(p):
            return np.maximum(self.top, -self.rest[:, 0])
        if p == 1:
            return 2 * (self.top + np.maximum(self.rest, 0.0).sum(axis=1))
        if p == 2:
            return self.top * self.top + np.einsum("ij,ij->i", self.rest, self.rest)
        return _pow_abs(self.top, p) + _pow_abs(self.rest, p).sum(axis=1)


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """``num / den`` with 0 where ``den`` is 0 (constant rows)."""
    return np.where(den > 0, num / np.where(den > 0, den, 1.0), 0.0)


def _two_class_pnorm(p: float) -> float:
    """``max(c) / ||c||_p`` for a centred two-class row ``c = (d/2, -d/2)``, ``d > 0``."""
    return 1.0 if math.isinf(p) else float(2.0 ** (-1.0 / p))


def _row_pnorm(c: np.ndarray, p: float) -> np.ndarray:
    """``||c_i||_p`` of each row, rescaled by a power of two against over- and underflow."""
    a = np.abs(c)
    top = a.max(axis=1)
    if math.isinf(p):
        return top
    scale = np.ldexp(1.0, -np.frexp(top)[1])
    return _root(_pow_abs(a * scale[:, None], p).sum(axis=1), p) / scale


def pnorm_normalise(z: np.ndarray, p: float) -> np.ndarray:
    """Centre each row and divide it by its p-norm: ``(z - mean(z)) / ||z - mean(z)||_p``.

    ``p = 0`` means centred but not normalised: ``z - mean(z)`` (Cattelan & Silva).
    Rows whose centred norm is 0 (all logits equal) map to zeros.

    Examples
    --------
    >>> pnorm_normalise(np.array([[1.0, 3.0]]), 2).round(4).tolist()
    [[-0.7071, 0.7071]]
    >>> pnorm_normalise(np.array([[1.0, 3.0]]), 0).tolist()
    [[-1.0, 1.0]]
    """
    c = z - z.mean(axis=1, keepdims=True)
    if p == 0:
        return c
    if z.shape[1] == 2:  # exact: every non-degenerate row is (+-2^(-1/p), -+2^(-1/p))
        return np.sign(c) * _two_class_pnorm(p)
    norm = _row_pnorm(c, p)[:, None]
    return np.where(norm > 0, c / np.where(norm > 0, norm, 1.0), 0.0)


def _maxlogit_pnorm(s: RowStats, params: Params) -> tuple[np.ndarray, np.ndarray]:
    if params.get(MSP_FALLBACK):
        return _msp(s, params)
    # max_j (z_j - mu) / ||z - mu||_p = (z_top - mu) / ||z - mu||_p: one norm per row,
    # computed as the p-th root of the ratio d_top^p / ||d||_p^p (see _Centred)
    p = params["p"]
    if p == 0:  # centred, not normalised: z_top - mu = -t / C
        v = -s.row_sum / s.num_classes
        return v, v
    if s.num_classes == 2:
        # two classes: the centred row is (d/2, -d/2), so the score is exactly
        # 2^(-1/p) (0 for equal logits); computing it would only rank rounding noise
        v = np.where(s.d2 < 0, _two_class_pnorm(p), 0.0)
        return v, v
    if p == 2:
        v = _maxlogit_2norm(s)
    else:
        d = _Centred.of(s)
        v = _root(_ratio(_pow_abs(d.top, p), d.norm_p(p)), p)
    return v, v


def _maxlogit_2norm(s: RowStats) -> np.ndarray:
    """The p = 2 score without a centred copy of the rows.

    With ``t = sum_j logr_j``, ``||C logr - t||_2^2 = C (C sum_j logr_j^2 - t^2)``, so the
    score is ``sqrt(t^2 / (C (C sum logr^2 - t^2)))``: exact whenever the sums are
    (quantised logits), as in :class:`_Centred`. The subtraction cancels
    ``log2(1 + C mu^2 / ||z - mu||^2)`` bits (``mu`` relative to the top logit); rows
    losing more than 6 (relative error above ~2^-46), or overflowing, take the
    centred path instead.
    """
    c = s.num_classes
    t = s.row_sum
    sq = c * np.einsum("ij,ij->i", s.logr, s.logr)
    t2 = t * t
    with np.errstate(over="ignore", invalid="ignore"):
        den = c * (sq - t2)
        v = np.sqrt(_ratio(t2, den))
        redo = np.flatnonzero(~(64 * den >= c * sq) | ~np.isfinite(den) | (den <= 0))
    if redo.size:
        d = _Centred.of(s, redo)
        v[redo] = np.sqrt(_ratio(d.top * d.top, d.norm_p(2)))
    return v


def _msp_of_ascending(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """MSP of rows already in ascending order."""
    return _msp(RowStats(logits=z, ascending=True), {})


def _msp_pnorm(s: RowStats, params: Params) -> tuple[np.ndarray, np.ndarray]:
    p, t = params["p"], float(params["T"])
    if p == 0:  # MSP of (z - mu) / T is MSP of (z - z_top) / T: shift-invariant
        return _msp_of_ascending(_with_top(s.logr / t, 0.0))
    if s.num_classes == 2:
        half = np.where(s.d2 < 0, _two_class_pnorm(p) / t, 0.0)
        return _msp_of_ascending(np.stack([-half, half], axis=1))
    # z_hat_j - z_hat_top = -((d_top - d_j)^p / ||d||_p^p)^(1/p) / T
    d = _Centred.of(s)
    gap = s.logr * -d.factor[:, None]
    gaps = _root(_ratio(_pow_abs(gap, p), d.norm_p(p)[:, None]), p)
    return _msp_of_ascending(_with_top(-gaps / t, 0.0))


def _msp_ts(s: RowStats, params: Params) -> tuple[np.ndarray, np.ndarray]:
    # MSP of z / T computed from (z - z_top) / T: the same softmax, shift-exact
    return _msp_of_ascending(_with_top(s.logr / float(params["T"]), 0.0))


# --------------------------------------------------------------------------- registry
@dataclass(frozen=True)
class Score:
    """A named confidence score: higher is accepted first, for every score (so, unlike a
    metric, a score declares no direction).

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
    grid : mapping
        For ``"aurc"`` tuning: the candidate values of each parameter (every
        combination is tried). A temperature ``T`` needs none: it is searched
        on a scale of the data (:data:`sc_eval.tuning.TEMPERATURE_STEPS`).
    flags : tuple of str
        Optional parameters absent from ``defaults`` that :meth:`resolve` keeps
        when given (e.g. :data:`MSP_FALLBACK`, set only by tuning).
    """

    name: str
    fn: ScoreFn
    needs_logits: bool
    description: str
    defaults: Mapping[str, float] = field(default_factory=dict)
    tuning: str | None = None
    grid: Mapping[str, tuple[float, ...]] = field(default_factory=dict)
    flags: tuple[str, ...] = ()

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
            "max_j (z_j - mean z) / ||z - mean z||_p (p = 0: z_top - mean z)",
            {"p": 2.0},
            tuning="aurc",
            grid={"p": P_GRID},
            flags=(MSP_FALLBACK,),
        ),
        Score(
            "msp-pnorm",
            _msp_pnorm,
            True,
            "MSP of (z - mean z) / (T ||z - mean z||_p)",
            {"p": 2.0, "T": 1.0},
            tuning="aurc",
            grid={"p": P_GRID},
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


def check_scores_for_input(
    names: Sequence[str], *, has_logits: bool, source: str | None = None
) -> None:
    """Refuse logit-only scores on a probabilities input (the message names ``source``)."""
    if has_logits:
        return
    bad = [n for n in names if get_score(n).needs_logits]
    if bad:
        ok = [s.name for s in SCORES.values() if not s.needs_logits]
        where = f"{source}: " if source is not None else ""
        raise UsageError(
            f"{where}score(s) {', '.join(bad)} need logits but the input holds probabilities; "
            f"on probabilities use: {', '.join(ok)}"
        )
