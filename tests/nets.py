"""Tiny networks for the inference tests, importable as ``tests.nets:build_mlp`` /
``tests.nets:build_convnet`` by ``--arch``, plus builders of checkpoint files."""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import nn

IN_FEATURES = 6
NUM_CLASSES = 4


class MLP(nn.Module):
    def __init__(self, in_features: int = IN_FEATURES, hidden: int = 16, num_classes: int = 4):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(in_features, hidden), nn.ReLU())
        self.head = nn.Linear(hidden, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


class ConvNet(nn.Module):
    def __init__(self, in_channels: int = 3, width: int = 8, num_classes: int = 5):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, width, 3, padding=1)
        self.bn = nn.BatchNorm2d(width)
        self.fc = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn(self.conv(x)))
        return self.fc(x.mean(dim=(2, 3)))


def build_mlp(**kwargs: int) -> MLP:
    """Factory used as ``--arch tests.nets:build_mlp``."""
    return MLP(**kwargs)


def build_convnet(**kwargs: int) -> ConvNet:
    """Factory used as ``--arch tests.nets:build_convnet``."""
    return ConvNet(**kwargs)


def trained(model: nn.Module, seed: int = 0) -> nn.Module:
    """Give ``model`` seeded random weights (and BatchNorm statistics); eval mode."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if t.is_floating_point():
                noise = torch.randn(t.shape, generator=g)
                t.copy_(noise.abs() + 0.5 if name.endswith("running_var") else noise * 0.5)
    return model.eval()


def save_torchscript(model: nn.Module, path: Path) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.save(torch.jit.script(model), str(path))
    return path


def save_export(model: nn.Module, example: torch.Tensor, path: Path, *, dynamic: bool = True):
    shapes = {"x": {0: torch.export.Dim("batch", min=1)}} if dynamic else None
    program = torch.export.export(model, (example,), dynamic_shapes=shapes)
    torch.export.save(program, str(path))
    return path


class FlakyMLP(MLP):
    """An MLP that raises CUDA's out-of-memory error on batches larger than ``max_batch``
    (a fake, for the batch-halving branch only)."""

    def __init__(self, max_batch: int = 8, **kwargs: int):
        super().__init__(**kwargs)
        self.max_batch = max_batch
        self.calls: list[int] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls.append(int(x.shape[0]))
        if x.shape[0] > self.max_batch:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return super().forward(x)


def build_flaky_mlp(**kwargs: int) -> FlakyMLP:
    """Factory used as ``--arch tests.nets:build_flaky_mlp``."""
    return FlakyMLP(**kwargs)


class Evil:
    """Unpickling this creates ``marker`` — the payload a checkpoint must never run."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))
