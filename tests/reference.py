"""Slow, obviously-correct reference implementations written straight from SPEC.md.

Nothing here imports :mod:`sc_eval`: the fast code is checked against these
functions, so they must not share its logic. They favour clarity over speed:
per-position Python loops, exact rational arithmetic for expected error
counts (:class:`fractions.Fraction`), ``math.fsum`` for sums, explicit
trapezoids, pairwise AUROC and brute force over every order of tied samples.

Notation (SPEC §2): ``n`` samples, confidence ``s_i`` (higher = accepted first),
error ``e_i``; ``E_k`` errors among the first ``k`` accepted; selective risk
``r_k = E_k / k``; tie blocks are averaged over uniformly random orders.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from fractions import Fraction

import numpy as np

# --------------------------------------------------------------------------- ordering


def tie_blocks(conf: Sequence[float], err: Sequence[bool]) -> list[list[int]]:
    """Groups of sample indices with equal confidence, most confident group first."""
    groups: dict[float, list[int]] = {}
    for i, s in enumerate(conf):
        groups.setdefault(float(s), []).append(i)
    return [groups[s] for s in sorted(groups, reverse=True)]


def sequential_order(conf: Sequence[float]) -> list[int]:
    """Descending confidence, input order among equal confidences (no tie handling)."""
    return sorted(range(len(conf)), key=lambda i: (-float(conf[i]), i))


# --------------------------------------------------------------------------- expected errors


def expected_cum_errors(conf: Sequence[float], err: Sequence[bool]) -> list[Fraction]:
    """``E[E_k]`` for ``k = 1..n``, exactly: ``E_a + j t / m`` inside each tie block."""
    out: list[Fraction] = []
    errors_before = 0
    for block in tie_blocks(conf, err):
        m = len(block)
        t = sum(1 for i in block if err[i])
        for j in range(1, m + 1):
            out.append(errors_before + Fraction(j * t, m))
        errors_before += t
    return out


def sequential_cum_errors(conf: Sequence[float], err: Sequence[bool]) -> list[Fraction]:
    """``E_k`` for the stable descending order (ties broken by input order)."""
    out: list[Fraction] = []
    e = 0
    for i in sequential_order(conf):
        e += 1 if err[i] else 0
        out.append(Fraction(e))
    return out


def tie_orders(conf: Sequence[float], err: Sequence[bool]) -> list[list[int]]:
    """Every acceptance order consistent with the confidences (all permutations
    inside each tie block). Only for tiny inputs."""
    blocks = tie_blocks(conf, err)
    orders = []
    for combo in itertools.product(*(itertools.permutations(b) for b in blocks)):
        orders.append([i for block in combo for i in block])
    return orders


def brute_force_average(conf: Sequence[float], err: Sequence[bool], fn) -> float:
    """Average of ``fn(errors in acceptance order)`` over every tie order."""
    values = [fn([bool(err[i]) for i in order]) for order in tie_orders(conf, err)]
    return math.fsum(values) / len(values)


def strict_order_cum_errors(errs_in_order: Sequence[bool]) -> list[int]:
    out, e = [], 0
    for x in errs_in_order:
        e += int(x)
        out.append(e)
    return out


# --------------------------------------------------------------------------- curves


def selective_risks(conf, err) -> list[float]:
    """Tie-aware ``E[r_k] = E[E_k] / k``."""
    return [float(e / k) for k, e in enumerate(expected_cum_errors(conf, err), start=1)]


def trapezoid(xs: Sequence[float], ys: Sequence[float]) -> float:
    """Area under a piecewise-linear curve through the points ``(xs[i], ys[i])``."""
    return math.fsum((xs[i + 1] - xs[i]) * (ys[i] + ys[i + 1]) / 2 for i in range(len(xs) - 1))


def aurc(conf, err, convention: str = "mean") -> float:
    """AURC in one of the named conventions (SPEC §2)."""
    n = len(conf)
    if convention == "mean":
        return math.fsum(selective_risks(conf, err)) / n
    if convention == "trapezoid":
        xs = [0.0] + [k / n for k in range(1, n + 1)]
        ys = [0.0, *selective_risks(conf, err)]
        return trapezoid(xs, ys)
    if convention == "torch-uncertainty":
        if n < 2:
            return math.nan
        risks = [float(e / k) for k, e in enumerate(sequential_cum_errors(conf, err), start=1)]
        xs = [k / n for k in range(1, n + 1)]
        return trapezoid(xs, risks) / (1 - 1 / n)
    raise ValueError(convention)


def augrc(conf, err, convention: str = "mean") -> float:
    """AUGRC; ``torch-uncertainty`` keeps the trapezoid AUGRC (SPEC §2)."""
    n = len(conf)
    gen = [float(e / n) for e in expected_cum_errors(conf, err)]
    if convention == "mean":
        return math.fsum(gen) / n
    xs = [0.0] + [k / n for k in range(1, n + 1)]
    return trapezoid(xs, [0.0, *gen])


def oracle_confidence(err) -> list[float]:
    """A confidence that accepts every correct sample before any error."""
    return [0.0 if e else 1.0 for e in err]


def aurc_star(error_rate: float) -> float:
    if error_rate >= 1:
        return 1.0
    if error_rate <= 0:
        return 0.0
    return error_rate + (1 - error_rate) * math.log(1 - error_rate)


def e_aurc(conf, err, convention: str = "mean") -> float:
    return aurc(conf, err, convention) - aurc_star(sum(map(bool, err)) / len(err))


def naurc(conf, err, convention: str = "mean") -> float:
    n = len(err)
    e = sum(map(bool, err)) / n
    if e in (0.0, 1.0):
        return math.nan
    opt = aurc(oracle_confidence(err), err, convention)
    return (aurc(conf, err, convention) - opt) / (e - opt)


def auroc(conf, err) -> float:
    """Probability that a correct sample outranks a wrong one; ties count 1/2."""
    pos = [float(s) for s, e in zip(conf, err, strict=True) if not e]
    neg = [float(s) for s, e in zip(conf, err, strict=True) if e]
    if not pos or not neg:
        return math.nan
    total = Fraction(0)
    for p in pos:
        for q in neg:
            total += 1 if p > q else (Fraction(1, 2) if p == q else 0)
    return float(total / (len(pos) * len(neg)))


def fpr_at_tpr(conf, err, tpr_min: Fraction = Fraction(95, 100)) -> float:
    """Smallest FPR among thresholds ``accept s >= t`` whose TPR >= tpr_min (exact)."""
    n_pos = sum(1 for e in err if not e)
    n_neg = len(err) - n_pos
    if n_pos == 0 or n_neg == 0:
        return math.nan
    best = math.inf
    for t in sorted(set(map(float, conf))):
        tp = sum(1 for s, e in zip(conf, err, strict=True) if not e and s >= t)
        fp = sum(1 for s, e in zip(conf, err, strict=True) if e and s >= t)
        if Fraction(tp, n_pos) >= tpr_min:
            best = min(best, fp / n_neg)
    return best


def risk_at_coverage(conf, err, coverage: float) -> float:
    """Selective risk at ``coverage``, linear in ``k`` between integers (k >= 1)."""
    n = len(conf)
    risks = selective_risks(conf, err)
    k = max(coverage * n, 1.0)
    lo = math.floor(k)
    if lo >= n:
        return risks[n - 1]
    w = k - lo
    return (1 - w) * risks[lo - 1] + w * risks[lo]


def coverage_at_risk(conf, err, risk: float, *, tol: float = 1e-12) -> float:
    """Largest ``k / n`` whose selective risk is at most ``risk`` (0 if none)."""
    n = len(conf)
    best = 0.0
    for k, r in enumerate(selective_risks(conf, err), start=1):
        if r <= risk + tol:
            best = k / n
    return best


# --------------------------------------------------------------------------- softmax & calibration


def softmax_row(z: Sequence[float]) -> list[float]:
    m = max(float(v) for v in z)
    ex = [math.exp(float(v) - m) for v in z]
    total = math.fsum(ex)
    return [v / total for v in ex]


def log_softmax_row(z: Sequence[float]) -> list[float]:
    m = max(float(v) for v in z)
    lse = m + math.log(math.fsum(math.exp(float(v) - m) for v in z))
    return [float(v) - lse for v in z]


def ece(confidence: Sequence[float], correct: Sequence[bool], bins: int = 15) -> float:
    """Top-label ECE, equal-width bins ``(i/B, (i+1)/B]`` (Guo et al. 2017)."""
    n = len(confidence)
    total = 0.0
    for b in range(bins):
        lo, hi = b / bins, (b + 1) / bins
        idx = [i for i, c in enumerate(confidence) if (lo < c <= hi) or (b == 0 and c <= lo)]
        if not idx:
            continue
        acc = math.fsum(1.0 for i in idx if correct[i]) / len(idx)
        conf = math.fsum(confidence[i] for i in idx) / len(idx)
        total += len(idx) / n * abs(acc - conf)
    return total


def nll(logits, labels) -> float:
    return math.fsum(-log_softmax_row(z)[y] for z, y in zip(logits, labels, strict=True)) / len(
        labels
    )


def brier(logits, labels) -> float:
    terms = []
    for z, y in zip(logits, labels, strict=True):
        p = softmax_row(z)
        terms.append(math.fsum((pj - (1.0 if j == y else 0.0)) ** 2 for j, pj in enumerate(p)))
    return math.fsum(terms) / len(labels)


def model_metrics(logits, labels) -> dict[str, float]:
    """acc, ece, nll, brier of logits (rows) and integer labels, from their definitions."""
    probs = [softmax_row(z) for z in logits]
    # the prediction is the first largest logit
    pred = [max(range(len(z)), key=lambda j, z=z: (float(z[j]), -j)) for z in logits]
    correct = [int(a) == int(y) for a, y in zip(pred, labels, strict=True)]
    return {
        "acc": sum(correct) / len(correct),
        "ece": ece([max(p) for p in probs], correct),
        "nll": nll(logits, labels),
        "brier": brier(logits, labels),
    }


def as_lists(conf, err) -> tuple[list[float], list[bool]]:
    return [float(x) for x in np.asarray(conf)], [bool(x) for x in np.asarray(err)]


# --------------------------------------------------------------------------- binomial tail


def binomial_cdf_exact(k: int, n: int, p: Fraction) -> Fraction:
    """``P(Bin(n, p) <= k) = Σ_{j<=k} C(n, j) p^j (1-p)^(n-j)``, exactly."""
    return sum(
        (math.comb(n, j) * p**j * (1 - p) ** (n - j) for j in range(k + 1)), start=Fraction(0)
    )


def binomial_upper_bound_exact(k: int, n: int, delta: float) -> float:
    """The smallest double ``b`` in ``(0, 1]`` with ``P(Bin(n, b) <= k) < δ`` (exact tails).

    That is ``B* = sup{b : P(Bin(n, b) <= k) >= δ}`` rounded up to a double:
    bisection over the bit patterns of the doubles in ``[0, 1]`` (ordered like
    the numbers they hold), every comparison made in exact rational arithmetic.
    Slow; for small ``n``.
    """
    d = Fraction(delta)
    if k >= n:
        return 1.0

    def bits(x: float) -> int:
        return int(np.float64(x).view(np.int64))

    def value(b: int) -> float:
        return float(np.int64(b).view(np.float64))

    lo, hi = bits(0.0), bits(1.0)  # tail(lo) = 1 >= δ > 0 = tail(hi)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if binomial_cdf_exact(k, n, Fraction(value(mid))) >= d:
            lo = mid
        else:
            hi = mid
    return value(hi)
