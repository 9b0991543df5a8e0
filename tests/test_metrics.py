"""Metrics (sc_eval.metrics) against SPEC §2: reference, brute force, identities, sklearn."""

from __future__ import annotations

import math

import numpy as np
import pytest
import reference as ref
from hypothesis import assume, given
from hypothesis import strategies as st
from sklearn.metrics import roc_auc_score
from strategies import conf_err, logits_labels, small_conf_err

from sc_eval import evaluate
from sc_eval.errors import UsageError
from sc_eval.metrics import (
    CONVENTIONS,
    MODEL_METRICS,
    SELECTIVE_METRICS,
    SampleStats,
    aurc_star,
    get_metric,
    selective_metrics,
)

ALL_AREA = ("aurc", "e-aurc", "naurc", "augrc")
CONVENTION_NAMES = ("mean", "trapezoid", "torch-uncertainty")


def metrics_of(conf, err, *names, convention="mean"):
    return selective_metrics(conf, err, metrics=list(names), convention=convention)


def close(a: float, b: float, *, rel: float = 1e-9, abs_: float = 1e-12) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return math.isclose(a, b, rel_tol=rel, abs_tol=abs_)


# --------------------------------------------------------------------------- vs reference
#: The slow reference (tests/reference.py) of every selective metric, as
#: ``f(conf, err, convention)``: a metric added to SELECTIVE_METRICS needs one here.
REFERENCES = {
    "aurc": ref.aurc,
    "e-aurc": ref.e_aurc,
    "naurc": ref.naurc,
    # torch-uncertainty keeps the trapezoid AUGRC
    "augrc": lambda c, e, conv: ref.augrc(c, e, "mean" if conv == "mean" else "trapezoid"),
    "auroc": lambda c, e, conv: ref.auroc(c, e),
    "fpr@95tpr": lambda c, e, conv: ref.fpr_at_tpr(c, e),
}


def _matches_reference(names, conf, err, convention):
    got = metrics_of(conf, err, *names, convention=convention)
    for name in names:
        want = REFERENCES[name](conf, err, convention)
        tol = 1e-10 if name in ALL_AREA else 1e-12
        assert close(got[name], want, rel=1e-9, abs_=tol), (name, got[name], want)


def test_every_selective_metric_has_a_reference():
    assert set(REFERENCES) == set(SELECTIVE_METRICS)


@pytest.mark.parametrize("convention", CONVENTION_NAMES)
@given(data=conf_err())
def test_area_metrics_match_reference(convention, data):
    conf, err = data
    _matches_reference(ALL_AREA, conf, err, convention)


@pytest.mark.parametrize("convention", CONVENTION_NAMES)
@given(data=conf_err(max_n=300))  # the AUROC and FPR references are quadratic
def test_every_selective_metric_matches_its_reference(convention, data):
    conf, err = data
    _matches_reference(list(SELECTIVE_METRICS), conf, err, convention)


@given(data=conf_err(min_n=2))
def test_auroc_equals_sklearn_with_correct_positive(data):
    conf, err = data
    assume(0 < err.sum() < len(err))
    got = metrics_of(conf, err, "auroc")["auroc"]
    assert got == pytest.approx(roc_auc_score(~err, conf), rel=1e-9, abs=1e-12)


def test_fpr_at_95_tpr_by_hand():
    # 20 correct, 10 wrong; the 19th correct sample (TPR exactly 0.95) is at position
    # 21, after the errors at positions 3, 10 and 20: FPR 3/10 (TPR 1 would need 4/10).
    conf = np.arange(30, 0, -1.0)
    err = np.zeros(30, dtype=bool)
    err[[3, 10, 20, 22, 24, 25, 26, 27, 28, 29]] = True
    assert (~err).sum() == 20
    got = metrics_of(conf, err, "fpr@95tpr")["fpr@95tpr"]
    assert got == pytest.approx(0.3)
    assert got == pytest.approx(ref.fpr_at_tpr(conf, err))


# --------------------------------------------------------------------------- brute force
BRUTE = {
    "aurc": lambda seq: (
        math.fsum(e / k for k, e in enumerate(ref.strict_order_cum_errors(seq), 1)) / len(seq)
    ),
    "augrc": lambda seq: math.fsum(ref.strict_order_cum_errors(seq)) / len(seq) ** 2,
}


