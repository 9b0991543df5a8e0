"""``sc-eval score`` through Typer's CliRunner: formats, options, golden files, exit codes.

Golden files live in ``tests/golden/``. After an intended output change, rewrite them with

    SC_EVAL_UPDATE_GOLDEN=1 python -m pytest tests/test_cli_score.py -k golden

and review the diff.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import reference as ref
from typer.testing import CliRunner

from sc_eval import evaluate
from sc_eval.cli import app
from sc_eval.io import write_predictions

REPO = Path(__file__).resolve().parents[1]
PLAIN_ENV = {
    "NO_COLOR": "1",
    "FORCE_COLOR": None,
    "TTY_COMPATIBLE": None,
    "TTY_INTERACTIVE": None,
    "COLUMNS": None,
    "SC_EVAL_DEBUG": None,
}


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner(env=PLAIN_ENV)


@pytest.fixture
def workdir(tmp_path, monkeypatch, fixed_preds) -> Path:
    """A temporary working directory holding the fixed predictions in every file kind."""
    import torch

    z, y = fixed_preds
    monkeypatch.chdir(tmp_path)
    write_predictions("preds.safetensors", logits=z, labels=y)
    np.savez("preds.npz", logits=z, labels=y)
    torch.save({"logits": torch.from_numpy(z), "labels": torch.from_numpy(y)}, "preds.pt")
    write_predictions("probs.safetensors", probs=_softmax(z), labels=y)
    return tmp_path


def _softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def run(runner: CliRunner, *args: str, code: int = 0):
    result = runner.invoke(app, list(args))
    assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr)
    return result


def run_json(runner, *args: str) -> dict:
    return json.loads(run(runner, "score", *args, "--format", "json").stdout)


# --------------------------------------------------------------------------- golden files
def _assert_same_data(got, want, path="$"):
    """Equal structure and strings; floats equal to 1e-9 relative (platform rounding)."""
    if isinstance(want, float) or isinstance(got, float):
        assert isinstance(got, int | float) and isinstance(want, int | float), path
        assert got == pytest.approx(want, rel=1e-9, abs=1e-12), path
    elif isinstance(want, dict):
        assert isinstance(got, dict) and list(got) == list(want), path
        for k in want:
            _assert_same_data(got[k], want[k], f"{path}.{k}")
    elif isinstance(want, list):
        assert isinstance(got, list) and len(got) == len(want), path
        for i, (a, b) in enumerate(zip(got, want, strict=True)):
            _assert_same_data(a, b, f"{path}[{i}]")
    else:
        assert got == want, path


def _csv_rows(text: str) -> list[list[object]]:
    rows: list[list[object]] = []
    for row in csv.reader(io.StringIO(text)):
        cells: list[object] = []
        for cell in row:
            try:
                cells.append(float(cell) if "." in cell or "e" in cell else cell)
            except ValueError:
                cells.append(cell)
        rows.append(cells)
    return rows


GOLDEN_ARGS = ["score", "preds.safetensors", "--coverages", "1,0.9,0.5", "--risks", "0.1,0.3"]


@pytest.mark.parametrize(
    "fmt, name",
    [
        ("table", "score.txt"),
        ("markdown", "score.md"),
        ("json", "score.json"),
        ("csv", "score.csv"),
    ],
)
def test_golden_output(runner, workdir, golden, fmt, name):
    out = run(runner, *GOLDEN_ARGS, "--format", fmt).stdout
    want = golden(name, out)
    if fmt == "json":
        got_doc, want_doc = json.loads(out), json.loads(want)
        got_doc["tool"] = want_doc["tool"] = "<version>"
        _assert_same_data(got_doc, want_doc)
    elif fmt == "csv":
        _assert_same_data(_csv_rows(out), _csv_rows(want))
    else:
        assert out == want


def test_golden_fixture_is_what_the_goldens_describe(fixed_preds):
    """Guards the fixed input: if it changes, the golden files must be regenerated."""
    z, y = fixed_preds
    res = json.loads((Path(__file__).parent / "golden" / "score.json").read_text())["results"][0]
    assert res["labels_sha256"] == hashlib.sha256(y.astype("<i8").tobytes()).hexdigest()
    assert (res["n"], res["num_classes"]) == z.shape
    assert res["model_metrics"]["acc"] == pytest.approx(np.mean(z.argmax(axis=1) == y))


# --------------------------------------------------------------------------- formats
def test_table_shows_percent_and_both_tables(runner, workdir):
    out = run(runner, "score", "preds.safetensors").stdout
    doc = run_json(runner, "preds.safetensors")
    assert "AURC (%)" in out and "AUGRC (%)" in out and "NAURC" in out
    assert "risk@100%" in out and "risk@50%" in out and "cov@risk≤5%" in out
    aurc = doc["results"][0]["scores"]["msp"]["metrics"]["aurc"]
    assert 0 < aurc < 1
    assert f"{100 * aurc:.2f}" in out
    assert "\x1b[" not in out


def test_json_document(runner, workdir, fixed_preds):
    z, y = fixed_preds
    doc = run_json(runner, "preds.safetensors")
    assert doc["schema"] == "sc-eval/result"
    assert isinstance(doc["version"], int)
    assert "fraction" in doc["units"]
    assert doc["metrics"]["aurc"] == {"higher_is_better": False, "unit": "fraction"}
    assert doc["metrics"]["auroc"]["higher_is_better"] is True
    (res,) = doc["results"]
    assert res["source"] == "preds.safetensors"
    assert res["convention"] == "mean"
    assert res["labels_sha256"] == hashlib.sha256(y.astype("<i8").tobytes()).hexdigest()
    assert res["n"] == 24 and res["num_classes"] == 3 and res["input_kind"] == "logits"
    api = evaluate(z, y)
    assert set(res["scores"]) == set(api.scores)
    for name, s in api.scores.items():
        for metric, value in s.metrics.items():
            got = res["scores"][name]["metrics"][metric]
            if math.isnan(value):
                assert got is None
            else:
                assert got == pytest.approx(value, rel=1e-12, abs=1e-15), (name, metric)
    assert res["model_metrics"]["acc"] == pytest.approx(api.model_metrics["acc"])


def test_csv_holds_fractions_with_units(runner, workdir):
    out = run(runner, "score", "preds.safetensors", "--format", "csv").stdout
    doc = run_json(runner, "preds.safetensors")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert {"source", "score", "metric", "value", "unit", "convention"} <= set(rows[0])
    aurc = [r for r in rows if r["score"] == "msp" and r["metric"] == "aurc"]
    assert len(aurc) == 1
    assert float(aurc[0]["value"]) == pytest.approx(
        doc["results"][0]["scores"]["msp"]["metrics"]["aurc"], rel=1e-12
    )
    assert aurc[0]["unit"] == "fraction" and aurc[0]["convention"] == "mean"


def test_markdown(runner, workdir):
    out = run(runner, "score", "preds.safetensors", "--format", "markdown").stdout
    assert "| score |" in out and "AURC (%)" in out
    assert out.count("\n| msp |") >= 2  # metrics table and risk–coverage table


@pytest.mark.parametrize("fmt", ["table", "json", "csv", "markdown"])
def test_every_file_kind_gives_the_same_numbers(runner, workdir, fmt):
    outs = [
        [line.rstrip() for line in run(runner, "score", src, "-f", fmt).stdout.splitlines()]
        for src in ("preds.safetensors", "preds.npz", "preds.pt")
    ]
    outs = [
        [line.replace(src, "SRC") for line in out]
        for out, src in zip(outs, ("preds.safetensors", "preds.npz", "preds.pt"), strict=True)
    ]
    assert outs[0] == outs[1] == outs[2]


def test_several_sources_in_one_run(runner, workdir):
    doc = run_json(runner, "preds.safetensors", "preds.npz")
    assert [r["source"] for r in doc["results"]] == ["preds.safetensors", "preds.npz"]


# --------------------------------------------------------------------------- options
def test_scores_and_pnorm_p(runner, workdir, fixed_preds):
    z, y = fixed_preds
    doc = run_json(
        runner, "preds.safetensors", "--scores", "msp,maxlogit,maxlogit-pnorm", "--pnorm-p", "4"
    )
    scores = doc["results"][0]["scores"]
    assert list(scores) == ["msp", "maxlogit", "maxlogit-pnorm"]
    assert scores["maxlogit-pnorm"]["params"] == {"p": 4.0}
    api = evaluate(z, y, scores=["maxlogit-pnorm"], params={"maxlogit-pnorm": {"p": 4}})
    got = scores["maxlogit-pnorm"]["metrics"]
    assert got["aurc"] == pytest.approx(api.scores["maxlogit-pnorm"].metrics["aurc"], rel=1e-12)
    # p = 0 means centred, not normalised: z_top - mean(z), which ranks differently here
    doc0 = run_json(
        runner, "preds.safetensors", "--scores", "maxlogit,maxlogit-pnorm", "--pnorm-p", "0"
    )
    s0 = doc0["results"][0]["scores"]
    assert s0["maxlogit-pnorm"]["params"] == {"p": 0.0}
    z64 = np.asarray(z, dtype=np.float64)
    centred = (z64 - z64.mean(axis=1, keepdims=True)).max(axis=1)
    want = ref.aurc(*ref.as_lists(centred, z.argmax(axis=1) != y))
    assert s0["maxlogit-pnorm"]["metrics"]["aurc"] == pytest.approx(want, rel=1e-12)
    assert s0["maxlogit-pnorm"]["metrics"]["aurc"] != pytest.approx(got["aurc"], rel=1e-6)


def test_coverages_and_risks(runner, workdir):
    doc = run_json(
        runner, "preds.safetensors", "--coverages", "1,0.95,0.9,0.8,0.5", "--risks", "0.01,0.05"
    )
    res = doc["results"][0]
    assert res["coverages"] == [1, 0.95, 0.9, 0.8, 0.5]
    assert res["risks"] == [0.01, 0.05]
    metrics = res["scores"]["msp"]["metrics"]
    for name in ("risk@cov=1", "risk@cov=0.95", "risk@cov=0.5", "cov@risk=0.01", "cov@risk=0.05"):
        assert name in metrics
    assert metrics["risk@cov=1"] == pytest.approx(1 - res["model_metrics"]["acc"])


def test_aurc_convention_trapezoid(runner, workdir):
    mean = run_json(runner, "preds.safetensors")["results"][0]
    trap = run_json(runner, "preds.safetensors", "--aurc-convention", "trapezoid")["results"][0]
    assert trap["convention"] == "trapezoid"
    err, n = 1 - mean["model_metrics"]["acc"], mean["n"]
    for s in mean["scores"]:
        for metric in ("aurc", "augrc"):
            want = mean["scores"][s]["metrics"][metric] - err / (2 * n)
            assert trap["scores"][s]["metrics"][metric] == pytest.approx(want, abs=1e-12)


def test_probs_file_with_probability_scores(runner, workdir):
    doc = run_json(runner, "probs.safetensors", "--scores", "msp,margin,gini,neg-entropy")
    assert doc["results"][0]["input_kind"] == "probs"


def test_undefined_metrics_show_na_with_the_reason(runner, workdir, fixed_preds):
    z, _ = fixed_preds
    write_predictions("perfect.safetensors", logits=z, labels=z.argmax(axis=1))
    out = run(runner, "score", "perfect.safetensors", "--scores", "msp").stdout
    assert "n/a" in out and "error rate is 0" in out
    res = run_json(runner, "perfect.safetensors", "--scores", "msp")["results"][0]
    msp = res["scores"]["msp"]
    assert msp["metrics"]["naurc"] is None and msp["metrics"]["auroc"] is None
    assert "error rate is 0" in msp["notes"]["naurc"]
    assert msp["metrics"]["aurc"] == 0.0


# --------------------------------------------------------------------------- output files
def test_table_to_output_file(runner, workdir):
    result = run(runner, "score", "preds.safetensors", "-o", "out.txt")
    assert result.stdout == ""
    text = Path("out.txt").read_text()
    assert "AURC (%)" in text and "risk@100%" in text and "\x1b[" not in text


def test_output_file_is_written_atomically(runner, workdir):
    result = run(runner, "score", "preds.safetensors", "-f", "json", "-o", "out.json")
    assert result.stdout == ""
    doc = json.loads(Path("out.json").read_text())
    assert doc["schema"] == "sc-eval/result" and doc["results"][0]["convention"] == "mean"
    assert "units" in doc and doc["results"][0]["labels_sha256"]
    assert not [p for p in Path().iterdir() if p.name.startswith(".out.json")]


def test_failed_run_leaves_no_output_file(runner, workdir):
    Path("old.json").write_text("previous")
    r = run(
        runner, "score", "preds.safetensors", "missing.npz", "-f", "json", "-o", "old.json", code=2
    )
    assert "missing.npz" in r.stderr
    assert Path("old.json").read_text() == "previous"
    run(runner, "score", "preds.safetensors", "missing.npz", "-o", "new.json", code=2)
    assert not Path("new.json").exists()
    assert sorted(p.name for p in Path().iterdir() if p.name.startswith(".")) == []


def test_output_in_missing_directory(runner, workdir):
    r = run(runner, "score", "preds.safetensors", "-o", "nowhere/out.txt", code=2)
    assert "does not exist" in r.stderr


# --------------------------------------------------------------------------- errors
def _bad_files(workdir: Path) -> None:
    from safetensors.numpy import save_file

    z, y = np.zeros((4, 3), np.float32), np.array([0, 1, 2, 0])
    save_file({"logits": z, "labels": np.array([0, 1, 5, 0])}, "range.safetensors")
    save_file({"logits": z, "labels": y.astype(np.float32)}, "floatlabels.safetensors")
    z_nan = z.copy()
    z_nan[1, 1] = np.nan
    save_file({"logits": z_nan, "labels": y}, "nan.safetensors")
    data = Path("preds.safetensors").read_bytes()
    Path("cut.safetensors").write_bytes(data[: len(data) // 2])
    Path("junk.npz").write_text("not a zip")


BAD_INVOCATIONS = {
    "missing file": (["missing.safetensors"], "missing.safetensors"),
    "unknown score": (["preds.safetensors", "--scores", "msp,maxlogt"], "maxlogit"),
    "logit score on probs": (["probs.safetensors", "--scores", "maxlogit"], "need logits"),
    "coverage > 1": (["preds.safetensors", "--coverages", "1.5"], "coverage"),
    "coverage not a number": (["preds.safetensors", "--coverages", "abc"], "coverage"),
    "risk < 0": (["preds.safetensors", "--risks", "-0.1"], "risk"),
    "bad format": (["preds.safetensors", "--format", "yaml"], "format"),
    "bad convention": (["preds.safetensors", "--aurc-convention", "trapz"], "trapezoid"),
    "unknown metric": (["preds.safetensors", "--metrics", "aurcc"], "metric"),
    "negative p": (["preds.safetensors", "--pnorm-p", "-1"], "pnorm"),
    "labels out of range": (["range.safetensors"], "labels"),
    "float labels": (["floatlabels.safetensors"], "integers"),
    "nan logits": (["nan.safetensors"], "NaN"),
    "truncated": (["cut.safetensors"], "cut.safetensors"),
    "corrupt npz": (["junk.npz"], "junk.npz"),
    "missing key": (["preds.safetensors", "--logits-key", "nope"], "nope"),
}


@pytest.mark.parametrize("case", list(BAD_INVOCATIONS))
def test_bad_input_exits_2_with_one_line(runner, workdir, case):
    _bad_files(workdir)
    args, expect = BAD_INVOCATIONS[case]
    r = run(runner, "score", *args, code=2)
    err = r.stderr.strip()
    assert err.startswith("sc-eval: error:"), err
    assert "\n" not in err, err
    assert "Traceback" not in r.output
    assert expect in err
    assert r.stdout == ""


def test_debug_shows_the_exception(runner, workdir):
    r = runner.invoke(app, ["score", "missing.npz", "--debug"])
    assert r.exit_code != 0
    assert r.exception is not None and "missing.npz" in str(r.exception)


def test_no_color_is_honoured(workdir):
    forced = CliRunner(env={**PLAIN_ENV, "NO_COLOR": None, "FORCE_COLOR": "1"})
    coloured = forced.invoke(app, ["score", "preds.safetensors"]).stdout
    assert "32m" in coloured  # the best value of each column is green
    plain = CliRunner(env={**PLAIN_ENV, "NO_COLOR": "1", "FORCE_COLOR": "1"})
    out = plain.invoke(app, ["score", "preds.safetensors"]).stdout
    assert "32m" not in out


# --------------------------------------------------------------------------- processes
def _python(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "SC_EVAL_DEBUG")}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


def test_python_m_sc_eval_help(tmp_path):
    r = _python(["-m", "sc_eval", "--help"], tmp_path)
    assert r.returncode == 0, r.stderr
    assert "score" in r.stdout and "Usage" in r.stdout
    r = _python(["-m", "sc_eval", "score", "--help"], tmp_path)
    assert r.returncode == 0, r.stderr
    assert "--aurc-convention" in r.stdout


TORCH_CHECK = (
    "import atexit, sys\n"
    "atexit.register(lambda: print('TORCH=' + str('torch' in sys.modules), file=sys.stderr))\n"
    "sys.argv = ['sc-eval', 'score', {src!r}, '--format', 'json']\n"
    "from sc_eval.cli import main\n"
    "main()\n"
)


@pytest.mark.parametrize(
    "src, imports_torch",
    [
        ("preds.safetensors", False),
        ("preds.npz", False),
        ("preds.pt", True),
    ],
)
def test_score_imports_torch_only_for_pt_files(workdir, src, imports_torch):
    r = _python(["-c", TORCH_CHECK.format(src=src)], workdir)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["results"][0]["n"] == 24
    assert f"TORCH={imports_torch}" in r.stderr


def test_list_shows_every_registry_entry(runner):
    from sc_eval.metrics import CONVENTIONS, MODEL_METRICS, SELECTIVE_METRICS
    from sc_eval.scores import SCORES

    r = run(runner, "list")
    for name in (*SCORES, *MODEL_METRICS, *SELECTIVE_METRICS, *CONVENTIONS):
        assert name in r.stdout


def test_by_refuses_a_bootstrap_it_would_ignore(runner, workdir):
    r = run(runner, "score", "preds.safetensors", "--by", "class", "--bootstrap", "50", code=2)
    assert "--bootstrap does not apply to --by" in r.stderr


def test_a_negative_zero_risk_is_named_zero(runner, workdir):
    r = run(runner, "score", "preds.safetensors", "-s", "msp", "-m", "cov@risk=-0", "-f", "json")
    assert "cov@risk=0" in json.loads(r.stdout)["results"][0]["scores"]["msp"]["metrics"]
    assert (
        "-0"
        not in run(runner, "score", "preds.safetensors", "-s", "msp", "-m", "cov@risk=-0").stdout
    )
