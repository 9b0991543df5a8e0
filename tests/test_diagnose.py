"""``sc-eval diagnose``: known answers (plateau, suppression, collapse), invariances, the
streamed neural-collapse pass against a dense scipy reference, every output format,
bad inputs, ``infer --features-layer`` and the demo's CE-vs-LS directions."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.linalg
import scipy.special
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors.numpy import save_file
from typer.testing import CliRunner

from sc_eval.cli import app
from sc_eval.collapse import load_features, neural_collapse
from sc_eval.diagnose_report import diagnosis_document
from sc_eval.diagnosis import (
    STATISTICS,
    confidence_ceiling,
    diagnose,
    logit_statistics,
    reliability,
)
from sc_eval.errors import InputError
from sc_eval.io import predictions_from_arrays, write_predictions
from sc_eval.metrics import MODEL_METRICS
from sc_eval.render import render
from sc_eval.suppression import suppression

ROOT = Path(__file__).resolve().parent.parent
runner = CliRunner()


# --------------------------------------------------------------------------- builders
def noisy_logits(n: int, c: int, *, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, c, n)
    z = rng.normal(size=(n, c)) * 2.0
    z[np.arange(n), y] += rng.uniform(0, 6, n)
    return z, y


def centred(z: np.ndarray) -> np.ndarray:
    return z - z.mean(axis=1, keepdims=True)


def simplex_etf(c: int, d: int, *, seed: int = 0, scale: float = 3.0) -> np.ndarray:
    """``C`` unit-free class means forming a simplex ETF in ``R^d`` (rows), rotated."""
    m = np.eye(c) - 1.0 / c
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(d, d)))
    return scale * np.sqrt(c / (c - 1)) * m @ q[:c]


def dense_collapse(h: np.ndarray, y: np.ndarray, W: np.ndarray | None = None) -> dict:
    """Slow, obvious reference: the definitions with dense matrices and scipy's pinv."""
    classes = np.unique(y)
    mu_g = h.mean(axis=0)
    means = np.stack([h[y == k].mean(axis=0) for k in classes])
    sw = sum(np.outer(x - means[np.searchsorted(classes, k)], x - means[np.searchsorted(
        classes, k)]) for x, k in zip(h, y, strict=True)) / len(h)  # fmt: skip
    m = means - mu_g
    sb = m.T @ m / len(classes)
    nc1 = np.trace(sw @ scipy.linalg.pinv(sb)) / len(classes)
    norms = np.linalg.norm(m, axis=1)
    cos = (m @ m.T) / np.outer(norms, norms)
    off = cos[~np.eye(len(classes), dtype=bool)]
    out = {
        "nc1": nc1,
        "equinorm": norms.std() / norms.mean(),
        "equiangular": np.abs(off + 1 / (len(classes) - 1)).mean(),
        "cos_std": off.std(),
    }
    if W is not None:
        w = W[classes]
        out["nc3"] = np.sum((w / np.linalg.norm(w) - m / np.linalg.norm(m)) ** 2)
    return out


# --------------------------------------------------------------------------- statistics
def test_statistics_match_scipy():
    z, _ = noisy_logits(300, 7, seed=3)
    z[0] = [60.0, 0, 0, 0, 0, 0, -1]  # MSP rounds to 1: the key must still rank it
    preds = predictions_from_arrays(z, np.zeros(300, dtype=np.int64))
    values, keys = logit_statistics(preds)
    p = scipy.special.softmax(z, axis=1)
    np.testing.assert_allclose(values["msp"], p.max(axis=1), rtol=1e-12)
    np.testing.assert_allclose(values["entropy"], scipy.stats.entropy(p, axis=1), atol=1e-12)
    np.testing.assert_allclose(values["maxlogit"], z.max(axis=1))
    np.testing.assert_allclose(values["centred-maxlogit"], z.max(axis=1) - z.mean(axis=1))
    np.testing.assert_allclose(values["logit-norm"], np.linalg.norm(z, axis=1))
    np.testing.assert_allclose(values["centred-norm"], np.linalg.norm(centred(z), axis=1))
    s = np.sort(z, axis=1)
    np.testing.assert_allclose(values["logit-margin"], s[:, -1] - s[:, -2])
    assert keys["msp"][0] > keys["msp"][np.argsort(values["msp"])[-2]]  # no false tie at 1.0
    assert values["entropy"][0] > 0 and keys["entropy"][0] == -values["entropy"][0]


