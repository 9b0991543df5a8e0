"""``compare``: same-samples check, index alignment, paired differences, CLI output."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

import numpy as np
import pytest
from conftest import make_logits
from typer.testing import CliRunner

from sc_eval.cli import app
from sc_eval.comparison import align_predictions, compare
from sc_eval.errors import InputError, UsageError
from sc_eval.io import predictions_from_arrays, write_predictions
from sc_eval.pipeline import EvalOptions
from sc_eval.render import render
from sc_eval.report import COMPARISON_SCHEMA, COMPARISON_VERSION

runner = CliRunner()
OPTS = EvalOptions(
    scores=("msp", "maxlogit"), metrics=("aurc", "auroc"), coverages=(0.9,), risks=()
)


def two_models(n: int = 400, c: int = 5) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Logits of a sharper and a noisier model on the same labels."""
    ce, y = make_logits(n, c, seed=1, accuracy=0.75)
    rng = np.random.default_rng(2)
    ls = ce * 0.4 + rng.normal(size=ce.shape).astype(np.float32) * 1.5
    return ce, ls, y


# --------------------------------------------------------------------------- same samples
def test_same_order_is_accepted():
    ce, ls, y = two_models()
    aligned, how = align_predictions(
        [predictions_from_arrays(ce, y), predictions_from_arrays(ls, y)]
    )
    assert how == "order"
    assert all(np.array_equal(p.labels, y) for p in aligned)


def test_mismatched_labels_are_refused_naming_the_first_mismatch():
    ce, ls, y = two_models()
    y2 = y.copy()
    y2[17] = (y[17] + 1) % 5
    y2[30] = (y[30] + 1) % 5
    with pytest.raises(InputError) as e:
        compare([predictions_from_arrays(ce, y), predictions_from_arrays(ls, y2)], OPTS)
    msg = str(e.value)
    assert "field 'labels'" in msg and "row 17" in msg and "row 30" not in msg
    assert f"label {y2[17]}" in msg and f"the reference has {y[17]}" in msg


def test_different_sample_counts_are_refused():
    ce, ls, y = two_models()
    with pytest.raises(InputError, match="399 samples, the reference has 400"):
        compare([predictions_from_arrays(ce, y), predictions_from_arrays(ls[:-1], y[:-1])], OPTS)


def test_index_alignment_gives_the_same_comparison_as_the_same_order():
    ce, ls, y = two_models()
    ids = np.arange(len(y)) * 3 + 5
    perm = np.random.default_rng(0).permutation(len(y))
    ref = predictions_from_arrays(ce, y, index=ids)
    same = compare([ref, predictions_from_arrays(ls, y, index=ids)], OPTS, n_boot=40)
    shuffled = compare(
        [ref, predictions_from_arrays(ls[perm], y[perm], index=ids[perm])], OPTS, n_boot=40
    )
    assert shuffled.alignment == "index"
    assert shuffled.scores == same.scores  # values, intervals, deltas and p-values
    assert np.array_equal(shuffled.samples[1].errors, same.samples[1].errors)


def test_index_sets_must_match():
    ce, ls, y = two_models()
    ids = np.arange(len(y))
    other = ids.copy()
    other[5] = 10_000
    with pytest.raises(InputError, match=r"field 'index'.*sample id 5 \(reference row 5\)"):
        align_predictions(
            [predictions_from_arrays(ce, y, index=ids), predictions_from_arrays(ls, y, index=other)]
        )
    with pytest.raises(InputError, match="sample id 399 is not in the reference"):
        align_predictions(
            [
                predictions_from_arrays(ce[:-1], y[:-1], index=ids[:-1]),
                predictions_from_arrays(ls, y, index=ids),
            ]
        )


def test_index_alignment_still_checks_labels():
    ce, ls, y = two_models()
    ids = np.arange(len(y))
    y2 = y.copy()
    y2[9] = (y[9] + 1) % 5
    with pytest.raises(InputError, match=r"field 'labels'.*sample id 9 has label"):
        align_predictions(
            [predictions_from_arrays(ce, y, index=ids), predictions_from_arrays(ls, y2, index=ids)]
        )


# --------------------------------------------------------------------------- results
def test_comparison_values_and_deltas():
    ce, ls, y = two_models()
    cmp = compare([predictions_from_arrays(ce, y), predictions_from_arrays(ls, y)], OPTS, n_boot=60)
    assert cmp.metrics == ("acc", "aurc", "auroc", "risk@cov=0.9")
    assert [s.score for s in cmp.scores] == ["msp", "maxlogit"]
    for sc in cmp.scores:
        ref, other = sc.rows
        assert ref.is_reference and not other.is_reference
        for m in cmp.metrics:
            assert ref.metrics[m].delta is None
            d = other.metrics[m].delta
            assert d is not None
            assert d.estimate == pytest.approx(other.metrics[m].value - ref.metrics[m].value)
            assert d.low <= d.high and 0 < d.p_value <= 1
            assert ref.metrics[m].interval is not None
        # the noisier model ranks clearly worse
        assert other.metrics["aurc"].delta.excludes_zero
        assert other.metrics["aurc"].delta.estimate > 0
    aurcs = {
        (r.model, sc.score, i): r.metrics["aurc"].value
        for sc in cmp.scores
        for i, r in enumerate(sc.rows)
    }
    assert cmp.best is not None and cmp.best.value == min(aurcs.values())
    assert cmp.bootstrap is not None and cmp.bootstrap.n_boot == 60


