"""Confidence scores (sc_eval.scores) against straightforward scipy/numpy formulas."""

from __future__ import annotations

import numpy as np
import pytest
import reference as ref
from hypothesis import given
from hypothesis import strategies as st
from scipy.special import logsumexp, softmax
from scipy.stats import entropy
from strategies import logits_labels

from sc_eval import evaluate
from sc_eval.errors import UsageError
from sc_eval.io import load_predictions, predictions_from_arrays, write_predictions
from sc_eval.pipeline import score_samples
from sc_eval.scores import DEFAULT_SCORES, SCORES, RowStats, get_score

mpmath = pytest.importorskip("mpmath")

PROB_SCORES = ("msp", "margin", "neg-entropy", "gini")
LOGIT_SCORES = ("maxlogit", "logit-margin", "energy", "maxlogit-pnorm", "msp-pnorm", "msp-ts")


def _top2(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    s = np.sort(x, axis=1)
    return s[:, -1], s[:, -2]


def _pnorm(z: np.ndarray, p: float) -> np.ndarray:
    c = z - z.mean(axis=1, keepdims=True)
    if p == 0:  # centred, not normalised (SPEC §3, Cattelan & Silva's code)
        return c
    return c / np.linalg.norm(c, ord=p, axis=1, keepdims=True)


def expected_value(name: str, z: np.ndarray, params: dict[str, float]) -> np.ndarray:
    """Each score straight from SPEC §3, with scipy."""
    p = softmax(z, axis=1)
    if name == "msp":
        return p.max(axis=1)
    if name == "maxlogit":
        return z.max(axis=1)
    if name == "margin":
        a, b = _top2(p)
        return a - b
    if name == "logit-margin":
        a, b = _top2(z)
        return a - b
    if name == "neg-entropy":
        return -entropy(p, axis=1)
    if name == "gini":
        return (p**2).sum(axis=1)
    if name == "energy":
        t = params["T"]
        return t * logsumexp(z / t, axis=1)
    if name == "maxlogit-pnorm":
        return _pnorm(z, params["p"]).max(axis=1)
    if name == "msp-pnorm":
        return softmax(_pnorm(z, params["p"]) / params["T"], axis=1).max(axis=1)
    if name == "msp-ts":
        return softmax(z / params["T"], axis=1).max(axis=1)
    raise AssertionError(name)


PARAMS = {
    "energy": [{"T": 1.0}, {"T": 2.5}],
    "maxlogit-pnorm": [{"p": 0.0}, {"p": 1.0}, {"p": 2.0}, {"p": 4.0}, {"p": 9.0}],
    "msp-pnorm": [{"p": 2.0, "T": 1.0}, {"p": 3.0, "T": 0.1}, {"p": 0.0, "T": 2.0}],
    "msp-ts": [{"T": 0.5}, {"T": 3.0}],
}
CASES = [(name, prm) for name in SCORES for prm in PARAMS.get(name, [{}])]


def run_score(name, z, params=None, *, probs=False):
    stats = RowStats(probs=z) if probs else RowStats(logits=z)
    return get_score(name)(stats, params)


def assert_keys_order_like(key: np.ndarray, value: np.ndarray, *, min_gap: float = 1e-9):
    """Whenever two values differ clearly, the keys order them the same way."""
    dv = value[:, None] - value[None, :]
    with np.errstate(invalid="ignore"):  # inf - inf: equal infinite keys are a tie (NaN)
        dk = key[:, None] - key[None, :]
    clear = np.abs(dv) > min_gap * (1 + np.abs(value).max())
    assert np.all(np.sign(dk[clear]) == np.sign(dv[clear]))


def test_registry_covers_spec():
    assert set(SCORES) == {
        "msp",
        "maxlogit",
        "margin",
        "logit-margin",
        "neg-entropy",
        "gini",
        "energy",
        "msp-ts",
        "maxlogit-pnorm",
        "msp-pnorm",
    }
    for name, s in SCORES.items():
        assert s.needs_logits is (name in LOGIT_SCORES), name
    assert set(DEFAULT_SCORES) <= set(SCORES)


@pytest.mark.parametrize("name, params", CASES, ids=[f"{n}-{p}" for n, p in CASES])
@given(data=logits_labels(max_n=120, scale=None))
def test_score_values_match_scipy(name, params, data):
    z, _ = data
    key, value = run_score(name, z, params)
    assert key.dtype == np.float64 and value.dtype == np.float64
    assert key.shape == value.shape == (z.shape[0],)
    np.testing.assert_allclose(value, expected_value(name, z, params), rtol=1e-9, atol=1e-12)
    assert_keys_order_like(key, value)


@pytest.mark.parametrize("name", list(SCORES))
def test_equal_rows_get_equal_keys(name):
    z = np.array([[1.0, 2.0, -1.0], [0.3, 0.1, 0.2], [1.0, 2.0, -1.0], [0.3, 0.1, 0.2]])
    key, _ = run_score(name, z)
    assert key[0] == key[2] and key[1] == key[3]
    assert key[0] != key[1]


def test_key_orders_a_hand_example():
    z = np.array([[5.0, 0.0, 0.0], [1.0, 0.0, 0.0], [2.0, 1.9, -3.0], [0.0, 0.0, 0.0]])
    for name in ("msp", "margin", "gini", "neg-entropy"):
        key, _ = run_score(name, z)
        assert key[0] > key[1] > key[3], name
    key, _ = run_score("logit-margin", z)
    assert key.tolist() == pytest.approx([5.0, 1.0, 0.1, 0.0])


# --------------------------------------------------------------------------- rank-safe keys
def _saturated_logits(n: int = 40, c: int = 10, seed: int = 3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, c))
    margins = np.linspace(30.0, 200.0, n)
    rng.shuffle(margins)
    top = rng.integers(0, c, n)
    z[np.arange(n), top] = z.max(axis=1) + margins
    return z.astype(np.float32)


