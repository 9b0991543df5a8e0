"""Per-class and per-group slices: partition, per-slice numbers, ordering, CLI."""

from __future__ import annotations

import csv
import io
import json
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from sc_eval.cli import app
from sc_eval.errors import InputError, UsageError
from sc_eval.metrics import selective_metrics
from sc_eval.pipeline import EvalOptions, score_samples
from sc_eval.slices import MIN_ACCEPTED, SliceTable, slice_ids, slice_scored, slice_sources
from sc_eval.threshold import clopper_pearson, risk_bound_at_coverage
from tests.test_threshold import confident_logits

runner = CliRunner()


def _scored(z: np.ndarray, y: np.ndarray, scores=("msp",)):
    from sc_eval.io import predictions_from_arrays

    return score_samples(predictions_from_arrays(z, y), scores=list(scores))


def _tables(z, y, ids, names, **kw) -> list[SliceTable]:
    return slice_scored(_scored(z, y), ids, names, **kw)


@given(
    n=st.integers(1, 300),
    groups=st.integers(1, 7),
    seed=st.integers(0, 10_000),
    coverage=st.floats(0.05, 1.0),
)
def test_slices_sum_to_whole(n: int, groups: int, seed: int, coverage: float) -> None:
    z, y = confident_logits(n, 4, seed=seed)
    z = np.round(z)  # plenty of ties
    ids = np.random.default_rng(seed).integers(0, groups, n)
    names = [f"g{j}" for j in range(groups)]
    (t,) = _tables(z, y, ids, names, coverage=coverage)
    assert sum(r.n for r in t.rows) == t.total.n == n
    assert sum(r.errors for r in t.rows) == t.total.errors
    assert sum(r.accepted for r in t.rows) == t.total.accepted
    assert sum(r.accepted_errors for r in t.rows) == t.total.accepted_errors
    assert {r.name for r in t.rows} == {names[j] for j in np.unique(ids)}
    # the global operating point is the coverage threshold of the threshold module
    rc = risk_bound_at_coverage(_scored(z, y).keys["msp"], y != z.argmax(1), coverage=coverage)
    assert t.threshold_key == rc.key and t.total.accepted == rc.point.accepted


def test_per_slice_numbers_match_direct_computation() -> None:
    z, y = confident_logits(3000, 6, seed=2)
    scored = _scored(z, y)
    ids, names = slice_ids(_preds(z, y), by="class")
    (t,) = slice_scored(scored, ids, names, coverage=0.8, convention="trapezoid")
    key = scored.keys["msp"]
    err = scored.errors
    accept = key >= t.threshold_key
    for r in t.rows:
        sel = y == int(r.name)
        assert r.n == sel.sum() and r.errors == err[sel].sum()
        m = selective_metrics(key[sel], err[sel], metrics=["aurc"], convention="trapezoid")
        assert r.aurc == pytest.approx(m["aurc"], rel=1e-12)
        assert r.accepted == (accept & sel).sum()
        assert r.accepted_errors == (accept & sel & err).sum()
        assert r.risk_ci == clopper_pearson(r.accepted_errors, r.accepted)
        lo, hi = clopper_pearson(r.errors, r.n)
        assert r.acc_ci == pytest.approx((1 - hi, 1 - lo))
        assert r.acc_ci[0] <= r.acc <= r.acc_ci[1]


def _preds(z, y, **extra):
    from sc_eval.io import predictions_from_arrays

    p = predictions_from_arrays(z, y)
    return type(p)(p.values, p.kind, p.labels, p.index, p.path, p.metadata, extra)


def test_sorted_worst_first_and_small_slices() -> None:
    z, y = confident_logits(2000, 5, seed=3)
    ids = np.where(np.arange(2000) < 20, 5, y)  # a tiny slice '5'
    names = [str(j) for j in range(6)]
    (t,) = _tables(z, y, ids, names, coverage=0.9)
    risks = [math.inf if math.isnan(r.risk) else r.risk for r in t.rows]
    assert risks == sorted(risks, reverse=True)
    tiny = next(r for r in t.rows if r.name == "5")
    assert tiny.small and tiny.accepted < MIN_ACCEPTED
    assert not any(r.small for r in t.rows if r.name != "5")


