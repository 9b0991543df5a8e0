"""What a new user tripped on (issue 17): help text, closed pipes, messages."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import typer.main
from conftest import make_logits, predictions_file
from typer.testing import CliRunner

from sc_eval.cli import app
from sc_eval.io import write_predictions

ROOT = Path(__file__).resolve().parents[1]
ENV = {"NO_COLOR": "1", "COLUMNS": "100", "SC_EVAL_DEBUG": None}
#: Every command the app registers, so a new command's help is checked without a list to edit.
COMMANDS = sorted(typer.main.get_command(app).commands)


def _help(command: str) -> str:
    r = CliRunner(env=ENV).invoke(app, [command, "--help"])
    assert r.exit_code == 0, r.output
    return r.stdout


def test_every_command_is_checked():
    known = {"score", "compare", "gate", "threshold", "diagnose", "infer", "demo", "list"}
    assert known <= set(COMMANDS)


@pytest.mark.parametrize("command", COMMANDS)
def test_help_shows_no_python_types(command: str):
    text = _help(command)
    assert not re.search(r"<(str|int|float|path|Path|list\[\w+\]|int range|float range)>", text)
    assert not re.search(r"\{[A-Z_]+\}", text), text.splitlines()[0]


def test_help_keeps_its_columns_aligned():
    lines = _help("score").splitlines()
    starts = {
        line.index("Comma-separated") for line in lines if "Comma-separated confidence" in line
    }
    starts |= {line.index("Coverages in") for line in lines if "Coverages in" in line}
    assert len(starts) == 1


def test_threshold_seed_does_not_mention_a_bootstrap():
    text = " ".join(_help("threshold").split())
    seed = text[text.index("--seed") : text.index("--seed") + 80]
    assert "bootstrap" not in seed


@pytest.fixture()
def preds(tmp_path: Path) -> Path:
    return predictions_file(tmp_path / "p.safetensors", 3000, 100, seed=2)


@pytest.mark.parametrize("argv", [["score", "{p}", "--by", "class"], ["score", "{p}", "-f", "csv"]])
def test_a_closed_pipe_is_silent_and_exits_0(preds: Path, argv: list[str]):
    env = {**os.environ, "NO_COLOR": "1", "PYTHONPATH": str(ROOT)}
    env.pop("SC_EVAL_DEBUG", None)
    cmd = [sys.executable, "-m", "sc_eval", *[a.replace("{p}", str(preds)) for a in argv]]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    assert p.stdout is not None and p.stderr is not None
    p.stdout.readline()
    p.stdout.close()  # like `| head -1`
    err = p.stderr.read().decode()
    assert p.wait(timeout=120) == 0, err
    assert err == "", err


def test_a_closed_stdout_is_silent_and_exits_0(preds: Path):
    """Started with stdout closed (`sc-eval score p >&-`): like a reader gone away."""
    env = {**os.environ, "NO_COLOR": "1", "PYTHONPATH": str(ROOT)}
    env["PYTHONWARNINGS"] = "default::ResourceWarning"  # an unclosed /dev/null would show
    cmd = [sys.executable, "-m", "sc_eval", "score", str(preds)]
    r = subprocess.run(
        cmd,
        stdout=None,
        stderr=subprocess.PIPE,
        env=env,
        timeout=120,
        pass_fds=(),
        preexec_fn=lambda: os.close(1),
    )
    assert r.returncode == 0, r.stderr.decode()
    assert r.stderr.decode() == ""


@pytest.mark.parametrize(
    "argv, want",
    [
        (["score", "{p}", "--coverages", "80"], ["--coverages", "did you mean 0.8"]),
        (["score", "{p}", "--risks", "5"], ["--risks", "did you mean 0.05"]),
        (["scroe"], ["Did you mean 'score'? See"]),
        (["score", "{npy}"], ["single .npy array", "numpy.savez"]),
    ],
)
def test_messages_say_what_to_do(preds: Path, tmp_path: Path, argv: list[str], want: list[str]):
    npy = tmp_path / "x.npy"
    np.save(npy, np.zeros(3))
    argv = [a.replace("{p}", str(preds)).replace("{npy}", str(npy)) for a in argv]
    r = CliRunner(env=ENV).invoke(app, argv)
    assert r.exit_code == 2
    for w in want:
        assert w in r.stderr, r.stderr


def test_gate_length_mismatch_does_not_talk_about_compare(preds: Path, tmp_path: Path):
    z, y = make_logits(100, 100, seed=2)
    short = tmp_path / "short.safetensors"
    write_predictions(short, logits=z, labels=y)
    r = CliRunner(env=ENV).invoke(app, ["gate", str(short), "--baseline", str(preds)])
    assert r.exit_code == 2
    assert "compare" not in r.stderr and "same samples" in r.stderr, r.stderr


def test_val_without_a_tunable_score_does_not_talk_about_a_split(preds: Path):
    r = CliRunner(env=ENV).invoke(app, ["score", str(preds), "-s", "msp", "--val", str(preds)])
    assert r.exit_code == 0, r.stderr
    assert "split" not in r.stderr and "--val" in r.stderr, r.stderr


def test_threshold_states_its_guarantee_in_the_scores_units(preds: Path, tmp_path: Path):
    import json

    out = tmp_path / "sel.json"
    r = CliRunner(env=ENV).invoke(
        app, ["threshold", str(preds), "--target-risk", "0.9", "-s", "msp", "-o", str(out)]
    )
    assert r.exit_code == 0, r.stderr
    doc = json.loads(out.read_text())
    assert f"msp >= {doc['threshold_value']:.6g}" in doc["guarantee"]
    assert "rank key" in doc["guarantee"]


def _pair(tmp_path: Path) -> dict[str, Path]:
    """CE-like and LS-like predictions on one test set, each with its own validation file."""
    rng = np.random.default_rng(7)
    files = {}
    y_test = rng.integers(0, 10, 1500)
    for name, sharp in (("ce", 1.0), ("ls", 0.3)):
        for split in ("test", "val"):
            y = y_test if split == "test" else rng.integers(0, 10, 1500)
            z = rng.normal(size=(y.size, 10))
            z[np.arange(y.size), y] += rng.normal(2.5, 1.5, y.size)
            z = z * sharp + (rng.normal(size=(y.size, 1)) * 3 if name == "ls" else 0)
            path = tmp_path / f"{name}_{split}.safetensors"
            write_predictions(path, logits=z.astype(np.float32), labels=y)
            files[f"{name}_{split}"] = path
    return files


def _tuned_p(doc: dict, model: int = 0) -> float:
    return doc["results"][model]["scores"]["maxlogit-pnorm"]["params"]["p"]


def test_compare_tunes_each_model_on_its_own_validation_file(tmp_path: Path):
    import json

    f = _pair(tmp_path)
    runner = CliRunner(env=ENV)
    own = {}
    for name in ("ce", "ls"):
        r = runner.invoke(app, ["score", str(f[f"{name}_test"]), "-s", "maxlogit-pnorm",
                                "--val", str(f[f"{name}_val"]), "-f", "json"])  # fmt: skip
        assert r.exit_code == 0, r.stderr
        own[name] = _tuned_p(json.loads(r.stdout))
    r = runner.invoke(
        app,
        ["compare", str(f["ce_test"]), str(f["ls_test"]), "-s", "maxlogit-pnorm", "--val",
         str(f["ce_val"]), "--val", str(f["ls_val"]), "--bootstrap", "0", "-f", "json"],
    )  # fmt: skip
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    params = [
        e["scores"]["maxlogit-pnorm"]["params"]["p"]
        for e in doc.get("evaluations", doc.get("results", []))
    ]
    assert params == [own["ce"], own["ls"]], (params, own)
    table = runner.invoke(
        app,
        ["compare", str(f["ce_test"]), str(f["ls_test"]), "-s", "maxlogit-pnorm", "--val",
         str(f["ce_val"]), "--val", str(f["ls_val"]), "--bootstrap", "0"],
    )  # fmt: skip
    assert "tuned on " + str(f["ce_val"]) in " ".join(table.stdout.split())


def test_compare_refuses_a_val_count_that_does_not_match(tmp_path: Path):
    f = _pair(tmp_path)
    r = CliRunner(env=ENV).invoke(
        app, ["compare", str(f["ce_test"]), str(f["ls_test"]), "--val", str(f["ce_val"])]
    )
    assert r.exit_code == 2
    assert "one --val per source" in r.stderr


def test_gate_accepts_a_baseline_recorded_with_a_tuning_split(tmp_path: Path):
    import json

    f = _pair(tmp_path)
    base = tmp_path / "base.json"
    runner = CliRunner(env={**ENV, "GITHUB_STEP_SUMMARY": None})
    record = ["score", str(f["ce_test"]), "-s", "msp,maxlogit-pnorm", "--tune-split", "0.2"]
    r = runner.invoke(app, [*record, "--seed", "3", "-f", "json", "-o", str(base)])
    assert r.exit_code == 0, r.stderr
    r = runner.invoke(app, ["gate", str(f["ce_test"]), "--baseline", str(base), "--score",
                            "maxlogit-pnorm", "-f", "json"])  # fmt: skip
    assert r.exit_code == 0, r.stdout + r.stderr
    doc = json.loads(r.stdout)
    assert all(rule["delta"] == 0 for rule in doc["rules"])
    assert "split the same way" in doc["notes"][0]
    # a different model on the same test set: evaluated on the same rows, tuned on its own
    r = runner.invoke(app, ["gate", str(f["ls_test"]), "--baseline", str(base), "--score",
                            "maxlogit-pnorm", "-f", "json"])  # fmt: skip
    assert r.exit_code in (0, 1), r.stderr
    own = runner.invoke(app, ["score", str(f["ls_test"]), "-s", "maxlogit-pnorm",
                              "--tune-split", "0.2", "--seed", "3", "-f", "json"])  # fmt: skip
    want = json.loads(own.stdout)["results"][0]["scores"]["maxlogit-pnorm"]["metrics"]["aurc"]
    got = next(x for x in json.loads(r.stdout)["rules"] if x["metric"] == "aurc")
    assert got["candidate"] == pytest.approx(want, abs=0, rel=1e-12)


def test_gate_says_when_a_val_tuned_baseline_lends_its_parameters(tmp_path: Path):
    f = _pair(tmp_path)
    base = tmp_path / "base.json"
    runner = CliRunner(env={**ENV, "GITHUB_STEP_SUMMARY": None})
    r = runner.invoke(app, ["score", str(f["ls_test"]), "-s", "maxlogit-pnorm", "--val",
                            str(f["ls_val"]), "-f", "json", "-o", str(base)])  # fmt: skip
    assert r.exit_code == 0, r.stderr
    r = runner.invoke(app, ["gate", str(f["ls_test"]), "--baseline", str(base), "--score",
                            "maxlogit-pnorm"])  # fmt: skip
    assert r.exit_code == 0, r.stderr
    text = " ".join(r.stdout.split())
    assert "the candidate is scored with the baseline's parameters" in text


def test_plot_subset_and_legend_labels():
    from sc_eval.plot import DEFAULT_SUBSET, _label, choose_scores

    eight = ["msp", "maxlogit", "margin", "logit-margin", "neg-entropy", "gini", "energy",
             "maxlogit-pnorm"]  # fmt: skip
    assert choose_scores(eight, 1) == (eight, False)
    names, subset = choose_scores(eight, 2)
    assert subset and set(names) <= set(DEFAULT_SUBSET) and "msp" in names
    assert _label("maxlogit-pnorm", {"p": 4.0, "msp_fallback": 0.0}) == "maxlogit-pnorm (p=4)"
    assert _label("maxlogit-pnorm", {"p": 2.0, "msp_fallback": 1.0}).endswith("= msp (fall-back)")


def test_compare_plot_colours_by_score_and_styles_by_model(tmp_path: Path, monkeypatch):
    pytest.importorskip("matplotlib")
    from matplotlib.figure import Figure

    drawn: list[tuple[str, str, object]] = []
    real = Figure.savefig

    def spy(self, *args, **kwargs):
        for line in self.axes[0].get_lines():
            drawn.append((line.get_label(), line.get_color(), line.get_linestyle()))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", spy)
    f = _pair(tmp_path)
    r = CliRunner(env=ENV).invoke(
        app,
        ["compare", str(f["ce_test"]), str(f["ls_test"]), "-s", "msp,maxlogit",
         "--bootstrap", "0", "--plot", str(tmp_path / "p.png")],
    )  # fmt: skip
    assert r.exit_code == 0, r.stderr
    curves = {label: (c, s) for label, c, s in drawn if "oracle" not in label}
    ce_msp = next(v for k, v in curves.items() if "ce_test" in k and k.endswith("msp"))
    ls_msp = next(v for k, v in curves.items() if "ls_test" in k and k.endswith("msp"))
    ce_ml = next(v for k, v in curves.items() if "ce_test" in k and "maxlogit" in k)
    assert ce_msp[0] == ls_msp[0] and ce_msp[1] != ls_msp[1]  # one colour per score
    assert ce_msp[0] != ce_ml[0] and ce_msp[1] == ce_ml[1]  # one style per model


def test_a_failing_torchscript_model_says_why(tmp_path: Path):
    torch = pytest.importorskip("torch")
    from nets import save_torchscript

    model = save_torchscript(torch.nn.Linear(2, 2), tmp_path / "m.pt")
    np.savez(tmp_path / "d.npz", inputs=np.zeros((8, 4), np.float32), labels=np.zeros(8, int))
    r = CliRunner(env=ENV).invoke(
        app, ["infer", str(model), "--data", str(tmp_path / "d.npz"), "--out",
              str(tmp_path / "o.safetensors"), "--no-progress"],
    )  # fmt: skip
    assert r.exit_code == 2
    assert "mat1 and mat2" in r.stderr, r.stderr


def test_the_compare_function_and_its_module_do_not_share_a_name():
    import importlib

    import sc_eval

    for module in ("sc_eval.comparison", "sc_eval.cli.compare"):
        importlib.import_module(module)
    assert callable(sc_eval.compare)
    from sc_eval import compare

    assert callable(compare)
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("sc_eval.compare")


def test_the_command_line_loads_without_numpy():
    """``sc-eval --help`` stays fast: no command module imports numpy at module level."""
    code = (
        "import sys, sc_eval.cli; print(sorted(m for m in ('numpy', 'torch') if m in sys.modules))"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert p.stdout.strip() == "[]", p.stdout + p.stderr


def test_score_tunes_each_source_on_its_own_validation_file(tmp_path: Path):
    import json

    f = _pair(tmp_path)
    runner = CliRunner(env=ENV)
    one = runner.invoke(app, ["score", str(f["ce_test"]), str(f["ls_test"]), "-s",
                              "maxlogit-pnorm", "--val", str(f["ls_val"])])  # fmt: skip
    assert one.exit_code == 2 and "one --val per source" in one.stderr
    both = runner.invoke(app, ["score", str(f["ce_test"]), str(f["ls_test"]), "-s",
                               "maxlogit-pnorm", "--val", str(f["ce_val"]), "--val",
                               str(f["ls_val"]), "-f", "json"])  # fmt: skip
    assert both.exit_code == 0, both.stderr
    got = [_tuned_p(json.loads(both.stdout), i) for i in (0, 1)]
    own = []
    for name in ("ce", "ls"):
        r = runner.invoke(app, ["score", str(f[f"{name}_test"]), "-s", "maxlogit-pnorm",
                                "--val", str(f[f"{name}_val"]), "-f", "json"])  # fmt: skip
        own.append(_tuned_p(json.loads(r.stdout)))
    assert got == own


def test_diagnose_refuses_one_val_for_several_models(tmp_path: Path):
    f = _pair(tmp_path)
    r = CliRunner(env=ENV).invoke(app, ["diagnose", str(f["ce_test"]), str(f["ls_test"]),
                                        "--val", str(f["ls_val"])])  # fmt: skip
    assert r.exit_code == 2 and "--val tunes one model" in r.stderr, r.stderr


def test_tuning_on_the_evaluated_file_itself_is_warned_about(tmp_path: Path):
    f = _pair(tmp_path)
    r = CliRunner(env=ENV).invoke(app, ["score", str(f["ce_test"]), "-s", "maxlogit-pnorm",
                                        "--val", str(f["ce_test"])])  # fmt: skip
    assert r.exit_code == 0
    assert "is the evaluated file itself" in r.stderr


def test_repeated_list_options_add_up(preds: Path):
    import json

    r = CliRunner(env=ENV).invoke(
        app, ["score", str(preds), "-s", "msp", "-s", "gini", "-m", "aurc", "-m", "augrc",
              "-f", "json"],
    )  # fmt: skip
    assert r.exit_code == 0, r.stderr
    res = json.loads(r.stdout)["results"][0]["scores"]
    assert set(res) == {"msp", "gini"}
    assert {"aurc", "augrc"} <= set(res["msp"]["metrics"])
    t = CliRunner(env=ENV).invoke(
        app, ["threshold", str(preds), "--target-risk", "0.9", "-s", "msp", "-s", "gini"]
    )
    assert t.exit_code == 2 and "one score" in t.stderr


def test_gate_refuses_a_baseline_of_several_models_and_says_why_json_is_bad(tmp_path: Path):
    f = _pair(tmp_path)
    runner = CliRunner(env={**ENV, "GITHUB_STEP_SUMMARY": None})
    multi = tmp_path / "multi.json"
    r = runner.invoke(app, ["score", str(f["ls_test"]), str(f["ce_test"]), "-s", "msp", "-f",
                            "json", "-o", str(multi)])  # fmt: skip
    assert r.exit_code == 0
    r = runner.invoke(app, ["gate", str(f["ce_test"]), "--baseline", str(multi)])
    assert r.exit_code == 2 and "holds 2 results" in r.stderr, r.stderr
    junk = tmp_path / "junk.json"
    junk.write_text("not json at all")
    r = runner.invoke(app, ["gate", str(f["ce_test"]), "--baseline", str(junk)])
    assert r.exit_code == 2 and "not valid JSON" in r.stderr, r.stderr


@pytest.mark.parametrize("width", [80, 120])
def test_score_tables_fold_instead_of_cutting_numbers(preds: Path, width: int):
    import io

    from rich.console import Console

    from sc_eval.io import load_predictions
    from sc_eval.pipeline import EvalOptions, evaluate_source
    from sc_eval.render import render
    from sc_eval.render.score import grids

    ev, _ = evaluate_source(load_predictions(preds), EvalOptions())
    buf = io.StringIO()
    console = Console(file=buf, width=width, no_color=True, highlight=False)
    render([ev], "table", console=console)
    text = buf.getvalue()
    table_lines = [line for line in text.splitlines() if line[:1] in "┏┃┡│└"]
    assert table_lines and all(len(line) <= width for line in table_lines)
    assert "…" not in "".join(table_lines)
    for g in grids(ev, None):
        for h in g.headers:
            assert h in text
        for row in g.rows:
            for cell in row:
                assert cell in text


def test_list_never_cuts_the_names_to_type(monkeypatch):
    import io

    from rich.console import Console

    import sc_eval.cli as cli_module

    buf = io.StringIO()

    class Narrow:
        def __enter__(self):
            return Console(file=buf, width=80, no_color=True, highlight=False)

        def __exit__(self, *exc):
            return False

    monkeypatch.setattr("sc_eval.cli.listing.stdout_console", lambda: Narrow())
    r = CliRunner(env=ENV).invoke(cli_module.app, ["list"])
    assert r.exit_code == 0, r.stderr
    text = buf.getvalue()
    for name in ("maxlogit-pnorm", "msp-pnorm", "neg-entropy", "fpr@95tpr", "torch-uncertainty"):
        assert name in text, name
    assert all(len(line) <= 80 for line in text.splitlines())
