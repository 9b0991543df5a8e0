"""The CI workflow README shows (docs/examples/sc-eval-gate.yml) is valid and works:
it matches GitHub's workflow schema, README embeds exactly that file, and its sc-eval
steps run as written on files of the same names."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from sc_eval.cli import app

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = ROOT / "docs" / "examples" / "sc-eval-gate.yml"
README = ROOT / "README.md"


def test_readme_embeds_the_workflow_file():
    text = README.read_text(encoding="utf-8")
    blocks = re.findall(r"```yaml\n(.*?)```", text, flags=re.S)
    assert WORKFLOW.read_text(encoding="utf-8") in blocks


def test_workflow_matches_githubs_schema():
    exe = shutil.which("check-jsonschema")
    if exe is None:
        pytest.skip("check-jsonschema is not installed (pip install -e '.[test]')")
    p = subprocess.run(
        [exe, "--builtin-schema", "vendor.github-workflows", str(WORKFLOW)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert p.returncode == 0, p.stdout + p.stderr


def test_workflow_installs_from_the_repository_not_pypi():
    text = WORKFLOW.read_text(encoding="utf-8")
    assert "pip install sc-eval\n" not in text
    assert re.search(r"pip install \"sc-eval @ \$\{SC_EVAL_SOURCE\}\"", text)


def _sc_eval_steps(text: str) -> list[list[str]]:
    """The ``sc-eval`` command lines of the workflow's run steps (continuations joined)."""
    joined = text.replace("\\\n", " ")
    return [
        shlex.split(line.strip().removeprefix("run:").strip())
        for line in joined.splitlines()
        if line.strip().removeprefix("run:").strip().startswith("sc-eval ")
    ]


def test_workflow_steps_run(tmp_path: Path, monkeypatch):
    pytest.importorskip("torch")
    from nets import IN_FEATURES, build_mlp, save_torchscript, trained

    monkeypatch.chdir(tmp_path)
    for d in ("checkpoints", "data", "ci"):
        (tmp_path / d).mkdir()
    save_torchscript(trained(build_mlp(), seed=3), tmp_path / "checkpoints" / "model.pt")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, IN_FEATURES)).astype(np.float32)
    from safetensors.numpy import save_file

    save_file({"inputs": x, "labels": rng.integers(0, 4, 64)}, "data/test.safetensors")
    steps = _sc_eval_steps(WORKFLOW.read_text(encoding="utf-8"))
    assert [s[1] for s in steps] == ["infer", "gate"]
    runner = CliRunner(env={"NO_COLOR": "1", "GITHUB_STEP_SUMMARY": None})
    r = runner.invoke(app, steps[0][1:])
    assert r.exit_code == 0, r.stderr
    # the baseline: the same model's result, recorded as README says
    r = runner.invoke(app, ["score", "new.safetensors", "-s", "msp", "-f", "json", "-o",
                            "ci/baseline.json"])  # fmt: skip
    assert r.exit_code == 0, r.stderr
    r = runner.invoke(app, steps[1][1:])
    assert r.exit_code == 0, r.stdout + r.stderr
    assert (tmp_path / "gate.xml").read_text().startswith("<?xml")
