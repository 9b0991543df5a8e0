"""Throughput of ``sc-eval infer`` against a bare ``for x, y in loader: model(x)`` loop.

Same process, same model object (loaded once from a TorchScript archive), same
data, same batch size and device. The sc-eval side is the whole library call
behind ``sc-eval infer`` (``sc_eval.infer.infer``): it loads the checkpoint,
opens and hashes the data file, runs the batches under ``inference_mode`` and
writes the predictions file; the bare loop only iterates a ``DataLoader``
over in-memory tensors (the default collate stacks rows one by one). A third
column, for information, slices the in-memory tensor directly
(``model(x[i:i + batch])``, no DataLoader): the compute-bound ceiling. Each
side runs ``--repeats`` times, alternating, after one warm-up; the best run
counts. Exits 1 when sc-eval is below ``--target``
times the bare loop on any case.

Usage::

    python benchmarks/inference.py                 # CPU here; CUDA when available
    python benchmarks/inference.py --device cpu --repeats 5
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from sc_eval.infer import InferOptions, infer, resolve_device


class ConvNet(nn.Module):
    """A small CIFAR-style network: enough compute per batch to be a realistic case."""

    def __init__(self, num_classes: int = 10):
        super().__init__()

        def block(cin: int, cout: int) -> nn.Sequential:
            return nn.Sequential(
                nn.Conv2d(cin, cout, 3, padding=1, bias=False),
                nn.BatchNorm2d(cout),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(2),
            )

        self.features = nn.Sequential(block(3, 32), block(32, 64), block(64, 128))
        self.head = nn.Linear(128, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).mean(dim=(2, 3)))


class MLP(nn.Module):
    """A tiny network: per-batch overhead shows most here."""

    def __init__(self, d: int = 256, num_classes: int = 100):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(d, 512), nn.ReLU(), nn.Linear(512, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


@dataclass(frozen=True)
class Case:
    name: str
    build: Callable[[], nn.Module]
    shape: tuple[int, ...]
    n: int
    batch: int


CASES = (
    Case("convnet 3x32x32", ConvNet, (3, 32, 32), 4096, 256),
    Case("mlp 256-d", MLP, (256,), 65536, 1024),
)


def bare_loop(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int, device) -> float:
    """Seconds for ``for x, y in loader: model(x)`` (the reference)."""
    loader = DataLoader(TensorDataset(x, y), batch_size=batch, pin_memory=device.type == "cuda")
    start = time.perf_counter()
    with torch.inference_mode():
        for xb, _ in loader:
            model(xb.to(device, non_blocking=True))
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def sliced_loop(model: nn.Module, x: torch.Tensor, batch: int, device) -> float:
    """Seconds for ``model(x[i:i + batch])`` over the in-memory tensor (no DataLoader)."""
    start = time.perf_counter()
    with torch.inference_mode():
        for i in range(0, x.shape[0], batch):
            model(x[i : i + batch].to(device, non_blocking=True))
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def sc_eval_infer(ckpt: Path, data: Path, out: Path, opts: InferOptions) -> float:
    """Seconds for the library call behind ``sc-eval infer`` (load, hash, infer, write)."""
    start = time.perf_counter()
    infer(ckpt, data, out=out, options=opts)
    return time.perf_counter() - start


def run_case(case: Case, device_name: str, repeats: int, tmp: Path) -> dict[str, float]:
    torch.manual_seed(0)
    x = torch.randn(case.n, *case.shape)
    y = torch.randint(0, 10, (case.n,))
    data = tmp / f"{case.name.split()[0]}.safetensors"
    save_file({"inputs": x, "labels": y}, str(data))
    ckpt = tmp / f"{case.name.split()[0]}.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.save(torch.jit.script(case.build().eval()), str(ckpt))
        model = torch.jit.load(str(ckpt), map_location="cpu").eval()
    device = resolve_device(device_name)
    model = model.to(device)
    opts = InferOptions(batch_size=case.batch, device=device_name, progress=False)
    out = tmp / "preds.safetensors"
    bare_loop(model, x, y, case.batch, device)  # warm-up
    sc_eval_infer(ckpt, data, out, opts)
    bare, sliced, ours = [], [], []
    for _ in range(repeats):
        bare.append(bare_loop(model, x, y, case.batch, device))
        ours.append(sc_eval_infer(ckpt, data, out, opts))
        sliced.append(sliced_loop(model, x, case.batch, device))
    return {
        "bare": case.n / min(bare),
        "sliced": case.n / min(sliced),
        "sc-eval": case.n / min(ours),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda[:i]")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--target", type=float, default=0.9)
    args = parser.parse_args(argv)
    device = resolve_device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(
        f"device: {device} ({name}), torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, best of {args.repeats}"
    )
    cols = [("case", 16), ("N", 6), ("batch", 5), ("bare loop/s", 11), ("sc-eval/s", 10),
            ("ratio", 5), ("sliced/s", 10), ("vs sliced", 9)]  # fmt: skip
    print("| " + " | ".join(f"{c:>{w}}" for c, w in cols) + " |")
    print("|" + "|".join("-" * (w + 2) for _, w in cols) + "|")
    ok = True
    with tempfile.TemporaryDirectory() as d:
        for case in CASES:
            r = run_case(case, args.device, args.repeats, Path(d))
            ratio = r["sc-eval"] / r["bare"]
            ok &= ratio >= args.target
            cells = [
                case.name,
                case.n,
                case.batch,
                f"{r['bare']:,.0f}",
                f"{r['sc-eval']:,.0f}",
                f"{ratio:.2f}",
                f"{r['sliced']:,.0f}",
                f"{r['sc-eval'] / r['sliced']:.2f}",
            ]
            row = (f"{c:>{w}}" for c, (_, w) in zip(cells, cols, strict=True))
            print("| " + " | ".join(row) + " |")
    verdict = "PASS" if ok else "FAIL"
    print(f"{verdict}: target sc-eval >= {args.target:g} x bare loop (samples/s, higher is better)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
