"""Bootstrap (sc_eval.stats): the no-re-sort fast path against re-sorting, intervals,
p-values and seeding."""

from __future__ import annotations

import concurrent.futures
import dataclasses
import math
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from conftest import make_logits
from hypothesis import given
from hypothesis import strategies as st
from strategies import seeded_conf_err, small_conf_err

import sc_eval.stats
from sc_eval.curves import ResampledBlocks, lazy, sort_scores
from sc_eval.errors import UsageError
from sc_eval.io import predictions_from_arrays
from sc_eval.metrics import (
    CONVENTIONS,
    MODEL_METRICS,
    SELECTIVE_METRICS,
    Curves,
    SampleStats,
    get_metric,
)
from sc_eval.pipeline import EvalOptions, evaluate_source
from sc_eval.stats import (
    PairedBootstrap,
    bootstrap_counts,
    bootstrap_metrics,
    evaluation_intervals,
    paired_difference,
    percentile_interval,
)

SELECTIVE = (
    *SELECTIVE_METRICS,  # every registry entry, so a new metric is checked too
    "risk@cov=1",
    "risk@cov=0.9",
    "risk@cov=0.5",
    "risk@cov=0.37",
    "risk@cov=0.001",
    "cov@risk=0.1",
    "cov@risk=0.05",
    "cov@risk=0.3",
    "cov@risk=0.6",
    "cov@risk=1",
    "cov@risk=0",
)
ALL_METRICS = (*MODEL_METRICS, *SELECTIVE)


def _model(conf: np.ndarray, err: np.ndarray, seed: int = 0) -> SimpleNamespace:
    """A resamplable model: one score ``s`` and made-up calibration terms."""
    rng = np.random.default_rng(seed)
    n = conf.shape[0]
    p = rng.uniform(0.3, 1.0, n)
    stats = SampleStats(~err, p, np.log(rng.uniform(0.01, 1.0, n)), rng.uniform(0, 2, n))
    return SimpleNamespace(errors=err, keys={"s": conf}, stats=stats)


def _resorted(model: SimpleNamespace, counts: np.ndarray, convention: str) -> dict[str, float]:
    """Every metric on the explicitly resampled data, sorted again (the slow, obvious way)."""
    idx = np.repeat(np.arange(counts.shape[0]), counts)
    conv = CONVENTIONS[convention]
    curves = Curves(sort_scores(model.keys["s"][idx], model.errors[idx]))
    out = {m: MODEL_METRICS[m](model.stats.take(idx)) for m in MODEL_METRICS}
    out |= {m: get_metric(m)(curves, conv) for m in SELECTIVE}
    return out


def _assert_fast_equals_resorted(
    conf: np.ndarray, err: np.ndarray, seed: int, n_boot: int = 4
) -> None:
    """Every metric, every convention: the batched fast path (several resamples in one
    batch, so rows of the batch must not leak into each other) equals re-sorting
    each resample."""
    model = _model(conf, err, seed)
    counts = np.stack(list(bootstrap_counts(conf.shape[0], n_boot, seed=seed)))
    for convention in CONVENTIONS:
        boot = PairedBootstrap([model], metrics=ALL_METRICS, convention=convention)
        batch = boot.replicates(counts)[:, 0, 0]
        for b in range(n_boot):
            slow = _resorted(model, counts[b], convention)
            for k, name in enumerate(ALL_METRICS):
                f, s = batch[b, k], slow[name]
                assert (math.isnan(f) and math.isnan(s)) or f == pytest.approx(
                    s, rel=1e-9, abs=1e-12
                ), (convention, name, b, f, s)


@given(small_conf_err(max_n=12), st.integers(0, 2**32 - 1))
def test_fast_path_equals_resorting_small(data, seed):
    conf, err = data
    _assert_fast_equals_resorted(conf, err, seed)


@given(seeded_conf_err(max_n=400), st.integers(0, 2**32 - 1))
def test_fast_path_equals_resorting_seeded(data, seed):
    conf, err = data
    _assert_fast_equals_resorted(conf, err, seed)


