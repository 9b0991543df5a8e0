"""Penultimate-layer features during inference (``sc-eval infer --features-layer NAME``).

``NAME`` is the dotted name of the network's classifier layer (``fc``,
``head``, ``classifier.1`` … — see ``model.named_modules()``); the features
are that layer's *input*, flattened to ``[N, D]``, captured by a forward
pre-hook while :func:`sc_eval.infer.predict` runs. When the layer has a 2-D
``weight`` ``[C, D]`` (a linear classifier) it is saved as ``W`` and its
``bias`` as ``b``, which ``sc-eval diagnose --features`` uses for NC3.

Works for state_dict (``--arch``) and pickled networks, and for
``torch.export`` programs (unflattened so that their submodules run as
modules). TorchScript archives cannot be hooked and are refused, as is a run
under ``torchrun`` (the features are gathered in one process only).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import numpy as np
from safetensors.numpy import save_file

from sc_eval.errors import InputError, UsageError
from sc_eval.models import check_pt2_archive, forced_weights_only
from sc_eval.outputs import atomic_output
from sc_eval.quiet import quiet

if TYPE_CHECKING:
    import torch
    from torch.utils.hooks import RemovableHandle

    from sc_eval.models import LoadedModel

__all__ = ["FeatureCapture", "default_features_path", "hook_features", "write_features"]


def default_features_path(out: str | os.PathLike[str]) -> str:
    """``preds.safetensors`` → ``preds.features.safetensors``."""
    text = str(out)
    stem = text[: -len(".safetensors")] if text.endswith(".safetensors") else text
    return f"{stem}.features.safetensors"


@dataclass
class FeatureCapture:
    """Inputs of the hooked layer, batch after batch (CPU float32), and its weights."""

    layer: str
    fixed_batch: int | None = None
    batches: list[np.ndarray] = field(default_factory=list)
    W: np.ndarray | None = None
    b: np.ndarray | None = None
    handle: RemovableHandle | None = None

    def __call__(self, module: torch.nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
        x = inputs[0]
        self.batches.append(x.detach().reshape(x.shape[0], -1).float().cpu().numpy())

    def features(self, n: int, *, path: object = None) -> np.ndarray:
        """The ``[n, D]`` features in data order; refuses anything but exactly ``n`` rows."""
        if self.handle is not None:
            self.handle.remove()
        rows = sum(b.shape[0] for b in self.batches)
        padded = rows - n
        if self.fixed_batch and 0 < padded < self.fixed_batch and self.batches:
            # a program with a static batch size saw the last batch padded with copies
            self.batches[-1] = self.batches[-1][: self.batches[-1].shape[0] - padded]
            rows = n
        if rows != n:
            raise InputError(
                f"layer '{self.layer}' saw {rows} rows for {n} samples (a batch retried after "
                "running out of memory, or the layer runs more than once per sample); try a "
                "smaller --batch-size or another --features-layer",
                path=path,
            )
        return np.concatenate(self.batches)


def _hookable(loaded: LoadedModel) -> torch.nn.Module:
    """The module whose submodules run as modules (an unflattened program for .pt2)."""
    import torch

    if loaded.kind == "torchscript":
        raise UsageError(
            "--features-layer cannot hook a TorchScript archive; pass a state_dict with --arch "
            "or a torch.export .pt2"
        )
    if loaded.kind != "export":
        return loaded.module

    check_pt2_archive(loaded.path)  # read again: check again what is read
    with forced_weights_only(True), quiet():
        program = torch.export.load(loaded.path)
        return torch.export.unflatten(program)


def hook_features(loaded: LoadedModel, layer: str) -> tuple[LoadedModel, FeatureCapture]:
    """Register a forward pre-hook on ``layer``; return the model to run and the capture.

    Raises
    ------
    UsageError
        No module of that name (the error lists a few that exist), or a
        TorchScript archive.
    """
    module = _hookable(loaded)
    names = [n for n, _ in module.named_modules() if n]
    if layer not in names:
        shown = ", ".join(names[-8:]) or "none"
        raise UsageError(
            f"--features-layer '{layer}': no such module in {loaded.path}; the last ones are "
            f"{shown}"
        )
    target = module.get_submodule(layer)
    capture = FeatureCapture(layer, loaded.fixed_batch)
    weight = getattr(target, "weight", None)
    if weight is not None and getattr(weight, "ndim", 0) == 2:
        capture.W = weight.detach().float().cpu().numpy()
        bias = getattr(target, "bias", None)
        if bias is not None:
            capture.b = bias.detach().float().cpu().numpy()
    capture.handle = target.register_forward_pre_hook(capture)
    return replace(loaded, module=module), capture


def write_features(
    path: str | os.PathLike[str],
    features: np.ndarray,
    *,
    W: np.ndarray | None = None,
    b: np.ndarray | None = None,
    labels: np.ndarray | None = None,
    metadata: dict[str, str] | None = None,
) -> None:
    """Write a features file (``features``, optional ``W``, ``b``, ``labels``) atomically."""

    tensors = {"features": np.ascontiguousarray(features, dtype=np.float32)}
    for name, value in (("W", W), ("b", b)):
        if value is not None:
            tensors[name] = np.ascontiguousarray(value, dtype=np.float32)
    if labels is not None:
        tensors["labels"] = np.ascontiguousarray(labels, dtype=np.int64)
    meta = {"format": "sc-eval/features", "version": "1", **(metadata or {})}
    with atomic_output(path) as tmp:
        save_file(tensors, str(tmp), metadata=meta)
