"""Predictions files in and out (SPEC §4), validated once at the boundary.

Readers:

* ``.safetensors`` — parsed here (header + ``numpy.memmap``), so files larger
  than RAM stay on disk, bf16 is supported and torch is never imported;
* ``.npz`` — ``numpy.load(allow_pickle=False)``;
* ``.pt`` / ``.pth`` — a dict of tensors via
  ``torch.load(weights_only=True, mmap=True)`` (torch imported only here).

The file kind is detected from its first bytes, not its suffix. Every problem
raises :class:`~sc_eval.errors.InputError` naming the file, the field and what
was expected.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import struct
import tempfile
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sc_eval.errors import InputError

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "Predictions",
    "atomic_output",
    "check_output_path",
    "labels_sha256",
    "load_predictions",
    "predictions_from_arrays",
    "read_arrays",
    "write_predictions",
]

FORMAT_NAME = "sc-eval/predictions"
FORMAT_VERSION = "1"
MAX_HEADER_BYTES = 100 * 1024 * 1024
FLOAT_KINDS = ("float16", "bfloat16", "float32", "float64")
_INT_KINDS = ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64")

_ST_DTYPES: dict[str, str] = {
    "F16": "float16",
    "BF16": "bfloat16",
    "F32": "float32",
    "F64": "float64",
    "I8": "int8",
    "I16": "int16",
    "I32": "int32",
    "I64": "int64",
    "U8": "uint8",
    "U16": "uint16",
    "U32": "uint32",
    "U64": "uint64",
    "BOOL": "bool",
}


# --------------------------------------------------------------------------- arrays
@dataclass(frozen=True)
class RawArray:
    """An array as stored: numpy data (maybe memory-mapped) and its logical dtype.

    bf16 has no numpy dtype; it is kept as ``uint16`` bits and widened to
    float32 chunk by chunk.
    """

    data: np.ndarray
    dtype: str

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.data.shape)

    def rows(self, start: int, stop: int) -> np.ndarray:
        """Rows ``start:stop`` as a float or int array (bf16 widened to float32)."""
        chunk = np.asarray(self.data[start:stop])
        if self.dtype == "bfloat16":
            return (chunk.astype(np.uint32) << 16).view(np.float32)
        return chunk

    def full(self) -> np.ndarray:
        return self.rows(0, self.shape[0]) if self.shape else np.asarray(self.data)


def _bf16_from_float(x: np.ndarray) -> np.ndarray:
    """Round float32 to bf16 bits (round-to-nearest-even), for writing bf16 test files."""
    b = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)
    rounding = ((b >> 16) & 1) + 0x7FFF
    return ((b + rounding) >> 16).astype(np.uint16)


class FileRows:
    """A read-only, row-addressable view of an array stored in a file.

    Rows are read on demand with ``os.pread`` (thread-safe, no shared file
    position), so scoring a file far larger than RAM keeps only the current
    chunks in memory — unlike a memory map, whose touched pages count towards
    the process's resident memory.

    Parameters
    ----------
    path : path-like
    dtype : numpy dtype
    offset : int
        Byte offset of the first element.
    shape : tuple of int
        C-ordered shape; rows are the first axis.
    """

    def __init__(
        self, path: str | os.PathLike[str], dtype: np.dtype, offset: int, shape: tuple[int, ...]
    ):
        self.path = os.fspath(path)
        self.dtype = np.dtype(dtype)
        self.offset = offset
        self.shape = tuple(shape)
        self.ndim = len(self.shape)
        self._row_items = int(np.prod(self.shape[1:], dtype=np.int64)) if self.ndim > 1 else 1
        self._row_bytes = self._row_items * self.dtype.itemsize

    def __len__(self) -> int:
        return self.shape[0]

    def _read(self, start: int, stop: int) -> np.ndarray:
        count = max(stop - start, 0)
        nbytes = count * self._row_bytes
        buf = np.empty(nbytes, dtype=np.uint8)  # uninitialised: pread fills every byte
        fd = os.open(self.path, os.O_RDONLY)
        try:
            view = buf.data
            done = 0
            while done < nbytes:
                got = os.preadv(fd, [view[done:]], self.offset + start * self._row_bytes + done)
                if got <= 0:
                    raise InputError("file ended early (truncated?)", path=self.path)
                done += got
        finally:
            os.close(fd)
        return buf.view(self.dtype).reshape((count, *self.shape[1:]))

    def __getitem__(self, key: object) -> np.ndarray:
        if isinstance(key, slice):
            start, stop, step = key.indices(self.shape[0])
            rows = self._read(start, stop) if step > 0 else self._read(stop + 1, start + 1)[::-1]
            return rows[:: abs(step)] if abs(step) != 1 else rows
        if isinstance(key, int | np.integer):
            i = int(key) + (self.shape[0] if key < 0 else 0)
            return self._read(i, i + 1)[0]
        idx = np.asarray(key)
        if idx.dtype == bool:
            idx = np.flatnonzero(idx)
        if idx.size == 0:
            return np.empty((0, *self.shape[1:]), dtype=self.dtype)
        order = np.argsort(idx, kind="stable")
        out = np.empty((idx.size, *self.shape[1:]), dtype=self.dtype)
        sorted_idx = idx[order]
        # read contiguous runs of the sorted indices in one call each
        breaks = np.flatnonzero(np.diff(sorted_idx) != 1) + 1
        for run in np.split(np.arange(idx.size), breaks):
            lo, hi = int(sorted_idx[run[0]]), int(sorted_idx[run[-1]]) + 1
            out[order[run]] = self._read(lo, hi)
        return out

    def __array__(self, dtype: object = None, copy: object = None) -> np.ndarray:
        arr = self._read(0, self.shape[0])
        return arr if dtype is None else np.asarray(arr, dtype=dtype)  # type: ignore[call-overload]


# --------------------------------------------------------------------------- readers
MAX_DIM = 2**48  # larger than any real tensor dimension, small enough for numpy


def _header_int(value: object) -> int:
    """A non-negative JSON integer of a safetensors header (ValueError otherwise)."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(value)
    return value


