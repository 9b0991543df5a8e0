"""sc-eval gate: rules, baselines, exit codes, step summary, JUnit, baseline update."""

from __future__ import annotations

import json
import math
from pathlib import Path
from xml.etree import ElementTree as ET

import numpy as np
import pytest
from typer.testing import CliRunner

from sc_eval.cli import app
from sc_eval.errors import UsageError
from sc_eval.gate import Rule, Verdict, parse_rules, parse_tolerances
from sc_eval.io import write_predictions

runner = CliRunner()


def _logits(seed: int, n: int = 1500, c: int = 8) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, c, n)
    z = rng.normal(size=(n, c))
    z[np.arange(n), y] += rng.normal(2.0, 1.5, n)
    return z, y


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    """A baseline model, a degraded one (same argmax, scrambled confidence), a better one."""
    z, y = _logits(0)
    rng = np.random.default_rng(1)
    out = {}
    base = tmp_path / "base.safetensors"
    write_predictions(base, logits=z.astype(np.float32), labels=y)
    out["base"] = base
    worse = tmp_path / "worse.safetensors"  # same predictions, confidence scrambled
    write_predictions(
        worse, logits=(z * rng.uniform(0.2, 4.0, (len(y), 1))).astype(np.float32), labels=y
    )
    out["worse"] = worse
    # better: push confidence of correct samples up, wrong ones down (argmax unchanged)
    correct = z.argmax(1) == y
    better = tmp_path / "better.safetensors"
    zb = z * np.where(correct, 2.0, 0.5)[:, None]
    write_predictions(better, logits=zb.astype(np.float32), labels=y)
    out["better"] = better
    other = tmp_path / "other.safetensors"
    z2, y2 = _logits(5)
    write_predictions(other, logits=z2.astype(np.float32), labels=y2)
    out["other"] = other
    bj = tmp_path / "baseline.json"
    r = runner.invoke(app, ["score", str(base), "--format", "json", "-o", str(bj)])
    assert r.exit_code == 0, r.output
    out["json"] = bj
    return out


def gate(*args: str, env: dict[str, str] | None = None):
    return runner.invoke(app, ["gate", *args], env=env)


def test_same_model_passes(files):
    r = gate(str(files["base"]), "--baseline", str(files["json"]))
    assert r.exit_code == 0, r.output
    assert "PASS" in r.stdout and "FAIL" not in r.stdout


def test_regression_beyond_tolerance_fails(files):
    r = gate(str(files["worse"]), "--baseline", str(files["json"]))
    assert r.exit_code == 1, r.output
    assert "FAIL" in r.stdout
    assert "gate FAILED: aurc[msp]" in r.stderr


def test_regression_within_tolerance_passes(files):
    doc = json.loads(files["json"].read_text())
    base = doc["results"][0]["scores"]["msp"]["metrics"]["aurc"]
    r = gate(str(files["worse"]), "--baseline", str(files["json"]), "--format", "json")
    cand = json.loads(r.stdout)["rules"][0]["candidate"]
    gap_pp = (cand - base) * 100
    assert gap_pp > 0
    ok = gate(
        str(files["worse"]),
        "--baseline",
        str(files["json"]),
        "--metric",
        "aurc",
        "--score",
        "msp",
        "--tolerance",
        f"{gap_pp * 1.01:.6f}",
    )
    assert ok.exit_code == 0, ok.output
    bad = gate(
        str(files["worse"]),
        "--baseline",
        str(files["json"]),
        "--metric",
        "aurc",
        "--score",
        "msp",
        "--tolerance",
        f"{gap_pp * 0.99:.6f}",
    )
    assert bad.exit_code == 1


def test_improvement_passes(files):
    r = gate(str(files["better"]), "--baseline", str(files["json"]), "--format", "json")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    aurc = doc["rules"][0]
    assert aurc["metric"] == "aurc" and aurc["delta"] < 0 and aurc["passed"]
    assert doc["passed"] is True and doc["schema"] == "sc-eval/gate"


def test_per_metric_tolerance_and_several_rules(files):
    r = gate(
        str(files["worse"]),
        "--baseline",
        str(files["json"]),
        "--metric",
        "aurc,acc,augrc",
        "--score",
        "msp",
        "--tolerance",
        "aurc=100,augrc=100",
        "--format",
        "json",
    )
    assert r.exit_code == 0, r.output
    rules = json.loads(r.stdout)["rules"]
    assert [(x["metric"], x["score"], x["tolerance"]) for x in rules] == [
        ("aurc", "msp", 100.0),
        ("acc", None, 0.0),
        ("augrc", "msp", 100.0),
    ]


