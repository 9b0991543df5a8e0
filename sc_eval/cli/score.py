"""``sc-eval score``: metrics × scores tables for one or more predictions files."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from sc_eval.cli import app, emit, handle_errors, stdout_console
from sc_eval.cli import options as o


@app.command()
@handle_errors
def score(
    sources: Annotated[
        list[Path], typer.Argument(help="Predictions files (.safetensors, .npz, .pt/.pth).")
    ],
    scores: o.Scores = None,
    metrics: o.Metrics = None,
    coverages: o.Coverages = None,
    risks: o.Risks = None,
    aurc_convention: o.Convention = "mean",
    pnorm_p: o.PnormP = None,
    temperature: o.Temperature = None,
    fmt: o.Format = "table",
    output: o.Output = None,
    logits_key: o.LogitsKey = None,
    probs_key: o.ProbsKey = None,
    labels_key: o.LabelsKey = "labels",
    index_key: o.IndexKey = "index",
    chunk_size: o.ChunkSize = None,
    debug: o.Debug = False,
) -> None:
    """Evaluate selective classification of saved predictions: one table per file."""
    from sc_eval.pipeline import EvalOptions, evaluate_source
    from sc_eval.report import render
    from sc_eval.sources import KeyOptions, load_source

    o.check_format(fmt)
    opts = EvalOptions(
        scores=tuple(o.score_names(scores)),
        params=o.score_params(pnorm_p, temperature),
        metrics=tuple(o.metric_names(metrics)),
        coverages=o.coverages(coverages),
        risks=o.risks(risks),
        convention=o.convention(aurc_convention),
        chunk_size=chunk_size,
    )
    keys = KeyOptions(logits_key, probs_key, labels_key, index_key)
    evals = [evaluate_source(load_source(src, keys=keys), opts)[0] for src in sources]
    if fmt == "table" and output is None:
        with stdout_console() as console:
            render(evals, fmt, console=console)
        return
    emit(render(evals, fmt), output)
