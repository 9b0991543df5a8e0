"""The renderer registry: every result type in every format, strict HTML, tables that fold
at 80 columns without cutting a number, and one number style."""

from __future__ import annotations

import io
import json
import math
import re
import sys
from pathlib import Path

import html5lib
import numpy as np
import pytest
import typer.main
from rich.console import Console
from typer.testing import CliRunner

from sc_eval.cli import app
from sc_eval.comparison import Comparison, compare
from sc_eval.diagnosis import Diagnosis, diagnose
from sc_eval.errors import UsageError
from sc_eval.gate import GateReport, Rule, Verdict
from sc_eval.io import load_predictions, write_predictions
from sc_eval.numbers import metric_delta, metric_value, p_value, pct, real
from sc_eval.pipeline import EvalOptions, Evaluation, evaluate_source
from sc_eval.render import all_formats, formats_for, render, result_types
from sc_eval.slices import SliceTable, slice_sources
from sc_eval.threshold import ThresholdResult, calibrate
from tests.conftest import make_logits, predictions_file

runner = CliRunner()

#: A file name that would break out of HTML, Markdown and a terminal if not escaped.
HOSTILE = "a<b>&'x|y\".safetensors"


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> dict[str, object]:
    d = tmp_path_factory.mktemp("render")
    a = predictions_file(d / HOSTILE, 300, 6, seed=0)
    z, _ = make_logits(300, 6, seed=1, accuracy=0.6)
    b = d / "b.safetensors"
    write_predictions(b, logits=z, labels=np.asarray(load_predictions(a).labels))
    pa, pb = load_predictions(a), load_predictions(b)
    ev, scored = evaluate_source(pa, EvalOptions())
    rule = Rule("aurc", "msp", 0.1)
    verdict = Verdict(rule, 0.10, 0.12, -0.001, 0.04, 0.000999, 0.05)
    report = GateReport(str(b), str(a), "predictions", "mean", (verdict,), evaluation=ev)
    return {
        "score": [ev],
        "samples": [(ev.source, scored, None, ev)],
        "compare": compare([pa, pb], EvalOptions(), n_boot=30),
        "slices": slice_sources([a], EvalOptions(scores=("msp",)), by="class"),
        "threshold": [calibrate(pa, target_risk=0.9)],
        "gate": report,
        "diagnose": diagnose([pa, pb], n_boot=10),
    }


KINDS = ["score", "compare", "slices", "threshold", "gate", "diagnose"]
TYPES = {
    "score": Evaluation,
    "compare": Comparison,
    "slices": SliceTable,
    "threshold": ThresholdResult,
    "gate": GateReport,
    "diagnose": Diagnosis,
}


# --------------------------------------------------------------------------- registry
@pytest.mark.parametrize("kind", KINDS)
def test_every_result_type_renders_in_every_format(results, kind):
    assert {"table", "json", "csv", "markdown", "html"} <= set(formats_for(TYPES[kind]))
    for fmt in formats_for(TYPES[kind]):
        assert render(results[kind], fmt).strip()


@pytest.mark.parametrize("kind", KINDS)
def test_unknown_format_is_a_usage_error(results, kind):
    with pytest.raises(UsageError, match=r"unknown format 'htm'\. Did you mean 'html'"):
        render(results[kind], "htm")


def test_every_result_type_is_tested_here():
    """The tests of this file run on the results in TYPES: a result type that registers a
    view needs a fixture here, or its formats would go unchecked."""
    assert set(result_types()) == set(TYPES.values())


def test_format_help_lists_every_format():
    """``--format``'s help names the formats by hand (reading the registry would load the
    renderers, and numpy, for ``--help``): it must name every format that every result
    type renders in, and only formats that exist."""
    generic = set.intersection(*(set(formats_for(t)) for t in result_types()))
    helps = {
        name: p.help or ""
        for name, command in typer.main.get_command(app).commands.items()
        for p in command.params
        if "--format" in getattr(p, "opts", ())
    }
    assert {"score", "compare", "threshold", "gate", "diagnose"} <= set(helps)
    for name, text in helps.items():
        listed = set(re.findall(r"[a-z]+", text.partition(":")[2]))
        assert generic <= listed <= set(all_formats()), (name, text)


