"""Fuzzing (issue 9): whatever the bytes or arrays, only documented exceptions escape.

The loaders get random bytes and mutated valid files (safetensors, npz, pt) and a
structured fuzz of safetensors headers; ``sc_eval.evaluate`` gets arbitrary shapes,
dtypes and values. Anything but :class:`~sc_eval.errors.InputError` /
:class:`~sc_eval.errors.UsageError` (or a success) is a bug.

The default run is bounded (``FAST`` examples per test, a few seconds in all);
``pytest -m slow tests/test_fuzz.py`` runs ``THOROUGH`` examples per test.
"""

from __future__ import annotations

import contextlib
import json
import struct
import sys
import tempfile
import warnings
from functools import cache
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from sc_eval import evaluate
from sc_eval.errors import InputError, UsageError
from sc_eval.io import read_arrays
from sc_eval.pipeline import score_samples
from sc_eval.sources import load_source

torch = pytest.importorskip("torch")

FAST = 50
THOROUGH = 1000
DOCUMENTED = (InputError, UsageError)
KINDS = {"safetensors": ".safetensors", "npz": ".npz", "pt": ".pt"}


def fuzz_settings(n: int):
    return settings(
        max_examples=n,
        deadline=None,
        derandomize=n == FAST,  # the CI budget is reproducible; the slow run explores
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


# --------------------------------------------------------------------------- loaders
@cache
def valid_bytes(kind: str) -> bytes:
    """A small valid predictions file of each kind (logits, labels, index)."""
    rng = np.random.default_rng(0)
    z = rng.normal(size=(6, 3)).astype(np.float32)
    y = np.array([0, 1, 2, 0, 1, 2])
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / f"v{KINDS[kind]}"
        if kind == "safetensors":
            from sc_eval.io import write_predictions

            write_predictions(path, logits=z, labels=y, index=np.arange(6))
        elif kind == "npz":
            np.savez_compressed(path, logits=z, labels=y, index=np.arange(6))
        else:
            torch.save({"logits": torch.from_numpy(z), "labels": torch.from_numpy(y)}, path)
        return path.read_bytes()


def load_everything(data: bytes, suffix: str) -> None:
    """Load ``data`` the ways the commands do; only documented errors may escape."""
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / f"f{suffix}"
        path.write_bytes(data)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with contextlib.suppress(DOCUMENTED):
                read_arrays(path)
            with contextlib.suppress(DOCUMENTED):
                preds = load_source(path)
                score_samples(preds, scores=["msp", "maxlogit"], nan_policy="rank-last")


@st.composite
def mutated(draw, kind: str) -> bytes:
    """A valid file with a few bytes replaced, inserted or cut (headers hit more often)."""
    data = bytearray(valid_bytes(kind))
    head = min(len(data), 8 + struct.unpack("<Q", data[:8])[0]) if kind == "safetensors" else 64
    pos = st.one_of(st.integers(0, head - 1), st.integers(0, len(data) - 1))
    for i, b in draw(st.lists(st.tuples(pos, st.integers(0, 255)), max_size=6)):
        data[i] = b
    if draw(st.booleans()):
        at = draw(st.integers(0, len(data)))
        data[at:at] = draw(st.binary(min_size=1, max_size=16))
    if draw(st.booleans()):
        data = data[: draw(st.integers(0, len(data)))]
    return bytes(data)


def _random_bytes_test(n: int):
    @fuzz_settings(n)
    @given(
        data=st.one_of(
            st.binary(max_size=512),
            st.binary(max_size=64).map(lambda b: b"PK\x03\x04" + b),
            st.binary(max_size=64).map(lambda b: b"\x80\x02" + b),
            st.binary(max_size=64).map(lambda b: struct.pack("<Q", len(b)) + b"{" + b),
        ),
        suffix=st.sampled_from([".safetensors", ".npz", ".pt", ".bin"]),
    )
    def test(data: bytes, suffix: str) -> None:
        load_everything(data, suffix)

    return test


def _mutated_test(n: int):
    @fuzz_settings(n)
    @given(kind=st.sampled_from(sorted(KINDS)), data=st.data())
    def test(kind: str, data) -> None:
        load_everything(data.draw(mutated(kind)), KINDS[kind])

    return test


# safetensors headers: plausible and implausible entries
_JSONISH = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
)
_ENTRY = st.one_of(
    st.fixed_dictionaries(
        {
            "dtype": st.sampled_from(["F32", "F16", "BF16", "F64", "I64", "U8", "BOOL", "F8_E4M3"])
            | st.text(max_size=4),
            "shape": st.lists(st.sampled_from([0, 1, 3, 6, 2**40, 2**63]) | _JSONISH, max_size=4)
            | _JSONISH,
            "data_offsets": st.lists(st.sampled_from([0, 24, 72, 2**64]) | _JSONISH, max_size=3)
            | _JSONISH,
        }
    ),
    _JSONISH,
    st.lists(_JSONISH, max_size=3),
)


