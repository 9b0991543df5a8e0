"""Performance targets of issue 8, each a ratio measured in one run.

    python benchmarks/perf.py              # P1, P3, P4, P6
    python benchmarks/perf.py --only P1 P3 # a subset
    python benchmarks/perf.py --quick      # smaller P4 file (for a smoke run)

P1  `sc-eval score` on a 50k x 1000 float32 safetensors file (all default scores
    and metrics) vs a minimal script that only loads the file, computes one
    softmax and one argsort.                                 target: <= 2.0x
P3  `sc-eval --help` vs `python -c "import typer"`; `-X importtime` shows no
    torch, sklearn or matplotlib.                            target: <= 2.0x
P4  peak RSS of `sc-eval score` on a 1,000,000 x 1000 float32 file (4 GB)
    vs the file size.                                        target: <= 0.25x
P6  torch-uncertainty 0.13 AURC + AUGRC + RiskAt80Cov on 50k samples vs
    sc-eval's (same metrics, torch-uncertainty convention);  target: >= 5x faster,
    and the same AURC on tie-free data. torch-uncertainty is installed only
    in this benchmark's own venv (benchmarks/.venv-tu), never in the project.

Every benchmark generates its own data under a temporary directory. Times are
the best of --repeat runs of fresh processes (interpreter start included on
both sides). Exits 1 if any target is missed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
SC_EVAL = [PY, "-m", "sc_eval"]
TU_VENV = ROOT / "benchmarks" / ".venv-tu"


def best_time(cmd: list[str], repeat: int, **kw: object) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, **kw)  # type: ignore[call-overload]
        best = min(best, time.perf_counter() - t0)
    return best


def realistic_logits(rng: np.random.Generator, n: int, c: int) -> tuple[np.ndarray, np.ndarray]:
    """Logits of a ~75%-accurate classifier with a spread of confidence."""
    labels = rng.integers(0, c, n)
    z = rng.standard_normal((n, c), dtype=np.float32)
    boost = rng.gamma(2.0, 2.0, n).astype(np.float32)
    z[np.arange(n), labels] += boost
    z *= rng.uniform(0.5, 3.0, (n, 1)).astype(np.float32)
    return z, labels


def write_safetensors_streaming(path: Path, n: int, c: int, seed: int, rows: int = 50_000) -> None:
    """Write an [n, c] float32 logits file chunk by chunk (never all in memory)."""
    rng = np.random.default_rng(seed)
    labels = np.empty(n, dtype=np.int64)
    logits_bytes = n * c * 4
    header = {
        "__metadata__": {"format": "sc-eval/predictions", "version": "1"},
        "labels": {"dtype": "I64", "shape": [n], "data_offsets": [0, n * 8]},
        "logits": {
            "dtype": "F32",
            "shape": [n, c],
            "data_offsets": [n * 8, n * 8 + logits_bytes],
        },
    }
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(raw)))
        f.write(raw)
        f.write(b"\0" * (n * 8))  # labels, patched below
        for start in range(0, n, rows):
            m = min(rows, n - start)
            z, y = realistic_logits(rng, m, c)
            labels[start : start + m] = y
            f.write(np.ascontiguousarray(z).tobytes())
        f.seek(8 + len(raw))
        f.write(labels.tobytes())


# --------------------------------------------------------------------------- P1
BASELINE_P1 = """
import sys, numpy as np
from safetensors.numpy import load_file
d = load_file(sys.argv[1])
z = d["logits"]
e = np.exp(z - z.max(axis=1, keepdims=True))
p = e / e.sum(axis=1, keepdims=True)
order = np.argsort(-p.max(axis=1))
"""


def bench_p1(tmp: Path, repeat: int) -> dict[str, object]:
    path = tmp / "p1.safetensors"
    write_safetensors_streaming(path, 50_000, 1000, seed=1)
    ours = best_time([*SC_EVAL, "score", str(path)], repeat)
    base = best_time([PY, "-c", BASELINE_P1, str(path)], repeat)
    return {
        "figure": "P1 score 50k x 1000 (s)",
        "ours": ours,
        "baseline": base,
        "ratio": ours / base,
        "target": "<= 2.0",
        "ok": ours / base <= 2.0,
    }


# --------------------------------------------------------------------------- P3
def bench_p3(tmp: Path, repeat: int) -> list[dict[str, object]]:
    ours = best_time([*SC_EVAL, "--help"], max(repeat, 5))
    base = best_time([PY, "-c", "import typer"], max(repeat, 5))
    out = subprocess.run(
        [PY, "-X", "importtime", "-m", "sc_eval", "--help"],
        capture_output=True,
        text=True,
        check=True,
    ).stderr
    heavy = sorted(
        {
            m
            for m in ("torch", "sklearn", "matplotlib")
            if any(line.split("|")[-1].strip() == m for line in out.splitlines())
        }
    )
    with tempfile.TemporaryDirectory() as d:
        f = Path(d) / "x.npz"
        z, y = realistic_logits(np.random.default_rng(0), 100, 5)
        np.savez(f, logits=z, labels=y)
        probe = (
            f"import sys, runpy; sys.argv=['sc-eval','score',{str(f)!r}];\n"
            "try:\n runpy.run_module('sc_eval', run_name='__main__')\n"
            "except SystemExit: pass\n"
            "print('TORCH' if 'torch' in sys.modules else 'NOTORCH', file=sys.stderr)"
        )
        r = subprocess.run([PY, "-c", probe], capture_output=True, text=True)
        torch_on_score = "NOTORCH" not in r.stderr
    return [
        {
            "figure": "P3 --help (s)",
            "ours": ours,
            "baseline": base,
            "ratio": ours / base,
            "target": "<= 2.0",
            "ok": ours / base <= 2.0,
        },
        {
            "figure": "P3 heavy imports in --help",
            "ours": ", ".join(heavy) or "none",
            "baseline": "-",
            "ratio": "-",
            "target": "none",
            "ok": not heavy,
        },
        {
            "figure": "P3 torch imported by score on .npz",
            "ours": str(torch_on_score).lower(),
            "baseline": "-",
            "ratio": "-",
            "target": "false",
            "ok": not torch_on_score,
        },
    ]


# --------------------------------------------------------------------------- P4
RSS_PROBE = """
import resource, subprocess, sys, time
t0 = time.perf_counter()
subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024, time.perf_counter() - t0)
"""


def bench_p4(tmp: Path, quick: bool) -> dict[str, object]:
    n = 100_000 if quick else 1_000_000
    path = tmp / "p4.safetensors"
    write_safetensors_streaming(path, n, 1000, seed=4)
    size = path.stat().st_size
    out = subprocess.run(
        [PY, "-c", RSS_PROBE, *SC_EVAL, "score", str(path)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    rss, secs = int(out[0]), float(out[1])
    path.unlink()
    return {
        "figure": f"P4 peak RSS, {n:,} x 1000 ({size / 2**30:.2f} GiB file, {secs:.0f} s)",
        "ours": f"{rss / 2**20:.0f} MiB",
        "baseline": f"{size / 2**20:.0f} MiB",
        "ratio": rss / size,
        "target": "<= 0.25",
        "ok": rss / size <= 0.25,
    }


# --------------------------------------------------------------------------- P6
TU_WORKER = """
import json, sys, time, types, importlib.abc, importlib.machinery
import numpy as np, torch

