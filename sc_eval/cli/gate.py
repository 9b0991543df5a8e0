"""``sc-eval gate``: exit 1 when selective classification regressed against a baseline."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from sc_eval.cli import app, emit_result, handle_errors, split_list
from sc_eval.cli import options as o
from sc_eval.outputs import append_on_commit, write_text


@app.command()
@handle_errors
@o.with_progress
@o.with_checkpoint_options
@o.with_keys
@o.with_evaluation
def gate(
    candidate: Annotated[
        Path,
        typer.Argument(
            metavar="CANDIDATE", help="Candidate predictions file, or a checkpoint run on --data."
        ),
    ],
    baseline: Annotated[
        Path,
        typer.Option(
            "--baseline",
            help="Baseline: a JSON result of `sc-eval score --format json`, or a predictions "
            "file on the same samples (enables --alpha).",
        ),
    ],
    metric: Annotated[
        list[str] | None,
        typer.Option(
            "--metric",
            help="Metric to gate on; repeat or comma-separate (default: aurc and acc).",
        ),
    ] = None,
    score: Annotated[
        list[str] | None,
        typer.Option(
            "--score", help="Score of each --metric (one for all, or one per metric; default msp)."
        ),
    ] = None,
    tolerance: Annotated[
        str | None,
        typer.Option(
            "--tolerance",
            help="Allowed regression in percentage points for % metrics (raw units otherwise): "
            "0.1, or per metric: aurc=0.1,acc=0.5. Default 0.",
        ),
    ] = None,
    alpha: Annotated[
        float | None,
        typer.Option(
            "--alpha",
            help="With a predictions baseline: fail only if the regression beyond the tolerance "
            "is significant at this level (one-sided paired bootstrap).",
        ),
    ] = None,
    bootstrap: Annotated[
        int, typer.Option("--bootstrap", min=1, help="Bootstrap resamples for --alpha.")
    ] = 1000,
    seed: Annotated[int, typer.Option("--seed", min=0, help="Seed of the bootstrap.")] = 0,
    confidence: o.Confidence = 0.95,
    junit: Annotated[
        Path | None, typer.Option("--junit", help="Also write JUnit XML (one testcase per rule).")
    ] = None,
    update_baseline: Annotated[
        bool,
        typer.Option(
            "--update-baseline",
            help="Accept the candidate: rewrite the JSON baseline with its result, exit 0.",
        ),
    ] = False,
    evaluation: o.EvaluationArg = None,
    fmt: Annotated[
        str,
        typer.Option(
            "--format", "-f", help="Verdict format: table | json | csv | markdown | html | junit."
        ),
    ] = "table",
    output: o.Output = None,
    keys: o.KeysArg = None,
    checkpoint: o.CheckpointArg = None,
    debug: o.Debug = False,
) -> None:
    """Fail (exit 1) when a metric regressed past its tolerance; 0 pass, 2 bad input."""
    from sc_eval.gate import GateReport, run_gate
    from sc_eval.render import render

    o.check_format(fmt, GateReport)
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    o.check_outputs(output, junit, appended=summary, replaced=baseline if update_baseline else None)
    report = run_gate(
        candidate,
        baseline,
        metrics=[m for text in metric or [] for m in split_list(text)],
        scores=[s for text in score or [] for s in split_list(text)],
        tolerance=tolerance,
        alpha=alpha,
        n_boot=bootstrap,
        seed=seed,
        confidence=confidence,
        update_baseline=update_baseline,
        keys=keys,
        checkpoint=checkpoint,
        **evaluation,
    )

    emit_result(report, "markdown" if fmt == "table" and output is not None else fmt, output)
    if summary:
        append_on_commit(summary, render(report, "markdown") + "\n")
    if junit is not None:
        write_text(junit, render(report, "junit"))
    if update_baseline:
        assert report.evaluation is not None
        write_text(baseline, render([report.evaluation], "json"), rewrites_input=True)
        typer.echo(f"sc-eval: baseline {baseline} updated with the candidate's result", err=True)
    elif not report.passed:
        failed = ", ".join(v.rule.name for v in report.verdicts if not v.passed)
        typer.echo(f"sc-eval: gate FAILED: {failed}", err=True)
    raise typer.Exit(report.exit_code)
