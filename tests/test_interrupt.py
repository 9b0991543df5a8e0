"""Ctrl-C during ``sc-eval infer`` (issue 9): exit 130, one line, no half-written file.

A real process runs a deliberately slow network (``slow_net.py``, written into the
test directory); the network touches ``started`` on its first batch, i.e. once the
progress bar is running, and the test then sends SIGINT.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

ROOT = Path(__file__).resolve().parents[1]

SLOW_NET = """
import pathlib, time
import torch
from torch import nn


class SlowNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        pathlib.Path("started").touch()
        time.sleep(0.05)
        return self.fc(x)


def build():
    return SlowNet()
"""


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_sigint_during_infer_leaves_no_file_and_exits_130(tmp_path):
    from safetensors.numpy import save_file

    (tmp_path / "slow_net.py").write_text(SLOW_NET)
    sys.path.insert(0, str(tmp_path))
    try:
        import slow_net

        torch.save(slow_net.build().state_dict(), tmp_path / "slow.pt")
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("slow_net", None)
    n = 4000  # 1000 batches of 4 at 50 ms: far longer than the test waits
    x = np.random.default_rng(0).normal(size=(n, 4)).astype(np.float32)
    save_file({"inputs": x, "labels": np.arange(n) % 3}, str(tmp_path / "data.safetensors"))
    out = tmp_path / "out"
    out.mkdir()
    env = {**os.environ, "NO_COLOR": "1", "PYTHONPATH": os.pathsep.join([str(ROOT), str(tmp_path)])}
    env.pop("SC_EVAL_DEBUG", None)
    cmd = [sys.executable, "-m", "sc_eval", "infer", "slow.pt", "--arch", "slow_net:build",
           "--data", "data.safetensors", "--out", str(out / "preds.safetensors"),
           "--batch-size", "4", "--device", "cpu"]  # fmt: skip
    proc = subprocess.Popen(
        cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 60
        while not (tmp_path / "started").exists():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "inference never started"
            time.sleep(0.05)
        time.sleep(0.3)  # well inside the run
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stdout + stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("sc-eval: error:")]
    assert errors == ["sc-eval: error: interrupted; no output was written"], stderr
    assert lines[-1] == errors[0]
    assert stdout == ""
    assert sorted(p.name for p in out.iterdir()) == [], "a (temporary) output file was left"


@pytest.mark.parametrize("existing", [False, True])
def test_atomic_output_on_interrupt_keeps_the_old_file_and_no_temp(tmp_path, existing):
    from sc_eval.outputs import atomic_output

    target = tmp_path / "result.json"
    if existing:
        target.write_text("previous")
    with pytest.raises(KeyboardInterrupt), atomic_output(target) as tmp:
        tmp.write_text("half a resu")
        raise KeyboardInterrupt
    assert sorted(p.name for p in tmp_path.iterdir()) == (["result.json"] if existing else [])
    if existing:
        assert target.read_text() == "previous"
