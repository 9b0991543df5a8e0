"""Risk-controlled thresholds (SGR): binomial tail, search, guarantee, CLI."""

from __future__ import annotations

import itertools
import json
import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from typer.testing import CliRunner

from sc_eval.cli import app
from sc_eval.errors import UsageError
from sc_eval.io import write_predictions
from sc_eval.threshold import (
    binomial_cdf,
    binomial_upper_bound,
    clopper_pearson,
    risk_bound_at_coverage,
    select_with_guaranteed_risk,
    union_bound_tests,
)
from tests import reference
from tests.conftest import make_logits

runner = CliRunner()


# --------------------------------------------------------------------------- binomial tail
@pytest.mark.parametrize(
    ("k", "n", "delta"),
    [
        (0, 1, 0.05),
        (0, 10, 0.05),
        (3, 10, 0.05),
        (5, 100, 0.01),
        (1, 2, 0.9),
        (50, 60, 0.7),
        (200, 20000, 0.05 / 15),
        (1234, 100000, 1e-6),
        (9999, 10000, 0.3),
        (10, 10, 0.05),
    ],
)
def test_upper_bound_matches_beta_quantile(k: int, n: int, delta: float) -> None:
    stats = pytest.importorskip("scipy.stats")
    expected = 1.0 if k == n else stats.beta.ppf(1 - delta, k + 1, n - k)
    assert binomial_upper_bound(k, n, delta) == pytest.approx(expected, rel=1e-9, abs=1e-15)


@pytest.mark.parametrize("delta", [1e-300, 1e-12, 0.05 / 15, 0.05, 0.5, 0.999999])
@pytest.mark.parametrize("n", [1, 2, 5, 12])
def test_upper_bound_equals_the_exact_rational_root(n: int, delta: float) -> None:
    """Every k against bisection with exact Fraction tails: a few ulps, edges included
    (k = 0's closed form, k = n, and roots that round to 1 for tiny δ)."""
    for k in range(n + 1):
        exact = reference.binomial_upper_bound_exact(k, n, delta)
        assert binomial_upper_bound(k, n, delta) == pytest.approx(exact, rel=4e-15, abs=0)


def test_upper_bound_in_the_far_tail() -> None:
    # scipy.special.betainccinv(34, 67, 1e-300) is off by 1e-6 (its tail is 700 δ) and
    # betainccinv(2, 9, 1e-300) is NaN: the bound must not rely on the quantile function
    exact = reference.binomial_upper_bound_exact(33, 100, 1e-300)
    assert binomial_upper_bound(33, 100, 1e-300) == pytest.approx(exact, rel=4e-15, abs=0)
    assert binomial_upper_bound(1, 10, 1e-300) == 1.0


@pytest.mark.parametrize("n", [1, 3, 17])
@pytest.mark.parametrize("p", [1e-200, 1e-3, 0.3, 0.5, 0.97, 1 - 2**-40])
def test_binomial_cdf_equals_the_exact_sum(n: int, p: float) -> None:
    for k in range(-1, n + 1):
        exact = float(reference.binomial_cdf_exact(k, n, Fraction(p))) if k >= 0 else 0.0
        assert binomial_cdf(k, n, p) == pytest.approx(exact, rel=1e-13, abs=1e-300)


@given(
    n=st.integers(1, 3000),
    frac=st.floats(0, 1),
    delta=st.floats(1e-6, 0.999),
)
def test_upper_bound_is_the_binomial_tail_root(n: int, frac: float, delta: float) -> None:
    stats = pytest.importorskip("scipy.stats")
    k = min(n, int(frac * n))
    b = binomial_upper_bound(k, n, delta)
    assert 0.0 < b <= 1.0
    if k < n:
        # the tail at the bound equals delta (the bound is its root)
        assert stats.binom.cdf(k, n, b) == pytest.approx(delta, rel=1e-6, abs=1e-12)
        assert b == pytest.approx(stats.beta.ppf(1 - delta, k + 1, n - k), rel=1e-8, abs=1e-14)


