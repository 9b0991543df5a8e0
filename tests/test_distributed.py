"""A real 2-process ``torchrun`` (gloo, CPU) gives the single-process predictions file."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from nets import IN_FEATURES, MLP, trained
from safetensors import safe_open

ROOT = Path(__file__).resolve().parent.parent
N = 37  # not a multiple of the world size (2) nor of the batch size (4)

pytest.importorskip("torch.distributed")
if not torch.distributed.is_available():  # pragma: no cover
    pytest.skip("torch.distributed is not available", allow_module_level=True)


def _launcher() -> list[str]:
    exe = Path(sys.executable).with_name("torchrun")
    if exe.is_file():
        return [str(exe)]
    found = shutil.which("torchrun")
    return [found] if found else [sys.executable, "-m", "torch.distributed.run"]


def _read(path: Path) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    with safe_open(str(path), framework="np") as f:
        return {k: f.get_tensor(k) for k in f.keys()}, dict(f.metadata())  # noqa: SIM118


def test_torchrun_two_processes_equal_one_process(tmp_path):
    g = torch.Generator().manual_seed(3)
    x = torch.randn(N, IN_FEATURES, generator=g)
    y = torch.randint(0, 4, (N,), generator=g)
    data = tmp_path / "data.npz"
    np.savez(data, inputs=x.numpy(), labels=y.numpy(), index=np.arange(N)[::-1] * 3)
    ckpt = tmp_path / "weights.pth"
    torch.save({"state_dict": trained(MLP(), seed=8).state_dict()}, ckpt)
    args = ["infer", str(ckpt), "--data", str(data), "-b", "4", "--no-progress",
            "--arch", "tests.nets:build_mlp"]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    env.pop("WORLD_SIZE", None)
    one = tmp_path / "one.safetensors"
    two = tmp_path / "two.safetensors"
    single = subprocess.run(
        [sys.executable, "-m", "sc_eval", *args, "--out", str(one)],
        capture_output=True, text=True, cwd=ROOT, env=env, timeout=120,
    )  # fmt: skip
    assert single.returncode == 0, single.stderr
    launch = [*_launcher(), "--standalone", "--nproc-per-node", "2", "-m", "sc_eval"]
    multi = subprocess.run(
        [*launch, *args, "--out", str(two)],
        capture_output=True, text=True, cwd=ROOT, env=env, timeout=180,
    )  # fmt: skip
    assert multi.returncode == 0, multi.stderr[-3000:]
    assert multi.stderr.count("sc-eval: wrote") == 1  # only rank 0 prints
    (t1, m1), (t2, m2) = _read(one), _read(two)
    assert set(t1) == set(t2) == {"logits", "labels", "index"}
    np.testing.assert_array_equal(t2["index"], np.arange(N)[::-1] * 3)
    np.testing.assert_array_equal(t2["labels"], y.numpy())
    np.testing.assert_array_equal(t1["index"], t2["index"])
    assert t2["logits"].dtype == np.float32 and t2["logits"].shape == (N, 4)
    np.testing.assert_allclose(t2["logits"], t1["logits"], rtol=0, atol=1e-6)
    assert m1 == m2
