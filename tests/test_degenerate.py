"""Degenerate but valid input gets numbers plus an explanation, never an error (issue 9).

All-correct and all-wrong inputs through ``evaluate`` and the all-correct table are
tested in ``test_metrics.py`` / ``test_cli_score.py``; here: constant scores, a
single class in the labels, N = 1, all wrong through the CLI, and logits that
look like probabilities (a warning, never a guess).
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from conftest import make_logits
from typer.testing import CliRunner

from sc_eval import evaluate
from sc_eval.cli import app
from sc_eval.io import write_predictions

ENV = {"NO_COLOR": "1", "COLUMNS": "200", "SC_EVAL_DEBUG": None}
SCORES = ["msp", "maxlogit", "margin", "logit-margin", "neg-entropy", "gini", "energy"]


def score_json(tmp_path, logits, labels, *extra: str) -> tuple[dict, str]:
    path = tmp_path / "p.safetensors"
    write_predictions(path, logits=np.asarray(logits, np.float32), labels=np.asarray(labels))
    r = CliRunner(env=ENV).invoke(app, ["score", str(path), "-f", "json", *extra])
    assert r.exit_code == 0, (r.output, r.exception)
    assert "Traceback" not in r.output
    return json.loads(r.stdout)["results"][0], r.stderr


@pytest.mark.parametrize("convention", ["mean", "trapezoid"])
def test_constant_scores_give_aurc_equal_to_the_error_rate(convention):
    # identical rows: every score ties every sample; argmax is class 0 everywhere
    z = np.tile(np.array([[2.0, 1.0, 0.0]]), (12, 1))
    y = np.array([0, 1, 2, 0, 0, 1, 0, 2, 0, 0, 1, 0])
    err = float(np.mean(y != 0))
    ev = evaluate(z, y, scores=SCORES, metrics=["aurc", "augrc", "auroc"], convention=convention,
                  coverages=[1.0, 0.5, 0.1])  # fmt: skip
    for s in SCORES:
        m = ev.scores[s].metrics
        shift = err / (2 * len(y)) if convention == "trapezoid" else 0.0
        assert m["aurc"] == pytest.approx(err - shift, abs=1e-12)
        assert m["auroc"] == pytest.approx(0.5)
        for c in (1.0, 0.5, 0.1):
            assert m[f"risk@cov={c:g}"] == pytest.approx(err)
    assert any("same score" in n and "error rate" in n for n in ev.notes)


def test_constant_scores_explained_in_the_table(tmp_path):
    z = np.zeros((10, 3))
    doc, _ = score_json(tmp_path, z, np.arange(10) % 3, "-s", "msp,energy")
    assert doc["scores"]["msp"]["metrics"]["aurc"] == pytest.approx(1 - doc["model_metrics"]["acc"])
    assert any("msp, energy: all 10 samples have the same score" in n for n in doc["notes"])


def test_distinct_scores_have_no_tie_note():
    ev = evaluate(*make_logits(50, 4, seed=1), scores=["msp"])
    assert not any("same score" in n for n in ev.notes)


def test_single_class_in_the_labels(tmp_path):
    z, _ = make_logits(40, 3, seed=2)
    doc, _ = score_json(tmp_path, z, np.zeros(40, np.int64), "-s", "msp")
    m = doc["scores"]["msp"]["metrics"]
    assert all(m[k] is not None for k in ("aurc", "e-aurc", "naurc", "augrc", "auroc"))
    assert 0 < doc["model_metrics"]["acc"] < 1
    assert any("every label is class 0 (one of C = 3)" in n for n in doc["notes"])


def test_one_sample(tmp_path):
    doc, _ = score_json(tmp_path, [[1.0, 0.0]], [1], "-s", "msp")
    msp = doc["scores"]["msp"]
    assert doc["n"] == 1 and msp["metrics"]["aurc"] == 1.0
    for name in ("naurc", "auroc", "fpr@95tpr"):
        assert msp["metrics"][name] is None and msp["notes"][name]


def test_all_wrong_through_the_cli(tmp_path):
    z, _ = make_logits(30, 4, seed=3)
    wrong = (z.argmax(axis=1) + 1) % 4
    doc, _ = score_json(tmp_path, z, wrong, "-s", "msp,maxlogit")
    for s in ("msp", "maxlogit"):
        res = doc["scores"][s]
        assert res["metrics"]["aurc"] == pytest.approx(1.0)
        assert res["metrics"]["naurc"] is None and "error rate is 1" in res["notes"]["naurc"]
    assert doc["model_metrics"]["acc"] == 0.0


def test_logits_that_look_like_probabilities_warn_and_are_not_reinterpreted(tmp_path):
    z, y = make_logits(64, 4, seed=4)
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    doc, err = score_json(tmp_path, p, y, "-s", "msp")
    assert "sc-eval: warning:" in err and "look like probabilities" in err
    assert doc["input_kind"] == "logits"  # never guessed
    # MSP of softmax(p), not of p: the confidences stay close to 1/C
    assert doc["model_metrics"]["nll"] == pytest.approx(
        float(np.mean(np.log(np.exp(p).sum(axis=1)) - p[np.arange(64), y])), rel=1e-5
    )
    assert not math.isnan(doc["scores"]["msp"]["metrics"]["aurc"])
