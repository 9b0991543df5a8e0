"""The Python API: one options object behind every entry point, names checked once, and
the same numbers as the CLI's JSON for every command (``result.to_dict()``)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import sc_eval
from sc_eval.cli import app
from sc_eval.errors import UsageError
from sc_eval.io import write_predictions
from sc_eval.pipeline import EvalOptions, evaluate_sources

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


def test_metric_names_with_values_are_checked_like_coverages(tmp_path: Path):
    z, y = _logits(3)
    f = tmp_path / "p.safetensors"
    write_predictions(f, logits=z, labels=y)
    pair = "risk@cov=0.9000001,risk@cov=0.9000002"
    r = runner.invoke(app, ["score", str(f), "-s", "msp", "-m", pair])
    assert r.exit_code == 2 and "are the same metric risk@cov=0.9" in r.stderr
    with pytest.raises(UsageError, match=r"0\.9000001 and 0\.9 are the same metric"):
        sc_eval.evaluate(z, y, scores=["msp"], metrics=["risk@cov=0.9000001"])
    ev = sc_eval.evaluate(z, y, scores=["msp"], metrics=["risk@cov=0.95000001"], coverages=[])
    named = sc_eval.evaluate(z, y, scores=["msp"], metrics=[], coverages=[0.95])
    assert ev.scores["msp"].metrics["risk@cov=0.95"] == named.scores["msp"].metrics["risk@cov=0.95"]


def test_a_coverage_is_computed_at_the_value_its_name_says():
    z, y = _logits(4)
    odd = sc_eval.evaluate(z, y, scores=["msp"], coverages=[0.8000001])
    plain = sc_eval.evaluate(z, y, scores=["msp"], coverages=[0.8])
    assert odd.coverages == (0.8,) and "risk@cov=0.8" in odd.scores["msp"].metrics
    assert odd.scores["msp"].metrics == plain.scores["msp"].metrics
    same = sc_eval.evaluate(z, y, scores=["msp"], coverages=[0.8, 0.8])  # repeated: kept once
    assert same.metric_names.count("risk@cov=0.8") == 1


# --------------------------------------------------------------------------- API = CLI
@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two models on the same 400 samples, a third set for threshold's test, a baseline."""
    d = tmp_path_factory.mktemp("api")
    out = {}
    for name, seed in (("a", 10), ("b", 11), ("test", 12)):
        z, y = _logits(seed if name == "test" else 10)
        if name == "b":  # the same samples, another model: confidence rescaled per row
            z = z * np.random.default_rng(11).uniform(0.3, 3.0, (len(y), 1)).astype(np.float32)
        out[name] = d / f"{name}.safetensors"
        write_predictions(out[name], logits=z, labels=y)
    out["baseline"] = d / "baseline.json"
    r = runner.invoke(app, ["score", str(out["a"]), "-f", "json", "-o", str(out["baseline"])])
    assert r.exit_code == 0, r.output
    return out


def cli_json(*args: str, code: int = 0) -> dict:
    r = runner.invoke(app, [*args, "--format", "json"])
    assert r.exit_code == code, r.output
    return json.loads(r.stdout)


def test_score_parity(files):
    doc = cli_json("score", str(files["a"]), "-s", "msp,maxlogit-pnorm", "--tune-split", "0.2",
                   "--coverages", "0.9,0.7", "--aurc-convention", "trapezoid")  # fmt: skip
    opts = EvalOptions(scores=("msp", "maxlogit-pnorm"), tune_split=0.2, coverages=(0.9, 0.7),
                       convention="trapezoid")  # fmt: skip
    ev = sc_eval.evaluate_predictions(sc_eval.load_predictions(files["a"]), opts)
    assert ev.to_dict() == doc
    assert doc["results"][0]["scores"]["maxlogit-pnorm"]["tuned"] is True


def test_score_of_several_sources_with_intervals_parity(files):
    doc = cli_json("score", str(files["a"]), str(files["b"]), "-s", "msp", "--bootstrap", "40",
                   "--seed", "5")  # fmt: skip
    preds = [sc_eval.load_predictions(files[k]) for k in ("a", "b")]
    report = evaluate_sources(preds, EvalOptions(scores=("msp",), seed=5), n_boot=40)
    assert report.intervals is not None and report.to_dict() == doc


