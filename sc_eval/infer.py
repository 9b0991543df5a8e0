"""Batched, optionally distributed inference: checkpoint + data → predictions.

:func:`predict` runs a loaded network over :class:`~sc_eval.data.InferenceData`
under ``torch.inference_mode``: a ``DataLoader`` (workers, pinned memory on
CUDA) feeds batches that are copied with ``non_blocking=True``; optional
autocast (``bf16``/``fp16``), channels-last and ``torch.compile``; a batch that
runs out of memory is split in halves and retried, and later batches keep the
smaller size (logged once per halving). Logits come back as ``float32`` in
data order.

Under ``torchrun`` (``WORLD_SIZE`` > 1) each rank infers the shard that
``DistributedSampler(shuffle=False)`` gives it; rank 0 gathers
``(position, logits)`` from every rank (over gloo, on the CPU, also when the
compute runs on NCCL), drops the duplicates the sampler pads with, and
restores data order, so the result equals the single-process one. Only
rank 0 reports progress, logs and writes.

:func:`infer` is the whole ``sc-eval infer`` step: load, predict, write a
predictions file whose metadata names the checkpoint's and the data's SHA-256.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import numpy as np

from sc_eval import __version__
from sc_eval.cache import file_sha256, memo_digest
from sc_eval.data import ImageTransform, InferenceData, open_data
from sc_eval.errors import InputError, ScEvalError, UsageError
from sc_eval.features import default_features_path, hook_features, write_features
from sc_eval.io import write_predictions
from sc_eval.models import LoadedModel, ModelSpec, load_model
from sc_eval.progress import rich_progress

if TYPE_CHECKING:
    import torch
    from rich.progress import Progress, TaskID
    from torch.distributed import ProcessGroup

T = TypeVar("T")

__all__ = [
    "AMP_DTYPES",
    "DistInfo",
    "InferOptions",
    "InferenceResult",
    "distributed",
    "infer",
    "predict",
    "resolve_device",
]

AMP_DTYPES = {"bf16": "bfloat16", "fp16": "float16"}


@dataclass(frozen=True)
class InferOptions:
    """How to run the network (none of these change the logits beyond float rounding,
    except ``amp``).

    Attributes
    ----------
    batch_size : int
        Samples per batch (halved automatically on out-of-memory).
    device : str
        ``auto`` (CUDA when available, else CPU), ``cpu``, ``cuda`` or ``cuda:i``.
    amp : {"bf16", "fp16"} or None
        Autocast dtype.
    channels_last : bool
        Channels-last memory format for the network and 4-D inputs.
    compile : bool
        ``torch.compile`` the network.
    workers : int or None
        DataLoader worker processes; default 0 for tensor files (in memory,
        or read from disk in batches), ``min(8, CPUs per process)`` for image folders.
    progress : bool
        Show a progress bar on stderr (rank 0 only).
    """

    batch_size: int = 256
    device: str = "auto"
    amp: str | None = None
    channels_last: bool = False
    compile: bool = False
    workers: int | None = None
    progress: bool = True

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise UsageError(f"--batch-size must be >= 1, got {self.batch_size}")
        if self.amp is not None and self.amp not in AMP_DTYPES:
            raise UsageError(f"unknown --amp '{self.amp}'; choose from {', '.join(AMP_DTYPES)}")
        if self.workers is not None and self.workers < 0:
            raise UsageError(f"--workers must be >= 0, got {self.workers}")


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits in a ``torchrun`` job (rank 0 of 1 when alone)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    cpu_group: ProcessGroup | None = None

    @property
    def is_main(self) -> bool:
        return self.rank == 0


@dataclass(frozen=True)
class InferenceResult:
    """Logits of one inference run (rank 0), with what goes into the predictions file."""

    logits: np.ndarray
    labels: np.ndarray
    index: np.ndarray
    metadata: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def samples_per_second(self) -> float:
        return self.labels.shape[0] / self.seconds if self.seconds > 0 else float("nan")


# --------------------------------------------------------------------------- devices
def resolve_device(name: str, dist: DistInfo = DistInfo()) -> torch.device:
    """``auto`` → ``cuda`` when available, else ``cpu``; under torchrun, CUDA ranks use
    ``cuda:LOCAL_RANK``."""
    import torch

    name = (name or "auto").strip().lower()
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise UsageError(f"unknown --device '{name}'; use auto, cpu, cuda or cuda:INDEX") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UsageError(f"--device {name}: CUDA is not available on this machine")
        index = dist.local_rank if dist.world_size > 1 else device.index or 0
        if index >= torch.cuda.device_count():
            raise UsageError(
                f"--device {name}: only {torch.cuda.device_count()} CUDA device(s) visible"
            )
        device = torch.device("cuda", index)
        torch.cuda.set_device(device)
    elif device.type not in ("cpu", "mps"):
        raise UsageError(f"unsupported --device '{name}'; use auto, cpu, cuda or cuda:INDEX")
    return device


@contextlib.contextmanager
def distributed(device: str = "auto") -> Iterator[DistInfo]:
    """Join the ``torchrun`` process group when ``WORLD_SIZE`` > 1 (NCCL for CUDA, gloo
    for CPU), and leave it afterwards if it was created here."""
    world = int(os.environ.get("WORLD_SIZE", "1") or 1)
    if world <= 1:
        yield DistInfo()
        return
    import torch
    import torch.distributed as dist

    local = int(os.environ.get("LOCAL_RANK", "0") or 0)
    created = False
    if not dist.is_initialized():
        wants_cuda = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
        backend = "nccl" if wants_cuda else "gloo"
        if wants_cuda and torch.cuda.is_available():
            torch.cuda.set_device(local % max(1, torch.cuda.device_count()))
        dist.init_process_group(backend=backend)
        created = True
    try:
        group = dist.new_group(backend="gloo") if dist.get_backend() != "gloo" else None
        yield DistInfo(dist.get_rank(), dist.get_world_size(), local, group)
    finally:
        if created:
            dist.destroy_process_group()


# --------------------------------------------------------------------------- reporting
class _Reporter:
    """Progress bar (samples, samples/s, ETA) and log lines on stderr, rank 0 only."""

    def __init__(self, total: int, *, enabled: bool, quiet: bool, description: str):
        self.quiet = quiet
        self.progress: Progress | None = None
        self.task: TaskID | None = None
        if enabled and not quiet:
            self.progress = rich_progress(transient=False)
            self.task = self.progress.add_task(description, total=total, unit="samples")

    def __enter__(self) -> _Reporter:
        if self.progress is not None:
            self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress.stop()

    def advance(self, count: int) -> None:
        if self.progress is not None:
            assert self.task is not None
            self.progress.advance(self.task, count)

    def log(self, message: str) -> None:
        if self.quiet:
            return
        if self.progress is not None:
            self.progress.console.print(f"sc-eval: {message}", markup=False, highlight=False)
        else:
            sys.stderr.write(f"sc-eval: {message}\n")
            sys.stderr.flush()


# --------------------------------------------------------------------------- forward
def _is_oom(e: BaseException) -> bool:
    import torch

    if isinstance(e, torch.OutOfMemoryError):
        return True
    text = str(e).lower()
    return isinstance(e, RuntimeError) and (
        "out of memory" in text or "can't allocate memory" in text
    )


def _logits_of(out: Any) -> Any:
    """The logits tensor of a model output: a tensor, the first of a tuple/list, or
    ``out["logits"]``."""
    if isinstance(out, (tuple, list)) and out:
        out = out[0]
    elif isinstance(out, dict) and "logits" in out:
        out = out["logits"]
    elif hasattr(out, "logits"):
        out = out.logits
    return out


class _Forward:
    """One forward pass per call, with dtype/device/layout handling and OOM halving."""

    def __init__(
        self,
        loaded: LoadedModel,
        device: torch.device,
        options: InferOptions,
        log: Callable[[str], None],
    ):
        import torch

        module = loaded.module
        self.path = loaded.path
        self.fixed = loaded.fixed_batch
        self.device = device
        self.log = log
        self.chunk = self.fixed or options.batch_size
        self.channels_last = options.channels_last
        floats = [t.dtype for t in _tensors_of(module) if t.is_floating_point()]
        self.in_dtype = floats[0] if floats else torch.float32
        module = module.to(device)
        if options.channels_last:
            module = module.to(memory_format=torch.channels_last)
        if options.compile:
            if isinstance(module, torch.jit.ScriptModule):
                log("--compile is ignored for TorchScript archives")
            else:
                module = torch.compile(module)
        self.module = module
        self.compiled = options.compile
        self.amp = getattr(torch, AMP_DTYPES[options.amp]) if options.amp else None
        if self.amp is not None:
            try:
                with torch.autocast(device_type=device.type, dtype=self.amp):
                    pass
            except (RuntimeError, ValueError) as e:
                raise UsageError(f"--amp {options.amp} is not supported on {device}: {e}") from None

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (``float32``, CPU) of a batch, splitting it when memory runs out."""
        import torch

        n = int(x.shape[0])
        outs = []
        i = 0
        while i < n:
            size = min(self.chunk, n - i)
            try:
                outs.append(self._run(x[i : i + size]))
            except Exception as e:
                if not _is_oom(e):
                    raise self._failure(e, x) from e
                if self.fixed is not None or size == 1:
                    raise ScEvalError(
                        f"out of memory at batch size {size}"
                        + (
                            " (the exported program has a fixed batch size; export it with a "
                            "dynamic batch dimension)"
                            if self.fixed is not None
                            else ""
                        )
                    ) from e
                self.chunk = max(1, size // 2)
                self.log(f"out of memory at batch size {size}; retrying with {self.chunk}")
                del e
                if self.device.type == "cuda":
                    torch.cuda.empty_cache()
                continue
            i += size
        return outs[0] if len(outs) == 1 else torch.cat(outs)

    def _run(self, x: torch.Tensor) -> torch.Tensor:
        import torch

        rows = int(x.shape[0])
        if self.fixed is not None and rows < self.fixed:
            x = torch.cat([x, x[-1:].expand(self.fixed - rows, *x.shape[1:])])
        x = x.to(self.device, non_blocking=True)
        if x.is_floating_point() and x.dtype != self.in_dtype:
            x = x.to(self.in_dtype)
        if self.channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        if self.amp is not None:
            with torch.autocast(device_type=self.device.type, dtype=self.amp):
                y = _logits_of(self.module(x))
        else:
            y = _logits_of(self.module(x))
        if not isinstance(y, torch.Tensor) or y.dim() != 2 or y.shape[0] != x.shape[0]:
            shape = list(y.shape) if isinstance(y, torch.Tensor) else type(y).__name__
            raise InputError(
                f"the model returned {shape} for a batch of {int(x.shape[0])}; expected logits "
                "[batch, classes]",
                path=self.path,
            )
        return y[:rows].float().cpu()

    def _failure(self, e: Exception, x: torch.Tensor) -> ScEvalError:
        if isinstance(e, ScEvalError):
            return e
        hint = " (try without --compile)" if self.compiled else ""
        text = [line.strip() for line in str(e).strip().splitlines() if line.strip()]
        # TorchScript wraps the real error: its first line is generic, its last says why
        reason = text[-1] if text and "TorchScript interpreter" in text[0] else ""
        reason = reason or (text[0] if text else type(e).__name__)
        dtype = str(x.dtype).replace("torch.", "")
        return InputError(
            f"the model failed on inputs of shape {list(x.shape)} {dtype}{hint}: {reason[:300]}",
            path=self.path,
        )


def _tensors_of(module: Any) -> Iterator[torch.Tensor]:
    yield from module.parameters()
    yield from module.buffers()


# --------------------------------------------------------------------------- predict
def _default_workers(data: InferenceData, world_size: int) -> int:
    if data.kind != "images":
        return 0
    return max(0, min(8, (os.cpu_count() or 1) // max(1, world_size)))


def predict(
    model: LoadedModel,
    data: InferenceData,
    options: InferOptions = InferOptions(),
    *,
    dist: DistInfo = DistInfo(),
    log: Callable[[str], None] | None = None,
) -> np.ndarray | None:
    """Logits ``[N, C]`` (``float32``, data order) of ``model`` on ``data``.

    Parameters
    ----------
    model : LoadedModel
    data : InferenceData
    options : InferOptions
    dist : DistInfo
        From :func:`distributed`; each rank infers its shard and rank 0 gathers.
    log : callable, optional
        Where log lines go (default: stderr on rank 0).

    Returns
    -------
    ndarray or None
        The logits on rank 0, None on the other ranks.
    """
    import torch
    from torch.utils.data import BatchSampler, DataLoader, DistributedSampler, SequentialSampler

    device = resolve_device(options.device, dist)
    batch = model.fixed_batch or options.batch_size
    sampler: Any
    if dist.world_size > 1:
        sampler = DistributedSampler(
            data.dataset, num_replicas=dist.world_size, rank=dist.rank, shuffle=False
        )
    else:
        sampler = SequentialSampler(data.dataset)
    workers = (
        options.workers if options.workers is not None else _default_workers(data, dist.world_size)
    )
    loader = DataLoader(
        data.dataset,
        batch_size=None,
        sampler=BatchSampler(sampler, batch, drop_last=False),
        num_workers=workers,
        pin_memory=device.type == "cuda",
    )
    local_n = len(sampler)
    reporter = _Reporter(
        data.n,
        enabled=options.progress,
        quiet=not dist.is_main,
        description="infer",
    )
    emit = log or reporter.log
    if model.fixed_batch is not None and model.fixed_batch != options.batch_size:
        emit(f"the exported program has a fixed batch size of {model.fixed_batch}; using it")
    forward = _Forward(model, device, options, emit if dist.is_main else (lambda m: None))
    positions = torch.empty(local_n, dtype=torch.int64)
    logits: torch.Tensor | None = None
    filled = done = 0
    with torch.inference_mode(), reporter:
        for inputs, pos in _unwrapped_errors(loader):
            out = forward(inputs)
            if logits is None:
                logits = torch.empty(local_n, out.shape[1], dtype=torch.float32)
            k = int(pos.shape[0])
            logits[filled : filled + k] = out
            positions[filled : filled + k] = pos
            filled += k
            # every rank advances alike; rank 0 counts for all (padding duplicates excluded)
            reporter.advance(min(k * dist.world_size, data.n - done))
            done = min(data.n, done + k * dist.world_size)
    assert logits is not None and filled == local_n
    if dist.world_size > 1:
        return _gather(positions, logits, data.n, dist)
    return logits.numpy()


def _unwrapped_errors(loader: Any) -> Iterator[Any]:
    """Iterate ``loader``; an sc-eval error raised in a worker process comes back as
    its original one-line message, not the worker's traceback."""
    it = iter(loader)
    while True:
        try:
            batch = next(it)
        except StopIteration:
            return
        except ScEvalError as e:
            text = str(e).strip()
            if "DataLoader worker" not in text:
                raise
            last = text.splitlines()[-1]
            prefix = f"{type(e).__module__}.{type(e).__name__}: "
            raise type(e)(last.removeprefix(prefix)) from None
        yield batch


def _gather(
    positions: torch.Tensor, logits: torch.Tensor, n: int, dist_info: DistInfo
) -> np.ndarray | None:
    """Collect every rank's ``(positions, logits)`` on rank 0 and restore data order.

    ``DistributedSampler`` pads the index list to a multiple of the world size by
    repeating its first entries; those duplicates are dropped (first occurrence kept).
    """
    import torch
    import torch.distributed as dist

    group = dist_info.cpu_group
    main = dist_info.is_main
    pos_list = [torch.empty_like(positions) for _ in range(dist_info.world_size)] if main else None
    out_list = [torch.empty_like(logits) for _ in range(dist_info.world_size)] if main else None
    dist.gather(positions, pos_list, dst=0, group=group)
    dist.gather(logits, out_list, dst=0, group=group)
    if not main:
        return None
    assert pos_list is not None and out_list is not None
    all_pos = torch.cat(pos_list).numpy()
    all_out = torch.cat(out_list).numpy()
    unique, first = np.unique(all_pos, return_index=True)
    if unique.shape[0] != n or unique[0] != 0 or unique[-1] != n - 1:
        raise ScEvalError(
            f"distributed gather returned {unique.shape[0]} distinct samples, expected {n}"
        )
    return np.ascontiguousarray(all_out[first])


# --------------------------------------------------------------------------- infer
def infer(
    checkpoint: str | os.PathLike[str],
    data: str | os.PathLike[str],
    *,
    out: str | os.PathLike[str] | None = None,
    spec: ModelSpec | None = None,
    transform: ImageTransform | None = None,
    options: InferOptions | None = None,
    cache_dir: Path | None = None,
    log: Callable[[str], None] | None = None,
    features_layer: str | None = None,
    features_out: str | os.PathLike[str] | None = None,
) -> InferenceResult | None:
    """Run a checkpoint over a dataset and (optionally) write the predictions file.

    Parameters
    ----------
    checkpoint : path-like
        See :func:`sc_eval.models.load_model`.
    data : path-like
        See :func:`sc_eval.data.open_data`.
    out : path-like, optional
        Predictions file to write (``.safetensors``, atomically, rank 0 only):
        ``logits`` (float32), ``labels``, ``index`` and metadata with
        ``checkpoint_sha256`` and ``data_sha256``.
    spec, transform, options
        Model, image and run options.
    cache_dir : Path, optional
        Where file digests are memoised.
    log : callable, optional
        Receives log lines (default: stderr).
    features_layer : str, optional
        Also save the penultimate features: the input of this module (see
        :mod:`sc_eval.features`), to ``features_out`` (default: beside ``out``,
        ``*.features.safetensors``). Not under torchrun.

    Returns
    -------
    InferenceResult or None
        None on ranks other than 0 under torchrun.
    """
    spec = spec or ModelSpec()
    options = options or InferOptions()
    with distributed(options.device) as dist_info:
        loaded = load_model(checkpoint, spec)
        capture = None
        if features_layer is not None:
            if dist_info.world_size > 1:
                raise UsageError("--features-layer works in a single process, not under torchrun")
            loaded, capture = hook_features(loaded, features_layer)
        dataset = open_data(data, transform=transform)
        # hash checkpoint and data while the model runs (hashlib releases the GIL)
        digests = _Background(_digests, loaded, dataset, cache_dir) if dist_info.is_main else None
        start = time.perf_counter()
        logits = predict(loaded, dataset, options, dist=dist_info, log=log)
        seconds = time.perf_counter() - start
        if logits is None or digests is None:
            return None
        num_classes = int(logits.shape[1])
        if num_classes < 2:
            raise InputError(
                f"the model outputs {num_classes} class; expected at least 2", path=checkpoint
            )
        top = int(dataset.labels.max())
        if top >= num_classes:
            raise InputError(
                f"the data has label {top} but the model outputs only {num_classes} classes",
                path=data,
                field="labels",
            )
        meta = _metadata(loaded, dataset, spec, options, digests.result())
        if capture is not None:
            feats = capture.features(dataset.n, path=checkpoint)
            target = features_out or default_features_path(out or "predictions.safetensors")
            write_features(target, feats, W=capture.W, b=capture.b, labels=dataset.labels,
                           metadata={**meta, "layer": str(features_layer)})  # fmt: skip
        if out is not None:
            write_predictions(
                out, logits=logits, labels=dataset.labels, index=dataset.index, metadata=meta
            )
        return InferenceResult(logits, dataset.labels, dataset.index, meta, seconds)


class _Background(Generic[T]):
    """Run ``fn(*args)`` in a daemon thread (an interrupted run does not wait for it)."""

    def __init__(self, fn: Callable[..., T], *args: object):
        self._value: list[T] = []  # the one result, once fn returned
        self._error: BaseException | None = None

        def work() -> None:
            try:
                self._value.append(fn(*args))
            except BaseException as e:  # handed to the caller in result()
                self._error = e

        self._thread = threading.Thread(target=work, name="sc-eval-hash", daemon=True)
        self._thread.start()

    def result(self) -> T:
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._value[0]


def _digests(loaded: LoadedModel, data: InferenceData, cache_dir: Path | None) -> dict[str, str]:
    ckpt = Path(loaded.path)
    return {
        "checkpoint_sha256": memo_digest([ckpt], lambda: file_sha256(ckpt), cache_dir=cache_dir),
        "data_sha256": data.sha256(cache_dir=cache_dir),
    }


def _metadata(
    loaded: LoadedModel,
    data: InferenceData,
    spec: ModelSpec,
    options: InferOptions,
    digests: dict[str, str],
) -> dict[str, str]:
    import torch

    meta = {
        "source": loaded.path,
        "checkpoint_sha256": digests["checkpoint_sha256"],
        "model_kind": loaded.kind,
        "data": data.path,
        "data_kind": data.kind,
        "data_sha256": digests["data_sha256"],
        "amp": options.amp or "none",
        "producer": f"sc-eval {__version__} infer (torch {torch.__version__})",
    }
    if loaded.arch:
        meta["arch"] = loaded.arch
        if spec.arch_kwargs:
            meta["arch_kwargs"] = json.dumps(dict(spec.arch_kwargs), sort_keys=True)
        if spec.num_classes is not None:
            meta["num_classes"] = str(spec.num_classes)
    meta.update(data.metadata)
    return meta
