"""Bootstrap benchmark (issues 4 and 15): the batched fast path against re-sorting.

    python benchmarks/bootstrap.py                     # the two targets below
    python benchmarks/bootstrap.py --boot 200 --n 5000 --n-all 5000   # a quick smoke run

Two figures, each measured in one run against a naive baseline in the same
process (as issue 15 defines it): for every resample draw the indices, gather
the keys and errors, sort again with a stable argsort, and take the tie-aware
AURC from the cumulative errors. For reference the same loop with the
library's own sort (``sort_scores``: quicksort plus a tie fix-up, about twice
as fast as a stable argsort) is timed too and reported beside it; the targets
apply to the first.

* **P2, paired ΔAURC** — two models on the same N = 50,000 samples (a
  sharper "CE-like" and a noisier "LS-like" one), score ``msp``, AURC only,
  B = 1,000: :class:`sc_eval.stats.PairedBootstrap` against the naive loop on
  both models. Target: **>= 10x**.
* **everything of one model** — one realistic 20,000 x 100 model, all default
  scores, model metrics and selective metrics (coverages and risks included),
  B = 1,000, against the naive loop for **one** score's AURC. Target: the
  whole bootstrap takes no longer than that one naive AURC (ratio >= 1, i.e.
  >= 8x per score).

Both use the same random draws (the same seed, hence the same indices) and
must give the same AURC replicates (checked to 1e-9). Ours runs as
``sc-eval`` runs it (chunks of resamples, setup and drawing included); the two
loops alternate in segments, so a busy machine slows both alike. A segment of
B/10 resamples stays on threads; the whole B in one run (forked workers on
Linux) is timed after the race, for reference.

* **the command** — ``sc-eval score FILE --bootstrap 1000`` on that model,
  written to a temporary file, in fresh processes (``--cli-runs``, default
  5). Target: median wall time **under 3 s**.

Exits 1 when a target is missed or the replicates differ.
"""

from __future__ import annotations

import argparse
import itertools
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

from perf import realistic_logits

from sc_eval.curves import SortedScores, sort_scores
from sc_eval.io import predictions_from_arrays, write_predictions
from sc_eval.metrics import CONVENTIONS, MODEL_METRICS, Curves
from sc_eval.pipeline import EvalOptions, ScoredSamples, evaluate_source
from sc_eval.stats import (
    PairedBootstrap,
    bootstrap_rng,
    chunk_size,
    paired_difference,
)

TARGET_PAIRED = 10.0
TARGET_ALL = 1.0
TARGET_CLI_S = 3.0  # `score --bootstrap 1000` on 20,000 x 100, median wall time


def paired_models(n: int, c: int, seed: int) -> list[ScoredSamples]:
    """Two synthetic models on the same labels: accurate-ish CE, noisier LS-like."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, c, n)
    out = []
    for boost, noise in ((3.0, 1.0), (3.4, 1.6)):
        z = rng.standard_normal((n, c)).astype(np.float32) * noise
        z[np.arange(n), labels] += rng.gamma(2.0, boost / 2, n).astype(np.float32)
        _, scored = evaluate_source(
            predictions_from_arrays(z, labels), EvalOptions(scores=("msp",))
        )
        out.append(scored)
    return out


def naive_aurc(key: np.ndarray, errors: np.ndarray, idx: np.ndarray) -> float:
    """Re-sort the resampled data with a stable argsort; the tie-aware mean AURC."""
    k = key[idx]
    order = np.argsort(-k, kind="stable")
    sk = k[order]
    block_ids = np.r_[0, np.cumsum(sk[1:] != sk[:-1])]
    sorted_scores = SortedScores(order, block_ids, errors[idx][order].astype(np.float64))
    return CONVENTIONS["mean"].aurc(Curves(sorted_scores))


def library_sort_aurc(key: np.ndarray, errors: np.ndarray, idx: np.ndarray) -> float:
    """The same with the library's sort (quicksort and a tie fix-up)."""
    return CONVENTIONS["mean"].aurc(Curves(sort_scores(key[idx], errors[idx])))


