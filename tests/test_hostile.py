"""Hostile inputs, round two: parser differentials, outputs that could destroy things,
signals, devices, resource limits and terminal injection.

Every test here failed on the main branch before the hardening it checks; each
asserts the error contract (exit 2, one ``sc-eval: error:`` line, no traceback,
nothing left behind) or the correct result, and that no payload ever ran.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import stat
import struct
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from conftest import make_logits, predictions_file
from safetensors.numpy import save_file
from typer.testing import CliRunner

from sc_eval.cli import app
from sc_eval.errors import InputError
from sc_eval.io import load_predictions, read_arrays, write_predictions

torch = pytest.importorskip("torch")

ROOT = Path(__file__).resolve().parents[1]
ENV = {"NO_COLOR": "1", "COLUMNS": "200", "SC_EVAL_DEBUG": None, "GITHUB_STEP_SUMMARY": None}
IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


def run(argv: list[str], **env: str | None):
    return CliRunner(env={**ENV, **env}).invoke(app, [str(a) for a in argv])


def assert_one_line_error(r, *want: str) -> str:
    text = r.stdout + r.stderr
    assert "Traceback" not in text, text
    assert r.exit_code == 2, (r.exit_code, text)
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("sc-eval: error: "), r.stderr
    for w in want:
        assert w in lines[0], (w, lines[0])
    return lines[0]


def subprocess_env() -> dict[str, str]:
    env = {**os.environ, "NO_COLOR": "1", "PYTHONPATH": str(ROOT)}
    env.pop("SC_EVAL_DEBUG", None)
    env.pop("GITHUB_STEP_SUMMARY", None)
    return env


@pytest.fixture()
def preds(tmp_path: Path) -> Path:
    return predictions_file(tmp_path / "p.safetensors", 200, 4, seed=1)


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".") or "tmp" in p.name)


# --------------------------------------------------------------------------- .pt2 differentials
@pytest.fixture(scope="module")
def pt2(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("pt2")
    model = torch.nn.Sequential(torch.nn.Linear(4, 3))
    program = torch.export.export(model, (torch.randn(2, 4),))
    path = folder / "m.pt2"
    torch.export.save(program, str(path))
    inputs = np.random.default_rng(0).normal(size=(8, 4)).astype(np.float32)
    np.savez(folder / "d.npz", inputs=inputs, labels=np.arange(8) % 3)
    return path


def rezip(src: Path, dst: Path, edit) -> Path:
    """Copy a zip member by member; ``edit(name, data)`` returns a list of (name, data)."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            for name, data in edit(info.filename, zin.read(info.filename)):
                zout.writestr(name, data)
    return dst


def test_pt2_with_a_duplicate_pickled_constants_config_is_refused(pt2: Path, tmp_path: Path):
    marker = tmp_path / "pwned"
    payload = {"config": {"c": {"path_name": "opaque_obj_0", "use_pickle": True}}}

    def edit(name: str, data: bytes):
        if name.endswith("model_constants_config.json"):
            return [(name, json.dumps(payload).encode()), (name, data)]
        return [(name, data)]

    evil = rezip(pt2, tmp_path / "evil.pt2", edit)
    out = tmp_path / "p.safetensors"
    r = run(["infer", evil, "--data", pt2.parent / "d.npz", "--out", out])
    assert_one_line_error(r, "twice")
    assert not out.exists() and not marker.exists()
    r = run(["score", evil, "--data", pt2.parent / "d.npz", "--no-cache"])
    assert_one_line_error(r, "twice")


def test_pt2_with_two_hostile_model_json_copies_is_refused(pt2: Path, tmp_path: Path):
    marker = tmp_path / "pwned"
    code = f"__import__('os').system('touch {marker}')"

    def edit(name: str, data: bytes):
        if name.endswith("models/model.json"):
            doc = data.decode().replace('"expr_str": "', f'"expr_str": "{code} + ', 1)
            return [(name, doc.encode()), (name, doc.encode())]
        return [(name, data)]

    evil = rezip(pt2, tmp_path / "evil.pt2", edit)
    r = run(["infer", evil, "--data", pt2.parent / "d.npz", "--out", tmp_path / "o.safetensors"])
    assert_one_line_error(r)
    assert not marker.exists()


@pytest.mark.parametrize(
    "variant", ["case", "dotdot", "absolute", "backslash", "second-root", "comment"]
)
def test_pt2_name_tricks_are_refused(pt2: Path, tmp_path: Path, variant: str):
    def edit(name: str, data: bytes):
        if not name.endswith("archive_version"):
            return [(name, data)]
        extra = {
            "case": name.upper(),
            "dotdot": name.replace("archive_version", "../archive_version"),
            "absolute": "/" + name,
            "backslash": name.replace("/", "\\"),
            "second-root": "other/archive_version",
        }.get(variant)
        return [(name, data)] + ([(extra, data)] if extra else [])

    evil = rezip(pt2, tmp_path / "evil.pt2", edit)
    if variant == "comment":
        with zipfile.ZipFile(evil, "a") as zf:
            zf.comment = b"PK\x05\x06 hidden directory"
    r = run(["infer", evil, "--data", pt2.parent / "d.npz", "--out", tmp_path / "o.safetensors"])
    assert_one_line_error(r, "evil.pt2")


