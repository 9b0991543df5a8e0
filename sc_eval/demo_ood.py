"""The OOD part of ``sc-eval demo``: does label smoothing also hurt OOD rejection?

The demo's CE and LS models are trained on ``C`` Gaussian-mixture components.
This part draws an OOD set from further components of the same mixture prior
(means ``N(0, I)·scale``, inputs ``tanh(mean + N(0, I))``) that no model ever
trained on, runs both checkpoints over it, and evaluates each model on its ID
evaluation samples plus the OOD samples (:mod:`sc_eval.ood`): SCOD (an accepted
OOD sample is a failure), ID only (the demo's own numbers again) and OOD
detection. Max-logit p-norm keeps the parameters each model tuned on its ID
tuning split, so nothing is tuned on OOD data. The closing lines are composed
from the numbers.

References
----------
Xia & Bouganis (2022), *Augmenting softmax information for selective
classification with out-of-distribution data*, ACCV.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from rich.markup import escape
from safetensors.numpy import save_file

from sc_eval.comparison import compare
from sc_eval.infer import InferOptions
from sc_eval.io import (
    Predictions,
    load_predictions,
    predictions_from_arrays,
    write_predictions,
)
from sc_eval.ood import mix_predictions
from sc_eval.outputs import atomic_output
from sc_eval.pipeline import EvalOptions
from sc_eval.render import render

if TYPE_CHECKING:
    from rich.console import Console

    from sc_eval.comparison import Comparison
    from sc_eval.demo import DemoConfig

__all__ = [
    "OOD_FILES",
    "OodDemo",
    "make_ood_inputs",
    "ood_conclusions",
    "print_ood_demo",
    "run_ood_demo",
]

OOD_FILES = {
    "ood_data": "ood.safetensors",
    "ce_mixed_predictions": "ce.mixed.predictions.safetensors",
    "ls_mixed_predictions": "ls.mixed.predictions.safetensors",
}
#: What the closing lines read: (metric, what it measures)
READ = (
    ("id:aurc", "ID-only AURC"),
    ("aurc", "SCOD AURC"),
    ("ood:auroc", "OOD AUROC"),
    ("ood:fpr@95tpr", "OOD FPR@95TPR"),
)


@dataclass(frozen=True)
class OodDemo:
    """The OOD part of a demo run.

    Attributes
    ----------
    comparison : Comparison
        CE vs LS on the ID evaluation samples plus the OOD samples.
    values : dict
        ``(model, score, metric)`` → value for the metrics of :data:`READ`.
    deltas : dict
        ``(score, metric)`` → LS − CE with its bootstrap interval ``(estimate, low, high)``.
    n_id, n_ood, components : int
    files : dict
    lines : list of str
    """

    comparison: Comparison
    values: dict[tuple[str, str, str], float]
    deltas: dict[tuple[str, str], tuple[float, float, float]]
    n_id: int
    n_ood: int
    components: int
    files: dict[str, Path]
    lines: list[str]


def make_ood_inputs(cfg: DemoConfig, *, n: int, components: int) -> np.ndarray:
    """``n`` inputs from ``components`` mixture components no model trained on (float32).

    Their means come from the same prior as the task's class means but from
    another seeded stream, so they are new components, not the trained ones.

    Examples
    --------
    >>> from sc_eval.demo import DemoConfig
    >>> make_ood_inputs(DemoConfig(dim=3), n=5, components=2).shape
    (5, 3)
    """
    rng = np.random.default_rng([cfg.seed, 1_000_003])  # independent of the task's stream
    means = rng.normal(size=(components, cfg.dim)) * cfg.mean_scale
    k = rng.integers(0, components, n)
    return np.tanh(means[k] + rng.normal(size=(n, cfg.dim))).astype(np.float32)


def _rows(preds: Predictions, rows: np.ndarray) -> Predictions:
    """The samples of ``preds`` at positions ``rows`` (ids kept)."""
    index = preds.index[rows] if preds.index is not None else rows
    sub = predictions_from_arrays(
        np.asarray(preds.values.full())[rows], preds.labels[rows], index=index
    )
    return dataclasses.replace(sub, path=preds.path)


def run_ood_demo(
    cfg: DemoConfig,
    id_comparison: Comparison,
    id_predictions: Sequence[Path],
    out_dir: Path,
    *,
    infer_fn: Callable[..., Any],
    models: Sequence[Path],
    n_boot: int = 200,
) -> OodDemo:
    """Infer both models on the OOD set and compare them on ID-eval + OOD samples.

    Parameters
    ----------
    cfg : DemoConfig
    id_comparison : Comparison
        The demo's CE-vs-LS comparison (its evaluated rows and tuned parameters).
    id_predictions, models : sequence of Path
        The CE and LS predictions files of the ID test set and their checkpoints.
    infer_fn : callable
        :func:`sc_eval.infer.infer` (passed in so that this module stays light).
    """

    files = {k: out_dir / v for k, v in OOD_FILES.items()}
    components = max(2, cfg.classes // 4)
    n_ood = max(10, cfg.n_test // 4)
    x = make_ood_inputs(cfg, n=n_ood, components=components)
    with atomic_output(files["ood_data"]) as tmp:
        labels = np.zeros(n_ood, dtype=np.int64)  # ignored: OOD samples have no class
        meta = {"producer": "sc-eval demo", "task": "gaussian-mixture, held-out components"}
        save_file({"inputs": x, "labels": labels}, str(tmp), metadata=meta)
    eval_rows = id_comparison.samples[0].index
    mixed, tuning = [], []
    for name, ckpt, id_file in zip(("ce", "ls"), models, id_predictions, strict=True):
        target = files[f"{name}_mixed_predictions"]
        result = infer_fn(
            ckpt,
            files["ood_data"],
            out=None,
            options=InferOptions(batch_size=4096, device="cpu", progress=False),
            log=lambda message: None,
        )
        ood = predictions_from_arrays(result.logits, result.labels, index=result.index)
        preds = load_predictions(id_file)
        tune_rows = np.setdiff1d(np.arange(preds.n), eval_rows)
        both = mix_predictions(_rows(preds, eval_rows), ood)
        write_predictions(
            target,
            logits=np.asarray(both.values.full()),
            labels=both.labels,
            index=both.index,
            metadata={"producer": "sc-eval demo"},
            ood=both.ood,
        )
        mixed.append(dataclasses.replace(load_predictions(target), path=name.upper()))
        tuning.append(_rows(preds, tune_rows))
    opts = EvalOptions(
        scores=("msp", "maxlogit-pnorm"),
        metrics=("aurc", "auroc"),
        coverages=(0.9,),
        risks=(),
        seed=cfg.seed,
    )
    cmp = compare(mixed, opts, n_boot=n_boot, vals=tuning)
    values, deltas = _read(cmp)
    ev = cmp.evaluations[0]
    info = ev.ood or {}
    demo = OodDemo(
        cmp, values, deltas, info.get("n_id", 0), info.get("n_ood", 0), components, files, []
    )
    return dataclasses.replace(demo, lines=ood_conclusions(demo))


def _read(
    cmp: Comparison,
) -> tuple[dict[tuple[str, str, str], float], dict[tuple[str, str], tuple[float, float, float]]]:
    values: dict[tuple[str, str, str], float] = {}
    deltas: dict[tuple[str, str], tuple[float, float, float]] = {}
    for sc in cmp.scores:
        for model, row in zip(("ce", "ls"), sc.rows, strict=True):
            for metric, _ in READ:
                cell = row.metrics[metric]
                values[(model, sc.score, metric)] = cell.value
                if cell.delta is not None:
                    d = cell.delta
                    deltas[(sc.score, metric)] = (d.estimate, d.low, d.high)
    return values, deltas


def _pct(x: float) -> str:
    return f"{100 * x:.2f}%"


def _delta(deltas: dict[tuple[str, str], tuple[float, float, float]], key: tuple[str, str]) -> str:
    est, low, high = deltas.get(key, (math.nan, math.nan, math.nan))
    if math.isnan(low):
        return f"{100 * est:+.2f} points"
    verdict = "excludes" if low > 0 or high < 0 else "includes"
    return (
        f"{100 * est:+.2f} points, 95% interval [{100 * low:+.2f}, {100 * high:+.2f}] {verdict} 0"
    )


def ood_conclusions(demo: OodDemo) -> list[str]:
    """Closing lines of the OOD part, each chosen by what the numbers show."""
    v, d = demo.values, demo.deltas

    def cmp_line(score: str, metric: str, label: str, higher_is_better: bool) -> str:
        ce, ls = v[("ce", score, metric)], v[("ls", score, metric)]
        if ce == ls:
            word = "equal to"
        else:
            better = (ls > ce) == higher_is_better
            word = "better than" if better else "worse than"
        return (
            f"{label} with {score}: LS is {word} CE, {_pct(ls)} vs {_pct(ce)} "
            f"({_delta(d, (score, metric))})."
        )

    lines = [
        f"With OOD samples ({demo.n_ood} inputs from {demo.components} mixture components "
        f"never trained on, added to the {demo.n_id} ID evaluation samples):",
        cmp_line("msp", "ood:auroc", "OOD detection (AUROC, ID vs OOD)", True),
        cmp_line("msp", "aurc", "SCOD AURC (misclassified or OOD = failure)", False),
    ]
    ls_msp, ls_fix = v[("ls", "msp", "aurc")], v[("ls", "maxlogit-pnorm", "aurc")]
    ce_msp = v[("ce", "msp", "aurc")]
    auroc_msp, auroc_fix = v[("ls", "msp", "ood:auroc")], v[("ls", "maxlogit-pnorm", "ood:auroc")]
    if ls_fix < ls_msp:
        fix = (
            f"P-norm under OOD: max-logit p-norm (tuned on ID data) lowers LS's SCOD AURC from "
            f"{_pct(ls_msp)} to {_pct(ls_fix)}"
            + (f", below CE's MSP {_pct(ce_msp)}" if ls_fix < ce_msp else "")
        )
    else:
        fix = (
            f"P-norm under OOD: max-logit p-norm (tuned on ID data) does not lower LS's SCOD "
            f"AURC ({_pct(ls_fix)} vs MSP {_pct(ls_msp)})"
        )
    direction = "raises" if auroc_fix > auroc_msp else "lowers"
    lines.append(
        f"{fix}; it {direction} LS's OOD AUROC from {_pct(auroc_msp)} to {_pct(auroc_fix)}."
    )
    return lines


def print_ood_demo(demo: OodDemo, console: Console) -> None:
    """The OOD part of the demo's output: the comparison tables, then the closing lines."""
    console.print(
        f"[bold]With OOD samples[/bold]: {demo.n_ood} inputs from {demo.components} held-out "
        f"mixture components added to the {demo.n_id} ID evaluation samples; max-logit p-norm "
        "keeps the parameters tuned on ID data."
    )
    console.print()
    print_comparison(console, demo.comparison, demo.lines)


def print_comparison(console: Console, comparison: Comparison, lines: Sequence[str]) -> None:
    """A demo comparison's tables, then its conclusions, each followed by a blank line."""
    render(comparison, "table", console=console)
    console.print()
    for line in lines:
        console.print(escape(line))
    console.print()
