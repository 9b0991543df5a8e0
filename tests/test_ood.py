"""Test sets with out-of-distribution samples (SCOD): views, parity, bad input, commands.

The SCOD view is checked against a slow reference (OOD samples as residual 1,
or β, averaged over every tie order); the ID-only view against scoring the ID
rows alone; OOD detection against scikit-learn; and the whole against the
fd-shifts figures of ``tests/data/ood_cases.json`` (a verbatim copy of
``shared/parity/ood_cases.json``).
"""

from __future__ import annotations

import itertools
import json
import math
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import reference as ref
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import average_precision_score, roc_auc_score
from typer.testing import CliRunner

from sc_eval import evaluate
from sc_eval.cli import app
from sc_eval.errors import InputError, UsageError
from sc_eval.io import load_predictions, predictions_from_arrays, write_predictions
from sc_eval.metrics import get_metric
from sc_eval.pipeline import EvalOptions, evaluate_predictions, evaluate_source

CASES = json.loads((Path(__file__).parent / "data" / "ood_cases.json").read_text())["cases"]
PLAIN_ENV = {"NO_COLOR": "1", "FORCE_COLOR": None, "COLUMNS": None, "SC_EVAL_DEBUG": None}
TOL = 1e-6


def mixed(seed: int = 0, n_id: int = 120, n_ood: int = 40, c: int = 4, ties: bool = True):
    """Logits and labels (-1 = OOD) of a small mixed test set, with exact ties if asked."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, c, n_id)
    z = rng.normal(size=(n_id, c))
    z[np.arange(n_id), y] += 1.5
    zo = rng.normal(size=(n_ood, c)) * 0.7
    logits = np.concatenate([z, zo])
    if ties:  # duplicated rows make equal scores across ID and OOD samples
        logits[n_id + 1] = logits[0]
        logits[n_id + 2] = logits[3]
        logits[5] = logits[6]
    labels = np.concatenate([y, np.full(n_ood, -1)])
    perm = rng.permutation(n_id + n_ood)
    return logits[perm], labels[perm]


def msp_key(z):
    from sc_eval.scores import RowStats, get_score

    return get_score("msp")(RowStats(logits=np.asarray(z, dtype=np.float64)), None)[0]


# --------------------------------------------------------------------------- reference
def brute_force_scod(conf, residual, fn):
    """Average of ``fn(cumulative residuals)`` over every order of the tie blocks (exact)."""
    blocks = ref.tie_blocks(conf, residual)
    values = []
    for combo in itertools.product(*(itertools.permutations(b) for b in blocks)):
        order = [i for b in combo for i in b]
        values.append(fn(list(itertools.accumulate(residual[i] for i in order))))
    return sum(values, Fraction(0)) / len(values)


def ref_aurc(cum):
    return sum(Fraction(e) / k for k, e in enumerate(cum, start=1)) / len(cum)


def ref_augrc(cum):
    return sum(Fraction(e) for e in cum) / len(cum) ** 2


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.sampled_from([0.0, 0.5, 1.0, 2.0]), min_size=2, max_size=7),
    st.lists(st.sampled_from(["ok", "wrong", "ood"]), min_size=7, max_size=7),
    st.sampled_from([Fraction(1), Fraction(1, 2), Fraction(3)]),
)
def test_scod_area_metrics_equal_the_brute_force_reference(conf, kinds, beta):
    """Fast tie-aware SCOD AURC/AUGRC = average over every tie order, OOD residual β."""
    from sc_eval.curves import sort_scores
    from sc_eval.metrics import CONVENTIONS, Curves
    from sc_eval.ood import residuals

    kinds = kinds[: len(conf)]
    conf = np.array(conf)
    ood = np.array([k == "ood" for k in kinds])
    wrong = np.array([k != "ok" for k in kinds])
    res_exact = [beta if o else Fraction(int(w)) for o, w in zip(ood, wrong, strict=True)]
    res = residuals(wrong, ood, cost=float(beta))
    curves = Curves(sort_scores(conf, res))
    mean = CONVENTIONS["mean"]
    assert mean.aurc(curves) == pytest.approx(float(brute_force_scod(conf, res_exact, ref_aurc)))
    assert mean.augrc(curves) == pytest.approx(float(brute_force_scod(conf, res_exact, ref_augrc)))


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10_000))
def test_scod_view_equals_the_reference_on_residual_one(seed):
    """β = 1: every SCOD metric is today's metric with OOD samples as errors (slow reference)."""
    z, y = mixed(seed=seed, n_id=30, n_ood=10)
    ev = evaluate(z, y, scores=["msp"], coverages=[0.5, 0.9], risks=[0.2])
    conf = msp_key(z)
    failure = (np.argmax(z, axis=1) != y) | (y == -1)
    m = ev.scores["msp"].metrics
    assert m["aurc"] == pytest.approx(ref.aurc(conf, failure), abs=1e-12)
    assert m["augrc"] == pytest.approx(ref.augrc(conf, failure), abs=1e-12)
    assert m["e-aurc"] == pytest.approx(ref.e_aurc(conf, failure), abs=1e-12)
    assert m["naurc"] == pytest.approx(ref.naurc(conf, failure), abs=1e-12)
    assert m["auroc"] == pytest.approx(ref.auroc(conf, failure), abs=1e-12)
    assert m["fpr@95tpr"] == pytest.approx(ref.fpr_at_tpr(conf, failure), abs=1e-12)
    risks = ref.selective_risks(conf, failure)
    assert m["risk@cov=0.5"] == pytest.approx(risks[len(risks) // 2 - 1], abs=1e-12)
    ok = [k for k, r in enumerate(risks, start=1) if r <= 0.2]
    assert m["cov@risk=0.2"] == pytest.approx(max(ok, default=0) / len(risks))


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1), st.sampled_from(["mean", "trapezoid", "torch-uncertainty"]))
def test_id_view_is_bit_identical_to_scoring_the_id_rows(seed, convention):
    z, y = mixed(seed=seed % 1000, n_id=50, n_ood=15)
    kw = dict(scores=["msp", "maxlogit", "margin"], convention=convention)
    ev = evaluate(z, y, **kw)
    alone = evaluate(z[y >= 0], y[y >= 0], **kw)
    for s, r in alone.scores.items():
        for name, v in r.metrics.items():
            got = ev.scores[s].metrics[f"id:{name}"]
            assert got == v or (math.isnan(got) and math.isnan(v)), (s, name)
    assert ev.model_metrics == alone.model_metrics