def test_local_header_that_disagrees_with_the_directory_is_refused(pt2: Path, tmp_path: Path):
    data = bytearray(pt2.read_bytes())
    with zipfile.ZipFile(pt2) as zf:
        info = zf.getinfo(next(n for n in zf.namelist() if n.endswith("archive_format")))
    name_at = info.header_offset + 30
    data[name_at] = ord("X")  # the local header now names another member
    evil = tmp_path / "evil.pt2"
    evil.write_bytes(bytes(data))
    r = run(["infer", evil, "--data", pt2.parent / "d.npz", "--out", tmp_path / "o.safetensors"])
    assert_one_line_error(r, "local header")


def test_pt2_with_corrupt_sample_inputs_prints_only_our_line(pt2: Path, tmp_path: Path):
    def edit(name: str, data: bytes):
        if name.endswith("sample_inputs/model.pt"):
            return [(name, data[:100] + bytes(len(data) - 100))]
        return [(name, data)]

    bad = rezip(pt2, tmp_path / "bad.pt2", edit)
    p = subprocess.run(
        [sys.executable, "-m", "sc_eval", "infer", str(bad), "--data", str(pt2.parent / "d.npz"),
         "--out", str(tmp_path / "o.safetensors")],
        capture_output=True, text=True, env=subprocess_env(), timeout=120,
    )  # fmt: skip
    lines = [line for line in p.stderr.splitlines() if line.strip()]
    assert p.returncode in (0, 2), p.stderr
    assert all(line.startswith("sc-eval: ") for line in lines), p.stderr
    assert "Traceback" not in p.stderr and "W1" not in p.stderr


@pytest.mark.parametrize("kind", ["npz", "pt", "torchscript"])
def test_duplicate_members_are_refused_in_every_zip_format(tmp_path: Path, kind: str):
    z, y = make_logits(20, 3)
    src = tmp_path / f"src.{kind}"
    if kind == "npz":
        np.savez(src, logits=z, labels=y)
    elif kind == "pt":
        torch.save({"logits": torch.from_numpy(z), "labels": torch.from_numpy(y)}, src)
    else:
        torch.jit.script(torch.nn.Linear(3, 3)).save(str(src))
    target = next(n for n in zipfile.ZipFile(src).namelist() if n.endswith((".npy", ".pkl")))
    dup = rezip(
        src,
        tmp_path / f"dup.{kind}",
        lambda n, d: [(n, d), (n, d)] if n == target else [(n, d)],
    )
    argv = ["score", dup] if kind != "torchscript" else ["infer", dup, "--data", dup, "--out",
                                                          tmp_path / "o.safetensors"]  # fmt: skip
    assert_one_line_error(run(argv), "twice")


def test_overlapping_and_prepended_zip_members_are_refused(tmp_path: Path):
    z, y = make_logits(20, 3)
    good = tmp_path / "good.npz"
    np.savez(good, logits=z, labels=y)
    prepended = tmp_path / "pre.npz"
    prepended.write_bytes(b"#!/bin/sh\nexit 0\n" + good.read_bytes())
    assert_one_line_error(run(["score", prepended]), "pre.npz")


# --------------------------------------------------------------------------- outputs
def test_output_that_is_an_input_is_refused_before_any_work(preds: Path, tmp_path: Path):
    before = preds.read_bytes()
    assert_one_line_error(run(["score", preds, "-o", preds]), "same file as the input")
    hard = tmp_path / "hard.json"
    os.link(preds, hard)
    assert_one_line_error(run(["score", preds, "-o", hard]), "same file")
    soft = tmp_path / "soft.json"
    soft.symlink_to(preds)
    assert_one_line_error(run(["score", preds, "-o", soft]), "same file")
    assert preds.read_bytes() == before


def test_infer_out_over_its_data_is_refused(tmp_path: Path):
    from nets import build_mlp, save_torchscript

    model = save_torchscript(build_mlp(), tmp_path / "m.pt")
    data = tmp_path / "d.safetensors"
    save_file({"inputs": np.zeros((4, 6), np.float32), "labels": np.zeros(4, np.int64)}, data)
    before = data.read_bytes()
    assert_one_line_error(run(["infer", model, "--data", data, "--out", data]), "same file")
    assert data.read_bytes() == before


