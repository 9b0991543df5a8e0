"""Paired-bootstrap benchmark (issue 4): sort once vs re-sort every resample.

    python benchmarks/bootstrap.py            # N = 50,000, B = 1,000
    python benchmarks/bootstrap.py --n 5000 --boot 200   # a quick smoke run

Two models (a sharper "CE-like" one and a noisier "LS-like" one) on the same
N samples, score ``msp``, paired ΔAURC = AURC(B) - AURC(A) on B resamples:

* **ours** — :class:`sc_eval.stats.PairedBootstrap`: each score sorted once;
  every resample is a multinomial count vector, applied to both models in
  O(n) (closed-form tie-aware AURC over the re-weighted tie blocks);
* **baseline** — the naive loop: draw the resampled indices, gather both
  models' keys and errors, sort again (``sort_scores``) and compute the
  tie-aware AURC from the curve, every resample.

Both use the same random draws (same seed, same indices) and must give the
same ΔAURC replicates (checked to 1e-9). The two loops run interleaved in
chunks, so a busy machine slows both alike. Exits 1 if the ratio is < 10.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time

import numpy as np

from sc_eval.curves import sort_scores
from sc_eval.io import predictions_from_arrays
from sc_eval.metrics import CONVENTIONS, Curves
from sc_eval.pipeline import ScoredSamples, score_samples
from sc_eval.stats import PairedBootstrap, bootstrap_rng, paired_difference

TARGET = 10.0


def make_models(n: int, c: int, seed: int) -> tuple[ScoredSamples, ScoredSamples]:
    """Two synthetic models on the same labels: accurate-ish CE, noisier LS-like."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, c, n)
    out = []
    for boost, noise in ((3.0, 1.0), (3.4, 1.6)):
        z = rng.standard_normal((n, c)).astype(np.float32) * noise
        z[np.arange(n), labels] += rng.gamma(2.0, boost / 2, n).astype(np.float32)
        preds = predictions_from_arrays(z, labels)
        out.append(score_samples(preds, scores=["msp"]))
    return out[0], out[1]


def naive_aurc(key: np.ndarray, errors: np.ndarray, idx: np.ndarray) -> float:
    """Re-sort the resampled data and take the tie-aware mean AURC."""
    curves = Curves(sort_scores(key[idx], errors[idx]))
    return CONVENTIONS["mean"].aurc(curves)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--n", type=int, default=50_000, help="samples (default 50,000)")
    ap.add_argument("--boot", type=int, default=1_000, help="resamples B (default 1,000)")
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--chunks", type=int, default=10, help="interleaved timing chunks")
    args = ap.parse_args(argv)
    n, n_boot = args.n, args.boot

    a, b = make_models(n, args.classes, args.seed)
    models = [(m.keys["msp"], m.errors) for m in (a, b)]

    t0 = time.perf_counter()
    boot = PairedBootstrap([a, b], metrics=["aurc"], scores=["msp"])
    t_setup = time.perf_counter() - t0

    rng_fast, rng_naive = bootstrap_rng(args.seed), bootstrap_rng(args.seed)
    fast = np.empty(n_boot)
    naive = np.empty(n_boot)
    t_fast = t_naive = 0.0
    bounds = np.linspace(0, n_boot, args.chunks + 1).astype(int)
    for lo, hi in itertools.pairwise(bounds):
        t0 = time.perf_counter()
        for r in range(lo, hi):
            counts = np.bincount(rng_fast.integers(0, n, size=n), minlength=n)
            v = boot.replicate(counts)
            fast[r] = v[1, 0, 0] - v[0, 0, 0]
        t1 = time.perf_counter()
        for r in range(lo, hi):
            idx = rng_naive.integers(0, n, size=n)
            naive[r] = naive_aurc(*models[1], idx) - naive_aurc(*models[0], idx)
        t_fast += t1 - t0
        t_naive += time.perf_counter() - t1
    t_fast += t_setup

    worst = float(np.max(np.abs(fast - naive)))
    est = CONVENTIONS["mean"].aurc(Curves(sort_scores(*models[1]))) - CONVENTIONS["mean"].aurc(
        Curves(sort_scores(*models[0]))
    )
    d_fast = paired_difference(fast, estimate=est)
    d_naive = paired_difference(naive, estimate=est)
    ratio = t_naive / t_fast

    rows = [
        ("figure", "ours", "baseline", "ratio"),
        (f"paired ΔAURC, N={n:,}, B={n_boot:,}: total (s)", f"{t_fast:.2f}", f"{t_naive:.2f}", ""),
        (
            "per resample, both models (ms)",
            f"{1e3 * t_fast / n_boot:.3f}",
            f"{1e3 * t_naive / n_boot:.3f}",
            f"{ratio:.1f}x",
        ),
        ("one-off sort of both scores (s)", f"{t_setup:.3f}", "-", ""),
        (
            "ΔAURC (%) and 95% interval",
            f"{100 * est:+.3f} [{100 * d_fast.low:+.3f}, {100 * d_fast.high:+.3f}]",
            f"{100 * est:+.3f} [{100 * d_naive.low:+.3f}, {100 * d_naive.high:+.3f}]",
            "",
        ),
        ("max |Δ replicate difference|", f"{worst:.1e}", "", ""),
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for i, r in enumerate(rows):
        print(
            " | ".join(
                c.ljust(w) if j == 0 else c.rjust(w)
                for j, (c, w) in enumerate(zip(r, widths, strict=True))
            )
        )
        if i == 0:
            print("-|-".join("-" * w for w in widths))
    print(f"target: ratio >= {TARGET:g}x; p-value of ΔAURC: {d_fast.p_value:.3g}")

    if worst > 1e-9:
        print(f"FAIL: fast and naive replicates differ by {worst:.3g}", file=sys.stderr)
        return 1
    if ratio < TARGET:
        print(f"FAIL: ratio {ratio:.1f}x is below the {TARGET:g}x target", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
