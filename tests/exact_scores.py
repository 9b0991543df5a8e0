"""Exact confidence scores of single rows, written straight from SPEC §3.

The slow reference the score keys are checked against (issue 14): every score
of one row of stored values, as an exact rational (:class:`fractions.Fraction`)
where the score is algebraic in the values — maxlogit, logit-margin and the
p-norm ratios — and otherwise in 60-digit :mod:`mpmath` arithmetic over the
row in a canonical (sorted) order, rounded to 50 digits so that equal real
numbers compare equal. Nothing here imports :mod:`sc_eval`.

Each function returns a *rank key*: a number ordered like the score (higher =
more confident) whose equality is the score's equality as a real number.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from fractions import Fraction

import mpmath

DPS = 60
CMP_DPS = 50

Key = Fraction | mpmath.mpf


def _exact_row(row: Sequence[float]) -> list[Fraction]:
    """The stored values as exact rationals, ascending (the canonical order)."""
    return sorted(Fraction(float(v)) for v in row)


def _rounded(x: mpmath.mpf) -> mpmath.mpf:
    with mpmath.workdps(CMP_DPS):
        return +x


def _mp(q: Fraction) -> mpmath.mpf:
    return mpmath.mpf(q.numerator) / q.denominator


def _log_ratios(z: list[Fraction], t: Fraction = Fraction(1)) -> list[mpmath.mpf]:
    """``(z_j - z_top) / T`` of the non-top entries, ascending, in 60 digits."""
    return [_mp((v - z[-1]) / t) for v in z[:-1]]


def _log_s(logr: list[mpmath.mpf]) -> mpmath.mpf:
    """``log sum_{j != top} exp(logr_j)``."""
    return mpmath.log(mpmath.fsum(mpmath.exp(v) for v in logr))


def msp(z: list[Fraction], t: Fraction = Fraction(1)) -> mpmath.mpf:
    """MSP of ``softmax(z / T)``, keyed by ``-log sum_{j != top} exp((z_j - z_top) / T)``."""
    return -_log_s(_log_ratios(z, t))


def margin(z: list[Fraction]) -> mpmath.mpf:
    """``p_1 - p_2``, keyed by ``-log(1 - (p_1 - p_2)) = log(1 + S) - log(S + e^{d2})``."""
    logr = _log_ratios(z)
    s = mpmath.fsum(mpmath.exp(v) for v in logr)
    return mpmath.log(1 + s) - mpmath.log(s + mpmath.exp(logr[-1]))


def gini(z: list[Fraction]) -> mpmath.mpf:
    """``sum_j p_j^2``, keyed by ``-log(1 - sum_j p_j^2)``."""
    e = [mpmath.exp(v) for v in _log_ratios(z)] + [mpmath.mpf(1)]
    total = mpmath.fsum(e)
    return -mpmath.log(1 - mpmath.fsum((v / total) ** 2 for v in e))


def neg_entropy(z: list[Fraction]) -> mpmath.mpf:
    """``-H``, keyed by ``-log H``."""
    logr = [*_log_ratios(z), mpmath.mpf(0)]
    log_total = mpmath.log(mpmath.fsum(mpmath.exp(v) for v in logr))
    h = mpmath.fsum(-mpmath.exp(v - log_total) * (v - log_total) for v in logr)
    return -mpmath.log(h)


def energy(z: list[Fraction], t: Fraction) -> mpmath.mpf:
    """``T log sum_j exp(z_j / T)``."""
    return _mp(t) * mpmath.log(mpmath.fsum(mpmath.exp(_mp(v / t)) for v in z))


def _centred(z: list[Fraction]) -> list[Fraction]:
    mean = sum(z, Fraction(0)) / len(z)
    return [v - mean for v in z]


def pnorm_ratio(z: list[Fraction], p: float) -> Fraction:
    """``(c_top / ||c||_p)^p`` with ``c = z - mean(z)`` (``c_top`` itself for p = 0 and
    ``c_top / max |c|`` for p = inf): ordered like ``maxlogit-pnorm``, and exact."""
    c = _centred(z)
    if p == 0:
        return c[-1]
    if c[-1] == 0:
        return Fraction(0)
    if math.isinf(p):
        return c[-1] / max(abs(v) for v in c)
    k = int(p)
    assert k == p, "exact p-norm ratios need an integer p"
    return c[-1] ** k / sum(abs(v) ** k for v in c)


def msp_pnorm(z: list[Fraction], p: float, t: Fraction) -> mpmath.mpf:
    """MSP of ``c / (T ||c||_p)``: ``c_j - c_top`` normalised through the exact ratio
    ``(c_top - c_j)^p / ||c||_p^p`` (so proportional rows give equal numbers)."""
    c = _centred(z)
    if p == 0:
        return msp(c, t)
    if c[-1] == 0:
        return -mpmath.log(len(z) - 1)
    if math.isinf(p):
        norm = max(abs(v) for v in c)
        gaps = [_mp((c[-1] - v) / norm) for v in c[:-1]]
    else:
        k = int(p)
        assert k == p
        norm_k = sum(abs(v) ** k for v in c)
        gaps = [mpmath.root(_mp((c[-1] - v) ** k / norm_k), k) for v in c[:-1]]
    return -_log_s(sorted(-g / _mp(t) for g in gaps))


def score_key(name: str, row: Sequence[float], params: dict[str, float] | None = None) -> Key:
    """The exact rank key of score ``name`` on one row of logits."""
    params = params or {}
    z = _exact_row(row)
    t = Fraction(params.get("T", 1.0))
    with mpmath.workdps(DPS):
        if name == "maxlogit":
            return z[-1]
        if name == "logit-margin":
            return z[-1] - z[-2]
        if name == "maxlogit-pnorm":
            return pnorm_ratio(z, params.get("p", 2.0))
        if name in ("msp", "msp-ts"):
            value = msp(z, t if name == "msp-ts" else Fraction(1))
        elif name == "margin":
            value = margin(z)
        elif name == "gini":
            value = gini(z)
        elif name == "neg-entropy":
            value = neg_entropy(z)
        elif name == "energy":
            value = energy(z, t)
        elif name == "msp-pnorm":
            value = msp_pnorm(z, params.get("p", 2.0), t)
        else:
            raise ValueError(name)
        return _rounded(value)


def dense_ranks(keys: Sequence[Key]) -> list[float]:
    """Rank of each key among the distinct keys (equal keys, equal ranks)."""
    distinct = sorted(set(keys))
    index = {k: i for i, k in enumerate(distinct)}
    return [float(index[k]) for k in keys]