def _exact(name: str, row: np.ndarray):
    """The score of one row in 400-digit arithmetic (float32 inputs are exact)."""
    with mpmath.workdps(400):
        zs = [mpmath.mpf(float(v)) for v in row]
        m = max(zs)
        ex = [mpmath.exp(v - m) for v in zs]
        total = mpmath.fsum(ex)
        p = sorted((e / total for e in ex), reverse=True)
        if name == "msp":
            return p[0]
        if name == "margin":
            return p[0] - p[1]
        if name == "gini":
            return mpmath.fsum(q * q for q in p)
        if name == "neg-entropy":
            return mpmath.fsum(q * mpmath.log(q) for q in p if q > 0)
    raise AssertionError(name)


@pytest.mark.parametrize("name", PROB_SCORES)
def test_confident_float32_rows_keep_distinct_ordered_keys(tmp_path, name):
    z = _saturated_logits()
    labels = z.argmax(axis=1)
    # the premise: float32 softmax saturates, so MSP values alone would all tie
    p32 = np.exp(z - z.max(axis=1, keepdims=True))
    p32 = p32 / p32.sum(axis=1, keepdims=True)
    assert np.all(p32.max(axis=1) == np.float32(1.0))

    path = tmp_path / "confident.safetensors"
    write_predictions(path, logits=z, labels=labels)
    scored = score_samples(load_predictions(path), scores=[name])
    key = scored.keys[name]
    exact = [_exact(name, row) for row in z]
    order = sorted(range(len(z)), key=lambda i: exact[i])
    assert len(set(exact)) == len(z)
    assert np.all(np.diff(key[order]) > 0), "keys must be distinct and ordered like the exact score"


