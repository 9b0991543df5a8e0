"""Suppression by confidence (Xia et al. 2024), measured between two aligned models.

Xia et al. explain label smoothing's damage to selective classification by
the max logit being *suppressed more when a prediction is likely correct*.
:func:`suppression` gives that claim a measurable form: for every sample the
centred max-logit ``c = max_j z_j − mean_j z_j`` of a first (e.g. CE) and a
second (e.g. LS) model; samples in equal-count bins of the first model's MSP
and split by which model is right; in each cell the ratio ``Σ c₂ / Σ c₁``
with percentile bootstrap intervals (the same resamples for every cell), and
two contrasts — *trend* (most − least confident bin) and *contrast* (both
right − both wrong) — whose intervals decide the verdict. Used by
:func:`sc_eval.diagnosis.diagnose`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from sc_eval.stats import (
    Difference,
    Interval,
    bootstrap_counts,
    paired_difference,
    percentile_interval,
)

__all__ = ["GROUPS", "SUPPRESSION_BINS", "Suppression", "SuppressionCell", "suppression"]

SUPPRESSION_BINS = 10
GROUPS: tuple[str, ...] = ("all", "both right", "first right", "second right", "both wrong")
"""Suppression groups: every sample, then by which of the two models is right."""
ZERO = 1e-9
"""Ratio differences within this of 0 count as 0 (rounding of identical ratios)."""


@dataclass(frozen=True)
class SuppressionCell:
    """Ratio ``Σ c_second / Σ c_first`` of centred max-logits over one (bin, group)."""

    bin: int
    group: str
    n: int
    ratio: Interval


@dataclass(frozen=True)
class Suppression:
    """Xia et al.'s suppression pattern for one pair of aligned models.

    Attributes
    ----------
    first, second : str
        Model names; bins are of the first model's MSP.
    edges : tuple of (float, float)
        MSP range ``(min, max)`` of the first model in each bin.
    cells : tuple of SuppressionCell
        Every (bin, group), bin-major, groups as in :data:`GROUPS`.
    overall : dict
        Group → ratio over all bins.
    trend : Difference
        Ratio in the most confident bin − ratio in the least confident bin (all
        samples). Negative: the second model's max logit is suppressed more
        where the first model is confident.
    contrast : Difference
        Ratio on samples both models get right − on samples both get wrong.
    verdict : {"detected", "partly", "absent", "reversed"}
    """

    first: str
    second: str
    edges: tuple[tuple[float, float], ...]
    cells: tuple[SuppressionCell, ...]
    overall: dict[str, Interval]
    trend: Difference
    contrast: Difference
    verdict: str

    def cell(self, b: int, group: str) -> SuppressionCell:
        return self.cells[b * len(GROUPS) + GROUPS.index(group)]


def _bins_by_rank(key: np.ndarray, bins: int) -> np.ndarray:
    """Equal-count bins of ``key`` (0 = least confident)."""
    n = key.shape[0]
    order = np.argsort(key, kind="stable")
    out = np.empty(n, dtype=np.int64)
    out[order] = (np.arange(n) * bins) // max(n, 1)
    return out


def _suppression_sums(
    cells: np.ndarray, n_cells: int, c_first: np.ndarray, c_second: np.ndarray, w: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    wa = c_first if w is None else c_first * w
    wb = c_second if w is None else c_second * w
    count = np.bincount(cells, weights=w, minlength=n_cells)
    return (
        count,
        np.bincount(cells, weights=wa, minlength=n_cells),
        np.bincount(cells, weights=wb, minlength=n_cells),
    )


def _ratios(count: np.ndarray, sa: np.ndarray, sb: np.ndarray, bins: int) -> np.ndarray:
    """Ratios for [bins + 1, groups]: per bin and (last row) over all bins; NaN where empty."""
    g = len(GROUPS) - 1
    shape = (bins, g)
    cnt, a, b = count.reshape(shape), sa.reshape(shape), sb.reshape(shape)
    cnt = np.concatenate([cnt, cnt.sum(0, keepdims=True)])
    a = np.concatenate([a, a.sum(0, keepdims=True)])
    b = np.concatenate([b, b.sum(0, keepdims=True)])
    cnt = np.concatenate([cnt.sum(1, keepdims=True), cnt], axis=1)
    a = np.concatenate([a.sum(1, keepdims=True), a], axis=1)
    b = np.concatenate([b.sum(1, keepdims=True), b], axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = b / a
    r[(cnt == 0) | (a == 0)] = np.nan
    return r


def suppression(
    first: tuple[str, np.ndarray, np.ndarray, np.ndarray],
    second: tuple[str, np.ndarray, np.ndarray],
    *,
    bins: int = SUPPRESSION_BINS,
    n_boot: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
) -> Suppression:
    """Ratio of the second model's centred max-logit to the first's, by the first's confidence.

    Parameters
    ----------
    first : (name, msp_key, centred_maxlogit, errors)
        The reference model: its MSP rank key sets the bins (equal counts,
        least confident first).
    second : (name, centred_maxlogit, errors)
        The other model on the same samples, in the same order.
    bins : int
    n_boot, seed, confidence
        Percentile bootstrap over samples (the same resamples for every cell).

    Returns
    -------
    Suppression

    Notes
    -----
    In each (bin, group) the ratio is ``Σ_i c₂(i) / Σ_i c₁(i)`` with
    ``c(i) = max_j z_ij − mean_j z_ij`` (≥ 0), a ratio of means that stays
    stable where single ratios blow up. Xia et al. (2024) predict that LS
    suppresses the max logit *more when a prediction is likely correct*: for
    a CE first model and an LS second one the ratio should fall with the
    first model's confidence (``trend < 0``) and be lower on samples both get
    right than on samples both get wrong (``contrast < 0``). ``detected``
    needs both intervals below 0; ``partly`` one; ``reversed`` an interval
    above 0 and none below; otherwise ``absent``. Binning on the first
    model's confidence selects samples where its logit happens to be high,
    so two equally trained models already show a mild downward trend
    (regression to the mean); read the size of the trend, not only its sign.
    """
    name1, key1, c1, err1 = first
    name2, c2, err2 = second
    n = c1.shape[0]
    b_of = _bins_by_rank(key1, bins)
    # group codes: 0 both right, 1 first right only, 2 second right only, 3 both wrong
    code = 2 * err1.astype(np.int64) + err2.astype(np.int64)
    cells = b_of * 4 + code
    n_cells = bins * 4
    point = _ratios(*_suppression_sums(cells, n_cells, c1, c2, None), bins)
    counts = np.bincount(cells, minlength=n_cells).reshape(bins, 4)
    reps = np.empty((n_boot, *point.shape))
    for k, w in enumerate(bootstrap_counts(n, n_boot, seed=seed)):
        reps[k] = _ratios(*_suppression_sums(cells, n_cells, c1, c2, w.astype(np.float64)), bins)
    j_of = {grp: j for j, grp in enumerate(GROUPS)}  # _ratios columns: all, then codes 0..3

    def iv(i: int, j: int) -> Interval:
        if n_boot == 0:
            return Interval(float(point[i, j]), math.nan, math.nan, confidence)
        return percentile_interval(reps[:, i, j], estimate=float(point[i, j]),
                                   confidence=confidence)  # fmt: skip

    def diff(i1: int, j1: int, i2: int, j2: int) -> Difference:
        est = float(point[i1, j1] - point[i2, j2])
        if n_boot == 0:
            return Difference(est, math.nan, math.nan, confidence, math.nan)
        return paired_difference(reps[:, i1, j1] - reps[:, i2, j2], estimate=est,
                                 confidence=confidence)  # fmt: skip

    cell_list = []
    for b in range(bins):
        for grp in GROUPS:
            j = j_of[grp]
            count = int(counts[b].sum()) if j == 0 else int(counts[b, j - 1])
            cell_list.append(SuppressionCell(b, grp, count, iv(b, j)))
    edges = []
    for b in range(bins):
        sel = b_of == b
        msp = np.exp(key1[sel]) if sel.any() else np.array([math.nan])  # key = log MSP
        edges.append((float(msp.min()), float(msp.max())))
    overall = {grp: iv(bins, j_of[grp]) for grp in GROUPS}
    trend = diff(bins - 1, 0, 0, 0)
    contrast = diff(bins, j_of["both right"], bins, j_of["both wrong"])
    below = [d.high < -ZERO for d in (trend, contrast)]
    above = [d.low > ZERO for d in (trend, contrast)]
    if all(below):
        verdict = "detected"
    elif any(below):
        verdict = "partly"
    elif any(above):
        verdict = "reversed"
    else:
        verdict = "absent"
    return Suppression(name1, name2, tuple(edges), tuple(cell_list), overall, trend, contrast,
                       verdict)  # fmt: skip
