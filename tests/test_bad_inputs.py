"""The bad-input corpus (issue 9): every command, every way a user can get it wrong.

Each case runs through Typer's ``CliRunner`` in a directory of generated bad files
and must give: exit code 2, exactly one non-empty stderr line that starts with
``sc-eval: error:`` and names the file (where there is one) and what was expected,
no traceback anywhere, nothing on stdout, and no output file (nor temporary file)
where ``-o``/``--out``/``--junit``/``--plot`` pointed. A malicious pickle in the
corpus would create ``pwned`` if it were ever unpickled; it must never appear.

The corpus is a table (``CASES``) so its size shows in
``pytest --collect-only -q tests/test_bad_inputs.py``.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import struct
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from conftest import fixed_predictions
from safetensors.numpy import save_file
from typer.testing import CliRunner

from sc_eval.cli import app
from sc_eval.io import write_predictions

torch = pytest.importorskip("torch")

ROOT = Path(__file__).resolve().parents[1]
ENV = {"NO_COLOR": "1", "COLUMNS": "200", "SC_EVAL_DEBUG": None, "GITHUB_STEP_SUMMARY": None}
MARKER = "pwned"
IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


class Meta:
    """A harmless custom object: a .pt holding it needs unpickling, which is refused."""

    def __init__(self) -> None:
        self.note = "trained on Tuesday"


class Evil:
    """Unpickling this creates the file ``MARKER`` — the payload that must never run."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


# --------------------------------------------------------------------------- the files
def _npy_header(shape: tuple[int, ...], dtype: str) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buf, {"descr": np.dtype(dtype).str, "fortran_order": False, "shape": shape}
    )
    return buf.getvalue()


