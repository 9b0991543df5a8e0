"""Option declarations shared by several commands (Annotated aliases), and the
helpers that turn their raw strings into library arguments."""

from __future__ import annotations

import functools
import inspect
import json
import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from sc_eval.cli import split_list
from sc_eval.errors import UsageError, unknown_name
from sc_eval.outputs import check_appendable, check_output_path, check_replaceable
from sc_eval.progress import enabled

if TYPE_CHECKING:  # annotations only: the command bodies import what they use
    import numpy as np

    from sc_eval.data import ImageTransform
    from sc_eval.infer import InferOptions
    from sc_eval.io import Predictions
    from sc_eval.models import ModelSpec
    from sc_eval.pipeline import Evaluation, ScoredSamples
    from sc_eval.sources import CheckpointOptions, KeyOptions

F = TypeVar("F", bound=Callable[..., Any])

Scores = Annotated[
    list[str] | None,
    typer.Option(
        "--scores",
        "-s",
        help="Comma-separated confidence scores (default: the default set; see `sc-eval list`).",
    ),
]
Metrics = Annotated[
    list[str] | None,
    typer.Option(
        "--metrics",
        "-m",
        help="Comma-separated selective metrics (default: aurc, "
        "e-aurc, naurc, augrc, auroc, fpr@95tpr).",
    ),
]
Coverages = Annotated[
    list[str] | None,
    typer.Option(
        "--coverages",
        help="Coverages in (0, 1] for the risk–coverage table "
        "(default: 1,0.99,0.95,0.9,0.8,0.7,0.5).",
    ),
]
Risks = Annotated[
    list[str] | None,
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
    str,
    typer.Option("--format", "-f", help="Output format: table | json | csv | markdown | html."),
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
OodKey = Annotated[
    str,
    typer.Option(
        "--ood-key",
        help="Name of an optional boolean [N] tensor marking out-of-distribution samples "
        "(label -1 marks them too; see docs/ood.md).",
    ),
]
OodCost = Annotated[
    float,
    typer.Option(
        "--ood-cost",
        metavar="BETA",
        help="On test sets with OOD samples: the SCOD cost of accepting an OOD sample, a "
        "misclassification costing 1 (Xia & Bouganis 2022). AUROC/FPR@95TPR ignore it.",
    ),
]
ChunkSize = Annotated[
    int | None,
    typer.Option(
        "--chunk-size",
        min=1,
        help="Rows scored at a time (default: ~4 MiB of float64, less when memory is short).",
    ),
]
Debug = Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")]
ProgressBars = Annotated[
    bool,
    typer.Option(
        "--progress/--no-progress",
        help="Progress bars on stderr for long steps (bootstrap, tuning, scoring big files); "
        "only on a terminal, never on stdout.",
    ),
]
NanPolicy = Annotated[
    str,
    typer.Option(
        "--nan-policy",
        metavar="refuse|drop|rank-last",
        help="Rows with NaN/Inf values: refuse (error with the count and first row), drop "
        "(evaluate the other rows), rank-last (keep them as errors, rejected first). "
        "Dropped or kept rows are counted in the notes and warned about.",
    ),
]
Seed = Annotated[
    int,
    typer.Option(
        "--seed", min=0, help="Seed of every random step (bootstrap resamples, tuning split)."
    ),
]
TuneSplit = Annotated[
    float | None,
    typer.Option(
        "--tune-split",
        metavar="FRACTION",
        help="Tune maxlogit-pnorm / msp-pnorm / msp-ts on this seeded random fraction of "
        "each input (e.g. 0.1); every score is then reported on the other samples only.",
    ),
]
Tune = Annotated[
    bool,
    typer.Option("--tune", help="Same as --tune-split 0.1 (tune on a random 10% of the input)."),
]
Val = Annotated[
    Path | None,
    typer.Option(
        "--val",
        metavar="FILE",
        help="Tune on this separate predictions file (same classes) instead of a split; "
        "the inputs are then evaluated whole.",
    ),
]
Vals = Annotated[
    list[Path] | None,
    typer.Option(
        "--val",
        metavar="FILE",
        help="Validation predictions of one model, to tune on instead of a split; give it once "
        "per source, in the order of the sources (each model is tuned on its own file); the "
        "inputs are then evaluated whole.",
    ),
]


def per_source_vals(
    sources: list[Path],
    vals: list[Path] | None,
    tune: bool,
    tune_split: float | None,
    keys: KeyOptions,
) -> list[Predictions] | None:
    """One validation source per input (``--val`` repeated in order), or None.

    Validation files belong to one model: one model's logits must not tune another's
    scores, so the count must match the sources.
    """
    from sc_eval.sources import load_source

    given = list(vals or [])
    if not given:
        return None
    if tune or tune_split is not None:
        raise UsageError("give only one of --val and --tune/--tune-split")
    if len(given) != len(sources):
        raise UsageError(
            f"give one --val per source, in the order of the sources: {len(sources)} "
            f"source{'s' if len(sources) != 1 else ''}, {len(given)} --val "
            f"file{'s' if len(given) != 1 else ''} (validation files are per model: one "
            "model's logits do not tune another's scores)"
        )
    for source, val in zip(sources, given, strict=True):
        if os.path.exists(source) and os.path.exists(val) and os.path.samefile(source, val):
            warnings.warn(
                f"--val {val} is the evaluated file itself: tuning on the test samples makes "
                "the tuned scores look better than they are",
                stacklevel=2,
            )
    return [load_source(v, keys=keys) for v in given]


Bootstrap = Annotated[
    int,
    typer.Option(
        "--bootstrap",
        min=0,
        max=10_000_000,
        help="Bootstrap resamples for percentile intervals (0 = none).",
    ),
]
Confidence = Annotated[
    float,
    typer.Option("--confidence", min=0.5, max=0.9999, help="Coverage of the bootstrap intervals."),
]
Plot = Annotated[
    Path | None,
    typer.Option(
        "--plot",
        help="Also draw risk–coverage and generalised-risk curves (with the oracle) to "
        "this .png or .svg file (needs: pip install 'sc-eval[plot]').",
    ),
]
By = Annotated[
    str | None,
    typer.Option(
        "--by",
        help="Per-slice tables instead: 'class' (true label) or 'group' (needs --groups-key).",
    ),
]
GroupsKey = Annotated[
    str | None,
    typer.Option(
        "--groups-key", help="Name of a 1-D integer/string vector in the file to slice by."
    ),
]
AtCoverage = Annotated[
    float,
    typer.Option(
        "--at-coverage",
        help="With --by: global coverage of the one threshold at which each slice's "
        "coverage and selective risk are read.",
    ),
]


def check_outputs(
    *paths: Path | None,
    plot: Path | None = None,
    appended: str | None = None,
    replaced: Path | None = None,
) -> None:
    """Validate every output before any work: each path (directory exists and takes a
    file, not a directory, not one of the inputs, not named twice), a file that is
    ``appended`` to (``$GITHUB_STEP_SUMMARY``) and an input that is ``replaced``
    (``--update-baseline``).

    A ``plot`` path is also checked for a known suffix and an installed matplotlib.
    """
    given = [p for p in (*paths, plot) if p is not None]
    for path in given:
        check_output_path(path)
    seen: dict[str, Path] = {}
    for path in given:
        key = os.path.realpath(path)
        if key in seen:
            raise UsageError(f"two outputs name the same file: {seen[key]} and {path}")
        seen[key] = path
    if appended:
        check_appendable(appended)
    if replaced is not None:
        check_replaceable(replaced)
    if plot is not None:
        from sc_eval.plot import check_plot_path

        check_plot_path(plot)


def plot_models(
    plot: Path, models: list[tuple[str, ScoredSamples, np.ndarray | None, Evaluation]]
) -> None:
    """Draw ``(name, scored samples, OOD mask, evaluation)`` of each model to ``plot``:
    the SCOD and ID-only curves of a mixed set, the tuned parameters in the legend."""
    from sc_eval.ood import plot_series
    from sc_eval.plot import plot_risk_coverage

    series = [(plot_series(name, s, ood), ev) for name, s, ood, ev in models]
    plot_risk_coverage(
        [curve for curves, _ in series for curve in curves],
        plot,
        announce=True,
        params=[
            {n: r.params for n, r in ev.scores.items()} for curves, ev in series for _ in curves
        ],
    )


def check_format(fmt: str, result_type: type | None = None) -> str:
    """``fmt`` if ``result_type`` (default: an evaluation) renders in it, else a UsageError
    with a "did you mean" (exit 2)."""
    from sc_eval.pipeline import Evaluation
    from sc_eval.render import formats_for

    known = formats_for(result_type or Evaluation)
    if fmt not in known:
        raise unknown_name("format", fmt, known)
    return fmt


def nan_policy(name: str) -> str:
    from sc_eval.pipeline import get_nan_policy

    return get_nan_policy(name).name


def convention(name: str) -> str:
    from sc_eval.metrics import get_convention

    return get_convention(name).name


def joined(values: str | list[str] | None) -> str | None:
    """A repeatable list option's values as one comma list (``-s msp -s gini`` is
    ``-s msp,gini``); None when the option was not given."""
    if values is None or isinstance(values, str):
        return values
    return ",".join(values) if values else None


def score_names(text: str | list[str] | None) -> tuple[str, ...] | None:
    """Validated ``--scores``; None when not given (the default set for the input kind)."""
    from sc_eval.scores import get_score

    text = joined(text)
    names = split_list(text)
    if text is not None and not names:
        raise UsageError("--scores: empty list (name scores, e.g. msp,maxlogit; see sc-eval list)")
    for n in names:
        get_score(n)
    return tuple(names) if names else None


def metric_names(text: str | list[str] | None) -> list[str]:
    from sc_eval.metrics import DEFAULT_SELECTIVE, MODEL_METRICS, get_metric

    names = split_list(joined(text)) or list(DEFAULT_SELECTIVE)
    for n in names:
        if n not in MODEL_METRICS:
            get_metric(n)
    return names


def coverages(text: str | list[str] | None) -> tuple[float, ...]:
    from sc_eval.metrics import parse_coverage
    from sc_eval.pipeline import DEFAULT_COVERAGES

    text = joined(text)
    return (
        _fractions("--coverages", parse_coverage, text) if text is not None else (DEFAULT_COVERAGES)
    )


def risks(text: str | list[str] | None) -> tuple[float, ...]:
    from sc_eval.metrics import parse_risk
    from sc_eval.pipeline import DEFAULT_RISKS

    text = joined(text)
    return _fractions("--risks", parse_risk, text) if text is not None else DEFAULT_RISKS


def _fractions(option: str, parse: Callable[[str], float], text: str) -> tuple[float, ...]:
    """Each comma-separated value parsed; an error names the option."""
    values = split_list(text)
    if len(values) != len(text.split(",")):
        raise UsageError(f"{option}: empty value in '{text}' (give comma-separated numbers)")
    try:
        return tuple(parse(t) for t in values)
    except UsageError as e:
        raise UsageError(f"{option}: {e}") from None


def score_params(pnorm_p: float | None, temperature: float | None) -> dict[str, dict[str, float]]:
    """Fixed parameters from ``--pnorm-p`` / ``--temperature`` for every score taking them."""
    from sc_eval.scores import SCORES

    if pnorm_p is not None and (pnorm_p < 0 or pnorm_p != pnorm_p):
        raise UsageError(f"--pnorm-p must be >= 0, got {pnorm_p}")
    if temperature is not None and not temperature > 0:
        raise UsageError(f"--temperature must be > 0, got {temperature}")
    given: dict[str, float | None] = {"p": pnorm_p, "T": temperature}
    out: dict[str, dict[str, float]] = {}
    for name, s in SCORES.items():
        fixed = {k: float(v) for k, v in given.items() if v is not None and k in s.defaults}
        if fixed:
            out[name] = fixed
    return out


def tuning_options(
    tune: bool, tune_split: float | None, val: Path | None, keys: KeyOptions
) -> dict[str, Any]:
    """``--tune`` / ``--tune-split`` / ``--val`` → the ``tune_split`` and ``val`` of
    :class:`~sc_eval.pipeline.EvalOptions` (at most one of the three).

    ``compare`` passes its first ``--val`` here only to check the combination; its
    validation files are per model (:func:`sc_eval.comparison.compare`'s ``vals``)."""
    from sc_eval.tuning import DEFAULT_TUNE_FRACTION

    flags = (("--tune", tune), ("--tune-split", tune_split is not None), ("--val", val is not None))
    given = [name for name, on in flags if on]
    if len(given) > 1:
        raise UsageError(f"give only one of {' and '.join(given)}")
    if tune:
        tune_split = DEFAULT_TUNE_FRACTION
    if tune_split is not None and not 0.0 < tune_split < 1.0:
        raise UsageError(f"--tune-split must be a fraction in (0, 1), got {tune_split}")
    if val is None:
        return {"tune_split": tune_split, "val": None}
    from sc_eval.sources import load_source

    return {"tune_split": None, "val": load_source(val, keys=keys)}


# --------------------------------------------------------------------------- checkpoints
# Options of commands that accept model checkpoints as sources (run on --data,
# predictions cached). `with_checkpoint_options` adds them all to a command and
# hands the command one `checkpoint` argument (a CheckpointOptions or None).
_CKPT = "Checkpoints (inference on --data)"
Data = Annotated[
    Path | None,
    typer.Option(
        "--data",
        help="Inputs for checkpoint sources: a tensor file (inputs, labels) or an image "
        "folder (one sub-folder per class).",
        rich_help_panel=_CKPT,
    ),
]
OodData = Annotated[
    Path | None,
    typer.Option(
        "--ood-data",
        help="Out-of-distribution inputs (classes the model never saw) run after --data: the "
        "predictions hold both, the OOD samples marked (label -1; their labels are ignored).",
        rich_help_panel=_CKPT,
    ),
]
Arch = Annotated[
    str | None,
    typer.Option(
        "--arch",
        help="Network for state_dict checkpoints: timm:NAME, torchvision:NAME or "
        "package.module:callable.",
        rich_help_panel=_CKPT,
    ),
]
ArchKwargs = Annotated[
    str | None,
    typer.Option(
        "--arch-kwargs", help="JSON object of keyword arguments for --arch.", rich_help_panel=_CKPT
    ),
]
NumClasses = Annotated[
    int | None,
    typer.Option(
        "--num-classes", min=2, help="Passed to --arch as num_classes.", rich_help_panel=_CKPT
    ),
]
StateDictKey = Annotated[
    str | None,
    typer.Option(
        "--state-dict-key",
        help="Entry of the checkpoint dict holding the weights, e.g. state_dict_ema "
        "(default: state_dict, model, … or the dict itself).",
        rich_help_panel=_CKPT,
    ),
]
TrustPickle = Annotated[
    bool,
    typer.Option(
        "--trust-pickle",
        help="Allow checkpoints holding pickled Python objects (e.g. a whole nn.Module). "
        "Unpickling runs code from the file: only for files you trust.",
        rich_help_panel=_CKPT,
    ),
]
BatchSize = Annotated[
    int,
    typer.Option(
        "--batch-size", min=1, help="Inference batch size (halved on out-of-memory).",
        rich_help_panel=_CKPT,
    ),
]  # fmt: skip
Device = Annotated[
    str,
    typer.Option("--device", help="auto | cpu | cuda | cuda:INDEX.", rich_help_panel=_CKPT),
]
Amp = Annotated[
    str | None,
    typer.Option("--amp", help="Autocast dtype: bf16 | fp16.", rich_help_panel=_CKPT),
]
ChannelsLast = Annotated[
    bool,
    typer.Option(
        "--channels-last", help="Channels-last memory format for 4-D inputs.",
        rich_help_panel=_CKPT,
    ),
]  # fmt: skip
Compile = Annotated[
    bool, typer.Option("--compile", help="torch.compile the network.", rich_help_panel=_CKPT)
]
Workers = Annotated[
    int | None,
    typer.Option(
        "--workers",
        min=0,
        max=256,
        help="DataLoader worker processes (default: 0 for tensor files, up to 8 for images).",
        rich_help_panel=_CKPT,
    ),
]
ImageSize = Annotated[
    int,
    typer.Option(
        "--image-size", min=1, help="Centre-crop size for image folders.", rich_help_panel=_CKPT
    ),
]
ResizeSize = Annotated[
    int | None,
    typer.Option(
        "--resize-size",
        min=1,
        help="Shorter side before the crop (default: image size / 0.875).",
        rich_help_panel=_CKPT,
    ),
]
Mean = Annotated[
    str | None,
    typer.Option(
        "--mean", help="Normalisation mean, e.g. 0.5,0.5,0.5 (default: ImageNet).",
        rich_help_panel=_CKPT,
    ),
]  # fmt: skip
Std = Annotated[
    str | None,
    typer.Option(
        "--std", help="Normalisation std (default: ImageNet).", rich_help_panel=_CKPT
    ),
]  # fmt: skip
Interpolation = Annotated[
    str,
    typer.Option(
        "--interpolation", help="Resize filter: bilinear | bicubic | nearest | lanczos.",
        rich_help_panel=_CKPT,
    ),
]  # fmt: skip
CacheDir = Annotated[
    Path | None,
    typer.Option(
        "--cache-dir",
        help="Where checkpoint predictions are cached (default: $SC_EVAL_CACHE, else "
        "$XDG_CACHE_HOME/sc-eval, else ~/.cache/sc-eval).",
        rich_help_panel=_CKPT,
    ),
]
NoCache = Annotated[
    bool,
    typer.Option(
        "--no-cache", help="Always run inference; do not read or write the cache.",
        rich_help_panel=_CKPT,
    ),
]  # fmt: skip
#: Annotation of the ``checkpoint`` parameter that :func:`with_checkpoint_options` fills.
CheckpointArg = Any

CHECKPOINT_PARAMS: tuple[tuple[str, object, object], ...] = (
    ("data", Data, None),
    ("ood_data", OodData, None),
    ("arch", Arch, None),
    ("arch_kwargs", ArchKwargs, None),
    ("num_classes", NumClasses, None),
    ("state_dict_key", StateDictKey, None),
    ("trust_pickle", TrustPickle, False),
    ("batch_size", BatchSize, 256),
    ("device", Device, "auto"),
    ("amp", Amp, None),
    ("channels_last", ChannelsLast, False),
    ("compile_model", Compile, False),
    ("workers", Workers, None),
    ("image_size", ImageSize, 224),
    ("resize_size", ResizeSize, None),
    ("mean", Mean, None),
    ("std", Std, None),
    ("interpolation", Interpolation, "bilinear"),
    ("cache_dir", CacheDir, None),
    ("no_cache", NoCache, False),
)


def floats(text: str | None, option: str) -> tuple[float, ...] | None:
    """``"0.5, 0.5,0.5"`` → ``(0.5, 0.5, 0.5)``; None stays None."""
    if text is None:
        return None
    try:
        return tuple(float(t) for t in split_list(text))
    except ValueError:
        raise UsageError(f"{option} expects comma-separated numbers, got '{text}'") from None


def model_spec(
    arch: str | None = None,
    arch_kwargs: str | None = None,
    num_classes: int | None = None,
    state_dict_key: str | None = None,
    trust_pickle: bool = False,
) -> ModelSpec:
    """A :class:`sc_eval.models.ModelSpec` from the raw option values."""
    from sc_eval.models import ModelSpec

    kwargs: dict[str, Any] = {}
    if arch_kwargs:
        try:
            kwargs = json.loads(arch_kwargs)
        except json.JSONDecodeError as e:
            raise UsageError(f"--arch-kwargs is not valid JSON: {e}") from None
        if not isinstance(kwargs, dict):
            raise UsageError(f"--arch-kwargs must be a JSON object, got {arch_kwargs!r}")
    return ModelSpec(arch, kwargs, num_classes, state_dict_key, trust_pickle)


def image_transform(
    image_size: int = 224,
    resize_size: int | None = None,
    mean: str | None = None,
    std: str | None = None,
    interpolation: str = "bilinear",
) -> ImageTransform:
    """A :class:`sc_eval.data.ImageTransform` from the raw option values."""
    from sc_eval.data import IMAGENET_MEAN, IMAGENET_STD, ImageTransform

    return ImageTransform(
        image_size,
        resize_size,
        floats(mean, "--mean") or IMAGENET_MEAN,
        floats(std, "--std") or IMAGENET_STD,
        interpolation.lower(),
    )


def infer_options(
    batch_size: int = 256,
    device: str = "auto",
    amp: str | None = None,
    channels_last: bool = False,
    compile_model: bool = False,
    workers: int | None = None,
    progress: bool = True,
) -> InferOptions:
    """A :class:`sc_eval.infer.InferOptions` from the raw option values."""
    from sc_eval.infer import InferOptions

    amp = amp.lower() if amp else None
    return InferOptions(batch_size, device, amp, channels_last, compile_model, workers, progress)


def checkpoint_options(
    data: Path | None = None,
    *,
    ood_data: Path | None = None,
    arch: str | None = None,
    arch_kwargs: str | None = None,
    num_classes: int | None = None,
    state_dict_key: str | None = None,
    trust_pickle: bool = False,
    batch_size: int = 256,
    device: str = "auto",
    amp: str | None = None,
    channels_last: bool = False,
    compile_model: bool = False,
    workers: int | None = None,
    image_size: int = 224,
    resize_size: int | None = None,
    mean: str | None = None,
    std: str | None = None,
    interpolation: str = "bilinear",
    cache_dir: Path | None = None,
    no_cache: bool = False,
) -> CheckpointOptions | None:
    """A :class:`sc_eval.sources.CheckpointOptions` (None without ``--data``)."""
    if data is None:
        if ood_data is not None:
            raise UsageError("--ood-data needs --data (the in-distribution inputs)")
        return None
    from sc_eval.sources import CheckpointOptions

    return CheckpointOptions(
        data=data,
        ood_data=ood_data,
        model=model_spec(arch, arch_kwargs, num_classes, state_dict_key, trust_pickle),
        transform=image_transform(image_size, resize_size, mean, std, interpolation),
        run=infer_options(batch_size, device, amp, channels_last, compile_model, workers),
        cache_dir=cache_dir,
        use_cache=not no_cache,
    )


def with_checkpoint_options(fn: Any) -> Any:
    """Give a command every checkpoint option (in their own help panel) and call it with
    ``checkpoint=`` a :class:`~sc_eval.sources.CheckpointOptions` (None without
    ``--data``) instead.

    The command declares ``checkpoint: o.CheckpointArg = None``; the options are
    inserted before its ``debug`` parameter (or at the end).
    """
    sig = inspect.signature(fn, eval_str=True)
    kept = [p for p in sig.parameters.values() if p.name != "checkpoint"]
    added = [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=ann)
        for name, ann, default in CHECKPOINT_PARAMS
    ]
    at = next((i for i, p in enumerate(kept) if p.name == "debug"), len(kept))
    kept = [
        p.replace(kind=inspect.Parameter.KEYWORD_ONLY)
        if p.kind == inspect.Parameter.POSITIONAL_OR_KEYWORD and i >= at
        else p
        for i, p in enumerate(kept)
    ]
    params = kept[:at] + added + kept[at:]
    names = [name for name, _, _ in CHECKPOINT_PARAMS]

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        given = {name: kwargs.pop(name) for name in names if name in kwargs}
        kwargs["checkpoint"] = checkpoint_options(**given)
        return fn(*args, **kwargs)

    wrapper.__signature__ = sig.replace(parameters=params)  # type: ignore[attr-defined]
    wrapper.__annotations__ = {p.name: p.annotation for p in params}
    return wrapper


