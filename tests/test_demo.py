"""``sc-eval demo`` (issue 7): the LS phenomenon, its fix, the files, the closing lines."""

from __future__ import annotations

import inspect
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from sc_eval.cli import app
from sc_eval.demo import DemoConfig, DemoSummary, conclusions, make_task, run_demo
from sc_eval.io import load_predictions
from sc_eval.scores import MSP_FALLBACK

PLAIN_ENV = {"NO_COLOR": "1", "FORCE_COLOR": None, "COLUMNS": None, "SC_EVAL_DEBUG": None}

#: A cheaper recipe (about 5 s) that shows the direction of the effect with wide margins.
FAST = DemoConfig(n_train=10_000, n_test=10_000, epochs=20, label_smoothing=0.4)
#: Seconds, not a result: for the plumbing tests.
TINY = DemoConfig(classes=10, n_train=600, n_test=400, hidden=32, epochs=2)


def _aurc(result, model: str, score: str) -> float:
    return result.summary.aurc[(model, score)]


@pytest.fixture(scope="module")
def fast(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    return run_demo(FAST, out=out, progress=False, n_boot=0)


def test_fast_demo_shows_the_direction_of_the_effect(fast):
    # LS ranks errors worse with MSP, and tuned max-logit p-norm repairs the LS model
    assert _aurc(fast, "ls", "msp") > _aurc(fast, "ce", "msp")
    assert _aurc(fast, "ls", "maxlogit-pnorm") < _aurc(fast, "ls", "msp")
    assert not fast.summary.params["ls"].get(MSP_FALLBACK)
    assert fast.summary.n_eval == 9000 and fast.summary.n_tune == 1000


def test_demo_writes_real_checkpoints_and_data(fast):
    import torch
    from safetensors.numpy import load_file

    from sc_eval.models import load_model

    names = sorted(p.name for p in fast.out.iterdir())
    assert names == sorted(p.name for p in fast.files.values())  # and no temporary files
    data = load_file(fast.files["test_data"])
    assert data["inputs"].shape == (10_000, FAST.dim) and data["labels"].shape == (10_000,)
    for model in ("ce", "ls"):
        loaded = load_model(fast.files[f"{model}_model"])
        preds = load_predictions(fast.files[f"{model}_predictions"])
        assert np.array_equal(preds.labels, data["labels"])
        x = torch.from_numpy(data["inputs"][:100])
        with torch.inference_mode():
            z = loaded.module(x).numpy()
        np.testing.assert_allclose(z, preds.values.rows(0, 100), rtol=1e-5, atol=1e-5)


def test_closing_lines_come_from_the_numbers(fast):
    s = fast.summary
    text = "\n".join(fast.lines)
    assert f"{100 * s.acc['ls']:.2f}%" in text and f"{100 * s.acc['ce']:.2f}%" in text
    assert f"{100 * s.aurc[('ls', 'maxlogit-pnorm')]:.2f}%" in text
    assert text.count("In short:") == 1


def test_task_is_seeded():
    a, b = make_task(TINY), make_task(TINY)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    c = make_task(DemoConfig(classes=10, n_train=600, n_test=400, seed=1))
    assert not np.array_equal(a[0], c[0])
    assert a[0].dtype == np.float32 and np.all(np.abs(a[0]) < 1)


def test_demo_is_reproducible(tmp_path):
    first = run_demo(TINY, out=tmp_path / "a", progress=False, n_boot=0)
    second = run_demo(TINY, out=tmp_path / "b", progress=False, n_boot=0)
    for key in ("ce_predictions", "ls_predictions"):
        za = load_predictions(first.files[key]).values.full()
        zb = load_predictions(second.files[key]).values.full()
        assert np.array_equal(za, zb), key
    assert first.summary == second.summary and first.lines == second.lines
    assert first.diagnosis is not None and second.diagnosis is not None
    assert first.diagnosis.lines == second.diagnosis.lines


def test_cli_demo(tmp_path):
    out = tmp_path / "demo"
    r = CliRunner(env=PLAIN_ENV).invoke(
        app,
        [
            "demo",
            "--out",
            str(out),
            "--classes",
            "10",
            "--n-train",
            "600",
            "--n-test",
            "400",
            "--hidden",
            "32",
            "--epochs",
            "2",
            "--bootstrap",
            "20",
            "--no-progress",
        ],
    )
    assert r.exit_code == 0, (r.stdout, r.stderr)
    for start in (
        "Accuracy:",
        "MSP ranking:",
        "Fix:",
        "In short:",
        "sc-eval compare",
        "Why (sc-eval diagnose)",
        "CE features: NC1",
        "LS vs CE:",
        "sc-eval diagnose",
    ):
        assert start in r.stdout, start
    assert (out / "ce.pt2").is_file() and (out / "test.safetensors").is_file()
    assert (out / "ls.features.safetensors").is_file()
    pytest.importorskip("matplotlib")
    picture = out / "risk-coverage.png"
    assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"Picture: {picture}" in " ".join(r.stdout.split())


def test_demo_without_matplotlib_says_how_to_get_the_picture(monkeypatch):
    import builtins

    from sc_eval.demo import plot_demo

    real = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name == "matplotlib" or name.startswith("matplotlib."):
            raise ImportError(name)
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    assert plot_demo(None, Path("never.png")) is None  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "args", [("--label-smoothing", "1.5"), ("--epochs", "0"), ("--tune-split", "1")]
)
def test_cli_demo_bad_settings_exit_2(tmp_path, args):
    r = CliRunner(env=PLAIN_ENV).invoke(app, ["demo", "--out", str(tmp_path), *args])
    assert r.exit_code == 2 and "error" in r.stderr
    assert not any(tmp_path.iterdir())