def race(
    ours: Callable[[int, int], np.ndarray],
    naive: Callable[[np.ndarray], float],
    library: Callable[[np.ndarray], float],
    *,
    n: int,
    n_boot: int,
    segments: int,
    seed: int,
) -> tuple[list[float], np.ndarray, np.ndarray]:
    """Alternate ``ours(size, seed)``, the naive loop and the library-sort loop segment
    by segment, on the same draws; returns the three times and ours' and the naive
    replicates."""
    fast = np.empty(n_boot)
    slow = np.empty(n_boot)
    times = [0.0, 0.0, 0.0]
    bounds = np.linspace(0, n_boot, segments + 1).astype(int)
    for s, (lo, hi) in enumerate(itertools.pairwise(bounds)):
        t0 = time.perf_counter()
        fast[lo:hi] = ours(hi - lo, seed + s)
        t1 = time.perf_counter()
        rng = bootstrap_rng(seed + s)
        draws = [rng.integers(0, n, size=n) for _ in range(lo, hi)]
        t2 = time.perf_counter()
        for r, idx in zip(range(lo, hi), draws, strict=True):
            slow[r] = naive(idx)
        t3 = time.perf_counter()
        for idx in draws:
            library(idx)
        t4 = time.perf_counter()
        draw = t2 - t1  # both loops draw the same indices: each pays for them
        times[0] += t1 - t0
        times[1] += t3 - t2 + draw
        times[2] += t4 - t3 + draw
    return times, fast, slow