def _read_safetensors(path: Path) -> tuple[dict[str, RawArray], dict[str, str]]:
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise InputError("truncated safetensors file (no header length)", path=path)
        (hlen,) = struct.unpack("<Q", head)
        if hlen > MAX_HEADER_BYTES or hlen > size - 8:
            raise InputError(
                f"corrupt safetensors header: declares {hlen} header bytes in a {size}-byte file",
                path=path,
            )
        try:
            header = json.loads(f.read(hlen))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise InputError(f"corrupt safetensors header: {e}", path=path) from None
    if not isinstance(header, dict):
        raise InputError("corrupt safetensors header: not a JSON object", path=path)
    meta = header.pop("__metadata__", None) or {}
    if not isinstance(meta, dict):
        raise InputError("corrupt safetensors metadata: not a JSON object", path=path)
    start = 8 + hlen
    arrays: dict[str, RawArray] = {}
    for name, info in header.items():
        try:
            st_dtype = str(info["dtype"])
            shape = tuple(_header_int(d) for d in info["shape"])
            begin, end = (_header_int(o) for o in info["data_offsets"])
        except (KeyError, TypeError, ValueError):
            raise InputError(
                "corrupt safetensors header entry: expected dtype, shape and data_offsets "
                "holding non-negative integers",
                path=path,
                field=str(name),
            ) from None
        if st_dtype not in _ST_DTYPES:  # e.g. fp8 in a tensor we do not read: keep its name
            arrays[str(name)] = RawArray(np.empty((0,)), f"unsupported {st_dtype}")
            continue
        dtype = _ST_DTYPES[st_dtype]
        np_dtype = np.dtype("uint16" if dtype == "bfloat16" else dtype)
        count = math.prod(shape)  # a Python int: a crafted shape cannot overflow it
        if end - begin != count * np_dtype.itemsize or any(d > MAX_DIM for d in shape):
            raise InputError(
                f"corrupt safetensors entry: shape {shape} {dtype} does not match "
                f"{end - begin} data bytes",
                path=path,
                field=str(name),
            )
        if start + end > size:
            raise InputError(
                f"truncated safetensors file: tensor needs bytes up to {start + end}, "
                f"file has {size}",
                path=path,
                field=str(name),
            )
        if count == 0:
            data = np.empty(shape, dtype=np_dtype)
        else:
            data = FileRows(path, np_dtype, start + begin, shape)  # type: ignore[assignment]
        arrays[str(name)] = RawArray(data, dtype)
    return arrays, {str(k): str(v) for k, v in meta.items()}