def test_nothing_accepted_sorts_first() -> None:
    z, y = confident_logits(500, 3, seed=1)
    key = _scored(z, y).keys["msp"]
    ids = (key < np.quantile(key, 0.05)).astype(int)  # slice 1: the least confident 5%
    (t,) = _tables(z, y, ids, ["confident", "unsure"], coverage=0.5)
    assert t.rows[0].name == "unsure" and t.rows[0].accepted == 0
    assert math.isnan(t.rows[0].risk) and t.rows[0].risk_ci == (0.0, 1.0)


def test_group_ids_validation() -> None:
    z, y = confident_logits(50, 3, seed=1)
    with pytest.raises(UsageError, match="groups-key"):
        slice_ids(_preds(z, y), by="group")
    with pytest.raises(InputError, match="field 'domain'"):
        slice_ids(_preds(z, y), by="group", groups_key="domain")
    with pytest.raises(InputError, match="float"):
        slice_ids(_preds(z, y, domain=np.zeros(50)), by="group", groups_key="domain")
    with pytest.raises(UsageError, match="--by"):
        slice_ids(_preds(z, y), by="colour")
    ids, names = slice_ids(
        _preds(z, y, domain=np.array(["b", "a"] * 25)), by="group", groups_key="domain"
    )
    assert names == ["a", "b"] and ids[:2].tolist() == [1, 0]


@pytest.fixture
def grouped_file(tmp_path):
    z, y = confident_logits(3000, 8, seed=6)
    path = tmp_path / "preds.npz"
    domain = np.random.default_rng(0).choice(["day", "night", "fog"], 3000, p=[0.7, 0.2, 0.1])
    np.savez(path, logits=z, labels=y, domain=domain, site=np.arange(3000) % 4)
    return path


def test_slice_sources_string_and_int_groups(grouped_file) -> None:
    for key, names in (("domain", {"day", "night", "fog"}), ("site", {"0", "1", "2", "3"})):
        (t,) = slice_sources(
            [grouped_file], EvalOptions(scores=("msp",)), by="group", groups_key=key
        )
        assert {r.name for r in t.rows} == names and t.label == key


@pytest.mark.parametrize("fmt", ["table", "markdown", "json", "csv"])
def test_cli_by_class_formats(grouped_file, fmt: str) -> None:
    r = runner.invoke(
        app, ["score", str(grouped_file), "-s", "msp,margin", "--by", "class", "-f", fmt]
    )
    assert r.exit_code == 0, r.stderr
    if fmt == "json":
        doc = json.loads(r.stdout)
        assert doc["schema"] == "sc-eval/slices"
        assert [res["score"] for res in doc["results"]] == ["msp", "margin"]
        res = doc["results"][0]
        assert sum(s["n"] for s in res["slices"]) == res["total"]["n"] == 3000
        assert res["operating_point"]["target_coverage"] == 0.9
    elif fmt == "csv":
        rows = list(csv.DictReader(io.StringIO(r.stdout)))
        assert len(rows) == 2 * (8 + 1)
        assert {row["unit"] for row in rows} == {"fraction"}
    else:
        assert "worst first" in r.stdout and "operating point" in r.stdout


def test_cli_by_group_and_output_file(grouped_file, tmp_path) -> None:
    out = tmp_path / "slices.md"
    r = runner.invoke(
        app,
        [
            "score",
            str(grouped_file),
            "-s",
            "msp",
            "--by",
            "group",
            "--groups-key",
            "domain",
            "--at-coverage",
            "0.7",
            "-f",
            "markdown",
            "-o",
            str(out),
        ],
    )
    assert r.exit_code == 0, r.stderr
    text = out.read_text()
    assert "| domain |" in text and "night" in text and "70.00%" in text


@pytest.mark.parametrize(
    "extra",
    [
        ["--by", "group"],
        ["--by", "class", "--groups-key", "domain"],
        ["--by", "colour"],
        ["--by", "group", "--groups-key", "missing"],
        ["--by", "class", "--at-coverage", "0"],
        ["--by", "class", "-f", "yaml"],
    ],
)
def test_cli_slices_bad_usage_exits_2(grouped_file, extra) -> None:
    r = runner.invoke(app, ["score", str(grouped_file), "-s", "msp", *extra])
    assert r.exit_code == 2, r.output
    assert "Traceback" not in r.output and r.stderr.startswith("sc-eval: error:")


def test_cli_groups_key_alone_implies_by_group(grouped_file) -> None:
    r = runner.invoke(app, ["score", str(grouped_file), "-s", "msp", "--groups-key", "site"])
    assert r.exit_code == 0, r.stderr
    assert "msp by site" in r.stdout
