"""Predictions files in and out, validated once at the boundary.

Readers:

* ``.safetensors`` — parsed here (header, then rows read on demand with
  ``os.pread``: :class:`FileRows`), so files larger than RAM stay on disk,
  bf16 is supported and torch is never imported;
* ``.npz`` — each ``.npy`` member's header checked, its data expanded only
  when first read (:class:`NpzMember`; never ``allow_pickle``);
* ``.pt`` / ``.pth`` — a dict of tensors via
  ``torch.load(weights_only=True, mmap=True)`` (torch imported only here).

The file kind is detected from its first bytes, not its suffix. Every problem
raises :class:`~sc_eval.errors.InputError` naming the file, the field and what
was expected.
"""

from __future__ import annotations

import hashlib
import io as _io
import json
import math
import os
import pickle
import struct
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, TypeAlias, cast

import numpy as np

from sc_eval.errors import InputError
from sc_eval.files import (
    ZIP_ERRORS,
    ZipMember,
    check_zip,
    detect,
    is_zip,
    os_error_reason,
    parse_json,
    read_head,
    verify_crc,
)
from sc_eval.outputs import atomic_output
from sc_eval.quiet import quiet

if TYPE_CHECKING:
    import torch
    from numpy.typing import ArrayLike

    #: An in-memory array argument: a numpy array (or nested sequence) or a torch tensor.
    ArrayInput: TypeAlias = ArrayLike | torch.Tensor

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "Predictions",
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
#: The label of an out-of-distribution sample (a class the model was never trained on).
OOD_LABEL = -1
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
    """An array as stored: its data (in memory, or read on demand from the file) and its
    logical dtype.

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
        arr = self._read(0, 1).reshape(()) if self.ndim == 0 else self._read(0, self.shape[0])
        return arr if dtype is None else np.asarray(arr, dtype=dtype)  # type: ignore[call-overload]


# --------------------------------------------------------------------------- readers
MAX_DIM = 2**48  # larger than any real tensor dimension, small enough for numpy
MAX_NDIM = 32  # numpy allows 64; no predictions or data tensor has more than a few


def _header_int(value: object) -> int:
    """A non-negative JSON integer of a safetensors header (ValueError otherwise)."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(value)
    return value


#: Bits per element of every dtype the safetensors format defines (0.8): a file
#: is laid out and checked with these even where sc-eval cannot read the dtype.
_ST_BITS: dict[str, int] = {
    "BOOL": 8, "F4": 4, "F6_E2M3": 6, "F6_E3M2": 6, "U8": 8, "I8": 8, "F8_E5M2": 8,
    "F8_E4M3": 8, "F8_E8M0": 8, "F8_E4M3FNUZ": 8, "F8_E5M2FNUZ": 8, "I16": 16, "U16": 16,
    "F16": 16, "BF16": 16, "I32": 32, "U32": 32, "F32": 32, "C64": 64, "F64": 64, "I64": 64,
    "U64": 64,
}  # fmt: skip


def _possible_shape(shape: tuple[int, ...]) -> bool:
    """A shape numpy can represent even when empty: few dimensions, bounded extent."""
    extent = math.prod(d for d in shape if d)
    return len(shape) <= MAX_NDIM and all(d <= MAX_DIM for d in shape) and extent < 2**56


def _st_header(path: Path, f: BinaryIO, size: int) -> tuple[dict[str, Any], int]:
    """The parsed JSON header of a safetensors file and the data section's start."""
    head = f.read(8)
    if len(head) < 8:
        raise InputError("truncated safetensors file (no header length)", path=path)
    (hlen,) = struct.unpack("<Q", head)
    if hlen > MAX_HEADER_BYTES or hlen > size - 8:
        raise InputError(
            f"corrupt safetensors header: declares {hlen} header bytes in a {size}-byte file",
            path=path,
        )
    raw = f.read(hlen)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InputError("corrupt safetensors header: not UTF-8", path=path) from None
    header = parse_json(text, path=path, what="safetensors header")
    if not isinstance(header, dict):
        raise InputError("corrupt safetensors header: not a JSON object", path=path)
    return header, 8 + hlen


