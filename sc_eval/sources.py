"""Sources: what a user names on the command line, resolved to :class:`Predictions`.

A source is a predictions file, or a model checkpoint that is run over
``--data`` (:mod:`sc_eval.infer`) with its predictions cached under the cache
directory (:mod:`sc_eval.cache`), keyed by the checkpoint's SHA-256, the
data's SHA-256 and the options that change the logits (architecture and its
source file, ``--arch-kwargs``, ``--num-classes``, ``--state-dict-key``, the
image transform, ``--amp``). Device, batch size, channels-last and compile
change the logits only by float rounding and are not part of the key. A
cache hit reads one safetensors file and never imports torch.

Predictions files keep their exact behaviour: a file is treated as a
checkpoint only when its content says it is a model (see :func:`_model_kind`).
"""

from __future__ import annotations

import dataclasses
import os
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from sc_eval.cache import cache_key, default_cache_dir, file_sha256, is_cache_file, memo_digest
from sc_eval.data import ImageTransform, open_data
from sc_eval.errors import InputError, UsageError
from sc_eval.infer import InferOptions, infer
from sc_eval.io import (
    Predictions,
    load_predictions,
    predictions_from_arrays,
    read_arrays,
    write_predictions,
)
from sc_eval.models import ModelSpec, checkpoint_kind, torch_file_content
from sc_eval.ood import mix_predictions

__all__ = ["CheckpointOptions", "KeyOptions", "load_source"]


@dataclass(frozen=True)
class KeyOptions:
    """Tensor names to read from predictions files."""

    logits_key: str | None = None
    probs_key: str | None = None
    labels_key: str = "labels"
    index_key: str = "index"
    ood_key: str = "ood"


@dataclass(frozen=True)
class CheckpointOptions:
    """How a checkpoint source becomes predictions.

    Attributes
    ----------
    data : Path or None
        Tensor file or image folder to run the checkpoint on (``--data``);
        without it a checkpoint source is an error.
    model : ModelSpec
        ``--arch`` and friends, ``--trust-pickle``.
    transform : ImageTransform or None
        For image folders.
    run : InferOptions
        Batch size, device, AMP, …
    cache_dir : Path or None
        Where predictions are cached; None means :func:`default_cache_dir`.
    use_cache : bool
        False: always infer, store nothing.
    verbose : bool
        Say on stderr whether the cache was hit.
    """

    data: Path | None = None
    model: ModelSpec = field(default_factory=ModelSpec)
    #: OOD inputs run after ``data``; the predictions hold both (see sc_eval.ood)
    ood_data: Path | None = None
    transform: ImageTransform | None = None
    run: InferOptions = field(default_factory=InferOptions)
    cache_dir: Path | None = None
    use_cache: bool = True
    verbose: bool = True

    def resolved_cache_dir(self) -> Path | None:
        if not self.use_cache:
            return None

        return Path(self.cache_dir).expanduser() if self.cache_dir else default_cache_dir()


def load_source(
    path: str | os.PathLike[str],
    *,
    keys: KeyOptions = KeyOptions(),
    checkpoint: CheckpointOptions | None = None,
) -> Predictions:
    """Resolve one command-line source to validated predictions.

    Parameters
    ----------
    path : path-like
        A predictions file, or a model checkpoint (TorchScript, ``.pt2``,
        state_dict with ``checkpoint.model.arch``).
    keys : KeyOptions
        Tensor names in predictions files.
    checkpoint : CheckpointOptions, optional
        How to run a checkpoint; needs ``data``.

    Raises
    ------
    InputError
        Bad predictions file, or a checkpoint without ``--data``.
    """
    kind = _model_kind(path, keys, pickles=checkpoint is not None and checkpoint.data is not None)
    if kind is None:
        return load_predictions(
            path,
            logits_key=keys.logits_key,
            probs_key=keys.probs_key,
            labels_key=keys.labels_key,
            index_key=keys.index_key,
            ood_key=keys.ood_key,
        )
    if checkpoint is None or checkpoint.data is None:
        raise InputError(
            f"is a model checkpoint ({kind}), not a predictions file; pass --data to run "
            "inference on it",
            path=path,
        )
    preds = _infer_cached(Path(path), checkpoint)
    if checkpoint.ood_data is None:
        return preds
    ood_opts = dataclasses.replace(checkpoint, data=checkpoint.ood_data, ood_data=None)
    return mix_predictions(preds, _infer_cached(Path(path), ood_opts))