# torch_uncertainty's package __init__ imports torchvision for its plotting helpers; PyPI's
# torchvision does not load beside the local torch build, and the risk-coverage metrics never
# call it. Serve empty placeholder modules for torchvision.* (in this worker process only).
class _NoTorchvision(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, name, path, target=None):
        if name == "torchvision" or name.startswith("torchvision."):
            return importlib.machinery.ModuleSpec(name, self, is_package=True)
    def create_module(self, spec):
        m = types.ModuleType(spec.name)
        m.__path__ = []
        def placeholder(attr):
            if attr.startswith("__"):
                raise AttributeError(attr)
            return type(attr, (), {})
        m.__getattr__ = placeholder
        return m
    def exec_module(self, module):
        pass

sys.meta_path.insert(0, _NoTorchvision())
from torch_uncertainty.metrics.classification import AURC, AUGRC, RiskAt80Cov
sys.path.insert(0, sys.argv[1])
from sc_eval.metrics import selective_metrics
rng = np.random.default_rng(6)
n, c = 50_000, 100
z = rng.standard_normal((n, c)) ; y = rng.integers(0, c, n)
z[np.arange(n), y] += rng.gamma(2.0, 1.5, n)
probs = torch.softmax(torch.tensor(z), dim=1)
targets = torch.tensor(y)
conf = probs.max(dim=1).values.numpy().astype(np.float64)
errors = (probs.argmax(dim=1) != targets).numpy()
assert np.unique(conf).size == n, "need tie-free data"