def test_tuned_pnorm_statistic():
    from sc_eval.diagnosis import pnorm_statistic, statistics_for

    z, _ = noisy_logits(50, 6, seed=4)
    v, key = pnorm_statistic(6.0).fn(z)
    np.testing.assert_array_equal(key, v)
    np.testing.assert_allclose(v, (np.abs(centred(z)) ** 6).sum(axis=1) ** (1 / 6), rtol=1e-12)
    assert list(statistics_for(6.0))[:5] == ["maxlogit", "centred-maxlogit", "logit-norm",
                                             "centred-norm", "centred-pnorm"]  # fmt: skip
    assert list(statistics_for(None)) == list(STATISTICS)


def test_reliability_reproduces_ece():
    z, y = noisy_logits(2000, 5, seed=1)
    d = diagnose([predictions_from_arrays(z, y)], tune_split=None, n_boot=0)
    m = d.models[0]
    ece = sum(b.count * abs(b.accuracy - b.confidence) for b in m.reliability if b.count) / m.n
    assert ece == pytest.approx(m.ece.estimate, rel=1e-12)
    assert sum(b.count for b in m.reliability) == m.n
    conf = m.values["msp"]
    correct = ~m.errors
    from sc_eval.metrics import SampleStats

    stats = SampleStats(correct, conf, np.zeros(m.n), np.zeros(m.n))
    assert MODEL_METRICS["ece"](stats) == pytest.approx(ece, rel=1e-9)
    assert len(reliability(conf, correct)) == 15


