"""Predictions files in and out (sc_eval.io): formats, dtypes, sniffing, validation."""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file as st_load
from safetensors.numpy import save_file as st_save

from sc_eval.errors import InputError
from sc_eval.io import (
    FORMAT_NAME,
    FORMAT_VERSION,
    labels_sha256,
    load_predictions,
    predictions_from_arrays,
    write_predictions,
)
from sc_eval.pipeline import score_samples

torch = pytest.importorskip("torch")

INT_DTYPES = ["int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64"]


def _logits(n=6, c=4, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, c)).astype(np.float32), rng.integers(0, c, n)


def _read(preds) -> np.ndarray:
    return np.concatenate([rows for _, rows in preds.chunks(4)]).astype(np.float64)


# --------------------------------------------------------------------------- safetensors
@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
@pytest.mark.parametrize("label_dtype", INT_DTYPES)
def test_safetensors_float_and_label_dtypes(tmp_path, dtype, label_dtype):
    z, y = _logits()
    path = tmp_path / "p.safetensors"
    st_save({"logits": z.astype(dtype), "labels": y.astype(label_dtype)}, str(path))
    preds = load_predictions(path)
    assert preds.kind == "logits" and preds.n == 6 and preds.num_classes == 4
    assert preds.labels.dtype == np.int64
    np.testing.assert_array_equal(preds.labels, y)
    np.testing.assert_array_equal(_read(preds), z.astype(dtype).astype(np.float64))


def test_safetensors_bf16(tmp_path):
    from safetensors.torch import save_file

    z, y = _logits(n=9, c=3)
    t = torch.from_numpy(z).to(torch.bfloat16)
    path = tmp_path / "bf16.safetensors"
    save_file({"logits": t, "labels": torch.from_numpy(y).to(torch.int32)}, str(path))
    preds = load_predictions(path)
    assert preds.values.dtype == "bfloat16"
    np.testing.assert_array_equal(_read(preds), t.float().numpy().astype(np.float64))
    assert not np.array_equal(_read(preds), z.astype(np.float64))  # really rounded to bf16


def test_safetensors_probs_and_index(tmp_path):
    z, y = _logits()
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    path = tmp_path / "p.safetensors"
    st_save({"probs": p, "labels": y, "index": np.arange(10, 16)}, str(path))
    preds = load_predictions(path)
    assert preds.kind == "probs" and not preds.has_logits
    assert preds.index.tolist() == list(range(10, 16))


def test_custom_key_names(tmp_path):
    z, y = _logits()
    path = tmp_path / "p.safetensors"
    st_save({"out": z, "target": y}, str(path))
    preds = load_predictions(path, logits_key="out", labels_key="target")
    np.testing.assert_array_equal(preds.labels, y)
    with pytest.raises(InputError, match="--logits-key"):
        load_predictions(path)
    path2 = tmp_path / "q.safetensors"
    st_save({"softmax": np.full((2, 2), 0.5), "labels": np.array([0, 1])}, str(path2))
    assert load_predictions(path2, probs_key="softmax").kind == "probs"


# --------------------------------------------------------------------------- npz and pt
@pytest.mark.parametrize("compressed", [False, True])
def test_npz(tmp_path, compressed):
    z, y = _logits()
    path = tmp_path / "p.npz"
    (np.savez_compressed if compressed else np.savez)(path, logits=z, labels=y.astype(np.int16))
    preds = load_predictions(path)
    np.testing.assert_array_equal(_read(preds), z)
    np.testing.assert_array_equal(preds.labels, y)


def test_npz_with_object_arrays_is_refused(tmp_path):
    path = tmp_path / "p.npz"
    np.savez(path, logits=np.zeros((2, 2)), labels=np.array([0, 1]), meta=np.array([{}], object))
    with pytest.raises(InputError, match="pickle"):
        load_predictions(path)


@pytest.mark.parametrize("suffix", [".pt", ".pth"])
@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32", "float64"])
def test_torch_dict_of_tensors(tmp_path, suffix, dtype):
    z, y = _logits(n=7, c=5)
    t = torch.from_numpy(z).to(getattr(torch, dtype))
    path = tmp_path / f"p{suffix}"
    torch.save({"logits": t, "labels": torch.from_numpy(y).to(torch.uint8)}, path)
    preds = load_predictions(path)
    np.testing.assert_array_equal(_read(preds), t.double().numpy())
    np.testing.assert_array_equal(preds.labels, y)