def _read_safetensors(path: Path) -> tuple[dict[str, RawArray], dict[str, str]]:
    """Parse a safetensors file with the format's own rules (those of the ``safetensors``
    library): tensors tile the data section exactly, without overlap, gap or tail."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        header, start = _st_header(path, f, size)
    meta = header.pop("__metadata__", None)
    if meta is None:
        meta = {}
    if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
        raise InputError("corrupt safetensors metadata: expected an object of strings", path=path)
    entries: list[tuple[int, int, str, str, tuple[int, ...]]] = []
    for name, info in header.items():
        try:
            st_dtype = info["dtype"]
            shape = tuple(_header_int(d) for d in info["shape"])
            begin, end = (_header_int(o) for o in info["data_offsets"])
            if not isinstance(st_dtype, str):
                raise TypeError(st_dtype)
        except (KeyError, TypeError, ValueError):
            raise InputError(
                "corrupt safetensors header entry: expected dtype, shape and data_offsets "
                "holding non-negative integers",
                path=path,
                field=str(name),
            ) from None
        if st_dtype not in _ST_BITS:
            raise InputError(f"unknown safetensors dtype {st_dtype!r}", path=path, field=str(name))
        bits = math.prod(shape) * _ST_BITS[st_dtype]  # a Python int: cannot overflow
        # sub-byte dtypes (F4, F6) must fill whole bytes along the last dimension
        ragged = bool(shape) and shape[-1] * _ST_BITS[st_dtype] % 8 != 0
        if (
            not _possible_shape(shape)
            or bits % 8
            or ragged
            or (end < begin or end - begin != bits // 8)
        ):
            raise InputError(
                f"corrupt safetensors entry: shape {list(shape)} {st_dtype} does not match "
                f"data_offsets [{begin}, {end}]",
                path=path,
                field=str(name),
            )
        entries.append((begin, end, str(name), st_dtype, shape))
    position = 0
    for begin, end, name, _, _ in sorted(entries):
        if begin != position:
            what = "overlaps another tensor" if begin < position else "leaves a gap before it"
            raise InputError(
                f"corrupt safetensors layout: data_offsets [{begin}, {end}] {what}",
                path=path,
                field=name,
            )
        position = end
    if start + position > size:
        raise InputError(
            f"truncated safetensors file: the tensors need {position} data bytes, the file "
            f"holds {size - start}",
            path=path,
        )
    if start + position < size:
        raise InputError(
            f"corrupt safetensors layout: {size - start - position} bytes after the last "
            "tensor belong to none",
            path=path,
        )
    arrays: dict[str, RawArray] = {}
    for begin, end, name, st_dtype, shape in entries:
        if st_dtype not in _ST_DTYPES:  # e.g. fp8 in a tensor we do not read: keep its name
            arrays[name] = RawArray(np.empty((0,)), f"unsupported {st_dtype}")
            continue
        dtype = _ST_DTYPES[st_dtype]
        np_dtype = np.dtype("uint16" if dtype == "bfloat16" else dtype)
        if begin == end:
            data = np.empty(shape, np_dtype)
        else:
            data = FileRows(path, np_dtype, start + begin, shape)  # type: ignore[assignment]
        arrays[name] = RawArray(data, dtype)
    return arrays, dict(meta)


MAX_NPZ_RATIO = 1000
#: Members that expand to less than this are never zip bombs (a constant labels
#: vector of a single-class test set compresses about 1000:1 with deflate).
NPZ_BOMB_FLOOR = 64 * 1024 * 1024
#: ``.npy`` headers are a few hundred bytes; numpy's own default limit.
MAX_NPY_HEADER = 10_000


def available_memory() -> int | None:
    """Bytes of memory available to a new allocation (``MemAvailable``), if known."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