# --------------------------------------------------------------------------- ceiling
def plateau_logits(n: int, c: int, alpha: float, *, seed: int = 0):
    """Correct rows all at MSP = 1 − α + α/C (the LS optimum); wrong rows below it."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, c, n)
    target = 1 - alpha + alpha / c
    gap = math.log(target * (c - 1) / (1 - target))
    z = np.zeros((n, c))
    z[np.arange(n), y] = gap
    wrong = rng.random(n) < 0.2
    other = (y + 1 + rng.integers(0, c - 1, n)) % c
    z[wrong, other[wrong]] = gap * rng.uniform(0.3, 0.8, wrong.sum())
    z[wrong, y[wrong]] = 0.0
    return z, y, target


def test_plateau_gives_alpha():
    z, y, target = plateau_logits(4000, 10, 0.2)
    d = diagnose([predictions_from_arrays(z, y)], tune_split=None, n_boot=0)
    c = d.models[0].ceiling
    assert c.plateau and c.correct_share == 1.0
    assert c.level == pytest.approx(target, rel=1e-12)
    assert c.alpha == pytest.approx(0.2, rel=1e-9)
    assert "plateau below 1" in c.finding


def test_saturated_and_spread_confidence_give_no_alpha():
    sat = confidence_ceiling(np.r_[np.ones(50), np.linspace(0.3, 0.99, 950)], np.ones(1000,
                             dtype=bool), num_classes=10)  # fmt: skip
    assert not sat.plateau and "no ceiling below 1" in sat.finding
    spread = confidence_ceiling(np.linspace(0.2, 0.9, 1000), np.ones(1000, dtype=bool),
                                num_classes=10)  # fmt: skip
    assert not spread.plateau and "no plateau" in spread.finding
    assert math.isnan(spread.alpha)


# --------------------------------------------------------------------------- suppression
def shrunk_pair(shrink_right: float, shrink_wrong: float, *, n=6000, c=10, seed=0):
    z, y = noisy_logits(n, c, seed=seed)
    err = z.argmax(axis=1) != y
    factor = np.where(err, shrink_wrong, shrink_right)[:, None]
    return z, y, centred(z) * factor  # same argmax, max logit shrunk relative to the rest


def test_suppression_detected_when_shrunk_more_on_correct_samples():
    z, y, z2 = shrunk_pair(0.5, 0.9)
    d = diagnose([predictions_from_arrays(z, y), predictions_from_arrays(z2, y)], n_boot=200)
    s = d.suppression[0]
    assert s.verdict == "detected"
    assert s.trend.high < 0 and s.contrast.high < 0
    assert s.overall["both right"].estimate == pytest.approx(0.5)
    assert s.overall["both wrong"].estimate == pytest.approx(0.9)
    assert "suppresses the max logit more" in d.lines[-1]


def test_uniform_shrink_is_not_suppression():
    z, y, z2 = shrunk_pair(0.7, 0.7)
    d = diagnose([predictions_from_arrays(z, y), predictions_from_arrays(z2, y)], n_boot=200)
    s = d.suppression[0]
    assert s.verdict == "absent"
    for cell in s.cells:
        if cell.n:
            assert cell.ratio.estimate == pytest.approx(0.7, rel=1e-12)
    assert "does not show" in d.lines[-1]


def test_suppression_reversed_when_shrunk_more_on_wrong_samples():
    z, y, z2 = shrunk_pair(0.9, 0.5)
    s = diagnose([predictions_from_arrays(z, y), predictions_from_arrays(z2, y)], n_boot=100)
    assert s.suppression[0].verdict == "reversed"


def test_suppression_ignores_sample_order():
    z, y, z2 = shrunk_pair(0.5, 0.9, n=800)
    err = z.argmax(1) != y
    key = logit_statistics(predictions_from_arrays(z, y))[1]["msp"]
    c1, c2 = centred(z).max(1), centred(z2).max(1)
    a = suppression(("A", key, c1, err), ("B", c2, err), n_boot=0)
    p = np.random.default_rng(0).permutation(800)
    b = suppression(("A", key[p], c1[p], err[p]), ("B", c2[p], err[p]), n_boot=0)
    for x, w in zip(a.cells, b.cells, strict=True):
        assert x.n == w.n
        assert x.ratio.estimate == pytest.approx(w.ratio.estimate, rel=1e-12, nan_ok=True)


def test_statistics_ignore_sample_order():
    z, y = noisy_logits(1500, 6, seed=5)
    p = np.random.default_rng(1).permutation(1500)
    a = diagnose([predictions_from_arrays(z, y)], tune_split=None, n_boot=0).models[0]
    b = diagnose([predictions_from_arrays(z[p], y[p])], tune_split=None, n_boot=0).models[0]
    for sa, sb in zip(a.statistics, b.statistics, strict=True):
        assert sa.auroc.estimate == pytest.approx(sb.auroc.estimate, abs=1e-12)
        assert sa.correct.quantiles == pytest.approx(sb.correct.quantiles, rel=1e-12)
    assert a.ceiling == b.ceiling
    assert a.ece.estimate == pytest.approx(b.ece.estimate, rel=1e-12)


def test_repair_matches_score_tune_split():
    from sc_eval.comparison import compare
    from sc_eval.pipeline import EvalOptions

    z, y = noisy_logits(3000, 8, seed=7)
    z2 = centred(z) * np.where(z.argmax(1) == y, 0.4, 1.0)[:, None]
    preds = [predictions_from_arrays(z, y), predictions_from_arrays(z2, y)]
    d = diagnose(preds, n_boot=0, seed=3)
    opts = EvalOptions(scores=("msp", "maxlogit-pnorm"), metrics=("aurc", "auroc"), coverages=(),
                       risks=(), tune_split=0.1, seed=3)  # fmt: skip
    cmp = compare(preds, opts, n_boot=0)
    for sc in cmp.scores:
        for m, row in zip(d.models, sc.rows, strict=True):
            r = next(r for r in m.repair if r.score == sc.score)
            assert r.auroc.estimate == pytest.approx(row.metrics["auroc"].value, abs=1e-12)
            assert r.aurc.estimate == pytest.approx(row.metrics["aurc"].value, abs=1e-12)
            assert r.params == row.params
    assert d.models[0].n == cmp.n


# --------------------------------------------------------------------------- collapse
def test_perfect_collapse_has_nc1_zero_and_etf_nc2():
    c, d = 6, 11
    means = simplex_etf(c, d)
    y = np.repeat(np.arange(c), 40)
    nc = neural_collapse(means[y] + 5.0, y, W=2.5 * means)  # shifted: μ_G is subtracted
    assert nc.nc1 == pytest.approx(0.0, abs=1e-10)
    assert nc.equinorm == pytest.approx(0.0, abs=1e-12)
    assert nc.equiangular == pytest.approx(0.0, abs=1e-12)
    assert nc.cos_mean == pytest.approx(-1 / (c - 1), rel=1e-12)
    assert nc.cos_std == pytest.approx(0.0, abs=1e-12)
    assert nc.nc3 == pytest.approx(0.0, abs=1e-12)
    assert nc.rank_between == c - 1


def test_nc2_exact_value_of_a_non_etf():
    # two classes at ±e1 and one at 2·e2 (balanced): equinorm and cosines by hand
    means = np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 2.0]])
    y = np.repeat(np.arange(3), 5)
    nc = neural_collapse(means[y], y)
    m = means - means.mean(axis=0)
    norms = np.linalg.norm(m, axis=1)
    assert nc.equinorm == pytest.approx(norms.std() / norms.mean(), rel=1e-12)
    cos01 = m[0] @ m[1] / (norms[0] * norms[1])
    cos02 = m[0] @ m[2] / (norms[0] * norms[2])
    expected = (abs(cos01 + 0.5) + 2 * abs(cos02 + 0.5)) / 3
    assert nc.equiangular == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize(("n", "d", "c"), [(200, 12, 5), (60, 30, 4), (90, 3, 6)])
def test_collapse_matches_dense_reference(seed, n, d, c):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, c, n)
    means = rng.normal(size=(c, d)) * 2
    h = means[y] + rng.normal(size=(n, d)) + 10.0
    W = rng.normal(size=(c, d))
    nc = neural_collapse(h, y, W=W, chunk_rows=17)
    ref = dense_collapse(h, y, W)
    for name in ("nc1", "equinorm", "equiangular", "cos_std", "nc3"):
        assert getattr(nc, name) == pytest.approx(ref[name], rel=1e-8), name


def test_streamed_pass_equals_one_chunk_and_a_memory_mapped_file(tmp_path):
    rng = np.random.default_rng(4)
    y = rng.integers(0, 7, 500)
    h = (rng.normal(size=(7, 9))[y] + 0.3 * rng.normal(size=(500, 9))).astype(np.float32)
    whole = neural_collapse(h, y, chunk_rows=500)
    streamed = neural_collapse(h, y, chunk_rows=13)
    save_file({"features": h}, str(tmp_path / "f.safetensors"))
    from_file = neural_collapse(load_features(tmp_path / "f.safetensors", n=500), y)
    for other in (streamed, from_file):
        for name in ("nc1", "equinorm", "equiangular", "cos_mean", "cos_std", "within"):
            assert getattr(other, name) == pytest.approx(getattr(whole, name), rel=1e-9)
        np.testing.assert_allclose(other.norms, whole.norms, rtol=1e-12)


@settings(max_examples=25)
@given(
    n=st.integers(3, 80),
    d=st.integers(1, 6),
    c=st.integers(2, 5),
    chunk=st.integers(1, 90),
    seed=st.integers(0, 2**16),
)
def test_streamed_pass_equals_dense_for_any_chunking(n, d, c, chunk, seed):
    rng = np.random.default_rng(seed)
    y = np.r_[np.arange(c), rng.integers(0, c, n)]  # every class present
    h = rng.normal(size=(y.size, d)) * rng.uniform(0.1, 10) + rng.normal(size=d) * 50
    streamed = neural_collapse(h, y, chunk_rows=chunk)
    ref = dense_collapse(h, y)
    for name in ("nc1", "equinorm", "equiangular", "cos_std"):
        assert getattr(streamed, name) == pytest.approx(ref[name], rel=1e-6, abs=1e-9), name


def test_collapse_invariances():
    rng = np.random.default_rng(5)
    y = rng.integers(0, 5, 300)
    h = rng.normal(size=(5, 8))[y] + rng.normal(size=(300, 8))
    W = rng.normal(size=(5, 8))
    base = neural_collapse(h, y, W=W)
    p = rng.permutation(300)
    q, _ = np.linalg.qr(rng.normal(size=(8, 8)))
    for other in (neural_collapse(h[p], y[p], W=W), neural_collapse(h @ q, y, W=W @ q)):
        for name in ("nc1", "equinorm", "equiangular", "nc3"):
            assert getattr(other, name) == pytest.approx(getattr(base, name), rel=1e-9)


def test_features_give_the_collapse_table(tmp_path):
    c = 5
    means = simplex_etf(c, 8)
    z, y = noisy_logits(400, c, seed=9)
    h = means[y] + 0.01 * np.random.default_rng(0).normal(size=(400, 8))
    save_file({"features": h, "W": means, "b": np.zeros(c)}, str(tmp_path / "f.safetensors"))
    preds = predictions_from_arrays(z, y)
    feats = load_features(tmp_path / "f.safetensors", n=400, num_classes=c)
    m = diagnose([preds], features=[feats], n_boot=0).models[0]
    assert m.features is not None and m.features.has_W
    assert m.features.collapse.nc1 < 1e-3 and m.features.collapse.nc3 < 1e-2  # unbalanced
    assert m.features.norm_correct.n + m.features.norm_wrong.n == 400


# --------------------------------------------------------------------------- CLI
@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("diagnose")
    z, y, z2 = shrunk_pair(0.5, 0.9, n=1500, c=6)
    write_predictions(d / "a.safetensors", logits=z.astype(np.float32), labels=y)
    write_predictions(d / "b.safetensors", logits=z2.astype(np.float32), labels=y)
    rng = np.random.default_rng(0)
    means = rng.normal(size=(6, 10))
    h = (means[y] + rng.normal(size=(1500, 10))).astype(np.float32)
    save_file({"features": h, "W": means.astype(np.float32)}, str(d / "fa.safetensors"))
    save_file({"features": h[:, :7].copy()}, str(d / "fb.safetensors"))
    return d


def diag(*args: object):
    return runner.invoke(app, ["diagnose", *map(str, args)])


@pytest.mark.parametrize("fmt", ["table", "json", "csv", "markdown"])
def test_cli_formats(files, fmt):
    r = diag(files / "a.safetensors", files / "b.safetensors", "--features", files /
             "fa.safetensors", "--features", files / "fb.safetensors", "--bootstrap", 50, "-f",
             fmt)  # fmt: skip
    assert r.exit_code == 0, r.output
    out = r.stdout
    if fmt == "json":
        doc = json.loads(out)
        assert doc["schema"] == "sc-eval/diagnosis" and doc["version"] == 1
        assert [m["name"] for m in doc["models"]] == [str(files / "a.safetensors"),
                                                      str(files / "b.safetensors")]  # fmt: skip
        a = doc["models"][0]
        assert set(STATISTICS) <= set(a["statistics"])
        assert 0.5 < a["statistics"]["msp"]["auroc"]["estimate"] <= 1
        assert a["features"]["nc3"] is not None and doc["models"][1]["features"]["nc3"] is None
        assert len(a["reliability"]) == 15
        assert doc["suppression"][0]["verdict"] == "detected"
        assert "fractions" in doc["units"]
    elif fmt == "csv":
        head = out.splitlines()[0]
        assert head == "model,section,item,group,quantity,value,low,high,unit"
        assert ",collapse,,,nc1," in out and ",suppression," in out
    else:
        for text in ("correct vs wrong", "confidence ceiling", "reliability", "post-hoc repair",
                     "neural collapse", "suppression", "detected"):  # fmt: skip
            assert text in out, text


def test_cli_plots(files, tmp_path):
    plots = tmp_path / "plots"
    r = diag(files / "a.safetensors", files / "b.safetensors", "--bootstrap", 20, "--plot",
             plots, "-f", "json")  # fmt: skip
    assert r.exit_code == 0, r.output
    names = sorted(p.name for p in plots.iterdir())
    assert names == ["calibration.png", "statistics-a.png", "statistics-b.png",
                     "suppression-b-vs-a.png"]  # fmt: skip
    assert all((plots / n).read_bytes()[:4] == b"\x89PNG" for n in names)


def test_cli_without_matplotlib(files, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    out = tmp_path / "d.json"
    r = diag(files / "a.safetensors", "--plot", tmp_path / "p", "-f", "json", "-o", out)
    assert r.exit_code == 2 and "pip install 'sc-eval[plot]'" in r.stderr
    assert not out.exists() and not (tmp_path / "p").exists()


def test_cli_bad_inputs_are_one_line(files, tmp_path):
    d = tmp_path
    z, y = noisy_logits(50, 3)
    zn = z.copy()
    zn[4, 1] = np.nan
    write_predictions(d / "nan.safetensors", logits=zn.astype(np.float32), labels=y)
    write_predictions(d / "probs.safetensors", probs=scipy.special.softmax(z, 1).astype(
        np.float32), labels=y)  # fmt: skip
    save_file({"x": np.zeros((1500, 4), np.float32)}, str(d / "nokey.safetensors"))
    save_file({"features": np.zeros((1499, 4), np.float32)}, str(d / "short.safetensors"))
    bad = np.zeros((1500, 4), np.float32)
    bad[7, 2] = np.inf
    save_file({"features": bad}, str(d / "inf.safetensors"))
    save_file({"features": np.zeros((1500, 4), np.float32), "W": np.zeros((5, 4), np.float32)},
              str(d / "badw.safetensors"))  # fmt: skip
    save_file({"features": np.zeros(1500, np.float32)}, str(d / "flat.safetensors"))
    out = d / "out.json"
    a = files / "a.safetensors"
    cases = [
        ([d / "nan.safetensors"], "NaN or Inf"),
        ([d / "probs.safetensors"], "expected logits"),
        ([a, "--features", d / "nokey.safetensors"], "expected a tensor 'features'"),
        ([a, "--features", d / "short.safetensors"], "expected 1500 rows"),
        ([a, "--features", d / "inf.safetensors"], "first at row 7"),
        ([a, "--features", d / "badw.safetensors"], "field 'W'"),
        ([a, "--features", d / "flat.safetensors"], "expected shape [N, D]"),
        ([a, files / "b.safetensors", "--features", files / "fa.safetensors"],
         "once per source"),
        ([a, "--tune-split", "1.5"], "--tune-split"),
        ([a, "-f", "yaml"], "unknown format"),
        ([a, "--features", d / "missing.safetensors"], "no such file"),
    ]  # fmt: skip
    for args, message in cases:
        r = diag("-f", "json", "-o", out, *args)
        assert r.exit_code == 2, (args, r.output)
        assert message in r.stderr, (args, r.stderr)
        assert "Traceback" not in r.output and r.stderr.count("\n") == 1
    assert not out.exists()


def test_models_on_other_samples_are_refused(files, tmp_path):
    z, y = noisy_logits(1500, 6, seed=99)
    write_predictions(tmp_path / "other.safetensors", logits=z.astype(np.float32), labels=y)
    r = diag(files / "a.safetensors", tmp_path / "other.safetensors", "--bootstrap", 0)
    assert r.exit_code == 2 and "the same samples" in r.stderr


def test_library_refuses_probabilities():
    z, y = noisy_logits(30, 3)
    with pytest.raises(InputError, match="expected logits"):
        diagnose([predictions_from_arrays(probs=scipy.special.softmax(z, 1), labels=y)])


def test_renderers_share_the_numbers(files):
    from sc_eval.io import load_predictions

    preds = [load_predictions(files / n) for n in ("a.safetensors", "b.safetensors")]
    d = diagnose(preds, n_boot=30)
    doc = diagnosis_document(d)
    auroc = doc["models"][0]["statistics"]["maxlogit"]["auroc"]["estimate"]
    assert f"{100 * auroc:.2f}" in render(d, "table")
    assert f"{100 * auroc:.2f}" in render(d, "markdown")
    assert repr(auroc) in render(d, "csv")


# --------------------------------------------------------------------------- infer
def test_infer_saves_penultimate_features(tmp_path, monkeypatch):
    import torch

    monkeypatch.syspath_prepend(str(ROOT))
    from tests.nets import IN_FEATURES, MLP, save_export, trained

    mlp = trained(MLP(), seed=2)
    x = torch.randn(23, IN_FEATURES, generator=torch.Generator().manual_seed(0))
    y = torch.randint(0, 4, (23,), generator=torch.Generator().manual_seed(1))
    save_file({"inputs": x.numpy(), "labels": y.numpy()}, str(tmp_path / "data.safetensors"))
    save_export(mlp, x[:4], tmp_path / "mlp.pt2")
    torch.save(mlp.state_dict(), tmp_path / "sd.pt")
    save_export(mlp, x[:8], tmp_path / "static.pt2", dynamic=False)  # last batch padded
    expected = mlp.body(x).detach().numpy()
    cases = (("mlp.pt2", []), ("static.pt2", []), ("sd.pt", ["--arch", "tests.nets:build_mlp"]))
    for ckpt, extra in cases:
        out = tmp_path / f"{ckpt}.safetensors"
        r = runner.invoke(app, ["infer", str(tmp_path / ckpt), "--data", str(tmp_path /
                          "data.safetensors"), "-o", str(out), "-b", "8", "--no-progress",
                          "--features-layer", "head", *extra])  # fmt: skip
        assert r.exit_code == 0, r.output
        feats = load_features(tmp_path / f"{ckpt}.features.safetensors", n=23, num_classes=4)
        np.testing.assert_allclose(feats.features.full(), expected, atol=1e-6)
        np.testing.assert_allclose(feats.W, mlp.head.weight.detach().numpy(), atol=0)
        np.testing.assert_allclose(feats.b, mlp.head.bias.detach().numpy(), atol=0)
    r = runner.invoke(app, ["infer", str(tmp_path / "mlp.pt2"), "--data", str(tmp_path /
                      "data.safetensors"), "-o", str(tmp_path / "x.safetensors"),
                      "--no-progress", "--features-layer", "nope"])  # fmt: skip
    assert r.exit_code == 2 and "no such module" in r.stderr
    assert not (tmp_path / "x.safetensors").exists()


# --------------------------------------------------------------------------- the demo
@pytest.mark.slow
def test_demo_models_against_the_papers(tmp_path):
    """The directions docs/diagnose.md reports for the demo's CE and LS models."""
    from sc_eval.demo import run_demo

    d = run_demo(out=tmp_path, progress=False, n_boot=100).diagnosis
    assert d is not None
    ce, ls = d.models
    # Xia et al.: LS ranks worse under MSP; p-norm recovers part of it
    assert ls.statistic("msp").auroc.estimate < ce.statistic("msp").auroc.estimate
    fix = ls.repair[-1]
    assert fix.delta_auroc is not None and fix.delta_auroc.low > 0
    p = fix.params["p"]
    assert ls.statistic("centred-pnorm").statistic.label == f"‖z − μ‖ p={p:g}"
    # Guo et al.: stronger collapse (lower NC1) under LS
    assert ls.features is not None and ce.features is not None
    assert ls.features.collapse.nc1 < ce.features.collapse.nc1
    # LS has no ceiling at 1; CE saturates
    assert ce.ceiling.top > 0.995 and ls.ceiling.top < 0.995
    # where the demo departs from the papers (docs/diagnose.md says so): at α = 0.3 the
    # LS model is under-confident (ECE worse than CE's), shows no plateau, and the
    # centred max-logit ratio rises with CE's confidence instead of falling
    assert ls.ece.estimate > ce.ece.estimate
    assert not ls.ceiling.plateau
    assert d.suppression[0].verdict == "reversed"


