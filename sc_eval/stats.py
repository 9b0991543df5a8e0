"""Bootstrap intervals and paired comparisons, without re-sorting per resample.

A bootstrap resample of ``n`` samples is a vector of multinomial counts
``w`` (``w_i`` = how often sample ``i`` was drawn, ``sum w = n``), obtained
as ``bincount(rng.integers(0, n, n))``. A *paired* bootstrap applies the same
counts to every model and every score, so a difference is measured on the
same resampled test set.

Resampling never changes the order of the samples, only their multiplicity:
a drawn sample keeps its confidence, its duplicates tie with it, and tie
blocks of the original sort stay tie blocks (possibly empty). Each score is
therefore sorted **once** (:func:`sc_eval.curves.sort_scores`) and every
resample re-weights the sorted samples in O(n):

* :class:`WeightedBlocks` gathers the counts into sorted order, takes one
  cumulative sum of the weights and one of the weighted errors, and keeps,
  for every tie block that holds an error, its start ``a`` (weight ranked
  above it), its size ``m`` and its errors ``t``, and the errors ``e0``
  ranked above it;
* the area metrics then have closed forms over those blocks. With
  ``H_x = sum_{i<=x} 1/i`` and ``N`` the total weight,

  - ``N * AURC = sum_k E[E_k] / k = sum_b t_b (H_N - mean_{j<m_b} H_{a_b+j})``
    where ``mean_{j<m} H_{a+j} = H_{a+m} - 1 + (a/m)(H_{a+m} - H_a)``
    (an error at position ``p`` is counted in ``r_k`` for every ``k >= p``);
  - ``N^2 * AUGRC = sum_k E[E_k] = sum_b t_b (N - a_b - (m_b - 1) / 2)``;
  - ``AUROC = sum_b t_b (a_b - e0_b + (m_b - t_b) / 2) / (N_correct N_wrong)``
    (correct samples ranked above an error, ties counting one half);
  - ``E[E_k]`` at any ``k`` by binary search, for ``risk@cov=c``;

* every other metric is computed by the ordinary metric code on the
  re-weighted tie blocks, ``Curves(sorted_scores, counts)`` (still O(n), no
  sort).

Intervals are percentile intervals of the replicates; a paired difference
also gets a two-sided bootstrap p-value.

References
----------
Efron & Tibshirani (1993), *An Introduction to the Bootstrap*, ch. 13 (percentile
intervals) and ch. 16 (bootstrap hypothesis tests).
Geifman, Uziel & El-Yaniv (2019), ICLR — AURC. Traub et al. (2024), NeurIPS — AUGRC.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import itertools
import math
import os
import signal
import sys
import warnings
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cache, partial
from multiprocessing import Pipe
from multiprocessing.connection import Connection, wait
from typing import TYPE_CHECKING, Any, NoReturn, Protocol

import numpy as np

from sc_eval import progress as bars
from sc_eval.curves import SortedScores, sort_scores
from sc_eval.errors import UsageError
from sc_eval.metrics import (
    MODEL_METRICS,
    Curves,
    SampleStats,
    get_convention,
    get_metric,
)

if TYPE_CHECKING:
    from sc_eval.pipeline import Evaluation

__all__ = [
    "BOOTSTRAP_STREAM",
    "BootstrapResult",
    "Difference",
    "EvaluationIntervals",
    "Interval",
    "PairedBootstrap",
    "bootstrap_counts",
    "bootstrap_metrics",
    "bootstrap_rng",
    "evaluation_intervals",
    "paired_difference",
    "percentile_interval",
]

BOOTSTRAP_STREAM = 1
"""Spawn key of the bootstrap's random stream: ``SeedSequence(seed, spawn_key=(1,))``.