def test_score_by_class_parity(files):
    from sc_eval.slices import slice_sources, slices_document

    doc = cli_json("score", str(files["a"]), "--by", "class", "-s", "msp")
    tables = slice_sources([files["a"]], EvalOptions(scores=("msp",)), by="class")
    assert slices_document(tables) == doc


def test_compare_parity(files):
    doc = cli_json("compare", str(files["a"]), str(files["b"]), "-s", "msp,maxlogit",
                   "--bootstrap", "50", "--seed", "3")  # fmt: skip
    from sc_eval.comparison import DEFAULT_COMPARE_COVERAGES, DEFAULT_COMPARE_METRICS

    opts = EvalOptions(scores=("msp", "maxlogit"), metrics=DEFAULT_COMPARE_METRICS,
                       coverages=DEFAULT_COMPARE_COVERAGES, risks=(), seed=3)  # fmt: skip
    preds = [sc_eval.load_predictions(files[k]) for k in ("a", "b")]
    assert sc_eval.compare(preds, opts, n_boot=50).to_dict() == doc


def test_gate_parity_json_baseline(files):
    doc = cli_json("gate", str(files["b"]), "--baseline", str(files["baseline"]),
                   "--metric", "aurc,acc", "--score", "msp", "--tolerance", "aurc=0.5",
                   code=1)  # fmt: skip
    report = sc_eval.run_gate(files["b"], files["baseline"], metrics=["aurc", "acc"],
                              scores=["msp"], tolerance="aurc=0.5")  # fmt: skip
    assert report.to_dict() == doc
    assert report.outcome == "failed" and report.exit_code == 1
    assert report.evaluation is not None and report.evaluation.source == str(files["b"])


def test_gate_parity_predictions_baseline_with_alpha(files):
    doc = cli_json("gate", str(files["b"]), "--baseline", str(files["a"]), "--alpha", "0.05",
                   "--bootstrap", "60", "--seed", "2", code=1)  # fmt: skip
    cand, base = (sc_eval.load_predictions(files[k]) for k in ("b", "a"))
    report = sc_eval.run_gate(cand, base, alpha=0.05, n_boot=60, seed=2)
    assert report.to_dict() == doc
    assert report.baseline_kind == "predictions" and not report.passed
    assert all(not np.isnan(v.p_value) for v in report.verdicts)


def test_threshold_parity(files):
    doc = cli_json("threshold", str(files["a"]), "--target-risk", "0.2", "-s", "maxlogit-pnorm",
                   "--tune-split", "0.3", "--test", str(files["test"]))  # fmt: skip
    result = sc_eval.select_threshold(files["a"], score="maxlogit-pnorm", target_risk=0.2,
                                      tune_split=0.3, test=files["test"])  # fmt: skip
    assert result.to_dict() == doc
    assert result.feasible and result.tuned and result.test is not None


def test_threshold_infeasible_parity(files):
    doc = cli_json("threshold", str(files["a"]), "--target-risk", "0.0", code=1)
    result = sc_eval.select_threshold(sc_eval.load_predictions(files["a"]), target_risk=0.0)
    assert not result.feasible and result.to_dict() == doc


def test_diagnose_parity(files):
    doc = cli_json("diagnose", str(files["a"]), str(files["b"]), "--bootstrap", "20")
    import sc_eval.diagnosis  # the module is sc_eval.diagnosis: sc_eval.diagnose stays the function

    preds = [sc_eval.load_predictions(files[k]) for k in ("a", "b")]
    assert callable(sc_eval.diagnose) and sc_eval.diagnose is sc_eval.diagnosis.diagnose
    assert sc_eval.diagnose(preds, n_boot=20).to_dict() == doc


def test_selective_metrics_resolves_names_like_evaluate():
    conf, err = np.array([0.9, 0.8, 0.7, 0.6, 0.5]), np.array([0, 0, 1, 0, 1], bool)
    odd = sc_eval.selective_metrics(conf, err, metrics=["risk@cov=0.95000001"])
    named = sc_eval.selective_metrics(conf, err, metrics=["risk@cov=0.95"])
    assert odd["risk@cov=0.95000001"] == named["risk@cov=0.95"]
    with pytest.raises(UsageError, match="are the same metric"):
        sc_eval.selective_metrics(conf, err, metrics=["risk@cov=0.9000001", "risk@cov=0.9000002"])