def _zip_bomb(path: str, mib: int = 128) -> None:
    """An .npz whose logits expand ``mib`` MiB of zeros from ~1000 times less (streamed)."""
    chunk = bytes(2**20)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        with zf.open("logits.npy", "w", force_zip64=True) as f:
            f.write(_npy_header((mib * 2**18 // 2, 2), "<f4"))
            for _ in range(mib):
                f.write(chunk)
        zf.writestr("labels.npy", _npy_header((0,), "<i8"))


def _torch_preds(path: str, z: np.ndarray, y: np.ndarray, **extra: object) -> None:
    torch.save({"logits": torch.from_numpy(z), "labels": torch.from_numpy(y), **extra}, path)


def _make_corpus(d: Path) -> None:
    """Write every good and bad file of the corpus into ``d`` (the cwd)."""
    z, y = fixed_predictions()
    n, c = z.shape
    marker = str(d / MARKER)
    # good files
    write_predictions("good.safetensors", logits=z, labels=y)
    np.savez("good.npz", logits=z, labels=y)
    _torch_preds("good.pt", z, y)
    e = np.exp(z - z.max(axis=1, keepdims=True))
    write_predictions("probs.safetensors", probs=e / e.sum(axis=1, keepdims=True), labels=y)
    write_predictions("relabeled.safetensors", logits=z, labels=(y + 1) % c)
    write_predictions("short.safetensors", logits=z[:20], labels=y[:20])
    write_predictions("four.safetensors", logits=np.pad(z, ((0, 0), (0, 1))), labels=y)
    r = CliRunner(env=ENV).invoke(
        app, ["score", "good.safetensors", "-f", "json", "-o", "base.json"]
    )
    assert r.exit_code == 0, r.output
    # keys and shapes
    save_file({"scores": z, "labels": y}, "wrongkey.safetensors")
    np.savez("nolabels.npz", logits=z)
    save_file({"logits": np.ascontiguousarray(z[:, 0]), "labels": y}, "logits1d.safetensors")
    np.savez("logits3d.npz", logits=np.stack([z, z], axis=2), labels=y)
    save_file({"logits": z, "labels": y[:-1]}, "nmismatch.safetensors")
    np.savez("floatlabels.npz", logits=z, labels=y.astype(np.float32))
    neg = y.copy()
    neg[5] = -2  # -1 marks an OOD sample; -2 is not a label
    save_file({"logits": z, "labels": neg}, "neglabels.safetensors")
    big = y.copy()
    big[2] = c
    _torch_preds("biglabels.pt", z, big)
    save_file(
        {"logits": np.ones((n, 1), np.float32), "labels": np.zeros(n, np.int64)}, "c1.safetensors"
    )
    save_file(
        {"logits": np.zeros((0, c), np.float32), "labels": np.zeros(0, np.int64)}, "n0.safetensors"
    )
    # values
    bad = z.copy()
    bad[3, 1] = np.nan
    bad[7, 0] = np.nan
    save_file({"logits": bad, "labels": y}, "nan.safetensors")
    bad = z.copy()
    bad[4, 2] = np.inf
    np.savez("posinf.npz", logits=bad, labels=y)
    bad = z.copy()
    bad[0, 0] = -np.inf
    _torch_preds("neginf.pt", bad, y)
    p = e / e.sum(axis=1, keepdims=True)
    p[6] *= 1.2
    write_predictions("badprobs.safetensors", probs=p, labels=y)
    # broken files
    for name in ("good.safetensors", "good.npz", "good.pt"):
        data = Path(name).read_bytes()
        Path(name.replace("good", "trunc")).write_bytes(data[: len(data) // 2])
    header = b'{"logits": {"dtype": "F32", "shape": [24, 3], "data_offsets": [0, 288]'  # no "}"
    Path("corrupt.safetensors").write_bytes(struct.pack("<Q", len(header)) + header + bytes(288))
    rng = np.random.default_rng(9)
    Path("corrupt.npz").write_bytes(b"PK\x03\x04" + rng.bytes(500))
    Path("corrupt.pt").write_bytes(b"\x80\x02" + rng.bytes(500))
    Path("hugeheader.safetensors").write_bytes(struct.pack("<Q", 2**62) + b'{"logits": 1}')
    labels = '"labels": {"dtype": "I64", "shape": [0], "data_offsets": [0, 0]}'
    for name, entry in {
        "overflow": f'"shape": [{2**40}, {2**40}], "data_offsets": [0, 0]',  # 2**80 wraps int64
        "infoffset": '"shape": [24, 3], "data_offsets": [0, 1e400]',  # json reads inf
    }.items():
        text = f'{{"logits": {{"dtype": "F32", {entry}}}, {labels}}}'.encode()
        Path(f"{name}.safetensors").write_bytes(struct.pack("<Q", len(text)) + text)
    _zip_bomb("bomb.npz")
    np.savez("objects.npz", logits=z, labels=y, meta=np.array([{"a": 1}], dtype=object))
    # pickles
    _torch_preds("pickled.pt", z, y, meta=Meta())
    _torch_preds("evil.pt", z, y, payload=Evil(marker))
    torch.save(Evil(marker), "evil_legacy.pt", _use_new_zipfile_serialization=False)
    Path("evil_raw.pt").write_bytes(pickle.dumps(Evil(marker), protocol=2))
    # paths
    Path("adir").mkdir()
    Path("adir.safetensors").mkdir()
    os.symlink("nowhere.safetensors", "dangling.safetensors")
    Path("locked.safetensors").write_bytes(Path("good.safetensors").read_bytes())
    Path("locked.safetensors").chmod(0)
    Path("bad.json").write_text("{not json")
    Path("notresult.json").write_text('{"schema": "something/else"}')
    Path("notes.txt").write_text("hello, I am not a predictions file\n")
    # inference: a state_dict of tests/nets.py's MLP and data files
    from nets import IN_FEATURES, MLP, trained

    torch.save(trained(MLP(), seed=1).state_dict(), "mlp_sd.pt")
    Path("trunc_sd.pt").write_bytes(Path("mlp_sd.pt").read_bytes()[:300])
    x = rng.normal(size=(10, IN_FEATURES)).astype(np.float32)
    save_file({"inputs": x, "labels": np.arange(10) % 4}, "data.safetensors")
    save_file({"x": x, "labels": np.arange(10) % 4}, "data_nokey.safetensors")
    np.savez("data_floatlabels.npz", inputs=x, labels=(np.arange(10) % 4).astype(np.float64))
    save_file({"inputs": x, "labels": np.arange(10)}, "data_biglabels.safetensors")
    _hostile_files(z, y, marker)


def _rezip(src: str, dst: str, edit) -> None:
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            for name, data in edit(info.filename, zin.read(info.filename)):
                zout.writestr(name, data)


def _hostile_files(z: np.ndarray, y: np.ndarray, marker: str) -> None:
    """Round two (issue 13): parser differentials, layouts the format forbids, odd paths."""
    import warnings

    warnings.simplefilter("ignore", UserWarning)  # zipfile warns about the duplicates we write
    evil_pickle = pickle.dumps(Evil(marker), protocol=2)
    _rezip("good.npz", "dup.npz", lambda n, d: [(n, d), (n, d)])
    _rezip("good.pt", "dup.pt", lambda n, d: [(n, evil_pickle), (n, d)] if n.endswith(
        "data.pkl") else [(n, d)])  # fmt: skip
    _rezip("good.npz", "dotdot.npz", lambda n, d: [("../" + n, d)])
    Path("prepended.npz").write_bytes(b"#!/bin/sh\n" + Path("good.npz").read_bytes())
    header = json.dumps(
        {"logits": {"dtype": "F32", "shape": [24, 3], "data_offsets": [0, 288]},
         "labels": {"dtype": "I64", "shape": [24], "data_offsets": [96, 288]}}
    ).encode()  # fmt: skip
    Path("overlap.safetensors").write_bytes(struct.pack("<Q", len(header)) + header + bytes(288))
    header = json.dumps(
        {"logits": {"dtype": "F32", "shape": [24, 3], "data_offsets": [0, 288]},
         "labels": {"dtype": "I64", "shape": [24], "data_offsets": [288, 480]}}
    ).encode()  # fmt: skip
    Path("tail.safetensors").write_bytes(struct.pack("<Q", len(header)) + header + bytes(500))
    header = json.dumps(
        {"__metadata__": {"n": 5}, "logits": {"dtype": "F32", "shape": [24, 3],
         "data_offsets": [0, 288]}, "labels": {"dtype": "I64", "shape": [24],
         "data_offsets": [288, 480]}}
    ).encode()  # fmt: skip
    Path("nonstrmeta.safetensors").write_bytes(struct.pack("<Q", len(header)) + header + bytes(480))
    deep = b'{"a":' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    Path("deep.safetensors").write_bytes(struct.pack("<Q", len(deep)) + deep)
    Path("deep.json").write_bytes(deep)
    doc = json.loads(Path("base.json").read_text())
    doc["results"][0]["scores"] = [{}]
    Path("badshape.json").write_text(json.dumps(doc))
    np.savez("bigendian_objects.npz", logits=z.astype(">f4"), labels=y.astype(">i8"),
             meta=np.array([None], dtype=object))  # fmt: skip
    os.mkfifo("fifo.safetensors")
    Path("random.pt").write_bytes(np.random.default_rng(3).bytes(300).replace(b"\x80", b"\x81"))


# --------------------------------------------------------------------------- the table
@dataclass(frozen=True)
class Case:
    """One bad invocation.

    ``argv`` may use ``{out}``: a fresh, empty directory that must still be empty
    afterwards. ``expect``: substrings of the one error line (the file and what
    was expected).
    """

    argv: tuple[str, ...]
    expect: tuple[str, ...]


def case(*argv: str, expect: tuple[str, ...] | str) -> Case:
    return Case(argv, (expect,) if isinstance(expect, str) else expect)


OUT = ("-o", "{out}/result.json")
INFER = ("infer", "mlp_sd.pt", "--arch", "tests.nets:build_mlp", "--no-progress")
CASES: dict[str, Case] = {
    # ---- score: keys, shapes, labels
    "score-wrong-key": case(
        "score",
        "wrongkey.safetensors",
        *OUT,
        expect=("wrongkey.safetensors", "'logits' or 'probs'", "scores"),
    ),
    "score-missing-labels": case(
        "score", "nolabels.npz", *OUT, expect=("nolabels.npz", "field 'labels'", "no tensor")
    ),
    "score-custom-key-missing": case(
        "score", "good.safetensors", "--logits-key", "out", expect=("good.safetensors", "'out'")
    ),
    "score-logits-1d": case(
        "score",
        "logits1d.safetensors",
        *OUT,
        expect=("logits1d.safetensors", "field 'logits'", "2-D"),
    ),
    "score-logits-3d": case("score", "logits3d.npz", expect=("logits3d.npz", "2-D", "[24, 3, 2]")),
    "score-n-mismatch": case(
        "score",
        "nmismatch.safetensors",
        *OUT,
        expect=("nmismatch.safetensors", "field 'labels'", "[24]", "[23]"),
    ),
    "score-float-labels": case(
        "score", "floatlabels.npz", expect=("floatlabels.npz", "field 'labels'", "integers")
    ),
    "score-negative-label": case(
        "score",
        "neglabels.safetensors",
        expect=("neglabels.safetensors", "labels", "[0, 2]", "row 5"),
    ),
    "score-label-ge-c": case("score", "biglabels.pt", expect=("biglabels.pt", "[0, 2]", "row 2")),
    "score-one-class": case("score", "c1.safetensors", expect=("c1.safetensors", "C = 1")),
    "score-no-samples": case("score", "n0.safetensors", *OUT, expect=("n0.safetensors", "N = 0")),
    # ---- score: values
    "score-nan": case(
        "score",
        "nan.safetensors",
        *OUT,
        expect=("nan.safetensors", "field 'logits'", "2 of 24 rows", "row 3"),
    ),
    "score-posinf": case("score", "posinf.npz", expect=("posinf.npz", "Inf", "1 of 24", "row 4")),
    "score-neginf": case("score", "neginf.pt", expect=("neginf.pt", "Inf", "row 0")),
    "score-probs-not-summing-to-1": case(
        "score",
        "badprobs.safetensors",
        "--scores",
        "msp",
        *OUT,
        expect=("badprobs.safetensors", "field 'probs'", "summing to 1", "row 6"),
    ),
    "score-logit-score-on-probs": case(
        "score", "probs.safetensors", "--scores", "maxlogit", expect=("maxlogit", "logits")
    ),
    # ---- score: broken and hostile files
    "score-truncated-safetensors": case(
        "score", "trunc.safetensors", *OUT, expect=("trunc.safetensors", "truncated")
    ),
    "score-truncated-npz": case("score", "trunc.npz", expect="trunc.npz"),
    "score-truncated-pt": case("score", "trunc.pt", expect="trunc.pt"),
    "score-corrupt-safetensors": case(
        "score", "corrupt.safetensors", expect=("corrupt.safetensors", "header")
    ),
    "score-corrupt-npz": case("score", "corrupt.npz", expect=("corrupt.npz", "corrupt")),
    "score-corrupt-pt": case("score", "corrupt.pt", expect=("corrupt.pt", "corrupt")),
    "score-zip-bomb-npz": case("score", "bomb.npz", *OUT, expect=("bomb.npz", "zip bomb")),
    "score-npz-object-arrays": case("score", "objects.npz", expect=("objects.npz", "pickle")),
    "score-huge-safetensors-header": case(
        "score", "hugeheader.safetensors", expect=("hugeheader.safetensors", "header")
    ),
    "score-safetensors-overflowing-shape": case(
        "score", "overflow.safetensors", expect=("overflow.safetensors", "field 'logits'", "shape")
    ),
    "score-safetensors-infinite-offset": case(
        "score", "infoffset.safetensors", expect=("infoffset.safetensors", "data_offsets")
    ),
    "score-pt-pickled-object": case(
        "score", "pickled.pt", *OUT, expect=("pickled.pt", "refusing to unpickle")
    ),
    "score-pt-malicious-reduce": case("score", "evil.pt", expect=("evil.pt", "refusing")),
    "score-pt-malicious-legacy": case(
        "score", "evil_legacy.pt", expect=("evil_legacy.pt", "refus")
    ),
    "score-malicious-checkpoint-with-data": case(
        "score",
        "evil.pt",
        "--data",
        "data.safetensors",
        "--arch",
        "tests.nets:build_mlp",
        "--no-cache",
        expect=("evil.pt", "--trust-pickle"),
    ),
    "score-text-file": case("score", "notes.txt", expect=("notes.txt", "unrecognised")),
    # ---- score: options
    "score-unknown-score": case(
        "score",
        "good.safetensors",
        "--scores",
        "msp,maxlogt",
        *OUT,
        expect=("maxlogt", "Did you mean 'maxlogit'"),
    ),
    "score-unknown-metric": case(
        "score", "good.safetensors", "--metrics", "aurcc", expect=("aurcc", "Did you mean 'aurc'")
    ),
    "score-unknown-convention": case(
        "score", "good.safetensors", "--aurc-convention", "trapz", expect=("trapz", "trapezoid")
    ),
    "score-unknown-format": case("score", "good.safetensors", "-f", "yaml", expect="yaml"),
    "score-coverage-zero": case(
        "score", "good.safetensors", "--coverages", "0", *OUT, expect=("coverage", "(0, 1]")
    ),
    "score-coverage-above-1": case(
        "score", "good.safetensors", "--coverages", "0.9,1.5", expect=("coverage", "1.5")
    ),
    "score-coverage-negative": case(
        "score", "good.safetensors", "--coverages", "-0.2", expect=("coverage", "-0.2")
    ),
    "score-coverage-nan": case(
        "score", "good.safetensors", "--coverages", "nan", expect=("coverage", "nan")
    ),
    "score-risk-above-1": case("score", "good.safetensors", "--risks", "2", expect="risk"),
    "score-at-coverage-zero": case(
        "score", "good.safetensors", "--by", "class", "--at-coverage", "0", expect="coverage"
    ),
    "score-tune-split-1": case(
        "score", "good.safetensors", "--tune-split", "1", *OUT, expect=("--tune-split", "(0, 1)")
    ),
    "score-chunk-size-0": case(
        "score", "good.safetensors", "--chunk-size", "0", expect="--chunk-size"
    ),
    "score-unknown-option": case(
        "score", "good.safetensors", "--covrages", "0.5", expect="--covrages"
    ),
    "score-nan-policy-unknown": case(
        "score", "good.safetensors", "--nan-policy", "ignore", expect=("nan-policy", "ignore")
    ),
    # ---- score: paths and outputs
    "score-missing-file": case(
        "score", "missing.safetensors", *OUT, expect=("missing.safetensors", "no such file")
    ),
    "score-dangling-symlink": case(
        "score", "dangling.safetensors", expect=("dangling.safetensors", "no such file")
    ),
    "score-directory-as-input": case("score", "adir", *OUT, expect=("adir", "directory")),
    "score-output-dir-missing": case(
        "score", "good.safetensors", "-o", "{out}/nodir/r.json", expect=("nodir", "does not exist")
    ),
    "score-output-is-directory": case(
        "score", "good.safetensors", "-o", "adir", expect=("adir", "directory")
    ),
    "score-plot-dir-missing": case(
        "score",
        "good.safetensors",
        "--plot",
        "{out}/nodir/p.png",
        expect=("nodir", "does not exist"),
    ),
    "score-plot-ok-but-output-dir-missing": case(
        "score",
        "good.safetensors",
        "--plot",
        "{out}/p.png",
        "-o",
        "{out}/nodir/r.json",
        expect=("nodir", "does not exist"),
    ),
    "score-plot-bad-suffix": case(
        "score", "good.safetensors", "--plot", "{out}/p.gif", expect=("p.gif", ".png")
    ),
    "score-second-source-bad": case(
        "score",
        "good.safetensors",
        "nan.safetensors",
        *OUT,
        "--plot",
        "{out}/p.png",
        expect=("nan.safetensors", "NaN"),
    ),
    "score-val-missing": case(
        "score",
        "good.safetensors",
        "--val",
        "missing.npz",
        "-s",
        "maxlogit-pnorm",
        expect=("missing.npz", "no such file"),
    ),
    "score-val-other-classes": case(
        "score",
        "good.safetensors",
        "--val",
        "four.safetensors",
        "-s",
        "msp-ts",
        *OUT,
        expect=("four.safetensors", "C = 3"),
    ),
    # ---- compare
    "compare-no-sources": case("compare", expect=("Missing argument", "SOURCE")),
    "compare-one-source": case("compare", "good.safetensors", *OUT, expect="at least two"),
    "compare-mismatched-labels": case(
        "compare",
        "good.safetensors",
        "relabeled.safetensors",
        "--bootstrap",
        "0",
        *OUT,
        expect=("relabeled.safetensors", "field 'labels'", "good.safetensors"),
    ),
    "compare-other-length": case(
        "compare",
        "good.safetensors",
        "short.safetensors",
        expect=("short.safetensors", "20 samples", "24"),
    ),
    "compare-missing-file": case(
        "compare", "good.safetensors", "missing.npz", *OUT, expect=("missing.npz", "no such file")
    ),
    "compare-nan": case(
        "compare",
        "good.safetensors",
        "nan.safetensors",
        "--bootstrap",
        "0",
        expect=("nan.safetensors", "NaN", "row 3"),
    ),
    "compare-malicious-pt": case(
        "compare", "good.safetensors", "evil.pt", expect=("evil.pt", "refusing")
    ),
    "compare-output-dir-missing": case(
        "compare",
        "good.safetensors",
        "good.npz",
        "--bootstrap",
        "0",
        "-o",
        "{out}/nodir/c.md",
        expect=("nodir", "does not exist"),
    ),
    "compare-plot-dir-missing": case(
        "compare",
        "good.safetensors",
        "good.npz",
        "--bootstrap",
        "0",
        "--plot",
        "{out}/nodir/c.svg",
        expect=("nodir", "does not exist"),
    ),
    "compare-unknown-score": case(
        "compare",
        "good.safetensors",
        "good.npz",
        "-s",
        "energi",
        expect=("energi", "Did you mean 'energy'"),
    ),
    "compare-coverage-above-1": case(
        "compare", "good.safetensors", "good.npz", "--coverages", "1.01", expect="coverage"
    ),
    "compare-bad-confidence": case(
        "compare", "good.safetensors", "good.npz", "--confidence", "1.5", expect="--confidence"
    ),
    # ---- gate
    "gate-baseline-missing": case(
        "gate",
        "good.safetensors",
        "--baseline",
        "missing.json",
        expect=("missing.json", "no such file"),
    ),
    "gate-baseline-directory": case(
        "gate", "good.safetensors", "--baseline", "adir", expect=("adir", "directory")
    ),
    "gate-baseline-not-json": case(
        "gate",
        "good.safetensors",
        "--baseline",
        "bad.json",
        "--junit",
        "{out}/j.xml",
        expect=("bad.json", "JSON"),
    ),
    "gate-baseline-not-a-result": case(
        "gate",
        "good.safetensors",
        "--baseline",
        "notresult.json",
        expect=("notresult.json", "schema"),
    ),
    "gate-other-labels-json": case(
        "gate",
        "relabeled.safetensors",
        "--baseline",
        "base.json",
        "--junit",
        "{out}/j.xml",
        *OUT,
        expect=("base.json", "labels"),
    ),
    "gate-other-labels-predictions": case(
        "gate",
        "relabeled.safetensors",
        "--baseline",
        "good.safetensors",
        expect=("relabeled.safetensors", "labels"),
    ),
    "gate-unknown-metric": case(
        "gate",
        "good.safetensors",
        "--baseline",
        "base.json",
        "--metric",
        "aurcc",
        expect=("aurcc", "Did you mean 'aurc'"),
    ),
    "gate-junit-dir-missing": case(
        "gate",
        "good.safetensors",
        "--baseline",
        "base.json",
        "--junit",
        "{out}/nodir/j.xml",
        *OUT,
        expect=("nodir", "does not exist"),
    ),
    "gate-output-dir-missing": case(
        "gate",
        "good.safetensors",
        "--baseline",
        "base.json",
        "--junit",
        "{out}/j.xml",
        "-o",
        "{out}/nodir/v.md",
        expect=("nodir", "does not exist"),
    ),
    "gate-nan-candidate": case(
        "gate",
        "nan.safetensors",
        "--baseline",
        "base.json",
        "--junit",
        "{out}/j.xml",
        expect=("nan.safetensors", "NaN"),
    ),
    "gate-candidate-missing": case(
        "gate", "missing.pt", "--baseline", "base.json", expect=("missing.pt", "no such file")
    ),
    "gate-bad-alpha": case(
        "gate", "good.safetensors", "--baseline", "good.npz", "--alpha", "1.5", expect="--alpha"
    ),
    "gate-bad-tolerance": case(
        "gate",
        "good.safetensors",
        "--baseline",
        "base.json",
        "--tolerance",
        "aurc=lots",
        expect=("tolerance", "lots"),
    ),
    # ---- threshold
    "threshold-risk-above-1": case(
        "threshold", "good.safetensors", "--target-risk", "1.5", expect=("--target-risk", "[0, 1]")
    ),
    "threshold-coverage-zero": case(
        "threshold",
        "good.safetensors",
        "--target-coverage",
        "0",
        expect=("--target-coverage", "(0, 1]"),
    ),
    "threshold-coverage-above-1": case(
        "threshold",
        "good.safetensors",
        "--target-coverage",
        "1.5",
        "-o",
        "{out}/s.json",
        expect="(0, 1]",
    ),
    "threshold-no-target": case("threshold", "good.safetensors", expect="--target-risk"),
    "threshold-bad-delta": case(
        "threshold", "good.safetensors", "--target-risk", "0.1", "--delta", "0", expect="--delta"
    ),
    "threshold-unknown-score": case(
        "threshold",
        "good.safetensors",
        "--target-risk",
        "0.1",
        "--score",
        "mps",
        expect=("mps", "Did you mean 'msp'"),
    ),
    "threshold-logit-score-on-probs": case(
        "threshold",
        "probs.safetensors",
        "--target-risk",
        "0.1",
        "--score",
        "maxlogit",
        expect="logits",
    ),
    "threshold-nan": case(
        "threshold",
        "nan.safetensors",
        "--target-risk",
        "0.5",
        "-o",
        "{out}/s.json",
        expect=("nan.safetensors", "NaN"),
    ),
    "threshold-test-other-classes": case(
        "threshold",
        "good.safetensors",
        "--target-coverage",
        "0.5",
        "--test",
        "four.safetensors",
        "-o",
        "{out}/s.json",
        expect=("four.safetensors", "classes"),
    ),
    "threshold-output-dir-missing": case(
        "threshold",
        "good.safetensors",
        "--target-coverage",
        "0.5",
        "-o",
        "{out}/nodir/s.json",
        expect=("nodir", "does not exist"),
    ),
    "threshold-missing-file": case(
        "threshold",
        "missing.safetensors",
        "--target-risk",
        "0.1",
        expect=("missing.safetensors", "no such file"),
    ),
    "threshold-directory": case(
        "threshold", "adir", "--target-risk", "0.1", expect=("adir", "directory")
    ),
    "threshold-malicious-legacy-pt": case(
        "threshold", "evil_legacy.pt", "--target-risk", "0.1", expect=("evil_legacy.pt", "refus")
    ),
    # ---- infer
    "infer-out-not-safetensors": case(
        *INFER,
        "--data",
        "data.safetensors",
        "--out",
        "{out}/p.npz",
        expect=("--out", ".safetensors"),
    ),
    "infer-out-dir-missing": case(
        *INFER,
        "--data",
        "data.safetensors",
        "--out",
        "{out}/nodir/p.safetensors",
        expect=("nodir", "does not exist"),
    ),
    "infer-out-is-directory": case(
        *INFER,
        "--data",
        "data.safetensors",
        "--out",
        "adir.safetensors",
        expect=("adir.safetensors", "directory"),
    ),
    "infer-state-dict-without-arch": case(
        "infer",
        "mlp_sd.pt",
        "--data",
        "data.safetensors",
        "--out",
        "{out}/p.safetensors",
        expect=("mlp_sd.pt", "--arch"),
    ),
    "infer-unknown-arch-attribute": case(
        "infer",
        "mlp_sd.pt",
        "--arch",
        "tests.nets:build_mlpp",
        "--data",
        "data.safetensors",
        "--out",
        "{out}/p.safetensors",
        expect=("build_mlpp", "no attribute"),
    ),
    "infer-malicious-reduce": case(
        "infer",
        "evil.pt",
        "--arch",
        "tests.nets:build_mlp",
        "--data",
        "data.safetensors",
        "--out",
        "{out}/p.safetensors",
        expect=("evil.pt", "--trust-pickle"),
    ),
    "infer-malicious-legacy": case(
        "infer",
        "evil_legacy.pt",
        "--arch",
        "tests.nets:build_mlp",
        "--data",
        "data.safetensors",
        "--out",
        "{out}/p.safetensors",
        expect=("evil_legacy.pt", "--trust-pickle"),
    ),
    "infer-malicious-raw-pickle": case(
        "infer",
        "evil_raw.pt",
        "--arch",
        "tests.nets:build_mlp",
        "--data",
        "data.safetensors",
        "--out",
        "{out}/p.safetensors",
        expect=("evil_raw.pt", "pickle"),
    ),
    "infer-checkpoint-missing": case(
        "infer",
        "missing.pt",
        "--data",
        "data.safetensors",
        "--out",
        "{out}/p.safetensors",
        expect=("missing.pt", "no such file"),
    ),
    "infer-checkpoint-directory": case(
        "infer",
        "adir",
        "--data",
        "data.safetensors",
        "--out",
        "{out}/p.safetensors",
        expect=("adir", "directory"),
    ),
    "infer-checkpoint-truncated": case(
        "infer",
        "trunc_sd.pt",
        "--arch",
        "tests.nets:build_mlp",
        "--data",
        "data.safetensors",
        "--out",
        "{out}/p.safetensors",
        expect="trunc_sd.pt",
    ),
    "infer-data-missing": case(
        *INFER,
        "--data",
        "missing.safetensors",
        "--out",
        "{out}/p.safetensors",
        expect=("missing.safetensors", "--data"),
    ),
    "infer-data-wrong-key": case(
        *INFER,
        "--data",
        "data_nokey.safetensors",
        "--out",
        "{out}/p.safetensors",
        expect=("data_nokey.safetensors", "field 'inputs'"),
    ),
    "infer-data-float-labels": case(
        *INFER,
        "--data",
        "data_floatlabels.npz",
        "--out",
        "{out}/p.safetensors",
        expect=("data_floatlabels.npz", "field 'labels'", "integers"),
    ),
    "infer-data-label-ge-classes": case(
        *INFER,
        "--data",
        "data_biglabels.safetensors",
        "--out",
        "{out}/p.safetensors",
        expect=("data_biglabels.safetensors", "label 9", "4"),
    ),
    "infer-unknown-amp": case(
        *INFER,
        "--data",
        "data.safetensors",
        "--out",
        "{out}/p.safetensors",
        "--amp",
        "fp8",
        expect=("--amp", "fp8"),
    ),
    "infer-batch-size-0": case(
        *INFER,
        "--data",
        "data.safetensors",
        "--out",
        "{out}/p.safetensors",
        "--batch-size",
        "0",
        expect="--batch-size",
    ),
    "infer-bad-arch-kwargs": case(
        *INFER,
        "--data",
        "data.safetensors",
        "--out",
        "{out}/p.safetensors",
        "--arch-kwargs",
        "{hidden: 3}",
        expect=("--arch-kwargs", "JSON"),
    ),
    # ---- demo (bad options only: nothing may start training)
    "demo-epochs-not-a-number": case(
        "demo", "--epochs", "abc", "--out", "{out}/demo", expect=("--epochs", "integer")
    ),
    "demo-tune-split-above-1": case(
        "demo", "--tune-split", "1.5", "--out", "{out}/demo", expect=("tune", "1.5")
    ),
    "demo-out-is-a-file": case(
        "demo", "--out", "good.safetensors", "--epochs", "1", expect=("good.safetensors", "--out")
    ),
    "demo-unknown-option": case("demo", "--epoch", "3", expect="--epoch"),
    # round two (issue 13)
    "score-zip-duplicate-npz": case("score", "dup.npz", *OUT, expect=("dup.npz", "twice")),
    "score-zip-duplicate-pt": case("score", "dup.pt", *OUT, expect=("dup.pt", "twice")),
    "score-zip-dotdot": case("score", "dotdot.npz", *OUT, expect=("dotdot.npz", "..")),
    "score-zip-prepended": case("score", "prepended.npz", *OUT, expect="prepended.npz"),
    "score-st-overlap": case("score", "overlap.safetensors", *OUT, expect="overlaps"),
    "score-st-tail": case("score", "tail.safetensors", *OUT, expect="belong to none"),
    "score-st-nonstring-metadata": case("score", "nonstrmeta.safetensors", *OUT, expect="metadata"),
    "score-st-deep": case("score", "deep.safetensors", *OUT, expect="nested"),
    "gate-deep-baseline": case(
        "gate", "good.safetensors", "--baseline", "deep.json", expect="nested"
    ),
    "gate-baseline-bad-shape": case(
        "gate", "good.safetensors", "--baseline", "badshape.json", expect="scores"
    ),
    "score-npz-objects-bigendian": case(
        "score", "bigendian_objects.npz", *OUT, expect="pickled Python objects"
    ),
    "score-fifo": case("score", "fifo.safetensors", *OUT, expect="FIFO"),
    "score-random-bytes-pt": case("score", "random.pt", *OUT, expect="unrecognised file kind"),
    "score-output-is-input": case(
        "score", "good.safetensors", "-o", "good.safetensors", expect="same file"
    ),
    "gate-bad-confidence": case(
        "gate",
        "good.safetensors",
        "--baseline",
        "base.json",
        "--confidence",
        "2",
        expect="--confidence",
    ),
    "score-negative-seed": case("score", "good.safetensors", "--seed", "-1", expect="--seed"),
}
# ``chmod 000`` does not stop root: that case is skipped (honestly) when run as root.
SKIP = {"score-unreadable-file": "root reads chmod-000 files"} if IS_ROOT else {}
CASES["score-unreadable-file"] = case(
    "score", "locked.safetensors", *OUT, expect=("locked.safetensors", "permission denied")
)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("corpus")
    old = os.getcwd()
    sys.path.insert(0, str(ROOT))
    os.chdir(d)
    try:
        _make_corpus(d)
    finally:
        os.chdir(old)
    yield d
    sys.path.remove(str(ROOT))


@pytest.fixture
def in_corpus(corpus, monkeypatch) -> Path:
    monkeypatch.chdir(corpus)
    monkeypatch.syspath_prepend(str(ROOT))
    return corpus


def _invoke(argv: list[str]):
    return CliRunner(env=ENV).invoke(app, argv)


def _params():
    for name, c in CASES.items():
        marks = [pytest.mark.skip(reason=SKIP[name])] if name in SKIP else []
        yield pytest.param(c, id=name, marks=marks)


@pytest.mark.parametrize("bad", list(_params()))
def test_bad_input(bad: Case, in_corpus: Path, tmp_path: Path):
    out = tmp_path / "out"
    out.mkdir()
    before = sorted(p.name for p in in_corpus.iterdir())
    argv = [a.replace("{out}", str(out)) for a in bad.argv]
    r = _invoke(argv)
    text = r.stdout + r.stderr
    assert "Traceback" not in text, text
    assert r.exit_code == 2, (r.exit_code, repr(r.exception), text)
    assert isinstance(r.exception, SystemExit), repr(r.exception)
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("sc-eval: error: "), lines[0]
    assert len(lines[0]) > len("sc-eval: error: ") + 10, lines[0]
    for want in bad.expect:
        assert want in lines[0], (want, lines[0])
    assert r.stdout == "", r.stdout
    assert sorted(p.name for p in out.rglob("*")) == [], "left files behind"
    assert sorted(p.name for p in in_corpus.iterdir()) == before, "left files in the corpus"
    assert not (in_corpus / MARKER).exists(), "a pickle payload ran"
    assert not any((in_corpus / "adir").iterdir())


def test_corpus_is_big_enough():
    assert len(CASES) >= 40
    commands = {c.argv[0] if c.argv else "" for c in CASES.values()}
    assert commands >= {"score", "compare", "gate", "threshold", "infer", "demo"}


def test_debug_shows_the_exception_instead(in_corpus: Path):
    r = CliRunner(env=ENV).invoke(app, ["score", "nan.safetensors", "--debug"])
    assert r.exit_code != 0
    assert r.exception is not None and "nan.safetensors" in str(r.exception)


@pytest.mark.parametrize(
    "argv",
    [
        ["score", "evil.pt"],
        ["compare", "good.safetensors", "relabeled.safetensors"],
        ["demo", "--epochs", "x"],
    ],
    ids=["score-pickle", "compare-labels", "demo-option"],
)
def test_real_process_prints_one_line_and_no_traceback(in_corpus: Path, argv: list[str]):
    env = {**os.environ, "NO_COLOR": "1", "PYTHONPATH": str(ROOT)}
    env.pop("SC_EVAL_DEBUG", None)
    p = subprocess.run(
        [sys.executable, "-m", "sc_eval", *argv], capture_output=True, text=True, env=env
    )
    assert p.returncode == 2, p.stderr
    assert "Traceback" not in p.stderr + p.stdout
    lines = [line for line in p.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("sc-eval: error: "), p.stderr
    assert not (in_corpus / MARKER).exists()


def test_a_big_constant_array_is_not_a_zip_bomb(tmp_path):
    """Single-class labels of 2M samples compress ~1000:1 and are still loaded."""
    from sc_eval.io import load_predictions

    path = tmp_path / "p.npz"
    n = 2**21
    np.savez_compressed(path, logits=np.zeros((n, 2), np.float16), labels=np.zeros(n, np.int64))
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo("labels.npy")
        assert info.file_size > 1000 * info.compress_size  # as compressible as a bomb
    assert load_predictions(path).n == n
