"""The Python API: one options object behind every entry point, names checked once, and
the same numbers as the CLI's JSON for every command (``result.to_dict()``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import sc_eval
from sc_eval.cli import app
from sc_eval.errors import UsageError
from sc_eval.io import write_predictions
from sc_eval.pipeline import EvalOptions

runner = CliRunner()


def _logits(seed: int, n: int = 400, c: int = 5) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, c, n)
    z = rng.normal(size=(n, c))
    z[np.arange(n), y] += rng.normal(1.5, 1.5, n)
    return z.astype(np.float32), y


# --------------------------------------------------------------------------- options
def test_evaluate_takes_every_option_including_chunk_size():
    z, y = _logits(0)
    whole = sc_eval.evaluate(z, y, scores=["msp", "maxlogit"])
    chunked = sc_eval.evaluate(z, y, scores=["msp", "maxlogit"], chunk_size=7)
    assert chunked.scores["msp"].metrics == whole.scores["msp"].metrics
    assert chunked.model_metrics == whole.model_metrics


def test_evaluate_options_object_and_keywords_agree():
    z, y = _logits(1)
    opts = EvalOptions(scores=("msp",), convention="trapezoid", coverages=(0.8,))
    a = sc_eval.evaluate(z, y, options=opts)
    b = sc_eval.evaluate(z, y, scores=["msp"], convention="trapezoid", coverages=[0.8])
    assert a == b
    c = sc_eval.evaluate(z, y, options=opts, convention="mean")  # a keyword overrides
    assert c.convention == "mean" and c.scores["msp"].metrics["risk@cov=0.8"] == pytest.approx(
        a.scores["msp"].metrics["risk@cov=0.8"]
    )
    preds = load_predictions_from(z, y)
    assert sc_eval.evaluate_predictions(preds, opts).scores == a.scores
    assert sc_eval.evaluate_predictions(preds, scores=["msp"], convention="trapezoid",
                                        coverages=[0.8]).scores == a.scores  # fmt: skip


def load_predictions_from(z: np.ndarray, y: np.ndarray) -> sc_eval.Predictions:
    from sc_eval.io import predictions_from_arrays

    return predictions_from_arrays(z, y)


def test_a_misspelt_option_is_a_type_error():
    z, y = _logits(2)
    with pytest.raises(TypeError, match="chunksize"):
        sc_eval.evaluate(z, y, chunksize=10)


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"scores": ("msq",)}, "unknown score 'msq'"),
        ({"metrics": ("aurcc",)}, "unknown metric 'aurcc'"),
        ({"coverages": (1.5,)}, "outside"),
        ({"convention": "mid"}, "convention"),
        ({"nan_policy": "ignore"}, "--nan-policy"),
        ({"ood_cost": -1.0}, "--ood-cost"),
    ],
)
def test_options_are_checked_when_made(kw, match):
    with pytest.raises(UsageError, match=match):
        EvalOptions(**kw)


def test_options_store_tuples_and_canonical_names():
    opts = EvalOptions(scores=["msp"], metrics=["aurc"], coverages=[0.9], risks=[])
    assert opts.scores == ("msp",) and opts.metrics == ("aurc",)
    assert opts.coverages == (0.9,) and opts.risks == ()


# --------------------------------------------------------------------------- names
def test_coverages_equal_to_6_digits_are_refused_not_merged(tmp_path: Path):
    z, y = _logits(3)
    with pytest.raises(UsageError, match=r"0\.9000001 and 0\.9000002 are the same metric"):
        sc_eval.evaluate(z, y, scores=["msp"], coverages=[0.9000001, 0.9000002])
    f = tmp_path / "p.safetensors"
    write_predictions(f, logits=z, labels=y)
    r = runner.invoke(app, ["score", str(f), "--coverages", "0.9000001,0.9000002"])
    assert r.exit_code == 2
    assert r.stderr.count("\n") == 1 and "risk@cov=0.9" in r.stderr
    with pytest.raises(UsageError, match=r"risks 0\.0100000001 and 0\.01"):
        EvalOptions(risks=(0.0100000001, 0.01))


def test_a_coverage_is_computed_at_the_value_its_name_says():
    z, y = _logits(4)
    odd = sc_eval.evaluate(z, y, scores=["msp"], coverages=[0.8000001])
    plain = sc_eval.evaluate(z, y, scores=["msp"], coverages=[0.8])
    assert odd.coverages == (0.8,) and "risk@cov=0.8" in odd.scores["msp"].metrics
    assert odd.scores["msp"].metrics == plain.scores["msp"].metrics
    same = sc_eval.evaluate(z, y, scores=["msp"], coverages=[0.8, 0.8])  # repeated: kept once
    assert same.metric_names.count("risk@cov=0.8") == 1