def test_fast_path_equals_resorting_real_scores():
    """Real rank keys (with exact ties from duplicated rows) through the whole pipeline."""
    z, y = make_logits(500, 7, seed=3)
    z[::7] = z[1::7][: z[::7].shape[0]]
    y[::7] = y[1::7][: y[::7].shape[0]]
    _, scored = evaluate_source(
        predictions_from_arrays(z, y), EvalOptions(scores=("msp", "margin"))
    )
    for name in ("msp", "margin"):
        _assert_fast_equals_resorted(scored.keys[name], scored.errors, seed=11)


@pytest.mark.parametrize("n_boot", [1, 5, 6])
def test_resampled_blocks_do_not_depend_on_the_count_dtype(n_boot):
    """int32 counts are summed in int32, others in int64: same blocks and metrics
    either way, for a batch of one resample and of several."""
    rng = np.random.default_rng(3)
    err = rng.random(500) < 0.3
    sorted_scores = sort_scores(np.round(rng.normal(size=500), 1), err)
    counts = np.stack(list(bootstrap_counts(500, n_boot, seed=1)))
    narrow, wide = (sorted_scores.resample(counts.astype(t)) for t in (np.int32, np.int64))
    assert narrow.e0.dtype == np.int32 and wide.e0.dtype == np.int64
    for name in ("N", "E", "a", "m", "t", "e0"):
        np.testing.assert_array_equal(getattr(narrow, name), getattr(wide, name))
    for name in ("risk_sum", "sequential_risk_sum", "first_is_error", "cum_errors_sum"):
        np.testing.assert_array_equal(getattr(narrow, name), getattr(wide, name))
    coverages, risks = [0.3, 0.9, 1.0], [0.05, 0.2]
    np.testing.assert_array_equal(
        narrow.risk_at_coverages(coverages), wide.risk_at_coverages(coverages)
    )
    np.testing.assert_array_equal(narrow.coverage_at_risks(risks), wide.coverage_at_risks(risks))
    goal = np.maximum((wide.N - wide.E) // 2, 1)
    np.testing.assert_array_equal(narrow.errors_at_correct(goal), wide.errors_at_correct(goal))


def test_every_metric_has_a_fast_path():
    """The registry entries carry their batch kernels (the bootstrap's fast path),
    which the tests above check against re-sorting."""
    names = (*SELECTIVE, "risk@cov=0.25", "cov@risk=0.02")
    assert all(get_metric(m).batch is not None for m in names)
    assert all(m.batch is not None for m in MODEL_METRICS.values())


def test_general_path_without_a_kernel_gives_the_same_replicates(monkeypatch):
    """A metric without a batch kernel falls back to its curve definition per resample."""
    rng = np.random.default_rng(5)
    err = rng.random(120) < 0.3
    model = _model(np.round(rng.normal(size=120) - err, 1), err)
    names = ("aurc", "auroc", "fpr@95tpr", "risk@cov=0.7", "cov@risk=0.1")
    fast = bootstrap_metrics([model], metrics=names, n_boot=7, seed=3).values
    plain = get_metric
    monkeypatch.setattr(
        sc_eval.stats, "get_metric", lambda n: dataclasses.replace(plain(n), batch=None)
    )
    slow = bootstrap_metrics([model], metrics=names, n_boot=7, seed=3).values
    np.testing.assert_allclose(fast, slow, rtol=1e-12, atol=1e-15)


def test_chunks_and_threads_do_not_change_the_replicates(monkeypatch):
    """Chunked, threaded resampling gives exactly what one resample at a time gives."""
    rng = np.random.default_rng(9)
    err = rng.random(300) < 0.25
    models = [_model(rng.normal(size=300) - err, err, 1), _model(rng.normal(size=300), err, 2)]
    names = ("acc", "ece", "aurc", "augrc", "risk@cov=0.5", "cov@risk=0.05")
    one_by_one = np.stack(
        [
            PairedBootstrap(models, metrics=names).replicate(c)
            for c in bootstrap_counts(300, 23, seed=4)
        ]
    )
    for chunk, workers in ((1 << 19, 1), (300 * 5, 2), (1, 3)):
        monkeypatch.setattr(sc_eval.stats, "CHUNK_ELEMENTS", chunk)
        monkeypatch.setattr(sc_eval.stats, "_workers", lambda w=workers: w)
        ticks: list[int] = []
        r = bootstrap_metrics(models, metrics=names, n_boot=23, seed=4, progress=ticks.append)
        np.testing.assert_array_equal(r.values, one_by_one)
        assert sum(ticks) == 23 and len(ticks) == -(-23 // sc_eval.stats.chunk_size(300, 23))


@given(seeded_conf_err(max_n=300, ties=True), st.integers(0, 2**32 - 1))
def test_reweighted_tie_blocks_equal_resorted_blocks_exactly(data, seed):
    """The foundation of the fast path: re-weighting the one sort gives the very tie
    blocks that sorting the resampled data gives (bit for bit, empty blocks aside)."""
    conf, err = data
    counts = next(bootstrap_counts(conf.shape[0], 1, seed=seed))
    w = sort_scores(conf, err).blocks(counts)
    keep = w.sizes > 0
    idx = np.repeat(np.arange(conf.shape[0]), counts)
    r = sort_scores(conf[idx], err[idx]).blocks()
    np.testing.assert_array_equal(w.sizes[keep], r.sizes)
    np.testing.assert_array_equal(w.errors[keep], r.errors)


# --------------------------------------------------------------------------- seeding
def test_counts_are_multinomial_and_seeded():
    a = list(bootstrap_counts(50, 4, seed=7))
    b = list(bootstrap_counts(50, 4, seed=7))
    c = list(bootstrap_counts(50, 4, seed=8))
    assert all(int(x.sum()) == 50 and x.shape == (50,) and x.min() >= 0 for x in a)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c, strict=True))


