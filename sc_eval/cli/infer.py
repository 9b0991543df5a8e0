"""``sc-eval infer``: run a checkpoint over data and write a predictions file.

Works under ``torchrun`` (``torchrun --nproc-per-node N -m sc_eval infer …``):
every rank infers a shard, rank 0 gathers and writes; only rank 0 prints.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Annotated, Any

import typer

from sc_eval.cli import app, handle_errors
from sc_eval.cli import options as o
from sc_eval.errors import UsageError
from sc_eval.outputs import is_stream


@app.command()
@handle_errors
def infer(
    checkpoint: Annotated[
        Path,
        typer.Argument(
            metavar="CHECKPOINT",
            help="TorchScript archive, torch.export .pt2, or state_dict (.pt/.pth/.safetensors, "
            "with --arch). Detected from content; a predictions file is copied as is.",
        ),
    ],
    data: Annotated[
        Path,
        typer.Option(
            "--data",
            "-d",
            help="A tensor file (inputs [N, …], labels [N], optional index) or an image "
            "folder (one sub-folder per class).",
        ),
    ],
    out: Annotated[
        Path,
        typer.Option("--out", "-o", help="Predictions file to write (.safetensors, atomically)."),
    ],
    ood_data: Annotated[
        Path | None,
        typer.Option(
            "--ood-data",
            help="Out-of-distribution inputs, run after --data: --out holds both, the OOD "
            "samples marked (label -1, an 'ood' tensor; their own labels are ignored).",
        ),
    ] = None,
    batch_size: Annotated[
        int,
        typer.Option("--batch-size", "-b", min=1, help="Batch size (halved on out-of-memory)."),
    ] = 256,
    device: o.Device = "auto",
    amp: o.Amp = None,
    channels_last: o.ChannelsLast = False,
    compile_model: o.Compile = False,
    workers: o.Workers = None,
    arch: o.Arch = None,
    arch_kwargs: o.ArchKwargs = None,
    num_classes: o.NumClasses = None,
    state_dict_key: o.StateDictKey = None,
    trust_pickle: o.TrustPickle = False,
    image_size: o.ImageSize = 224,
    resize_size: o.ResizeSize = None,
    mean: o.Mean = None,
    std: o.Std = None,
    interpolation: o.Interpolation = "bilinear",
    progress: Annotated[
        bool, typer.Option("--progress/--no-progress", help="Progress bar on stderr.")
    ] = True,
    features_layer: Annotated[
        str | None,
        typer.Option(
            "--features-layer",
            metavar="NAME",
            help="Also save penultimate features: the input of this module (the classifier "
            "layer, e.g. fc or head), with its weight W and bias b, for `sc-eval diagnose "
            "--features`.",
        ),
    ] = None,
    features_out: Annotated[
        Path | None,
        typer.Option(
            "--features-out",
            help="Where --features-layer writes (default: OUT with .features.safetensors).",
        ),
    ] = None,
    debug: o.Debug = False,
) -> None:
    """Run CHECKPOINT over --data and write logits, labels and index to --out."""
    if out.suffix.lower() != ".safetensors" and not is_stream(out):
        raise UsageError(f"--out must name a .safetensors file, got '{out}'")
    if features_out is not None and features_layer is None:
        raise UsageError("--features-out needs --features-layer")
    if features_layer is not None:
        from sc_eval.features import default_features_path

        features_out = features_out or Path(default_features_path(out))
    o.check_outputs(out, features_out)
    main = int(os.environ.get("RANK", "0") or 0) == 0
    spec = o.model_spec(arch, arch_kwargs, num_classes, state_dict_key, trust_pickle)
    transform = o.image_transform(image_size, resize_size, mean, std, interpolation)
    options = o.infer_options(
        batch_size, device, amp, channels_last, compile_model, workers, progress
    )
    if features_layer is not None:
        from sc_eval.models import is_predictions_file

        if is_predictions_file(checkpoint):
            raise UsageError(
                f"{checkpoint} is a predictions file; --features-layer needs a model checkpoint"
            )
    if _copy_predictions(checkpoint, out, write=main):
        return
    from sc_eval.infer import infer as run

    if ood_data is not None:
        if features_layer is not None:
            raise UsageError("--features-layer with --ood-data is not supported yet")
        _infer_mixed(checkpoint, data, ood_data, out, main=main, run=run, spec=spec,
                     transform=transform, options=options)  # fmt: skip
        return
    result = run(
        checkpoint,
        data,
        out=out,
        spec=spec,
        transform=transform,
        options=options,
        features_layer=features_layer,
        features_out=features_out,
    )
    if result is not None and main:
        n, c = result.logits.shape
        typer.echo(
            f"sc-eval: wrote {out} ({n} samples, {c} classes; inference took "
            f"{result.seconds:.2f} s, {result.samples_per_second:,.0f} samples/s including "
            "data-loader start-up)",
            err=True,
        )
        if features_out is not None:
            typer.echo(
                f"sc-eval: wrote {features_out} (input of layer '{features_layer}')", err=True
            )


def _copy_predictions(source: Path, out: Path, *, write: bool) -> bool:
    """A predictions file given as the checkpoint: no inference, write it canonically."""
    from sc_eval.models import is_predictions_file

    if not is_predictions_file(source):
        return False
    if not write:
        return True
    from sc_eval.io import load_predictions, write_predictions

    preds = load_predictions(source)
    values = preds.values.full()
    write_predictions(
        out,
        labels=preds.labels,
        index=preds.index,
        metadata={**preds.metadata, "source": str(source)},
        **{preds.kind: values},  # type: ignore[arg-type]
    )
    typer.echo(f"sc-eval: {source} is already a predictions file; copied to {out}", err=True)
    return True


def _infer_mixed(
    checkpoint: Path, data: Path, ood_data: Path, out: Path, *, main: bool, run: Any, **kw: Any
) -> None:
    """``--ood-data``: infer both sets and write one predictions file, OOD rows marked."""
    import numpy as np

    from sc_eval.io import predictions_from_arrays, write_predictions
    from sc_eval.ood import mix_predictions

    parts = [run(checkpoint, d, out=None, **kw) for d in (data, ood_data)]
    if not main or parts[0] is None or parts[1] is None:
        return  # other ranks of a torchrun: rank 0 writes
    preds = [
        dataclasses.replace(
            predictions_from_arrays(r.logits, r.labels, index=r.index), metadata=r.metadata
        )
        for r in parts
    ]
    mixed = mix_predictions(*preds)
    write_predictions(
        out,
        logits=np.asarray(mixed.values.full()),
        labels=mixed.labels,
        index=mixed.index,
        metadata={**mixed.metadata, "ood_data": str(ood_data)},
        ood=mixed.ood,
    )
    n_id, n_ood = preds[0].n, preds[1].n
    seconds = parts[0].seconds + parts[1].seconds
    typer.echo(
        f"sc-eval: wrote {out} ({n_id} ID + {n_ood} OOD samples, {mixed.num_classes} classes; "
        f"inference took {seconds:.2f} s)",
        err=True,
    )
