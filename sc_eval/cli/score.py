"""``sc-eval score``: metrics × scores tables for one or more predictions files."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from sc_eval.cli import app, emit_result, handle_errors
from sc_eval.cli import options as o


@app.command()
@handle_errors
@o.with_progress
@o.with_checkpoint_options
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
    aurc_convention: o.Convention = "mean",
    pnorm_p: o.PnormP = None,
    temperature: o.Temperature = None,
    tune: o.Tune = False,
    tune_split: o.TuneSplit = None,
    val: o.Vals = None,
    fmt: o.Format = "table",
    output: o.Output = None,
    logits_key: o.LogitsKey = None,
    probs_key: o.ProbsKey = None,
    labels_key: o.LabelsKey = "labels",
    index_key: o.IndexKey = "index",
    ood_key: o.OodKey = "ood",
    ood_cost: o.OodCost = 1.0,
    chunk_size: o.ChunkSize = None,
    nan_policy: o.NanPolicy = "refuse",
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
    import dataclasses

    from sc_eval.errors import UsageError
    from sc_eval.pipeline import EvalOptions, evaluate_source
    from sc_eval.sources import KeyOptions, load_source

    o.check_format(fmt)
    o.check_outputs(output, plot=plot)
    keys = KeyOptions(logits_key, probs_key, labels_key, index_key, ood_key)
    opts = EvalOptions(
        scores=o.score_names(scores),
        params=o.score_params(pnorm_p, temperature),
        metrics=tuple(o.metric_names(metrics)),
        coverages=o.coverages(coverages),
        risks=o.risks(risks),
        convention=o.convention(aurc_convention),
        chunk_size=chunk_size,
        seed=seed,
        nan_policy=o.nan_policy(nan_policy),
        ood_cost=ood_cost,
        **o.tuning_options(tune, tune_split, None, keys),
    )
    vals = o.per_source_vals(sources, val, tune, tune_split, keys)
    if vals is not None and (by is not None or groups_key is not None):
        if len(vals) != 1:
            raise UsageError("--by with --val slices one source at a time")
        opts = dataclasses.replace(opts, val=vals[0])
    if by is not None or groups_key is not None:
        from sc_eval.slices import slice_sources

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
    per_source = (
        [opts] * len(preds) if vals is None else [dataclasses.replace(opts, val=v) for v in vals]
    )
    results = [evaluate_source(p, q) for p, q in zip(preds, per_source, strict=True)]
    evals = [ev for ev, _ in results]
    extra: dict[str, object] = {}
    if bootstrap:
        from sc_eval.ood import view_intervals
        from sc_eval.stats import evaluation_intervals

        ci: dict[str, Any] = {"n_boot": bootstrap, "seed": seed, "confidence": confidence}
        extra["intervals"] = [
            view_intervals(ev, s, p.ood[s.index], **ci)
            if ev.ood is not None
            else evaluation_intervals(ev, s, **ci)
            for p, (ev, s) in zip(preds, results, strict=True)
        ]
    if plot is not None:
        o.plot_models(
            plot,
            [(ev.source, s, p.ood[s.index], ev) for p, (ev, s) in zip(preds, results, strict=True)],
        )
    if fmt == "html":
        extra["samples"] = [
            (ev.source, s, p.ood[s.index], ev) for p, (ev, s) in zip(preds, results, strict=True)
        ]
    emit_result(evals, fmt, output, **extra)