``--seed`` also seeds the tuning split; a separate stream keeps the two
independent while one seed reproduces both."""


# --------------------------------------------------------------------------- intervals
@dataclass(frozen=True)
class Interval:
    """A point estimate with its bootstrap percentile interval.

    Attributes
    ----------
    estimate : float
        Value on the full (not resampled) data.
    low, high : float
        Percentile interval of the bootstrap replicates (NaN without replicates).
    confidence : float
        Nominal coverage of the interval, e.g. 0.95.
    """

    estimate: float
    low: float
    high: float
    confidence: float

    @property
    def excludes_zero(self) -> bool:
        """True when the interval lies strictly on one side of 0."""
        return bool(self.low > 0 or self.high < 0)


@dataclass(frozen=True)
class Difference(Interval):
    """A paired difference ``other - reference`` with its interval and p-value.

    Attributes
    ----------
    p_value : float
        Two-sided bootstrap p-value of ``difference = 0`` (see
        :func:`paired_difference`); NaN without replicates.
    p_floor : float
        The smallest p-value ``B`` replicates can give, ``2 / (B + 1)`` (0 without).
    """

    p_value: float = math.nan
    p_floor: float = 0.0


def _check_confidence(confidence: float) -> float:
    if not 0.0 < confidence < 1.0 or math.isnan(confidence):
        raise UsageError(f"confidence must be in (0, 1), got {confidence}")
    return float(confidence)


def percentile_interval(
    replicates: np.ndarray, *, estimate: float, confidence: float = 0.95
) -> Interval:
    """Percentile bootstrap interval.

    ``[q_{α/2}, q_{1-α/2}]`` of the finite replicates, ``α = 1 - confidence``
    (Efron & Tibshirani 1993, §13.3). Non-finite replicates (a metric undefined
    on a resample, e.g. AUROC without errors) are left out.

    Examples
    --------
    >>> iv = percentile_interval(np.arange(101.0), estimate=50.0, confidence=0.5)
    >>> iv.low, iv.high
    (25.0, 75.0)
    """
    alpha = 1.0 - _check_confidence(confidence)
    x = np.asarray(replicates, dtype=np.float64)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return Interval(float(estimate), math.nan, math.nan, confidence)
    low, high = np.percentile(x, [100 * alpha / 2, 100 * (1 - alpha / 2)])
    return Interval(float(estimate), float(low), float(high), confidence)


def paired_difference(
    deltas: np.ndarray, *, estimate: float, confidence: float = 0.95
) -> Difference:
    """Interval and two-sided p-value of a paired bootstrap difference.

    Parameters
    ----------
    deltas : ndarray, shape (B,)
        ``metric(other) - metric(reference)`` on each resample (same counts
        for both).
    estimate : float
        The difference on the full data.
    confidence : float
        Coverage of the percentile interval.

    Notes
    -----
    ``p = min(1, 2 min(#{δ* <= 0} + 1, #{δ* >= 0} + 1) / (B + 1))``: twice
    the smaller tail of the bootstrap distribution beyond 0 (Efron &
    Tibshirani 1993, §16.4), with the usual ``+1`` so that ``p > 0``. The
    interval excludes 0 at level ``1 - confidence`` roughly when ``p < 1 -
    confidence``. Identical models give ``δ* = 0`` everywhere and ``p = 1``.

    Examples
    --------
    >>> d = paired_difference(np.full(99, 0.5), estimate=0.5)
    >>> d.low, d.high, d.p_value
    (0.5, 0.5, 0.02)
    """
    iv = percentile_interval(deltas, estimate=estimate, confidence=confidence)
    d = np.asarray(deltas, dtype=np.float64)
    d = d[np.isfinite(d)]
    if d.size == 0:
        return Difference(iv.estimate, iv.low, iv.high, iv.confidence, math.nan)
    below = int(np.count_nonzero(d <= 0)) + 1
    above = int(np.count_nonzero(d >= 0)) + 1
    p = min(1.0, 2.0 * min(below, above) / (d.size + 1))
    return Difference(iv.estimate, iv.low, iv.high, iv.confidence, p, 2.0 / (d.size + 1))


# --------------------------------------------------------------------------- resampling
def bootstrap_rng(seed: int) -> np.random.Generator:
    """The bootstrap's generator for ``--seed`` (its own stream, see :data:`BOOTSTRAP_STREAM`)."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(BOOTSTRAP_STREAM,)))


def bootstrap_counts(n: int, n_boot: int, *, seed: int = 0) -> Iterator[np.ndarray]:
    """Yield ``n_boot`` multinomial count vectors of ``n`` draws with replacement.

    ``counts = bincount(rng.integers(0, n, n), minlength=n)``: resample ``b``
    holds sample ``i`` exactly ``counts[i]`` times. The same seed gives the
    same sequence.

    Examples
    --------
    >>> [int(c.sum()) for c in bootstrap_counts(5, 3, seed=0)]
    [5, 5, 5]
    """
    rng = bootstrap_rng(seed)
    for _ in range(n_boot):
        yield np.bincount(rng.integers(0, n, size=n), minlength=n)


CHUNK_ELEMENTS = 1 << 19
"""Resamples are evaluated in chunks of ``B_chunk = CHUNK_ELEMENTS // n`` (at least
1): the chunk's ``B_chunk x n`` count matrix (int64, 4 MiB) and each worker's
gathered and summed copies of it bound the memory to a few tens of MiB,
whatever ``B`` and ``n``."""


def chunk_size(n: int, n_boot: int) -> int:
    """Resamples per chunk for ``n`` samples (see :data:`CHUNK_ELEMENTS`)."""
    return max(1, min(n_boot, CHUNK_ELEMENTS // max(n, 1)))


@cache
def _keep_freed_memory() -> None:
    """Ask glibc to keep freed memory: 64 MiB at the top of each heap (``M_TOP_PAD``),
    arrays up to 32 MiB on the heap (``M_MMAP_THRESHOLD``), no trimming below 128 MiB.

    Freed chunk-sized arrays go back to the kernel and are faulted in again on
    the next chunk: about 20 % extra (system) time with two worker threads
    (each with its own malloc arena), and 1.8 s of page faults in 5 s with one
    (20,000 x 100, B = 1,000). Keeping a pad
    removes it: freed chunk arrays stay mapped for the next chunk instead of
    going back to the kernel, so memory stays at the bootstrap's peak (a few
    tens of MiB) rather than growing. Elsewhere than glibc this does nothing.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-2, 64 << 20)  # M_TOP_PAD
        # setting M_TOP_PAD fixes the mmap threshold at 128 KiB: chunk arrays would each
        # be a fresh mapping, faulted in page by page; 32 MiB (the most glibc allows)
        # keeps them on the heap, and M_TRIM_THRESHOLD keeps the heap from shrinking
        libc.mallopt(-3, 32 << 20)  # M_MMAP_THRESHOLD
        libc.mallopt(-1, 128 << 20)  # M_TRIM_THRESHOLD
    except (OSError, AttributeError):  # pragma: no cover - not glibc
        pass


def _workers() -> int:
    """Cores this process may use (numpy releases the GIL in the chunk kernels)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        return os.cpu_count() or 1


# --------------------------------------------------------------------------- bootstrap
class Resamplable(Protocol):
    """What the bootstrap needs of one model (e.g. :class:`~sc_eval.pipeline.ScoredSamples`)."""

    @property
    def errors(self) -> np.ndarray: ...
    @property
    def keys(self) -> dict[str, np.ndarray]: ...
    @property
    def stats(self) -> SampleStats: ...


@dataclass(frozen=True, eq=False)
class BootstrapResult:
    """Bootstrap replicates of every metric of every (model, score), paired.

    Attributes
    ----------
    values : ndarray, shape (B, models, scores, metrics)
        ``values[b, i, j, k]``: metric ``k`` of score ``j`` of model ``i`` on
        resample ``b``. Model metrics (``acc`` …) repeat across scores.
    scores, metrics : tuple of str
    n_boot, seed : int
    """

    values: np.ndarray = field(repr=False)
    scores: tuple[str, ...]
    metrics: tuple[str, ...]
    n_boot: int
    seed: int

    def replicates(self, model: int, score: str, metric: str) -> np.ndarray:
        """The ``B`` replicates of one metric."""
        return self.values[:, model, self.scores.index(score), self.metrics.index(metric)]

    def interval(
        self, model: int, score: str, metric: str, *, estimate: float, confidence: float = 0.95
    ) -> Interval:
        """Percentile interval of one metric (see :func:`percentile_interval`)."""
        return percentile_interval(
            self.replicates(model, score, metric), estimate=estimate, confidence=confidence
        )

    def difference(
        self,
        model: int,
        score: str,
        metric: str,
        *,
        estimate: float,
        reference: int = 0,
        confidence: float = 0.95,
    ) -> Difference:
        """Paired difference ``model - reference`` (see :func:`paired_difference`)."""
        deltas = self.replicates(model, score, metric) - self.replicates(reference, score, metric)
        return paired_difference(deltas, estimate=estimate, confidence=confidence)


class PairedBootstrap:
    """Sorted once, evaluated on any number of resamples.

    ``samples``, ``metrics``, ``scores`` and ``convention`` are those of
    :func:`bootstrap_metrics`, which makes one and runs it.
    """

    def __init__(
        self,
        samples: Sequence[Resamplable],
        *,
        metrics: Sequence[str],
        scores: Sequence[str] | None = None,
        convention: str = "mean",
    ):
        if not samples:
            raise UsageError("a bootstrap needs at least one model")
        n = int(samples[0].errors.shape[0])
        if any(int(s.errors.shape[0]) != n for s in samples):
            raise UsageError("a paired bootstrap needs the same number of samples for every model")
        self.convention = get_convention(convention)
        self.n = n
        self.samples = tuple(samples)
        self.scores = tuple(scores) if scores is not None else tuple(samples[0].keys)
        self.metrics = tuple(dict.fromkeys(metrics))
        self._model = [
            (k, MODEL_METRICS[m]) for k, m in enumerate(self.metrics) if m in MODEL_METRICS
        ]
        self._selective = [
            (k, get_metric(m)) for k, m in enumerate(self.metrics) if m not in MODEL_METRICS
        ]
        self._model_columns = [k for k, _ in self._model]  # what a worker's task fills
        self._selective_columns = [k for k, _ in self._selective]
        # risk@cov, cov@risk: read off together, one call per family (method → columns)
        self._points: dict[str, tuple[list[int], list[float]]] = {}
        for k, metric in self._selective:
            if metric.point is not None and metric.batch is not None:
                columns, values = self._points.setdefault(metric.point[0], ([], []))
                columns.append(k)
                values.append(metric.point[1])
        self._read_off = {k for columns, _ in self._points.values() for k in columns}
        # the closed forms count 0/1 errors; fractional residuals (an OOD cost β ≠ 1)
        # take the general curves of every resample
        self._binary = [
            bool(np.all((np.asarray(s.errors) == 0) | (np.asarray(s.errors) == 1)))
            for s in self.samples
        ]
        self._sorted: list[list[SortedScores]] = [
            [sort_scores(s.keys[name], s.errors) for name in self.scores] for s in self.samples
        ]
        for row in self._sorted:
            for sorted_scores in row:
                _ = sorted_scores.layout  # built once here, not in the workers

    def _model_metrics(self, i: int, weights: np.ndarray, out: np.ndarray) -> None:
        for k, metric in self._model:
            out[:, i, :, k] = metric.batch(self.samples[i].stats, weights)[:, None]

    def _score_metrics(self, i: int, j: int, counts: np.ndarray, out: np.ndarray) -> None:
        sorted_scores = self._sorted[i][j]
        conv = self.convention
        blocks = sorted_scores.resample(counts) if self._selective and self._binary[i] else None
        if blocks is not None:
            for method, (columns, values) in self._points.items():
                out[:, i, j, columns] = getattr(blocks, f"{method}s")(values)
        for k, metric in self._selective:
            if blocks is not None and k in self._read_off:
                continue
            if metric.batch is not None and blocks is not None:
                out[:, i, j, k] = metric.batch(blocks, conv)
            else:  # no fast path: the general curves of every resample
                for b in range(counts.shape[0]):
                    out[b, i, j, k] = metric(Curves(sorted_scores, counts[b, : self.n]), conv)

    def _task_keys(self) -> list[tuple[int, int | None]]:
        """What each task of a chunk computes: ``(model, None)`` for the model metrics
        of a model, ``(model, score index)`` for the selective metrics of a pair."""
        keys: list[tuple[int, int | None]] = []
        if self._model:
            keys += [(i, None) for i in range(len(self.samples))]
        if self._selective:
            keys += [(i, j) for i in range(len(self.samples)) for j in range(len(self.scores))]
        return keys

    def _cost(self, key: tuple[int, int | None]) -> float:
        """Rough relative time of a task (per resample): the gathers and sums of the
        samples, and a few passes over the error blocks (more without one error per block)."""
        i, j = key
        if j is None:
            return self.n * len(self._model) / 4
        layout = self._sorted[i][j].layout
        return self.n + layout.start_correct.size * (1.2 if layout.single else 1.8)

    def _share(self, part: int, parts: int) -> list[tuple[int, int | None]]:
        """The tasks of worker ``part`` of ``parts``: longest first, each to the least
        loaded worker (so the slow tie-holding scores do not end up together)."""
        loads = [0.0] * parts
        shares: list[list[tuple[int, int | None]]] = [[] for _ in range(parts)]
        for key in sorted(self._task_keys(), key=self._cost, reverse=True):
            lightest = loads.index(min(loads))
            shares[lightest].append(key)
            loads[lightest] += self._cost(key)
        return shares[part]

    def _tasks(
        self, counts: np.ndarray, out: np.ndarray, *, part: int = 0, parts: int = 1
    ) -> list[Callable[[], object]]:
        """The tasks of one chunk that writes into ``out``: one per model (model
        metrics) and per (model, score); with ``parts``, only those of ``part`` (see
        :meth:`_share`)."""
        keys = self._task_keys() if parts == 1 else self._share(part, parts)
        weights = counts[:, : self.n].astype(np.float64) if self._model else counts  # shared
        return [
            partial(self._model_metrics, i, weights, out)
            if j is None
            else partial(self._score_metrics, i, j, counts, out)
            for i, j in keys
        ]

    def _pick(self, values: np.ndarray, part: int, parts: int) -> list[np.ndarray]:
        """What ``part`` of ``parts`` computed into ``values``, task by task (:meth:`_merge`)."""
        model, selective = self._model_columns, self._selective_columns
        return [
            values[:, i, :, model] if j is None else values[:, i, j, selective]
            for i, j in self._share(part, parts)
        ]

    def _merge(self, out: np.ndarray, picked: list[np.ndarray], part: int, parts: int) -> None:
        """Put into ``out`` what :meth:`_pick` took of ``part`` of ``parts``."""
        for (i, j), values in zip(self._share(part, parts), picked, strict=True):
            if j is None:
                out[:, i, :, self._model_columns] = values
            else:
                out[:, i, j, self._selective_columns] = values

    def replicates(self, counts: np.ndarray, *, pool: Executor | None = None) -> np.ndarray:
        """Every metric on a batch of resamples.

        Parameters
        ----------
        counts : ndarray of int, shape (B, n)
            One count vector per row.
        pool : Executor, optional
            Runs the (model, score) pairs concurrently.

        Returns
        -------
        ndarray, shape (B, models, scores, metrics)
        """
        counts = np.pad(np.atleast_2d(counts), ((0, 0), (0, 1)))  # see SortedScores.resample
        if int(counts.sum(dtype=np.int64)) < 2**31:
            counts = counts.astype(np.int32)
        out = np.empty((counts.shape[0], len(self.samples), len(self.scores), len(self.metrics)))
        _run(self._tasks(counts, out), pool)
        return out

    def replicate(self, counts: np.ndarray) -> np.ndarray:
        """Every metric on one resample: array of shape (models, scores, metrics)."""
        return self.replicates(counts[None, :])[0]

    def _pipeline(
        self,
        chunks: Sequence[tuple[int, int]],
        draw: Callable[[int], np.ndarray],
        out: np.ndarray,
        pool: Executor,
        done: Callable[[int], None],
    ) -> None:
        """Evaluate the chunks on the pool without a barrier between them: chunk
        ``c + 1`` is drawn while chunk ``c`` runs, and its tasks queue behind
        chunk ``c``'s, so no worker waits for the slowest task of a chunk. At most
        three chunks of counts are alive at once."""
        pending: list[Future[Any]] = []  # the previous chunk's tasks
        following = pool.submit(draw, chunks[0][1] - chunks[0][0])
        for c, (lo, hi) in enumerate(chunks):
            counts = following.result()
            if c + 1 < len(chunks):  # queued before this chunk's tasks: drawn early
                following = pool.submit(draw, chunks[c + 1][1] - chunks[c + 1][0])
            current = [pool.submit(task) for task in self._tasks(counts, out[lo:hi])]
            if pending:
                for f in pending:
                    f.result()
                done(chunks[c - 1][1] - chunks[c - 1][0])
            pending = current
        for f in pending:
            f.result()
        done(chunks[-1][1] - chunks[-1][0])

    def _drawer(self, n_boot: int, seed: int) -> Callable[[int], np.ndarray]:
        """The count vectors of ``n_boot`` resamples from ``seed``, a chunk per call."""
        draws = bootstrap_counts(self.n, n_boot, seed=seed)

        def draw(size: int) -> np.ndarray:
            # int32: half the memory traffic of the gathers; a zero last column,
            # which the gathers put before every row (see SortedScores.resample)
            counts = np.empty((size, self.n + 1), dtype=np.int32)
            counts[:, -1] = 0
            for row in counts:
                row[:-1] = next(draws)
            return counts

        return draw

    def _threads(
        self,
        chunks: Sequence[tuple[int, int]],
        draw: Callable[[int], np.ndarray],
        out: np.ndarray,
        workers: int,
        done: Callable[[int], None],
    ) -> None:
        """Evaluate every chunk in this process, on ``workers`` threads."""
        pool = ThreadPoolExecutor(workers) if workers > 1 else None
        try:
            if pool is None:
                for lo, hi in chunks:
                    _run(self._tasks(draw(hi - lo), out[lo:hi]), None)
                    done(hi - lo)
            else:
                self._pipeline(chunks, draw, out, pool, done)
        except BaseException:  # Ctrl-C, SIGTERM: drop the queued work, do not wait for it
            if pool is not None:
                pool.shutdown(wait=False, cancel_futures=True)
                pool = None
            raise
        finally:
            if pool is not None:
                pool.shutdown()

    def _part(
        self, n_boot: int, seed: int, chunks: Sequence[tuple[int, int]], part: int, parts: int
    ) -> Iterator[int | list[np.ndarray]]:
        """One forked worker's share (:meth:`_tasks` ``part``) of every chunk: yields the
        size of each chunk it finishes, then its replicates (:meth:`_pick`)."""
        # laid out task by task, resamples last: a worker's tasks touch only their own
        # pages of these zeros (calloc: the others are never allocated)
        shape = (len(self.samples), len(self.scores), len(self.metrics), n_boot)
        values = np.zeros(shape).transpose(3, 0, 1, 2)
        draw = self._drawer(n_boot, seed)  # every worker draws the same counts
        for lo, hi in chunks:
            _run(self._tasks(draw(hi - lo), values[lo:hi], part=part, parts=parts), None)
            yield hi - lo
        yield self._pick(values, part, parts)  # only this worker's replicates

    def _forked(
        self,
        n_boot: int,
        seed: int,
        chunks: Sequence[tuple[int, int]],
        parts: int,
        out: np.ndarray,
        done: Callable[[int], None],
    ) -> bool:
        """Evaluate the chunks in ``parts`` forked processes (:meth:`_part`); False,
        with nothing reported to ``done`` beyond what finished, when a worker could
        not start or failed (the caller then evaluates everything here)."""
        workers: list[tuple[int, Connection]] = []
        parent = os.getpid()
        try:
            for part in range(parts):
                receive, send = Pipe(duplex=False)
                pid = _fork()
                if pid == 0:  # the child: never returns
                    inherited = [receive, *(conn for _, conn in workers)]
                    share = self._part(n_boot, seed, chunks, part, parts)
                    _serve(send, share, inherited, parent)
                send.close()
                workers.append((pid, receive))
                if pid < 0:
                    return False
            finished, reported = [0] * parts, 0
            results: dict[int, list[np.ndarray]] = {}
            while len(results) < parts:
                running = [conn for part, (_, conn) in enumerate(workers) if part not in results]
                messages = _receive(running)
                if messages is None:  # a worker died (killed, out of memory) or fell silent
                    return False
                for conn, message in messages:
                    part = next(p for p, (_, c) in enumerate(workers) if c is conn)
                    if isinstance(message, list):
                        results[part] = message
                    elif isinstance(message, int):
                        finished[part] += message
                        if min(finished) > reported:
                            done(min(finished) - reported)
                            reported = min(finished)
                    else:  # the worker failed: redo its work here, with a real traceback
                        return False
            for part, picked in results.items():
                self._merge(out, picked, part, parts)
            return True
        finally:
            for pid, conn in workers:
                conn.close()
                _reap(pid)

    def _fork_parts(self, n_boot: int) -> int:
        """Worker processes for ``n_boot`` resamples: one per core, at most one per two
        tasks (every worker draws every count vector itself); 0 for threads instead."""
        tasks = len(self._task_keys())
        parts = min(_workers(), tasks // 2)
        large = self.n >= FORK_MIN_SAMPLES and n_boot * self.n * tasks >= FORK_MIN_WORK
        linux = sys.platform.startswith("linux") and hasattr(os, "fork")
        return parts if linux and large and parts > 1 else 0

    def forks(self, n_boot: int) -> bool:
        """Whether :meth:`run` evaluates ``n_boot`` resamples in forked worker processes
        (Linux, several cores, at least two tasks per worker, at least
        :data:`FORK_MIN_SAMPLES` samples and :data:`FORK_MIN_WORK`) rather than on
        threads."""
        return self._fork_parts(n_boot) > 1

    def run(
        self,
        n_boot: int,
        *,
        seed: int = 0,
        progress: Callable[[int], object] | None = None,
    ) -> BootstrapResult:
        """``n_boot`` resamples drawn from ``seed`` (see :func:`bootstrap_metrics`)."""
        if n_boot < 1:
            raise UsageError(f"the number of bootstrap resamples must be >= 1, got {n_boot}")
        out = np.empty((n_boot, len(self.samples), len(self.scores), len(self.metrics)))
        step = chunk_size(self.n, n_boot)
        chunks = list(itertools.pairwise([*range(0, n_boot, step), n_boot]))
        workers = min(_workers(), len(self._task_keys()) + 1)
        _keep_freed_memory()
        with bars.task("bootstrap", n_boot, unit="resamples") as advance:
            reported = skip = 0

            def done(size: int) -> None:
                nonlocal reported, skip
                size, skip = max(size - skip, 0), max(skip - size, 0)  # reported by workers
                if size:
                    reported += size
                    advance(size)
                    if progress is not None:
                        progress(size)

            parts = self._fork_parts(n_boot)
            if parts:
                if self._forked(n_boot, seed, chunks, parts, out, done):
                    return BootstrapResult(out, self.scores, self.metrics, n_boot, seed)
                skip = reported  # a worker failed: all over again here, bar included
            self._threads(chunks, self._drawer(n_boot, seed), out, workers, done)
        return BootstrapResult(out, self.scores, self.metrics, n_boot, seed)


FORK_MIN_WORK = 50_000_000
"""Resamples x samples x tasks from which :meth:`PairedBootstrap.run` forks a
process per core instead of running threads (Linux), when each worker gets at
least two tasks (every worker draws every count vector itself). Threads wait on
each other for the GIL between numpy's many short calls of a chunk, processes
do not: about 15 % less wall time on two cores (1,000 resamples of 8 scores
and 19 metrics of 20,000 samples). Below this a fork costs more than it saves.
"""


FORK_MIN_SAMPLES = 1_000
"""Samples below which the bootstrap stays on threads: with few samples drawing the
counts, which every worker repeats, is most of the work."""


WORKER_SILENCE = 300.0
"""Seconds without a word from any forked worker (each reports every chunk, a few
milliseconds of work per (model, score)) after which they are ended and the
bootstrap runs in this process instead."""


_WORKER_SIGNALS = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}


def _fork() -> int:
    """``os.fork()`` where forking is safe (Linux); -1 elsewhere or when it fails. The
    signals a worker must not handle like its parent stay blocked in the child until
    :func:`_serve` has set them up."""
    if not sys.platform.startswith("linux") or not hasattr(os, "fork"):
        return -1
    for stream in (sys.stdout, sys.stderr):  # nothing buffered is written twice
        with contextlib.suppress(Exception):
            stream.flush()
    before = signal.pthread_sigmask(signal.SIG_BLOCK, _WORKER_SIGNALS)
    pid = -1
    try:
        with warnings.catch_warnings():  # 3.12+: "multi-threaded, use of fork() may deadlock"
            warnings.simplefilter("ignore", DeprecationWarning)
            pid = os.fork()
    except OSError:
        pass
    if pid == 0:
        return 0
    try:  # a signal that came meanwhile is handled here (Ctrl-C: KeyboardInterrupt)
        signal.pthread_sigmask(signal.SIG_SETMASK, before)
    except BaseException:
        _reap(pid)  # the caller never learns of this worker: end it now
        raise
    return pid


def _serve(
    send: Connection, messages: Iterator[object], inherited: Sequence[Connection], parent: int
) -> NoReturn:
    """In a forked worker: send each message, then leave at once.

    The worker dies with its ``parent`` (``PR_SET_PDEATHSIG``), closes the parent's
    ends of the pipes (a write to a dead parent then fails instead of blocking), reads
    and writes /dev/null instead of the parent's stdin, stdout and stderr, leaves
    Ctrl-C to the parent (which ends the workers) and takes SIGTERM and SIGHUP as it
    would without Python. Nothing of the parent runs on the way out (no atexit, no
    flush); a failure is sent as a string."""
    try:
        _die_with_parent(parent)
        for conn in inherited:
            conn.close()
        if send.fileno() <= 2:  # the parent ran with stdio closed: keep it off 0-2
            send = Connection(fcntl.fcntl(send.fileno(), fcntl.F_DUPFD, 3), readable=False)
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            if fd != null:
                os.dup2(null, fd)
        with contextlib.suppress(ValueError):  # not the main thread: keep the parent's
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGHUP, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _WORKER_SIGNALS)
        for message in messages:
            send.send(message)
    except BaseException as exc:  # reported to the parent, which retries
        with contextlib.suppress(BaseException):
            send.send(f"{type(exc).__name__}: {exc}")
    finally:
        os._exit(0)


def _die_with_parent(parent: int) -> None:
    """Have the kernel kill this (forked) process when ``parent`` dies."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:  # pragma: no cover - the parent died before the prctl
        os._exit(0)


def _receive(running: list[Connection]) -> list[tuple[Connection, object]] | None:
    """The next messages of the running workers; None when one died (its pipe closed)
    or none spoke for :data:`WORKER_SILENCE` seconds."""
    try:
        ready = wait(running, timeout=WORKER_SILENCE)
        if not ready:  # stuck (a lock held at the fork?)
            return None
        return [(conn, conn.recv()) for conn in running if conn in ready]
    except (EOFError, OSError):
        return None


def _reap(pid: int) -> None:
    """End a forked worker (if still running) and collect its exit status."""
    if pid <= 0:
        return
    with contextlib.suppress(OSError):
        if os.waitpid(pid, os.WNOHANG) == (0, 0):
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)


def _run(tasks: Sequence[Callable[[], Any]], pool: Executor | None) -> list[Any]:
    """Run the tasks (concurrently with a pool) and return their results in order."""
    if pool is None or len(tasks) < 2:
        return [task() for task in tasks]
    futures: list[Future[Any]] = [pool.submit(task) for task in tasks]
    return [f.result() for f in futures]


def bootstrap_metrics(
    samples: Sequence[Resamplable],
    *,
    metrics: Sequence[str],
    scores: Sequence[str] | None = None,
    convention: str = "mean",
    n_boot: int = 1000,
    seed: int = 0,
    progress: Callable[[int], object] | None = None,
) -> BootstrapResult:
    """Paired bootstrap replicates of metrics, one sort per score.

    Parameters
    ----------
    samples : sequence of ScoredSamples
        One per model, **aligned**: sample ``i`` is the same test sample in
        every model.
    metrics : sequence of str
        Selective metric names (``aurc``, ``risk@cov=0.9`` …) and/or model
        metric names (``acc``, ``ece``, ``nll``, ``brier``).
    scores : sequence of str, optional
        Confidence scores (default: those of the first model).
    convention : str
        Discretisation of the area metrics.
    n_boot : int
        Number of resamples ``B``.
    seed : int
        Seeds the resampling (:func:`bootstrap_counts`).
    progress : callable, optional
        Called with the number of resamples finished, after every chunk.

    Returns
    -------
    BootstrapResult

    Notes
    -----
    Every resample draws one count vector and applies it to every model and
    score. Resamples go in chunks (:func:`chunk_size`); per chunk and (model,
    score) the counts are gathered into sorted order, summed once and every
    metric is a few vector expressions over the chunk
    (:class:`~sc_eval.curves.ResampledBlocks`); no resample is sorted. On
    Linux, a large bootstrap (:meth:`PairedBootstrap.forks`) forks a worker per
    core, each drawing the same counts and evaluating its share of the (model,
    score) pairs, longest first; otherwise the pairs of a chunk run on a thread
    per core while the next chunk's counts are drawn. The replicates are the
    same either way, and a worker that fails or dies has its work redone here.

    Examples
    --------
    >>> from sc_eval.metrics import SampleStats
    >>> from types import SimpleNamespace
    >>> err = np.array([False, True, False, True])
    >>> m = SimpleNamespace(errors=err, keys={"s": np.array([4.0, 3.0, 2.0, 1.0])},
    ...                     stats=SampleStats(~err, np.ones(4), np.zeros(4), np.zeros(4)))
    >>> r = bootstrap_metrics([m, m], metrics=["aurc"], n_boot=50, seed=0)
    >>> r.values.shape, bool((r.replicates(0, "s", "aurc") == r.replicates(1, "s", "aurc")).all())
    ((50, 2, 1, 1), True)
    """
    boot = PairedBootstrap(samples, metrics=metrics, scores=scores, convention=convention)
    return boot.run(n_boot, seed=seed, progress=progress)


# --------------------------------------------------------------------------- single model
@dataclass(frozen=True)
class EvaluationIntervals:
    """Bootstrap intervals of one evaluation (``sc-eval score --bootstrap``).

    Attributes
    ----------
    scores : dict
        Score name → metric name → :class:`Interval`.
    model : dict
        Model metric name (``acc`` …) → :class:`Interval`.
    n_boot, seed : int
    confidence : float
    """

    scores: dict[str, dict[str, Interval]]
    model: dict[str, Interval]
    n_boot: int
    seed: int
    confidence: float


def evaluation_intervals(
    evaluation: Evaluation,
    samples: Resamplable,
    *,
    n_boot: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
) -> EvaluationIntervals:
    """Percentile intervals for every metric of an :class:`~sc_eval.pipeline.Evaluation`.

    Parameters
    ----------
    evaluation : Evaluation
        The point estimates (from :func:`sc_eval.pipeline.evaluate_source`).
    samples : ScoredSamples
        The per-sample vectors returned with it.
    n_boot, seed, confidence
        As in :func:`bootstrap_metrics` and :func:`percentile_interval`.
    """
    ev = evaluation
    _check_confidence(confidence)
    scores = tuple(ev.scores)
    names = (*ev.model_metrics, *ev.metric_names)
    res = bootstrap_metrics(
        [samples], metrics=names, scores=scores, convention=ev.convention, n_boot=n_boot, seed=seed
    )
    first = scores[0] if scores else None
    model = {
        m: res.interval(0, first, m, estimate=v, confidence=confidence)
        if first is not None
        else Interval(v, math.nan, math.nan, confidence)
        for m, v in ev.model_metrics.items()
    }
    per_score = {
        s: {
            m: res.interval(0, s, m, estimate=r.metrics[m], confidence=confidence)
            for m in ev.metric_names
        }
        for s, r in ev.scores.items()
    }
    return EvaluationIntervals(per_score, model, n_boot, seed, confidence)
