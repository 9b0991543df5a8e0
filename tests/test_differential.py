"""Differential fuzzing of the loaders against the libraries that define the formats.

* safetensors: for fuzzed headers and files, sc-eval's reader accepts only what
  the ``safetensors`` library accepts (it may refuse more, always with an
  ``InputError``), and when both accept, the tensors are bit-identical.
* zip containers (``.npz``, ``torch.save``): duplicate names, local headers that
  disagree with the directory, truncated members and flipped bytes give an
  ``InputError`` or the correct arrays; never another exception, and never a
  payload run (a pickle that would create a marker file rides along).
"""

from __future__ import annotations

import io
import json
import pickle
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from sc_eval.errors import InputError
from sc_eval.io import read_arrays

safetensors_numpy = pytest.importorskip("safetensors.numpy")
safetensors_torch = pytest.importorskip("safetensors.torch")
safetensors_safe_open = pytest.importorskip("safetensors").safe_open
torch = pytest.importorskip("torch")


def _bytes(t) -> tuple[tuple[int, ...], bytes]:
    """A tensor's shape and its bytes as stored."""
    flat = t.contiguous().reshape(-1)
    return tuple(t.shape), flat.view(torch.uint8).numpy().tobytes() if flat.numel() else b""


DTYPES = {"F16": 2, "BF16": 2, "F32": 4, "F64": 8, "I32": 4, "I64": 8, "U8": 1, "BOOL": 1}
SETTINGS = settings(
    deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture], max_examples=150
)


def _write(path: Path, header: bytes, data: bytes) -> Path:
    path.write_bytes(struct.pack("<Q", len(header)) + header + data)
    return path


@st.composite
def tensor_layouts(draw):
    """A header that is right, then perturbed in one of many ways."""
    n = draw(st.integers(1, 3))
    entries, offset = {}, 0
    for i in range(n):
        dtype = draw(st.sampled_from(sorted(DTYPES)))
        shape = draw(st.lists(st.integers(0, 4), min_size=0, max_size=3))
        size = int(np.prod(shape, dtype=np.int64)) * DTYPES[dtype]
        entries[f"t{i}"] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + size]}
        offset += size
    data = bytes(draw(st.binary(min_size=offset, max_size=offset)))
    mutation = draw(
        st.sampled_from(
            ["none", "shift", "grow", "shrink", "swap", "trail", "cut", "dtype", "shape",
             "meta", "meta-bad", "neg", "float", "extra", "offsets3", "dup"]
        )
    )  # fmt: skip
    name = draw(st.sampled_from(sorted(entries)))
    e = entries[name]
    header: object = {**entries}
    raw = None
    if mutation == "shift":
        e["data_offsets"] = [o + draw(st.integers(1, 8)) for o in e["data_offsets"]]
    elif mutation == "grow":
        e["data_offsets"][1] += draw(st.integers(1, 8))
    elif mutation == "shrink" and e["data_offsets"][1] > e["data_offsets"][0]:
        e["data_offsets"][1] -= 1
    elif mutation == "swap":
        e["data_offsets"] = e["data_offsets"][::-1]
    elif mutation == "trail":
        data += b"\0" * draw(st.integers(1, 8))
    elif mutation == "cut" and data:
        data = data[: -draw(st.integers(1, len(data)))]
    elif mutation == "dtype":
        e["dtype"] = draw(st.sampled_from(["F8_E5M2", "XYZ", "f32", "C64", "F4", 7]))
    elif mutation == "shape":
        e["shape"] = draw(st.sampled_from([[2**40, 2**40], [-1], ["3"], [1.5], None]))
    elif mutation == "meta":
        header = {"__metadata__": {"a": "b"}, **entries}
    elif mutation == "meta-bad":
        header = {"__metadata__": draw(st.sampled_from([{"a": 1}, [], "x", {"a": None}])),
                  **entries}  # fmt: skip
    elif mutation == "neg":
        e["data_offsets"] = [-1, e["data_offsets"][1]]
    elif mutation == "float":
        e["data_offsets"] = [float(o) for o in e["data_offsets"]]
    elif mutation == "extra":
        e["comment"] = "hello"
    elif mutation == "offsets3":
        e["data_offsets"] = [*e["data_offsets"], 0]
    elif mutation == "dup":
        body = json.dumps(entries)[1:-1]
        raw = ("{" + body + "," + json.dumps(name) + ":" + json.dumps(e) + "}").encode()
    text = raw if raw is not None else json.dumps(header).encode()
    pad = draw(st.sampled_from([b"", b" ", b"  \n"]))
    return text + pad, data