def test_junit_is_gate_only(results):
    assert "junit" in formats_for(GateReport) and "junit" in all_formats()
    assert "junit" not in formats_for(Evaluation)
    with pytest.raises(UsageError):
        render(results["score"], "junit")


def test_json_is_the_document(results):
    from sc_eval.report import result_document

    doc = json.loads(render(results["score"], "json"))
    assert doc == json.loads(json.dumps(result_document(results["score"])))


def test_score_by_class_unknown_format_exits_2(tmp_path):
    preds = predictions_file(tmp_path / "p.safetensors", 50, 3)
    r = runner.invoke(app, ["score", str(preds), "--by", "class", "-f", "htm"])
    assert r.exit_code == 2
    assert "unknown format 'htm'" in r.stderr and "Traceback" not in r.output


# --------------------------------------------------------------------------- html
def _strict(text: str) -> None:
    html5lib.HTMLParser(strict=True).parse(text)


@pytest.mark.parametrize("kind", KINDS)
def test_html_is_strictly_valid_and_escaped(results, kind):
    text = render(results[kind], "html", samples=results["samples"] if kind == "score" else None)
    _strict(text)
    assert text.startswith("<!DOCTYPE html>")
    assert "<b>" not in text and "<script" not in text
    assert "sc-eval" in text and "Provenance" in text


def test_html_has_an_inline_plot_and_provenance(results):
    pytest.importorskip("matplotlib")
    ev = results["score"][0]
    text = render(results["score"], "html", samples=results["samples"])
    _strict(text)
    assert text.count("<svg") == 1 and "<?xml" not in text
    assert ev.labels_sha256 in text and "AURC convention" in text
    cmp_text = render(results["compare"], "html")
    _strict(cmp_text)
    assert "<svg" in cmp_text


def test_gate_html_names_the_labels_it_checked(results):
    report = results["gate"]
    assert report.evaluation is not None
    assert report.evaluation.labels_sha256 in render(report, "html")