class NpzMember:
    """One ``.npy`` member of an ``.npz`` archive: header read, data expanded on first use.

    Only the arrays a command needs are ever decompressed, so a huge member
    that nothing asks for costs nothing; one that is needed was checked
    against the size its header implies, and is checked against the memory
    available before it is expanded.
    """

    def __init__(
        self,
        path: Path,
        member: ZipMember,
        dtype: np.dtype,
        shape: tuple[int, ...],
        fortran: bool,
        data_start: int,
    ):
        self.path, self.member, self.dtype, self.shape = path, member, dtype, shape
        self.ndim = len(shape)
        self._fortran, self._data_start = fortran, data_start
        self._data: np.ndarray | None = None

    def __len__(self) -> int:
        return self.shape[0]

    def load(self) -> np.ndarray:
        if self._data is None:
            self._data = self._expand()
        return self._data

    def _expand(self) -> np.ndarray:
        name = self.member.name[:-4]
        nbytes = math.prod(self.shape) * self.dtype.itemsize
        free = available_memory()
        if free is not None and nbytes > free:
            raise InputError(
                f"array '{name}' expands to {nbytes / 2**30:.1f} GiB, more than the "
                f"{free / 2**30:.1f} GiB of memory available",
                path=self.path,
            )
        try:
            with zipfile.ZipFile(self.path) as zf, zf.open(self.member.name) as f:
                f.seek(self._data_start)
                raw = f.read(nbytes)
        except ZIP_ERRORS as e:
            raise InputError(
                f"array '{name}': corrupt .npz member ({_describe(e)})", path=self.path
            ) from None
        if len(raw) != nbytes:
            raise InputError(f"array '{name}': truncated .npz member", path=self.path)
        arr = np.frombuffer(raw, dtype=self.dtype)
        arr = arr.reshape(self.shape, order="F" if self._fortran else "C")
        if not self.dtype.isnative:  # big-endian data from another machine: convert
            arr = arr.astype(self.dtype.newbyteorder("="))
        return np.ascontiguousarray(arr)

    def __getitem__(self, key: object) -> np.ndarray:
        return self.load()[key]  # type: ignore[call-overload]

    def __array__(self, dtype: object = None, copy: object = None) -> np.ndarray:
        arr = self.load()
        return arr if dtype is None else np.asarray(arr, dtype=dtype)  # type: ignore[call-overload]


def _npy_header(zf: zipfile.ZipFile, member: ZipMember, path: Path) -> NpzMember:
    """Read and check one member's ``.npy`` header (its data stays compressed)."""
    name = member.name[:-4]
    try:
        with zf.open(member.name) as f:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                header = np.lib.format.read_array_header_1_0(f, max_header_size=MAX_NPY_HEADER)
            elif version in ((2, 0), (3, 0)):
                header = np.lib.format.read_array_header_2_0(f, max_header_size=MAX_NPY_HEADER)
            else:
                raise ValueError(f"unsupported .npy format version {version}")
            data_start = f.tell()
    except ZIP_ERRORS as e:
        text = str(e)
        if "max_header_size" in text or "may not be safe" in text:
            reason = f"its .npy header is longer than {MAX_NPY_HEADER} bytes"
        else:
            reason = f"not a valid .npy array ({_describe(e)})"
        raise InputError(f"array '{name}': {reason}", path=path) from None
    shape, fortran, dtype = header
    if dtype.hasobject:
        raise InputError(
            f"array '{name}' holds pickled Python objects; only numeric arrays are loaded "
            "(allow_pickle=False)",
            path=path,
        )
    if dtype.fields is not None or dtype.subdtype is not None:
        raise InputError(f"array '{name}' has a structured dtype {dtype}", path=path)
    if not _possible_shape(tuple(shape)):
        raise InputError(f"array '{name}' declares an impossible shape {list(shape)}", path=path)
    expected = data_start + math.prod(shape) * dtype.itemsize
    if member.size != expected:
        raise InputError(
            f"array '{name}' is {member.size} bytes, but its header (shape {list(shape)}, "
            f"{dtype}) implies {expected}",
            path=path,
        )
    if member.size > NPZ_BOMB_FLOOR and member.size > MAX_NPZ_RATIO * max(member.compressed, 1):
        raise InputError(
            f"array '{name}' expands {member.size} bytes from {member.compressed} "
            f"(ratio > {MAX_NPZ_RATIO}); refusing a zip bomb",
            path=path,
        )
    return NpzMember(path, member, dtype, tuple(shape), fortran, data_start)