@st.composite
def safetensors_files(draw) -> bytes:
    names = st.sampled_from(["logits", "probs", "labels", "index", "__metadata__", "x"])
    header = draw(st.dictionaries(names, _ENTRY, max_size=4))
    text = json.dumps(header).encode()
    body = draw(st.binary(max_size=128))
    declared = draw(st.one_of(st.just(len(text)), st.integers(0, 2**64 - 1)))
    return struct.pack("<Q", declared) + text + body


def _header_test(n: int):
    @fuzz_settings(n)
    @given(data=safetensors_files())
    def test(data: bytes) -> None:
        load_everything(data, ".safetensors")

    return test


# --------------------------------------------------------------------------- evaluate()
_DTYPES = st.sampled_from(
    ["float16", "float32", "float64", "int8", "int64", "uint8", "bool", "complex64"]
)


@st.composite
def arrays(draw, *, max_dims: int = 3):
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=max_dims, min_side=0, max_side=6))
    dtype = np.dtype(draw(_DTYPES))
    return draw(hnp.arrays(dtype, shape))


@st.composite
def evaluate_inputs(draw):
    n = draw(st.integers(0, 12))
    c = draw(st.integers(0, 5))
    if draw(st.booleans()):  # mostly well-shaped, with hostile values
        values = draw(
            hnp.arrays(
                draw(st.sampled_from(["float16", "float32", "float64"])),
                (n, c),
                elements=st.floats(allow_nan=True, allow_infinity=True, width=16),
            )
        )
        labels = draw(hnp.arrays(draw(st.sampled_from(["int64", "uint8", "int8"])), (n,)))
    else:  # anything at all
        values, labels = draw(arrays()), draw(arrays(max_dims=2))
    kwargs = {
        "scores": draw(
            st.lists(
                st.sampled_from(["msp", "maxlogit", "margin", "energy", "maxlogit-pnorm", "nope"]),
                min_size=1,
                max_size=3,
            )
        ),
        "nan_policy": draw(st.sampled_from(["refuse", "drop", "rank-last"])),
        "coverages": draw(st.lists(st.floats(allow_nan=True), max_size=2)),
    }
    key = "probs" if draw(st.booleans()) else "logits"
    if draw(st.integers(0, 9)) == 0:  # sometimes torch tensors
        values = torch.from_numpy(np.ascontiguousarray(values)) if values.dtype != bool else values
    return {key: values, "labels": labels, **kwargs}


def _evaluate_test(n: int):
    @fuzz_settings(n)
    @given(kwargs=evaluate_inputs())
    def test(kwargs) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with contextlib.suppress(DOCUMENTED):
                evaluate(**kwargs)

    return test


test_random_bytes_loaders = _random_bytes_test(FAST)
test_mutated_files_loaders = _mutated_test(FAST)
test_safetensors_headers = _header_test(FAST)
test_evaluate_arbitrary_arrays = _evaluate_test(FAST)

test_random_bytes_loaders_thorough = pytest.mark.slow(_random_bytes_test(THOROUGH))
test_mutated_files_loaders_thorough = pytest.mark.slow(_mutated_test(THOROUGH))
test_safetensors_headers_thorough = pytest.mark.slow(_header_test(THOROUGH))
test_evaluate_arbitrary_arrays_thorough = pytest.mark.slow(_evaluate_test(THOROUGH))


def test_the_fuzz_can_fail(monkeypatch):
    """The harness lets an undocumented exception through (so the fuzz tests can fail)."""

    def broken(path, **kwargs):
        raise KeyError("a bug")

    monkeypatch.setattr(sys.modules[__name__], "read_arrays", broken)
    with pytest.raises(KeyError):
        load_everything(valid_bytes("safetensors"), ".safetensors")