def test_seed_reproducibility():
    rng = np.random.default_rng(0)
    err = rng.random(300) < 0.3
    models = [_model(rng.normal(size=300) - err, err, 1), _model(rng.normal(size=300), err, 2)]
    r1 = bootstrap_metrics(models, metrics=["aurc", "acc"], n_boot=30, seed=5)
    r2 = bootstrap_metrics(models, metrics=["aurc", "acc"], n_boot=30, seed=5)
    r3 = bootstrap_metrics(models, metrics=["aurc", "acc"], n_boot=30, seed=6)
    np.testing.assert_array_equal(r1.values, r2.values)
    assert not np.array_equal(r1.values, r3.values)


def test_paired_same_counts_for_every_model():
    """A model compared with itself: every replicate difference is exactly 0, p = 1."""
    rng = np.random.default_rng(1)
    err = rng.random(200) < 0.25
    m = _model(rng.normal(size=200), err)
    r = bootstrap_metrics([m, m], metrics=["aurc", "acc", "auroc"], n_boot=40, seed=0)
    for metric in ("aurc", "acc", "auroc"):
        d = r.difference(1, "s", metric, estimate=0.0)
        assert d.low == d.high == 0.0
        assert d.p_value == 1.0
        assert not d.excludes_zero


def test_bootstrap_rejects_bad_arguments():
    m = _model(np.arange(5.0), np.array([0, 1, 0, 0, 1], dtype=bool))
    with pytest.raises(UsageError):
        bootstrap_metrics([m], metrics=["aurc"], n_boot=0)
    with pytest.raises(UsageError):
        bootstrap_metrics([], metrics=["aurc"], n_boot=3)
    short = _model(np.arange(4.0), np.array([0, 1, 0, 0], dtype=bool))
    with pytest.raises(UsageError, match="same number of samples"):
        bootstrap_metrics([m, short], metrics=["aurc"], n_boot=3)


# --------------------------------------------------------------------------- intervals
def test_percentile_interval_and_nan_replicates():
    x = np.r_[np.arange(101.0), np.nan, np.inf]
    iv = percentile_interval(x, estimate=50.0, confidence=0.5)
    assert (iv.low, iv.high, iv.estimate, iv.confidence) == (25.0, 75.0, 50.0, 0.5)
    empty = percentile_interval(np.array([np.nan]), estimate=1.0)
    assert math.isnan(empty.low) and math.isnan(empty.high) and not empty.excludes_zero
    for bad in (0.0, 1.0, 1.5, math.nan):
        with pytest.raises(UsageError, match="confidence"):
            percentile_interval(x, estimate=0.0, confidence=bad)