def test_two_outputs_naming_one_file_are_refused(preds: Path, tmp_path: Path):
    out = tmp_path / "x.json"
    r = run(["gate", preds, "--baseline", preds, "-f", "json", "-o", out, "--junit", out])
    assert_one_line_error(r, "same file")


def test_symlinked_output_keeps_its_link(preds: Path, tmp_path: Path):
    target = tmp_path / "real.json"
    target.write_text("old")
    link = tmp_path / "link.json"
    link.symlink_to(target)
    r = run(["score", preds, "-f", "json", "-o", link])
    assert r.exit_code == 0, r.stderr
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert json.loads(target.read_text())["schema"]


@pytest.mark.skipif(not IS_ROOT, reason="replacing a device node needs root")
def test_device_output_is_written_through_not_replaced(preds: Path):
    r = run(["score", preds, "-f", "json", "-o", "/dev/null"])
    assert r.exit_code == 0, r.stderr
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)


def test_fifo_output_is_written_through(preds: Path, tmp_path: Path):
    fifo = tmp_path / "out.fifo"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()), daemon=True)
    reader.start()
    r = run(["score", preds, "-f", "json", "-o", fifo])
    reader.join(30)
    assert r.exit_code == 0, r.stderr
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    assert json.loads(got[0])["schema"]


def test_dev_stdout_output_goes_to_stdout(preds: Path, tmp_path: Path):
    out = tmp_path / "captured.json"
    with open(out, "wb") as f:
        p = subprocess.run(
            [sys.executable, "-m", "sc_eval", "score", str(preds), "-f", "json", "-o",
             "/dev/stdout"],
            stdout=f, stderr=subprocess.PIPE, text=True, env=subprocess_env(), timeout=120,
        )  # fmt: skip
    assert p.returncode == 0, p.stderr
    assert json.loads(out.read_text())["schema"]
    assert os.path.islink("/dev/stdout") or stat.S_ISCHR(os.stat("/dev/stdout").st_mode)


def test_failed_outputs_leave_nothing_behind(preds: Path, tmp_path: Path):
    out = tmp_path / "out"
    out.mkdir()
    bad_summary = tmp_path / "missing" / "summary.md"
    r = run(
        ["gate", preds, "--baseline", preds, "-f", "markdown", "-o", out / "v.md", "--junit",
         out / "j.xml"],
        GITHUB_STEP_SUMMARY=str(bad_summary),
    )  # fmt: skip
    assert_one_line_error(r, "summary.md")
    assert list(out.iterdir()) == []


def test_a_write_failure_midway_discards_every_staged_output(
    preds: Path, tmp_path: Path, monkeypatch
):
    pytest.importorskip("matplotlib")
    import sc_eval.cli
    import sc_eval.outputs as outputs

    out = tmp_path / "out"
    out.mkdir()
    real = outputs.write_text

    def full_disk(path, text, **kw):
        if str(path).endswith(".json"):
            raise InputError("cannot write: no space left on the device", path=path)
        return real(path, text, **kw)

    monkeypatch.setattr(outputs, "write_text", full_disk)
    monkeypatch.setattr(sc_eval.cli, "write_text", full_disk)  # emit's own reference
    r = run(["score", preds, "-f", "json", "-o", out / "r.json", "--plot", out / "p.png"])
    assert_one_line_error(r, "no space left")
    assert list(out.iterdir()) == []


def test_os_errors_while_writing_are_one_line(preds: Path, tmp_path: Path, monkeypatch):
    import sc_eval.outputs as outputs

    def enospc(src, dst):
        raise OSError(errno.ENOSPC, "No space left on device", str(dst))

    monkeypatch.setattr(outputs.os, "replace", enospc)
    r = run(["score", preds, "-f", "json", "-o", tmp_path / "r.json"])
    assert_one_line_error(r, "no space left")
    assert leftovers(tmp_path) == []


def test_an_unwritable_directory_is_refused_before_work(preds: Path, tmp_path: Path, monkeypatch):
    import sc_eval.outputs as outputs

    def denied(*a, **k):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(outputs.tempfile, "mkstemp", denied)
    for argv in (
        ["score", preds, "-o", tmp_path / "r.json"],
        ["threshold", preds, "--target-risk", "0.5", "-o", tmp_path / "s.json"],
    ):
        assert_one_line_error(run(argv), "permission denied")


def test_long_names(preds: Path, tmp_path: Path):
    ok = tmp_path / ("a" * 250 + ".json")  # 255 bytes: legal, the temporary name must fit too
    r = run(["score", preds, "-f", "json", "-o", ok])
    assert r.exit_code == 0, r.stderr
    assert ok.exists()
    assert_one_line_error(run(["score", preds, "-o", tmp_path / ("b" * 300)]), "too long")
    assert_one_line_error(run(["score", tmp_path / ("c" * 300)]), "too long")


