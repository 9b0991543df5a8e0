"""Risk–coverage plots: valid PNG/SVG files, written atomically, clear errors."""

from __future__ import annotations

import sys
from pathlib import Path
from xml.etree import ElementTree as ET

import numpy as np
import pytest
from conftest import make_logits
from typer.testing import CliRunner

from sc_eval.cli import app
from sc_eval.errors import UsageError
from sc_eval.io import predictions_from_arrays, write_predictions
from sc_eval.pipeline import EvalOptions, evaluate_source
from sc_eval.plot import _points, check_plot_path, plot_risk_coverage

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
runner = CliRunner()


@pytest.fixture(scope="module")
def series():
    z, y = make_logits(300, 4, seed=5)
    opts = EvalOptions(scores=("msp", "maxlogit"))
    a = evaluate_source(predictions_from_arrays(z, y), opts)[1]
    b = evaluate_source(predictions_from_arrays(z * 0.3 + np.float32(0.5) * z[:, ::-1], y), opts)[1]
    return [("ce", a), ("ls", b)]


def test_png(series, tmp_path: Path):
    out = plot_risk_coverage(series, tmp_path / "rc.png", title="CE vs LS")
    data = out.read_bytes()
    assert data[:8] == PNG_MAGIC and len(data) > 10_000
    assert [p.name for p in tmp_path.iterdir()] == ["rc.png"]  # no temporary file left


def test_svg_is_xml_with_every_curve(series, tmp_path: Path):
    out = plot_risk_coverage(series, tmp_path / "rc.SVG")
    root = ET.parse(out).getroot()
    assert root.tag.endswith("svg")
    text = out.read_text()
    # legend: 2 models x 2 scores + one oracle per model
    for label in ("ce · msp", "ce · maxlogit", "ls · msp", "ls · maxlogit", "oracle · ce"):
        assert label in text, label


def test_single_model_and_chosen_scores(series, tmp_path: Path):
    out = plot_risk_coverage(series[:1], tmp_path / "one.svg", scores=["msp"])
    text = out.read_text()
    assert "msp" in text and "maxlogit" not in text and "oracle" in text


def test_unknown_suffix(series, tmp_path: Path):
    with pytest.raises(UsageError, match=r"\.png or \.svg"):
        plot_risk_coverage(series, tmp_path / "rc.pdf")
    assert not any(tmp_path.iterdir())


def test_missing_matplotlib(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(UsageError, match=r"pip install 'sc-eval\[plot\]'"):
        check_plot_path(tmp_path / "rc.png")


def test_missing_matplotlib_cli_exit_2(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    z, y = make_logits(50, 3, seed=0)
    src = tmp_path / "p.safetensors"
    write_predictions(src, logits=z, labels=y)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    r = runner.invoke(app, ["score", str(src), "--plot", str(tmp_path / "rc.png")])
    assert r.exit_code == 2
    assert "pip install 'sc-eval[plot]'" in r.stderr and r.stdout == ""
    assert not (tmp_path / "rc.png").exists()


def test_failed_save_leaves_nothing(series, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from matplotlib.figure import Figure

    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(Figure, "savefig", boom)
    with pytest.raises(RuntimeError):
        plot_risk_coverage(series, tmp_path / "rc.png")
    assert not any(tmp_path.iterdir())


def test_points_are_a_bounded_subset():
    assert np.array_equal(_points(5), np.arange(1, 6))
    k = _points(1_000_000, 2000)
    assert k[0] == 1 and k[-1] == 1_000_000 and k.size <= 2000
    assert np.all(np.diff(k) > 0)


def test_score_plot_cli(tmp_path: Path):
    z, y = make_logits(80, 3, seed=1)
    src = tmp_path / "p.safetensors"
    write_predictions(src, logits=z, labels=y)
    r = runner.invoke(app, ["score", str(src), "-s", "msp", "--plot", str(tmp_path / "s.svg")])
    assert r.exit_code == 0, r.output
    assert ET.parse(tmp_path / "s.svg").getroot().tag.endswith("svg")
