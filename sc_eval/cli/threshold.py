"""``sc-eval threshold``: a rejection threshold with a risk guarantee (SGR), and a selector file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from sc_eval.cli import app, emit_result, handle_errors
from sc_eval.cli import options as o


@app.command()
@handle_errors
@o.with_progress
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
    logits_key: o.LogitsKey = None,
    probs_key: o.ProbsKey = None,
    labels_key: o.LabelsKey = "labels",
    index_key: o.IndexKey = "index",
    ood_key: o.OodKey = "ood",
    chunk_size: o.ChunkSize = None,
    nan_policy: o.NanPolicy = "refuse",
    debug: o.Debug = False,
) -> None:
    """Choose a rejection threshold whose selective risk is guaranteed (Geifman & El-Yaniv 2017).

    Exit 1 when no threshold meets --target-risk (the best bound is reported).
    """
    import warnings

    from sc_eval.errors import UsageError
    from sc_eval.pipeline import ScEvalWarning
    from sc_eval.scores import check_scores_for_input, get_score
    from sc_eval.selector import Selector
    from sc_eval.sources import KeyOptions, load_source
    from sc_eval.threshold import ThresholdResult, calibrate, evaluate_on

    o.check_format(fmt, ThresholdResult)
    if (target_risk is None) == (target_coverage is None):
        raise UsageError("give exactly one of --target-risk and --target-coverage")
    if target_risk is not None and not 0.0 <= target_risk <= 1.0:
        raise UsageError(f"--target-risk must be in [0, 1], got {target_risk}")
    if target_coverage is not None and not 0.0 < target_coverage <= 1.0:
        raise UsageError(f"--target-coverage must be in (0, 1], got {target_coverage}")
    if not 0.0 < delta < 1.0:
        raise UsageError(f"--delta must be in (0, 1), got {delta}")
    o.check_outputs(output)
    nan_policy = o.nan_policy(nan_policy)
    named = o.split_list(o.joined(scores)) if scores is not None else ["msp"]
    if len(named) != 1:
        raise UsageError(f"threshold certifies one score; got {', '.join(named) or 'none'}")
    score = named[0]
    get_score(score)
    params = o.score_params(pnorm_p, temperature).get(score, {})
    keys = KeyOptions(logits_key, probs_key, labels_key, index_key, ood_key)
    cal = load_source(source, keys=keys)
    check_scores_for_input([score], has_logits=cal.has_logits)
    test_preds = load_source(test, keys=keys) if test is not None else None
    if test_preds is not None and test_preds.num_classes != cal.num_classes:
        raise UsageError(
            f"{test}: {test_preds.num_classes} classes, but the calibration file has "
            f"{cal.num_classes}"
        )
    tuned, index, tuning = False, None, None
    if tune_split is not None or val is not None:
        from sc_eval.ood import check_ood_tuning
        from sc_eval.pipeline import EvalOptions
        from sc_eval.threshold import data_sha256
        from sc_eval.tuning import tune

        val_preds = load_source(val, keys=keys) if val is not None else None
        check_ood_tuning(cal, EvalOptions(tune_split=tune_split, val=val_preds))
        if val_preds is not None and data_sha256(val_preds) == data_sha256(cal):
            raise UsageError(
                f"--val {val} holds the calibration predictions; tuning on them would void "
                "the guarantee (use --tune-split or another file)"
            )
        t = tune(
            cal,
            EvalOptions(
                scores=(score,),
                params={score: params},
                tune_split=tune_split,
                val=val_preds,
                seed=seed,
            ),
        )
        params, index, tuning = t.params[score], t.eval_index, t.info
        tuned = score in t.tuned
    result = calibrate(
        cal,
        score=score,
        params=params,
        tuned=tuned,
        index=index,
        tuning=tuning,
        target_risk=target_risk,
        target_coverage=target_coverage,
        delta=delta,
        chunk_size=chunk_size,
        nan_policy=nan_policy,
    )
    if test_preds is not None and result.feasible:
        from dataclasses import replace

        from sc_eval.threshold import data_sha256

        if data_sha256(test_preds) == result.data_sha256:
            warnings.warn(
                f"{test} holds the same predictions as the calibration file; "
                "its numbers are not an independent check",
                ScEvalWarning,
                stacklevel=1,
            )
        outcome = evaluate_on(
            test_preds,
            score=score,
            params=result.params,
            key=result.control.key,
            chunk_size=chunk_size,
            nan_policy=nan_policy,
        )
        result = replace(result, test=outcome)
        low = outcome.risk_interval[0]
        if target_risk is not None and outcome.accepted and low > target_risk:
            warnings.warn(
                f"{test}: the selective risk on test, {100 * outcome.risk:.2f}%, is above the "
                f"target {100 * target_risk:.2f}% beyond chance (its 95% interval starts at "
                f"{100 * low:.2f}%): the test data may not come from the calibration "
                "distribution, which the guarantee assumes",
                ScEvalWarning,
                stacklevel=1,
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
