"""``--nan-policy refuse|drop|rank-last``: rows holding NaN or ±Inf.

* ``refuse`` (default): an InputError with the count and the first row;
* ``drop``: exactly the evaluation of the finite rows, with a note and a warning;
  ``compare``/``gate`` drop the union of every model's bad rows;
* ``rank-last``: the rows stay, counted wrong, ranked below every finite sample
  (rejected first), scored as uniform predictions for ece/nll/brier.
"""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest
import reference as ref
from conftest import fixed_predictions, make_logits
from safetensors.numpy import save_file
from typer.testing import CliRunner

from sc_eval import evaluate
from sc_eval.cli import app
from sc_eval.errors import InputError, UsageError
from sc_eval.io import predictions_from_arrays, write_predictions
from sc_eval.pipeline import NAN_POLICIES, ScEvalWarning, score_samples

ENV = {"NO_COLOR": "1", "COLUMNS": "200", "SC_EVAL_DEBUG": None}
SCORES = ["msp", "maxlogit", "margin", "neg-entropy", "energy"]
METRICS = ["aurc", "e-aurc", "augrc", "auroc", "naurc", "fpr@95tpr"]
BAD_ROWS = [0, 5, 6, 31, 99]


def _poisoned(n: int = 100, c: int = 5, seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    z, y = make_logits(n, c, seed=seed)
    for i, v in zip(BAD_ROWS, [np.nan, np.inf, -np.inf, np.nan, np.inf], strict=True):
        z[i, i % c] = v
    return z, y


def _quiet(**kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ScEvalWarning)
        return evaluate(**kwargs)


def test_policies_are_a_registry():
    assert list(NAN_POLICIES) == ["refuse", "drop", "rank-last"]
    with pytest.raises(UsageError, match="Did you mean 'rank-last'"):
        evaluate(*make_logits(10, 3), nan_policy="rank_last")


def test_refuse_names_the_count_and_the_first_row():
    z, y = _poisoned()
    with pytest.raises(InputError, match=r"5 of 100 rows \(first at row 0\)"):
        evaluate(z, y)


@pytest.mark.parametrize("chunk_size", [7, 1000])
def test_drop_equals_evaluating_the_finite_rows(chunk_size):
    z, y = _poisoned()
    keep = np.setdiff1d(np.arange(len(y)), BAD_ROWS)
    with pytest.warns(ScEvalWarning, match="5 of 100 rows hold NaN or Inf logits"):
        scored = score_samples(
            predictions_from_arrays(z, y), scores=SCORES, chunk_size=chunk_size, nan_policy="drop"
        )
    assert scored.index.tolist() == keep.tolist()
    assert scored.nonfinite.tolist() == BAD_ROWS
    got = _quiet(logits=z, labels=y, scores=SCORES, metrics=METRICS, nan_policy="drop")
    want = evaluate(z[keep], y[keep], scores=SCORES, metrics=METRICS)
    assert got.n == len(keep)
    assert got.model_metrics == pytest.approx(want.model_metrics, rel=1e-12, nan_ok=True)
    for s in SCORES:
        assert got.scores[s].metrics == pytest.approx(want.scores[s].metrics, nan_ok=True)
    assert got.labels_sha256 == want.labels_sha256
    assert len(got.notes) == 1 and "5 of 100 rows" in got.notes[0] and "drop" in got.notes[0]


@pytest.mark.parametrize("chunk_size", [7, 1000])
def test_rank_last_counts_errors_and_rejects_them_first(chunk_size):
    z, y = _poisoned()
    n, c = z.shape
    bad = np.zeros(n, bool)
    bad[BAD_ROWS] = True
    got = _quiet(logits=z, labels=y, scores=SCORES, metrics=[*METRICS, "risk@cov=0.95"],
                 nan_policy="rank-last")  # fmt: skip
    clean = evaluate(z[~bad], y[~bad], scores=SCORES)
    assert got.n == n and "rank-last" in got.notes[0] and "5 of 100" in got.notes[0]
    # accuracy: the bad rows are wrong
    n_correct = clean.model_metrics["acc"] * (~bad).sum()
    assert got.model_metrics["acc"] == pytest.approx(n_correct / n)
    # nll/brier: a uniform prediction on the bad rows
    nll = (clean.model_metrics["nll"] * (~bad).sum() + bad.sum() * math.log(c)) / n
    brier = (clean.model_metrics["brier"] * (~bad).sum() + bad.sum() * (1 - 1 / c)) / n
    assert got.model_metrics["nll"] == pytest.approx(nll)
    assert got.model_metrics["brier"] == pytest.approx(brier)
    with pytest.warns(ScEvalWarning, match="rank-last"):
        scored = score_samples(predictions_from_arrays(z, y), scores=SCORES, nan_policy="rank-last")
    for s in SCORES:
        keys = scored.keys[s]
        assert np.all(keys[bad] == -np.inf) and np.isfinite(keys[~bad]).all()
        assert np.isnan(scored.values[s][bad]).all()
        # the reference: the same ranking with the bad rows as errors below every other key
        conf = np.where(bad, keys[~bad].min() - 1.0, keys).tolist()
        err = scored.errors.tolist()
        assert all(err[i] for i in BAD_ROWS)
        assert got.scores[s].metrics["aurc"] == pytest.approx(ref.aurc(conf, err), rel=1e-9)
        assert got.scores[s].metrics["auroc"] == pytest.approx(ref.auroc(conf, err), rel=1e-9)
        # rejected first: at coverage 95% exactly the 95 finite rows are accepted
        risk95 = 1 - clean.model_metrics["acc"]
        assert got.scores[s].metrics["risk@cov=0.95"] == pytest.approx(risk95)


def test_rank_last_on_probabilities_skips_the_sum_check():
    z, y = make_logits(40, 4, seed=2)
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    p[3] = np.nan
    ev = _quiet(probs=p, labels=y, scores=["msp"], nan_policy="rank-last")
    assert ev.n == 40 and ev.notes


@pytest.mark.parametrize("policy", ["drop", "rank-last"])
def test_every_row_non_finite_is_an_error(policy):
    z = np.full((4, 3), np.nan, np.float32)
    with pytest.raises(InputError, match="every one of the 4 rows"):
        evaluate(z, np.zeros(4, np.int64), nan_policy=policy)


def test_drop_with_a_tuning_split_keeps_the_split_and_skips_bad_rows():
    z, y = make_logits(200, 5, seed=5)
    from sc_eval.tuning import split_indices

    _, eval_idx = split_indices(200, fraction=0.2, seed=0)
    bad = eval_idx[[0, 10, 50]]  # only in the evaluation part (tuning refuses NaN rows)
    z[bad, 1] = np.nan
    ev = _quiet(logits=z, labels=y, scores=["maxlogit-pnorm", "msp"], tune_split=0.2,
                nan_policy="drop")  # fmt: skip
    assert ev.n == len(eval_idx) - 3
    assert ev.scores["maxlogit-pnorm"].tuned


# --------------------------------------------------------------------------- CLI
@pytest.fixture
def files(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    z, y = fixed_predictions()
    write_predictions("good.safetensors", logits=z, labels=y)
    a = z.copy()
    a[[3, 7]] = np.nan
    save_file({"logits": a, "labels": y}, "a.safetensors")
    b = z.copy()
    b[[7, 11], 0] = np.inf
    save_file({"logits": b, "labels": y}, "b.safetensors")
    return tmp_path


def run(*args: str, code: int = 0):
    r = CliRunner(env=ENV).invoke(app, list(args))
    assert r.exit_code == code, (r.exit_code, r.output, r.exception)
    return r


def test_cli_score_drop_reports_in_notes_and_warns(files):
    r = run("score", "a.safetensors", "--nan-policy", "drop", "-f", "json")
    doc = json.loads(r.stdout)["results"][0]
    assert doc["n"] == 22
    assert "2 of 24 rows" in doc["notes"][0] and "--nan-policy drop" in doc["notes"][0]
    assert r.stderr.startswith("sc-eval: warning: a.safetensors: 2 of 24 rows")
    table = run("score", "a.safetensors", "--nan-policy", "rank-last").stdout
    assert "N=24" in table and "rank-last" in table


def test_cli_compare_drops_the_union_of_bad_rows(files):
    r = run("compare", "a.safetensors", "b.safetensors", "good.safetensors",
            "--nan-policy", "drop", "--bootstrap", "20", "-f", "json")  # fmt: skip
    doc = json.loads(r.stdout)
    assert doc["n"] == 21  # rows 3, 7, 11
    assert all(res["n"] == 21 for res in doc["results"])
    assert all("3 of 24 samples" in res["notes"][0] for res in doc["results"])
    table = run("compare", "a.safetensors", "good.safetensors", "--nan-policy", "drop",
                "--bootstrap", "0").stdout  # fmt: skip
    assert "2 of 24 samples hold NaN or Inf in at least one model" in " ".join(table.split())
    refused = run("compare", "good.safetensors", "a.safetensors", code=2)
    assert "a.safetensors" in refused.stderr and "row 3" in refused.stderr


def test_cli_gate_with_a_predictions_baseline_drops_the_union(files):
    # a and b differ only in their bad rows: after dropping rows 3, 7 and 11 from both,
    # they are the same predictions, so nothing can have regressed
    r = run("gate", "b.safetensors", "--baseline", "a.safetensors", "--nan-policy", "drop",
            "--alpha", "0.05", "--bootstrap", "50", "-f", "json")  # fmt: skip
    doc = json.loads(r.stdout)
    assert doc["baseline_kind"] == "predictions" and doc["passed"] and doc["rules"]
    assert all(rule["candidate"] == rule["baseline"] for rule in doc["rules"])
    assert "3 of 24 samples" in r.stderr
    run("gate", "good.safetensors", "--baseline", "a.safetensors", "--nan-policy", "rank-last",
        "-f", "json", code=0)  # fmt: skip


def test_cli_threshold_policies(files, tmp_path):
    drop = run("threshold", "a.safetensors", "--target-coverage", "0.5", "--nan-policy", "drop",
               "-f", "json")  # fmt: skip
    assert json.loads(drop.stdout)["calibration"]["n"] == 22
    keep = run("threshold", "a.safetensors", "--target-coverage", "1", "--nan-policy",
               "rank-last", "-f", "json", "-o", "sel.json")  # fmt: skip
    doc = json.loads(keep.stdout)
    assert doc["calibration"]["n"] == 24 and doc["calibration"]["errors"] >= 2
    assert json.loads((tmp_path / "sel.json").read_text())["threshold"] == "-inf"
