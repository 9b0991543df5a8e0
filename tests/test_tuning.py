"""Post-hoc tuning (SPEC §3, issue 7): split, p-norm grid, MSP fall-back, temperature, CLI."""

from __future__ import annotations

import csv
import io
import json
import typing
import warnings

import numpy as np
import pytest
from typer.testing import CliRunner

from sc_eval.cli import app, options
from sc_eval.errors import InputError, UsageError
from sc_eval.io import predictions_from_arrays, write_predictions
from sc_eval.pipeline import EvalOptions, ScEvalWarning, evaluate, evaluate_source
from sc_eval.scores import MSP_FALLBACK, SCORES, RowStats, get_score
from sc_eval.tuning import P_GRID, fit_temperature, split_indices, tune, tuning_aurc

PLAIN_ENV = {"NO_COLOR": "1", "FORCE_COLOR": None, "COLUMNS": None, "SC_EVAL_DEBUG": None}


# --------------------------------------------------------------------------- builders
def _key(name: str, z: np.ndarray, **params: float) -> np.ndarray:
    return get_score(name)(RowStats(logits=z.astype(np.float64)), params)[0]


def ranked_by(
    key_of: str, n: int = 3000, c: int = 20, *, err: float = 0.3, seed: int = 0, **params: float
) -> tuple[np.ndarray, np.ndarray]:
    """Random logits labelled so that score ``key_of`` (with ``params``) ranks every
    misclassified sample below every correct one: that score has the oracle AURC."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, c)) * rng.uniform(0.5, 4.0, size=(n, 1))
    top = z.argmax(axis=1)
    key = _key(key_of, z, **params)
    wrong = key < np.quantile(key, err)
    labels = np.where(wrong, (top + 1 + rng.integers(0, c - 1, n)) % c, top)
    return z, labels.astype(np.int64)


def tempered(n: int, c: int, temperature: float, *, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Logits and labels drawn from ``softmax(z / temperature)``."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, c)) * 3.0
    p = np.exp(z / temperature - (z / temperature).max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    labels = (p.cumsum(axis=1) > rng.random((n, 1))).argmax(axis=1)
    return z, labels.astype(np.int64)


def opts(**kw) -> EvalOptions:
    kw.setdefault("scores", ("msp", "maxlogit-pnorm"))
    kw.setdefault("metrics", ("aurc",))
    return EvalOptions(**kw)


# --------------------------------------------------------------------------- split
def test_split_depends_only_on_n_fraction_and_seed():
    a_tune, a_eval = split_indices(1000, fraction=0.1, seed=3)
    b_tune, b_eval = split_indices(1000, fraction=0.1, seed=3)
    assert np.array_equal(a_tune, b_tune) and np.array_equal(a_eval, b_eval)
    assert len(a_tune) == 100 and len(a_eval) == 900
    assert np.intersect1d(a_tune, a_eval).size == 0
    assert np.array_equal(np.sort(np.concatenate([a_tune, a_eval])), np.arange(1000))
    assert np.all(np.diff(a_tune) > 0) and np.all(np.diff(a_eval) > 0)
    other, _ = split_indices(1000, fraction=0.1, seed=4)
    assert not np.array_equal(other, a_tune)


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1, 1.5])
def test_split_rejects_bad_fractions(fraction):
    with pytest.raises(UsageError, match="fraction"):
        split_indices(100, fraction=fraction)


def test_split_needs_samples_left_to_evaluate():
    with pytest.raises(UsageError, match="none to evaluate"):
        split_indices(2, fraction=0.9)


def test_tuning_never_sees_the_evaluation_samples():
    z, y = ranked_by("maxlogit-pnorm", p=4.0)
    preds = predictions_from_arrays(z, y)
    o = opts(tune_split=0.2, seed=1)
    t = tune(preds, o)
    assert t.tune_index is not None and t.eval_index is not None
    assert np.intersect1d(t.tune_index, t.eval_index).size == 0
    assert len(t.tune_index) + len(t.eval_index) == len(y)
    # the pipeline reports exactly the samples tuning did not see
    ev, scored = evaluate_source(preds, o)
    assert np.array_equal(scored.index, t.eval_index) and ev.n == len(t.eval_index)
    # garbling every evaluation row (logits and labels) changes nothing that tuning decided
    rng = np.random.default_rng(9)
    z2, y2 = z.copy(), y.copy()
    z2[t.eval_index] = rng.normal(size=(len(t.eval_index), z.shape[1])) * 50
    y2[t.eval_index] = rng.integers(0, z.shape[1], len(t.eval_index))
    t2 = tune(predictions_from_arrays(z2, y2), o)
    assert t2.params == t.params
    assert t2.info["scores"] == t.info["scores"]


def test_same_split_for_every_model_of_a_comparison():
    z1, y = ranked_by("msp", seed=1)
    z2 = z1 + np.random.default_rng(2).normal(size=z1.shape)
    o = opts(tune_split=0.1, seed=5)
    _, s1 = evaluate_source(predictions_from_arrays(z1, y), o)
    _, s2 = evaluate_source(predictions_from_arrays(z2, y), o)
    assert np.array_equal(s1.index, s2.index)
    assert np.array_equal(s1.index, split_indices(len(y), fraction=0.1, seed=5)[1])


def test_compare_evaluates_every_model_on_the_same_split():
    compare = pytest.importorskip("sc_eval.comparison")
    z1, y = ranked_by("maxlogit-pnorm", p=3.0, n=1000)
    z2 = z1 + np.random.default_rng(2).normal(size=z1.shape)
    o = opts(tune_split=0.25, seed=2)
    result = compare.compare(
        [predictions_from_arrays(z1, y), predictions_from_arrays(z2, y)], o, n_boot=0
    )
    n_eval = len(split_indices(1000, fraction=0.25, seed=2)[1])
    assert all(ev.n == n_eval for ev in result.evaluations)
    assert all(ev.tuning["n_eval"] == n_eval for ev in result.evaluations)


# --------------------------------------------------------------------------- p-norm grid
def test_every_parameter_tuned_by_aurc_has_candidates():
    """A score tuned by AURC declares the candidates of each parameter on its registry
    entry (a temperature is searched on the data's scale): a parameter without any would
    be reported as tuned without being searched."""
    tuned = [s for s in SCORES.values() if s.tuning == "aurc"]
    assert {s.name for s in tuned} >= {"maxlogit-pnorm", "msp-pnorm"}
    for s in tuned:
        assert set(s.defaults) <= set(s.grid) | {"T"}, s.name
        assert all(len(values) > 1 for values in s.grid.values()), s.name


@pytest.mark.parametrize("best_p", [0.0, 2.0, 5.0, 8.0])
def test_tuning_picks_the_known_best_p(best_p):
    z, y = ranked_by("maxlogit-pnorm", p=best_p)
    t = tune(predictions_from_arrays(z, y), opts(tune_split=0.5))
    assert t.params["maxlogit-pnorm"] == {"p": best_p}
    assert t.tuned == ("maxlogit-pnorm",)
    info = t.info["scores"]["maxlogit-pnorm"]
    assert [c["p"] for c in info["candidates"]] == list(P_GRID)
    assert info["fallback"] is None and info["msp_aurc"] > info["best_aurc"]


def test_chosen_p_minimises_the_tuning_aurc():
    z, y = ranked_by("msp", seed=3)  # no p is perfect here
    t = tune(predictions_from_arrays(z, y), opts(tune_split=0.3, scores=("maxlogit-pnorm",)))
    cands = t.info["scores"]["maxlogit-pnorm"]["candidates"]
    best = min(cands, key=lambda c: c["aurc"])
    assert t.params["maxlogit-pnorm"]["p"] == best["p"]
    rows = z[t.tune_index]
    errors = rows.argmax(axis=1) != y[t.tune_index]
    for c in cands:
        want = tuning_aurc(_key("maxlogit-pnorm", rows, p=c["p"]), errors)
        assert c["aurc"] == pytest.approx(want, abs=1e-15)


# --------------------------------------------------------------------------- fall-back
def test_falls_back_to_msp_when_msp_is_better_on_the_tuning_split():
    z, y = ranked_by("msp", seed=4)
    preds = predictions_from_arrays(z, y)
    o = opts(tune_split=0.3)
    t = tune(preds, o)
    params = t.params["maxlogit-pnorm"]
    assert params[MSP_FALLBACK] == 1.0 and params["p"] in P_GRID
    assert t.info["scores"]["maxlogit-pnorm"]["fallback"] == "msp"
    assert "fall-back" in t.info["decisions"]
    ev, _ = evaluate_source(preds, o)
    assert ev.scores["maxlogit-pnorm"].metrics == ev.scores["msp"].metrics
    assert ev.scores["maxlogit-pnorm"].params == params and ev.scores["maxlogit-pnorm"].tuned


def test_a_tie_with_msp_keeps_the_pnorm():
    # C = 2 with logits [a, -a]: max logit and MSP rank identically (a tie), every p > 0
    # gives a constant score (worse), so p = 0 is best and equals MSP: no fall-back
    rng = np.random.default_rng(0)
    a = rng.normal(size=2000)
    z = np.stack([a, -a], axis=1)
    y = np.where(rng.random(2000) < 1 / (1 + np.exp(-4 * np.abs(a))), z.argmax(1), z.argmin(1))
    t = tune(predictions_from_arrays(z, y), opts(tune_split=0.5))
    info = t.info["scores"]["maxlogit-pnorm"]
    assert info["msp_aurc"] == pytest.approx(info["best_aurc"], abs=1e-15)
    assert t.params["maxlogit-pnorm"] == {"p": 0.0}
    assert info["fallback"] is None


def test_fixed_p_skips_tuning_and_the_fallback():
    z, y = ranked_by("msp", seed=4)  # MSP would win the fall-back if it were tuned
    o = opts(
        tune_split=0.3,
        scores=("maxlogit-pnorm", "msp-pnorm"),
        params={"maxlogit-pnorm": {"p": 6.0}, "msp-pnorm": {"p": 6.0}},
    )
    t = tune(predictions_from_arrays(z, y), o)
    assert t.params["maxlogit-pnorm"] == {"p": 6.0}
    assert t.params["msp-pnorm"]["p"] == 6.0  # fixed; T is still tuned
    assert t.tuned == ("msp-pnorm",)
    assert t.info["scores"]["maxlogit-pnorm"]["tuned"] is False
    assert t.info["scores"]["msp-pnorm"]["fixed"] == ["p"]
    assert {c["p"] for c in t.info["scores"]["msp-pnorm"]["candidates"]} == {6.0}


def test_fixed_temperature_skips_temperature_tuning():
    z, y = tempered(2000, 10, 2.0)
    o = opts(
        tune_split=0.5, scores=("msp-ts", "msp-pnorm"), params={s: {"T": 3.0} for s in ("msp-ts",)}
    )
    t = tune(predictions_from_arrays(z, y), o)
    assert t.params["msp-ts"] == {"T": 3.0} and t.tuned == ("msp-pnorm",)
    o2 = opts(
        tune_split=0.5,
        scores=("msp-pnorm",),
        params={"msp-pnorm": {"T": 0.05}},
    )
    t2 = tune(predictions_from_arrays(z, y), o2)
    assert t2.params["msp-pnorm"]["T"] == 0.05
    assert {c["T"] for c in t2.info["scores"]["msp-pnorm"]["candidates"]} == {0.05}


def test_msp_pnorm_picks_the_best_grid_point():
    z, y = ranked_by("msp-pnorm", p=3.0, T=0.02, seed=6)
    t = tune(predictions_from_arrays(z, y), opts(tune_split=0.5, scores=("msp-pnorm",)))
    cands = t.info["scores"]["msp-pnorm"]["candidates"]
    best = min(cands, key=lambda c: c["aurc"])
    assert t.params["msp-pnorm"] == {"p": best["p"], "T": best["T"]}
    assert best["p"] == 3.0


def test_no_errors_on_the_tuning_split_keeps_the_defaults():
    z = np.random.default_rng(0).normal(size=(200, 5))
    y = z.argmax(axis=1)
    with pytest.warns(ScEvalWarning, match="cannot choose"):
        t = tune(predictions_from_arrays(z, y), opts(tune_split=0.2))
    assert t.params["maxlogit-pnorm"] == {"p": 2.0} and t.tuned == ()


def test_untunable_scores_only_warn():
    z, y = tempered(200, 5, 1.0)
    with pytest.warns(ScEvalWarning, match="none of the scores is tunable"):
        t = tune(predictions_from_arrays(z, y), opts(tune_split=0.2, scores=("msp",)))
    assert t.params == {"msp": {}} and len(t.eval_index) == 160


# --------------------------------------------------------------------------- temperature
@pytest.mark.parametrize("temperature", [0.5, 1.0, 2.5])
def test_temperature_fit_recovers_a_known_temperature(temperature):
    z, y = tempered(20_000, 10, temperature, seed=int(temperature * 10))
    assert fit_temperature(z, y) == pytest.approx(temperature, rel=0.04)


def test_temperature_fit_is_the_nll_minimum():
    z, y = tempered(3000, 7, 1.7, seed=2)
    t = fit_temperature(z, y)

    def nll(temp):
        s = z / temp
        s = s - s.max(axis=1, keepdims=True)
        return float(np.mean(np.log(np.exp(s).sum(axis=1)) - s[np.arange(len(y)), y]))

    assert nll(t) <= min(nll(t * 1.001), nll(t / 1.001))


def test_temperature_fit_clamps_to_the_bounds():
    z = np.array([[4.0, 0.0], [0.0, 4.0]])
    assert fit_temperature(z, np.array([0, 1])) == 1e-4  # separable: T -> 0
    assert fit_temperature(z, np.array([1, 0])) == 1e4  # always wrong: T -> inf


def test_msp_ts_through_the_pipeline():
    z, y = tempered(20_000, 10, 2.0, seed=1)
    ev = evaluate(z, y, scores=["msp-ts"], metrics=["aurc"], tune_split=0.5, seed=0)
    res = ev.scores["msp-ts"]
    assert res.tuned and res.params["T"] == pytest.approx(2.0, rel=0.05)
    assert ev.tuning["scores"]["msp-ts"]["nll"] < ev.tuning["scores"]["msp-ts"]["nll_at_T=1"]


# --------------------------------------------------------------------------- --val
def test_val_file_tunes_on_all_of_it_and_evaluates_the_input_whole():
    zv, yv = ranked_by("maxlogit-pnorm", p=5.0, seed=7, n=1500)
    zt, yt = ranked_by("msp", seed=8, n=1000)  # would pick the MSP fall-back
    val = predictions_from_arrays(zv, yv)
    o = opts(val=val)
    t = tune(predictions_from_arrays(zt, yt), o)
    assert t.eval_index is None and t.tune_index is None
    assert t.params["maxlogit-pnorm"] == {"p": 5.0}
    assert t.info["split"] == "val" and t.info["n_tune"] == 1500 and t.info["n_eval"] == 1000
    ev, scored = evaluate_source(predictions_from_arrays(zt, yt), o)
    assert ev.n == 1000 and np.array_equal(scored.index, np.arange(1000))


def test_val_file_must_have_the_same_classes():
    z, y = tempered(100, 5, 1.0)
    zv, yv = tempered(100, 6, 1.0)
    with pytest.raises(InputError, match=r"C = 5 classes"):
        tune(predictions_from_arrays(z, y), opts(val=predictions_from_arrays(zv, yv)))


def test_val_file_must_hold_logits_for_logit_scores():
    z, y = tempered(100, 5, 1.0)
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    with pytest.raises(InputError, match="expected logits"):
        tune(predictions_from_arrays(z, y), opts(val=predictions_from_arrays(probs=p, labels=y)))


def test_split_and_val_together_are_refused():
    z, y = tempered(100, 5, 1.0)
    preds = predictions_from_arrays(z, y)
    with pytest.raises(UsageError, match="exactly one"):
        tune(preds, opts(tune_split=0.1, val=preds))


# --------------------------------------------------------------------------- CLI
@pytest.fixture
def runner() -> CliRunner:
    return CliRunner(env=PLAIN_ENV)


@pytest.fixture
def files(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    z, y = ranked_by("msp", seed=4, n=1000)  # maxlogit-pnorm falls back to MSP
    write_predictions("fallback.safetensors", logits=z.astype(np.float32), labels=y)
    z, y = ranked_by("maxlogit-pnorm", p=7.0, seed=5, n=1000)
    write_predictions("p7.safetensors", logits=z.astype(np.float32), labels=y)
    z, y = ranked_by("maxlogit-pnorm", p=7.0, seed=6, n=600, c=9)
    write_predictions("c9.safetensors", logits=z.astype(np.float32), labels=y)
    return tmp_path


def invoke(runner, *args, code=0):
    r = runner.invoke(app, [str(a) for a in args])
    assert r.exit_code == code, (r.exit_code, r.stdout, r.stderr)
    return r


SPLIT = ("--tune-split", "0.5", "--seed", "1")


def test_cli_json_shows_chosen_params_and_split(runner, files):
    out = invoke(
        runner, "score", "p7.safetensors", "-s", "msp,maxlogit-pnorm", *SPLIT, "-f", "json"
    )
    res = json.loads(out.stdout)["results"][0]
    assert res["scores"]["maxlogit-pnorm"]["params"] == {"p": 7.0}
    assert res["scores"]["maxlogit-pnorm"]["tuned"] is True
    assert res["scores"]["msp"]["tuned"] is False
    assert res["n"] == 500 and res["tuning"]["n_eval"] == 500
    assert res["tuning"]["split"] == "random" and res["tuning"]["seed"] == 1
    assert res["tuning"]["scores"]["maxlogit-pnorm"]["fallback"] is None


def test_cli_every_format_shows_the_fallback(runner, files):
    base = ("score", "fallback.safetensors", "-s", "msp,maxlogit-pnorm", *SPLIT)
    doc = json.loads(invoke(runner, *base, "-f", "json").stdout)["results"][0]
    assert doc["scores"]["maxlogit-pnorm"]["params"][MSP_FALLBACK] == 1.0
    rows = list(csv.DictReader(io.StringIO(invoke(runner, *base, "-f", "csv").stdout)))
    params = {r["params"] for r in rows if r["score"] == "maxlogit-pnorm"}
    assert len(params) == 1 and f"{MSP_FALLBACK}=1" in params.pop()
    for fmt in ("markdown", "table"):
        text = invoke(runner, *base, "-f", fmt).stdout
        if fmt == "markdown":  # "_" is escaped there: it would start emphasis
            text = text.replace("\\_", "_")
        assert f"{MSP_FALLBACK}=1" in text and "(tuned)" in text, fmt
        assert "fall-back" in text and "n_eval=500" in text, fmt


def test_cli_every_format_shows_a_tuned_p(runner, files):
    base = ("score", "p7.safetensors", "-s", "maxlogit-pnorm,msp-ts", *SPLIT)
    rows = list(csv.DictReader(io.StringIO(invoke(runner, *base, "-f", "csv").stdout)))
    assert {r["params"] for r in rows if r["score"] == "maxlogit-pnorm"} == {"p=7"}
    assert all(r["params"].startswith("T=") for r in rows if r["score"] == "msp-ts")
    for fmt in ("markdown", "table"):
        assert "p=7 (tuned)" in invoke(runner, *base, "-f", fmt).stdout, fmt


def test_cli_fixed_p_is_not_tuned(runner, files):
    out = invoke(
        runner,
        "score",
        "fallback.safetensors",
        "-s",
        "maxlogit-pnorm",
        *SPLIT,
        "--pnorm-p",
        "6",
        "-f",
        "json",
    )
    res = json.loads(out.stdout)["results"][0]["scores"]["maxlogit-pnorm"]
    assert res["params"] == {"p": 6.0} and res["tuned"] is False


def test_tune_split_help_names_every_tunable_score():
    """The shared ``--tune-split`` option (score, compare) names the tunable scores by hand
    (reading the registry would load numpy for ``--help``): it must name every one."""
    tunable = {n for n, s in SCORES.items() if s.tuning is not None}
    text = typing.get_args(options.TuneSplit)[1].help
    assert tunable <= set(text.replace(",", " ").replace("/", " ").split()), text


def test_cli_tune_flag_means_ten_percent(runner, files):
    out = invoke(runner, "score", "p7.safetensors", "-s", "maxlogit-pnorm", "--tune", "-f", "json")
    res = json.loads(out.stdout)["results"][0]
    assert res["tuning"]["fraction"] == 0.1 and res["n"] == 900


def test_cli_val(runner, files):
    out = invoke(
        runner,
        "score",
        "fallback.safetensors",
        "-s",
        "maxlogit-pnorm",
        "--val",
        "p7.safetensors",
        "-f",
        "json",
    )
    res = json.loads(out.stdout)["results"][0]
    assert res["n"] == 1000 and res["tuning"]["split"] == "val"
    assert res["scores"]["maxlogit-pnorm"]["params"] == {"p": 7.0}


def test_cli_val_with_other_classes_exits_2(runner, files):
    r = invoke(
        runner, "score", "p7.safetensors", "-s", "maxlogit-pnorm", "--val", "c9.safetensors", code=2
    )
    assert "c9.safetensors" in r.stderr and "C = 20" in r.stderr


@pytest.mark.parametrize(
    "args",
    [
        ("--tune-split", "1.5"),
        ("--tune-split", "0"),
        ("--tune", "--val", "p7.safetensors"),
        ("--tune-split", "0.1", "--val", "p7.safetensors"),
    ],
)
def test_cli_bad_tuning_options_exit_2(runner, files, args):
    r = invoke(runner, "score", "p7.safetensors", "-s", "maxlogit-pnorm", *args, code=2)
    assert "error" in r.stderr and "Traceback" not in r.stderr


def test_cli_compare_with_a_tuning_split(runner, files):
    pytest.importorskip("sc_eval.comparison")
    z, y = ranked_by("msp", seed=4, n=1000)
    noisy = z + np.random.default_rng(0).normal(size=z.shape)
    write_predictions("other.safetensors", logits=noisy.astype(np.float32), labels=y)
    out = invoke(
        runner,
        "compare",
        "fallback.safetensors",
        "other.safetensors",
        "-s",
        "msp,maxlogit-pnorm",
        *SPLIT,
        "--bootstrap",
        "0",
        "-f",
        "json",
    )
    doc = json.loads(out.stdout)
    assert doc["n"] == 500
    assert [r["tuning"]["n_eval"] for r in doc["results"]] == [500, 500]
    rows = next(c["rows"] for c in doc["comparisons"] if c["score"] == "maxlogit-pnorm")
    assert all(r["tuned"] for r in rows)


def test_warnings_do_not_leak_from_a_normal_run():
    z, y = ranked_by("maxlogit-pnorm", p=2.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        evaluate(z, y, scores=["msp", "maxlogit-pnorm", "msp-pnorm", "msp-ts"], tune_split=0.1)


def test_nonfinite_tuning_rows_follow_the_nan_policy():
    from sc_eval.errors import InputError
    from sc_eval.io import predictions_from_arrays
    from sc_eval.pipeline import EvalOptions
    from sc_eval.tuning import tune

    rng = np.random.default_rng(0)
    y = rng.integers(0, 5, 400)
    z = rng.normal(size=(400, 5))
    z[np.arange(400), y] += 2.0
    z[::7] = np.nan  # some of these land in the tuning split
    preds = predictions_from_arrays(z, y)
    base = {"scores": ("maxlogit-pnorm",), "tune_split": 0.5, "seed": 0}
    with pytest.raises(InputError, match="of the tuning split"):
        tune(preds, EvalOptions(**base))
    result = tune(preds, EvalOptions(**base, nan_policy="drop"))
    assert result.info["tune_nonfinite_dropped"] > 0
    assert "p" in result.params["maxlogit-pnorm"]