def _read_npz(path: Path) -> tuple[dict[str, RawArray], dict[str, str]]:
    members = check_zip(path)
    arrays: dict[str, RawArray] = {}
    try:
        with zipfile.ZipFile(path) as zf:
            for m in members:
                if not m.name.endswith(".npy"):
                    raise InputError(f"member '{m.name}' is not an .npy array", path=path)
                lazy = _npy_header(zf, m, path)
                arrays[m.name[:-4]] = RawArray(lazy, str(lazy.dtype.newbyteorder("=")))  # type: ignore[arg-type]
    except ZIP_ERRORS as e:  # BadZipFile, zlib.error, EOFError, …: a damaged archive
        raise InputError(f"corrupt .npz file: {_describe(e)}", path=path) from None
    return arrays, {}


def torch_load_weights(path: Path) -> Any:
    """``torch.load(weights_only=True)`` on the CPU, memory-mapped when that is safe.

    Only tensors and plain containers are rebuilt; anything else raises
    ``pickle.UnpicklingError`` (malformed bytes may raise other exceptions).
    A zip-format file is memory-mapped only after every storage record was
    found to hold the bytes its tensors need: under ``mmap`` torch would read
    past a truncated record into the neighbouring bytes of the archive.
    """
    import torch

    with quiet():
        if path.suffix.lower() == ".safetensors":
            # torch.load picks its safetensors reader from this suffix; the content says
            # torch.save, so read it through a file object (no mmap then)
            with open(path, "rb") as f:
                return torch.load(f, map_location="cpu", weights_only=True)
        if not is_zip(read_head(path)):  # the legacy format cannot be memory-mapped
            return torch.load(path, map_location="cpu", weights_only=True)
        check_storage_records(path)
        return torch.load(path, map_location="cpu", weights_only=True, mmap=True)


def check_storage_records(path: Path) -> None:
    """Refuse a ``torch.save`` zip whose tensors need more bytes than their records hold.

    ``data.pkl`` is read with torch's weights-only unpickler onto the ``meta``
    device (no tensor is built) to learn each storage's key and size; every record's
    CRC-32 is verified, which torch skips when it memory-maps.
    """

    import torch
    from torch import _weights_only_unpickler

    members = {m.name.split("/", 1)[-1]: m for m in check_zip(path, single_root=True)}
    if "data.pkl" not in members:
        raise InputError("torch.save archive without data.pkl", path=path)
    with zipfile.ZipFile(path) as zf:
        pickled = zf.read(next(m.name for k, m in members.items() if k == "data.pkl"))
    needed: dict[str, int] = {}

    def persistent_load(saved_id: Any) -> Any:
        _, storage_type, key, _location, numel = saved_id
        dtype = torch.uint8 if storage_type is torch.UntypedStorage else storage_type.dtype
        nbytes = int(numel) * torch._utils._element_size(dtype)
        needed[str(key)] = max(needed.get(str(key), 0), nbytes)
        meta = torch.UntypedStorage(nbytes, device="meta")
        return torch.storage.TypedStorage(wrap_storage=meta, dtype=dtype, _internal=True)

    unpickler = _weights_only_unpickler.Unpickler(_io.BytesIO(pickled), encoding="utf-8")
    unpickler.persistent_load = persistent_load  # type: ignore[method-assign]
    unpickler.load()
    for key, nbytes in needed.items():
        record = members.get(f"data/{key}")
        if record is None:
            raise InputError(f"tensor storage 'data/{key}' is missing from the archive", path=path)
        if record.size < nbytes:
            raise InputError(
                f"tensor storage 'data/{key}' holds {record.size} bytes, its tensors need "
                f"{nbytes} (truncated or corrupt)",
                path=path,
            )
        if not verify_crc(path, record):  # torch does not check it under mmap
            raise InputError(
                f"tensor storage 'data/{key}' fails its CRC-32 check (corrupt)", path=path
            )