def test_legacy_torch_serialization(tmp_path):
    z, y = _logits()
    path = tmp_path / "legacy.pt"
    tensors = {"logits": torch.from_numpy(z), "labels": torch.from_numpy(y)}
    torch.save(tensors, path, _use_new_zipfile_serialization=False)
    assert path.read_bytes()[:1] == b"\x80"
    np.testing.assert_array_equal(_read(load_predictions(path)), z)


class NotATensor:
    pass


def test_torch_file_with_pickled_objects_is_refused(tmp_path):
    path = tmp_path / "p.pt"
    torch.save(
        {"logits": torch.zeros(2, 2), "labels": torch.tensor([0, 1]), "x": NotATensor()}, path
    )
    with pytest.raises(InputError, match="refusing to unpickle"):
        load_predictions(path)


def test_torch_file_that_is_not_a_dict(tmp_path):
    path = tmp_path / "p.pt"
    torch.save(torch.zeros(2, 2), path)
    with pytest.raises(InputError, match="dict of tensors"):
        load_predictions(path)


def test_in_memory_torch_tensors_including_bf16():
    z, y = _logits()
    t = torch.from_numpy(z).bfloat16()
    preds = predictions_from_arrays(t, torch.from_numpy(y))
    np.testing.assert_array_equal(_read(preds), t.double().numpy())
    np.testing.assert_array_equal(preds.labels, y)


# --------------------------------------------------------------------------- sniffing
def _write_kind(kind: str, path: Path, z, y):
    if kind == "safetensors":
        st_save({"logits": z, "labels": y}, str(path))
    elif kind == "npz":
        with open(path, "wb") as f:  # np.savez would append .npz to the name
            np.savez(f, logits=z, labels=y)
    else:
        torch.save({"logits": torch.from_numpy(z), "labels": torch.from_numpy(y)}, path)


@pytest.mark.parametrize(
    "kind, name",
    [
        ("safetensors", "p.npz"),
        ("safetensors", "p.pt"),
        ("safetensors", "p.bin"),
        ("npz", "p.safetensors"),
        ("npz", "p.pt"),
        ("npz", "p"),
        ("torch", "p.safetensors"),
        ("torch", "p.dat"),
    ],
)
def test_kind_is_sniffed_from_content_not_suffix(tmp_path, kind, name):
    z, y = _logits()
    path = tmp_path / name
    _write_kind(kind, path, z, y)
    preds = load_predictions(path)
    np.testing.assert_array_equal(_read(preds), z)
    np.testing.assert_array_equal(preds.labels, y)


def _raw_safetensors(tensors: dict[str, np.ndarray], header_len: int) -> bytes:
    """A safetensors file written by hand, its JSON header padded to ``header_len`` bytes."""
    codes = {"float32": "F32", "int64": "I64"}
    header, blobs, offset = {}, [], 0
    for name, a in tensors.items():
        b = np.ascontiguousarray(a).tobytes()
        header[name] = {
            "dtype": codes[str(a.dtype)],
            "shape": list(a.shape),
            "data_offsets": [offset, offset + len(b)],
        }
        blobs.append(b)
        offset += len(b)
    text = json.dumps(header).encode()
    assert len(text) <= header_len
    return struct.pack("<Q", header_len) + text.ljust(header_len, b" ") + b"".join(blobs)


@pytest.mark.parametrize("header_len", [0x180, 0x280, 0x1080])
@pytest.mark.parametrize("name", ["p.safetensors", "p.bin"])
def test_safetensors_whose_header_length_starts_like_a_pickle(tmp_path, header_len, name):
    z, y = _logits()
    path = tmp_path / name
    path.write_bytes(_raw_safetensors({"logits": z, "labels": y.astype(np.int64)}, header_len))
    assert path.read_bytes()[0] == 0x80  # the first byte of a pickle, too
    preds = load_predictions(path)
    np.testing.assert_array_equal(_read(preds), z)


