"""The README's command examples run as written (on generated files of the same names)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from sc_eval.cli import app
from sc_eval.io import write_predictions

README = Path(__file__).resolve().parent.parent / "README.md"

# commands that need checkpoints, training or torchrun are exercised by their own tests
SKIP = ("sc-eval demo", "sc-eval infer", "--data", "torchrun")


def readme_commands() -> list[str]:
    text = README.read_text(encoding="utf-8")
    blocks = re.findall(r"```bash\n(.*?)```", text, flags=re.S)
    cmds = []
    for block in blocks:
        for line in block.splitlines():
            line = line.split("  #")[0].strip()
            if line.startswith("sc-eval ") and not any(s in line for s in SKIP):
                cmds.append(line)
    return cmds


def _preds(rng: np.random.Generator, y: np.ndarray, sharp: float) -> np.ndarray:
    z = rng.normal(size=(y.size, 10))
    z[np.arange(y.size), y] += rng.normal(2.5, 1.5, y.size)
    return (z * sharp).astype(np.float32)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("readme")
    rng = np.random.default_rng(0)
    n = 3000
    y = rng.integers(0, 10, n)
    index = np.arange(n)
    domain = rng.integers(0, 3, n)
    for name, sharp in [("preds", 1.0), ("ce", 1.0), ("ls", 0.7), ("new", 1.1), ("old", 1.0)]:
        write_predictions(
            d / f"{name}.safetensors", logits=_preds(rng, y, sharp), labels=y, index=index
        )
    # a grouping key stored in the file
    from safetensors.numpy import save_file

    save_file(
        {"logits": _preds(rng, y, 1.0), "labels": y, "domain": domain}, str(d / "preds.safetensors")
    )
    z = _preds(rng, y, 1.0)
    np.savez(d / "preds.npz", logits=z, labels=y)
    torch.save({"logits": torch.from_numpy(z), "labels": torch.from_numpy(y)}, d / "preds2.pt")
    for name, sharp in (("mixed", 1.0), ("mixed_ls", 0.7)):  # test sets with OOD samples
        write_predictions(
            d / f"{name}.safetensors", logits=_preds(rng, y, sharp), labels=y, ood=domain == 2
        )
    for name in ("cal", "test", "val"):
        yy = rng.integers(0, 10, 4000)
        write_predictions(d / f"{name}.safetensors", logits=_preds(rng, yy, 1.0), labels=yy)
    return d


def test_readme_has_the_documented_commands():
    cmds = readme_commands()
    for verb in ("score", "compare", "gate", "threshold"):
        assert any(c.startswith(f"sc-eval {verb} ") for c in cmds), verb
    assert len(cmds) >= 20


def test_readme_commands_run(workdir, monkeypatch):
    monkeypatch.chdir(workdir)
    runner = CliRunner(env={"NO_COLOR": "1", "GITHUB_STEP_SUMMARY": ""})
    for cmd in readme_commands():
        args = shlex.split(cmd)[1:]
        result = runner.invoke(app, args)
        allowed = (0, 1) if args[0] in ("gate", "threshold") else (0,)
        assert result.exit_code in allowed, f"{cmd}\n{result.output}"
        assert "Traceback" not in result.output, cmd