def _strict_auroc(seq):
    """AUROC of a strict order (earlier = more confident): P(correct before wrong)."""
    pairs, wins, seen_correct = 0, 0, 0
    n_err = sum(seq)
    n_ok = len(seq) - n_err
    for e in seq:
        if e:
            wins += seen_correct
        else:
            seen_correct += 1
    pairs = n_ok * n_err
    return wins / pairs


@given(small_conf_err(max_n=7))
def test_tie_aware_values_equal_brute_force_over_all_tie_orders(data):
    conf, err = data
    got = metrics_of(conf, err, "aurc", "augrc", "auroc")
    for name, fn in BRUTE.items():
        assert got[name] == pytest.approx(ref.brute_force_average(conf, err, fn), rel=1e-12)
    if 0 < err.sum() < len(err):
        assert got["auroc"] == pytest.approx(
            ref.brute_force_average(conf, err, _strict_auroc), rel=1e-12
        )


@given(conf_err(max_n=2000), st.randoms(use_true_random=False))
def test_every_metric_is_invariant_to_sample_order(data, rnd):
    conf, err = data
    names = [*SELECTIVE_METRICS, "risk@cov=0.8", "risk@cov=0.33", "cov@risk=0.1"]
    perm = np.array(rnd.sample(range(len(conf)), len(conf)))
    for convention in ("mean", "trapezoid"):
        a = metrics_of(conf, err, *names, convention=convention)
        b = metrics_of(conf[perm], err[perm], *names, convention=convention)
        for name in names:
            assert close(a[name], b[name], rel=1e-14, abs_=0), name


# --------------------------------------------------------------------------- identities
@pytest.mark.parametrize("convention", ["mean", "trapezoid"])
@given(data=conf_err())
def test_augrc_auroc_identity(convention, data):
    conf, err = data
    n = len(conf)
    m = metrics_of(conf, err, "augrc", "auroc", convention=convention)
    e = err.mean()
    separation = 0.0 if e in (0.0, 1.0) else (1 - m["auroc"]) * (1 - e) * e
    expected = separation + 0.5 * e**2 + (e / (2 * n) if convention == "mean" else 0.0)
    assert m["augrc"] == pytest.approx(expected, rel=1e-9, abs=1e-12)


def _oracle(err):
    return np.where(err, 0.0, 1.0)


