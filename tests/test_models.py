"""Checkpoint loading: detection by content, safe loading, state_dict unwrapping."""

from __future__ import annotations

import json
import sys
import zipfile
from pathlib import Path

import pytest
import torch
from nets import (
    IN_FEATURES,
    MLP,
    ConvNet,
    Evil,
    save_export,
    save_torchscript,
    trained,
)

from sc_eval.errors import InputError, UsageError
from sc_eval.models import (
    ModelSpec,
    align_state_dict,
    build_arch,
    check_pt2_archive,
    checkpoint_kind,
    is_predictions_file,
    load_model,
    unwrap_state_dict,
)

ROOT = Path(__file__).resolve().parent.parent
MLP_ARCH = ModelSpec(arch="tests.nets:build_mlp")


@pytest.fixture(autouse=True)
def _repo_on_path(monkeypatch):
    """``--arch tests.nets:…`` imports from the repository root."""
    monkeypatch.syspath_prepend(str(ROOT))


@pytest.fixture(scope="module")
def mlp():
    return trained(MLP(), seed=1)


@pytest.fixture(scope="module")
def x():
    return torch.randn(13, IN_FEATURES, generator=torch.Generator().manual_seed(0))


@pytest.fixture(scope="module")
def files(tmp_path_factory, mlp, x):
    d = tmp_path_factory.mktemp("models")
    sd = mlp.state_dict()
    out = {
        "torchscript": save_torchscript(mlp, d / "mlp_ts.pt"),
        "export": save_export(mlp, x[:4], d / "mlp.pt2"),
        "static": save_export(mlp, x[:5], d / "mlp_static.pt2", dynamic=False),
        "plain": d / "plain.pt",
        "ddp": d / "ddp.pth",
        "wrapped": d / "wrapped.pth",
        "lightning": d / "lightning.ckpt",
        "compiled": d / "compiled.pt",
        "legacy": d / "legacy.pt",
        "whole": d / "whole.pt",
    }
    torch.save(sd, out["plain"])
    torch.save({"module." + k: v for k, v in sd.items()}, out["ddp"])
    torch.save(
        {"epoch": 3, "state_dict": {"module." + k: v for k, v in sd.items()}}, out["wrapped"]
    )
    torch.save(
        {"state_dict": {"model." + k: v for k, v in sd.items()}, "lr": 0.1}, out["lightning"]
    )
    torch.save({"model": {"_orig_mod." + k: v for k, v in sd.items()}}, out["compiled"])
    torch.save(sd, out["legacy"], _use_new_zipfile_serialization=False)
    torch.save(mlp, out["whole"])
    from safetensors.torch import save_file

    out["safetensors"] = d / "weights.safetensors"
    save_file({k: v.contiguous() for k, v in sd.items()}, str(out["safetensors"]))
    return out


def logits(loaded, x):
    with torch.inference_mode():
        return loaded.module(x)


# --------------------------------------------------------------------------- detection
def test_kind_is_detected_from_content_not_suffix(files, tmp_path):
    renamed = tmp_path / "model.bin"
    renamed.write_bytes(files["torchscript"].read_bytes())
    assert checkpoint_kind(renamed) == "torchscript"
    assert checkpoint_kind(files["export"]) == "export"
    assert checkpoint_kind(files["plain"]) == "torch"
    assert checkpoint_kind(files["legacy"]) == "torch"
    assert checkpoint_kind(files["safetensors"]) == "safetensors"


def test_predictions_file_is_not_a_model(tmp_path):
    import numpy as np

    from sc_eval.io import write_predictions

    p = tmp_path / "p.safetensors"
    write_predictions(p, logits=np.zeros((3, 2), np.float32), labels=np.array([0, 1, 0]))
    pt = tmp_path / "p.pt"
    torch.save({"logits": torch.zeros(3, 2), "labels": torch.tensor([0, 1, 0])}, pt)
    assert checkpoint_kind(p) == "predictions"
    assert is_predictions_file(p) and is_predictions_file(pt)
    with pytest.raises(InputError, match="holds predictions, not a model"):
        load_model(pt)