MAX_NPZ_RATIO = 1000
#: Members that expand to less than this are never zip bombs (a constant labels
#: vector of a single-class test set compresses about 1000:1 with deflate).
NPZ_BOMB_FLOOR = 64 * 1024 * 1024
#: What :mod:`zipfile` raises on a damaged archive besides ``BadZipFile``
#: (undecodable names, bad struct fields, unknown compression, truncated streams).
ZIP_ERRORS: tuple[type[Exception], ...] = (
    zipfile.BadZipFile,
    ValueError,
    EOFError,
    struct.error,
    OverflowError,
    NotImplementedError,
    zlib.error,
)


def _read_npz(path: Path) -> tuple[dict[str, RawArray], dict[str, str]]:
    try:
        with zipfile.ZipFile(path) as zf:
            for info in zf.infolist():
                size = info.file_size
                if size > NPZ_BOMB_FLOOR and size > MAX_NPZ_RATIO * max(info.compress_size, 1):
                    raise InputError(
                        f"member '{info.filename}' expands {info.file_size} bytes from "
                        f"{info.compress_size} (ratio > {MAX_NPZ_RATIO}); refusing a zip bomb",
                        path=path,
                    )
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: RawArray(z[k], str(z[k].dtype)) for k in z.files}
    except InputError:
        raise
    except ValueError as e:
        if "pickle" in str(e).lower():
            raise InputError(
                "holds pickled object arrays; only numeric arrays are loaded (allow_pickle=False)",
                path=path,
            ) from None
        raise InputError(f"corrupt .npz file: {e}", path=path) from None
    except MemoryError:
        raise InputError("an array is too large to load into memory", path=path) from None
    except Exception as e:  # BadZipFile, zlib.error, EOFError, …: a damaged archive
        raise InputError(f"corrupt .npz file: {_describe(e)}", path=path) from None
    return arrays, {}


def torch_load_weights(path: Path) -> Any:
    """``torch.load(weights_only=True)`` on the CPU, memory-mapped when the format allows.

    Only tensors and plain containers are rebuilt; anything else raises
    ``pickle.UnpicklingError`` (malformed bytes may raise other exceptions).
    """
    import torch

    if path.suffix.lower() == ".safetensors":
        # torch.load picks its safetensors reader from this suffix; the content says
        # torch.save, so read it through a file object (no mmap then)
        with open(path, "rb") as f:
            return torch.load(f, map_location="cpu", weights_only=True)
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except RuntimeError as e:
        if "mmap" not in str(e):  # the legacy format cannot be memory-mapped
            raise
        return torch.load(path, map_location="cpu", weights_only=True)


def _describe(e: BaseException) -> str:
    """The first line of an exception's message, with its type when the message is terse."""
    text = str(e).strip().splitlines()[0][:200] if str(e).strip() else ""
    return text if len(text) >= 12 else f"{type(e).__name__}: {text}".rstrip(": ")


def _read_torch(path: Path) -> tuple[dict[str, RawArray], dict[str, str]]:
    import pickle
    import warnings

    import torch

    try:
        with warnings.catch_warnings():  # torch's notes on odd pickles are noise here
            warnings.simplefilter("ignore")
            obj = torch_load_weights(path)
    except pickle.UnpicklingError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise InputError(
            "holds pickled Python objects, not just tensors; refusing to unpickle "
            f"(torch.load weights_only=True said: {first[:200]})",
            path=path,
        ) from None
    except Exception as e:  # on malformed bytes torch.load raises KeyError, IndexError, …
        raise InputError(f"corrupt or unreadable .pt file: {_describe(e)}", path=path) from None
    if not isinstance(obj, dict):
        raise InputError(f"expected a dict of tensors, found {type(obj).__name__}", path=path)
    arrays: dict[str, RawArray] = {}
    for k, v in obj.items():
        if not isinstance(v, torch.Tensor):
            continue
        t = v.detach()
        try:
            if t.dtype == torch.bfloat16:
                arrays[str(k)] = RawArray(t.view(torch.int16).numpy().view(np.uint16), "bfloat16")
            else:
                arrays[str(k)] = RawArray(t.numpy(), str(t.numpy().dtype))
        except (TypeError, RuntimeError) as e:  # sparse, quantized, … tensors
            raise InputError(
                f"expected a dense CPU tensor, got {t.layout} {t.dtype} ({e})",
                path=path,
                field=str(k),
            ) from None
    return arrays, {}


