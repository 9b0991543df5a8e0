"""``sc-eval gate``: exit 1 when selective classification regressed against a baseline."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer

from sc_eval.cli import app, emit_result, handle_errors, split_list
from sc_eval.cli import options as o


@app.command()
@handle_errors
@o.with_progress
@o.with_checkpoint_options
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
    aurc_convention: o.Convention = "mean",
    pnorm_p: o.PnormP = None,
    temperature: o.Temperature = None,
    fmt: Annotated[
        str,
        typer.Option(
            "--format", "-f", help="Verdict format: table | json | csv | markdown | html | junit."
        ),
    ] = "table",
    output: o.Output = None,
    logits_key: o.LogitsKey = None,
    probs_key: o.ProbsKey = None,
    labels_key: o.LabelsKey = "labels",
    index_key: o.IndexKey = "index",
    ood_key: o.OodKey = "ood",
    ood_cost: o.OodCost = 1.0,
    chunk_size: o.ChunkSize = None,
    nan_policy: o.NanPolicy = "refuse",
    checkpoint: o.CheckpointArg = None,
    debug: o.Debug = False,
) -> None:
    """Fail (exit 1) when a metric regressed past its tolerance; 0 pass, 2 bad input."""
    from sc_eval.errors import UsageError
    from sc_eval.gate import (
        GateReport,
        baseline_params,
        baseline_tuning,
        baseline_value,
        candidate_value,
        check_rules,
        evaluated_metrics,
        load_baseline_json,
        parse_rules,
    )
    from sc_eval.metrics import DEFAULT_SELECTIVE
    from sc_eval.outputs import append_on_commit, write_text
    from sc_eval.pipeline import EvalOptions, evaluate_source
    from sc_eval.render import render
    from sc_eval.scores import SCORES
    from sc_eval.sources import KeyOptions, load_source

    o.check_format(fmt, GateReport)
    if alpha is not None and not 0 < alpha < 1:
        raise UsageError(f"--alpha must be in (0, 1), got {alpha}")
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    o.check_outputs(output, junit, appended=summary, replaced=baseline if update_baseline else None)
    metrics = [m for text in metric or [] for m in split_list(text)]
    scores = [s for text in score or [] for s in split_list(text)]
    rules = parse_rules(metrics, scores, tolerance)
    convention = o.convention(aurc_convention)
    keys = KeyOptions(logits_key, probs_key, labels_key, index_key, ood_key)
    baseline_is_json = _looks_like_json(baseline)
    if alpha is not None and baseline_is_json:
        raise UsageError(
            "--alpha needs a predictions baseline (the same samples through the old model); "
            "a JSON baseline holds only the numbers"
        )
    if update_baseline and not baseline_is_json:
        raise UsageError("--update-baseline rewrites a JSON baseline; this baseline is predictions")

    base_res = load_baseline_json(baseline) if baseline_is_json else None
    rule_scores = [r.score for r in rules if r.score]
    extra = [s for s in (base_res or {}).get("scores", {}) if s in SCORES]
    score_names = tuple(dict.fromkeys([*rule_scores, *extra] or ["msp"]))
    selective = evaluated_metrics(rules)
    params = o.score_params(pnorm_p, temperature)
    tune_split: float | None = None
    tune_seed: int | None = None
    retune: tuple[str, ...] = ()
    notes: list[str] = []
    if base_res is not None:
        tune_split, tune_seed, retune, notes = baseline_tuning(base_res, score_names, path=baseline)
        params = baseline_params(base_res, score_names, params, path=baseline, retune=retune)
    opts = EvalOptions(
        scores=score_names,
        params=params,
        metrics=tuple(dict.fromkeys([*DEFAULT_SELECTIVE, *selective])),
        convention=convention,
        chunk_size=chunk_size,
        nan_policy=o.nan_policy(nan_policy),
        ood_cost=ood_cost,
        tune_split=tune_split,
        seed=seed if tune_seed is None else tune_seed,
    )
    cand_preds = load_source(candidate, keys=keys, checkpoint=checkpoint)
    if base_res is not None:
        if base_res["convention"] != convention:
            raise UsageError(
                f"{baseline}: baseline was computed with AURC convention "
                f"'{base_res['convention']}', this run uses '{convention}'; pass "
                f"--aurc-convention {base_res['convention']} or re-record the baseline"
            )
        base_cost = (base_res.get("ood") or {}).get("cost", 1.0)
        if cand_preds.has_ood and base_cost != ood_cost:
            raise UsageError(
                f"{baseline}: baseline was computed with --ood-cost {base_cost:g}, this run "
                f"uses {ood_cost:g}; pass --ood-cost {base_cost:g} or re-record the baseline"
            )
        cand_ev, cand_scored = evaluate_source(cand_preds, opts)
        full = (base_res.get("tuning") or {}).get("labels_sha256_all")
        if base_res["labels_sha256"] != cand_ev.labels_sha256 and full == cand_preds.labels_sha256:
            raise UsageError(
                f"{baseline}: the candidate has the baseline's test set, but its tuning split "
                "left other samples for the evaluation (rows dropped by --nan-policy?)"
            )
        if base_res["labels_sha256"] != cand_ev.labels_sha256:
            dropped = cand_scored.n < cand_preds.n
            raise UsageError(
                f"{baseline}: baseline was computed on other labels (labels_sha256 "
                f"{str(base_res['labels_sha256'])[:12]}… vs {cand_ev.labels_sha256[:12]}…): "
                "not the same test set"
                + (
                    f" ({cand_preds.n - cand_scored.n} candidate rows were dropped by "
                    "--nan-policy drop; rank-last keeps every row)"
                    if dropped
                    else ""
                )
            )
        values = [baseline_value(base_res, r, path=baseline) for r in rules]
        verdicts = check_rules(rules, cand_ev, values, confidence=confidence)
        kind = "JSON result"
    else:
        from sc_eval.comparison import align_sources, drop_shared_rows

        base_preds, cand_preds = align_sources(
            [load_source(baseline, keys=keys, checkpoint=checkpoint), cand_preds]
        )
        (base_ev, base_scored), (cand_ev, cand_scored) = drop_shared_rows(
            [base_preds, cand_preds],
            [evaluate_source(base_preds, opts), evaluate_source(cand_preds, opts)],
            opts,
        )
        values = [candidate_value(base_ev, r) for r in rules]
        boot = None
        if alpha is not None:
            from sc_eval.stats import bootstrap_metrics

            kw: dict[str, Any] = {
                "metrics": [r.metric for r in rules],
                "scores": score_names,
                "convention": convention,
                "n_boot": bootstrap,
                "seed": seed,
            }
            if cand_ev.ood is None:
                boot = bootstrap_metrics([base_scored, cand_scored], **kw)
            else:  # every view, ID and OOD samples resampled together
                from sc_eval.ood import bootstrap_views

                pairs = ((base_preds, base_scored), (cand_preds, cand_scored))
                oods = [p.ood[s.index] for p, s in pairs]
                boot = bootstrap_views(
                    [base_scored, cand_scored],
                    oods,
                    cost=ood_cost,
                    **kw,
                )
        verdicts = check_rules(
            rules, cand_ev, values, bootstrap=boot, alpha=alpha, confidence=confidence
        )
        kind = "predictions"
    report = GateReport(
        str(candidate),
        str(baseline),
        kind,
        convention,
        tuple(verdicts),
        update_baseline,
        tuple(notes),
    )

    emit_result(report, "markdown" if fmt == "table" and output is not None else fmt, output)
    if summary:
        append_on_commit(summary, render(report, "markdown") + "\n")
    if junit is not None:
        write_text(junit, render(report, "junit"))
    if update_baseline:
        write_text(baseline, render([cand_ev], "json"), rewrites_input=True)
        typer.echo(f"sc-eval: baseline {baseline} updated with the candidate's result", err=True)
        raise typer.Exit(0)
    if not report.passed:
        failed = ", ".join(v.rule.name for v in report.verdicts if not v.passed)
        typer.echo(f"sc-eval: gate FAILED: {failed}", err=True)
    raise typer.Exit(report.exit_code)


def _looks_like_json(path: Path) -> bool:
    from sc_eval.errors import InputError
    from sc_eval.files import check_input_file, os_error_reason

    try:
        with open(check_input_file(path, "baseline file"), "rb") as f:
            head = f.read(64).lstrip()
    except OSError as e:
        raise InputError(f"cannot read: {os_error_reason(e)}", path=path) from None
    return head.startswith(b"{") or path.suffix.lower() == ".json"