@SETTINGS
@given(layout=tensor_layouts())
def test_safetensors_reader_never_accepts_more_than_the_library(tmp_path_factory, layout):
    header, data = layout
    path = _write(tmp_path_factory.mktemp("st") / "f.safetensors", header, data)
    try:  # the library validates the whole layout when it opens the file
        with safetensors_safe_open(str(path), "np") as f:
            names = set(f.keys())
    except Exception:
        names = None
    try:  # torch's front end reads bf16 (numpy's cannot), but not every dtype
        theirs = {k: _bytes(v) for k, v in safetensors_torch.load_file(str(path)).items()}
    except Exception:
        theirs = {}
    try:
        arrays, _ = read_arrays(path)
        ours = {k: a for k, a in arrays.items()}
    except InputError:
        return  # refusing more than the library is allowed
    assert names is not None, f"accepted what safetensors refuses: {header!r}"
    assert set(ours) == names
    for k, a in ours.items():
        if a.dtype.startswith("unsupported") or k not in theirs:
            continue
        mine = np.asarray(a.data)  # as stored (bf16 as its uint16 bits)
        shape, raw = theirs[k]
        assert mine.shape == shape
        assert mine.tobytes() == raw


@pytest.mark.parametrize("name", ["plain", "meta"])
def test_files_written_by_the_library_are_read_identically(tmp_path, name):
    rng = np.random.default_rng(0)
    tensors = {
        "logits": rng.normal(size=(7, 3)).astype(np.float32),
        "labels": rng.integers(0, 3, 7),
        "index": np.arange(7, dtype=np.int32),
    }
    path = tmp_path / "f.safetensors"
    safetensors_numpy.save_file(tensors, str(path), metadata={"a": "b"} if name == "meta" else None)
    arrays, _ = read_arrays(path)
    for k, v in tensors.items():
        assert arrays[k].full().tobytes() == v.tobytes()


# --------------------------------------------------------------------------- zip fuzz
class _Marker:
    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def _npz_bytes(payload_path: str) -> bytes:
    buf = io.BytesIO()
    rng = np.random.default_rng(1)
    np.savez(buf, logits=rng.normal(size=(6, 3)).astype(np.float32), labels=np.arange(6) % 3)
    return buf.getvalue()


def _pt_bytes(payload_path: str) -> bytes:
    torch = pytest.importorskip("torch")
    buf = io.BytesIO()
    torch.save({"logits": torch.zeros(6, 3), "labels": torch.arange(6) % 3}, buf)
    return buf.getvalue()


def _mutate_zip(raw: bytes, action: str, where: int, payload: bytes) -> bytes:
    with zipfile.ZipFile(io.BytesIO(raw)) as zf:
        members = [(i.filename, zf.read(i.filename)) for i in zf.infolist()]
    name = members[where % len(members)][0]
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        for n, d in members:
            if action == "dup-first" and n == name:
                zf.writestr(n, payload)
            zf.writestr(n, d)
            if action == "dup-last" and n == name:
                zf.writestr(n, payload)
            if action == "case" and n == name:
                zf.writestr(n.upper(), payload)
    result = bytearray(out.getvalue())
    if action in ("local-name", "flip", "truncate"):
        with zipfile.ZipFile(io.BytesIO(bytes(result))) as zf:
            info = zf.infolist()[where % len(members)]
        if action == "local-name":
            result[info.header_offset + 30] ^= 0x20
        elif action == "flip":
            at = info.header_offset + 30 + len(info.filename) + 1
            if at < len(result):
                result[at] ^= 0xFF
        else:
            return bytes(result[: info.header_offset + 40])
    return bytes(result)


@settings(deadline=None, max_examples=60, suppress_health_check=[HealthCheck.too_slow])
@given(
    fmt=st.sampled_from(["npz", "pt"]),
    action=st.sampled_from(["dup-first", "dup-last", "case", "local-name", "flip", "truncate"]),
    where=st.integers(0, 20),
)
def test_zip_loaders_refuse_or_read_correctly_never_run_code(tmp_path_factory, fmt, action, where):
    folder = tmp_path_factory.mktemp("zip")
    marker = folder / "pwned"
    payload = pickle.dumps(_Marker(str(marker)), protocol=2)
    good = (_npz_bytes if fmt == "npz" else _pt_bytes)(str(marker))
    path = folder / f"f.{fmt}"
    path.write_bytes(_mutate_zip(good, action, where, payload))
    assume(path.read_bytes() != good)
    try:
        arrays, _ = read_arrays(path)
        values = {k: a.full() for k, a in arrays.items()}
    except InputError:
        values = None
    assert not marker.exists()
    if values is not None:  # accepted: then it must be exactly the original content
        ref = folder / f"ref.{fmt}"
        ref.write_bytes(good)
        want = {k: a.full() for k, a in read_arrays(ref)[0].items()}
        assert set(values) == set(want)
        for k in want:
            assert np.array_equal(values[k], want[k])