def test_ood_detection_equals_sklearn():
    z, y = mixed(seed=3)
    ev = evaluate(z, y, scores=["msp", "maxlogit", "energy"])
    is_id = (y >= 0).astype(int)
    for s in ("msp", "maxlogit", "energy"):
        from sc_eval.scores import RowStats, get_score

        key = get_score(s)(RowStats(logits=z), None)[0]
        m = ev.scores[s].metrics
        assert m["ood:auroc"] == pytest.approx(roc_auc_score(is_id, key), abs=1e-12)
        assert m["ood:aupr-in"] == pytest.approx(average_precision_score(is_id, key), abs=1e-12)
        assert m["ood:aupr-out"] == pytest.approx(
            average_precision_score(1 - is_id, -key), abs=1e-12
        )
        fpr_ref = ref.fpr_at_tpr(key, y < 0)  # ID positive, OOD the "errors"
        assert m["ood:fpr@95tpr"] == pytest.approx(fpr_ref, abs=1e-12)


def test_detection_ties_count_half():
    """Three ID and one OOD sample, one ID tied with the OOD: AUROC = (2 + 1/2) / 3."""
    z = np.array([[3.0, 0], [2.0, 0], [1.0, 0], [1.0, 0]])
    y = np.array([0, 0, 0, -1])
    m = evaluate(z, y, scores=["maxlogit"]).scores["maxlogit"].metrics
    assert m["ood:auroc"] == pytest.approx(2.5 / 3)


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 10_000))
def test_every_view_is_order_invariant(seed):
    z, y = mixed(seed=seed, n_id=40, n_ood=12)
    perm = np.random.default_rng(seed).permutation(len(y))
    a = evaluate(z, y, scores=["msp", "maxlogit"])
    b = evaluate(z[perm], y[perm], scores=["msp", "maxlogit"])
    for s in a.scores:
        for name, v in a.scores[s].metrics.items():
            w = b.scores[s].metrics[name]
            assert w == pytest.approx(v, rel=1e-12, abs=1e-15) or (math.isnan(v) and math.isnan(w))