# --------------------------------------------------------------------------- option bundles
# Options that several commands share, declared once: a command names one placeholder
# parameter (``keys: o.KeysArg = None``, ``evaluation: o.EvaluationArg = None``) and
# its decorator puts the bundle's options in its place, then calls the command with
# the placeholder set to what the options build. A new shared option is one line here.
#: Annotation of the ``keys`` parameter that :func:`with_keys` fills (a KeyOptions).
KeysArg = Any
#: Annotation of the ``evaluation`` parameter that :func:`with_evaluation` fills.
EvaluationArg = Any

KEY_PARAMS: tuple[tuple[str, object, object], ...] = (
    ("logits_key", LogitsKey, None),
    ("probs_key", ProbsKey, None),
    ("labels_key", LabelsKey, "labels"),
    ("index_key", IndexKey, "index"),
    ("ood_key", OodKey, "ood"),
)

EVALUATION_PARAMS: tuple[tuple[str, object, object], ...] = (
    ("aurc_convention", Convention, "mean"),
    ("pnorm_p", PnormP, None),
    ("temperature", Temperature, None),
    ("ood_cost", OodCost, 1.0),
    ("chunk_size", ChunkSize, None),
    ("nan_policy", NanPolicy, "refuse"),
)


def key_options(
    logits_key: str | None = None,
    probs_key: str | None = None,
    labels_key: str = "labels",
    index_key: str = "index",
    ood_key: str = "ood",
) -> KeyOptions:
    """A :class:`sc_eval.sources.KeyOptions` from the ``--*-key`` options."""
    from sc_eval.sources import KeyOptions

    return KeyOptions(logits_key, probs_key, labels_key, index_key, ood_key)


