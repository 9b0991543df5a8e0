"""``sc-eval diagnose``: why a model ranks its errors badly — correct-vs-wrong statistics,
confidence ceiling, calibration, post-hoc repair, suppression and neural collapse."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from sc_eval.cli import app, emit_result, handle_errors
from sc_eval.cli import options as o
from sc_eval.errors import UsageError

Features = Annotated[
    list[Path] | None,
    typer.Option(
        "--features",
        metavar="FEATS",
        help="Penultimate features of a source (repeat once per source, in order): a file "
        "holding features [N, D], optionally W [C, D] and b [C] (see `sc-eval infer "
        "--features-layer`). Adds the neural-collapse table.",
    ),
]
PlotDir = Annotated[
    Path | None,
    typer.Option(
        "--plot",
        metavar="DIR",
        help="Write the plots (correct-vs-wrong CDFs, reliability and MSP histograms, "
        "suppression by confidence) as PNG files into this directory (created; needs: "
        "pip install 'sc-eval[plot]').",
    ),
]
DiagnoseTuneSplit = Annotated[
    float,
    typer.Option(
        "--tune-split",
        metavar="FRACTION",
        help="Seeded fraction of each source on which max-logit p-norm is tuned; every "
        "per-sample number is on the other samples.",
    ),
]


@app.command()
@handle_errors
@o.with_checkpoint_options
def diagnose(
    sources: Annotated[
        list[Path],
        typer.Argument(
            metavar="SOURCE",
            help="Predictions files with logits (or checkpoints run on --data); with two or "
            "more, the same samples (the first is the reference of the suppression analysis).",
        ),
    ],
    features: Features = None,
    plot: PlotDir = None,
    tune_split: DiagnoseTuneSplit = 0.1,
    val: o.Val = None,
    bootstrap: o.Bootstrap = 1000,
    seed: o.Seed = 0,
    confidence: o.Confidence = 0.95,
    fmt: o.Format = "table",
    output: o.Output = None,
    logits_key: o.LogitsKey = None,
    labels_key: o.LabelsKey = "labels",
    index_key: o.IndexKey = "index",
    checkpoint: o.CheckpointArg = None,
    debug: o.Debug = False,
) -> None:
    """Show why a model ranks its errors as it does: which per-sample signals still separate
    correct from wrong predictions, where the confidence tops out (the label-smoothing
    plateau), calibration, what tuned max-logit p-norm repairs, whether a second model
    suppresses the max logit more on likely-correct samples, and neural collapse of
    penultimate features.
    """
    from sc_eval.collapse import load_features
    from sc_eval.diagnosis import Diagnosis
    from sc_eval.diagnosis import diagnose as run
    from sc_eval.sources import KeyOptions, load_source

    o.check_format(fmt, Diagnosis)
    o.check_outputs(output)
    if plot is not None:
        from sc_eval.diagnose_plot import check_plot_dir

        check_plot_dir(plot)
    if not 0.0 < tune_split < 1.0:
        raise UsageError(f"--tune-split must be a fraction in (0, 1), got {tune_split}")
    if features and len(features) != len(sources):
        raise UsageError(
            f"give --features once per source, in order ({len(sources)} sources, "
            f"{len(features)} --features)"
        )
    keys = KeyOptions(logits_key, None, labels_key, index_key)
    preds = [load_source(src, keys=keys, checkpoint=checkpoint) for src in sources]
    feats = (
        [
            load_features(f, n=p.n, num_classes=p.num_classes)
            for f, p in zip(features, preds, strict=True)
        ]
        if features
        else None
    )
    if val is not None and len(sources) > 1:
        raise UsageError(
            "--val tunes one model: with several sources each is tuned on a split of its own "
            "rows (--tune-split), or diagnose one source at a time with its own --val"
        )
    val_preds = load_source(val, keys=keys) if val is not None else None
    result = run(
        preds,
        features=feats,
        tune_split=None if val_preds is not None else tune_split,
        val=val_preds,
        n_boot=bootstrap,
        seed=seed,
        confidence=confidence,
    )
    if plot is not None:
        from sc_eval.diagnose_plot import plot_diagnosis

        written = plot_diagnosis(result, plot)
        typer.echo(f"sc-eval: wrote {len(written)} plots to {plot}", err=True)
    emit_result(result, fmt, output)