@given(n=st.integers(1, 500), frac=st.floats(0, 1), p=st.floats(0, 1))
def test_binomial_cdf_matches_scipy(n: int, frac: float, p: float) -> None:
    stats = pytest.importorskip("scipy.stats")
    k = int(frac * n)
    assert binomial_cdf(k, n, p) == pytest.approx(stats.binom.cdf(k, n, p), rel=1e-9, abs=1e-13)


@given(n=st.integers(0, 400), frac=st.floats(0, 1), conf=st.sampled_from([0.8, 0.95, 0.99]))
@example(n=256, frac=1 / 256, conf=0.99)
def test_clopper_pearson_matches_scipy(n: int, frac: float, conf: float) -> None:
    stats = pytest.importorskip("scipy.stats")
    k = int(frac * n)
    lo, hi = clopper_pearson(k, n, confidence=conf)
    if n == 0:
        assert (lo, hi) == (0.0, 1.0)
        return
    # the definition: beta quantiles (binomtest's own "exact" interval is off by 1.2e-8
    # relative at k=1, n=256, 99%, where the closed form 1 - (1 - a/2)^(1/n) agrees with both)
    a = (1 - conf) / 2
    ref_low = stats.beta.ppf(a, k, n - k + 1) if k > 0 else 0.0
    ref_high = stats.beta.isf(a, k + 1, n - k) if k < n else 1.0
    assert lo == pytest.approx(ref_low, rel=1e-8, abs=1e-13)
    assert hi == pytest.approx(ref_high, rel=1e-8, abs=1e-13)
    assert lo <= k / n <= hi


@given(
    n=st.integers(1, 2000),
    frac=st.floats(0, 1),
    d1=st.floats(1e-5, 0.99),
    d2=st.floats(1e-5, 0.99),
)
def test_bound_monotone_in_delta_and_errors(n: int, frac: float, d1: float, d2: float) -> None:
    k = int(frac * n)
    lo_d, hi_d = sorted((d1, d2))
    # smaller δ (more confidence) never gives a smaller bound
    assert binomial_upper_bound(k, n, lo_d) >= binomial_upper_bound(k, n, hi_d)
    if k < n:
        assert binomial_upper_bound(k + 1, n, d1) >= binomial_upper_bound(k, n, d1)


def test_bound_at_coverage_monotone_in_delta() -> None:
    rng = np.random.default_rng(3)
    s = rng.random(3000)
    err = rng.random(3000) < 0.3 * (1 - s)
    deltas = [0.001, 0.01, 0.05, 0.1, 0.3, 0.6]
    bounds = [risk_bound_at_coverage(s, err, coverage=0.6, delta=d).bound for d in deltas]
    assert all(a > b for a, b in itertools.pairwise(bounds))
    same = {risk_bound_at_coverage(s, err, coverage=0.6, delta=d).key for d in deltas}
    assert len(same) == 1  # δ changes the bound, not the threshold


def test_bound_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError):
        binomial_upper_bound(1, 10, 0.0)
    with pytest.raises(ValueError):
        binomial_upper_bound(11, 10, 0.1)


# --------------------------------------------------------------------------- the search
def test_union_bound_tests_is_ceil_log2() -> None:
    assert [union_bound_tests(n) for n in (1, 2, 3, 4, 5, 1024, 1025, 10000)] == [
        1,
        1,
        2,
        2,
        3,
        10,
        11,
        14,
    ]