# --------------------------------------------------------------------------- writing
def test_write_predictions_round_trip(tmp_path):
    z, y = _logits(n=11, c=3)
    path = tmp_path / "out.safetensors"
    write_predictions(
        path,
        logits=z,
        labels=y.astype(np.int32),
        index=np.arange(11) * 2,
        metadata={"model": "resnet", "note": "x=1"},
    )
    preds = load_predictions(path)
    np.testing.assert_array_equal(_read(preds), z)
    np.testing.assert_array_equal(preds.labels, y)
    assert preds.index.tolist() == list(range(0, 22, 2))
    want_sha = hashlib.sha256(y.astype("<i8").tobytes()).hexdigest()
    assert preds.metadata["format"] == FORMAT_NAME == "sc-eval/predictions"
    assert preds.metadata["version"] == FORMAT_VERSION
    assert preds.metadata["labels_sha256"] == want_sha == preds.labels_sha256
    assert preds.metadata["model"] == "resnet" and preds.metadata["note"] == "x=1"
    # a standard safetensors reader sees the same tensors
    raw = st_load(str(path))
    assert set(raw) == {"logits", "labels", "index"}
    assert raw["labels"].dtype == np.int64
    assert [p.name for p in tmp_path.iterdir()] == ["out.safetensors"]


def test_write_predictions_probs(tmp_path):
    p = np.array([[0.25, 0.75], [0.5, 0.5]])
    path = tmp_path / "p.safetensors"
    write_predictions(path, probs=p, labels=np.array([1, 0]))
    preds = load_predictions(path)
    assert preds.kind == "probs"
    np.testing.assert_array_equal(_read(preds), p)


def test_write_predictions_needs_exactly_one_of_logits_probs(tmp_path):
    with pytest.raises(ValueError):
        write_predictions(tmp_path / "x.safetensors", labels=np.array([0]))
    assert list(tmp_path.iterdir()) == []


def test_write_into_missing_directory_is_an_input_error(tmp_path):
    z, y = _logits()
    with pytest.raises(InputError, match="does not exist"):
        write_predictions(tmp_path / "nope" / "p.safetensors", logits=z, labels=y)


def test_labels_sha256_ignores_the_label_dtype():
    y = np.array([3, 1, 2])
    assert (
        labels_sha256(y.astype(np.uint8)) == labels_sha256(y) == labels_sha256(y.astype(np.int32))
    )
    assert labels_sha256(y) != labels_sha256(y[::-1])


# --------------------------------------------------------------------------- validation
def _st(tmp_path, **tensors) -> Path:
    path = tmp_path / "bad.safetensors"
    st_save({k: np.ascontiguousarray(v) for k, v in tensors.items()}, str(path))
    return path