def test_paired_difference_p_value():
    # all 99 replicates above 0: the smallest possible p, 2 / (B + 1)
    d = paired_difference(np.linspace(0.1, 1.0, 99), estimate=0.5)
    assert d.p_value == pytest.approx(0.02)
    assert d.excludes_zero
    # symmetric around 0: p = 1
    s = paired_difference(np.r_[-np.arange(1.0, 50), np.arange(1.0, 50)], estimate=0.0)
    assert s.p_value == 1.0 and not s.excludes_zero
    # a quarter of the replicates below 0 -> p about 0.5
    q = paired_difference(np.r_[-np.ones(25), np.ones(75)], estimate=0.5)
    assert q.p_value == pytest.approx(2 * 26 / 101)
    assert math.isnan(paired_difference(np.array([np.nan]), estimate=0.0).p_value)


def _two_models(rng: np.random.Generator, n: int, gap: float) -> list[SimpleNamespace]:
    """Two models on the same samples; B ranks its errors ``gap`` worse than A."""
    err_a = rng.random(n) < 0.25
    err_b = np.where(rng.random(n) < 0.5, err_a, rng.random(n) < 0.25)
    return [
        _model(rng.normal(size=n) - 1.5 * err_a, err_a),
        _model(rng.normal(size=n) - (1.5 - gap) * err_b, err_b),
    ]


def _coverage(reps: int, n: int, n_boot: int) -> tuple[float, float]:
    """Fractions of repeated test sets whose 95% / 50% paired ΔAURC interval holds the
    population difference."""
    population = _two_models(np.random.default_rng(123), 400_000, gap=0.7)
    truth = [
        CONVENTIONS["mean"].aurc(Curves(sort_scores(m.keys["s"], m.errors))) for m in population
    ]
    true_delta = truth[1] - truth[0]
    assert true_delta > 0.01
    rng = np.random.default_rng(7)
    hits95 = hits50 = 0
    for rep in range(reps):
        idx = rng.integers(0, population[0].errors.shape[0], n)
        sample = [_model(m.keys["s"][idx], m.errors[idx]) for m in population]
        r = bootstrap_metrics(sample, metrics=["aurc"], n_boot=n_boot, seed=rep)
        deltas = r.replicates(1, "s", "aurc") - r.replicates(0, "s", "aurc")
        d95 = paired_difference(deltas, estimate=0.0, confidence=0.95)
        d50 = paired_difference(deltas, estimate=0.0, confidence=0.50)
        hits95 += d95.low <= true_delta <= d95.high
        hits50 += d50.low <= true_delta <= d50.high
    return hits95 / reps, hits50 / reps


def test_interval_coverage_of_a_known_difference():
    """Over repeated test sets, the 95% paired interval of ΔAURC holds the population
    difference most of the time, and a 50% interval about half the time."""
    c95, c50 = _coverage(reps=40, n=800, n_boot=200)
    assert c95 >= 0.8
    assert 0.25 <= c50 <= 0.8


@pytest.mark.slow
def test_interval_coverage_close_to_nominal():
    c95, c50 = _coverage(reps=200, n=1000, n_boot=400)
    assert 0.88 <= c95 <= 0.99
    assert 0.38 <= c50 <= 0.62


def test_p_value_roughly_uniform_under_the_null():
    """Two exchangeable models (same distribution, independent draws): p-values of
    ΔAURC spread over [0, 1] and are rarely small."""
    rng = np.random.default_rng(2024)
    ps = []
    for rep in range(60):
        n = 300
        y_err = [rng.random(n) < 0.3 for _ in range(2)]
        models = [_model(rng.normal(size=n) - e, e) for e in y_err]
        r = bootstrap_metrics(models, metrics=["aurc"], n_boot=150, seed=rep)
        est = 0.0
        ps.append(r.difference(1, "s", "aurc", estimate=est).p_value)
    p = np.array(ps)
    assert np.mean(p < 0.05) <= 0.15
    assert 0.3 <= np.mean(p < 0.5) <= 0.7
    # Kolmogorov–Smirnov distance to the uniform distribution, loosely
    grid = np.sort(p)
    ks = np.max(np.abs(grid - np.arange(1, grid.size + 1) / grid.size))
    assert ks < 0.25


