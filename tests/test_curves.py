"""The one tie-aware sort (sc_eval.curves) against the reference implementation."""

from __future__ import annotations

import numpy as np
import pytest
import reference as ref
from hypothesis import given
from hypothesis import strategies as st
from strategies import conf_err, small_conf_err

from sc_eval.curves import RiskCoverage, TieBlocks, sort_scores


def curve(conf, err, **kw) -> RiskCoverage:
    return sort_scores(np.asarray(conf), np.asarray(err)).curve(**kw)


# --------------------------------------------------------------------------- the sort
def test_sort_is_descending_and_stable():
    s = sort_scores(np.array([0.2, 0.9, 0.2, 0.5, 0.9]), np.zeros(5, dtype=bool))
    assert s.order.tolist() == [1, 4, 3, 0, 2]
    assert s.block_ids.tolist() == [0, 0, 1, 2, 2]


def test_negative_zero_ties_with_zero():
    s = sort_scores(np.array([0.0, -0.0, 1.0]), np.array([True, False, False]))
    assert s.block_ids.tolist() == [0, 1, 1]
    np.testing.assert_allclose(s.curve().cum_errors, [0.0, 0.5, 1.0])


def test_tie_block_expectation_by_hand():
    # block 1: {a(ok)}, block 2: {b(err), c(ok), d(err)} tied, block 3: {e(err)}
    conf = np.array([3.0, 2.0, 2.0, 2.0, 1.0])
    err = np.array([False, True, False, True, True])
    c = curve(conf, err)
    np.testing.assert_allclose(c.cum_errors, [0, 2 / 3, 4 / 3, 2, 3])
    np.testing.assert_allclose(c.risk, [0, 1 / 3, 4 / 9, 1 / 2, 3 / 5])
    np.testing.assert_allclose(c.coverage, [0.2, 0.4, 0.6, 0.8, 1.0])
    assert c.error_rate == pytest.approx(0.6)