def _check_result(keys: np.ndarray, errors: np.ndarray, rc, target: float, delta: float) -> None:
    n = keys.shape[0]
    assert rc.tests == union_bound_tests(n)
    assert 1 <= len(rc.searched) <= rc.tests
    for p in rc.searched:
        # every tested bound is the exact binomial tail bound at δ / T
        assert p.bound == binomial_upper_bound(p.errors, p.accepted, delta / rc.tests)
        # every tested threshold sits between tie blocks
        theta = np.sort(keys)[::-1][p.accepted - 1]
        assert int((keys >= theta).sum()) == p.accepted
        assert int(errors[keys >= theta].sum()) == p.errors
    feasible = [p for p in rc.searched if p.bound <= target]
    assert rc.feasible == bool(feasible)
    if rc.feasible:
        assert rc.point.accepted == max(p.accepted for p in feasible)
        assert rc.bound <= target
        accept = keys >= rc.key
        assert int(accept.sum()) == rc.point.accepted
        assert int(errors[accept].sum()) == rc.point.errors
        # no sample tied with the threshold is rejected
        assert accept[keys == rc.key].all()
    else:
        assert rc.key == math.inf
        assert rc.best.bound == min(p.bound for p in rc.searched)


@given(
    data=st.lists(st.tuples(st.integers(0, 6), st.booleans()), min_size=1, max_size=300),
    target=st.sampled_from([0.0, 0.05, 0.2, 0.5, 1.0]),
    delta=st.sampled_from([0.01, 0.1, 0.5]),
)
def test_sgr_never_splits_ties(data, target: float, delta: float) -> None:
    keys = np.array([d[0] for d in data], dtype=np.float64)
    errors = np.array([d[1] for d in data])
    rc = select_with_guaranteed_risk(keys, errors, target_risk=target, delta=delta)
    _check_result(keys, errors, rc, target, delta)


@given(
    data=st.lists(st.tuples(st.integers(0, 6), st.booleans()), min_size=1, max_size=300),
    coverage=st.floats(0.01, 1.0),
)
def test_coverage_mode_never_splits_ties(data, coverage: float) -> None:
    keys = np.array([d[0] for d in data], dtype=np.float64)
    errors = np.array([d[1] for d in data])
    rc = risk_bound_at_coverage(keys, errors, coverage=coverage, delta=0.1)
    accept = keys >= rc.key
    m = int(accept.sum())
    assert m == rc.point.accepted and m >= coverage * keys.size * (1 - 1e-12)
    # the fewest blocks: dropping the last accepted block falls below the target
    assert int((keys > rc.key).sum()) < coverage * keys.size * (1 - 1e-12)
    assert rc.tests == 1
    assert rc.bound == binomial_upper_bound(int(errors[accept].sum()), m, 0.1)


def test_sgr_is_order_invariant() -> None:
    rng = np.random.default_rng(5)
    keys = rng.integers(0, 50, 4000).astype(float)
    errors = rng.random(4000) < 0.02 + 0.3 * (keys < 15)
    a = select_with_guaranteed_risk(keys, errors, target_risk=0.05, delta=0.05)
    perm = rng.permutation(4000)
    b = select_with_guaranteed_risk(keys[perm], errors[perm], target_risk=0.05, delta=0.05)
    assert a == b


def test_sgr_input_validation() -> None:
    with pytest.raises(UsageError):
        select_with_guaranteed_risk(np.array([1.0, np.nan]), np.array([0, 1]), target_risk=0.1)
    with pytest.raises(UsageError):
        select_with_guaranteed_risk(np.array([1.0]), np.array([0]), target_risk=0.1, delta=1.0)
    with pytest.raises(UsageError):
        select_with_guaranteed_risk(np.array([1.0]), np.array([0]), target_risk=1.5)
    with pytest.raises(UsageError):
        risk_bound_at_coverage(np.array([1.0]), np.array([0]), coverage=0.0)


def test_target_risk_zero_is_infeasible() -> None:
    rc = select_with_guaranteed_risk(np.arange(100.0), np.zeros(100, bool), target_risk=0.0)
    assert not rc.feasible and rc.key == math.inf and rc.point.accepted == 0
    assert 0 < rc.best.bound < 1