def test_cost_one_equals_the_default_and_other_costs_change_only_risk_metrics():
    z, y = mixed(seed=4)
    preds = predictions_from_arrays(z, y)
    opts = EvalOptions(scores=("msp",), coverages=(0.8,), risks=(0.2,))
    base = evaluate_predictions(preds, scores=["msp"], coverages=[0.8], risks=[0.2])
    one, _ = evaluate_source(preds, opts)
    assert one.scores["msp"].metrics == base.scores["msp"].metrics
    half, _ = evaluate_source(preds, EvalOptions(**{**opts.__dict__, "ood_cost": 0.5}))
    api = evaluate(z, y, scores=["msp"], coverages=[0.8], risks=[0.2], ood_cost=0.5)
    assert api.scores["msp"].metrics["aurc"] == half.scores["msp"].metrics["aurc"]
    m0, m = base.scores["msp"].metrics, half.scores["msp"].metrics
    assert m["auroc"] == m0["auroc"] and m["fpr@95tpr"] == m0["fpr@95tpr"]
    assert m["id:aurc"] == m0["id:aurc"] and m["ood:auroc"] == m0["ood:auroc"]
    assert m["aurc"] < m0["aurc"] and m["augrc"] < m0["augrc"]
    assert math.isnan(m["e-aurc"]) and "--ood-cost" in half.scores["msp"].notes["e-aurc"]
    # NAURC with β: (AURC - oracle) / (err - oracle), the oracle accepting cheaper samples first
    key = msp_key(z)
    res = np.where(y < 0, 0.5, (np.argmax(z, axis=1) != y).astype(float))
    from sc_eval.curves import sort_scores
    from sc_eval.metrics import CONVENTIONS, Curves

    conv = CONVENTIONS["mean"]
    opt = conv.aurc(Curves(sort_scores(-res, res)))
    aurc = conv.aurc(Curves(sort_scores(key, res)))
    assert m["naurc"] == pytest.approx((aurc - opt) / (res.mean() - opt))
    assert half.ood == {"n_id": int((y >= 0).sum()), "n_ood": int((y < 0).sum()), "cost": 0.5}


def test_bad_ood_cost_is_a_usage_error():
    preds = predictions_from_arrays(*mixed(seed=0))
    with pytest.raises(UsageError, match="--ood-cost"):
        evaluate_source(preds, EvalOptions(scores=("msp",), ood_cost=-1.0))


def test_view_metric_names_resolve():
    assert get_metric("scod:aurc").name == "aurc"
    assert get_metric("id:risk@cov=0.9").name == "id:risk@cov=0.9"
    assert get_metric("ood:aupr-out").higher_is_better
    assert not get_metric("ood:fpr@95tpr").higher_is_better
    for bad in ("ood:aurc", "id:nope", "foo:aurc"):
        with pytest.raises(UsageError, match="unknown metric"):
            get_metric(bad)


# --------------------------------------------------------------------------- parity
@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_parity_with_fd_shifts_and_sklearn(case):
    z = np.asarray(case["logits"], dtype=np.float32)
    y = np.asarray(case["labels"], dtype=np.int64)
    kw = dict(scores=["msp"], coverages=[], risks=[])
    trap = evaluate(z, y, convention="trapezoid", **kw).scores["msp"].metrics
    mean = evaluate(z, y, convention="mean", **kw).scores["msp"].metrics
    fd, sk, r = case["fd_shifts"], case["sklearn"], case["ref"]
    assert trap["augrc"] == pytest.approx(fd["scod_augrc"], abs=TOL)
    assert trap["id:augrc"] == pytest.approx(fd["id_augrc"], abs=TOL)
    assert mean["ood:auroc"] == pytest.approx(sk["ood_auroc"], abs=TOL)
    assert mean["aurc"] == pytest.approx(r["scod_aurc_mean"], abs=TOL)
    assert trap["aurc"] == pytest.approx(r["scod_aurc_trapezoid"], abs=TOL)
    assert mean["augrc"] == pytest.approx(r["scod_augrc_mean"], abs=TOL)
    assert mean["id:aurc"] == pytest.approx(r["id_aurc_mean"], abs=TOL)


def test_parity_fixture_is_the_shared_file_and_has_ties():
    shared = Path(__file__).resolve().parents[2] / "shared" / "parity" / "ood_cases.json"
    if shared.is_file():
        assert json.loads(shared.read_text())["cases"] == CASES
    assert len(CASES) == 10
    assert any(len({tuple(r) for r in c["logits"]}) < len(c["logits"]) for c in CASES)