def test_html_without_matplotlib_says_so(results, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib fails
    text = render(results["score"], "html", samples=results["samples"])
    _strict(text)
    assert "<svg" not in text and "matplotlib is not installed" in text


def test_cli_html_output(tmp_path):
    a = predictions_file(tmp_path / "a.safetensors", 80, 3, seed=0)
    out = tmp_path / "r.html"
    r = runner.invoke(app, ["score", str(a), "-f", "html", "-o", str(out)])
    assert r.exit_code == 0, r.output
    _strict(out.read_text())


# --------------------------------------------------------------------------- 80 columns
NUMBER = re.compile(r"[+-]?\d+(?:\.\d+)?")


def _table(result: object, width: int) -> str:
    buf = io.StringIO()
    console = Console(file=buf, width=width, no_color=True, highlight=False)
    render(result, "table", console=console)
    return buf.getvalue()


def _cells(text: str) -> list[str]:
    return [line for line in text.splitlines() if line[:1] in "┃│"]


@pytest.mark.parametrize("kind", KINDS)
def test_tables_fold_at_80_columns_without_cutting_a_number(results, kind):
    narrow, wide = _table(results[kind], 80), _table(results[kind], 1000)
    rows = _cells(narrow)
    assert rows and all(len(line) <= 80 for line in narrow.splitlines() if line[:1] in "┏┃│┗└┡├")
    assert "…" not in "".join(rows)
    # every number of the wide table is whole in the narrow one
    assert set(NUMBER.findall("".join(_cells(wide)))) <= set(NUMBER.findall("".join(rows)))


def test_a_table_that_folds_says_so(results):
    text = _table(results["compare"], 80)
    assert "(continued)" in text
    assert "(continued)" not in _table(results["compare"], 1000)


def test_piped_prose_is_not_wrapped(results):
    text = _table(results["compare"], 80)  # a file: not a terminal
    assert any(len(line) > 80 and line.startswith("Δ [low, high]") for line in text.splitlines())
    assert all(line == line.rstrip() for line in text.splitlines())


# --------------------------------------------------------------------------- numbers
def test_one_number_style():
    assert metric_value("aurc", -1e-9) == "0.00"  # never -0.00
    assert metric_delta("aurc", -1e-9) == "0.00"
    assert metric_delta("aurc", 0.1736) == "+17.36"
    assert metric_value("nll", 0.42913) == "0.4291"
    assert p_value(0.000999) == "<0.001" and p_value(0.0392) == "0.039"
    assert pct(math.nan) == "n/a" and pct(0.5) == "50.00"
    assert real(0.033426183844011144) == "0.0334262"


def test_gate_and_compare_show_p_values_alike(results):
    text = _table(results["gate"], 120)
    assert "<0.001" in text and "0.000999" not in text
    assert "p<0.001" in results["gate"].verdicts[0].reason


def test_tuning_note_is_rounded(tmp_path: Path):
    preds = predictions_file(tmp_path / "p.safetensors", 300, 4)
    r = runner.invoke(app, ["score", str(preds), "--tune", "--scores", "maxlogit-pnorm"])
    assert r.exit_code == 0, r.output
    rates = re.findall(r"tune_error_rate=([0-9.e-]+)", r.stdout)
    assert rates and all(len(x.split(".")[-1]) <= 7 for x in rates)


def test_terminal_escape_sequences_in_names_are_shown_not_obeyed(tmp_path):

    name = tmp_path / "osc\x1b]0;pwned\x07\x1b[2J.safetensors"
    predictions_file(name, 60, 3)
    ev, _ = evaluate_source(load_predictions(name), EvalOptions(scores=("msp",)))
    buf = io.StringIO()
    console = Console(file=buf, width=300, force_terminal=True, highlight=False, color_system=None)
    render([ev], "table", console=console)
    text = buf.getvalue()
    assert "\x1b]0;" not in text and "\x07" not in text and "\x1b[2J" not in text
    assert "\\x1b]0;pwned\\x07" in text


def test_markdown_shows_html_and_markdown_in_names_literally(tmp_path):
    name = tmp_path / "<script>alert(1)<!-- **b** [x](y) _i_.safetensors"
    predictions_file(name, 60, 3)
    ev, _ = evaluate_source(load_predictions(name), EvalOptions(scores=("msp",)))
    text = render([ev], "markdown")
    assert "<script>" not in text and "<!--" not in text and "**b**" not in text
    assert "&lt;script&gt;alert(1)&lt;!-- \\*\\*b\\*\\* [x]\\(y) \\_i\\_" in text


def test_names_with_format_characters_and_undecodable_bytes_are_escaped(tmp_path):
    from sc_eval.errors import printable

    assert printable("a\u202eb\udc9bc\u2028d") == "a\\u202eb\\udc9bc\\u2028d"
    name = tmp_path / "ctl\x1b]0;t\x07\u202e.safetensors"
    predictions_file(name, 60, 3)
    ev, scored = evaluate_source(load_predictions(name), EvalOptions(scores=("msp",)))
    text = render([ev], "html", samples=[(ev.source, scored, None, ev)])
    _strict(text)  # no raw control character, in the tables or in the plot's SVG
    assert "\x1b" not in text and "\x07" not in text and "\u202e" not in text


def test_a_group_id_with_a_newline_stays_on_its_row(tmp_path):
    z, y = make_logits(90, 3, seed=2)
    f = tmp_path / "g.npz"
    np.savez(f, logits=z, labels=y, domain=np.array(["a\nb", "c"] * 45))
    r = runner.invoke(app, ["score", str(f), "--by", "group", "--groups-key", "domain"])
    assert r.exit_code == 0, r.output
    assert "a\\nb" in r.stdout