def _describe(e: BaseException) -> str:
    """The first line of an exception's message, with its type when the message is terse."""
    text = str(e).strip().splitlines()[0][:200] if str(e).strip() else ""
    return text if len(text) >= 12 else f"{type(e).__name__}: {text}".rstrip(": ")


def unpickling_refusal(e: BaseException) -> tuple[bool, str]:
    """Why ``torch.load(weights_only=True)`` failed: ``(True, globals)`` when the file holds
    pickled Python objects it would not import, ``(False, reason)`` when the bytes are
    simply not a valid pickle (corrupt, or another format)."""
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    for line in lines:
        if "GLOBAL" in line or "Unsupported global" in line:
            return True, line[:200]
    detail = next((line for line in lines if "WeightsUnpickler error" in line), "")
    detail = detail.split("WeightsUnpickler error:", 1)[-1].strip()
    if not detail:
        following = [line for line in lines if "Unsupported" in line or "invalid" in line]
        detail = following[0] if following else _describe(e)
    return False, detail[:200]


def torch_failure(e: BaseException, what: str) -> str:
    """One line for an exception out of ``torch.load`` on bytes that are not what we expect."""
    if isinstance(e, MemoryError) or "can't allocate memory" in str(e):
        return f"not enough memory to load this {what}"
    return f"corrupt or unreadable {what}: {_describe(e)}"


def _read_torch(path: Path) -> tuple[dict[str, RawArray], dict[str, str]]:
    import torch

    try:
        obj = torch_load_weights(path)
    except InputError:
        raise
    except pickle.UnpicklingError as e:
        is_pickle, detail = unpickling_refusal(e)
        if is_pickle:
            raise InputError(
                f"holds pickled Python objects, not just tensors; refusing to unpickle ({detail})",
                path=path,
            ) from None
        raise InputError(f"not a valid torch.save file ({detail})", path=path) from None
    except Exception as e:  # on malformed bytes torch.load raises KeyError, IndexError, …
        raise InputError(torch_failure(e, ".pt file"), path=path) from None
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


_MODEL_KINDS = {"torchscript": "a TorchScript model", "export": "a torch.export .pt2 model"}


def _sniff(path: Path, what: str = "predictions file") -> str:
    """The reader for a file, from its content (:func:`sc_eval.files.detect`)."""
    kind = detect(path, what)
    if kind in _MODEL_KINDS:
        raise InputError(
            f"is {_MODEL_KINDS[kind]}, not a {what}; run it with --data (or sc-eval infer)",
            path=path,
        )
    return kind


READERS = {"safetensors": _read_safetensors, "npz": _read_npz, "torch": _read_torch}


def read_arrays(
    path: str | os.PathLike[str], *, what: str = "file"
) -> tuple[dict[str, RawArray], dict[str, str]]:
    """Every array of a ``.safetensors``/``.npz``/``.pt`` file (kind from content), unvalidated.

    Returns ``(arrays, metadata)``; safetensors and npz arrays stay on disk until read.
    ``what`` names the expected file in error messages.
    """
    p = Path(path)
    try:
        return READERS[_sniff(p, what)](p)
    except OSError as e:
        raise InputError(f"cannot read: {os_error_reason(e)}", path=path) from None