@given(data=logits_labels(max_n=100, scale=None), big=st.sampled_from([1.0, 50.0, 1e3, 1e5]))
def test_msp_key_is_minus_logsumexp_of_the_other_logits(data, big):
    """SPEC §3: the MSP rank key is ``-logsumexp_{j != top}(z_j - z_top)`` in float64."""
    z, _ = data
    z = z * big
    top = z.argmax(axis=1)
    others = z - z[np.arange(len(z)), top][:, None]
    others[np.arange(len(z)), top] = -np.inf
    want = -logsumexp(others, axis=1)
    key, value = run_score("msp", z)
    np.testing.assert_allclose(key, want, rtol=1e-12, atol=1e-12)
    assert np.all((value > 0) & (value <= 1))


def test_saturated_msp_metrics_equal_the_exact_ranking():
    z = _saturated_logits(n=60, seed=8)
    labels = z.argmax(axis=1)
    labels[::4] = (labels[::4] + 1) % z.shape[1]  # some errors
    err = labels != z.argmax(axis=1)
    exact = [_exact("msp", row) for row in z]
    rank = np.argsort(np.argsort([float(-mpmath.log(1 - e)) for e in exact])).astype(float)
    ev = evaluate(z, labels, scores=["msp"])
    assert ev.scores["msp"].metrics["aurc"] == pytest.approx(ref.aurc(rank, err), rel=1e-12)
    assert ev.scores["msp"].metrics["auroc"] == pytest.approx(ref.auroc(rank, err), rel=1e-12)


# --------------------------------------------------------------------------- probabilities input
@given(data=logits_labels(max_n=100))
def test_probability_scores_agree_on_probs_and_logits(data):
    z, _ = data
    p = softmax(z, axis=1)
    for name in PROB_SCORES:
        _, v_logits = run_score(name, z)
        key_p, v_probs = run_score(name, p, probs=True)
        np.testing.assert_allclose(v_probs, v_logits, rtol=1e-7, atol=1e-10)
        np.testing.assert_allclose(v_probs, expected_value(name, z, {}), rtol=1e-7, atol=1e-10)
        assert_keys_order_like(key_p, v_probs, min_gap=1e-7)


def test_probs_with_exact_zeros():
    p = np.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.0], [0.2, 0.3, 0.5]])
    z_like = np.log(np.where(p > 0, p, 1e-300))
    for name in PROB_SCORES:
        key, value = run_score(name, p, probs=True)
        assert np.all(~np.isnan(key)) and np.all(~np.isnan(value)), name
        np.testing.assert_allclose(value, expected_value(name, z_like, {}), atol=1e-12)
        assert key[0] > key[1] and key[0] > key[2], name


@pytest.mark.parametrize("name", LOGIT_SCORES)
def test_logit_score_on_probs_is_a_usage_error(name):
    p = softmax(np.array([[1.0, 2.0], [0.0, 0.5]]), axis=1)
    with pytest.raises(UsageError, match="need logits"):
        evaluate(probs=p, labels=np.array([1, 0]), scores=["msp", name])


def test_probs_input_allows_probability_scores():
    z = np.array([[1.0, 2.0, 0.0], [0.0, 0.5, 3.0], [2.0, 0.1, 0.1]])
    y = np.array([1, 2, 1])
    a = evaluate(probs=softmax(z, axis=1), labels=y, scores=list(PROB_SCORES))
    b = evaluate(z, y, scores=list(PROB_SCORES))
    assert a.input_kind == "probs" and b.input_kind == "logits"
    for name in PROB_SCORES:
        assert a.scores[name].metrics["aurc"] == pytest.approx(b.scores[name].metrics["aurc"])


# --------------------------------------------------------------------------- pnorm
@given(data=logits_labels(max_n=100))
def test_pnorm_zero_is_centred_not_normalised(data):
    z, _ = data
    k0, v0 = run_score("maxlogit-pnorm", z, {"p": 0})
    np.testing.assert_array_equal(k0, v0)
    np.testing.assert_allclose(v0, z.max(axis=1) - z.mean(axis=1), rtol=1e-12, atol=1e-12)
    km, _ = run_score("msp-pnorm", z, {"p": 0, "T": 1})
    np.testing.assert_allclose(km, run_score("msp", z)[0], rtol=1e-12)