def evaluation_options(
    aurc_convention: str = "mean",
    pnorm_p: float | None = None,
    temperature: float | None = None,
    ood_cost: float = 1.0,
    chunk_size: int | None = None,
    nan_policy: str = "refuse",
) -> dict[str, Any]:
    """The options of :data:`EVALUATION_PARAMS` as keyword arguments of
    :class:`~sc_eval.pipeline.EvalOptions` (and of :func:`sc_eval.gate.run_gate`)."""
    from sc_eval.pipeline import get_nan_policy

    return {
        "convention": convention(aurc_convention),
        "params": score_params(pnorm_p, temperature),
        "ood_cost": ood_cost,
        "chunk_size": chunk_size,
        "nan_policy": get_nan_policy(nan_policy).name,
    }


def _bundle(
    placeholder: str, params: tuple[tuple[str, object, object], ...], build: Callable[..., object]
) -> Callable[[F], F]:
    """A decorator putting ``params`` in place of the command's ``placeholder`` parameter
    and calling the command with ``placeholder=build(**their values)``."""
    names = [name for name, _, _ in params]

    def decorate(fn: Any) -> Any:
        sig = inspect.signature(fn, eval_str=True)
        kept = list(sig.parameters.values())
        at = next(i for i, p in enumerate(kept) if p.name == placeholder)
        added = [
            inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=ann)
            for name, ann, default in params
        ]
        after = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in kept[at + 1 :]]
        new = [*kept[:at], *added, *after]

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            given = {name: kwargs.pop(name) for name in names if name in kwargs}
            kwargs[placeholder] = build(**given)
            return fn(*args, **kwargs)

        wrapper.__signature__ = sig.replace(parameters=new)  # type: ignore[attr-defined]
        wrapper.__annotations__ = {p.name: p.annotation for p in new}
        return wrapper

    return decorate