# --------------------------------------------------------------------------- input
def test_write_and_load_with_an_ood_mask(tmp_path):
    z, y = mixed(seed=5)
    ood = y < 0
    labels = np.where(ood, 0, y)  # the mask, not the label, marks them on writing
    write_predictions(tmp_path / "m.safetensors", logits=z, labels=labels, ood=ood)
    p = load_predictions(tmp_path / "m.safetensors")
    assert (p.labels == y).all() and (p.ood == ood).all() and p.has_ood
    assert "ood" not in p.extra


def test_ood_mask_under_another_key(tmp_path):
    z, y = mixed(seed=5)
    np.savez(tmp_path / "m.npz", logits=z, labels=y, is_ood=y < 0)
    p = load_predictions(tmp_path / "m.npz", ood_key="is_ood")
    assert (p.ood == (y < 0)).all()


@pytest.mark.parametrize(
    ("tensors", "expect"),
    [
        (lambda z, y: {"labels": np.where(y < 0, -2, y)}, ["labels", "-2", "or -1"]),
        (lambda z, y: {"ood": (y < 0)[:-1]}, ["ood", "shape"]),
        (lambda z, y: {"ood": (y < 0).astype(np.int64)}, ["ood", "boolean", "int64"]),
        (lambda z, y: {"ood": np.zeros_like(y, dtype=bool)}, ["ood", "label is -1"]),
        (lambda z, y: {"ood": np.ones_like(y, dtype=bool)}, ["ood", "marked OOD", "label"]),
    ],
    ids=["label-2", "ood-length", "ood-dtype", "ood-says-id", "ood-says-ood"],
)
def test_bad_ood_input_is_one_line_exit_2(tmp_path, tensors, expect):
    z, y = mixed(seed=6)
    arrays = {"logits": z.astype(np.float32), "labels": y, **tensors(z, y)}
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(InputError) as info:
        load_predictions(tmp_path / "bad.npz")
    for part in expect:
        assert part in str(info.value)
    r = CliRunner(env=PLAIN_ENV).invoke(app, ["score", str(tmp_path / "bad.npz")])
    assert r.exit_code == 2
    assert r.stderr.startswith("sc-eval: error:") and r.stderr.count("\n") == 1
    assert "Traceback" not in r.output


def test_only_ood_samples_say_undefined_once():
    z, _ = mixed(seed=7)
    y = np.full(len(z), -1)
    ev = evaluate(z, y, scores=["msp", "maxlogit"])
    m = ev.scores["msp"].metrics
    assert m["aurc"] == 1.0 and m["augrc"] == pytest.approx(0.5 + 1 / (2 * len(y)))
    assert all(math.isnan(v) for k, v in m.items() if k.startswith(("id:", "ood:")))
    assert all(math.isnan(v) for v in ev.model_metrics.values())
    said = [n for n in ev.notes if "every sample is OOD" in n]
    assert len(said) == 1
    r = CliRunner(env=PLAIN_ENV).invoke(app, ["score", "--help"])
    assert r.exit_code == 0 and "--ood-cost" in r.stdout


def test_tuning_split_of_a_mixed_file_is_refused():
    preds = predictions_from_arrays(*mixed(seed=8))
    with pytest.raises(UsageError, match="--val"):
        evaluate_source(preds, EvalOptions(scores=("maxlogit-pnorm",), tune_split=0.2))
    with pytest.raises(InputError, match="OOD rows"):
        plain = predictions_from_arrays(*mixed(seed=8, n_ood=0, ties=False))
        evaluate_source(plain, EvalOptions(scores=("maxlogit-pnorm",), val=preds))