def test_pnorm_of_constant_rows_is_zero_not_nan():
    z = np.array([[2.0, 2.0, 2.0], [1.0, 0.0, 0.0]])
    key, value = run_score("maxlogit-pnorm", z, {"p": 2})
    assert value[0] == 0.0 and not np.isnan(key).any()


@given(scale=st.floats(0.5, 10), data=logits_labels(max_n=50))
def test_pnorm_is_scale_invariant(scale, data):
    z, _ = data
    a, _ = run_score("maxlogit-pnorm", z, {"p": 2})
    b, _ = run_score("maxlogit-pnorm", z * scale + 7.0, {"p": 2})
    np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)


def test_params_are_resolved_and_reported():
    z = np.array([[1.0, 2.0, 0.0], [0.0, 0.5, 3.0], [2.0, 0.1, 0.1]])
    ev = evaluate(
        z,
        np.array([1, 2, 1]),
        scores=["maxlogit-pnorm", "energy", "msp"],
        params={"maxlogit-pnorm": {"p": 4}, "energy": {"T": 2, "p": 9}},
    )
    assert ev.scores["maxlogit-pnorm"].params == {"p": 4.0}
    assert ev.scores["energy"].params == {"T": 2.0}
    assert ev.scores["msp"].params == {}


def test_unknown_score_suggests_a_name():
    with pytest.raises(UsageError, match="maxlogit"):
        get_score("maxlogt")


def test_chunked_scoring_equals_one_pass(random_preds):
    z, y = random_preds
    preds = predictions_from_arrays(z, y)
    a = score_samples(preds, scores=list(DEFAULT_SCORES), chunk_size=7, workers=2)
    b = score_samples(preds, scores=list(DEFAULT_SCORES), chunk_size=10_000)
    for name in DEFAULT_SCORES:
        np.testing.assert_array_equal(a.keys[name], b.keys[name])
    np.testing.assert_array_equal(a.errors, b.errors)


@pytest.mark.parametrize("name", ["maxlogit-pnorm", "msp-pnorm"])
def test_pnorm_scores_on_two_classes_are_exactly_constant(name):
    """(z - mean)/||z - mean||_p is (d/2, -d/2)/... for C = 2: one tie block, no rounding noise."""
    from sc_eval import evaluate

    rng = np.random.default_rng(1)
    z = (rng.normal(size=(2000, 2)) * 2).astype(np.float32)
    y = rng.integers(0, 2, 2000)
    ev = evaluate(z, y, scores=[name])
    err = 1 - ev.model_metrics["acc"]
    assert ev.scores[name].metrics["aurc"] == pytest.approx(err, abs=1e-15)
    assert ev.scores[name].metrics["auroc"] == 0.5


def test_pnorm_infinity_is_the_max_norm():
    z = np.array([[3.0, 1.0, 0.0], [5.0, 1.0, 0.0], [0.0, 0.0, 0.0]])
    _, value = SCORES["maxlogit-pnorm"](RowStats(logits=z), {"p": float("inf")})
    # (z_top - mean) / max|z - mean| is 1 whenever the top is the farthest from the mean
    assert value.tolist() == [1.0, 1.0, 0.0]
    c = z - z.mean(axis=1, keepdims=True)
    expected = c.max(axis=1) / np.where(np.abs(c).max(axis=1) > 0, np.abs(c).max(axis=1), 1)
    np.testing.assert_allclose(value, expected)


def test_default_scores_follow_the_input_kind():
    from sc_eval import evaluate
    from sc_eval.scores import DEFAULT_SCORES, default_scores

    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(4), size=50)
    y = rng.integers(0, 4, 50)
    ev = evaluate(probs=p, labels=y)
    assert tuple(ev.scores) == default_scores(has_logits=False)
    assert all(not SCORES[n].needs_logits for n in ev.scores)
    assert default_scores(has_logits=True) == DEFAULT_SCORES
