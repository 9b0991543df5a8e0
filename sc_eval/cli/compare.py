"""``sc-eval compare``: several models on the same samples, paired-bootstrap differences."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from sc_eval.cli import app, emit_result, handle_errors
from sc_eval.cli import options as o
from sc_eval.errors import UsageError

CompareMetrics = Annotated[
    list[str] | None,
    typer.Option(
        "--metrics",
        "-m",
        help="Comma-separated metrics (default: aurc, e-aurc, augrc, auroc; acc is always "
        "shown; model metrics such as ece add columns).",
    ),
]
CompareCoverages = Annotated[
    list[str] | None,
    typer.Option(
        "--coverages", help="Coverages in (0, 1] for risk@coverage columns (default: 0.95,0.9,0.8)."
    ),
]
CompareRisks = Annotated[
    list[str] | None,
    typer.Option(
        "--risks", help="Target risks in [0, 1] for coverage@risk columns (default: none)."
    ),
]


@app.command()
@handle_errors
@o.with_progress
@o.with_checkpoint_options
@o.with_keys
@o.with_evaluation
def compare(
    sources: Annotated[
        list[Path],
        typer.Argument(
            metavar="SOURCE",
            help="Two or more predictions files (or checkpoints run on --data) on the same "
            "samples; the first is the reference.",
        ),
    ],
    scores: o.Scores = None,
    metrics: CompareMetrics = None,
    coverages: CompareCoverages = None,
    risks: CompareRisks = None,
    evaluation: o.EvaluationArg = None,
    tune: o.Tune = False,
    tune_split: o.TuneSplit = None,
    val: o.Vals = None,
    bootstrap: o.Bootstrap = 1000,
    seed: o.Seed = 0,
    confidence: o.Confidence = 0.95,
    fmt: o.Format = "table",
    output: o.Output = None,
    plot: o.Plot = None,
    keys: o.KeysArg = None,
    checkpoint: o.CheckpointArg = None,
    debug: o.Debug = False,
) -> None:
    """Compare models on the same samples: Δ against the first, with paired-bootstrap
    intervals and p-values.

    Samples are matched row by row (labels must agree) or, when every file has an
    'index' tensor, by sample id.
    """
    from sc_eval.comparison import DEFAULT_COMPARE_COVERAGES, DEFAULT_COMPARE_METRICS, Comparison
    from sc_eval.comparison import compare as run_compare
    from sc_eval.pipeline import EvalOptions
    from sc_eval.sources import load_source

    fmt = o.check_format(fmt, Comparison)
    if len(sources) < 2:
        raise UsageError("compare needs at least two sources (the first is the reference)")
    o.check_outputs(output, plot=plot)
    val_preds = o.per_source_vals(sources, val, tune, tune_split, keys)
    opts = EvalOptions(
        scores=o.score_names(scores),
        metrics=tuple(o.metric_names(metrics) if metrics else DEFAULT_COMPARE_METRICS),
        coverages=o.coverages(coverages) if coverages is not None else DEFAULT_COMPARE_COVERAGES,
        risks=o.risks(risks) if risks is not None else (),
        seed=seed,
        **evaluation,
        **o.tuning_options(tune, tune_split, None, keys),
    )
    preds = [load_source(src, keys=keys, checkpoint=checkpoint) for src in sources]
    result = run_compare(preds, opts, n_boot=bootstrap, confidence=confidence, vals=val_preds)
    # aligned to the reference's rows: its labels mark the OOD samples
    samples = [
        (m, s, preds[0].ood[s.index], ev)
        for m, s, ev in zip(result.models, result.samples, result.evaluations, strict=True)
    ]
    if plot is not None:
        o.plot_models(plot, samples)
    emit_result(result, fmt, output, samples=samples)