# --------------------------------------------------------------------------- score command
@pytest.fixture
def files(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    z, y = mixed(seed=9, n_id=200, n_ood=60)
    write_predictions("mixed.safetensors", logits=z.astype(np.float32), labels=y)
    keep = y >= 0
    write_predictions("id.safetensors", logits=z[keep].astype(np.float32), labels=y[keep])
    return tmp_path


def invoke(*args: str, code: int = 0):
    r = CliRunner(env=PLAIN_ENV).invoke(app, list(args))
    assert r.exit_code == code, (r.exit_code, r.stdout, r.stderr)
    return r


def test_score_table_shows_three_labelled_views(files):
    out = invoke("score", "mixed.safetensors", "-s", "msp,maxlogit").stdout
    assert "N=260 (200 ID + 60 OOD)" in out
    for title in ("SCOD (failure = misclassified ID or any OOD", "ID only", "OOD detection"):
        assert title in out
    assert "AUPR-OUT (%)" in out and "60 of 260 samples are OOD" in out


def test_score_json_and_csv_hold_every_view(files):
    doc = json.loads(invoke("score", "mixed.safetensors", "-f", "json").stdout)
    res = doc["results"][0]
    assert res["ood"] == {"n_id": 200, "n_ood": 60, "cost": 1.0}
    metrics = res["scores"]["msp"]["metrics"]
    assert {"aurc", "id:aurc", "ood:auroc", "ood:aupr-in", "id:risk@cov=0.9"} <= set(metrics)
    assert doc["metrics"]["ood:fpr@95tpr"]["higher_is_better"] is False
    alone = json.loads(invoke("score", "id.safetensors", "-f", "json").stdout)["results"][0]
    assert alone["scores"]["msp"]["metrics"]["aurc"] == metrics["id:aurc"]
    csv = invoke("score", "mixed.safetensors", "-f", "csv").stdout
    assert "ood:aupr-out" in csv and ",id:aurc," in csv


def test_score_ood_cost_and_bootstrap(files):
    doc = json.loads(
        invoke(
            "score", "mixed.safetensors", "--ood-cost", "0.5", "-s", "msp", "--bootstrap", "50",
            "-f", "json",
        ).stdout
    )  # fmt: skip
    res = doc["results"][0]
    assert res["ood"]["cost"] == 0.5 and res["scores"]["msp"]["metrics"]["e-aurc"] is None
    ivs = res["scores"]["msp"]["intervals"]
    for name in ("aurc", "id:aurc", "ood:auroc", "ood:aupr-in"):
        low, high = ivs[name]
        assert low <= res["scores"]["msp"]["metrics"][name] <= high
    r = invoke("score", "mixed.safetensors", "--ood-cost", "-1", code=2)
    assert "--ood-cost" in r.stderr


def test_markdown_at_80_columns_names_the_views(files):
    md = invoke("score", "mixed.safetensors", "-s", "msp", "-f", "markdown").stdout
    assert "**mixed.safetensors — ID only" in md and "| AUROC (%) | AUPR-IN (%)" in md


# --------------------------------------------------------------------------- compare / gate
def test_compare_pairs_every_view_over_the_mixed_set(files):
    z, y = mixed(seed=9, n_id=200, n_ood=60)
    rng = np.random.default_rng(2)
    noisy = (0.5 * z + 0.4 * rng.normal(size=z.shape)).astype(np.float32)
    write_predictions("noisy.safetensors", logits=noisy, labels=y)
    args = ("compare", "mixed.safetensors", "noisy.safetensors", "-s", "msp", "--bootstrap", "100")
    doc = json.loads(invoke(*args, "-f", "json").stdout)
    rows = doc["comparisons"][0]["rows"]
    for name in ("aurc", "id:aurc", "ood:auroc", "ood:aupr-out", "acc"):
        cell = rows[1]["metrics"][name]
        assert cell["delta"]["estimate"] == pytest.approx(
            cell["value"] - rows[0]["metrics"][name]["value"]
        )
        assert cell["delta"]["low"] <= cell["delta"]["estimate"] <= cell["delta"]["high"]
    # the SCOD and OOD views are resampled together: same counts as a plain bootstrap of the
    # mixed set with OOD as the "errors" of the detection view
    from sc_eval.stats import bootstrap_metrics

    a, b = (evaluate_source(load_predictions(f), EvalOptions(scores=("msp",))) for f in
            ("mixed.safetensors", "noisy.safetensors"))  # fmt: skip
    ood = y < 0
    plain = bootstrap_metrics(
        [a[1], b[1]], metrics=["aurc"], scores=["msp"], n_boot=100, seed=0
    ).replicates(1, "msp", "aurc")
    from sc_eval.ood import bootstrap_views

    views = bootstrap_views(
        [a[1], b[1]], [ood, ood], metrics=["aurc"], scores=["msp"], convention="mean",
        n_boot=100, seed=0,
    ).replicates(1, "msp", "aurc")  # fmt: skip
    assert np.array_equal(plain, views)
    table = invoke(*args).stdout
    for title in ("msp — SCOD", "msp — ID only", "msp — OOD detection"):
        assert title in table


def test_gate_rules_on_views(files):
    invoke("score", "mixed.safetensors", "-f", "json", "-o", "base.json")
    ok = invoke("gate", "mixed.safetensors", "--baseline", "base.json",
                "--metric", "scod:aurc,id:aurc,ood:auroc,ood:fpr@95tpr")  # fmt: skip
    assert "id:aurc[msp]" in ok.stdout and "ood:auroc[msp]" in ok.stdout
    z, y = mixed(seed=9, n_id=200, n_ood=60)
    worse = z.copy()
    worse[y < 0] *= 4  # confident OOD samples: detection and SCOD regress, ID does not
    write_predictions("worse.safetensors", logits=worse.astype(np.float32), labels=y)
    r = invoke("gate", "worse.safetensors", "--baseline", "base.json",
               "--metric", "id:aurc,ood:auroc", code=1)  # fmt: skip
    assert "gate FAILED: ood:auroc[msp]" in r.stderr and "id:aurc" not in r.stderr
    r = invoke("gate", "worse.safetensors", "--baseline", "mixed.safetensors", "--metric",
               "ood:auroc,aurc", "--alpha", "0.05", "--bootstrap", "100", code=1)  # fmt: skip
    assert "ood:auroc[msp]" in r.stderr
    r = invoke("gate", "mixed.safetensors", "--baseline", "base.json", "--ood-cost", "2", code=2)
    assert "--ood-cost 1" in r.stderr
    r = invoke("gate", "id.safetensors", "--baseline", "id.safetensors", "--metric", "ood:auroc",
               code=2)  # fmt: skip
    assert "holds no OOD samples" in r.stderr


# ------------------------------------------------------------------ threshold, slices, plot
def test_threshold_counts_ood_acceptances_as_errors_and_says_so(files):
    doc = json.loads(
        invoke("threshold", "mixed.safetensors", "--target-coverage", "0.8", "-f", "json").stdout
    )
    z, y = mixed(seed=9, n_id=200, n_ood=60)
    z = z.astype(np.float32)
    key = msp_key(z)
    accept = key >= doc["threshold"]["key"]
    failure = (np.argmax(z, axis=1) != y) | (y < 0)
    assert doc["calibration"]["accepted"] == int(accept.sum())
    assert doc["calibration"]["errors"] == int(failure[accept].sum())
    assert doc["calibration"]["ood"] == 60
    assert "Errors include every accepted OOD sample" in doc["guarantee"]
    table = invoke("threshold", "mixed.safetensors", "--target-risk", "0.3").stdout
    assert "Errors include every accepted OOD sample (60 of the 260" in table
    r = invoke("threshold", "mixed.safetensors", "--target-risk", "0.3", "--tune-split", "0.2",
               "-s", "maxlogit-pnorm", code=2)  # fmt: skip
    assert "holds OOD samples" in r.stderr


def test_slices_put_ood_samples_in_their_own_slice(files):
    z, y = mixed(seed=9, n_id=200, n_ood=60)
    groups = np.arange(len(y)) % 3
    write_predictions("g.safetensors", logits=z.astype(np.float32), labels=y)
    np.savez("g.npz", logits=z.astype(np.float32), labels=y, site=groups)
    for args in (("g.safetensors", "--by", "class"), ("g.npz", "--by", "group", "--groups-key",
                                                      "site")):  # fmt: skip
        doc = json.loads(invoke("score", *args, "-s", "msp", "-f", "json").stdout)
        rows = {r["slice"]: r for r in doc["results"][0]["slices"]}
        assert rows["OOD (label -1)"]["n"] == 60 and rows["OOD (label -1)"]["errors"] == 60
        assert sum(r["n"] for r in rows.values()) == 260
    out = invoke("score", "g.safetensors", "--by", "class", "-s", "msp").stdout
    assert "OOD (label -1): samples of classes the model never saw" in out


def test_plot_draws_scod_and_id_curves(files):
    pytest.importorskip("matplotlib")
    r = invoke("score", "mixed.safetensors", "-s", "msp", "--plot", "p.svg")
    svg = Path("p.svg").read_text()
    assert "mixed.safetensors · SCOD · msp" in svg and "mixed.safetensors · ID only · msp" in svg
    assert "wrote p.svg" in r.stderr


# --------------------------------------------------------------------------- inference
def test_infer_and_compare_checkpoints_with_ood_data(tmp_path, monkeypatch):
    torch = pytest.importorskip("torch")
    from nets import IN_FEATURES, MLP, save_torchscript, trained
    from safetensors.torch import save_file

    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1]))
    g = torch.Generator().manual_seed(3)
    x, y = torch.randn(40, IN_FEATURES, generator=g), torch.randint(0, 4, (40,), generator=g)
    xo = 3 * torch.randn(15, IN_FEATURES, generator=g)
    save_file({"inputs": x, "labels": y}, "id.safetensors")
    save_file({"inputs": xo, "labels": torch.zeros(15, dtype=torch.int64)}, "ood.safetensors")
    for name, seed in (("a", 4), ("b", 5)):
        save_torchscript(trained(MLP(), seed=seed), Path(f"{name}.pt"))
    r = invoke("infer", "a.pt", "--data", "id.safetensors", "--ood-data", "ood.safetensors",
               "-o", "mixed.safetensors", "--no-progress")  # fmt: skip
    assert "40 ID + 15 OOD samples" in r.stderr
    p = load_predictions("mixed.safetensors")
    assert p.n == 55 and (p.labels[40:] == -1).all() and (p.labels[:40] == y.numpy()).all()
    assert (p.ood == (p.labels == -1)).all() and len(set(p.index.tolist())) == 55
    model = torch.jit.load("a.pt")
    with torch.no_grad():
        expect = model(torch.cat([x, xo])).numpy()
    np.testing.assert_allclose(np.asarray(p.values.full()), expect, rtol=1e-5, atol=1e-5)
    args = ["compare", "a.pt", "b.pt", "--data", "id.safetensors", "--ood-data"]
    args += ["ood.safetensors", "--no-cache", "-s", "msp", "--bootstrap", "20", "-f", "json"]
    doc = json.loads(invoke(*args).stdout)
    assert doc["n"] == 55 and doc["results"][0]["ood"]["n_ood"] == 15
    assert "ood:auroc" in doc["comparisons"][0]["rows"][1]["metrics"]
    scored = json.loads(invoke("score", "mixed.safetensors", "-s", "msp", "-f", "json").stdout)
    ours = scored["results"][0]["scores"]["msp"]["metrics"]
    for name, value in doc["results"][0]["scores"]["msp"]["metrics"].items():
        assert value == pytest.approx(ours[name], rel=1e-6, abs=1e-9), name
    r = invoke("score", "a.pt", "--ood-data", "ood.safetensors", code=2)
    assert "--ood-data needs --data" in r.stderr