def run_tu():
    ms = [AURC(), AUGRC(), RiskAt80Cov()]
    for m in ms:
        m.update(probs, targets)
    return [float(m.compute()) for m in ms]

def run_ours():
    return selective_metrics(conf, errors, metrics=["aurc", "augrc", "risk@cov=0.8"],
                             convention="torch-uncertainty")

def best(f, k=7):
    t = float("inf")
    for _ in range(k):
        t0 = time.perf_counter(); out = f(); t = min(t, time.perf_counter() - t0)
    return t, out

t_tu, tu = best(run_tu)
t_ours, ours = best(run_ours)
print(json.dumps({"tu": t_tu, "ours": t_ours, "tu_aurc": tu[0], "ours_aurc": ours["aurc"],
                  "tu_augrc": tu[1], "tu_risk80": tu[2], "ours_risk80": ours["risk@cov=0.8"]}))
"""


def ensure_tu_venv() -> Path:
    py = TU_VENV / "bin" / "python"
    if py.exists():
        return py
    subprocess.run([PY, "-m", "venv", str(TU_VENV)], check=True)
    pip = [str(py), "-m", "pip", "install", "-q"]
    subprocess.run([*pip, "torch==2.13.0"], check=True)
    subprocess.run(
        [
            *pip,
            "torch-uncertainty==0.13.0",
            "torchmetrics",
            "lightning",
            "einops",
            "seaborn",
            "numpy",
            "typer",
            "rich",
            "safetensors",
        ],
        check=True,
    )
    return py


def bench_p6() -> list[dict[str, object]]:
    py = ensure_tu_venv()
    r = subprocess.run([str(py), "-c", TU_WORKER, str(ROOT)], capture_output=True, text=True)
    if r.returncode:
        raise SystemExit(f"P6 worker failed:\n{r.stderr[-3000:]}")
    d = json.loads(r.stdout.strip().splitlines()[-1])
    same = abs(d["tu_aurc"] - d["ours_aurc"]) <= 1e-6
    return [
        {
            "figure": "P6 AURC+AUGRC+risk@80 on 50k (s)",
            "ours": d["ours"],
            "baseline": d["tu"],
            "ratio": d["tu"] / d["ours"],
            "target": ">= 5 (speed-up)",
            "ok": d["tu"] / d["ours"] >= 5,
        },
        {
            "figure": "P6 AURC ours vs torch-uncertainty",
            "ours": f"{d['ours_aurc']:.9f}",
            "baseline": f"{d['tu_aurc']:.9f}",
            "ratio": f"{abs(d['tu_aurc'] - d['ours_aurc']):.1e}",
            "target": "abs. diff <= 1e-6",
            "ok": same,
        },
    ]


# --------------------------------------------------------------------------- main
def fmt(v: object) -> str:
    return f"{v:.3f}" if isinstance(v, float) else str(v)


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--only", nargs="*", default=["P1", "P3", "P4", "P6"])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="100k-row P4 file instead of 1M")
    args = ap.parse_args()
    rows: list[dict[str, object]] = []
    tmp = Path(tempfile.mkdtemp(prefix="sc-eval-bench-"))
    try:
        if "P1" in args.only:
            rows.append(bench_p1(tmp, args.repeat))
        if "P3" in args.only:
            rows += bench_p3(tmp, args.repeat)
        if "P4" in args.only:
            rows.append(bench_p4(tmp, args.quick))
        if "P6" in args.only:
            rows += bench_p6()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(
        f"machine: {os.cpu_count()} cores, python {sys.version.split()[0]}, numpy {np.__version__}"
    )
    print("| figure | ours | baseline | ratio | target | met |")
    print("|---|---:|---:|---:|---|---|")
    for r in rows:
        print(
            f"| {r['figure']} | {fmt(r['ours'])} | {fmt(r['baseline'])} | {fmt(r['ratio'])} "
            f"| {r['target']} | {'yes' if r['ok'] else 'NO'} |"
        )
    return 0 if all(r["ok"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
