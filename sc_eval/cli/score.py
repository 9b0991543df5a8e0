"""``sc-eval score``: metrics × scores tables for one or more predictions files."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated

import typer

from sc_eval.cli import app, emit_result, handle_errors
from sc_eval.cli import options as o
from sc_eval.errors import UsageError


@app.command()
@handle_errors
@o.with_progress
@o.with_checkpoint_options
@o.with_keys
@o.with_evaluation
def score(
    sources: Annotated[
        list[Path],
        typer.Argument(
            metavar="SOURCE", help="Predictions files, or model checkpoints run on --data."
        ),
    ],
    scores: o.Scores = None,
    metrics: o.Metrics = None,
    coverages: o.Coverages = None,
    risks: o.Risks = None,
    evaluation: o.EvaluationArg = None,
    tune: o.Tune = False,
    tune_split: o.TuneSplit = None,
    val: o.Vals = None,
    fmt: o.Format = "table",
    output: o.Output = None,
    keys: o.KeysArg = None,
    bootstrap: o.Bootstrap = 0,
    seed: o.Seed = 0,
    confidence: o.Confidence = 0.95,
    plot: o.Plot = None,
    by: o.By = None,
    groups_key: o.GroupsKey = None,
    at_coverage: o.AtCoverage = 0.9,
    checkpoint: o.CheckpointArg = None,
    debug: o.Debug = False,
) -> None:
    """Evaluate selective classification of saved predictions: one table per file.

    With --by class|group: per-slice n, accuracy, AURC, and coverage and selective
    risk at one global threshold (--at-coverage), worst slice first.
    """
    from sc_eval.pipeline import EvalOptions, evaluate_sources
    from sc_eval.sources import load_source

    o.check_format(fmt)
    o.check_outputs(output, plot=plot)
    opts = EvalOptions(
        scores=o.score_names(scores),
        metrics=tuple(o.metric_names(metrics)),
        coverages=o.coverages(coverages),
        risks=o.risks(risks),
        seed=seed,
        **evaluation,
        **o.tuning_options(tune, tune_split, None, keys),
    )
    vals = o.per_source_vals(sources, val, tune, tune_split, keys)
    if vals is not None and (by is not None or groups_key is not None):
        if len(vals) != 1:
            raise UsageError("--by with --val slices one source at a time")
        opts = dataclasses.replace(opts, val=vals[0])
    if by is not None or groups_key is not None:
        from sc_eval.slices import slice_sources

        if bootstrap:  # slices carry exact binomial intervals, no bootstrap
            raise UsageError(
                "--bootstrap does not apply to --by: each slice's accuracy and selective "
                "risk already come with exact (Clopper–Pearson) 95% intervals"
            )

        tables = slice_sources(
            sources,
            opts,
            keys=keys,
            checkpoint=checkpoint,
            by=by or "group",
            groups_key=groups_key,
            coverage=at_coverage,
        )
        emit_result(tables, fmt, output)
        return
    preds = [load_source(src, keys=keys, checkpoint=checkpoint) for src in sources]
    report = evaluate_sources(preds, opts, vals=vals, n_boot=bootstrap, confidence=confidence)
    runs = zip(preds, report.evaluations, report.samples, strict=True)
    models = [(ev.source, s, p.ood[s.index], ev) for p, ev, s in runs]
    if plot is not None:
        o.plot_models(plot, models)
    extra: dict[str, object] = {}
    if report.intervals is not None:
        extra["intervals"] = list(report.intervals)
    if fmt == "html":
        extra["samples"] = models
    emit_result(list(report.evaluations), fmt, output, **extra)