# --------------------------------------------------------------------------- demo
def test_demo_ood_part_reuses_the_id_numbers(tmp_path):
    from sc_eval.demo import DemoConfig, run_demo

    cfg = DemoConfig(classes=10, n_train=600, n_test=400, hidden=32, epochs=2)
    res = run_demo(cfg, out=tmp_path, progress=False, n_boot=20)
    ood = res.ood
    assert ood is not None and ood.n_ood == 100 and ood.n_id == res.summary.n_eval
    for model in ("ce", "ls"):
        for score in ("msp", "maxlogit-pnorm"):
            # the ID view of the mixed set is the demo's own ID evaluation, same tuned p
            assert ood.values[(model, score, "id:aurc")] == res.summary.aurc[(model, score)]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in res.files.values())
    mixed = load_predictions(res.files["ce_mixed_predictions"])
    assert int(mixed.ood.sum()) == 100
    text = " ".join(ood.lines)
    assert "OOD detection" in text and "SCOD AURC" in text and "P-norm under OOD" in text
    off = run_demo(
        DemoConfig(classes=10, n_train=600, n_test=400, hidden=32, epochs=2, ood=False),
        out=tmp_path / "off",
        progress=False,
        n_boot=0,
    )
    assert off.ood is None


def test_ood_conclusions_follow_the_numbers():
    from sc_eval.demo_ood import OodDemo, ood_conclusions

    def demo(ce_auroc, ls_auroc, ls_fix_aurc):
        values = {}
        for model, auroc in (("ce", ce_auroc), ("ls", ls_auroc)):
            for score in ("msp", "maxlogit-pnorm"):
                values[(model, score, "ood:auroc")] = auroc
                values[(model, score, "aurc")] = 0.3 if model == "ce" else 0.35
        values[("ls", "maxlogit-pnorm", "aurc")] = ls_fix_aurc
        return OodDemo(None, values, {}, 900, 250, 25, {}, [])  # type: ignore[arg-type]

    worse = " ".join(ood_conclusions(demo(0.8, 0.7, 0.4)))
    assert "LS is worse than CE, 70.00% vs 80.00%" in worse and "does not lower" in worse
    better = " ".join(ood_conclusions(demo(0.7, 0.8, 0.25)))
    assert "LS is better than CE" in better and "below CE's MSP 30.00%" in better


