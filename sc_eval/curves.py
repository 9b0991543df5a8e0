"""The one sort: tie-aware risk–coverage curves.

Every curve-based metric in sc-eval is computed from a :class:`RiskCoverage`
built here. Samples are sorted once by descending confidence; samples with the
same confidence form a *tie block* that is accepted or rejected as a whole, and
every quantity is the expectation over a uniformly random order inside each
block: for a block at positions ``a+1 .. a+m`` holding ``t`` errors,
``E[E_{a+j}] = E_a + j t / m``.

The sort is kept in a :class:`SortedScores` so that the bootstrap can re-weight
samples (multinomial counts) and rebuild a curve in O(n) without sorting again;
:class:`ResampledBlocks` does so for a whole batch of count vectors at once.

Resampled tie blocks
--------------------
A resample (integer weights ``w``, total ``N``) keeps the order of the sort:
a drawn sample keeps its confidence and its duplicates tie with it. Only the
tie blocks that hold an error matter; for each of them :class:`ResampledBlocks`
keeps its start ``a`` (weight ranked above it), weight ``m``, weighted errors
``t`` and the weighted errors ``e0`` ranked above it, for every resample of a
batch (arrays of shape ``(B, blocks)``), from one gather of the weights into
sorted order and one cumulative sum (correct and wrong samples apart). With
``H_x = sum_{i<=x} 1/i`` and ``G_x = sum_{i<x} H_i = x (H_x - 1)``:

* ``sum_k E[E_k] / k = sum_b t_b (H_N - (G_{a+m} - G_a) / m)`` (an error at
  position ``p`` counts in ``r_k`` for every ``k >= p``; inside a block the
  position is uniform);
* ``sum_k E[E_k] = sum_b t_b (N - a_b - (m_b - 1) / 2)``;
* correct samples ranked above the errors (ties counting one half):
  ``sum_b t_b (a_b - e0_b + (m_b - t_b) / 2)``;
* ``E[E_k]`` at any ``k`` by one binary search per resample; the largest ``k``
  with ``E[E_k] / k <= r`` at the start of the last error block whose start
  satisfies it, or inside that block (the risk is monotone along a block and
  falls between blocks).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any, Generic, TypeVar, overload

import numpy as np

__all__ = ["ResampledBlocks", "RiskCoverage", "SortedScores", "TieBlocks", "lazy", "sort_scores"]

T = TypeVar("T")


class lazy(Generic[T]):
    """``functools.cached_property`` without its lock (Python < 3.12 holds one lock per
    property for the whole class while any instance computes it). The bootstrap forks
    worker processes: a lock another thread held at the fork would stay held in the
    worker for good. Computing a value twice in a race is harmless here."""

    def __init__(self, func: Callable[[Any], T]):
        self.func = func
        self.name = func.__name__
        self.__doc__ = func.__doc__

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, obj: None, owner: type | None = None) -> lazy[T]: ...
    @overload
    def __get__(self, obj: object, owner: type | None = None) -> T: ...
    def __get__(self, obj: object | None, owner: type | None = None) -> T | lazy[T]:
        if obj is None:
            return self
        value = obj.__dict__[self.name] = self.func(obj)
        return value


@dataclass(frozen=True)
class TieBlocks:
    """Samples grouped by equal confidence, most confident block first.

    Attributes
    ----------
    sizes : ndarray of int64
        Number of samples (or total bootstrap weight) in each block; may be 0.
    errors : ndarray of float64
        Number (or total weight) of misclassified samples in each block.
    """

    sizes: np.ndarray
    errors: np.ndarray

    @property
    def n(self) -> int:
        return int(self.sizes.sum())

    @property
    def n_errors(self) -> float:
        return float(self.errors.sum())


@dataclass(frozen=True)
class SortedScores:
    """The result of the one sort of a confidence vector.

    Attributes
    ----------
    order : ndarray of int64
        Permutation sorting the samples by descending confidence (stable).
    block_ids : ndarray of int64
        Tie-block index of each *sorted* position.
    errors : ndarray of float64
        ``1.0`` where the sorted sample is misclassified.
    """

    order: np.ndarray
    block_ids: np.ndarray
    errors: np.ndarray

    @property
    def n(self) -> int:
        return int(self.order.shape[0])

    def blocks(self, weights: np.ndarray | None = None, *, tie_aware: bool = True) -> TieBlocks:
        """Tie blocks, optionally re-weighted by per-sample counts.

        Parameters
        ----------
        weights : ndarray of int, optional
            Per-sample multiplicities in the *original* sample order (bootstrap
            counts). ``None`` means every sample once.
        tie_aware : bool
            When False every sample is its own block in the stable sorted order
            (input order among ties), as libraries without tie handling do.
        """
        if not tie_aware or (weights is None and self.n and self.block_ids[-1] + 1 == self.n):
            if weights is None:  # every sample its own block (no ties, or ties ignored)
                return TieBlocks(np.ones(self.n, dtype=np.int64), self.errors.copy())
            w = weights[self.order].astype(np.int64)
            return TieBlocks(w, w * self.errors)
        nblocks = int(self.block_ids[-1]) + 1 if self.n else 0
        if weights is None:
            sizes = np.bincount(self.block_ids, minlength=nblocks).astype(np.int64)
            errs = np.bincount(self.block_ids, weights=self.errors, minlength=nblocks)
        else:
            w = weights[self.order].astype(np.float64)
            sizes = np.rint(np.bincount(self.block_ids, weights=w, minlength=nblocks)).astype(
                np.int64
            )
            errs = np.bincount(self.block_ids, weights=w * self.errors, minlength=nblocks)
        return TieBlocks(sizes, errs)

    def curve(self, weights: np.ndarray | None = None, *, tie_aware: bool = True) -> RiskCoverage:
        """The risk–coverage curve of these scores (see :meth:`blocks`)."""
        return RiskCoverage(self.blocks(weights, tie_aware=tie_aware))

    @lazy
    def layout(self) -> _Layout:
        """Index arrays that :meth:`resample` needs, built once per sort."""
        return _Layout(self)

    def resample(self, counts: np.ndarray) -> ResampledBlocks:
        """The error-holding tie blocks re-weighted by a batch of count vectors.

        Parameters
        ----------
        counts : ndarray of int, shape (B, n) or (B, n + 1)
            Per-sample multiplicities in the *original* sample order, one row
            per resample; an extra last column of zeros saves a copy. int32
            counts are summed in int32 (faster: the arrays stay in cache), so
            their total over the batch must stay below 2^31; other integer
            types are summed in int64.
        """
        return ResampledBlocks.from_counts(self.layout, counts)


def sort_scores(confidence: np.ndarray, errors: np.ndarray) -> SortedScores:
    """Sort samples once by descending confidence and find the tie blocks.

    Parameters
    ----------
    confidence : ndarray, shape (n,)
        Ranking key, higher is accepted first. Must not contain NaN.
    errors : ndarray of bool, shape (n,)
        True where the prediction is wrong.

    Returns
    -------
    SortedScores

    Examples
    --------
    >>> s = sort_scores(np.array([0.9, 0.5, 0.9]), np.array([False, True, True]))
    >>> s.order.tolist(), s.block_ids.tolist()
    ([0, 2, 1], [0, 0, 1])
    """
    key = np.asarray(confidence)
    n = key.shape[0]
    order = np.argsort(-key)  # quicksort: about twice as fast as a stable sort
    sorted_key = key[order]
    new_block = np.empty(n, dtype=bool)
    if n:
        new_block[0] = False
        np.not_equal(sorted_key[1:], sorted_key[:-1], out=new_block[1:])
    block_ids = np.cumsum(new_block, dtype=np.int64)
    if n and block_ids[-1] + 1 < n:
        # ties: put each block in input order (as a stable sort would), so the
        # permutation is deterministic; (block, index) pairs are unique keys
        order = order[np.argsort(block_ids * n + order)]
    errs = np.asarray(errors, dtype=np.float64)[order]
    return SortedScores(order=order, block_ids=block_ids, errors=errs)


class RiskCoverage:
    """Tie-aware selective risk at every integer coverage ``k / n``.

    Parameters
    ----------
    blocks : TieBlocks
        Samples grouped by equal confidence, most confident first.

    Notes
    -----
    ``cum_errors[k-1] = E[E_k]``, the expected number of errors among the
    ``k`` most confident samples when ties are broken uniformly at random.
    Selective risk is ``r_k = E[E_k] / k`` and generalised risk ``E[E_k] / n``.
    """

    def __init__(self, blocks: TieBlocks):
        self.blocks = blocks
        self.n = blocks.n
        self.n_errors = blocks.n_errors

    @lazy
    def cum_errors(self) -> np.ndarray:
        sizes, errs = self.blocks.sizes, self.blocks.errors
        if sizes.shape[0] == self.n and bool((sizes == 1).all()):
            return np.cumsum(errs)  # no ties: the expectation is the plain count
        ends = np.cumsum(sizes)
        starts = ends - sizes
        err_end = np.cumsum(errs)
        err_start = err_end - errs
        idx = np.repeat(np.arange(sizes.shape[0]), sizes)
        j = np.arange(1, self.n + 1, dtype=np.int64) - starts[idx]
        return err_start[idx] + (j * errs[idx]) / sizes[idx]

    @lazy
    def risk(self) -> np.ndarray:
        """Selective risk ``r_k`` for ``k = 1..n``."""
        return self.cum_errors / np.arange(1, self.n + 1, dtype=np.float64)

    @property
    def coverage(self) -> np.ndarray:
        """Coverage ``k / n`` for ``k = 1..n``."""
        return np.arange(1, self.n + 1, dtype=np.float64) / self.n

    @property
    def error_rate(self) -> float:
        return self.n_errors / self.n

    def risk_at_coverage(self, coverage: float) -> float:
        """Selective risk at ``coverage`` in (0, 1], linear in ``k`` between integers.

        Below ``1/n`` the risk of the single most confident sample is returned.
        """
        k = coverage * self.n
        if k <= 1.0:
            return float(self.risk[0])
        lo = int(np.floor(k))
        frac = k - lo
        r_lo = self.risk[lo - 1]
        if frac == 0.0:
            return float(r_lo)
        return float(r_lo + frac * (self.risk[lo] - r_lo))

    def coverage_at_risk(self, risk: float) -> float:
        """Largest coverage ``k / n`` whose selective risk is at most ``risk``; 0 if none."""
        ok = np.flatnonzero(self.risk <= risk * (1 + 1e-12) + 1e-15)
        return float((ok[-1] + 1) / self.n) if ok.size else 0.0


# --------------------------------------------------------------------------- resampling
@cache
def _harmonic_tables(n: int) -> tuple[np.ndarray, np.ndarray]:
    """``H[x] = sum_{i=1..x} 1/i`` and ``G[x] = sum_{i<x} H_i = x (H_x - 1)``, ``x = 0..n``."""
    h = np.zeros(n + 1)
    np.cumsum(1.0 / np.arange(1, n + 1, dtype=np.float64), out=h[1:])
    g = np.arange(n + 1, dtype=np.float64) * (h - 1.0)
    g[0] = 0.0
    return h, g


class _Layout:
    """What :class:`ResampledBlocks` needs of one sort: where the correct and the
    wrong samples sit, and the bounds of the error-holding blocks among both."""

    def __init__(self, scores: SortedScores):
        n = scores.n
        bid = scores.block_ids
        wrong = scores.errors > 0
        self.n = n
        self.correct_order = scores.order[~wrong]  # sample indices in sorted order
        self.wrong_order = scores.order[wrong]
        # what _prefix gathers: a zero (column n of the padded counts), then the samples
        self.correct_take = np.r_[n, self.correct_order].astype(np.intp)
        self.wrong_take = np.r_[n, self.wrong_order].astype(np.intp)
        self.correct_pos = np.flatnonzero(~wrong)  # their sorted positions
        self.wrong_pos = np.flatnonzero(wrong)
        n_correct = np.zeros(n + 1, dtype=np.int64)  # correct samples before a position
        np.cumsum(~wrong, out=n_correct[1:])
        n_wrong = np.arange(n + 1, dtype=np.int64) - n_correct
        starts = np.flatnonzero(np.r_[True, bid[1:] != bid[:-1]]) if n else np.zeros(0, np.int64)
        ends = np.r_[starts[1:], n].astype(np.int64)
        eb = bid[self.wrong_pos]
        blocks = eb[np.flatnonzero(np.r_[True, eb[1:] != eb[:-1]])] if eb.size else eb
        bs, be = starts[blocks], ends[blocks]
        self.start_correct, self.start_wrong = n_correct[bs], n_wrong[bs]
        self.end_correct, self.end_wrong = n_correct[be], n_wrong[be]
        self.pure = bool(np.array_equal(self.start_correct, self.end_correct))
        self.mixed = np.flatnonzero(self.end_correct > self.start_correct)  # correct inside
        # every error lies in one block, in order: the blocks' starts and the last end
        self.wrong_bounds = np.r_[self.start_wrong, self.end_wrong[-1:] if eb.size else 0]
        # one error per block: t is the gathered weight of that error
        self.single = self.pure and bool(np.all(self.end_wrong - self.start_wrong == 1))
        # errors ranked above the end of each correct sample's block (fpr@tpr)
        self.correct_block_end_wrong = n_wrong[ends[bid[self.correct_pos]]]
        # correct samples ranked above each error, ties broken by input order
        self.correct_above_wrong = n_correct[self.wrong_pos]


def _prefix(
    counts: np.ndarray, take: np.ndarray, *, weights: bool = False
) -> tuple[np.ndarray | None, np.ndarray]:
    """Row-wise exclusive prefix sums of ``counts[:, take[1:]]``, offset per row.

    ``counts`` is (B, n + 1) with a zero last column and ``take[0] = n``, so
    the gather itself puts a zero before every row. Returns the gathered
    weights ``w`` (B, k; None unless ``weights``) and ``P`` (B, k + 1) with
    ``P[r, i] - P[r, 0] = sum_{j<i} w[r, j]``: one cumulative sum over the
    whole array, so a row is offset by the total of the rows above it and
    ``P.reshape(-1)`` is non-decreasing (one binary search serves every row,
    see :func:`_reach`). The sums keep the dtype of ``counts``.
    """
    p = np.take(counts, take, axis=1)
    w = p[:, 1:].copy() if weights else None
    flat = p.reshape(-1)
    np.cumsum(flat, out=flat)
    return w, p


def _reach(p: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Per row of a :func:`_prefix`, the smallest ``i`` with ``P[r, i] - P[r, 0] >=
    target[r]`` (``target >= 1``, shape (B,) or (B, K)); ``k + 1`` when the row total
    falls short."""
    stride = p.shape[1]
    rows = (np.arange(p.shape[0], dtype=np.int64) * stride).reshape(-1, *[1] * (target.ndim - 1))
    flat = p.reshape(-1)
    q = np.searchsorted(flat, flat[rows] + target, side="left") - rows
    return np.minimum(q, stride)