def test_wrong_convention_baseline_exits_2(files):
    r = gate(str(files["base"]), "--baseline", str(files["json"]), "--aurc-convention", "trapezoid")
    assert r.exit_code == 2
    assert "convention" in r.stderr and "Traceback" not in r.output


def test_wrong_labels_baseline_exits_2(files):
    r = gate(str(files["other"]), "--baseline", str(files["json"]))
    assert r.exit_code == 2
    assert "labels_sha256" in r.stderr


@pytest.mark.parametrize(
    "text",
    [
        "{not json",
        '{"schema": "other"}',
        '{"schema": "sc-eval/result", "version": 99}',
        '{"schema": "sc-eval/result", "version": 1, "results": []}',
    ],
)
def test_malformed_baseline_exits_2(files, tmp_path, text):
    bad = tmp_path / "bad.json"
    bad.write_text(text)
    r = gate(str(files["base"]), "--baseline", str(bad))
    assert r.exit_code == 2, r.output
    assert r.stderr.startswith("sc-eval: error:") and "bad.json" in r.stderr
    assert "Traceback" not in r.output


def test_missing_metric_in_baseline_exits_2(files):
    r = gate(str(files["base"]), "--baseline", str(files["json"]), "--metric", "risk@cov=0.42")
    assert r.exit_code == 2
    assert "no metric 'risk@cov=0.42'" in r.stderr


def test_step_summary_appended(files, tmp_path):
    summary = tmp_path / "summary.md"
    summary.write_text("# earlier step\n")
    r = gate(
        str(files["worse"]),
        "--baseline",
        str(files["json"]),
        env={"GITHUB_STEP_SUMMARY": str(summary)},
    )
    assert r.exit_code == 1
    text = summary.read_text()
    assert text.startswith("# earlier step\n")
    assert "### sc-eval gate: ❌ failed" in text
    assert "| aurc[msp] (%) |" in text and "| **FAIL** |" in text


def test_junit_xml_parses_back(files, tmp_path):
    xml = tmp_path / "gate.xml"
    r = gate(str(files["worse"]), "--baseline", str(files["json"]), "--junit", str(xml))
    assert r.exit_code == 1
    root = ET.parse(xml).getroot()
    assert root.tag == "testsuite"
    assert root.get("tests") == "2" and root.get("failures") == "1"
    cases = root.findall("testcase")
    assert [c.get("name") for c in cases] == ["aurc[msp] (%)", "acc (%)"]
    failure = cases[0].find("failure")
    assert failure is not None and "worse by" in failure.get("message", "")
    assert "baseline=" in (failure.text or "") and cases[1].find("failure") is None


def test_update_baseline_round_trip(files, tmp_path):
    bj = tmp_path / "b.json"
    bj.write_text(files["json"].read_text())
    r = gate(str(files["worse"]), "--baseline", str(bj), "--update-baseline")
    assert r.exit_code == 0, r.output
    doc = json.loads(bj.read_text())
    assert doc["schema"] == "sc-eval/result" and doc["results"][0]["source"].endswith(
        "worse.safetensors"
    )
    again = gate(str(files["worse"]), "--baseline", str(bj))
    assert again.exit_code == 0, again.output


def test_json_status_agrees_with_the_table_under_update_baseline(files, tmp_path):
    """The table says ACCEPTED, the JSON status says accepted; ``passed`` stays what the
    rules say (the worse model fails them) and the run exits 0."""
    bj = tmp_path / "b.json"
    bj.write_text(files["json"].read_text())
    table = gate(str(files["worse"]), "--baseline", str(bj), "--update-baseline")
    assert table.exit_code == 0 and "ACCEPTED" in table.stdout
    bj.write_text(files["json"].read_text())
    r = gate(str(files["worse"]), "--baseline", str(bj), "--update-baseline", "-f", "json")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["status"] == "accepted" and doc["updated_baseline"] is True
    assert doc["passed"] is False and not doc["rules"][0]["passed"]
    failed = json.loads(
        gate(str(files["worse"]), "--baseline", str(files["json"]), "-f", "json").stdout
    )
    assert failed["status"] == "failed" and failed["passed"] is False
    assert failed["updated_baseline"] is False