@pytest.mark.parametrize("cost", [1.0, 0.5, 2.0])
def test_bootstrap_of_weighted_residuals_equals_reweighted_curves(cost):
    """The bootstrap's closed forms accept fractional OOD residuals: each replicate equals
    the metric of the curves re-weighted by that resample's counts."""
    from sc_eval.curves import sort_scores
    from sc_eval.metrics import CONVENTIONS, Curves
    from sc_eval.ood import bootstrap_views, residuals
    from sc_eval.stats import bootstrap_counts

    z, y = mixed(seed=11, n_id=60, n_ood=25)
    preds = predictions_from_arrays(z, y)
    _, scored = evaluate_source(preds, EvalOptions(scores=("msp",), ood_cost=cost))
    ood = y < 0
    names = ["aurc", "augrc", "risk@cov=0.8", "ood:auroc", "ood:aupr-in", "auroc", "e-aurc"]
    boot = bootstrap_views(
        [scored], [ood], metrics=names, scores=["msp"], convention="mean", n_boot=5, seed=3,
        cost=cost,
    )  # fmt: skip
    key = scored.keys["msp"]
    res = residuals(scored.errors, ood, cost=cost)
    conv = CONVENTIONS["mean"]
    for b, counts in enumerate(bootstrap_counts(len(y), 5, seed=3)):
        c = Curves(sort_scores(key, res), counts)
        assert boot.values[b, 0, 0, 0] == pytest.approx(conv.aurc(c), rel=1e-9)
        assert boot.values[b, 0, 0, 1] == pytest.approx(conv.augrc(c), rel=1e-9)
        assert boot.values[b, 0, 0, 2] == pytest.approx(c.tied.risk_at_coverage(0.8), rel=1e-9)
        d = Curves(sort_scores(key, ood), counts)
        assert boot.values[b, 0, 0, 3] == pytest.approx(get_metric("ood:auroc")(d, conv))
        assert boot.values[b, 0, 0, 4] == pytest.approx(get_metric("ood:aupr-in")(d, conv))
        f = Curves(sort_scores(key, scored.errors | ood), counts)  # success vs failure: no β
        assert boot.values[b, 0, 0, 5] == pytest.approx(get_metric("auroc")(f, conv))
        assert math.isnan(boot.values[b, 0, 0, 6]) == (cost != 1.0)


def test_diagnose_refuses_ood_rows_with_one_line(tmp_path):
    from typer.testing import CliRunner

    from sc_eval.cli import app

    z, y = mixed(seed=5, n_id=60, n_ood=10)
    path = tmp_path / "mixed.safetensors"
    write_predictions(path, logits=z, labels=y)
    r = CliRunner(env={"NO_COLOR": "1"}).invoke(app, ["diagnose", str(path), "--bootstrap", "0"])
    assert r.exit_code == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "OOD samples (label -1)" in lines[0], r.stderr


@pytest.mark.parametrize("cost", ["nan", "-1", "inf", "1e308"])
def test_ood_cost_out_of_range_is_one_line(tmp_path, cost):
    from typer.testing import CliRunner

    from sc_eval.cli import app

    z, y = mixed(seed=5, n_id=60, n_ood=10)
    path = tmp_path / "mixed.safetensors"
    write_predictions(path, logits=z, labels=y)
    r = CliRunner(env={"NO_COLOR": "1"}).invoke(app, ["score", str(path), "--ood-cost", cost])
    assert r.exit_code == 2
    assert r.stderr.strip().splitlines() == [r.stderr.strip()] and "--ood-cost" in r.stderr