def _sniff(path: Path, what: str = "predictions file") -> str:
    """Detect a file's kind from its first bytes."""
    with open(path, "rb") as f:
        head = f.read(9)
    if head[:4] == b"PK\x03\x04":
        if path.suffix.lower() == ".npz":
            return "npz"
        try:
            with zipfile.ZipFile(path) as zf:
                names = zf.namelist()
        except ZIP_ERRORS:
            raise InputError("corrupt zip archive", path=path) from None
        if names and all(n.endswith(".npy") for n in names):
            return "npz"
        return "torch"
    # safetensors first: its 8-byte header length may itself start with 0x80
    if len(head) >= 9 and head[8:9] == b"{":
        (hlen,) = struct.unpack("<Q", head[:8])
        if hlen <= path.stat().st_size - 8:
            return "safetensors"
    if head[:1] == b"\x80":  # legacy torch.save / plain pickle
        return "torch"
    if path.suffix.lower() in (".pt", ".pth"):
        return "torch"
    if path.suffix.lower() == ".safetensors":
        return "safetensors"
    raise InputError(
        f"unrecognised file kind: expected a .safetensors, .npz or .pt/.pth {what}",
        path=path,
    )


READERS = {"safetensors": _read_safetensors, "npz": _read_npz, "torch": _read_torch}


def read_arrays(
    path: str | os.PathLike[str], *, what: str = "file"
) -> tuple[dict[str, RawArray], dict[str, str]]:
    """Every array of a ``.safetensors``/``.npz``/``.pt`` file (kind from content), unvalidated.

    Returns ``(arrays, metadata)``; safetensors arrays stay memory-mapped.
    ``what`` names the expected file in error messages.
    """
    p = Path(path)
    if not p.exists():
        raise InputError("no such file", path=path)
    if p.is_dir():
        raise InputError(f"is a directory, expected a {what}", path=path)
    try:
        return READERS[_sniff(p, what)](p)
    except PermissionError:
        raise InputError("permission denied", path=path) from None
    except OSError as e:
        raise InputError(f"cannot read file: {e.strerror or e}", path=path) from None