class ResampledBlocks:
    """The error-holding tie blocks of one sort under ``B`` resamples at once.

    Built by :meth:`SortedScores.resample` in O(B n) (a gather of the counts
    into sorted order and one cumulative sum, no sort); every quantity has one
    row per resample, so a metric is a few vector expressions for the whole
    batch. See the module docstring for the formulas.

    Attributes
    ----------
    N, E : ndarray of int64, shape (B,)
        Total weight and weighted number of errors of each resample.
    a, m, t, e0 : ndarray of int, shape (B, blocks)
        For each block holding an error: weight ranked above it, its weight,
        its weighted errors, weighted errors ranked above it.
    pure : bool
        Every error block holds only errors (``m == t``).
    """

    def __init__(
        self,
        N: np.ndarray,
        E: np.ndarray,
        a: np.ndarray,
        m: np.ndarray,
        t: np.ndarray,
        e0: np.ndarray | None,
        *,
        pure: bool,
    ):
        self.N, self.E, self.a, self.m, self.t = N, E, a, m, t
        if e0 is not None:
            self.e0 = e0
        self.pure = pure
        self._layout: _Layout | None = None
        # the prefix sums and the wrong samples' weights (single layout), for the
        # metrics that break ties or search the correct samples
        self._prefixes: tuple[np.ndarray, np.ndarray, np.ndarray | None] | None = None
        self._wrong_starts: np.ndarray | None = None

    @classmethod
    def from_counts(cls, layout: _Layout, counts: np.ndarray) -> ResampledBlocks:
        """Gather ``counts`` into sorted order and reduce them to the error blocks.

        ``counts`` is (B, n), or (B, n + 1) with a zero last column (saves a copy).
        """
        if counts.shape[1] == layout.n:
            counts = np.pad(counts, ((0, 0), (0, 1)))
        if counts.dtype != np.int32:  # int32 counts are summed in int32 (see resample)
            counts = counts.astype(np.int64, copy=False)
        pc = _prefix(counts, layout.correct_take)[1]
        ww, pw = _prefix(counts, layout.wrong_take, weights=layout.single)
        oc, ow = pc[:, :1], pw[:, :1]
        E = (pw[:, -1] - ow[:, 0]).astype(np.int64)
        N = (pc[:, -1] - oc[:, 0]).astype(np.int64) + E
        if ww is not None:  # single: error block b is the b-th error alone
            start_wrong, t = pw[:, :-1], ww
        else:  # the blocks split the errors in order: block b's end is block b + 1's start
            bounds = np.take(pw, layout.wrong_bounds, axis=1)
            start_wrong, t = bounds[:, :-1], np.diff(bounds, axis=1)
        start_correct = np.take(pc, layout.start_correct, axis=1)
        a = np.add(start_correct, start_wrong, dtype=np.intp)  # intp: it indexes tables
        a -= oc + ow
        if layout.pure:
            m = t
        else:  # correct samples tied with errors: only in the mixed blocks
            m = t.copy()
            mixed = layout.mixed
            m[:, mixed] += np.take(pc, layout.end_correct[mixed], axis=1)
            m[:, mixed] -= np.take(start_correct, mixed, axis=1)
        out = cls(N, E, a, m, t, None, pure=layout.pure)  # e0: when a metric needs it
        out._layout = layout
        out._prefixes, out._wrong_starts = (pc, pw, ww), start_wrong
        return out

    @lazy
    def e0(self) -> np.ndarray:
        """Weighted errors ranked above each error block, (B, blocks)."""
        assert self._prefixes is not None and self._wrong_starts is not None
        return self._wrong_starts - self._prefixes[1][:, :1]

    def oracle(self) -> ResampledBlocks:
        """The same resamples ranked by the oracle (every correct sample before any error)."""
        N, E = self.N[:, None], self.E[:, None]
        return ResampledBlocks(self.N, self.E, N - E, E, E, np.zeros_like(E), pure=True)

    # ------------------------------------------------------------------ areas
    def _area(self, a: np.ndarray, m: np.ndarray, t: np.ndarray, pure: bool) -> np.ndarray:
        """``sum_b t_b (H_N - mean_{j<m_b} H_{a_b + j})``, shape (B,)."""
        h, g = _harmonic_tables(int(self.N.max()) if self.N.size else 0)
        d = np.take(g, np.add(a, m, dtype=np.intp))  # sum_{j<m} H_{a+j} = G[a+m] - G[a]
        d -= np.take(g, a.astype(np.intp, copy=False))
        if not pure:
            d *= t / np.maximum(m, 1)
        return self.E * h[self.N] - d.sum(axis=1)

    @lazy
    def risk_sum(self) -> np.ndarray:
        """``sum_k E[E_k] / k`` (tie-aware), shape (B,)."""
        return self._area(self.a, self.m, self.t, self.pure)

    @lazy
    def sequential_risk_sum(self) -> np.ndarray:
        """``sum_k E_k / k`` with ties broken by input order (every sample its own block)."""
        lay = self._layout
        if lay is None or lay.single:  # every error alone in its block: nothing to break
            return self.risk_sum
        assert self._prefixes is not None
        pc, pw, _ = self._prefixes
        ww = np.diff(pw, axis=1)  # each error's weight
        a = np.add(np.take(pc, lay.correct_above_wrong, axis=1), pw[:, :-1], dtype=np.intp)
        a -= pc[:, :1] + pw[:, :1]
        return self._area(a, ww, ww, True)

    @lazy
    def first_is_error(self) -> np.ndarray:
        """1.0 where the first sample, ties broken by input order, is an error; shape (B,)."""
        lay = self._layout
        if lay is None:  # the oracle: errors last
            return (self.E == self.N).astype(np.float64)
        one = np.ones_like(self.N)
        n = lay.n
        pos = np.r_[lay.correct_pos, n]
        assert self._prefixes is not None
        first_c = pos[_reach(self._prefixes[0], one) - 1]
        pos = np.r_[lay.wrong_pos, n]
        first_w = pos[_reach(self._prefixes[1], one) - 1]
        return (first_w < first_c).astype(np.float64)

    @lazy
    def _t_dots(self) -> tuple[np.ndarray, np.ndarray]:
        """``sum_b t_b a_b`` and ``sum_b t_b m_b`` (exact, int64)."""
        ta = np.einsum("ij,ij->i", self.t, self.a, dtype=np.int64)
        if self.pure and self.t.dtype == np.int32 and int(self.N.max(initial=0)) < 46340:
            # m = t and sum_b t_b^2 <= N^2 < 2^31: the int32 dot needs no int64 copies
            tm = np.einsum("ij,ij->i", self.t, self.t).astype(np.int64)
        else:
            tm = np.einsum("ij,ij->i", self.t, self.m, dtype=np.int64)
        return ta, tm

    @lazy
    def cum_errors_sum(self) -> np.ndarray:
        """``sum_k E[E_k] = sum_b t_b (N - a_b - (m_b - 1) / 2)`` (tie-aware), shape (B,)."""
        ta, tm = self._t_dots
        return self.N * self.E - ta - (tm - self.E) / 2

    @lazy
    def correct_above_errors(self) -> np.ndarray:
        """Pairs (correct, wrong) with the correct one ranked higher, ties counting 1/2:
        ``sum_b t_b (a_b - e0_b + (m_b - t_b) / 2) = sum_b t_b a_b + (sum_b t_b m_b - E^2) / 2``
        (``sum_b t_b e0_b = (E^2 - sum_b t_b^2) / 2``: every error pair once)."""
        ta, tm = self._t_dots
        return ta + (tm - self.E * self.E) / 2

    # ------------------------------------------------------------------ points
    def cum_errors_at(self, k: np.ndarray) -> np.ndarray:
        """``E[E_k]`` for integers ``1 <= k <= N``; ``k`` of shape (B, K)."""
        blocks = self.a.shape[1]
        if blocks == 0:
            return np.zeros(k.shape)
        # the block starts of all rows in one non-decreasing array (row r offset by
        # r (max N + 1)): one binary search for every row (numpy calls, not a loop,
        # keep the GIL free for the other workers)
        rows = np.arange(k.shape[0], dtype=np.int64)[:, None]
        offset = rows * (int(self.N.max()) + 1)
        flat = np.add(self.a, offset, dtype=np.int64).reshape(-1)
        j = np.searchsorted(flat, k + offset, side="left") - rows * blocks  # starting above k
        b = np.maximum(j - 1, 0)
        a, m, t, e0 = (x[rows, b] for x in (self.a, self.m, self.t, self.e0))
        ramp = e0 + ((k - a) * t) / np.maximum(m, 1)
        return np.where(j == 0, 0.0, np.where(k <= a + m, ramp, (e0 + t).astype(np.float64)))

    def risk_at_coverage(self, coverage: float) -> np.ndarray:
        """Selective risk at ``coverage`` (as :meth:`RiskCoverage.risk_at_coverage`), (B,)."""
        return self.risk_at_coverages([coverage])[:, 0]

    def risk_at_coverages(self, coverages: Sequence[float]) -> np.ndarray:
        """:meth:`risk_at_coverage` of each coverage, (B, K): one binary search for all."""
        cov = np.asarray(coverages, dtype=np.float64)
        N = self.N[:, None]
        k = cov * N
        lo = np.maximum(np.floor(k), 1).astype(np.int64)
        frac = k - lo
        hi = np.minimum(lo + 1, N)
        e = self.cum_errors_at(np.hstack((lo, hi)))
        r_lo = e[:, : cov.size] / lo
        r_hi = e[:, cov.size :] / hi
        return np.where((k <= 1.0) | (frac == 0.0), r_lo, r_lo + frac * (r_hi - r_lo))

    def coverage_at_risk(self, risk: float) -> np.ndarray:
        """Largest coverage whose selective risk is at most ``risk`` (as
        :meth:`RiskCoverage.coverage_at_risk`), shape (B,)."""
        return self.coverage_at_risks([risk])[:, 0]

    def coverage_at_risks(self, risks: Sequence[float]) -> np.ndarray:
        """:meth:`coverage_at_risk` of each risk, (B, K).

        Between error blocks the risk falls, so the answer is ``N`` or lies at
        or after the start of the last error block whose start satisfies it,
        inside that block (where ``E[E_k] - r k`` is linear in ``k``). A block
        whose start satisfies ``r`` has ``e0 <= r a <= r N``, and ``e0`` grows
        along a row: only the blocks up to the last with ``e0 <= r N`` are
        searched.
        """
        thr = np.asarray(risks, dtype=np.float64) * (1 + 1e-12) + 1e-15
        N = self.N[:, None]
        everything = thr >= self.E[:, None] / N
        k = np.zeros((N.shape[0], thr.size), dtype=np.int64)
        if self.a.shape[1]:
            # blocks that may satisfy r in some row still searched (with room for rounding)
            reach = self._errors_within(np.floor(thr * N * (1 + 1e-9)))
            width = np.maximum(np.where(everything, 0, reach).max(axis=0), 1)
            searched = int(width.max())
            with np.errstate(divide="ignore", invalid="ignore"):
                risk = self.e0[:, :searched] / self.a[:, :searched]
            last = np.empty(k.shape, dtype=np.intp)
            for col, r in enumerate(thr):  # the last block whose start has risk <= r
                w = int(width[col])  # block 0 always satisfies r (risk 0, or 0/0)
                above = risk[:, w - 1 :: -1] > r  # NaN (0/0: nothing ranked above) is never above
                last[:, col] = w - 1 - np.argmin(above, axis=1)
            rows = np.arange(N.shape[0])[:, None]
            a, m, t, e0 = (x[rows, last] for x in (self.a, self.m, self.t, self.e0))

            def fits(j: np.ndarray) -> np.ndarray:
                return (e0 + (j * t) / np.maximum(m, 1)) / np.maximum(a + j, 1) <= thr

            slope = t / np.maximum(m, 1) - thr
            with np.errstate(divide="ignore", invalid="ignore"):
                j = np.where(slope > 0, np.floor((thr * a - e0) / slope), m)
            j = np.clip(np.nan_to_num(j, nan=0.0, posinf=0.0), 0, m).astype(np.int64)
            j = np.where((j < m) & fits(j + 1), j + 1, j)  # rounding, either way
            j = np.where((j > 0) & ~fits(j), j - 1, j)
            k = a + j
        return np.where(everything, N, k) / N

    def _errors_within(self, bound: np.ndarray) -> np.ndarray:
        """Per row, the number of error blocks with ``e0 <= bound`` (B, K)."""
        lay = self._layout
        if lay is None or self._prefixes is None:  # the oracle: one block, e0 = 0
            return np.ones(bound.shape, dtype=np.int64)
        # errors (in sorted order) ranked above a block with e0 <= bound: the first
        # prefix of the wrong weights beyond the (integer) bound
        within = _reach(self._prefixes[1], bound.astype(np.int64) + 1)
        if lay.single:  # block b starts after b errors
            return np.minimum(within, lay.start_wrong.size)
        return np.searchsorted(lay.start_wrong, within, side="left")

    def errors_at_correct(self, count: np.ndarray) -> np.ndarray:
        """Weighted errors ranked at or above the tie block in which the cumulative
        correct weight first reaches ``count`` (>= 1, at most the correct weight), (B,)."""
        lay = self._layout
        assert lay is not None, "the oracle has no correct-sample layout"
        assert self._prefixes is not None
        pc, pw, _ = self._prefixes
        i = _reach(pc, count)  # 1..k
        idx = lay.correct_block_end_wrong[np.clip(i - 1, 0, max(lay.correct_pos.size - 1, 0))]
        rows = np.arange(count.shape[0])
        return (pw[rows, idx] - pw[:, 0]).astype(np.int64)