def test_cli_defaults_are_the_recipe():
    from sc_eval.cli.demo import demo

    defaults = {k: p.default for k, p in inspect.signature(demo).parameters.items()}
    cfg = DemoConfig()
    for name in (
        "label_smoothing",
        "epochs",
        "seed",
        "n_train",
        "n_test",
        "classes",
        "hidden",
        "tune_split",
        "threads",
    ):
        assert defaults[name] == getattr(cfg, name), name


# --------------------------------------------------------------------------- verdicts
def summary(acc=(0.86, 0.87), msp=(0.024, 0.027), fix=(0.024, 0.022), ls_fallback=False):
    return DemoSummary(
        {"ce": acc[0], "ls": acc[1]},
        {
            ("ce", "msp"): msp[0],
            ("ls", "msp"): msp[1],
            ("ce", "maxlogit-pnorm"): fix[0],
            ("ls", "maxlogit-pnorm"): fix[1],
        },
        {"ce": {"p": 2.0, MSP_FALLBACK: 1.0}, "ls": {"p": 8.0, MSP_FALLBACK: float(ls_fallback)}},
        (msp[1] - msp[0], msp[1] - msp[0] - 0.001, msp[1] - msp[0] + 0.001),
        18000,
        2000,
    )


def test_verdict_when_the_paper_is_reproduced():
    text = "\n".join(conclusions(summary()))
    assert "raised it from 86.00% (CE) to 87.00% (LS), +1.00 points" in text
    assert "worse than CE's, 2.70% vs 2.40%" in text
    assert "below CE's MSP AURC of 2.40%" in text
    assert "repaired that" in text and "LS model is then the better" in text


def test_verdict_when_the_fix_only_helps_partly():
    text = "\n".join(conclusions(summary(fix=(0.024, 0.025))))
    assert "but not below CE's MSP AURC" in text and "repaired part of it" in text
    assert "CE model remains the better" in text


def test_verdict_when_ls_hurts_accuracy_and_the_fix_falls_back():
    text = "\n".join(conclusions(summary(acc=(0.87, 0.86), fix=(0.024, 0.027), ls_fallback=True)))
    assert "lowered it from 87.00% (CE) to 86.00% (LS)" in text
    assert "tuning fell back to MSP" in text and "does not improve" in text
    assert "did not raise accuracy" in text and "did not repair it" in text


def test_verdict_when_ls_does_not_hurt_msp():
    text = "\n".join(conclusions(summary(msp=(0.027, 0.024), fix=(0.027, 0.023))))
    assert "better than CE's" in text and "without hurting MSP" in text
    assert "nothing for max-logit p-norm to repair" in text


def test_verdict_flags_a_difference_within_noise():
    s = summary()
    noisy = DemoSummary(s.acc, s.aurc, s.params, (0.003, -0.001, 0.007), s.n_eval, s.n_tune)
    text = "\n".join(conclusions(noisy))
    assert "includes 0" in text and "within bootstrap noise" in text


# --------------------------------------------------------------------------- the full recipe
@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_full_recipe_shows_the_effect(tmp_path, seed):
    r = run_demo(DemoConfig(seed=seed), out=tmp_path, progress=False, n_boot=0)
    s = r.summary
    assert s.acc["ls"] > s.acc["ce"]  # LS is more accurate …
    assert s.aurc[("ls", "msp")] > s.aurc[("ce", "msp")]  # … but ranks worse with MSP …
    assert s.aurc[("ls", "maxlogit-pnorm")] < s.aurc[("ce", "msp")]  # … and the fix beats CE