_KIND_NAMES = {
    "torchscript": "TorchScript archive",
    "export": "torch.export program",
    "safetensors": "safetensors weights",
    "torch": "torch.save checkpoint",
}


def _model_kind(
    path: str | os.PathLike[str], keys: KeyOptions, *, pickles: bool = False
) -> str | None:
    """A description of the model checkpoint at ``path``, or None when it is (or may be)
    a predictions file, which :func:`load_predictions` then reads or reports on.

    Zip and safetensors files are told apart without torch (a safetensors file
    is weights when it has neither the predictions nor the labels tensor); a
    ``torch.save`` file is opened with ``weights_only=True``. One holding
    pickled objects counts as a model only when ``pickles`` (inference was
    asked for, so the refusal can name ``--trust-pickle``).
    """

    try:
        kind = checkpoint_kind(path)
        if kind == "safetensors":
            names = set(read_arrays(path)[0])
            wanted = {keys.logits_key, keys.probs_key, keys.labels_key} - {None}
            if names & wanted:
                return None
        elif kind == "torch":
            content = torch_file_content(path, logits_key=keys.logits_key, probs_key=keys.probs_key)
            if content == "predictions" or (content == "pickle" and not pickles):
                return None
    except InputError:
        return None
    return _KIND_NAMES.get(kind)


def _note(opts: CheckpointOptions, message: str) -> None:
    if opts.verbose:
        sys.stderr.write(f"sc-eval: {message}\n")
        sys.stderr.flush()


def _infer_cached(path: Path, opts: CheckpointOptions) -> Predictions:
    """Predictions of ``path`` on ``opts.data``, from the cache when possible."""

    assert opts.data is not None
    if int(os.environ.get("WORLD_SIZE", "1") or 1) > 1:
        raise UsageError(
            "checkpoint sources are not inferred under torchrun; run "
            "`torchrun … -m sc_eval infer CHECKPOINT --data … --out preds.safetensors` "
            "and pass the predictions file"
        )
    cache_dir = opts.resolved_cache_dir()
    if cache_dir is None:
        result = infer(path, opts.data, spec=opts.model, transform=opts.transform, options=opts.run)
        assert result is not None
        preds = predictions_from_arrays(result.logits, result.labels, index=result.index)
        return dataclasses.replace(preds, path=str(path), metadata=result.metadata)
    data = open_data(opts.data, transform=opts.transform)
    fields = {
        "checkpoint_sha256": memo_digest([path], lambda: file_sha256(path), cache_dir=cache_dir),
        "data_sha256": data.sha256(cache_dir=cache_dir),
        "amp": opts.run.amp,
        **data.cache_fields(),
    }
    if checkpoint_kind(path) not in ("torchscript", "export"):  # programs ignore --arch & co
        fields.update(opts.model.cache_fields())
    target = cache_dir / "predictions" / f"{cache_key(fields)}.safetensors"

    if is_cache_file(target):
        try:
            preds = load_predictions(target)
        except InputError:
            _note(opts, f"ignoring unreadable cache entry {target}")
        else:
            _note(opts, f"{path}: cached predictions {target}")
            return dataclasses.replace(preds, path=str(path))
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise InputError(
            f"cannot create the cache directory: {e.strerror or e}; pass --cache-dir or --no-cache",
            path=target.parent,
        ) from None

    _note(opts, f"{path}: running inference on {opts.data}")
    result = infer(
        path,
        opts.data,
        out=None,
        spec=opts.model,
        transform=opts.transform,
        options=opts.run,
        cache_dir=cache_dir,
    )
    if result is None:  # pragma: no cover - only rank 0 of a distributed run gets results
        raise InputError("inference returned no predictions on this rank", path=path)
    try:  # the cache is not one of the command's outputs: written now, and only if it can be
        write_predictions(
            target,
            logits=result.logits,
            labels=result.labels,
            index=result.index,
            metadata=result.metadata,
            cache=True,
        )
        _note(opts, f"{path}: predictions cached in {target}")
    except InputError as e:
        warnings.warn(f"predictions not cached ({e}); continuing without the cache", stacklevel=2)
    preds = predictions_from_arrays(result.logits, result.labels, index=result.index)
    return dataclasses.replace(preds, path=str(path), metadata=dict(result.metadata))
