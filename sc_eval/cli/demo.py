"""``sc-eval demo``: label smoothing hurts selective classification — and the fix, offline."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from sc_eval.cli import app, handle_errors, stdout_console
from sc_eval.cli import options as o
from sc_eval.errors import UsageError
from sc_eval.outputs import detached


@app.command()
@handle_errors
def demo(
    out: Annotated[
        Path,
        typer.Option(
            "--out", help="Directory for the checkpoints, test set and predictions (created)."
        ),
    ] = Path("sc-eval-demo"),
    label_smoothing: Annotated[
        float, typer.Option("--label-smoothing", help="α of the label-smoothed model.")
    ] = 0.3,
    epochs: Annotated[
        int, typer.Option("--epochs", min=1, help="Training epochs of each model.")
    ] = 30,
    seed: Annotated[
        int,
        typer.Option(
            "--seed",
            min=0,
            help="Seed of the data, the training, the tuning split and the bootstrap.",
        ),
    ] = 0,
    n_train: Annotated[int, typer.Option("--n-train", min=100, help="Training samples.")] = 20_000,
    n_test: Annotated[int, typer.Option("--n-test", min=100, help="Test samples.")] = 20_000,
    classes: Annotated[int, typer.Option("--classes", min=2, help="Number of classes.")] = 100,
    hidden: Annotated[
        int, typer.Option("--hidden", min=1, help="Width of the hidden layers.")
    ] = 256,
    tune_split: Annotated[
        float,
        typer.Option(
            "--tune-split", metavar="FRACTION", help="Test fraction used to tune the p-norm."
        ),
    ] = 0.1,
    threads: Annotated[
        int,
        typer.Option("--threads", min=1, help="CPU threads for training (fixed: reproducible)."),
    ] = 1,
    ood: Annotated[
        bool,
        typer.Option(
            "--ood/--no-ood",
            help="Also compare the models with OOD samples from held-out mixture components.",
        ),
    ] = True,
    bootstrap: o.Bootstrap = 200,
    progress: Annotated[
        bool, typer.Option("--progress/--no-progress", help="Progress bar on stderr.")
    ] = True,
    debug: o.Debug = False,
) -> None:
    """Train a cross-entropy and a label-smoothing model on a synthetic 100-class task,
    then compare their selective classification with MSP and tuned max-logit p-norm.

    Offline and deterministic on the CPU. The checkpoints (torch.export .pt2), the
    test set and the predictions files stay in --out, so every number can be
    reproduced with `sc-eval compare`.
    """
    from sc_eval.demo import DemoConfig, run_demo
    from sc_eval.demo_ood import print_comparison

    cfg = DemoConfig(
        classes=classes,
        n_train=n_train,
        n_test=n_test,
        hidden=hidden,
        epochs=epochs,
        label_smoothing=label_smoothing,
        seed=seed,
        tune_split=tune_split,
        threads=threads,
        ood=ood,
    )
    if not 0.0 < tune_split < 1.0:
        raise UsageError(f"--tune-split must be a fraction in (0, 1), got {tune_split}")

    with detached():  # the demo reads back the checkpoints and predictions it writes
        result = run_demo(cfg, out=out, progress=progress, n_boot=bootstrap)
    files = result.files
    with stdout_console() as console:
        from rich.markup import escape

        console.print(
            f"[bold]sc-eval demo[/bold]: {cfg.classes}-class Gaussian mixture in {cfg.dim} "
            f"dimensions, {cfg.n_train} training / {cfg.n_test} test samples; MLP "
            f"{cfg.dim}→{cfg.hidden}→{cfg.hidden}→{cfg.classes}, {cfg.epochs} epochs; "
            f"CE vs LS α={cfg.label_smoothing:g}; seed {cfg.seed}."
        )
        console.print(
            f"max-logit p-norm tuned on a random {100 * cfg.tune_split:g}% of the test set "
            f"({result.summary.n_tune} samples); every number below is on the other "
            f"{result.summary.n_eval}."
        )
        console.print()
        print_comparison(console, result.comparison, result.lines)
        if result.diagnosis is not None:
            console.print("[bold]Why (sc-eval diagnose)[/bold]")
            for line in result.diagnosis.lines:
                console.print(escape(line))
            console.print()
        if "risk_coverage_plot" not in files:
            console.print(
                "[dim]For a picture of the risk–coverage curves (risk-coverage.png), install "
                "matplotlib: pip install 'sc-eval[plot]'[/dim]"
            )
        else:
            console.print(f"Picture: {escape(str(files['risk_coverage_plot']))}")
        if result.ood is not None:
            from sc_eval.demo_ood import print_ood_demo

            print_ood_demo(result.ood, console)
        s = result.seconds
        console.print(
            f"[dim]Wrote {escape(str(result.out))}/: "
            f"{', '.join(p.name for p in files.values())}. "
            f"Time: {s['total']:.1f} s (training {s['train_ce'] + s['train_ls']:.1f} s).[/dim]"
        )
        console.print(
            "[dim]Same numbers from the files: sc-eval compare "
            f"{escape(str(files['ce_predictions']))} {escape(str(files['ls_predictions']))} "
            f"-s msp,maxlogit-pnorm --tune-split {cfg.tune_split:g} --seed {cfg.seed} "
            f"-m aurc,auroc --coverages 0.9,0.8 --bootstrap {bootstrap}[/dim]",
            soft_wrap=True,
        )
        console.print(
            "[dim]The whole diagnosis, with tables and plots: sc-eval diagnose "
            f"{escape(str(files['ce_predictions']))} {escape(str(files['ls_predictions']))} "
            f"--features {escape(str(files['ce_features']))} "
            f"--features {escape(str(files['ls_features']))} --tune-split {cfg.tune_split:g} "
            f"--seed {cfg.seed} --bootstrap {bootstrap} --plot {escape(str(result.out))}/plots"
            "[/dim]",
            soft_wrap=True,
        )