def test_sigterm_exits_143_and_leaves_nothing(preds: Path, tmp_path: Path):
    z, y = make_logits(20000, 10, seed=3)
    big = tmp_path / "big.safetensors"
    write_predictions(big, logits=z, labels=y)
    out = tmp_path / "out"
    out.mkdir()
    p = subprocess.Popen(
        [sys.executable, "-m", "sc_eval", "score", str(big), "--bootstrap", "100000", "-o",
         str(out / "r.json")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=subprocess_env(),
    )  # fmt: skip
    time.sleep(4)
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 143, err
    assert err.strip().splitlines() == [
        "sc-eval: error: terminated by SIGTERM; no output was written"
    ]
    assert list(out.iterdir()) == []


def test_termination_inside_a_writer_removes_the_temporary_file(tmp_path: Path):
    from sc_eval.cli import Terminated
    from sc_eval.outputs import atomic_output

    with pytest.raises(Terminated), atomic_output(tmp_path / "big.safetensors") as tmp:
        tmp.write_bytes(b"x" * 1000)
        raise Terminated(signal.SIGTERM)
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- inputs
def header_file(path: Path, header: bytes, data: bytes = b"") -> Path:
    path.write_bytes(struct.pack("<Q", len(header)) + header + data)
    return path


def test_deeply_nested_json_is_one_line(tmp_path: Path, preds: Path):
    deep = b'{"a":' + b"[" * 200_000 + b"]" * 200_000 + b"}"
    st = header_file(tmp_path / "deep.safetensors", deep)
    assert_one_line_error(run(["score", st]), "nested")
    base = tmp_path / "deep.json"
    base.write_bytes(deep)
    assert_one_line_error(run(["gate", preds, "--baseline", base]), "nested")


def test_huge_empty_shape_is_one_line(tmp_path: Path):
    header = json.dumps(
        {"logits": {"dtype": "F32", "shape": [2**32, 2**32, 2**32, 0, 2**40],
                    "data_offsets": [0, 0]}}
    ).encode()  # fmt: skip
    assert_one_line_error(run(["score", header_file(tmp_path / "s.safetensors", header)]))


@pytest.mark.parametrize(
    "mutate",
    [
        lambda r: r.update(scores=[{}]),
        lambda r: r.update(model_metrics=[0.5]),
        lambda r: r.update(scores={"msp": 5}),
        lambda r: r["scores"]["msp"].update(metrics=[1]),
        lambda r: r["scores"]["msp"].update(params="p"),
        lambda r: r.update(convention=3),
    ],
    ids=["scores-list", "metrics-list", "score-number", "score-metrics-list", "params", "conv"],
)
def test_baselines_of_the_wrong_shape_are_one_line(preds: Path, tmp_path: Path, mutate):
    good = tmp_path / "base.json"
    assert run(["score", preds, "-s", "msp", "-f", "json", "-o", good]).exit_code == 0
    doc = json.loads(good.read_text())
    mutate(doc["results"][0])
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(doc))
    assert_one_line_error(run(["gate", preds, "--baseline", bad]), "bad.json")


@pytest.mark.parametrize(
    "argv",
    [
        ["gate", "{p}", "--baseline", "{p}", "--confidence", "2"],
        ["score", "{p}", "--bootstrap", "10", "--seed", "-1"],
        ["gate", "{p}", "--baseline", "{p}", "--seed", "-5"],
    ],
)
def test_out_of_range_options(preds: Path, argv: list[str]):
    assert_one_line_error(run([a.replace("{p}", str(preds)) for a in argv]))


@pytest.mark.parametrize("where", ["predictions", "baseline", "data"])
def test_a_fifo_input_is_refused_not_waited_on(preds: Path, tmp_path: Path, where: str):
    fifo = tmp_path / "in.fifo"
    os.mkfifo(fifo)
    argv = {
        "predictions": ["score", str(fifo)],
        "baseline": ["gate", str(preds), "--baseline", str(fifo)],
        "data": ["score", str(preds), "--val", str(fifo), "-s", "maxlogit-pnorm"],
    }[where]
    p = subprocess.run(
        [sys.executable, "-m", "sc_eval", *argv],
        capture_output=True, text=True, env=subprocess_env(), timeout=120,
    )  # fmt: skip
    assert p.returncode == 2, p.stderr
    assert "FIFO" in p.stderr and len(p.stderr.strip().splitlines()) == 1, p.stderr


def test_image_folders_refuse_fifos_and_survive_link_cycles(tmp_path: Path):
    pytest.importorskip("PIL")
    from PIL import Image

    from sc_eval.data import open_data

    for cls in ("a", "b"):
        (tmp_path / "imgs" / cls).mkdir(parents=True)
        Image.new("RGB", (8, 8)).save(tmp_path / "imgs" / cls / "x.png")
    (tmp_path / "imgs" / "a" / "loop").symlink_to("..")
    assert open_data(tmp_path / "imgs").n >= 2  # the cycle is walked once, not forever
    os.mkfifo(tmp_path / "imgs" / "b" / "pipe.png")
    with pytest.raises(InputError, match="FIFO"):
        open_data(tmp_path / "imgs")


