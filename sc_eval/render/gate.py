"""The view of ``sc-eval gate``: a :class:`~sc_eval.gate.GateReport`, and its JUnit XML."""

from __future__ import annotations

import math
from typing import Any
from xml.etree import ElementTree as ET

from sc_eval import numbers as num
from sc_eval.errors import printable
from sc_eval.gate import GateReport, Verdict, gate_document
from sc_eval.render.registry import register, register_view
from sc_eval.render.view import Grid, Page, Records, Section, Status, View

__all__ = ["footnotes", "render_junit", "verdict_rows"]


def _value(v: Verdict, x: float, *, sign: bool = False) -> str:
    return num.metric_delta(v.rule.metric, x) if sign else num.metric_value(v.rule.metric, x)


def verdict_rows(report: GateReport) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the verdict table (display units)."""
    head = ["rule", "baseline", "candidate", "Δ", "tolerance", "interval", "p", "verdict", "why"]
    tested = any(not math.isnan(v.p_value) for v in report.verdicts)
    rows = []
    for v in report.verdicts:
        r = v.rule
        unit = " (%)" if r.scale == 100.0 else ""
        interval = (
            f"[{_value(v, v.low, sign=True)}, {_value(v, v.high, sign=True)}]"
            if not math.isnan(v.low)
            else "—"
        )
        rows.append(
            [
                r.name + unit,
                _value(v, v.baseline),
                _value(v, v.candidate),
                num.NA if v.undefined else _value(v, v.delta, sign=True),
                f"{num.param(r.tolerance)}{r.unit}",
                interval,
                "—" if math.isnan(v.p_value) else num.p_value(v.p_value, floor=v.p_floor),
                "PASS" if v.passed else "FAIL",
                v.reason,
            ]
        )
    if not tested:  # no bootstrap: drop the empty interval and p columns
        head = head[:5] + head[7:]
        rows = [row[:5] + row[7:] for row in rows]
    return head, rows


def footnotes(report: GateReport) -> list[str]:
    """How the candidate was evaluated, and what the interval and p columns mean."""
    lines = list(report.notes)
    if not any(not math.isnan(v.p_value) for v in report.verdicts):
        return lines
    boot = report.verdicts[0]
    level = f" at alpha = {num.param(boot.alpha)}" if boot.alpha is not None else ""
    return [
        *lines,
        "interval: paired-bootstrap percentile interval of Δ = candidate − baseline; "
        f"p: one-sided bootstrap p-value that the regression exceeds the tolerance{level} "
        "(small p = a significant regression; p near 1 = no regression)",
    ]


def status(report: GateReport) -> Status:
    if report.updated_baseline:
        return Status(report.status, "yellow", "☑️")
    return (
        Status(report.status, "green", "✅")
        if report.passed
        else Status(report.status, "red", "❌")
    )


def grid(report: GateReport) -> Grid:
    head, rows = verdict_rows(report)
    col = head.index("verdict")
    styles = {
        (i, col): ("green",) if v.passed else ("bold red",) for i, v in enumerate(report.verdicts)
    }
    return Grid("verdicts", head, rows, styles=styles, text_columns=frozenset({col, col + 1}))


def page(report: GateReport, **_: Any) -> Page:
    summary = (
        f"candidate {report.candidate} vs baseline {report.baseline} "
        f"({report.baseline_kind}, AURC convention {report.convention})"
    )
    section = Section(
        "sc-eval gate", summary, (grid(report),), tuple(footnotes(report)), status=status(report)
    )
    return Page(f"sc-eval gate: {report.status}", (section,))


def document(report: GateReport, **_: Any) -> Any:
    return gate_document(report)


def records(report: GateReport, **_: Any) -> Records:
    header = [
        "rule",
        "metric",
        "score",
        "baseline",
        "candidate",
        "delta",
        "tolerance",
        "tolerance_unit",
        "low",
        "high",
        "p_value",
        "alpha",
        "passed",
        "reason",
    ]
    rows = [
        [
            v.rule.name,
            v.rule.metric,
            v.rule.score or "",
            v.baseline,
            v.candidate,
            None if v.undefined else v.delta,
            v.rule.tolerance,
            "percentage points" if v.rule.scale == 100.0 else "raw",
            v.low,
            v.high,
            v.p_value,
            v.alpha,
            v.passed,
            v.reason,
        ]
        for v in report.verdicts
    ]
    return Records(header, rows)


def provenance(report: GateReport, **_: Any) -> list[tuple[str, str]]:
    out = [
        ("candidate", report.candidate),
        (f"baseline ({report.baseline_kind})", report.baseline),
        ("AURC convention", report.convention),
    ]
    if report.evaluation is not None:  # the baseline's are the same: gate checks them
        out.append(("labels sha256", report.evaluation.labels_sha256))
    return out


register_view(GateReport, View(page, document, records, provenance))


@register(GateReport, "junit")
def render_junit(report: GateReport, **_: Any) -> str:
    """JUnit XML: one testsuite, one testcase per rule; failures carry the numbers."""
    failures = sum(not v.passed for v in report.verdicts)
    suite = ET.Element(
        "testsuite",
        name="sc-eval gate",
        tests=str(len(report.verdicts)),
        failures=str(failures),
        errors="0",
        skipped="0",
    )
    props = ET.SubElement(suite, "properties")
    for k, v in (
        ("candidate", report.candidate),
        ("baseline", report.baseline),
        ("baseline_kind", report.baseline_kind),
        ("convention", report.convention),
    ):
        ET.SubElement(props, "property", name=k, value=printable(v))
    head, rows = verdict_rows(report)
    for verdict, row in zip(report.verdicts, rows, strict=True):
        case = ET.SubElement(suite, "testcase", classname="sc-eval.gate", name=printable(row[0]))
        details = printable("; ".join(f"{h}={c}" for h, c in zip(head, row, strict=True)))
        if not verdict.passed:
            reason = printable(verdict.reason)
            fail = ET.SubElement(case, "failure", message=reason, type="regression")
            fail.text = details
        else:
            out = ET.SubElement(case, "system-out")
            out.text = details
    ET.indent(suite)
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suite, encoding="unicode") + "\n"
    )
