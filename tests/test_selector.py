"""The Selector file: round trip, validation, and the same decision as the CLI."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import numpy as np
import pytest
from typer.testing import CliRunner

import sc_eval
from sc_eval.cli import app
from sc_eval.errors import InputError, UsageError
from sc_eval.io import load_predictions, write_predictions
from sc_eval.pipeline import score_samples
from sc_eval.scores import get_score
from sc_eval.selector import SELECTOR_SCHEMA, SELECTOR_VERSION, Selector
from sc_eval.threshold import calibrate
from tests.conftest import fixed_predictions
from tests.test_threshold import confident_logits

runner = CliRunner()


@pytest.fixture
def files(tmp_path):
    z, y = confident_logits(4000, 10, seed=9)
    cal, test = tmp_path / "cal.safetensors", tmp_path / "test.safetensors"
    write_predictions(cal, logits=z[:2000], labels=y[:2000])
    write_predictions(test, logits=z[2000:], labels=y[2000:])
    return cal, test, z, y


def _selector(path, **kw) -> Selector:
    if "target_coverage" not in kw:
        kw.setdefault("target_risk", 0.1)
    return Selector.from_result(calibrate(load_predictions(path), **kw))


def test_exported_from_package() -> None:
    assert sc_eval.Selector is Selector
    assert "Selector" in sc_eval.__all__


@pytest.mark.parametrize(
    ("score", "params"), [("msp", {}), ("maxlogit-pnorm", {"p": 4.0}), ("energy", {"T": 2.0})]
)
def test_json_round_trip(files, tmp_path, score, params) -> None:
    cal, *_ = files
    sel = _selector(cal, score=score, params=params)
    path = tmp_path / "sel.json"
    sel.save(path)
    doc = json.loads(path.read_text(encoding="utf-8"))
    assert doc["schema"] == SELECTOR_SCHEMA and doc["version"] == SELECTOR_VERSION
    assert list(doc)[:2] == ["schema", "version"]
    back = Selector.load(path)
    assert back == sel
    assert back.threshold == sel.threshold  # bit-exact float round trip
    assert back.params == get_score(score).resolve(params)
    for k in ("labels_sha256", "data_sha256", "n", "accepted", "tests"):
        assert k in back.calibration
    assert "probability at least 0.95" in back.guarantee


def test_tuned_params_are_kept(files, tmp_path) -> None:
    cal, *_ = files
    sel = Selector.from_result(
        calibrate(
            load_predictions(cal),
            score="maxlogit-pnorm",
            params={"p": 6.0},
            tuned=True,
            target_risk=0.1,
        )
    )
    sel.save(tmp_path / "s.json")
    back = Selector.load(tmp_path / "s.json")
    assert back.tuned and back.params == {"p": 6.0}


def test_accept_matches_cli_scoring_code(files) -> None:
    cal, test, z, _ = files
    sel = _selector(cal, score="maxlogit-pnorm")
    preds = load_predictions(test)
    scored = score_samples(preds, scores=["maxlogit-pnorm"], params={"maxlogit-pnorm": sel.params})
    expected = scored.keys["maxlogit-pnorm"] >= sel.threshold
    np.testing.assert_array_equal(sel.accept(z[2000:]), expected)
    keys, values = sel.confidence(z[2000:])
    np.testing.assert_array_equal(keys, scored.keys["maxlogit-pnorm"])
    np.testing.assert_array_equal(values, scored.values["maxlogit-pnorm"])


def test_accept_reproduces_calibration_coverage(files) -> None:
    cal, _, z, _ = files
    for kw in ({"target_risk": 0.1}, {"target_coverage": 0.7}):
        sel = _selector(cal, score="msp", **kw)
        assert int(sel.accept(z[:2000]).sum()) == sel.calibration["accepted"]


def test_accept_equals_cli_decision(files, tmp_path) -> None:
    cal, test, z, _ = files
    out = tmp_path / "selector.json"
    r = runner.invoke(
        app,
        [
            "threshold",
            str(cal),
            "-s",
            "msp",
            "--target-risk",
            "0.1",
            "--test",
            str(test),
            "-o",
            str(out),
            "-f",
            "json",
        ],
    )
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    sel = Selector.load(out)
    assert sel.threshold == doc["threshold"]["key"]
    assert int(sel.accept(z[:2000]).sum()) == doc["calibration"]["accepted"]
    mask = sel.accept(z[2000:])
    assert int(mask.sum()) == doc["test"]["accepted"]
    errors = z[2000:].argmax(1) != np.asarray(load_predictions(test).labels)
    assert int(errors[mask].sum()) == doc["test"]["errors"]


def test_accept_with_ties_and_saturation(tmp_path) -> None:
    z, y = fixed_predictions()  # exact tied rows and a float32-saturated MSP
    path = tmp_path / "fixed.safetensors"
    write_predictions(path, logits=z, labels=y)
    sel = _selector(path, score="msp", target_coverage=0.5)
    mask = sel.accept(z)
    assert mask[2] == mask[3] and mask[10] == mask[11]  # tied rows decided together
    assert int(mask.sum()) == sel.calibration["accepted"]


def test_accept_torch_and_probs(files) -> None:
    torch = pytest.importorskip("torch")
    cal, _, z, _ = files
    sel = _selector(cal, score="msp")
    expected = sel.accept(z)
    np.testing.assert_array_equal(sel.accept(torch.from_numpy(z)), expected)
    p = torch.softmax(torch.from_numpy(z).double(), dim=1).numpy()
    # probabilities give the same MSP decision up to rounding at the threshold
    agree = sel.accept(probs=p) == expected
    assert agree.mean() > 0.999
    bf16 = sel.accept(torch.from_numpy(z).to(torch.bfloat16))
    assert bf16.dtype == bool and bf16.shape == expected.shape


def test_accept_refuses_bad_input(files) -> None:
    cal, _, z, _ = files
    sel = _selector(cal, score="maxlogit-pnorm")
    with pytest.raises(InputError, match="classes"):
        sel.accept(z[:, :5])
    with pytest.raises(InputError, match="2-D"):
        sel.accept(z[0])
    bad = z[:10].copy()
    bad[3, 1] = np.nan
    with pytest.raises(InputError, match="row 3"):
        sel.accept(bad)
    with pytest.raises(UsageError, match="needs logits"):
        sel.accept(probs=np.full((2, 10), 0.1))
    with pytest.raises(UsageError):
        sel.accept()


def test_infeasible_result_is_not_a_selector(files) -> None:
    cal, *_ = files
    result = calibrate(load_predictions(cal), score="msp", target_risk=0.0)
    assert not result.feasible
    with pytest.raises(UsageError):
        Selector.from_result(result)


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda d: d.update(schema="other"), "schema"),
        (lambda d: d.update(version=99), "version"),
        (lambda d: d.update(score="nope"), "score"),
        (lambda d: d.pop("threshold"), "threshold"),
        (lambda d: d.update(threshold="high"), "threshold"),
        (lambda d: d.update(params={"p": "two"}), "params"),
        (lambda d: d.update(mode="fast"), "mode"),
    ],
)
def test_load_validates_fields(files, tmp_path, mutate, field) -> None:
    cal, *_ = files
    doc = _selector(cal).to_dict()
    mutate(doc)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(InputError, match=f"field '{field}'"):
        Selector.load(path)


def test_load_reports_missing_and_corrupt_files(tmp_path) -> None:
    with pytest.raises(InputError, match="no such file"):
        Selector.load(tmp_path / "missing.json")
    (tmp_path / "x.json").write_text("{not json")
    with pytest.raises(InputError, match="not valid JSON"):
        Selector.load(tmp_path / "x.json")


def test_save_is_atomic(files, tmp_path) -> None:
    cal, *_ = files
    sel = _selector(cal)
    with pytest.raises(InputError):
        sel.save(tmp_path / "no-such-dir" / "s.json")
    path = tmp_path / "s.json"
    sel.save(path)
    before = path.read_bytes()
    with pytest.raises(ValueError):
        replace(sel, bound=math.nan).save(path)  # NaN is not strict JSON: nothing written
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "cal.safetensors",
        "s.json",
        "test.safetensors",
    ]


def test_accept_equals_cli_decision_with_tuned_params(files, tmp_path) -> None:
    cal, test, z, _ = files
    out = tmp_path / "selector.json"
    r = runner.invoke(
        app,
        ["threshold", str(cal), "-s", "maxlogit-pnorm", "--target-risk", "0.1",
         "--val", str(test), "--test", str(test), "-o", str(out), "-f", "json"],
    )  # fmt: skip
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    sel = Selector.load(out)
    assert sel.tuned and sel.params == doc["params"]
    assert int(sel.accept(z[:2000]).sum()) == doc["calibration"]["accepted"]
    assert int(sel.accept(z[2000:]).sum()) == doc["test"]["accepted"]


def test_infinite_threshold_round_trips(tmp_path) -> None:
    sel = Selector(
        score="msp", params={}, threshold=math.inf, threshold_value=1.0, mode="coverage",
        target=0.1, delta=0.05, bound=0.3,
    )  # fmt: skip
    sel.save(tmp_path / "s.json")
    assert '"threshold": "inf"' in (tmp_path / "s.json").read_text()
    back = Selector.load(tmp_path / "s.json")
    assert back == sel
    # the MSP key is -log(sum of the other probability ratios): finite even for a gap of 1000
    assert back.accept(np.array([[1000.0, 0.0], [5.0, 0.0]])).tolist() == [False, False]