# --------------------------------------------------------------------------- predictions
@dataclass(frozen=True)
class Predictions:
    """A validated predictions source: ``[N, C]`` logits or probabilities and labels.

    Attributes
    ----------
    values : RawArray
        Logits or probabilities, possibly memory-mapped.
    kind : {"logits", "probs"}
    labels : ndarray of int64, shape (N,)
    index : ndarray of int64 or None
        Sample identifiers (e.g. dataset indices), used to align files.
    path : str or None
    metadata : dict
    groups : dict
        Other 1-D arrays of length N found in the file (for slicing).
    """

    values: RawArray
    kind: str
    labels: np.ndarray
    index: np.ndarray | None = None
    path: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    extra: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def n(self) -> int:
        return int(self.values.shape[0])

    @property
    def num_classes(self) -> int:
        return int(self.values.shape[1])

    @property
    def has_logits(self) -> bool:
        return self.kind == "logits"

    @property
    def name(self) -> str:
        return self.path if self.path is not None else "<arrays>"

    def chunks(self, chunk_size: int) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(start, rows)`` blocks of at most ``chunk_size`` rows."""
        for start in range(0, self.n, chunk_size):
            yield start, self.values.rows(start, min(start + chunk_size, self.n))

    @property
    def labels_sha256(self) -> str:
        return labels_sha256(self.labels)


def labels_sha256(labels: np.ndarray) -> str:
    """SHA-256 of the labels as little-endian int64 — identifies the test set."""
    return hashlib.sha256(np.ascontiguousarray(labels, dtype="<i8").tobytes()).hexdigest()


def _pick(
    arrays: dict[str, RawArray], path: object, *, logits_key: str | None, probs_key: str | None
) -> tuple[str, str]:
    if logits_key and probs_key:
        raise InputError("give only one of --logits-key and --probs-key", path=path)
    if logits_key:
        return logits_key, "logits"
    if probs_key:
        return probs_key, "probs"
    if "logits" in arrays:
        return "logits", "logits"
    if "probs" in arrays:
        return "probs", "probs"
    found = ", ".join(sorted(arrays)) or "none"
    raise InputError(
        f"expected a tensor named 'logits' or 'probs' (found: {found}); "
        "use --logits-key/--probs-key for other names",
        path=path,
    )


def _validate(
    arrays: dict[str, RawArray],
    *,
    path: str | None,
    metadata: dict[str, str],
    logits_key: str | None = None,
    probs_key: str | None = None,
    labels_key: str = "labels",
    index_key: str = "index",
) -> Predictions:
    key, kind = _pick(arrays, path, logits_key=logits_key, probs_key=probs_key)
    if key not in arrays:
        found = ", ".join(sorted(arrays)) or "none"
        raise InputError(f"no tensor named '{key}' (found: {found})", path=path, field=key)
    values = arrays[key]
    if values.dtype not in FLOAT_KINDS:
        raise InputError(
            f"expected floating-point {kind} (fp16/bf16/fp32/fp64), got {values.dtype}",
            path=path,
            field=key,
        )
    if len(values.shape) != 2:
        raise InputError(
            f"expected a 2-D [N, C] array, got shape {list(values.shape)}", path=path, field=key
        )
    n, c = values.shape
    if n == 0:
        raise InputError("expected at least one sample, got N = 0", path=path, field=key)
    if c < 2:
        raise InputError(f"expected at least 2 classes, got C = {c}", path=path, field=key)
    if labels_key not in arrays:
        found = ", ".join(sorted(arrays)) or "none"
        raise InputError(
            f"no tensor named '{labels_key}' (found: {found}); use --labels-key for another name",
            path=path,
            field=labels_key,
        )
    labels = _int_vector(arrays[labels_key], n, path=path, field=labels_key)
    lo, hi = int(labels.min()), int(labels.max())
    if lo < 0 or hi >= c:
        bad = int(np.flatnonzero((labels < 0) | (labels >= c))[0])
        raise InputError(
            f"expected labels in [0, {c - 1}] for C = {c} classes, got {int(labels[bad])} "
            f"at row {bad}",
            path=path,
            field=labels_key,
        )
    index = None
    if index_key in arrays:
        index = _int_vector(arrays[index_key], n, path=path, field=index_key)
        if np.unique(index).shape[0] != n:
            raise InputError(
                "expected unique sample ids, found duplicates", path=path, field=index_key
            )
    extra = {
        k: a.full()
        for k, a in arrays.items()
        if k not in (key, labels_key, index_key) and len(a.shape) == 1 and a.shape[0] == n
    }
    return Predictions(values, kind, labels, index, path, metadata, extra)


def _int_vector(a: RawArray, n: int, *, path: object, field: str) -> np.ndarray:
    if a.dtype not in _INT_KINDS:
        raise InputError(f"expected integers, got {a.dtype}", path=path, field=field)
    if len(a.shape) != 1 or a.shape[0] != n:
        raise InputError(
            f"expected shape [{n}] to match the {n} rows of predictions, got {list(a.shape)}",
            path=path,
            field=field,
        )
    data = np.asarray(a.full())
    if data.dtype == np.uint64 and data.size and int(data.max()) > np.iinfo(np.int64).max:
        raise InputError("integer values too large", path=path, field=field)
    return data.astype(np.int64)


def load_predictions(
    path: str | os.PathLike[str],
    *,
    logits_key: str | None = None,
    probs_key: str | None = None,
    labels_key: str = "labels",
    index_key: str = "index",
) -> Predictions:
    """Load and validate a predictions file.

    Parameters
    ----------
    path : path-like
        ``.safetensors``, ``.npz`` or ``.pt``/``.pth`` (kind detected from content).
    logits_key, probs_key : str, optional
        Name of the ``[N, C]`` tensor; default ``logits``, else ``probs``.
    labels_key, index_key : str
        Names of the labels and optional sample-id vectors.

    Returns
    -------
    Predictions

    Raises
    ------
    InputError
        Missing file or key, wrong shape or dtype, labels out of range, corrupt file.
    """
    p = Path(path)
    if not p.exists():
        raise InputError("no such file", path=path)
    if p.is_dir():
        raise InputError("is a directory, expected a predictions file", path=path)
    try:
        kind = _sniff(p)
        arrays, meta = READERS[kind](p)
    except PermissionError:
        raise InputError("permission denied", path=path) from None
    except OSError as e:
        raise InputError(f"cannot read file: {e.strerror or e}", path=path) from None
    return _validate(
        arrays,
        path=str(path),
        metadata=meta,
        logits_key=logits_key,
        probs_key=probs_key,
        labels_key=labels_key,
        index_key=index_key,
    )


def predictions_from_arrays(
    logits: Any = None,
    labels: Any = None,
    *,
    probs: Any = None,
    index: Any = None,
) -> Predictions:
    """Validate in-memory arrays (numpy or torch) as :class:`Predictions`."""
    arrays: dict[str, RawArray] = {}
    for name, value in (("logits", logits), ("probs", probs), ("labels", labels), ("index", index)):
        if value is None:
            continue
        arr, dtype = _as_numpy(value)
        arrays[name] = RawArray(arr, dtype)
    if logits is not None and probs is not None:
        raise InputError("give either logits or probs, not both")
    return _validate(arrays, path=None, metadata={})


def _as_numpy(value: Any) -> tuple[np.ndarray, str]:
    if type(value).__module__.startswith("torch"):
        import torch

        t = value.detach().cpu()
        if t.dtype == torch.bfloat16:
            return t.view(torch.int16).numpy().view(np.uint16), "bfloat16"
        value = t.numpy()
    try:
        arr = np.asarray(value)
    except (ValueError, TypeError) as e:  # ragged nested lists, …
        raise InputError(f"expected a rectangular numeric array: {e}") from None
    return arr, str(arr.dtype)


# --------------------------------------------------------------------------- writing
def check_output_path(path: str | os.PathLike[str]) -> Path:
    """Refuse an output path whose directory is missing or that names a directory.

    Commands call this for every output option before doing any work, so a run
    never writes one output and then fails on the next.
    """
    target = Path(path)
    parent = target.parent if str(target.parent) else Path(".")
    if not parent.is_dir():
        raise InputError("output directory does not exist", path=parent)
    if target.is_dir():
        raise InputError("is a directory, expected an output file path", path=target)
    return target


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` on success.

    On any exception (or KeyboardInterrupt) the temporary file is removed and
    ``path`` is untouched, so no half-written output is ever left behind.
    """
    target = check_output_path(path)
    parent = target.parent
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=parent)
    os.close(fd)
    tmp_path = Path(tmp)
    umask = os.umask(0)
    os.umask(umask)
    try:
        yield tmp_path
        # mkstemp makes 0600, and writers may recreate the file: set the usual mode last
        os.chmod(tmp_path, 0o666 & ~umask)
        os.replace(tmp_path, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp_path.unlink()
        raise


def write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    with atomic_output(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_predictions(
    path: str | os.PathLike[str],
    *,
    labels: np.ndarray,
    logits: np.ndarray | None = None,
    probs: np.ndarray | None = None,
    index: np.ndarray | None = None,
    metadata: dict[str, str] | None = None,
) -> None:
    """Write the canonical ``.safetensors`` predictions file, atomically.

    Metadata always holds ``format=sc-eval/predictions``, ``version`` and
    ``labels_sha256``; ``metadata`` adds free-text entries.
    """
    from safetensors.numpy import save_file

    if (logits is None) == (probs is None):
        raise ValueError("write_predictions needs exactly one of logits or probs")
    values = logits if logits is not None else probs
    assert values is not None
    values = np.asarray(values)
    raw_labels = np.asarray(labels)
    if values.ndim != 2 or values.shape[0] == 0:
        raise InputError(f"expected a non-empty [N, C] array, got shape {list(values.shape)}")
    if not np.issubdtype(values.dtype, np.floating):
        raise InputError(f"expected floating-point values, got {values.dtype}")
    if raw_labels.shape != (values.shape[0],) or not np.issubdtype(raw_labels.dtype, np.integer):
        raise InputError(
            f"expected integer labels of shape [{values.shape[0]}], got {raw_labels.dtype} "
            f"{list(raw_labels.shape)}",
            field="labels",
        )
    labels = raw_labels.astype(np.int64)
    tensors = {
        "logits" if logits is not None else "probs": np.ascontiguousarray(values),
        "labels": np.ascontiguousarray(labels),
    }
    if index is not None:
        tensors["index"] = np.ascontiguousarray(np.asarray(index, dtype=np.int64))
    meta = {str(k): str(v) for k, v in (metadata or {}).items()}
    meta.update(format=FORMAT_NAME, version=FORMAT_VERSION, labels_sha256=labels_sha256(labels))
    with atomic_output(path) as tmp:
        save_file(tensors, str(tmp), metadata=meta)