#: ``--logits-key``, ``--probs-key``, ``--labels-key``, ``--index-key``, ``--ood-key`` in
#: place of the command's ``keys`` parameter, which gets a KeyOptions.
with_keys: Callable[[Any], Any] = _bundle("keys", KEY_PARAMS, key_options)
#: ``--aurc-convention``, ``--pnorm-p``, ``--temperature``, ``--ood-cost``,
#: ``--chunk-size``, ``--nan-policy`` in place of the command's ``evaluation`` parameter,
#: which gets :func:`evaluation_options`' keyword arguments.
with_evaluation: Callable[[Any], Any] = _bundle("evaluation", EVALUATION_PARAMS, evaluation_options)


def with_progress(fn: Any) -> Any:
    """Give a command ``--progress/--no-progress`` (before its ``debug`` parameter) and
    run it with progress bars on or off (:func:`sc_eval.progress.enabled`)."""
    sig = inspect.signature(fn, eval_str=True)
    kept = list(sig.parameters.values())
    at = next((i for i, p in enumerate(kept) if p.name == "debug"), len(kept))
    option = inspect.Parameter(
        "progress", inspect.Parameter.KEYWORD_ONLY, default=True, annotation=ProgressBars
    )
    params = (
        kept[:at] + [option] + [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in kept[at:]]
    )

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with enabled(kwargs.pop("progress", True)):
            return fn(*args, **kwargs)

    wrapper.__signature__ = sig.replace(parameters=params)  # type: ignore[attr-defined]
    wrapper.__annotations__ = {p.name: p.annotation for p in params}
    return wrapper