def test_json_tolerance_fraction(files):
    r = gate(
        str(files["base"]), "--baseline", str(files["json"]), "--metric", "aurc,nll",
        "--score", "msp", "--tolerance", "aurc=0.5,nll=0.25", "-f", "json",
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["status"] == "passed" and doc["passed"] is True
    aurc, nll = doc["rules"]
    assert aurc["tolerance"] == 0.5 and aurc["tolerance_unit"] == "percentage points"
    assert aurc["tolerance_fraction"] == pytest.approx(0.005)
    assert nll["tolerance"] == 0.25 and nll["tolerance_unit"] == "raw"
    assert nll["tolerance_fraction"] == 0.25


def test_update_baseline_refused_for_predictions_baseline(files):
    r = gate(str(files["worse"]), "--baseline", str(files["base"]), "--update-baseline")
    assert r.exit_code == 2 and "JSON baseline" in r.stderr


def test_alpha_refused_with_json_baseline(files):
    r = gate(str(files["worse"]), "--baseline", str(files["json"]), "--alpha", "0.05")
    assert r.exit_code == 2 and "predictions baseline" in r.stderr


def test_predictions_baseline_significance_gating(files):
    base = str(files["base"])
    # clearly worse and significant: fails with and without --alpha
    r = gate(
        str(files["worse"]),
        "--baseline",
        base,
        "--alpha",
        "0.05",
        "--bootstrap",
        "200",
        "--format",
        "json",
    )
    assert r.exit_code == 1, r.output
    rule = json.loads(r.stdout)["rules"][0]
    assert rule["p_value"] < 0.05 and rule["interval"][0] > 0
    # same model: regression 0, never fails
    same = gate(base, "--baseline", base, "--alpha", "0.05", "--bootstrap", "100")
    assert same.exit_code == 0, same.output


def test_significance_gating_keeps_small_noisy_regression(tmp_path):
    """A tiny regression beyond tolerance fails without --alpha but passes with it."""
    z, y = _logits(3, n=400)
    rng = np.random.default_rng(9)
    base, cand = tmp_path / "a.safetensors", tmp_path / "b.safetensors"
    write_predictions(base, logits=z.astype(np.float32), labels=y)
    noise = z * (1 + 0.02 * rng.standard_normal((len(y), 1)))
    write_predictions(cand, logits=noise.astype(np.float32), labels=y)
    plain = gate(str(cand), "--baseline", str(base), "--metric", "aurc", "--format", "json")
    delta = json.loads(plain.stdout)["rules"][0]["delta"]
    if delta <= 0:  # make the candidate the worse one
        base, cand = cand, base
        plain = gate(str(cand), "--baseline", str(base), "--metric", "aurc")
    assert plain.exit_code == 1
    tested = gate(
        str(cand),
        "--baseline",
        str(base),
        "--metric",
        "aurc",
        "--alpha",
        "0.05",
        "--bootstrap",
        "300",
    )
    assert tested.exit_code == 0, tested.output
    assert "not significant" in tested.stdout


def test_predictions_baseline_on_other_samples_exits_2(files):
    r = gate(str(files["other"]), "--baseline", str(files["base"]))
    assert r.exit_code == 2
    assert "Traceback" not in r.output


def test_parse_tolerances_and_rules():
    assert parse_tolerances("0.2,aurc=0.1") == (0.2, {"aurc": 0.1})
    with pytest.raises(UsageError):
        parse_tolerances("aurc=-1")
    with pytest.raises(UsageError):
        parse_tolerances("x")
    for bad in ("aurc=inf", "inf", "nan"):
        with pytest.raises(UsageError, match="finite number"):
            parse_tolerances(bad)
    rules = parse_rules([], [], None)
    assert [(r.metric, r.score) for r in rules] == [("aurc", "msp"), ("acc", None)]
    with pytest.raises(UsageError):
        parse_rules(["aurc", "augrc", "auroc"], ["msp", "gini"], None)
    with pytest.raises(UsageError):
        parse_rules(["aurc"], [], "ece=1")


def test_a_reason_never_prints_a_regression_equal_to_its_tolerance():
    v = Verdict(Rule("aurc", "msp", 0.02), 0.2849, 0.2849 + 0.000229)  # 0.0229pp > 0.02pp
    assert not v.passed and v.reason == "worse by 0.023pp > tolerance 0.020pp"
    v = Verdict(Rule("aurc", "msp", 0.0), 0.2849, 0.2849 + 1e-7)
    assert v.reason == "worse by 0.00001pp > tolerance 0.00000pp"


def test_verdict_direction_follows_higher_is_better():
    auroc = Rule("auroc", "msp", 0.5)
    assert Verdict(auroc, 0.80, 0.79).passed is False  # 1pp worse > 0.5pp
    assert Verdict(auroc, 0.80, 0.797).passed is True
    aurc = Rule("aurc", "msp", 0.0)
    assert Verdict(aurc, 0.10, 0.09).passed is True
    assert Verdict(aurc, 0.10, 0.1001).passed is False
    nll = Rule("nll", None, 0.01)  # raw units
    assert Verdict(nll, 1.00, 1.005).passed is True
    assert Verdict(nll, 1.00, 1.02).passed is False
    assert Verdict(Rule("naurc", "msp", 0), math.nan, math.nan).passed is True
    assert Verdict(Rule("naurc", "msp", 0), 0.5, math.nan).passed is False


def test_candidate_uses_the_baseline_score_parameters(tmp_path):
    z, y = _logits(2)
    f = tmp_path / "a.safetensors"
    write_predictions(f, logits=z.astype(np.float32), labels=y)
    b6 = tmp_path / "b6.json"
    r = runner.invoke(
        app,
        ["score", str(f), "-s", "maxlogit-pnorm", "--pnorm-p", "6", "-f", "json", "-o", str(b6)],
    )
    assert r.exit_code == 0, r.output
    same = gate(
        str(f),
        "--baseline",
        str(b6),
        "--metric",
        "aurc",
        "--score",
        "maxlogit-pnorm",
        "--format",
        "json",
    )
    assert same.exit_code == 0, same.output
    assert json.loads(same.stdout)["rules"][0]["delta"] == 0.0
    clash = gate(
        str(f),
        "--baseline",
        str(b6),
        "--metric",
        "aurc",
        "--score",
        "maxlogit-pnorm",
        "--pnorm-p",
        "3",
    )
    assert clash.exit_code == 2 and "p=6" in clash.stderr


def test_infinite_nll_against_itself_is_unchanged(tmp_path):
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(3), size=200)
    y = rng.integers(0, 3, 200)
    p[0] = 0.0
    p[0, (y[0] + 1) % 3] = 1.0  # probability 0 on the true label: nll = inf
    f = tmp_path / "pz.npz"
    np.savez(f, probs=p, labels=y)
    bj = tmp_path / "pz.json"
    r = runner.invoke(app, ["score", str(f), "-s", "msp", "-f", "json", "-o", str(bj)])
    assert r.exit_code == 0, r.output
    assert json.loads(bj.read_text())["results"][0]["model_metrics"]["nll"] == "inf"
    for base in (bj, f):
        out = gate(str(f), "--baseline", str(base), "--metric", "nll", "--format", "json")
        assert out.exit_code == 0, out.output
        rule = json.loads(out.stdout)["rules"][0]
        assert rule["baseline"] == "inf" and rule["delta"] == 0.0 and rule["passed"]
    assert Verdict(Rule("nll", None, 0.0), 1.0, math.inf).passed is False
    assert Verdict(Rule("nll", None, 0.0), math.inf, 1.0).passed is True