def test_unknown_file_is_refused(tmp_path):
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"hello world, not a model")
    with pytest.raises(InputError, match="unrecognised file kind"):
        checkpoint_kind(junk)


# --------------------------------------------------------------------------- programs
@pytest.mark.parametrize("kind", ["torchscript", "export", "static"])
def test_programs_give_the_models_logits(files, kind, mlp, x):
    loaded = load_model(files[kind])
    assert loaded.kind == ("torchscript" if kind == "torchscript" else "export")
    assert loaded.fixed_batch == (5 if kind == "static" else None)
    batch = x[:5] if kind == "static" else x
    torch.testing.assert_close(logits(loaded, batch), mlp(batch), rtol=0, atol=1e-6)


# --------------------------------------------------------------------------- state dicts
@pytest.mark.parametrize(
    "kind", ["plain", "ddp", "wrapped", "lightning", "compiled", "legacy", "safetensors"]
)
def test_state_dicts_are_unwrapped_and_loaded(files, kind, mlp, x):
    loaded = load_model(files[kind], MLP_ARCH)
    assert loaded.kind == "state_dict" and loaded.arch == "tests.nets:build_mlp"
    torch.testing.assert_close(logits(loaded, x), mlp(x), rtol=0, atol=0)


def test_state_dict_key_selects_an_entry(tmp_path, mlp, x):
    p = tmp_path / "ema.pt"
    other = trained(MLP(), seed=9).state_dict()
    torch.save({"state_dict": other, "state_dict_ema": mlp.state_dict()}, p)
    spec = ModelSpec(arch="tests.nets:build_mlp", state_dict_key="state_dict_ema")
    torch.testing.assert_close(logits(load_model(p, spec), x), mlp(x), rtol=0, atol=0)
    with pytest.raises(InputError, match="no entry 'nope'"):
        load_model(p, ModelSpec(arch="tests.nets:build_mlp", state_dict_key="nope"))


def test_state_dict_needs_arch(files):
    with pytest.raises(InputError, match="--arch timm:NAME"):
        load_model(files["plain"])


def test_arch_kwargs_and_num_classes_reach_the_factory(tmp_path, x):
    net = trained(MLP(hidden=5, num_classes=7), seed=3)
    p = tmp_path / "sd.pt"
    torch.save(net.state_dict(), p)
    spec = ModelSpec(arch="tests.nets:build_mlp", arch_kwargs={"hidden": 5}, num_classes=7)
    assert logits(load_model(p, spec), x).shape == (13, 7)
    with pytest.raises(InputError, match=r"do not fit --arch.*--num-classes"):
        load_model(p, ModelSpec(arch="tests.nets:build_mlp", arch_kwargs={"hidden": 5}))


def test_align_keeps_a_network_whose_keys_start_with_module():
    sd = {"module.w": 1, "module.b": 2}
    assert align_state_dict(sd, {"module.w", "module.b"}) == sd
    assert align_state_dict({"module.model.w": 1}, {"w"}) == {"w": 1}


def test_unwrap_reports_missing_tensors():
    with pytest.raises(InputError, match="found no weight tensors"):
        unwrap_state_dict({"epoch": 1, "args": "x"})


# --------------------------------------------------------------------------- --arch
def test_arch_strings_are_validated():
    with pytest.raises(UsageError, match="expected timm:NAME"):
        build_arch("resnet18")
    with pytest.raises(UsageError, match=r"cannot import 'no_such_pkg_xyz\.models'"):
        build_arch("no_such_pkg_xyz.models:net")
    with pytest.raises(UsageError, match="has no attribute 'nope'"):
        build_arch("tests.nets:nope")
    with pytest.raises(UsageError, match=r"expected a torch\.nn\.Module"):
        build_arch("tests.nets:IN_FEATURES.bit_length")
    with pytest.raises(UsageError, match="building it with"):
        build_arch("tests.nets:build_mlp", kwargs={"bogus": 1})