# --------------------------------------------------------------------------- one evaluation
def test_evaluation_intervals_cover_every_metric():
    z, y = make_logits(400, 5, seed=4)
    ev, scored = evaluate_source(
        predictions_from_arrays(z, y), EvalOptions(scores=("msp", "maxlogit"), coverages=(0.9,))
    )
    iv = evaluation_intervals(ev, scored, n_boot=60, seed=1, confidence=0.9)
    assert set(iv.model) == set(ev.model_metrics)
    assert set(iv.scores) == {"msp", "maxlogit"}
    for name, res in ev.scores.items():
        assert set(iv.scores[name]) == set(ev.metric_names)
        aurc = iv.scores[name]["aurc"]
        assert aurc.estimate == res.metrics["aurc"]
        assert aurc.low < aurc.estimate < aurc.high
    acc = iv.model["acc"]
    assert acc.low <= ev.model_metrics["acc"] <= acc.high
    assert (iv.n_boot, iv.seed, iv.confidence) == (60, 1, 0.9)
    again = evaluation_intervals(ev, scored, n_boot=60, seed=1, confidence=0.9)
    assert again == iv


# --------------------------------------------------------------------------- forked workers
def _models_for_workers() -> list[SimpleNamespace]:
    """Two aligned models, ties in the scores, two scores each."""
    rng = np.random.default_rng(5)
    err_a, err_b = rng.random(300) < 0.3, rng.random(300) < 0.4
    models = [
        _model(np.round(rng.normal(size=300), 1), err, seed)
        for seed, err in ((1, err_a), (2, err_b))
    ]
    for m in models:
        m.keys["t"] = -m.keys["s"] + rng.normal(size=300)
    return models


def _boot(models: list[SimpleNamespace], progress: list[int] | None = None) -> np.ndarray:
    return bootstrap_metrics(
        models,
        metrics=ALL_METRICS,
        n_boot=40,
        seed=9,
        progress=progress.append if progress is not None else None,
    ).values


linux_only = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="workers are forked on Linux"
)


def _assert_reaped(pids: list[int]) -> None:
    """Every worker ended and reaped: none is left, not even a zombie."""
    for pid in pids:
        with pytest.raises(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)


def _no_threads(*args, **kwargs):
    """Stands in for PairedBootstrap._threads where the workers must not fall back."""
    raise AssertionError("fell back to threads")


@pytest.fixture
def forking(monkeypatch):
    """Fork for any amount of work, two workers (whatever this machine has); yields
    the list of the workers' pids."""
    monkeypatch.setattr(sc_eval.stats, "FORK_MIN_WORK", 0)
    monkeypatch.setattr(sc_eval.stats, "FORK_MIN_SAMPLES", 0)
    monkeypatch.setattr(sc_eval.stats, "_workers", lambda: 2)
    monkeypatch.setattr(sc_eval.stats, "CHUNK_ELEMENTS", 3000)  # several chunks
    pids: list[int] = []
    fork = sc_eval.stats._fork

    def counted() -> int:
        pid = fork()
        if pid > 0:
            pids.append(pid)
        return pid

    monkeypatch.setattr(sc_eval.stats, "_fork", counted)
    return pids


@linux_only
def test_forked_workers_give_the_replicates_of_one_thread(forking, monkeypatch, capfd):
    models = _models_for_workers()
    progress: list[int] = []
    forked = _boot(models, progress)
    assert len(forking) == 2
    assert sum(progress) == 40 and len(progress) > 1  # a report per chunk
    monkeypatch.setattr(sc_eval.stats, "_workers", lambda: 1)  # no fork, no thread
    np.testing.assert_array_equal(forked, _boot(models))
    assert capfd.readouterr() == ("", "")  # the workers write nothing


@linux_only
@pytest.mark.parametrize("how", ["raises", "dies", "hangs"])
def test_a_failing_worker_is_redone_in_this_process(forking, monkeypatch, how):
    """A worker that raises, dies or falls silent after its first chunk: the whole
    bootstrap is evaluated here instead, same replicates, and progress still adds up
    to B."""
    monkeypatch.setattr(sc_eval.stats, "WORKER_SILENCE", 1.0)
    models = _models_for_workers()
    monkeypatch.setattr(sc_eval.stats, "_workers", lambda: 1)
    expected = _boot(models)
    monkeypatch.setattr(sc_eval.stats, "_workers", lambda: 2)
    real = PairedBootstrap._part

    def failing(self, n_boot, seed, chunks, part, parts):
        messages = real(self, n_boot, seed, chunks, part, parts)
        yield next(messages)
        if part == 1:
            if how == "dies":
                os._exit(3)
            if how == "hangs":
                time.sleep(60)
            raise RuntimeError("boom")
        yield from messages

    monkeypatch.setattr(PairedBootstrap, "_part", failing)
    progress: list[int] = []
    np.testing.assert_array_equal(_boot(models, progress), expected)
    assert len(forking) == 2 and sum(progress) == 40