def test_without_bootstrap_deltas_have_no_interval():
    ce, ls, y = two_models()
    cmp = compare([predictions_from_arrays(ce, y), predictions_from_arrays(ls, y)], OPTS, n_boot=0)
    row = cmp.scores[0].rows[1]
    assert cmp.bootstrap is None and row.metrics["aurc"].interval is None
    d = row.metrics["aurc"].delta
    assert d is not None and not math.isnan(d.estimate)
    assert math.isnan(d.low) and math.isnan(d.p_value)
    assert "Δ" in render(cmp, "table")


def test_compare_needs_two_sources_and_valid_options():
    ce, _, y = two_models()
    p = predictions_from_arrays(ce, y)
    with pytest.raises(UsageError, match="at least two"):
        compare([p], OPTS)
    with pytest.raises(UsageError):
        compare([p, p], OPTS, n_boot=-1)
    with pytest.raises(UsageError):
        compare([p, p], OPTS, confidence=1.0)


def test_seed_reproducible_and_used():
    ce, ls, y = two_models()
    preds = [predictions_from_arrays(ce, y), predictions_from_arrays(ls, y)]
    a = compare(preds, OPTS, n_boot=30)
    b = compare(preds, OPTS, n_boot=30)
    c = compare(preds, EvalOptions(**{**OPTS.__dict__, "seed": 1}), n_boot=30)
    assert a.scores == b.scores
    assert a.scores != c.scores