Z, Y = _logits()
BAD = {
    "no logits": (dict(labels=Y), "'logits' or 'probs'"),
    "no labels": (dict(logits=Z), "labels"),
    "1-D logits": (dict(logits=Z[:, 0].copy(), labels=Y), "2-D"),
    "3-D logits": (dict(logits=Z[:, :, None].copy(), labels=Y), "2-D"),
    "int logits": (dict(logits=Z.astype(np.int32), labels=Y), "floating-point"),
    "float labels": (dict(logits=Z, labels=Y.astype(np.float32)), "integers"),
    "bool labels": (dict(logits=Z, labels=Y > 0), "integers"),
    "short labels": (dict(logits=Z, labels=Y[:-1]), "shape"),
    "2-D labels": (dict(logits=Z, labels=Y[:, None].copy()), "shape"),
    "label -2": (dict(logits=Z, labels=np.where(np.arange(6) == 2, -2, Y)), "in [0, 3]"),
    "label >= C": (dict(logits=Z, labels=np.where(np.arange(6) == 4, 4, Y)), "at row 4"),
    "C = 1": (dict(logits=Z[:, :1].copy(), labels=np.zeros(6, np.int64)), "C = 1"),
    "N = 0": (dict(logits=np.zeros((0, 3), np.float32), labels=np.zeros(0, np.int64)), "N = 0"),
    "duplicate index": (dict(logits=Z, labels=Y, index=np.array([0, 1, 2, 2, 3, 4])), "unique"),
    "huge uint64 label": (dict(logits=Z, labels=np.full(6, 2**63, np.uint64)), "too large"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_contents_raise_input_error_naming_file_and_field(tmp_path, case):
    tensors, expect = BAD[case]
    path = _st(tmp_path, **tensors)
    with pytest.raises(InputError) as info:
        load_predictions(path)
    msg = str(info.value)
    assert str(path) in msg
    assert expect in msg
    assert "\n" not in msg


@pytest.mark.parametrize("case", ["no labels", "float labels", "label >= C", "C = 1"])
def test_bad_contents_in_npz_too(tmp_path, case):
    tensors, expect = BAD[case]
    path = tmp_path / "bad.npz"
    np.savez(path, **tensors)
    with pytest.raises(InputError, match=expect.replace("[", r"\[")):
        load_predictions(path)


def test_field_is_named(tmp_path):
    path = _st(tmp_path, logits=Z, labels=Y.astype(np.float64))
    with pytest.raises(InputError, match="field 'labels'"):
        load_predictions(path)


def _valid_bytes(kind: str, tmp_path: Path) -> bytes:
    path = tmp_path / f"ok.{kind}"
    _write_kind(kind, path, *_logits(n=50, c=10))
    return path.read_bytes()


@pytest.mark.parametrize("kind", ["safetensors", "npz", "torch"])
@pytest.mark.parametrize("keep", [0.0, 0.02, 0.5, 0.97])
def test_truncated_files_raise_input_error(tmp_path, kind, keep):
    data = _valid_bytes(kind, tmp_path)
    path = tmp_path / f"cut.{'pt' if kind == 'torch' else kind}"
    path.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(InputError) as info:
        load_predictions(path)
    assert str(path) in str(info.value)


def test_garbage_and_missing_files(tmp_path):
    junk = tmp_path / "junk.txt"
    junk.write_text("hello, I am not a predictions file\n")
    with pytest.raises(InputError, match="unrecognised"):
        load_predictions(junk)
    with pytest.raises(InputError, match="no such file"):
        load_predictions(tmp_path / "missing.safetensors")
    with pytest.raises(InputError, match="directory"):
        load_predictions(tmp_path)


def test_corrupt_safetensors_header(tmp_path):
    path = tmp_path / "h.safetensors"
    header = b"{not json"
    path.write_bytes(struct.pack("<Q", len(header)) + header)
    with pytest.raises(InputError, match="header"):
        load_predictions(path)
    bad_entry = json.dumps({"logits": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 8]}})
    path.write_bytes(struct.pack("<Q", len(bad_entry)) + bad_entry.encode() + b"\0" * 16)
    with pytest.raises(InputError, match="does not match"):
        load_predictions(path)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_logits_are_an_input_error(tmp_path, bad):
    z = Z.copy()
    z[3, 1] = bad
    preds = load_predictions(_st(tmp_path, logits=z, labels=Y))
    with pytest.raises(InputError, match="row 3"):
        score_samples(preds, scores=["msp"])


def test_probs_that_do_not_sum_to_one_are_an_input_error(tmp_path):
    p = np.full((6, 4), 0.3)
    preds = load_predictions(_st(tmp_path, probs=p, labels=Y))
    with pytest.raises(InputError, match="summing to 1"):
        score_samples(preds, scores=["msp"])


def test_logits_that_look_like_probs_warn(tmp_path):
    z = np.exp(Z) / np.exp(Z).sum(axis=1, keepdims=True)
    z = np.tile(z, (4, 1))
    preds = load_predictions(_st(tmp_path, logits=z, labels=np.tile(Y, 4)))
    with pytest.warns(UserWarning, match="look like probabilities"):
        score_samples(preds, scores=["msp"])


def test_large_file_is_memory_mapped_and_chunked(tmp_path):
    z, y = _logits(n=1000, c=8)
    path = tmp_path / "big.safetensors"
    write_predictions(path, logits=z, labels=y)
    preds = load_predictions(path)
    assert type(preds.values.data) is not np.ndarray  # not read into memory
    sizes = [rows.shape[0] for _, rows in preds.chunks(300)]
    assert sizes == [300, 300, 300, 100]