@linux_only
def test_ctrl_c_ends_the_workers(forking, monkeypatch):
    """Ctrl-C while the workers run: it reaches the caller and no worker outlives it."""

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(sc_eval.stats, "wait", interrupted)
    with pytest.raises(KeyboardInterrupt):
        _boot(_models_for_workers())
    assert len(forking) == 2
    _assert_reaped(forking)


def test_forking_needs_a_large_run_and_two_tasks_per_worker(monkeypatch):
    """Small runs, few samples and too few tasks stay on threads (a fork and the
    duplicated draws would cost more than they save); many cores get at most one
    worker per two tasks."""
    monkeypatch.setattr(sc_eval.stats, "_workers", lambda: 2)
    monkeypatch.setattr(sc_eval.stats, "FORK_MIN_SAMPLES", 300)
    models = _models_for_workers()
    one_pair = PairedBootstrap(models[:1], metrics=["aurc"], scores=["s"])
    many = PairedBootstrap(models, metrics=ALL_METRICS)  # 2 model tasks + 4 pairs
    monkeypatch.setattr(sc_eval.stats, "FORK_MIN_WORK", 300 * 6 * 100)
    linux = sys.platform.startswith("linux")
    assert many.forks(100) == linux and many._fork_parts(100) == (2 if linux else 0)
    assert not many.forks(99)  # below the amount of work
    assert not one_pair.forks(10**6)  # one task: nothing to share
    monkeypatch.setattr(sc_eval.stats, "_workers", lambda: 8)
    assert many._fork_parts(10**6) == (3 if linux else 0)  # two tasks per worker at least
    monkeypatch.setattr(sc_eval.stats, "FORK_MIN_SAMPLES", 301)
    assert not many.forks(10**6)  # too few samples
    monkeypatch.setattr(sc_eval.stats, "FORK_MIN_SAMPLES", 300)
    monkeypatch.setattr(sc_eval.stats, "_workers", lambda: 1)
    assert not many.forks(10**6)  # one core


@linux_only
def test_an_error_in_the_progress_callback_reaches_the_caller(forking):
    """Only a worker's failure sends the bootstrap back to threads: the caller's own
    error (a progress callback writing to a closed pipe, say) is raised as such."""
    calls = []

    def progress(size: int) -> None:
        calls.append(size)
        if len(calls) == 2:
            raise BrokenPipeError("progress")

    with pytest.raises(BrokenPipeError, match="progress"):
        bootstrap_metrics(_models_for_workers(), metrics=ALL_METRICS, n_boot=40, progress=progress)
    assert len(forking) == 2 and len(calls) == 2
    _assert_reaped(forking)


@linux_only
def test_forked_from_a_thread_without_falling_back(forking, monkeypatch):
    """A bootstrap started from a thread that is not the main one still runs in the
    workers (no signal set-up error sends it back to threads)."""
    models = _models_for_workers()
    expected = _boot(models)

    monkeypatch.setattr(PairedBootstrap, "_threads", _no_threads)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        np.testing.assert_array_equal(pool.submit(_boot, models).result(), expected)
    assert len(forking) == 4