# --------------------------------------------------------------------------- CLI
@pytest.fixture
def files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``ce.safetensors``, ``ls.safetensors`` (same order), ``ls_shuffled.safetensors``
    (shuffled, with ids) and ``other.safetensors`` (one label changed), in the cwd."""
    monkeypatch.chdir(tmp_path)
    ce, ls, y = two_models(300)
    ids = np.arange(len(y))
    perm = np.random.default_rng(3).permutation(len(y))
    write_predictions("ce.safetensors", logits=ce, labels=y, index=ids)
    write_predictions("ls.safetensors", logits=ls, labels=y, index=ids)
    write_predictions("ls_shuffled.safetensors", logits=ls[perm], labels=y[perm], index=ids[perm])
    y2 = y.copy()
    y2[4] = (y[4] + 1) % 5
    write_predictions("other.npz.safetensors", logits=ls, labels=y2)
    return tmp_path


ARGS = ["compare", "ce.safetensors", "ls.safetensors", "--scores", "msp,maxlogit-pnorm"]


def test_cli_table(files: Path):
    r = runner.invoke(app, [*ARGS, "--bootstrap", "50"])
    assert r.exit_code == 0, r.output
    out = r.stdout
    assert out.startswith(
        "compare: reference ce.safetensors vs ls.safetensors; N=300 samples matched by index"
    )
    for text in (
        "msp — Δ = model − reference",
        "maxlogit-pnorm — Δ = model − reference",
        "(reference)",
        "AURC (%)",
        "E-AURC (%)",
        "AUGRC (%)",
        "AUROC (%)",
        "risk@90%",
        "Acc (%)",
        "best (model, score) by AURC: ",
        "95% paired percentile bootstrap interval, B=50, seed=0",
    ):
        assert text in out, text
    assert out.count("Δ +") + out.count("Δ -") >= 2 * 8


def test_cli_golden_markdown(files: Path, golden):
    r = runner.invoke(app, [*ARGS, "--bootstrap", "50", "--format", "markdown"])
    assert r.exit_code == 0, r.output
    assert r.stdout == golden("compare.md", r.stdout)


def test_cli_json_is_versioned(files: Path):
    r = runner.invoke(app, [*ARGS, "--bootstrap", "30", "--format", "json", "-o", "cmp.json"])
    assert r.exit_code == 0, r.output
    doc = json.loads((files / "cmp.json").read_text())
    assert (doc["schema"], doc["version"], doc["command"]) == (
        COMPARISON_SCHEMA,
        COMPARISON_VERSION,
        "compare",
    )
    assert doc["reference"] == "ce.safetensors" and doc["alignment"] == "index"
    assert doc["bootstrap"]["n_boot"] == 30 and doc["bootstrap"]["confidence"] == 0.95
    rows = doc["comparisons"][0]["rows"]
    assert rows[0]["reference"] and rows[0]["metrics"]["aurc"]["delta"] is None
    delta = rows[1]["metrics"]["aurc"]["delta"]
    assert set(delta) == {"estimate", "low", "high", "p_value", "excludes_zero"}
    assert delta["estimate"] == pytest.approx(
        rows[1]["metrics"]["aurc"]["value"] - rows[0]["metrics"]["aurc"]["value"]
    )
    assert [res["source"] for res in doc["results"]] == ["ce.safetensors", "ls.safetensors"]
    assert doc["best"]["metric"] == "aurc"


def test_cli_csv(files: Path):
    r = runner.invoke(app, [*ARGS, "--bootstrap", "20", "--format", "csv"])
    assert r.exit_code == 0, r.output
    rows = list(csv.DictReader(io.StringIO(r.stdout)))
    assert len(rows) == 2 * 2 * 8  # scores x models x (acc, 4 metrics, 3 risk@coverage)
    ref = [row for row in rows if row["reference"] == "True"]
    assert all(row["delta"] == "" for row in ref)
    other = [row for row in rows if row["reference"] == "False"]
    assert all(row["p_value"] and row["delta_low"] for row in other)


def test_cli_index_alignment(files: Path):
    a = runner.invoke(app, [*ARGS, "--bootstrap", "20", "-f", "json"])
    b = runner.invoke(
        app, ["compare", "ce.safetensors", "ls_shuffled.safetensors", "--scores",
              "msp,maxlogit-pnorm", "--bootstrap", "20", "-f", "json"]
    )  # fmt: skip
    assert a.exit_code == b.exit_code == 0
    ca, cb = json.loads(a.stdout)["comparisons"], json.loads(b.stdout)["comparisons"]
    for x, y in zip(ca, cb, strict=True):
        assert x["rows"][1]["metrics"] == y["rows"][1]["metrics"]


def test_cli_refuses_different_samples(files: Path):
    r = runner.invoke(app, ["compare", "ce.safetensors", "other.npz.safetensors"])
    assert r.exit_code == 2
    assert r.stdout == ""
    err = r.stderr.strip()
    assert err.count("\n") == 0 and "Traceback" not in err
    assert err.startswith("sc-eval: error: other.npz.safetensors: field 'labels': row 4 has")


def test_cli_usage_errors(files: Path):
    one = runner.invoke(app, ["compare", "ce.safetensors"])
    assert one.exit_code == 2 and "at least two" in one.stderr
    bad = runner.invoke(app, [*ARGS, "--plot", "rc.pdf"])
    assert bad.exit_code == 2 and ".png or .svg" in bad.stderr
    assert not (files / "rc.pdf").exists()


def test_cli_plot_and_output_file(files: Path):
    r = runner.invoke(app, [*ARGS, "--bootstrap", "0", "--plot", "rc.png", "-o", "cmp.md",
                            "-f", "markdown"])  # fmt: skip
    assert r.exit_code == 0, r.output
    assert (files / "rc.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "no bootstrap" in (files / "cmp.md").read_text()


def test_score_bootstrap_cli(files: Path):
    args = ["score", "ce.safetensors", "--scores", "msp", "--bootstrap", "40", "--seed", "3"]
    a = runner.invoke(app, args)
    b = runner.invoke(app, args)
    assert a.exit_code == 0, a.output
    assert a.stdout == b.stdout
    assert "95% percentile bootstrap interval, B=40, seed=3" in a.stdout
    assert "Acc (%)=" in a.stdout and "[" in a.stdout.split("Acc (%)=")[1].split(",")[0]
    j = runner.invoke(app, [*args, "--confidence", "0.9", "-f", "json"])
    res = json.loads(j.stdout)["results"][0]
    assert res["bootstrap"] == {
        "n_boot": 40,
        "seed": 3,
        "confidence": 0.9,
        "method": "percentile bootstrap",
    }
    low, high = res["scores"]["msp"]["intervals"]["aurc"]
    assert low < res["scores"]["msp"]["metrics"]["aurc"] < high
    c = runner.invoke(app, [*args, "-f", "csv"])
    assert c.stdout.splitlines()[0].endswith(",low,high,confidence")
    plain = runner.invoke(app, ["score", "ce.safetensors", "--scores", "msp", "-f", "csv"])
    assert plain.stdout.splitlines()[0].endswith(",convention")


def test_logits_then_probabilities_use_the_scores_both_can_give(tmp_path):
    a, b, y = two_models()
    p = np.exp(b - b.max(axis=1, keepdims=True))
    write_predictions(tmp_path / "a.safetensors", logits=a, labels=y)
    write_predictions(tmp_path / "p.safetensors", probs=p / p.sum(axis=1, keepdims=True), labels=y)
    files = [str(tmp_path / "a.safetensors"), str(tmp_path / "p.safetensors")]
    r = runner.invoke(app, ["compare", *files, "--bootstrap", "10", "-f", "json"])
    assert r.exit_code == 0, r.output
    scores = [s["score"] for s in json.loads(r.stdout)["comparisons"]]
    assert "msp" in scores and "maxlogit" not in scores
    r = runner.invoke(app, ["compare", *files, "--bootstrap", "10", "-s", "maxlogit"])
    assert r.exit_code == 2 and "Traceback" not in r.output
    assert "p.safetensors: score(s) maxlogit need logits" in r.stderr
