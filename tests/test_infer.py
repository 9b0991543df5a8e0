"""``sc-eval infer`` and checkpoint sources: logits equal ``model(x)``, data formats,
image folders, OOM halving, the predictions cache."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from nets import (
    IN_FEATURES,
    MLP,
    ConvNet,
    FlakyMLP,
    save_export,
    save_torchscript,
    trained,
)
from safetensors.numpy import load_file
from safetensors.torch import save_file
from typer.testing import CliRunner

from sc_eval.cli import app
from sc_eval.data import ImageTransform, open_data
from sc_eval.errors import InputError
from sc_eval.infer import InferOptions, predict
from sc_eval.models import LoadedModel

ROOT = Path(__file__).resolve().parent.parent
N = 37
runner = CliRunner()


@pytest.fixture(autouse=True)
def _repo_on_path(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT))


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def mlp():
    return trained(MLP(), seed=4)


@pytest.fixture(scope="module")
def tensors():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(N, IN_FEATURES, generator=g)
    y = torch.randint(0, 4, (N,), generator=g)
    return x, y


@pytest.fixture(scope="module")
def work(tmp_path_factory, mlp, tensors):
    d = tmp_path_factory.mktemp("infer")
    x, y = tensors
    save_file({"inputs": x, "labels": y}, str(d / "data.safetensors"))
    np.savez(d / "data.npz", inputs=x.numpy(), labels=y.numpy(), index=np.arange(N) * 10 + 7)
    torch.save({"inputs": x.double(), "labels": y.int()}, d / "data.pt")
    save_torchscript(mlp, d / "mlp_ts.pt")
    save_export(mlp, x[:4], d / "mlp.pt2")
    torch.save({"state_dict": {"module." + k: v for k, v in mlp.state_dict().items()}}, d / "sd.pt")
    return d


def infer_cli(*args: object):
    return runner.invoke(app, ["infer", *map(str, args), "--no-progress"])


def read(path: Path):
    from sc_eval.io import load_predictions

    return load_predictions(path)


# --------------------------------------------------------------------------- equality
@pytest.mark.parametrize(
    ("ckpt", "extra"),
    [
        ("mlp_ts.pt", []),
        ("mlp.pt2", []),
        ("sd.pt", ["--arch", "tests.nets:build_mlp"]),
    ],
    ids=["torchscript", "export", "state_dict+arch"],
)
def test_infer_logits_equal_model_output(work, mlp, tensors, ckpt, extra, tmp_path):
    x, y = tensors
    out = tmp_path / "preds.safetensors"
    r = infer_cli(work / ckpt, "--data", work / "data.safetensors", "-o", out, "-b", 8, *extra)
    assert r.exit_code == 0, r.output
    preds = read(out)
    assert preds.values.dtype == "float32"
    np.testing.assert_allclose(preds.values.full(), mlp(x).detach().numpy(), rtol=0, atol=1e-6)
    np.testing.assert_array_equal(preds.labels, y.numpy())
    np.testing.assert_array_equal(preds.index, np.arange(N))
    meta = preds.metadata
    assert meta["checkpoint_sha256"] == sha256(work / ckpt)
    assert meta["data_sha256"] == sha256(work / "data.safetensors")
    assert meta["format"] == "sc-eval/predictions"
    assert "wrote" in r.stderr


def test_npz_and_pt_data_with_ids_and_casts(work, mlp, tensors, tmp_path):
    x, _ = tensors
    out = tmp_path / "a.safetensors"
    assert infer_cli(work / "mlp_ts.pt", "-d", work / "data.npz", "-o", out).exit_code == 0
    np.testing.assert_array_equal(read(out).index, np.arange(N) * 10 + 7)
    out2 = tmp_path / "b.safetensors"
    r = infer_cli(work / "mlp_ts.pt", "-d", work / "data.pt", "-o", out2, "-b", 5)
    assert r.exit_code == 0, r.output  # float64 inputs are cast to the model's float32
    np.testing.assert_allclose(read(out2).values.full(), mlp(x).detach().numpy(), atol=1e-6)


def test_static_export_pads_the_last_batch(work, mlp, tensors, tmp_path):
    x, _ = tensors
    ckpt = save_export(mlp, x[:8], tmp_path / "static.pt2", dynamic=False)
    out = tmp_path / "p.safetensors"
    r = infer_cli(ckpt, "-d", work / "data.safetensors", "-o", out, "-b", 100)
    assert r.exit_code == 0, r.output
    assert "fixed batch size of 8" in r.stderr
    np.testing.assert_allclose(read(out).values.full(), mlp(x).detach().numpy(), atol=1e-6)


def test_amp_and_channels_last(tmp_path):
    net = trained(ConvNet(), seed=5)
    x = torch.randn(10, 3, 6, 6, generator=torch.Generator().manual_seed(2))
    save_file({"inputs": x, "labels": torch.arange(10) % 5}, str(tmp_path / "d.safetensors"))
    save_torchscript(net, tmp_path / "conv.pt")
    expected = net(x).detach().numpy()
    for flags, atol in ((["--channels-last"], 1e-5), (["--amp", "bf16"], 0.1)):
        out = tmp_path / "p.safetensors"
        r = infer_cli(tmp_path / "conv.pt", "-d", tmp_path / "d.safetensors", "-o", out, *flags)
        assert r.exit_code == 0, r.output
        got = read(out)
        assert got.values.dtype == "float32"
        np.testing.assert_allclose(got.values.full(), expected, atol=atol)


# --------------------------------------------------------------------------- image folders
def _write_images(root: Path, sizes: dict[str, list[tuple[int, int]]], seed: int = 0):
    from PIL import Image

    rng = np.random.default_rng(seed)
    for cls, shapes in sizes.items():
        (root / cls).mkdir(parents=True)
        for i, (w, h) in enumerate(shapes):
            pixels = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / cls / f"img{i}.png")


def _reference_transform(path: Path, t: ImageTransform) -> np.ndarray:
    """Obvious re-implementation: resize shorter side, centre crop, normalise."""
    from PIL import Image

    im = Image.open(path).convert("RGB")
    w, h = im.size
    s = t.resize
    new = (s, int(s * h / w)) if w <= h else (int(s * w / h), s)
    im = im.resize(new, Image.Resampling.BILINEAR)
    left, top = round((new[0] - t.image_size) / 2), round((new[1] - t.image_size) / 2)
    im = im.crop((left, top, left + t.image_size, top + t.image_size))
    a = np.asarray(im, dtype=np.float64) / 255.0
    a = (a - np.array(t.mean)) / np.array(t.std)
    return a.transpose(2, 0, 1).astype(np.float32)


def test_image_folder(tmp_path):
    root = tmp_path / "imgs"
    _write_images(root, {"zebra": [(12, 10), (9, 14)], "ant": [(8, 8)], "cat": [(20, 11)]})
    (root / "empty").mkdir()  # a class without images still takes its index
    net = trained(ConvNet(num_classes=5), seed=6)
    ckpt = save_torchscript(net, tmp_path / "conv.pt")
    out = tmp_path / "p.safetensors"
    r = infer_cli(ckpt, "-d", root, "-o", out, "--image-size", 6, "--resize-size", 7, "-b", 3)
    assert r.exit_code == 0, r.output
    preds = read(out)
    assert json.loads(preds.metadata["classes"]) == ["ant", "cat", "empty", "zebra"]
    np.testing.assert_array_equal(preds.labels, [0, 1, 3, 3])
    t = ImageTransform(6, 7)
    files = ["ant/img0.png", "cat/img0.png", "zebra/img0.png", "zebra/img1.png"]
    x = torch.from_numpy(np.stack([_reference_transform(root / f, t) for f in files]))
    np.testing.assert_allclose(preds.values.full(), net(x).detach().numpy(), atol=1e-4)
    assert len(preds.metadata["data_sha256"]) == 64


def test_image_folder_hash_follows_content(tmp_path):
    root = tmp_path / "imgs"
    _write_images(root, {"a": [(5, 5)], "b": [(5, 5)]})
    first = open_data(root).sha256()
    _write_images(tmp_path / "other", {"a": [(5, 5)], "b": [(5, 5)]}, seed=1)
    (root / "b" / "img0.png").write_bytes((tmp_path / "other/b/img0.png").read_bytes())
    assert open_data(root).sha256() != first


def test_data_errors(tmp_path):
    save_file({"x": torch.zeros(3, 2)}, str(tmp_path / "bad.safetensors"))
    with pytest.raises(InputError, match="expected tensors 'inputs'"):
        open_data(tmp_path / "bad.safetensors")
    (tmp_path / "noclasses").mkdir()
    with pytest.raises(InputError, match="one sub-folder per class"):
        open_data(tmp_path / "noclasses")


# --------------------------------------------------------------------------- OOM
def test_out_of_memory_halves_the_batch(tensors):
    x, y = tensors
    net = trained(FlakyMLP(max_batch=5), seed=4)
    data = open_data_from(x, y)
    logs: list[str] = []
    got = predict(
        LoadedModel(net, "state_dict", "flaky"),
        data,
        InferOptions(batch_size=16, progress=False),
        log=logs.append,
    )
    assert logs == [
        "out of memory at batch size 16; retrying with 8",
        "out of memory at batch size 8; retrying with 4",
    ]
    assert max(net.calls[3:]) <= 4  # later batches keep the smaller size
    expected = MLP.forward(net, x).detach().numpy()
    np.testing.assert_allclose(got, expected, atol=1e-6)


def test_out_of_memory_through_the_cli(work, tensors, tmp_path):
    net = trained(FlakyMLP(max_batch=3), seed=4)
    torch.save(net.state_dict(), tmp_path / "flaky.pt")
    out = tmp_path / "p.safetensors"
    r = infer_cli(
        tmp_path / "flaky.pt", "-d", work / "data.safetensors", "-o", out, "-b", 12,
        "--arch", "tests.nets:build_flaky_mlp", "--arch-kwargs", '{"max_batch": 3}',
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "out of memory at batch size 12; retrying with 6" in r.stderr
    np.testing.assert_allclose(
        read(out).values.full(), MLP.forward(net, tensors[0]).detach().numpy(), atol=1e-6
    )
    r = infer_cli(
        tmp_path / "flaky.pt", "-d", work / "data.safetensors", "-o", out, "-b", 4,
        "--arch", "tests.nets:build_flaky_mlp", "--arch-kwargs", '{"max_batch": 0}',
    )  # fmt: skip
    assert r.exit_code == 2 and "out of memory at batch size 1" in r.stderr


def open_data_from(x: torch.Tensor, y: torch.Tensor):
    from sc_eval.data import InferenceData, TensorBatches

    return InferenceData(
        "tensors", "<memory>", TensorBatches(x.numpy(), "float32"), y.numpy(), np.arange(len(y))
    )


# --------------------------------------------------------------------------- CLI errors
def test_cli_errors_are_one_line(work, tmp_path):
    out = tmp_path / "p.safetensors"
    cases = [
        ([work / "sd.pt", "-d", work / "data.safetensors", "-o", out], "needs an architecture"),
        ([work / "mlp_ts.pt", "-d", work / "data.safetensors", "-o", out, "--device", "cuda"],
         "CUDA is not available"),
        ([work / "mlp_ts.pt", "-d", work / "data.safetensors", "-o", out, "--amp", "fp8"],
         "unknown --amp"),
        ([work / "mlp_ts.pt", "-d", work / "data.safetensors", "-o", tmp_path / "p.npz"],
         "must name a .safetensors file"),
        ([work / "sd.pt", "-d", work / "data.safetensors", "-o", out, "--arch", "timm:resnet18"],
         "optional package 'timm'"),
        ([work / "sd.pt", "-d", work / "data.safetensors", "-o", out, "--arch-kwargs", "[1]"],
         "must be a JSON object"),
        ([work / "mlp_ts.pt", "-d", work / "nope.safetensors", "-o", out], "no such file"),
    ]  # fmt: skip
    for args, message in cases:
        r = infer_cli(*args)
        assert r.exit_code == 2, (args, r.output)
        assert message in r.stderr and "Traceback" not in r.output
        assert r.stderr.count("\n") == 1
    assert not out.exists()


def test_labels_beyond_the_models_classes(work, tmp_path):
    save_file(
        {"inputs": torch.zeros(3, IN_FEATURES), "labels": torch.tensor([0, 1, 9])},
        str(tmp_path / "d.safetensors"),
    )
    r = infer_cli(
        work / "mlp_ts.pt", "-d", tmp_path / "d.safetensors", "-o", tmp_path / "p.safetensors"
    )
    assert r.exit_code == 2 and "label 9 but the model outputs only 4 classes" in r.stderr


def test_predictions_file_as_checkpoint_is_copied(tmp_path):
    from sc_eval.io import write_predictions

    src = tmp_path / "src.safetensors"
    write_predictions(src, logits=np.eye(3, dtype=np.float32), labels=np.array([0, 1, 2]))
    out = tmp_path / "out.safetensors"
    r = infer_cli(src, "-d", tmp_path / "whatever", "-o", out)
    assert r.exit_code == 0 and "already a predictions file" in r.stderr
    np.testing.assert_array_equal(load_file(str(out))["logits"], np.eye(3))


# --------------------------------------------------------------------------- score + cache
def test_score_by_class_on_a_checkpoint(work, tmp_path):
    data, cache = str(work / "data.safetensors"), str(tmp_path / "cache")
    args = ["score", str(work / "mlp_ts.pt"), "--data", data, "--cache-dir", cache]
    r = runner.invoke(app, [*args, "--by", "class", "-s", "msp", "-f", "json"])
    assert r.exit_code == 0, r.output
    assert "mlp_ts.pt" in r.stdout and '"by": "class"' in r.stdout


def test_score_a_checkpoint_then_hit_the_cache(work, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    args = ["score", str(work / "mlp_ts.pt"), "--data", str(work / "data.safetensors"),
            "--cache-dir", str(cache), "-f", "json"]  # fmt: skip
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    assert "running inference" in first.stderr
    [entry] = (cache / "predictions").iterdir()

    import sc_eval.infer

    def boom(*a, **k):
        raise AssertionError("the model ran on a cache hit")

    monkeypatch.setattr(sc_eval.infer, "infer", boom)
    second = runner.invoke(app, args)
    assert second.exit_code == 0, second.output
    assert "cached predictions" in second.stderr
    assert second.stdout == first.stdout
    assert json.loads(first.stdout)["results"][0]["source"].endswith("mlp_ts.pt")
    assert list((cache / "predictions").iterdir()) == [entry]


def test_cache_key_follows_the_data(work, tmp_path):
    from sc_eval.sources import CheckpointOptions, load_source

    data = tmp_path / "d.safetensors"
    data.write_bytes((work / "data.safetensors").read_bytes())
    opts = CheckpointOptions(data=data, cache_dir=tmp_path / "c", verbose=False,
                             run=InferOptions(progress=False))  # fmt: skip
    a = load_source(work / "mlp_ts.pt", checkpoint=opts)
    save_file({"inputs": torch.ones(4, IN_FEATURES), "labels": torch.zeros(4, dtype=torch.int64)},
              str(data))  # fmt: skip
    b = load_source(work / "mlp_ts.pt", checkpoint=opts)
    assert (a.n, b.n) == (N, 4)
    assert len(list((tmp_path / "c" / "predictions").iterdir())) == 2


def test_cache_hit_does_not_import_torch(work, tmp_path):
    cache = tmp_path / "cache"
    r = runner.invoke(app, ["score", str(work / "mlp_ts.pt"), "--data",
                            str(work / "data.safetensors"), "--cache-dir", str(cache)])  # fmt: skip
    assert r.exit_code == 0, r.output
    code = (
        "import sys; from sc_eval.sources import CheckpointOptions, load_source; "
        f"p = load_source({str(work / 'mlp_ts.pt')!r}, checkpoint=CheckpointOptions("
        f"data=__import__('pathlib').Path({str(work / 'data.safetensors')!r}), "
        f"cache_dir=__import__('pathlib').Path({str(cache)!r}))); "
        "print(p.n, 'torch' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [str(N), "False"]


def test_checkpoint_without_data_is_an_input_error(work):
    r = runner.invoke(app, ["score", str(work / "mlp_ts.pt")])
    assert r.exit_code == 2
    assert "is a model checkpoint (TorchScript archive)" in r.stderr and "--data" in r.stderr


def test_compare_and_gate_two_checkpoints(work, tmp_path):
    other = save_torchscript(trained(MLP(), seed=11), tmp_path / "ls.pt")
    common = ["--data", str(work / "data.safetensors"), "--cache-dir", str(tmp_path / "c")]
    r = runner.invoke(
        app, ["compare", str(work / "mlp_ts.pt"), str(other), *common, "--bootstrap", "20"]
    )
    assert r.exit_code == 0, r.output
    assert "mlp_ts.pt" in r.stdout and "ls.pt" in r.stdout
    r = runner.invoke(
        app, ["gate", str(other), "--baseline", str(work / "mlp_ts.pt"), *common, "-f", "json"]
    )
    assert r.exit_code in (0, 1), r.output
    assert json.loads(r.stdout)["candidate"].endswith("ls.pt")
    assert "cached predictions" in r.stderr  # both were inferred by compare already


@pytest.mark.slow
def test_compile_gives_the_same_logits(work, mlp, tensors, tmp_path):
    pytest.importorskip("torch._inductor")
    x, _ = tensors
    out = tmp_path / "p.safetensors"
    r = infer_cli(
        work / "sd.pt", "-d", work / "data.safetensors", "-o", out, "--compile",
        "--arch", "tests.nets:build_mlp",
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    np.testing.assert_allclose(read(out).values.full(), mlp(x).detach().numpy(), atol=1e-5)


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_unreadable_image_in_a_worker_is_one_line(tmp_path):
    root = tmp_path / "imgs"
    _write_images(root, {"a": [(6, 6)], "b": [(6, 6)]})
    (root / "b" / "broken.png").write_bytes(b"not a png")
    ckpt = save_torchscript(trained(ConvNet(), seed=1), tmp_path / "c.pt")
    r = infer_cli(ckpt, "-d", root, "-o", tmp_path / "p.safetensors", "--workers", 2,
                  "--image-size", 6, "--resize-size", 6)  # fmt: skip
    assert r.exit_code == 2, r.output
    assert "broken.png: cannot read image" in r.stderr and r.stderr.count("\n") == 1


def test_image_folder_without_pillow(tmp_path, monkeypatch):
    from sc_eval.errors import UsageError

    (tmp_path / "imgs" / "a").mkdir(parents=True)
    monkeypatch.setitem(sys.modules, "PIL", None)
    with pytest.raises(UsageError, match=r"needs Pillow.*sc-eval\[images\]"):
        open_data(tmp_path / "imgs")


def test_predictions_only_score_does_not_import_torch(tmp_path):
    from sc_eval.io import write_predictions

    p = tmp_path / "p.safetensors"
    write_predictions(p, logits=np.eye(4, dtype=np.float32), labels=np.arange(4))
    code = (
        "import sys; from typer.testing import CliRunner; from sc_eval.cli import app; "
        f"r = CliRunner().invoke(app, ['score', {str(p)!r}]); "
        "print(r.exit_code, 'torch' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert done.stdout.split() == ["0", "False"], done.stderr


def test_programs_ignore_arch_in_the_cache_key(work, tmp_path):
    from sc_eval.models import ModelSpec
    from sc_eval.sources import CheckpointOptions, load_source

    quiet = InferOptions(progress=False)
    base = CheckpointOptions(data=work / "data.safetensors", cache_dir=tmp_path, run=quiet)
    load_source(work / "mlp_ts.pt", checkpoint=base)
    with_arch = CheckpointOptions(
        data=work / "data.safetensors", cache_dir=tmp_path, run=quiet,
        model=ModelSpec(arch="tests.nets:build_mlp"),
    )  # fmt: skip
    load_source(work / "mlp_ts.pt", checkpoint=with_arch)
    assert len(list((tmp_path / "predictions").iterdir())) == 1
    load_source(work / "sd.pt", checkpoint=with_arch)
    assert len(list((tmp_path / "predictions").iterdir())) == 2


def test_no_cache_writes_nothing(work, tmp_path, monkeypatch):
    monkeypatch.setenv("SC_EVAL_CACHE", str(tmp_path / "cache"))
    args = [
        "score",
        str(work / "mlp_ts.pt"),
        "--data",
        str(work / "data.safetensors"),
        "-f",
        "json",
    ]
    r = runner.invoke(app, [*args, "--no-cache"])
    assert r.exit_code == 0, r.output
    assert not (tmp_path / "cache").exists()
    assert json.loads(r.stdout)["results"][0]["n"] == N