def _safetensors_with_fp8_extra(path: Path) -> None:
    """A valid file whose extra tensor has a dtype numpy cannot represent (F8_E4M3)."""
    logits = np.array([[2.0, 0.0], [0.0, 1.0], [1.0, 3.0]], dtype=np.float32)
    labels = np.array([0, 1, 0], dtype=np.int64)
    blobs = [
        ("logits", "F32", [3, 2], logits.tobytes()),
        ("labels", "I64", [3], labels.tobytes()),
        ("emb8", "F8_E4M3", [3, 4], bytes(12)),
    ]
    header, offset, data = {}, 0, b""
    for name, dt, shape, raw in blobs:
        header[name] = {"dtype": dt, "shape": shape, "data_offsets": [offset, offset + len(raw)]}
        offset += len(raw)
        data += raw
    head = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(head)) + head + data)


def test_unsupported_dtype_in_an_unread_tensor_is_ignored(tmp_path):
    f = tmp_path / "fp8.safetensors"
    _safetensors_with_fp8_extra(f)
    preds = load_predictions(f)
    assert preds.n == 3 and preds.labels.tolist() == [0, 1, 0]


def test_unsupported_dtype_in_the_requested_tensor_is_named(tmp_path):
    f = tmp_path / "fp8.safetensors"
    _safetensors_with_fp8_extra(f)
    with pytest.raises(InputError, match=r"emb8.*F8_E4M3"):
        load_predictions(f, logits_key="emb8")
    with pytest.raises(InputError, match=r"field 'emb8'.*expected integers"):
        load_predictions(f, labels_key="emb8")


@pytest.mark.parametrize(
    ("logits", "labels", "match"),
    [
        (np.zeros((3,), np.float32), np.zeros(3, np.int64), r"\[N, C\]"),
        (np.zeros((0, 2), np.float32), np.zeros(0, np.int64), r"\[N, C\]"),
        (np.zeros((3, 2), np.int64), np.zeros(3, np.int64), "floating-point"),
        (np.zeros((3, 2), np.float32), np.zeros(3, np.float32), "integer labels"),
        (np.zeros((3, 2), np.float32), np.zeros(4, np.int64), r"shape \[3\]"),
    ],
)
def test_write_predictions_validates(tmp_path, logits, labels, match):
    out = tmp_path / "p.safetensors"
    with pytest.raises(InputError, match=match):
        write_predictions(out, logits=logits, labels=labels)
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_default_chunk_size_follows_available_memory(monkeypatch):
    import sc_eval.pipeline as pl

    monkeypatch.setattr(pl, "available_memory", lambda: 64 * 2**30)
    assert pl.default_chunk_size(1000) == pl.CHUNK_BYTES // 8000  # plenty: the CHUNK_BYTES target
    monkeypatch.setattr(pl, "available_memory", lambda: 96 * 2**20)
    small = pl.default_chunk_size(1000, workers=2)
    assert small == 96 * 2**20 // (4 * pl.WORKING_COPIES * 2) // 8000
    assert small < pl.default_chunk_size(1000, workers=1)
    monkeypatch.setattr(pl, "available_memory", lambda: 1)
    assert pl.default_chunk_size(1000) == 64  # never below 64 rows
    monkeypatch.setattr(pl, "available_memory", lambda: None)
    assert pl.default_chunk_size(10) == pl.CHUNK_BYTES // 80


def test_outputs_get_the_umask_mode_not_mkstemps_0600(tmp_path):
    import os

    umask = os.umask(0o022)
    try:
        out = tmp_path / "p.safetensors"
        write_predictions(out, logits=np.eye(3, dtype=np.float32), labels=np.arange(3))
        assert out.stat().st_mode & 0o777 == 0o644
    finally:
        os.umask(umask)


def test_zip_sniffing_lives_in_files_detect(tmp_path):
    """The zip magic is tested in one place (files.is_zip): io and models ask it."""
    import ast

    from sc_eval import files

    assert files.is_zip(b"PK\x03\x04rest") and not files.is_zip(b"\x80\x02}q")
    root = Path(__file__).resolve().parents[1] / "sc_eval"
    for path in root.rglob("*.py"):
        if path.name == "files.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, bytes):
                assert not node.value.startswith(b"PK\x03"), f"{path.name}: sniffs zips itself"