def test_devices_are_refused(tmp_path: Path):
    link = tmp_path / "zero.pt"
    link.symlink_to("/dev/zero")
    assert_one_line_error(run(["score", link]), "character device")


def test_torch_that_cannot_be_imported_is_one_line(tmp_path: Path):
    path = tmp_path / "p.pt"
    z, y = make_logits(10, 3)
    torch.save({"logits": torch.from_numpy(z), "labels": torch.from_numpy(y)}, path)
    code = (
        "import sys; sys.modules['torch'] = None; from sc_eval.cli import main; "
        f"sys.argv = ['sc-eval', 'score', {str(path)!r}]; main()"
    )
    p = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=subprocess_env(),
        timeout=120,
    )  # fmt: skip
    assert p.returncode == 2, p.stderr
    assert p.stderr.strip().startswith("sc-eval: error: could not import torch"), p.stderr
    assert len(p.stderr.strip().splitlines()) == 1


def test_overlapping_safetensors_tensors_are_refused(tmp_path: Path):
    z = np.zeros((4, 3), np.float32)
    header = {
        "logits": {"dtype": "F32", "shape": [4, 3], "data_offsets": [0, 48]},
        "labels": {"dtype": "I64", "shape": [4], "data_offsets": [16, 48]},
    }
    path = header_file(tmp_path / "o.safetensors", json.dumps(header).encode(), z.tobytes())
    assert_one_line_error(run(["score", path]), "overlaps")