@pytest.mark.parametrize("package", ["timm", "torchvision"])
def test_optional_arch_packages_fail_clearly(package, monkeypatch):
    monkeypatch.setitem(sys.modules, package, None)  # import → ImportError
    with pytest.raises(UsageError, match=f"needs the optional package '{package}'.*pip install"):
        build_arch(f"{package}:resnet18")


def test_factory_module_found_from_the_working_directory(tmp_path, monkeypatch, x):
    (tmp_path / "my_nets_cwd.py").write_text(
        "from tests.nets import MLP\n\ndef make(**kw):\n    return MLP(**kw)\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    assert type(build_arch("my_nets_cwd:make")).__name__ == "MLP"


# --------------------------------------------------------------------------- pickles
def test_pickled_module_is_refused_naming_the_flag(files):
    with pytest.raises(InputError, match="--trust-pickle") as e:
        load_model(files["whole"], MLP_ARCH)
    assert "tests.nets.MLP" in str(e.value) or "nets.MLP" in str(e.value)


def test_trust_pickle_loads_a_whole_module(files, mlp, x):
    loaded = load_model(files["whole"], ModelSpec(trust_pickle=True))
    assert loaded.kind == "pickle"
    torch.testing.assert_close(logits(loaded, x), mlp(x), rtol=0, atol=0)


def test_malicious_reduce_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pt"
    torch.save({"state_dict": {"w": torch.zeros(1)}, "payload": Evil(marker)}, evil)
    legacy = tmp_path / "evil_legacy.pt"
    torch.save(Evil(marker), legacy, _use_new_zipfile_serialization=False)
    assert not marker.exists()
    for path in (evil, legacy):
        assert not is_predictions_file(path)
        with pytest.raises(InputError, match="--trust-pickle"):
            load_model(path, MLP_ARCH)
    assert not marker.exists()


# --------------------------------------------------------------------------- .pt2 checks
def _rewrite_pt2(src: Path, dst: Path, edit) -> Path:
    """Copy a .pt2 archive, passing each JSON member through ``edit(name, obj)``."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            data = zin.read(info.filename)
            if info.filename.endswith(".json"):
                data = json.dumps(edit(info.filename, json.loads(data))).encode()
            zout.writestr(info, data)
    return dst


def _set_all(obj, key, value):
    if isinstance(obj, dict):
        for k in list(obj):
            if k == key:
                obj[k] = value
            else:
                _set_all(obj[k], key, value)
    elif isinstance(obj, list):
        for v in obj:
            _set_all(v, key, value)
    return obj


@pytest.fixture(scope="module")
def conv_pt2(tmp_path_factory):
    d = tmp_path_factory.mktemp("pt2")
    net = trained(ConvNet(), seed=2)
    return save_export(net, torch.randn(2, 3, 6, 6), d / "conv.pt2")


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            lambda n, o: _set_all(o, "target", "torch.os.system") if "models/" in n else o,
            "calls 'torch.os.system'",
        ),
        (
            lambda n, o: _set_all(o, "expr_str", "open('{marker}', 'w')") if "models/" in n else o,
            "shape expression",
        ),
        (
            lambda n, o: {**o, "guards_code": ["open('{marker}', 'w')"]} if "models/" in n else o,
            "guard",
        ),
        (
            lambda n, o: _set_all(o, "use_pickle", True) if "weights_config" in n else o,
            "pickled object",
        ),
    ],
    ids=["call-target", "sympy-expr", "guard-code", "pickled-weight"],
)
def test_pt2_code_paths_are_refused(conv_pt2, tmp_path, edit, message):
    marker = tmp_path / "pwned"

    def with_marker(name, obj):
        return json.loads(json.dumps(edit(name, obj)).replace("{marker}", str(marker)))

    bad = _rewrite_pt2(conv_pt2, tmp_path / "bad.pt2", with_marker)
    with pytest.raises(InputError, match=message) as e:
        load_model(bad)
    assert "--trust-pickle" in str(e.value)
    assert not marker.exists()


def test_pt2_check_accepts_real_programs(conv_pt2, files):
    check_pt2_archive(conv_pt2)
    check_pt2_archive(files["export"])
