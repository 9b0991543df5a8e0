"""Option declarations shared by several commands (Annotated aliases), and the
helpers that turn their raw strings into library arguments."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from sc_eval.cli import split_list

Scores = Annotated[
    str | None,
    typer.Option(
        "--scores",
        "-s",
        help="Comma-separated confidence scores (default: all untuned "
        "scores; see `sc-eval scores`).",
    ),
]
Metrics = Annotated[
    str | None,
    typer.Option(
        "--metrics",
        "-m",
        help="Comma-separated selective metrics (default: aurc, "
        "e-aurc, naurc, augrc, auroc, fpr@95tpr).",
    ),
]
Coverages = Annotated[
    str | None,
    typer.Option(
        "--coverages",
        help="Coverages in (0, 1] for the risk–coverage table "
        "(default: 1,0.99,0.95,0.9,0.8,0.7,0.5).",
    ),
]
Risks = Annotated[
    str | None,
    typer.Option(
        "--risks", help="Target risks in [0, 1] for coverage-at-risk (default: 0.01,0.05)."
    ),
]
Convention = Annotated[
    str,
    typer.Option(
        "--aurc-convention", help="Area discretisation: mean | trapezoid | torch-uncertainty."
    ),
]
PnormP = Annotated[
    float | None,
    typer.Option(
        "--pnorm-p", help="Fixed p for maxlogit-pnorm / msp-pnorm (0 = no normalisation)."
    ),
]
Temperature = Annotated[
    float | None,
    typer.Option("--temperature", "-T", help="Fixed temperature for msp-ts, msp-pnorm and energy."),
]
Format = Annotated[
    str, typer.Option("--format", "-f", help="Output format: table | json | csv | markdown.")
]
Output = Annotated[
    Path | None,
    typer.Option(
        "--output", "-o", help="Write results to this file (atomically) instead of stdout."
    ),
]
LogitsKey = Annotated[
    str | None, typer.Option("--logits-key", help="Name of the [N, C] logits tensor.")
]
ProbsKey = Annotated[
    str | None, typer.Option("--probs-key", help="Name of the [N, C] probabilities tensor.")
]
LabelsKey = Annotated[str, typer.Option("--labels-key", help="Name of the labels tensor.")]
IndexKey = Annotated[
    str, typer.Option("--index-key", help="Name of the optional sample-id tensor.")
]
ChunkSize = Annotated[
    int | None,
    typer.Option(
        "--chunk-size", min=1, help="Rows scored at a time (default: ~32 MiB of float64)."
    ),
]
Debug = Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")]


def check_format(fmt: str) -> str:
    from sc_eval.errors import unknown_name
    from sc_eval.report import FORMATS

    if fmt not in FORMATS:
        raise unknown_name("format", fmt, FORMATS)
    return fmt


def convention(name: str) -> str:
    from sc_eval.metrics import get_convention

    return get_convention(name).name


def score_names(text: str | None) -> list[str]:
    from sc_eval.scores import DEFAULT_SCORES, get_score

    names = split_list(text) or list(DEFAULT_SCORES)
    for n in names:
        get_score(n)
    return names


def metric_names(text: str | None) -> list[str]:
    from sc_eval.metrics import DEFAULT_SELECTIVE, MODEL_METRICS, get_metric

    names = split_list(text) or list(DEFAULT_SELECTIVE)
    for n in names:
        if n not in MODEL_METRICS:
            get_metric(n)
    return names


def coverages(text: str | None) -> tuple[float, ...]:
    from sc_eval.metrics import parse_coverage
    from sc_eval.pipeline import DEFAULT_COVERAGES

    return tuple(parse_coverage(t) for t in split_list(text)) if text else DEFAULT_COVERAGES


def risks(text: str | None) -> tuple[float, ...]:
    from sc_eval.metrics import parse_risk
    from sc_eval.pipeline import DEFAULT_RISKS

    return tuple(parse_risk(t) for t in split_list(text)) if text else DEFAULT_RISKS


def score_params(pnorm_p: float | None, temperature: float | None) -> dict[str, dict[str, float]]:
    """Fixed parameters from ``--pnorm-p`` / ``--temperature`` for every score taking them."""
    from sc_eval.errors import UsageError
    from sc_eval.scores import SCORES

    if pnorm_p is not None and (pnorm_p < 0 or pnorm_p != pnorm_p):
        raise UsageError(f"--pnorm-p must be >= 0, got {pnorm_p}")
    if temperature is not None and not temperature > 0:
        raise UsageError(f"--temperature must be > 0, got {temperature}")
    given: dict[str, Any] = {"p": pnorm_p, "T": temperature}
    out: dict[str, dict[str, float]] = {}
    for name, s in SCORES.items():
        fixed = {k: float(v) for k, v in given.items() if v is not None and k in s.defaults}
        if fixed:
            out[name] = fixed
    return out