@linux_only
def test_workers_die_with_a_killed_parent(tmp_path):
    """SIGKILL of the parent (the OOM killer, say): its workers do not live on."""
    pids = tmp_path / "pids"
    script = f"""
import sys, time
sys.path.insert(0, {str(Path(__file__).parent)!r})
import numpy as np
import sc_eval.stats as st
from test_stats import _models_for_workers, ALL_METRICS
st.FORK_MIN_WORK = st.FORK_MIN_SAMPLES = 0
st._workers = lambda: 2
fork = st._fork
def recorded():
    pid = fork()
    if pid > 0:
        with open({str(pids)!r}, "a") as f:
            f.write(f"{{pid}}\\n")
    return pid
st._fork = recorded
real = st.PairedBootstrap._part
def slow(self, *args):
    for message in real(self, *args):
        time.sleep(0.2)
        yield message
st.PairedBootstrap._part = slow
st.bootstrap_metrics(_models_for_workers(), metrics=ALL_METRICS, n_boot=4000)
"""
    parent = subprocess.Popen([sys.executable, "-c", script])
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (not pids.exists() or len(pids.read_text().split()) < 2):
        time.sleep(0.1)
    workers = [int(p) for p in pids.read_text().split()]
    assert len(workers) == 2
    parent.kill()
    parent.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(Path(f"/proc/{p}").exists() for p in workers):
        time.sleep(0.1)
    alive = [p for p in workers if Path(f"/proc/{p}").exists()]
    for p in alive:
        os.kill(p, 9)
    assert not alive


@linux_only
def test_a_property_computed_in_another_thread_does_not_stall_the_workers(forking, monkeypatch):
    """A thread inside a cached property at the fork: the workers do not wait for it
    (functools.cached_property held a per-class lock before Python 3.12, which would
    stay held in the workers for good)."""
    models = _models_for_workers()
    expected = _boot(models)
    started, release = threading.Event(), threading.Event()
    original = ResampledBlocks.risk_sum.func

    def slow(self):
        if threading.current_thread() is not threading.main_thread():
            started.set()
            release.wait(30)
        return original(self)

    prop = lazy(slow)
    prop.__set_name__(ResampledBlocks, "risk_sum")
    monkeypatch.setattr(ResampledBlocks, "risk_sum", prop)
    sorted_scores = sort_scores(np.arange(5.0), np.arange(5) % 2 == 0)
    busy = sorted_scores.resample(np.ones((1, 5), dtype=np.int64))
    thread = threading.Thread(target=lambda: busy.risk_sum)
    thread.start()
    assert started.wait(10)
    monkeypatch.setattr(sc_eval.stats, "WORKER_SILENCE", 5.0)

    monkeypatch.setattr(PairedBootstrap, "_threads", _no_threads)
    try:
        np.testing.assert_array_equal(_boot(models), expected)
    finally:
        release.set()
        thread.join()


@linux_only
def test_ctrl_c_during_a_fork_leaves_no_worker(forking, monkeypatch):
    """Ctrl-C arriving while a worker is forked (signals are blocked across the fork
    and handled right after): the new worker, which the caller never saw, is ended
    and reaped too."""
    real_fork, pids = os.fork, []

    def fork() -> int:
        pid = real_fork()
        if pid > 0:
            pids.append(pid)
            if len(pids) == 2:
                os.kill(os.getpid(), signal.SIGINT)  # pending until the mask is restored
        return pid

    monkeypatch.setattr(os, "fork", fork)
    with pytest.raises(KeyboardInterrupt):
        _boot(_models_for_workers())
    assert len(pids) == 2
    _assert_reaped(pids)


@linux_only
def test_workers_run_with_the_standard_streams_closed(tmp_path):
    """A service started with fds 0-2 closed: the pipes get those numbers, and the
    workers must not write over their own pipe when they point stdio at /dev/null."""
    out = tmp_path / "out"
    script = f"""
import os, sys
sys.path.insert(0, {str(Path(__file__).parent)!r})
import numpy as np
import sc_eval.stats as st
from test_stats import _models_for_workers, ALL_METRICS
st.FORK_MIN_WORK = st.FORK_MIN_SAMPLES = 0
st._workers = lambda: 2
def no_threads(*args, **kwargs):
    raise AssertionError("fell back to threads")
models = _models_for_workers()
expected = st.bootstrap_metrics(models, metrics=ALL_METRICS, n_boot=40).values
st.PairedBootstrap._threads = no_threads
for fd in (0, 1, 2):
    os.close(fd)
got = st.bootstrap_metrics(models, metrics=ALL_METRICS, n_boot=40).values
with open({str(out)!r}, "w") as f:
    f.write("same" if np.array_equal(got, expected) else "different")
"""
    subprocess.run([sys.executable, "-c", script], timeout=120, check=False)
    assert out.read_text() == "same"