def test_truncated_storage_record_is_refused_under_mmap(tmp_path: Path):
    z, y = make_logits(50, 4)
    src = tmp_path / "p.pt"
    torch.save({"logits": torch.from_numpy(z), "labels": torch.from_numpy(y)}, src)
    with zipfile.ZipFile(src) as zf:
        records = {n: zf.read(n) for n in zf.namelist()}
        storage = max((n for n in records if "/data/" in n), key=lambda n: len(records[n]))
    cut = tmp_path / "cut.pt"
    with zipfile.ZipFile(cut, "w") as zf:
        for n, d in records.items():
            zf.writestr(n, d[: len(d) // 2] if n == storage else d)
    assert_one_line_error(run(["score", cut]), "truncated")


def test_npz_member_expanding_beyond_its_header_is_refused(tmp_path: Path):
    z, y = make_logits(20, 3)
    path = tmp_path / "p.npz"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        import io

        for name, arr in (("logits", z), ("labels", y)):
            buf = io.BytesIO()
            np.save(buf, arr)
            data = buf.getvalue() + (bytes(50_000_000) if name == "labels" else b"")
            zf.writestr(f"{name}.npy", data)
    assert_one_line_error(run(["score", path]), "implies")


def test_npz_members_nothing_needs_are_never_expanded(tmp_path: Path):
    z, y = make_logits(20, 3)
    path = tmp_path / "p.npz"
    np.savez_compressed(path, logits=z, labels=y, junk=np.zeros(30_000_000, np.uint8))
    arrays, _ = read_arrays(path)
    preds = load_predictions(path)
    assert preds.n == 20
    assert arrays["junk"].data._data is None  # type: ignore[attr-defined]


def test_npz_member_larger_than_memory_is_refused(tmp_path: Path, monkeypatch):
    import sc_eval.io as sio

    z, y = make_logits(2000, 10)
    path = tmp_path / "p.npz"
    np.savez_compressed(path, logits=z, labels=y)
    monkeypatch.setattr(sio, "available_memory", lambda: 1000)
    assert_one_line_error(run(["score", path]), "memory available")


def test_big_endian_npz_is_read(tmp_path: Path, preds: Path):
    p = load_predictions(preds)
    z = p.values.full()
    path = tmp_path / "be.npz"
    np.savez(path, logits=z.astype(">f4"), labels=p.labels.astype(">i8"))
    a = run(["score", preds, "-f", "json"])
    b = run(["score", path, "-f", "json"])
    assert b.exit_code == 0, b.stderr
    assert (
        json.loads(a.stdout)["results"][0]["scores"] == json.loads(b.stdout)["results"][0]["scores"]
    )


def test_control_characters_are_escaped(tmp_path: Path):
    z, y = make_logits(10, 3)
    name = "x\n\x1b]0;pwned\x07FakeTrace"
    path = tmp_path / f"{name}.safetensors"
    save_file({"logits": z, name: y}, path)
    line = assert_one_line_error(run(["score", path]))
    assert "\x1b" not in line and "\\x1b" in line and "\\n" in line


def test_honest_reasons(tmp_path: Path):
    import io

    big_header = tmp_path / "h.npz"
    with zipfile.ZipFile(big_header, "w") as zf:
        buf = io.BytesIO()
        np.save(buf, np.zeros(3))
        raw = bytearray(buf.getvalue())
        zf.writestr("logits.npy", bytes(raw[:8]) + struct.pack("<H", 60000) + b" " * 60000)
    line = assert_one_line_error(run(["score", big_header]), "header")
    assert "pickle" not in line
    garbage = tmp_path / "g.pt"
    garbage.write_bytes(os.urandom(64).replace(b"\x80", b"\x81").replace(b"PK", b"QK"))
    line = assert_one_line_error(run(["score", garbage]), "unrecognised")
    assert "pickle" not in line
    broken = tmp_path / "b.pt"
    broken.write_bytes(b"\x80\x02" + b"\xff" * 64)
    line = assert_one_line_error(run(["score", broken]), "not a valid torch.save file")


def test_out_of_memory_on_pt_says_so(tmp_path: Path, monkeypatch):
    path = tmp_path / "p.pt"
    z, y = make_logits(10, 3)
    torch.save({"logits": torch.from_numpy(z), "labels": torch.from_numpy(y)}, path)

    def oom(*a, **k):
        raise RuntimeError(
            "[enforce fail at alloc_cpu.cpp] DefaultCPUAllocator: can't allocate memory"
        )

    monkeypatch.setattr(torch, "load", oom)
    assert_one_line_error(run(["score", path]), "not enough memory")


def test_legacy_torch_files_still_load(tmp_path: Path):
    path = tmp_path / "old.pt"
    z, y = make_logits(10, 3)
    torch.save(
        {"logits": torch.from_numpy(z), "labels": torch.from_numpy(y)},
        path,
        _use_new_zipfile_serialization=False,
    )
    assert load_predictions(path).n == 10


# --------------------------------------------------------------------------- round three
def _insert_nodes(pt2: Path, dst: Path, nodes: list[dict], values: dict) -> Path:
    def edit(name: str, data: bytes):
        if name.endswith("models/model.json"):
            doc = json.loads(data)
            graph = doc["graph_module"]["graph"]
            graph["nodes"][0:0] = nodes
            graph["tensor_values"].update(values)
            return [(name, json.dumps(doc).encode())]
        return [(name, data)]

    return rezip(pt2, dst, edit)


def test_pt2_calling_from_file_is_refused(pt2: Path, tmp_path: Path):
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    value = {"dtype": 1, "sizes": [{"as_int": 8}], "requires_grad": False,
             "device": {"type": "cpu", "index": None}, "strides": [{"as_int": 1}],
             "storage_offset": {"as_int": 0}, "layout": 7}  # fmt: skip
    nodes = [
        {"target": "torch.ops.aten.from_file.default", "name": "ff0", "metadata": {},
         "is_hop_single_tensor_return": None, "outputs": [{"as_tensor": {"name": "ff0"}}],
         "inputs": [{"name": "filename", "arg": {"as_string": str(victim)}, "kind": 1},
                    {"name": "shared", "arg": {"as_bool": True}, "kind": 1},
                    {"name": "size", "arg": {"as_int": 8}, "kind": 1},
                    {"name": "dtype", "arg": {"as_scalar_type": 1}, "kind": 2}]},
        {"target": "torch.ops.aten.fill_.Scalar", "name": "ff1", "metadata": {},
         "is_hop_single_tensor_return": None, "outputs": [{"as_tensor": {"name": "ff1"}}],
         "inputs": [{"name": "self", "arg": {"as_tensor": {"name": "ff0"}}, "kind": 1},
                    {"name": "value", "arg": {"as_int": 88}, "kind": 1}]},
    ]  # fmt: skip
    evil = _insert_nodes(pt2, tmp_path / "evil.pt2", nodes, {"ff0": value, "ff1": value})
    r = run(["infer", evil, "--data", pt2.parent / "d.npz", "--out", tmp_path / "o.safetensors"])
    assert_one_line_error(r, "from_file")
    assert victim.read_text() == "keep me"


@pytest.mark.parametrize(
    "target", ["torch.ops.c10d.allreduce_.default", "torch.ops.debugprims.load_tensor.default"]
)
def test_pt2_operators_outside_tensor_maths_are_refused(target: str):
    from sc_eval.models import _target_ok

    assert not _target_ok(target)
    assert _target_ok("torch.ops.aten.linear.default")
    assert _target_ok("torch.ops.aten._assert_async.msg")


def test_torchscript_calling_from_file_is_refused(tmp_path: Path):
    source = tmp_path / "tsmod.py"
    victim = tmp_path / "victim.txt"
    source.write_text(
        "import torch\n"
        "class M(torch.nn.Module):\n"
        "    def forward(self, x):\n"
        f"        t = torch.from_file({str(victim)!r}, True, 8, dtype=torch.uint8)\n"
        "        t.fill_(88)\n"
        "        return x + t.float().sum() * 0\n"
    )
    subprocess.run(
        [sys.executable, "-c", "import sys, torch; sys.path.insert(0, sys.argv[1]); "
         "import tsmod; torch.jit.script(tsmod.M()).save(sys.argv[2])",
         str(tmp_path), str(tmp_path / "ts.pt")],
        check=True, capture_output=True, env=subprocess_env(), timeout=120,
    )  # fmt: skip
    np.savez(tmp_path / "d.npz", inputs=np.zeros((4, 4), np.float32), labels=np.zeros(4, int))
    r = run(["infer", tmp_path / "ts.pt", "--data", tmp_path / "d.npz", "--out",
             tmp_path / "o.safetensors"])  # fmt: skip
    assert_one_line_error(r, "from_file")
    assert not victim.exists()


@pytest.mark.parametrize(
    "text", ["9**9**9 == 0", "s0*9**9**9", "1 << 10**10", "'a' * 10**10", "x ** 1000", "10**400"]
)
def test_expressions_that_would_run_for_ever_are_refused(text: str):
    from sc_eval.models import _GUARD_ATTRS, _GUARD_NAMES, _expression_ok

    assert not _expression_ok(text, names=_GUARD_NAMES | {"x", "s0"}, attrs=_GUARD_ATTRS)
    assert _expression_ok("s0*2 + 1 >= 3", names=_GUARD_NAMES, attrs=_GUARD_ATTRS)


def test_planted_cache_links_are_never_followed(tmp_path: Path):
    from sc_eval.cache import memo_digest, read_cache_text

    cache = tmp_path / "cache"
    data = tmp_path / "data.bin"
    data.write_bytes(b"abc")
    digest = memo_digest([data], lambda: "a" * 64, cache_dir=cache)
    assert digest == "a" * 64
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    for memo in (cache / "hashes").iterdir():
        memo.unlink()
        memo.symlink_to(victim)
    assert memo_digest([data], lambda: "b" * 64, cache_dir=cache) == "b" * 64
    assert victim.read_text() == "keep me"
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    assert read_cache_text(fifo, limit=65) is None  # no hang
    zero = tmp_path / "zero"
    zero.symlink_to("/dev/zero")
    assert read_cache_text(zero, limit=65) is None  # no endless read


def test_the_digest_memo_notices_a_rewrite_that_restores_mtime(tmp_path: Path):
    from sc_eval.cache import _stat_signature

    f = tmp_path / "w.pt"
    f.write_bytes(b"aaaa")
    before = _stat_signature([f])
    st = f.stat()
    time.sleep(0.01)
    f.write_bytes(b"bbbb")
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))  # what cp -p / rsync -a do
    assert _stat_signature([f]) != before