# --------------------------------------------------------------------------- predictions
@dataclass(frozen=True)
class Predictions:
    """A validated predictions source: ``[N, C]`` logits or probabilities and labels.

    Attributes
    ----------
    values : RawArray
        Logits or probabilities, possibly still on disk (read chunk by chunk).
    kind : {"logits", "probs"}
    labels : ndarray of int64, shape (N,)
    index : ndarray of int64 or None
        Sample identifiers (e.g. dataset indices), used to align files.
    path : str or None
    metadata : dict
    extra : dict
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

    @property
    def ood(self) -> np.ndarray:
        """True for out-of-distribution samples (label ``-1``, see docs/ood.md)."""
        return self.labels == OOD_LABEL

    @property
    def has_ood(self) -> bool:
        return bool((self.labels == OOD_LABEL).any())


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
    ood_key: str = "ood",
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
    if lo < OOD_LABEL or hi >= c:
        bad = int(np.flatnonzero((labels < OOD_LABEL) | (labels >= c))[0])
        raise InputError(
            f"expected labels in [0, {c - 1}] for C = {c} classes, or {OOD_LABEL} for an "
            f"out-of-distribution sample, got {int(labels[bad])} at row {bad}",
            path=path,
            field=labels_key,
        )
    if ood_key in arrays:
        _check_ood(arrays[ood_key], labels, c, path=path, field=ood_key)
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
        if k not in (key, labels_key, index_key, ood_key) and len(a.shape) == 1 and a.shape[0] == n
    }
    return Predictions(values, kind, labels, index, path, metadata, extra)


def _check_ood(a: RawArray, labels: np.ndarray, c: int, *, path: object, field: str) -> None:
    """An ``ood`` mask must be boolean ``[N]`` and agree with the labels (OOD ⇔ label -1)."""
    n = labels.shape[0]
    if a.dtype != "bool":
        raise InputError(f"expected a boolean OOD mask, got {a.dtype}", path=path, field=field)
    _check_vector_shape(a, n, path=path, field=field)
    mask = np.asarray(a.full(), dtype=bool)
    clash = np.flatnonzero(mask != (labels == OOD_LABEL))
    if clash.size:
        i = int(clash[0])
        said = "OOD" if mask[i] else "in-distribution"
        raise InputError(
            f"row {i} is marked {said} but its label is {int(labels[i])}: OOD rows must have "
            f"label {OOD_LABEL} and in-distribution rows a label in [0, {c - 1}] "
            f"({clash.size} rows disagree)",
            path=path,
            field=field,
        )


def _check_vector_shape(a: RawArray, n: int, *, path: object, field: str) -> None:
    if len(a.shape) != 1 or a.shape[0] != n:
        raise InputError(
            f"expected shape [{n}] to match the {n} rows of predictions, got {list(a.shape)}",
            path=path,
            field=field,
        )


def _int_vector(a: RawArray, n: int, *, path: object, field: str) -> np.ndarray:
    if a.dtype not in _INT_KINDS:
        raise InputError(f"expected integers, got {a.dtype}", path=path, field=field)
    _check_vector_shape(a, n, path=path, field=field)
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
    ood_key: str = "ood",
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
    ood_key : str
        Name of an optional boolean ``[N]`` mask of out-of-distribution samples;
        it must agree with the labels (OOD rows hold label ``-1``).

    Returns
    -------
    Predictions

    Raises
    ------
    InputError
        Missing file or key, wrong shape or dtype, labels out of range, corrupt file.
    """
    arrays, meta = read_arrays(path, what="predictions file")
    return _validate(
        arrays,
        path=str(path),
        metadata=meta,
        logits_key=logits_key,
        probs_key=probs_key,
        labels_key=labels_key,
        index_key=index_key,
        ood_key=ood_key,
    )