def table(rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for i, r in enumerate(rows):
        cells = (
            c.rjust(w) if j else c.ljust(w) for j, (c, w) in enumerate(zip(r, widths, strict=True))
        )
        print(" | ".join(cells))
        if i == 0:
            print("-|-".join("-" * w for w in widths))


def cli_wall(z: np.ndarray, y: np.ndarray, n_boot: int, runs: int) -> list[float]:
    """Wall time of ``sc-eval score FILE --bootstrap B`` in fresh processes, on the
    model written to a temporary predictions file: one run to warm the disk cache
    and write bytecode (even where PYTHONDONTWRITEBYTECODE is set, as installed
    packages have theirs), then ``runs`` timed ones."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "preds.safetensors"
        write_predictions(path, labels=y, logits=z)
        cmd = [sys.executable, "-m", "sc_eval", "score", str(path), "--bootstrap", str(n_boot)]
        times = []
        for i in range(runs + 1):
            t0 = time.perf_counter()
            subprocess.run(cmd, stdout=subprocess.DEVNULL, env=env, check=True)
            if i:
                times.append(time.perf_counter() - t0)
    return sorted(times)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--n", type=int, default=50_000, help="samples of the paired figure")
    ap.add_argument("--n-all", type=int, default=20_000, help="samples of the all-scores figure")
    ap.add_argument("--classes", type=int, default=100, help="classes of the all-scores model")
    ap.add_argument("--boot", type=int, default=1_000, help="resamples B (default 1,000)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--segments", type=int, default=10, help="alternating timing segments")
    ap.add_argument(
        "--cli-runs", type=int, default=5, help="timed `sc-eval score --bootstrap` runs (0: skip)"
    )
    args = ap.parse_args(argv)
    n_boot, failures = args.boot, []

    # ---------------------------------------------------------------- P2: paired ΔAURC
    n = args.n
    a, b = paired_models(n, 10, args.seed)
    t0 = time.perf_counter()
    paired = PairedBootstrap([a, b], metrics=["aurc"], scores=["msp"])
    t_setup = time.perf_counter() - t0

    def ours_paired(size: int, seed: int) -> np.ndarray:
        v = paired.run(size, seed=seed).values
        return v[:, 1, 0, 0] - v[:, 0, 0, 0]

    keys = [(m.keys["msp"], m.errors) for m in (a, b)]
    (t_fast, t_slow, t_lib), fast, slow = race(
        ours_paired,
        lambda idx: naive_aurc(*keys[1], idx) - naive_aurc(*keys[0], idx),
        lambda idx: library_sort_aurc(*keys[1], idx) - library_sort_aurc(*keys[0], idx),
        n=n,
        n_boot=n_boot,
        segments=args.segments,
        seed=args.seed,
    )
    t_fast += t_setup
    worst_p = float(np.max(np.abs(fast - slow)))
    est = naive_aurc(*keys[1], np.arange(n)) - naive_aurc(*keys[0], np.arange(n))
    d = paired_difference(fast, estimate=est)
    ratio_p = t_slow / t_fast

    # ---------------------------------------------------------------- all scores, one model
    n_all = args.n_all
    z, y = realistic_logits(np.random.default_rng(args.seed), n_all, args.classes)
    t0 = time.perf_counter()
    ev, scored = evaluate_source(predictions_from_arrays(z, y), EvalOptions())
    t_eval = time.perf_counter() - t0
    names = (*MODEL_METRICS, *ev.metric_names)
    t0 = time.perf_counter()
    everything = PairedBootstrap([scored], metrics=names, scores=tuple(ev.scores))
    t_setup_all = time.perf_counter() - t0
    k_msp = (everything.scores.index("msp"), everything.metrics.index("aurc"))
    key, err = scored.keys["msp"], scored.errors
    (t_all, t_one, t_one_lib), fast_all, slow_all = race(
        lambda size, seed: everything.run(size, seed=seed).values[:, 0, k_msp[0], k_msp[1]],
        lambda idx: naive_aurc(key, err, idx),
        lambda idx: library_sort_aurc(key, err, idx),
        n=n_all,
        n_boot=n_boot,
        segments=args.segments,
        seed=args.seed,
    )
    t_all += t_setup_all
    # the way `score --bootstrap B` runs it: all B at once (forked workers on Linux)
    t0 = time.perf_counter()
    everything.run(n_boot, seed=args.seed)
    t_whole = time.perf_counter() - t0
    forked = everything.forks(n_boot)
    worst_a = float(np.max(np.abs(fast_all - slow_all)))
    ratio_a = t_one / t_all
    n_scores, n_metrics = len(everything.scores), len(everything.metrics)

    table(
        [
            ("figure", "ours", "naive", "ratio", "target", "library sort", "ratio"),
            (
                f"P2 paired ΔAURC, 2 models, N={n:,}, B={n_boot:,} (s)",
                f"{t_fast:.2f}",
                f"{t_slow:.2f}",
                f"{ratio_p:.1f}x",
                f">= {TARGET_PAIRED:g}x",
                f"{t_lib:.2f}",
                f"{t_lib / t_fast:.1f}x",
            ),
            (
                "  per resample, both models (ms)",
                f"{1e3 * t_fast / n_boot:.3f}",
                f"{1e3 * t_slow / n_boot:.3f}",
                "",
                "",
                f"{1e3 * t_lib / n_boot:.3f}",
                "",
            ),
            (
                f"{n_scores} scores x {n_metrics} metrics, {n_all:,}x{args.classes}, "
                f"B={n_boot:,}, vs one score's AURC (s)",
                f"{t_all:.2f}",
                f"{t_one:.2f}",
                f"{ratio_a:.2f}x",
                f">= {TARGET_ALL:g}x",
                f"{t_one_lib:.2f}",
                f"{t_one_lib / t_all:.2f}x",
            ),
            (
                "  per score",
                "",
                "",
                f"{ratio_a * n_scores:.1f}x",
                ">= 8x",
                "",
                f"{t_one_lib / t_all * n_scores:.1f}x",
            ),
        ]
    )
    print(
        f"setup (one sort per score): {t_setup:.3f} s paired, {t_setup_all:.3f} s all scores "
        f"(included); scoring the {n_all:,}-sample model: {t_eval:.2f} s (not included)"
    )
    print(
        f"ΔAURC (%) {100 * est:+.3f} [{100 * d.low:+.3f}, {100 * d.high:+.3f}], "
        f"p = {d.p_value:.3g}; max |ours - naive| replicate: {worst_p:.1e} (paired), "
        f"{worst_a:.1e} (msp AURC)"
    )
    print(
        f"the same {n_scores} scores x {n_metrics} metrics in one run of B={n_boot:,}, as "
        f"`score --bootstrap` runs it ({'forked workers' if forked else 'threads'}): "
        f"{t_whole:.2f} s ({t_one / t_whole:.2f}x the naive loop's one AURC); the race "
        f"above runs {n_boot // args.segments:,} resamples at a time "
        f"({'forked workers' if everything.forks(n_boot // args.segments) else 'threads'})"
    )
    print(
        f"chunks: {chunk_size(n, n_boot)} resamples at N={n:,}, "
        f"{chunk_size(n_all, n_boot)} at N={n_all:,}"
    )
    if args.cli_runs > 0:
        wall = cli_wall(z, y, n_boot, args.cli_runs)
        median = float(np.median(wall))
        accuracy = float(np.mean(np.argmax(z, axis=1) == y))
        issue_case = n_boot == 1_000 and n_all == 20_000 and args.classes == 100
        print(
            f"`sc-eval score FILE --bootstrap {n_boot}`, {n_all:,}x{args.classes} "
            f"({100 * accuracy:.0f} % accuracy), fresh processes: median {median:.2f} s, "
            f"{wall[0]:.2f}-{wall[-1]:.2f} s in {len(wall)} runs"
            + (f" (target < {TARGET_CLI_S:g} s)" if issue_case else "")
        )
        if issue_case and median >= TARGET_CLI_S:
            failures.append(f"`score --bootstrap 1000` took {median:.2f} s (median)")

    if max(worst_p, worst_a) > 1e-9:
        failures.append(f"fast and naive replicates differ by {max(worst_p, worst_a):.3g}")
    if ratio_p < TARGET_PAIRED:
        failures.append(f"paired ratio {ratio_p:.1f}x is below the {TARGET_PAIRED:g}x target")
    if ratio_a < TARGET_ALL:
        failures.append(
            f"all-scores ratio {ratio_a:.2f}x is below {TARGET_ALL:g}x (the bootstrap of "
            "every score takes longer than the naive loop for one AURC)"
        )
    for f in failures:
        print(f"FAIL: {f}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