@pytest.mark.parametrize("which", ["candidate", "baseline", "link"])
def test_the_step_summary_never_writes_into_an_input(preds: Path, tmp_path: Path, which: str):
    base = tmp_path / "b.json"
    assert run(["score", preds, "-s", "msp", "-f", "json", "-o", base]).exit_code == 0
    link = tmp_path / "link.md"
    link.symlink_to(preds)
    target = {"candidate": preds, "baseline": base, "link": link}[which]
    before = Path(target).read_bytes()
    r = run(["gate", preds, "--baseline", base], GITHUB_STEP_SUMMARY=str(target))
    assert_one_line_error(r, "same file as the input")
    assert Path(target).read_bytes() == before


@pytest.mark.parametrize(
    "mutate",
    [
        lambda r: r["scores"]["msp"]["metrics"].update(aurc=float("inf")),
        lambda r: r["scores"]["msp"]["metrics"].update(aurc=1e300),
        lambda r: r["model_metrics"].update(acc=-0.5),
    ],
    ids=["inf", "huge", "negative-acc"],
)
def test_baseline_values_out_of_range_are_refused(preds: Path, tmp_path: Path, mutate):
    base = tmp_path / "b.json"
    assert run(["score", preds, "-s", "msp", "-f", "json", "-o", base]).exit_code == 0
    doc = json.loads(base.read_text())
    mutate(doc["results"][0])
    base.write_text(json.dumps(doc))
    assert_one_line_error(run(["gate", preds, "--baseline", base]), "finite numbers")


def test_json_integers_too_long_to_parse_are_one_line(preds: Path, tmp_path: Path):
    big = "9" * 5000
    header = (
        '{"logits": {"dtype": "F32", "shape": [' + big + '], "data_offsets": [0, 0]}}'
    ).encode()
    assert_one_line_error(run(["score", header_file(tmp_path / "s.safetensors", header)]))
    base = tmp_path / "b.json"
    assert run(["score", preds, "-s", "msp", "-f", "json", "-o", base]).exit_code == 0
    base.write_text(base.read_text().replace('"version": 1', '"version": ' + big, 1))
    assert_one_line_error(run(["gate", preds, "--baseline", base]), "number")