def test_a_probabilities_candidate_against_a_full_json_baseline(files, tmp_path):
    """The baseline's logit-only scores are not asked of a candidate without logits."""
    baseline = tmp_path / "all.json"
    r = runner.invoke(app, ["score", str(files["base"]), "-f", "json", "-o", str(baseline)])
    assert r.exit_code == 0, r.output
    z, y = _logits(0)
    p = np.exp(z - z.max(axis=1, keepdims=True))
    probs = tmp_path / "probs.safetensors"
    write_predictions(probs, probs=(p / p.sum(axis=1, keepdims=True)).astype(np.float32), labels=y)
    args = ["gate", str(probs), "--baseline", str(baseline), "--metric", "aurc", "-f", "json"]
    r = runner.invoke(app, [*args, "--score", "msp", "--tolerance", "0.01"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, [*args, "--score", "maxlogit"])
    assert r.exit_code == 2 and "probs.safetensors: score(s) maxlogit need logits" in r.stderr


def test_a_reason_tells_apart_a_regression_just_past_its_tolerance():
    v = Verdict(Rule("aurc", "msp", 0.02), 0.2, 0.2 + 0.0002 + 1e-13)
    assert not v.passed
    amount, tol = v.reason.removeprefix("worse by ").split(" > tolerance ")
    assert amount != tol
    assert parse_tolerances("aurc=-0") == (0.0, {"aurc": 0.0})
    assert str(parse_tolerances("aurc=-0")[1]["aurc"]) == "0.0"
