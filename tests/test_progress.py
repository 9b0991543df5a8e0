"""Progress bars (sc_eval.progress): stderr only, only on a terminal, after a delay,
never changing what goes to stdout."""

from __future__ import annotations

import time

import numpy as np
import pytest
from conftest import make_logits
from safetensors.numpy import save_file
from typer.testing import CliRunner

from sc_eval import progress
from sc_eval.cli import app


@pytest.fixture
def terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pretend stderr is a terminal (Rich then draws to pytest's captured stderr)."""
    monkeypatch.setattr(progress, "_stderr_is_terminal", lambda: True)
    monkeypatch.setenv("FORCE_COLOR", "1")
    monkeypatch.setenv("TTY_INTERACTIVE", "1")


def test_off_by_default_and_off_without_a_terminal(monkeypatch, capsys):
    with progress.task("bootstrap", 10, unit="resamples", delay=0) as advance:
        advance(10)  # not enabled: nothing
    with progress.enabled(), progress.task("bootstrap", 10, delay=0) as advance:
        time.sleep(0.05)
        advance(10)  # enabled, but stderr is not a terminal under pytest
    assert capsys.readouterr() == ("", "")


def test_bar_on_a_terminal_goes_to_stderr(terminal, capsys):
    with (
        progress.enabled(),
        progress.task("bootstrap", 4, unit="resamples", delay=0) as advance,
    ):
        for _ in range(4):
            time.sleep(0.1)
            advance(1)
    out, shown = capsys.readouterr()
    assert "bootstrap" in shown and "resamples/s" in shown and "4/4" in shown
    assert out == ""


def test_quick_steps_and_nested_tasks_share_one_display(terminal, capsys):
    with progress.enabled():
        with progress.task("quick", 3, delay=5.0) as advance:
            advance(3)  # done before the delay: never shown
        assert capsys.readouterr() == ("", "")
        with progress.task("tuning", 2, unit="scores", delay=0) as outer:
            for name in ("msp-pnorm", "msp-ts"):
                with progress.task(f"tuning {name}", 3, unit="candidates") as inner:
                    time.sleep(0.1)
                    inner(3)
                outer(1)
    out, shown = capsys.readouterr()
    assert "tuning msp-pnorm" in shown and "tuning msp-ts" in shown and out == ""


def test_no_progress_option_and_stdout_unchanged(tmp_path):
    z, y = make_logits(400, 5, seed=1)
    path = tmp_path / "p.safetensors"
    save_file({"logits": z, "labels": y.astype(np.int64)}, str(path))
    runner = CliRunner()
    args = ["score", str(path), "-s", "msp,margin", "--bootstrap", "30", "-f", "json"]
    on = runner.invoke(app, args)
    off = runner.invoke(app, [*args, "--no-progress"])
    assert on.exit_code == off.exit_code == 0, (on.output, off.output)
    assert on.stdout == off.stdout
    assert on.stderr == off.stderr == ""
    for command in ("score", "compare", "gate", "threshold"):
        assert "--no-progress" in runner.invoke(app, [command, "--help"]).stdout
