"""``sc-eval threshold``: a rejection threshold with a risk guarantee (SGR), and a selector file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from sc_eval.cli import app, emit_result, handle_errors
from sc_eval.cli import options as o
from sc_eval.errors import UsageError


@app.command()
@handle_errors
@o.with_progress
@o.with_keys
def threshold(
    source: Annotated[
        Path,
        typer.Argument(
            metavar="CALIBRATION",
            help="Calibration predictions file (i.i.d. with deployment data).",
        ),
    ],
    scores: Annotated[
        list[str] | None,
        typer.Option("--score", "-s", help="Confidence score (see `sc-eval list`; default msp)."),
    ] = None,
    target_risk: Annotated[
        float | None,
        typer.Option(
            "--target-risk",
            help="Certify this selective risk (fraction, e.g. 0.02): the largest coverage "
            "whose risk bound at confidence 1-δ is at most it.",
        ),
    ] = None,
    target_coverage: Annotated[
        float | None,
        typer.Option(
            "--target-coverage", help="Instead: bound the selective risk at this coverage."
        ),
    ] = None,
    delta: Annotated[
        float,
        typer.Option("--delta", help="Failure probability δ of the guarantee (confidence 1-δ)."),
    ] = 0.05,
    test: Annotated[
        Path | None,
        typer.Option("--test", help="Also report coverage and risk on these test predictions."),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output", "-o", help="Write the selector (score, params, threshold) as JSON here."
        ),
    ] = None,
    pnorm_p: o.PnormP = None,
    temperature: o.Temperature = None,
    tune_split: Annotated[
        float | None,
        typer.Option(
            "--tune-split",
            help="Tune the score's free parameters (p, T) on this seeded fraction of the "
            "calibration file and calibrate on the rest (keeps the guarantee valid).",
        ),
    ] = None,
    val: Annotated[
        Path | None,
        typer.Option("--val", help="Tune the score's free parameters on this separate file."),
    ] = None,
    seed: Annotated[
        int, typer.Option("--seed", min=0, help="Seed of the tuning split (--tune-split).")
    ] = 0,
    fmt: o.Format = "table",
    keys: o.KeysArg = None,
    chunk_size: o.ChunkSize = None,
    nan_policy: o.NanPolicy = "refuse",
    debug: o.Debug = False,
) -> None:
    """Choose a rejection threshold whose selective risk is guaranteed (Geifman & El-Yaniv 2017).

    Exit 1 when no threshold meets --target-risk (the best bound is reported).
    """
    from sc_eval.selector import Selector
    from sc_eval.threshold import ThresholdResult, select_threshold

    o.check_format(fmt, ThresholdResult)
    o.check_outputs(output)
    named = o.split_list(o.joined(scores)) if scores is not None else ["msp"]
    if len(named) != 1:
        raise UsageError(f"threshold certifies one score; got {', '.join(named) or 'none'}")
    result = select_threshold(
        source,
        score=named[0],
        params=o.score_params(pnorm_p, temperature).get(named[0], {}),
        target_risk=target_risk,
        target_coverage=target_coverage,
        delta=delta,
        test=test,
        tune_split=tune_split,
        val=val,
        seed=seed,
        chunk_size=chunk_size,
        nan_policy=o.nan_policy(nan_policy),
        keys=keys,
    )
    emit_result([result], fmt, None)
    if not result.feasible:
        best = result.control.best
        typer.echo(
            f"sc-eval: no threshold meets the target: the lowest selective-risk bound at "
            f"δ = {delta:g} is {100 * best.bound:.2f}% (coverage "
            f"{100 * best.accepted / result.control.n:.1f}%), above the target "
            f"{100 * (target_risk or 0.0):.2f}%"
            + ("; no selector written" if output is not None else ""),
            err=True,
        )
        raise typer.Exit(1)
    if output is not None:
        Selector.from_result(result).save(output, announce=True)