# --------------------------------------------------------------------------- the guarantee
LEVELS = 20
LEVEL_ERR = 0.3 * (1 - np.arange(LEVELS) / (LEVELS - 1)) ** 2  # error probability per level
# true selective risk of "accept iff level >= l" when levels are uniform
LEVEL_RISK = np.cumsum(LEVEL_ERR[::-1])[::-1] / np.arange(LEVELS, 0, -1)


def _draw_levels(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    level = rng.integers(0, LEVELS, n)
    return level.astype(np.float64), rng.random(n) < LEVEL_ERR[level]


def _draw_continuous(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    s = rng.random(n)
    return s, rng.random(n) < 0.4 * (1 - s) ** 2


def _true_risk_continuous(theta: float) -> float:
    # ∫_θ^1 0.4 (1-s)^2 ds / (1-θ) = 0.4 (1-θ)^2 / 3
    return 0.4 * (1 - theta) ** 2 / 3


def _violations(draw, true_risk, *, runs: int, n: int, target: float, delta: float, seed: int):
    """(SGR violations, naive-threshold violations, feasible runs) over repeated draws."""
    rng = np.random.default_rng(seed)
    sgr = naive = feasible = 0
    for _ in range(runs):
        keys, errors = draw(rng, n)
        rc = select_with_guaranteed_risk(keys, errors, target_risk=target, delta=delta)
        if rc.feasible:
            feasible += 1
            sgr += true_risk(rc.key) > target
        # naive: the largest coverage whose *empirical* risk meets the target
        order = np.argsort(-keys, kind="stable")
        risk = np.cumsum(errors[order]) / np.arange(1, n + 1)
        ends = np.flatnonzero(np.r_[keys[order][1:] != keys[order][:-1], True])
        ok = ends[risk[ends] <= target]
        if ok.size:
            naive += true_risk(keys[order][ok[-1]]) > target
    return sgr, naive, feasible


def _slack(delta: float, runs: int) -> float:
    return delta + 3 * math.sqrt(delta * (1 - delta) / runs)


@pytest.mark.parametrize(
    ("draw", "true_risk", "target"),
    [
        # just below the true risk of a level: trusting the empirical risk fails half the time
        (_draw_levels, lambda key: LEVEL_RISK[int(key)], 0.995 * LEVEL_RISK[8]),
        (_draw_continuous, _true_risk_continuous, 0.04),
    ],
    ids=["tied-levels", "continuous"],
)
def test_guarantee_holds_over_repeated_draws(draw, true_risk, target: float) -> None:
    runs, delta = 200, 0.1
    sgr, naive, feasible = _violations(
        draw, true_risk, runs=runs, n=2000, target=target, delta=delta, seed=11
    )
    assert feasible > 0.9 * runs  # the test exercises real thresholds
    assert sgr / runs <= _slack(delta, runs)
    # the check has teeth: trusting the empirical risk violates the target far more often
    assert naive / runs > 2 * _slack(delta, runs)


@pytest.mark.slow
@pytest.mark.parametrize("delta", [0.05, 0.2])
@pytest.mark.parametrize(
    ("draw", "true_risk", "target", "n"),
    [
        (_draw_levels, lambda key: LEVEL_RISK[int(key)], 0.995 * LEVEL_RISK[8], 5000),
        (_draw_levels, lambda key: LEVEL_RISK[int(key)], 0.1, 500),
        (_draw_continuous, _true_risk_continuous, 0.02, 5000),
        (_draw_continuous, _true_risk_continuous, 0.05, 300),
    ],
)
def test_guarantee_holds_over_many_draws(draw, true_risk, target, n, delta) -> None:
    runs = 2000
    sgr, _, _ = _violations(draw, true_risk, runs=runs, n=n, target=target, delta=delta, seed=7)
    assert sgr / runs <= _slack(delta, runs)


def test_coverage_bound_holds_over_repeated_draws() -> None:
    runs, delta, cov = 300, 0.1, 0.5
    rng = np.random.default_rng(2)
    bad = 0
    for _ in range(runs):
        keys, errors = _draw_continuous(rng, 1000)
        rc = risk_bound_at_coverage(keys, errors, coverage=cov, delta=delta)
        bad += _true_risk_continuous(rc.key) > rc.bound
    assert bad / runs <= _slack(delta, runs)


# --------------------------------------------------------------------------- CLI
def confident_logits(n: int, c: int, *, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """float32 logits whose confidence tracks correctness (about 65% accuracy at c = 10)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, c, n)
    z = rng.normal(0.0, 1.0, (n, c))
    z[np.arange(n), y] += rng.exponential(3.0, n)
    return z.astype(np.float32), y


@pytest.fixture
def cal_test(tmp_path):
    z, y = confident_logits(6000, 10, seed=4)
    cal, test = tmp_path / "cal.safetensors", tmp_path / "test.safetensors"
    write_predictions(cal, logits=z[:3000], labels=y[:3000])
    write_predictions(test, logits=z[3000:], labels=y[3000:])
    return cal, test


def test_cli_threshold_json_with_test_and_selector(cal_test, tmp_path) -> None:
    cal, test = cal_test
    out = tmp_path / "selector.json"
    args = ["threshold", str(cal), "--score", "maxlogit-pnorm", "--target-risk", "0.05"]
    r = runner.invoke(app, [*args, "--test", str(test), "-o", str(out), "-f", "json"])
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["schema"] == "sc-eval/threshold" and doc["feasible"] is True
    assert doc["calibration"]["bound"] <= 0.05
    assert doc["search"]["tests"] == union_bound_tests(3000)
    assert doc["params"] == {"p": 2.0}
    assert 0 < doc["test"]["coverage"] <= 1 and doc["test"]["n"] == 3000
    assert doc["guarantee"].startswith("With probability at least 0.95")
    assert out.exists() and json.loads(out.read_text())["threshold"] == doc["threshold"]["key"]


@pytest.mark.parametrize("fmt", ["table", "markdown", "csv"])
def test_cli_threshold_human_formats(cal_test, fmt: str) -> None:
    cal, test = cal_test
    r = runner.invoke(
        app, ["threshold", str(cal), "--target-coverage", "0.9", "--test", str(test), "-f", fmt]
    )
    assert r.exit_code == 0, r.stderr
    assert "coverage" in r.stdout
    if fmt == "csv":
        assert r.stdout.splitlines()[0] == "source,score,split,quantity,value,unit"
        assert any(",test,selective risk," in line for line in r.stdout.splitlines())


def test_cli_threshold_target_coverage(cal_test) -> None:
    cal, _ = cal_test
    r = runner.invoke(app, ["threshold", str(cal), "--target-coverage", "0.8", "-f", "json"])
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["mode"] == "coverage" and doc["search"]["tests"] == 1
    assert doc["calibration"]["coverage"] >= 0.8
    assert doc["calibration"]["bound"] >= doc["calibration"]["risk"]


def test_cli_threshold_infeasible_exits_1(cal_test, tmp_path) -> None:
    cal, test = cal_test
    out = tmp_path / "sel.json"
    r = runner.invoke(
        app,
        ["threshold", str(cal), "--target-risk", "0.0001", "--test", str(test), "-o", str(out)],
    )
    assert r.exit_code == 1
    assert "no threshold meets the target" in r.stderr and "lowest" in r.stderr
    assert "infeasible" in r.stdout
    assert not out.exists()
    assert list(tmp_path.glob(".sel.json*")) == []


@pytest.mark.parametrize(
    "extra",
    [
        [],  # neither target
        ["--target-risk", "0.05", "--target-coverage", "0.5"],
        ["--target-risk", "1.5"],
        ["--target-coverage", "0"],
        ["--target-risk", "0.05", "--delta", "1"],
        ["--target-risk", "0.05", "--score", "nope"],
        ["--target-risk", "0.05", "-f", "yaml"],
        ["--target-risk", "abc"],
    ],
)
def test_cli_threshold_bad_usage_exits_2(cal_test, extra) -> None:
    cal, _ = cal_test
    r = runner.invoke(app, ["threshold", str(cal), *extra])
    assert r.exit_code == 2
    assert "Traceback" not in r.output


def test_cli_threshold_bad_input_exits_2(tmp_path, cal_test) -> None:
    cal, _ = cal_test
    missing = runner.invoke(app, ["threshold", str(tmp_path / "nope.npz"), "--target-risk", "0.1"])
    assert missing.exit_code == 2 and "no such file" in missing.stderr
    z, y = make_logits(50, 3, seed=1)
    other = tmp_path / "c3.safetensors"
    write_predictions(other, logits=z, labels=y)
    r = runner.invoke(app, ["threshold", str(cal), "--target-risk", "0.1", "--test", str(other)])
    assert r.exit_code == 2 and "classes" in r.stderr
    p = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    probs = tmp_path / "p.safetensors"
    write_predictions(probs, probs=p, labels=y)
    r = runner.invoke(app, ["threshold", str(probs), "--target-risk", "0.1", "-s", "maxlogit"])
    assert r.exit_code == 2 and "need logits" in r.stderr


def test_cli_threshold_warns_when_test_is_calibration(cal_test) -> None:
    cal, _ = cal_test
    r = runner.invoke(app, ["threshold", str(cal), "--target-coverage", "0.5", "--test", str(cal)])
    assert r.exit_code == 0
    assert "not an independent check" in r.stderr


def test_cli_threshold_tune_split_calibrates_on_the_rest(cal_test, tmp_path) -> None:
    cal, test = cal_test
    out = tmp_path / "sel.json"
    r = runner.invoke(
        app,
        ["threshold", str(cal), "-s", "maxlogit-pnorm", "--target-risk", "0.1",
         "--tune-split", "0.25", "--seed", "3", "--test", str(test), "-o", str(out), "-f", "json"],
    )  # fmt: skip
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["tuned"] is True and doc["calibration"]["n"] == 2250
    assert doc["tuning"]["split"] == "random" and doc["tuning"]["n_tune"] == 750
    assert doc["search"]["tests"] == union_bound_tests(2250)
    sel = json.loads(out.read_text())
    assert sel["tuned"] is True and sel["params"] == doc["params"]
    assert sel["calibration"]["tuning"]["seed"] == 3


def test_cli_threshold_val_must_not_be_the_calibration_file(cal_test) -> None:
    cal, test = cal_test
    args = ["threshold", str(cal), "-s", "maxlogit-pnorm", "--target-risk", "0.1"]
    r = runner.invoke(app, [*args, "--val", str(cal)])
    assert r.exit_code == 2 and "void the guarantee" in r.stderr
    r = runner.invoke(app, [*args, "--val", str(test), "-f", "json"])
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["calibration"]["n"] == 3000 and doc["tuning"]["split"] == "val"


def test_cli_warns_when_test_risk_clearly_exceeds_the_target(tmp_path):
    """Calibrate on an easy model, test on a much worse one: the CLI says so (exit 0)."""
    from typer.testing import CliRunner

    from sc_eval.cli import app
    from sc_eval.io import write_predictions

    rng = np.random.default_rng(3)

    def make(path, strength):
        y = rng.integers(0, 10, 4000)
        z = rng.normal(size=(4000, 10))
        z[np.arange(4000), y] += rng.normal(strength, 1.5, 4000)
        write_predictions(path, logits=z.astype(np.float32), labels=y)

    make(tmp_path / "cal.safetensors", 5.0)
    make(tmp_path / "shift.safetensors", 0.5)
    r = CliRunner().invoke(
        app,
        ["threshold", str(tmp_path / "cal.safetensors"), "--score", "msp", "--target-risk", "0.05",
         "--test", str(tmp_path / "shift.safetensors")],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "may not come from the calibration distribution" in r.stderr