def predictions_from_arrays(
    logits: ArrayInput | None = None,
    labels: ArrayInput | None = None,
    *,
    probs: ArrayInput | None = None,
    index: ArrayInput | None = None,
    ood: ArrayInput | None = None,
) -> Predictions:
    """Validate in-memory arrays (numpy or torch) as :class:`Predictions`.

    OOD samples hold label ``-1``; ``ood``, a boolean mask, may mark them too.
    """
    arrays: dict[str, RawArray] = {}
    named = (("logits", logits), ("probs", probs), ("labels", labels), ("index", index))
    for name, value in (*named, ("ood", ood)):
        if value is None:
            continue
        arr, dtype = _as_numpy(value)
        arrays[name] = RawArray(arr, dtype)
    if logits is not None and probs is not None:
        raise InputError("give either logits or probs, not both")
    return _validate(arrays, path=None, metadata={})


def _as_numpy(value: ArrayInput) -> tuple[np.ndarray, str]:
    if type(value).__module__.startswith("torch"):  # without importing torch for numpy input
        import torch

        t = cast("torch.Tensor", value).detach().cpu()
        if t.dtype == torch.bfloat16:
            return t.view(torch.int16).numpy().view(np.uint16), "bfloat16"
        value = t.numpy()
    try:
        arr = np.asarray(value)
    except (ValueError, TypeError) as e:  # ragged nested lists, …
        raise InputError(f"expected a rectangular numeric array: {e}") from None
    return arr, str(arr.dtype)


# --------------------------------------------------------------------------- writing
def write_predictions(
    path: str | os.PathLike[str],
    *,
    labels: np.ndarray,
    logits: np.ndarray | None = None,
    probs: np.ndarray | None = None,
    index: np.ndarray | None = None,
    metadata: dict[str, str] | None = None,
    cache: bool = False,
    ood: np.ndarray | None = None,
) -> None:
    """Write the canonical ``.safetensors`` predictions file, atomically.

    Metadata always holds ``format=sc-eval/predictions``, ``version`` and
    ``labels_sha256``; ``metadata`` adds free-text entries. ``ood``, a boolean
    ``[N]`` mask, marks out-of-distribution samples: their label is written as
    ``-1`` and the mask is stored as the ``ood`` tensor.
    """
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
    if ood is not None:
        mask = np.asarray(ood)
        if mask.dtype != np.bool_ or mask.shape != labels.shape:
            raise InputError(
                f"expected a boolean OOD mask of shape [{labels.shape[0]}], got {mask.dtype} "
                f"{list(mask.shape)}",
                field="ood",
            )
        labels = np.where(mask, OOD_LABEL, labels)
    tensors = {
        "logits" if logits is not None else "probs": np.ascontiguousarray(values),
        "labels": np.ascontiguousarray(labels),
    }
    if index is not None:
        tensors["index"] = np.ascontiguousarray(np.asarray(index, dtype=np.int64))
    if ood is not None:
        tensors["ood"] = np.ascontiguousarray(labels == OOD_LABEL)
    meta = {str(k): str(v) for k, v in (metadata or {}).items()}
    meta.update(format=FORMAT_NAME, version=FORMAT_VERSION, labels_sha256=labels_sha256(labels))
    with atomic_output(path, cache=cache) as tmp:
        save_safetensors(tmp, tensors, meta)


_ST_CODES = {v: k for k, v in _ST_DTYPES.items()}


def save_safetensors(path: Path, tensors: dict[str, np.ndarray], metadata: dict[str, str]) -> None:
    """Write a safetensors file (little-endian, C order, header padded to 8 bytes).

    Written here rather than with ``safetensors.numpy.save_file`` so that a
    failing write (full disk, …) is an ``OSError`` like every other output.
    """
    header: dict[str, object] = {"__metadata__": metadata}
    offset = 0
    arrays = []
    for name, value in tensors.items():
        arr = np.ascontiguousarray(value)
        arr = arr.astype(arr.dtype.newbyteorder("<"), copy=False)
        header[name] = {
            "dtype": _ST_CODES[arr.dtype.name],
            "shape": list(arr.shape),
            "data_offsets": [offset, offset + arr.nbytes],
        }
        offset += arr.nbytes
        arrays.append(arr)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for arr in arrays:
            f.write(arr.reshape(-1).view(np.uint8).data)