@pytest.mark.parametrize("convention", CONVENTION_NAMES)
@given(data=conf_err(min_n=2))
def test_oracle_ranking(convention, data):
    _, err = data
    n, e = len(err), err.mean()
    m = metrics_of(_oracle(err), err, *ALL_AREA, "auroc", convention=convention)
    # aurc_opt, the empirical oracle AURC in closed form: errors occupy k = n_ok+1..n
    n_ok = n - int(err.sum())
    risks = [0.0] * n_ok + [(k - n_ok) / k for k in range(n_ok + 1, n + 1)]
    opt = {
        "mean": math.fsum(risks) / n,
        "trapezoid": math.fsum(risks) / n - e / (2 * n),
        "torch-uncertainty": (math.fsum(risks) - (risks[0] + risks[-1]) / 2) / n / (1 - 1 / n),
    }[convention]
    assert m["aurc"] == pytest.approx(opt, rel=1e-9, abs=1e-12)
    if 0 < e < 1:
        assert m["naurc"] == pytest.approx(0.0, abs=1e-12)
        assert m["auroc"] == pytest.approx(1.0)
    if convention != "torch-uncertainty":
        augrc = 0.5 * e**2 + (e / (2 * n) if convention == "mean" else 0.0)
        assert m["augrc"] == pytest.approx(augrc, rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("convention", ["mean", "trapezoid"])
@given(data=conf_err(max_n=3000))
def test_errors_first_is_the_worst_and_oracle_the_best(convention, data):
    conf, err = data
    worst = metrics_of(np.where(err, 1.0, 0.0), err, "aurc", "naurc", convention=convention)
    best = metrics_of(_oracle(err), err, "aurc", convention=convention)["aurc"]
    got = metrics_of(conf, err, "aurc", "naurc", convention=convention)
    assert best - 1e-12 <= got["aurc"] <= worst["aurc"] + 1e-12
    if 0 < err.mean() < 1:
        assert worst["naurc"] >= got["naurc"] - 1e-9


def test_errors_first_beats_every_order_of_a_small_input():
    import itertools

    err = np.array([True, False, False, True, False, True])
    worst = metrics_of(np.where(err, 1.0, 0.0), err, "aurc")["aurc"]
    values = [
        metrics_of(np.array(p, dtype=float), err, "aurc")["aurc"]
        for p in itertools.permutations(range(6))
    ]
    assert max(values) == pytest.approx(worst)
    assert min(values) == pytest.approx(metrics_of(_oracle(err), err, "aurc")["aurc"])


def test_e_aurc_uses_the_analytic_optimum():
    assert aurc_star(0.0) == 0.0
    assert aurc_star(1.0) == 1.0
    assert aurc_star(0.25) == pytest.approx(0.25 + 0.75 * math.log(0.75))
    conf = np.array([3.0, 2.0, 1.0, 0.0])
    err = np.array([False, True, False, True])
    m = metrics_of(conf, err, "aurc", "e-aurc")
    assert m["e-aurc"] == pytest.approx(m["aurc"] - (0.5 + 0.5 * math.log(0.5)))


# --------------------------------------------------------------------------- conventions by formula
def test_conventions_by_hand():
    # strict order ok, err, ok, err: r = [0, 1/2, 1/3, 1/2], E = [0, 1, 1, 2]
    conf = np.array([4.0, 3.0, 2.0, 1.0])
    err = np.array([False, True, False, True])
    r = [0, 1 / 2, 1 / 3, 1 / 2]
    mean = metrics_of(conf, err, "aurc", "augrc")
    assert mean["aurc"] == pytest.approx(sum(r) / 4)
    assert mean["augrc"] == pytest.approx((0 + 1 + 1 + 2) / 16)
    trap = metrics_of(conf, err, "aurc", "augrc", convention="trapezoid")
    assert trap["aurc"] == pytest.approx(
        ((0 + 0) + (0 + 1 / 2) + (1 / 2 + 1 / 3) + (1 / 3 + 1 / 2)) / 8
    )
    assert trap["augrc"] == pytest.approx(((0 + 0) + (0 + 1) + (1 + 1) + (1 + 2)) / 4 / 8)
    tu = metrics_of(conf, err, "aurc", "augrc", convention="torch-uncertainty")
    assert tu["aurc"] == pytest.approx(((0 + 1 / 2) + (1 / 2 + 1 / 3) + (1 / 3 + 1 / 2)) / 8 / 0.75)
    assert tu["augrc"] == trap["augrc"]


@given(data=conf_err(ties=False, min_n=2))
def test_torch_uncertainty_convention_on_tie_free_input(data):
    conf, err = data
    n = len(conf)
    order = np.argsort(-conf)
    risks = np.cumsum(err[order]) / np.arange(1, n + 1)
    expected = np.trapezoid(risks, np.arange(1, n + 1) / n) / (1 - 1 / n)
    got = metrics_of(conf, err, "aurc", convention="torch-uncertainty")["aurc"]
    assert got == pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_torch_uncertainty_ignores_ties():
    conf = np.array([1.0, 1.0, 0.0])
    a = metrics_of(conf, np.array([True, False, False]), "aurc", convention="torch-uncertainty")
    b = metrics_of(conf, np.array([False, True, False]), "aurc", convention="torch-uncertainty")
    assert a["aurc"] != b["aurc"]  # input order decides, as in that library
    t = metrics_of(conf, np.array([True, False, False]), "aurc", convention="trapezoid")
    u = metrics_of(conf, np.array([False, True, False]), "aurc", convention="trapezoid")
    assert t["aurc"] == u["aurc"]


@given(data=conf_err(min_n=2))
def test_trapezoid_is_mean_minus_err_over_2n(data):
    conf, err = data
    n = len(conf)
    mean = metrics_of(conf, err, "aurc", "augrc")
    trap = metrics_of(conf, err, "aurc", "augrc", convention="trapezoid")
    assert trap["aurc"] == pytest.approx(mean["aurc"] - err.mean() / (2 * n), abs=1e-12)
    assert trap["augrc"] == pytest.approx(mean["augrc"] - err.mean() / (2 * n), abs=1e-12)


def test_torch_uncertainty_single_sample_is_undefined():
    got = metrics_of(np.array([1.0]), np.array([True]), "aurc", convention="torch-uncertainty")
    assert math.isnan(got["aurc"])


# --------------------------------------------------------------------------- families
@given(conf_err(max_n=2000), st.sampled_from([1.0, 0.99, 0.95, 0.8, 0.5, 0.123, 0.001]))
def test_risk_at_coverage_metric(data, cov):
    conf, err = data
    got = metrics_of(conf, err, f"risk@cov={cov}")[f"risk@cov={cov}"]
    assert got == pytest.approx(ref.risk_at_coverage(conf, err, cov), rel=1e-9, abs=1e-12)


@given(conf_err(max_n=2000), st.sampled_from([0.0, 0.01, 0.05, 0.2, 0.5, 1.0]))
def test_coverage_at_risk_metric(data, risk):
    conf, err = data
    got = metrics_of(conf, err, f"cov@risk={risk}")[f"cov@risk={risk}"]
    assert got == pytest.approx(ref.coverage_at_risk(conf, err, risk), abs=1e-12)


def test_risk_at_full_coverage_is_the_error_rate():
    conf = np.array([0.5, 0.5, 0.1, 0.9])
    err = np.array([True, False, False, True])
    assert metrics_of(conf, err, "risk@cov=1")["risk@cov=1"] == 0.5


@pytest.mark.parametrize(
    "name", ["risk@cov=0", "risk@cov=1.5", "risk@cov=x", "cov@risk=-0.1", "cov@risk=2", "nope"]
)
def test_bad_metric_names_are_usage_errors(name):
    with pytest.raises(UsageError):
        get_metric(name)


def test_unknown_convention_is_a_usage_error():
    with pytest.raises(UsageError, match="trapezoid"):
        metrics_of(np.array([1.0]), np.array([False]), "aurc", convention="trapz")


@pytest.mark.parametrize(
    "conf, err",
    [
        (np.array([]), np.array([], bool)),
        (np.array([1.0, np.nan]), np.array([True, False])),
        (np.array([1.0, 2.0]), np.array([True])),
        (np.ones((2, 2)), np.ones((2, 2), bool)),
    ],
)
def test_selective_metrics_validates_input(conf, err):
    with pytest.raises(UsageError):
        selective_metrics(conf, err)


# --------------------------------------------------------------------------- undefined values
@pytest.mark.parametrize("all_wrong", [False, True])
def test_undefined_metrics_are_nan_with_reasons(all_wrong):
    z = np.array([[3.0, 0.0], [2.0, 0.5], [0.1, 0.0], [5.0, 1.0]])
    labels = np.full(4, 1 if all_wrong else 0)
    ev = evaluate(z, labels, scores=["msp", "maxlogit"])
    for s in ev.scores.values():
        for name in ("naurc", "auroc", "fpr@95tpr"):
            assert math.isnan(s.metrics[name])
            assert s.notes[name]
        assert "error rate is " + ("1" if all_wrong else "0") in s.notes["naurc"]
        assert not math.isnan(s.metrics["aurc"])
        assert s.metrics["aurc"] == pytest.approx(1.0 if all_wrong else 0.0)
        assert s.metrics["augrc"] == pytest.approx(0.5 + 1 / 8 if all_wrong else 0.0)
        assert "aurc" not in s.notes


def test_defined_metrics_have_no_notes():
    z = np.array([[3.0, 0.0], [2.0, 0.5], [0.1, 0.0], [5.0, 1.0]])
    ev = evaluate(z, np.array([0, 1, 0, 0]), scores=["msp"])
    assert ev.scores["msp"].notes == {}


# --------------------------------------------------------------------------- registry
def test_every_metric_declares_its_direction():
    expected = {
        "aurc": False,
        "e-aurc": False,
        "naurc": False,
        "augrc": False,
        "auroc": True,
        "fpr@95tpr": False,
        "acc": True,
        "ece": False,
        "nll": False,
        "brier": False,
    }
    found = {**SELECTIVE_METRICS, **MODEL_METRICS}
    assert set(found) == set(expected)
    for name, higher in expected.items():
        assert found[name].higher_is_better is higher, name
    assert get_metric("risk@cov=0.9").higher_is_better is False
    assert get_metric("cov@risk=0.05").higher_is_better is True
    assert set(CONVENTIONS) == set(CONVENTION_NAMES)


# --------------------------------------------------------------------------- model metrics
@given(logits_labels(max_n=150))
def test_model_metrics_match_reference(data):
    z, labels = data
    ev = evaluate(z, labels, scores=["msp"])
    want = ref.model_metrics(z.tolist(), labels.tolist())
    for name in ("acc", "nll", "brier"):
        assert ev.model_metrics[name] == pytest.approx(want[name], rel=1e-9, abs=1e-12), name
    assert ev.model_metrics["ece"] == pytest.approx(want["ece"], rel=1e-6, abs=1e-9)


@given(st.lists(st.tuples(st.floats(1e-9, 1.0), st.booleans()), min_size=1, max_size=300))
def test_ece_matches_reference_on_given_confidences(rows):
    conf = np.array([c for c, _ in rows])
    correct = np.array([k for _, k in rows])
    zeros = np.zeros_like(conf)
    got = MODEL_METRICS["ece"](SampleStats(correct, conf, zeros, zeros))
    assert got == pytest.approx(ref.ece(conf.tolist(), correct.tolist()), rel=1e-9, abs=1e-12)


def test_ece_by_hand():
    # bin (9/15, 10/15]: conf .62, .65 acc 1/2; bin (14/15, 1]: conf .95 acc 1
    conf = np.array([0.62, 0.65, 0.95])
    correct = np.array([True, False, True])
    zeros = np.zeros(3)
    got = MODEL_METRICS["ece"](SampleStats(correct, conf, zeros, zeros))
    assert got == pytest.approx(2 / 3 * abs(0.5 - 0.635) + 1 / 3 * 0.05)


def test_model_metrics_are_weighted_like_repeated_samples():
    z = np.array([[2.0, 0.0, 1.0], [0.0, 1.0, 3.0], [1.0, 1.0, 0.0], [0.5, 0.2, 0.1]])
    labels = np.array([0, 1, 1, 0])
    w = np.array([2, 0, 1, 3])
    a = evaluate(z, labels, scores=["msp"]).model_metrics
    b = evaluate(np.repeat(z, w, axis=0), np.repeat(labels, w), scores=["msp"]).model_metrics
    # the weighted form (used by the bootstrap) on the same rows
    from sc_eval.io import predictions_from_arrays
    from sc_eval.pipeline import score_samples

    stats = score_samples(predictions_from_arrays(z, labels), scores=["msp"]).stats
    for name, m in MODEL_METRICS.items():
        assert m(stats, w) == pytest.approx(b[name], rel=1e-12), name
        assert m(stats) == pytest.approx(a[name], rel=1e-12), name


# --------------------------------------------------------------------------- pipeline agreement
@given(logits_labels(max_n=300))
def test_evaluate_uses_the_score_key_and_the_argmax_errors(data):
    z, labels = data
    ev = evaluate(z, labels, scores=["maxlogit"], convention="trapezoid", coverages=[0.5])
    err = z.argmax(axis=1) != labels
    conf = z.max(axis=1)
    got = ev.scores["maxlogit"].metrics
    assert got["aurc"] == pytest.approx(ref.aurc(conf, err, "trapezoid"), rel=1e-9, abs=1e-12)
    assert got["risk@cov=0.5"] == pytest.approx(ref.risk_at_coverage(conf, err, 0.5), abs=1e-12)
    assert ev.model_metrics["acc"] == pytest.approx(1 - err.mean())


@pytest.mark.slow
@pytest.mark.parametrize("n", [10_000, 50_000])
@pytest.mark.parametrize("levels", [3, 100, None])
def test_large_inputs_match_reference(n, levels):
    rng = np.random.default_rng(n + (levels or 0))
    conf = rng.integers(0, levels, n) / levels if levels else rng.normal(size=n)
    err = rng.random(n) < 0.3
    for convention in CONVENTION_NAMES:
        got = metrics_of(conf, err, *ALL_AREA, "risk@cov=0.77", convention=convention)
        assert got["aurc"] == pytest.approx(ref.aurc(conf, err, convention), rel=1e-9)
        assert got["naurc"] == pytest.approx(ref.naurc(conf, err, convention), rel=1e-9)
        assert got["risk@cov=0.77"] == pytest.approx(ref.risk_at_coverage(conf, err, 0.77))
    assert metrics_of(conf, err, "auroc")["auroc"] == pytest.approx(roc_auc_score(~err, conf))