@given(conf_err())
def test_cum_errors_match_reference(data):
    conf, err = data
    c = curve(conf, err)
    expected = [float(e) for e in ref.expected_cum_errors(*ref.as_lists(conf, err))]
    np.testing.assert_allclose(c.cum_errors, expected, rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(c.risk, ref.selective_risks(conf, err), rtol=1e-12, atol=1e-12)
    assert c.n == len(conf)
    assert c.n_errors == err.sum()


@given(small_conf_err(max_n=7))
def test_cum_errors_equal_brute_force_over_tie_orders(data):
    conf, err = data
    c = curve(conf, err)
    for k in range(1, len(conf) + 1):
        brute = ref.brute_force_average(
            conf, err, lambda seq, k=k: ref.strict_order_cum_errors(seq)[k - 1]
        )
        assert c.cum_errors[k - 1] == pytest.approx(brute, rel=1e-12, abs=1e-12)


@given(conf_err(max_n=3000), st.randoms(use_true_random=False))
def test_permuting_samples_changes_nothing(data, rnd):
    conf, err = data
    perm = np.array(rnd.sample(range(len(conf)), len(conf)))
    a, b = curve(conf, err), curve(conf[perm], err[perm])
    np.testing.assert_array_equal(a.cum_errors, b.cum_errors)
    np.testing.assert_array_equal(a.risk, b.risk)


@given(conf_err(max_n=2000))
def test_sequential_curve_breaks_ties_by_input_order(data):
    conf, err = data
    c = curve(conf, err, tie_aware=False)
    expected = [float(e) for e in ref.sequential_cum_errors(conf, err)]
    np.testing.assert_array_equal(c.cum_errors, expected)


@given(conf_err(max_n=500), st.data())
def test_weighted_curve_equals_repeated_samples(data, draw):
    """Bootstrap weights (multinomial counts) give the curve of the repeated samples."""
    conf, err = data
    w = np.array(draw.draw(st.lists(st.integers(0, 3), min_size=len(conf), max_size=len(conf))))
    if w.sum() == 0:
        w[0] = 1
    s = sort_scores(conf, err)
    rep = curve(np.repeat(conf, w), np.repeat(err, w))
    for tie_aware in (True, False):
        got = s.curve(w, tie_aware=tie_aware)
        assert got.n == w.sum()
        want = rep if tie_aware else curve(np.repeat(conf, w), np.repeat(err, w), tie_aware=False)
        np.testing.assert_allclose(got.cum_errors, want.cum_errors, rtol=1e-12, atol=1e-9)
        assert got.n_errors == pytest.approx(float((w * err).sum()))


def test_blocks_sizes_and_errors():
    s = sort_scores(np.array([1.0, 1.0, 0.5, 0.0, 0.0, 0.0]), np.array([1, 0, 1, 1, 1, 0], bool))
    b = s.blocks()
    assert b.sizes.tolist() == [2, 1, 3]
    assert b.errors.tolist() == [1.0, 1.0, 2.0]
    assert b.n == 6 and b.n_errors == 4


def test_single_sample():
    c = curve(np.array([0.3]), np.array([True]))
    assert c.cum_errors.tolist() == [1.0]
    assert c.risk_at_coverage(0.5) == 1.0
    assert c.coverage_at_risk(0.5) == 0.0
    assert c.coverage_at_risk(1.0) == 1.0


# --------------------------------------------------------------------------- risk at coverage
def test_risk_at_coverage_interpolates_linearly_in_k():
    # strict order: ok, err, ok, err -> r = [0, 1/2, 1/3, 1/2]
    c = curve(np.array([4.0, 3.0, 2.0, 1.0]), np.array([False, True, False, True]))
    assert c.risk_at_coverage(0.5) == pytest.approx(0.5)
    assert c.risk_at_coverage(0.375) == pytest.approx(0.25)  # k = 1.5
    assert c.risk_at_coverage(0.625) == pytest.approx(0.5 + 0.5 * (1 / 3 - 0.5))  # k = 2.5
    assert c.risk_at_coverage(1.0) == pytest.approx(0.5)
    assert c.risk_at_coverage(0.1) == 0.0  # below 1/n: the most confident sample


@given(conf_err(max_n=3000), st.floats(0.0, 1.0, exclude_min=True))
def test_risk_at_coverage_matches_reference(data, cov):
    conf, err = data
    got = curve(conf, err).risk_at_coverage(cov)
    assert got == pytest.approx(ref.risk_at_coverage(conf, err, cov), rel=1e-9, abs=1e-12)


@given(small_conf_err(max_n=7), st.integers(1, 7))
def test_risk_at_integer_coverage_equals_brute_force(data, k):
    conf, err = data
    k = min(k, len(conf))
    got = curve(conf, err).risk_at_coverage(k / len(conf))
    brute = ref.brute_force_average(conf, err, lambda seq: sum(seq[:k]) / k)
    assert got == pytest.approx(brute, rel=1e-9, abs=1e-12)


# --------------------------------------------------------------------------- coverage at risk
def test_coverage_at_risk_by_hand():
    # strict order: ok, ok, err, ok, err -> r = [0, 0, 1/3, 1/4, 2/5]
    c = curve(np.arange(5, 0, -1.0), np.array([False, False, True, False, True]))
    assert c.coverage_at_risk(0.0) == pytest.approx(0.4)
    assert c.coverage_at_risk(0.25) == pytest.approx(0.8)  # largest, not first, k
    assert c.coverage_at_risk(0.3) == pytest.approx(0.8)
    assert c.coverage_at_risk(0.4) == pytest.approx(1.0)  # exactly 2/5 counts


def test_coverage_at_risk_zero_when_never_reached():
    c = curve(np.array([2.0, 1.0]), np.array([True, False]))
    assert c.coverage_at_risk(0.1) == 0.0


def test_coverage_at_risk_decimal_target_equal_to_a_risk():
    # r_10 = 3/10 exactly; the float 0.3 is slightly below 3/10 but means 3/10
    err = np.array([True] * 3 + [False] * 7)
    c = curve(np.linspace(0, 1, 10), err)  # errors least confident
    assert c.risk[-1] == pytest.approx(0.3)
    assert c.coverage_at_risk(0.3) == 1.0


@given(conf_err(max_n=3000), st.sampled_from([0.0, 0.01, 0.05, 0.1, 0.25, 0.5, 0.9, 1.0]))
def test_coverage_at_risk_matches_reference(data, risk):
    conf, err = data
    got = curve(conf, err).coverage_at_risk(risk)
    assert got == pytest.approx(ref.coverage_at_risk(conf, err, risk), abs=1e-12)


def test_riskcoverage_from_blocks_directly():
    rc = RiskCoverage(TieBlocks(np.array([2, 0, 2]), np.array([1.0, 0.0, 2.0])))
    np.testing.assert_allclose(rc.cum_errors, [0.5, 1.0, 2.0, 3.0])


@given(conf_err())
def test_sort_permutation_equals_a_stable_descending_argsort(data):
    conf, err = data
    s = sort_scores(conf, err)
    assert np.array_equal(s.order, np.argsort(-conf, kind="stable"))