def test_cli_val_tunes_on_another_file(files, tmp_path):
    z, y = noisy_logits(700, 6, seed=11)
    write_predictions(tmp_path / "val.safetensors", logits=z.astype(np.float32), labels=y)
    r = diag(files / "b.safetensors", "--val", tmp_path / "val.safetensors", "--bootstrap", 0,
             "-f", "json")  # fmt: skip
    assert r.exit_code == 0, r.output
    m = json.loads(r.stdout)["models"][0]
    assert m["n"] == 1500 and m["tuning"]["split"] == "val"
    assert m["repair"][1]["tuned"] and m["repair"][1]["delta_auroc"]["low"] is None
    table = diag(files / "b.safetensors", "--val", tmp_path / "val.safetensors", "--bootstrap", 0)
    text = " ".join(table.stdout.split())  # Rich may wrap the long path
    assert "p-norm tuned on" in text and "(700 samples)" in text


def test_streamed_pass_memory_does_not_grow_with_n_times_d(tmp_path):
    import tracemalloc

    rng = np.random.default_rng(0)
    d = 64
    peaks = []
    for n in (20_000, 80_000):
        path = tmp_path / f"f{n}.safetensors"
        save_file({"features": rng.normal(size=(n, d)).astype(np.float32)}, str(path))
        y = rng.integers(0, 10, n)
        feats = load_features(path, n=n)  # memory-mapped
        tracemalloc.start()
        neural_collapse(feats, y, num_classes=10, chunk_rows=2048)
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    # 60,000 more rows: only the per-sample norms (8 bytes a row) may grow, not N × D
    assert peaks[1] - peaks[0] < 60_000 * 8 + 2**20, peaks


def test_degenerate_inputs_are_said_in_words(recwarn):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 200)
    z = rng.normal(size=(200, 3)) + 10 * np.eye(3)[y]  # every prediction correct
    p = predictions_from_arrays(z, y)
    d = diagnose([p, p], n_boot=20)
    for fmt in ("table", "json", "csv", "markdown"):
        assert render(d, fmt)
    assert "every evaluated prediction is correct" in d.lines[0]
    assert "no sample is wrong in both models" in d.lines[-1]
    assert d.suppression[0].verdict == "absent"
    one = neural_collapse(rng.normal(size=(30, 4)), np.zeros(30, dtype=np.int64))
    assert math.isnan(one.nc1) and one.rank_between == 0