def test_arch_modules_that_fail_to_import_or_exit_are_one_line(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "broken_arch.py").write_text("def make(:\n")
    (tmp_path / "exiting_arch.py").write_text("import sys\ndef make(**kw):\n    sys.exit(0)\n")
    sd = tmp_path / "sd.pt"
    torch.save({"w": torch.zeros(2)}, sd)
    np.savez(tmp_path / "d.npz", inputs=np.zeros((4, 6), np.float32), labels=np.zeros(4, int))
    for arch, want in (("broken_arch:make", "cannot import"), ("exiting_arch:make", "exit(0)")):
        r = run(["infer", sd, "--arch", arch, "--data", tmp_path / "d.npz", "--out",
                 tmp_path / "o.safetensors"])  # fmt: skip
        assert_one_line_error(r, want)


@pytest.mark.parametrize(
    "argv",
    [
        ["score", "{p}", "--bootstrap", str(2**62)],
        ["score", "{p}", "--coverages", ""],
        ["score", "{p}", "--coverages", "0.5,,0.9"],
        ["score", "{p}", "--risks", ","],
        ["score", "{p}", "-s", ""],
        ["gate", "{p}", "--baseline", "{p}", "--tolerance", "aurc=1,aurc=2"],
    ],
)
def test_option_values_that_were_silently_replaced(preds: Path, argv: list[str]):
    assert_one_line_error(run([a.replace("{p}", str(preds)) for a in argv]))


def test_a_symlink_loop_as_output_is_refused(preds: Path, tmp_path: Path):
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    assert_one_line_error(run(["score", preds, "-o", loop]), "symbolic links")
    assert loop.is_symlink()


def test_names_cannot_forge_markdown_junit_or_csv(tmp_path: Path):
    from xml.etree import ElementTree

    name = "c]]><x>\x1b[1m&amp;\n## INJECTED\n|a|b|"
    src = tmp_path / f"{name}.safetensors"
    predictions_file(src, 200, 4, seed=1)
    r = run(["score", src, "-f", "markdown"])
    assert r.exit_code == 0, r.stderr
    assert "\n## INJECTED" not in r.stdout and "\x1b" not in r.stdout
    junit = tmp_path / "j.xml"
    r = run(["gate", src, "--baseline", src, "--junit", junit, "-f", "markdown"])
    assert r.exit_code == 0, r.stderr
    ElementTree.fromstring(junit.read_bytes())  # well-formed: no raw control characters
    assert "\n## INJECTED" not in r.stdout
    formula = tmp_path / "=HYPERLINK(1).safetensors"
    predictions_file(formula, 200, 4, seed=1)
    r = run(["score", formula, "-f", "csv"])
    assert r.exit_code == 0, r.stderr
    cells = [c for line in r.stdout.splitlines() for c in line.split(",")]
    assert not any(c.startswith("=") for c in cells)


@pytest.mark.skipif(not IS_ROOT, reason="replacing a device node needs root")
def test_infer_writes_through_to_dev_null(tmp_path: Path):
    from nets import build_mlp, save_torchscript

    model = save_torchscript(build_mlp(), tmp_path / "m.pt")
    np.savez(tmp_path / "d.npz", inputs=np.zeros((4, 6), np.float32), labels=np.zeros(4, int))
    r = run(["infer", model, "--data", tmp_path / "d.npz", "--out", "/dev/null", "--no-progress"])
    assert r.exit_code == 0, r.stderr
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)


def test_oversized_images_are_refused(tmp_path: Path):
    pytest.importorskip("PIL")
    from PIL import Image

    from sc_eval.data import open_data

    (tmp_path / "imgs" / "a").mkdir(parents=True)
    Image.new("1", (20000, 20000)).save(tmp_path / "imgs" / "a" / "big.png")
    data = open_data(tmp_path / "imgs")
    with pytest.raises(InputError, match="oversized"):
        data.dataset.load(0)


def test_features_out_is_an_output_not_an_input(tmp_path: Path, monkeypatch):
    from nets import MLP, trained

    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(ROOT / "tests"))
    torch.save(trained(MLP(), seed=1).state_dict(), tmp_path / "sd.pt")
    data = tmp_path / "d.safetensors"
    save_file({"inputs": np.zeros((8, 6), np.float32), "labels": np.zeros(8, np.int64)}, data)
    out = tmp_path / "o.safetensors"
    base = ["infer", tmp_path / "sd.pt", "--arch", "nets:build_mlp", "--data", data,
            "--features-layer", "head", "--no-progress", "--out", out]  # fmt: skip
    assert_one_line_error(run([*base, "--features-out", out]), "two outputs")
    assert_one_line_error(run([*base, "--features-out", data]), "same file as the input")
