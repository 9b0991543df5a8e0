"""Model checkpoints: what a file holds is detected from its content, then
loaded the safest way that works.

* **predictions file** (a ``logits``/``probs`` tensor, or any ``.npz``): no
  inference at all, :func:`sc_eval.io.load_predictions`;
* **TorchScript archive** (zip with ``code/`` and ``constants.pkl``):
  ``torch.jit.load``;
* **torch.export program** (``.pt2``, zip with ``archive_format``):
  :func:`check_pt2_archive`, then ``torch.export.load``;
* **state_dict** (``torch.save`` file that ``torch.load(weights_only=True)``
  reads as a dict of tensors, or safetensors weights): ``--arch`` builds the
  network, ``load_state_dict(strict=True)``;
* **pickled objects** (``weights_only=True`` refuses the file, e.g. a whole
  ``nn.Module``): refused unless ``trust_pickle``.

Nothing here unpickles arbitrary Python objects unless the caller passes
``trust_pickle=True``: ``torch.load`` always runs with ``weights_only=True``,
and a ``.pt2`` archive is inspected first (pickled payloads, call targets and
the Python snippets that ``torch.export`` would ``eval``) because
``torch.export.load`` itself may unpickle or evaluate what the file says.
torch is imported only inside the functions that need it.
"""

from __future__ import annotations

import ast
import contextlib
import importlib
import importlib.util
import os
import pickle
import re
import sys
import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from safetensors import SafetensorError

from sc_eval.cache import file_sha256
from sc_eval.errors import InputError, UsageError
from sc_eval.files import check_zip, detect, parse_json
from sc_eval.io import read_arrays, torch_failure, torch_load_weights, unpickling_refusal
from sc_eval.quiet import quiet

if TYPE_CHECKING:
    import torch

__all__ = [
    "LoadedModel",
    "ModelSpec",
    "align_state_dict",
    "build_arch",
    "check_pt2_archive",
    "checkpoint_kind",
    "is_predictions_file",
    "load_model",
    "torch_file_content",
    "unwrap_state_dict",
]

#: Keys under which training scripts nest the weights, tried in this order.
WRAPPER_KEYS = ("state_dict", "model", "model_state_dict", "net", "network", "module")

TRUST_HINT = (
    "If you trust this file, pass --trust-pickle (loading it may then run any code it holds)."
)


@dataclass(frozen=True)
class ModelSpec:
    """How to turn a checkpoint into a network.

    Attributes
    ----------
    arch : str or None
        ``timm:NAME``, ``torchvision:NAME`` or ``package.module:callable``;
        needed for a state_dict, ignored for programs (TorchScript, .pt2).
    arch_kwargs : mapping
        Keyword arguments of the architecture factory.
    num_classes : int or None
        Passed to the factory as ``num_classes=`` when given.
    state_dict_key : str or None
        Key of the weights inside a checkpoint dict (default: try
        ``state_dict``, ``model``, … in :data:`WRAPPER_KEYS`).
    trust_pickle : bool
        Allow unpickling arbitrary objects (a whole pickled ``nn.Module``).
    """

    arch: str | None = None
    arch_kwargs: Mapping[str, Any] = field(default_factory=dict)
    num_classes: int | None = None
    state_dict_key: str | None = None
    trust_pickle: bool = False

    def cache_fields(self) -> dict[str, Any]:
        """What changes the network's outputs, for cache keys."""
        return {
            "arch": self.arch,
            "arch_source": arch_source_digest(self.arch),
            "arch_kwargs": dict(sorted(self.arch_kwargs.items())),
            "num_classes": self.num_classes,
            "state_dict_key": self.state_dict_key,
        }


@dataclass(frozen=True)
class LoadedModel:
    """A network ready for inference.

    Attributes
    ----------
    module : torch.nn.Module
        In eval mode, on the CPU.
    kind : str
        ``torchscript``, ``export``, ``state_dict`` or ``pickle``.
    path : str
    fixed_batch : int or None
        Batch size the program was exported with when it is static
        (``torch.export`` without a dynamic batch dimension); inference then
        pads the last batch.
    arch : str or None
    """

    module: Any
    kind: str
    path: str
    fixed_batch: int | None = None
    arch: str | None = None


# --------------------------------------------------------------------------- detection
def checkpoint_kind(path: str | os.PathLike[str]) -> str:
    """Detect what a file holds from its bytes, without importing torch.

    Returns
    -------
    str
        ``predictions`` (a ``.npz``, or safetensors with ``logits``/``probs``),
        ``safetensors`` (safetensors weights), ``torchscript``, ``export``, or
        ``torch`` (a ``torch.save`` file: predictions, a state_dict or
        pickled objects, told apart only by loading it).

    Raises
    ------
    InputError
        Missing file, a directory or device, a damaged or ambiguous zip, or
        an unrecognised kind.
    """

    kind = detect(path, "checkpoint or predictions file")
    if kind == "npz":
        return "predictions"
    if kind == "safetensors":
        arrays, _ = read_arrays(path)
        return "predictions" if {"logits", "probs"} & set(arrays) else "safetensors"
    return kind


def is_predictions_file(
    path: str | os.PathLike[str],
    *,
    logits_key: str | None = None,
    probs_key: str | None = None,
) -> bool:
    """True when ``path`` holds predictions rather than a model.

    torch is imported only for ``torch.save`` files, which are opened with
    ``weights_only=True`` (memory-mapped) to look for a ``logits``/``probs``
    tensor; safetensors and npz files are told apart without torch.
    """
    wanted = {k for k in (logits_key, probs_key) if k} or {"logits", "probs"}
    kind = checkpoint_kind(path)
    if kind == "predictions":
        return True
    if kind == "safetensors" and (logits_key or probs_key):
        return bool(wanted & set(read_arrays(path)[0]))
    if kind != "torch":
        return False
    try:
        content = torch_file_content(path, logits_key=logits_key, probs_key=probs_key)
    except InputError:
        return False
    return content == "predictions"


def torch_file_content(
    path: str | os.PathLike[str],
    *,
    logits_key: str | None = None,
    probs_key: str | None = None,
) -> str:
    """What a ``torch.save`` file holds, read with ``weights_only=True``: ``predictions``
    (a 2-D ``logits``/``probs`` tensor), ``weights`` (anything else made of tensors)
    or ``pickle`` (objects that ``weights_only`` refuses; nothing is unpickled).

    Raises
    ------
    InputError
        A corrupt or unreadable file.
    """
    import torch

    wanted = {k for k in (logits_key, probs_key) if k} or {"logits", "probs"}
    try:
        obj = _torch_load_safe(Path(path))
    except _PickleRefused:
        return "pickle"
    if isinstance(obj, Mapping) and any(
        isinstance(obj.get(k), torch.Tensor) and obj[k].dim() == 2 for k in wanted
    ):
        return "predictions"
    return "weights"


# --------------------------------------------------------------------------- loading
def load_model(path: str | os.PathLike[str], spec: ModelSpec = ModelSpec()) -> LoadedModel:
    """Load a checkpoint as an eval-mode network on the CPU.

    Parameters
    ----------
    path : path-like
        TorchScript archive, ``torch.export`` ``.pt2``, or a state_dict
        (``.pt``/``.pth``/``.safetensors``, possibly wrapped in
        ``{"state_dict": …}`` / ``{"model": …}`` and with DDP ``module.``
        prefixes).
    spec : ModelSpec
        Architecture for state_dicts, and whether pickles are trusted.

    Returns
    -------
    LoadedModel

    Raises
    ------
    InputError
        Predictions instead of a model, pickled objects without
        ``trust_pickle``, corrupt files, weights that do not fit the
        architecture.
    UsageError
        Missing or unknown ``--arch``.
    """
    p = Path(path)
    kind = checkpoint_kind(p)
    if kind == "predictions":
        raise InputError("holds predictions, not a model; nothing to infer", path=path)
    loader = _LOADERS[kind]
    return loader(p, spec)


def check_torchscript_archive(path: str | os.PathLike[str]) -> None:
    """Refuse a TorchScript archive whose code calls file, library or network operators
    (``torch.from_file`` can map and write any path; ``c10d`` talks to the network).

    TorchScript runs only its own operators, but some operators are I/O; the
    archive's ``code/`` members are searched for them before ``torch.jit.load``.
    """

    members = [m.name for m in check_zip(path, single_root=True)]
    with zipfile.ZipFile(path) as zf:
        for name in members:
            inner = name.split("/", 1)[1]
            if not inner.startswith("code/"):
                continue
            found = _UNSAFE_SCRIPT.search(zf.read(name))
            if found:
                raise InputError(
                    f"the TorchScript code ({inner}) calls '{found.group(0).decode()}', which "
                    f"reads or writes files, libraries or the network; refusing to run it. "
                    f"{TRUST_HINT}",
                    path=path,
                )


def _load_torchscript(path: Path, spec: ModelSpec) -> LoadedModel:
    import torch

    if not spec.trust_pickle:
        check_torchscript_archive(path)
    try:
        with quiet():
            module = torch.jit.load(str(path), map_location="cpu")
    except Exception as e:  # torch raises many kinds on a damaged archive
        raise InputError(f"cannot load TorchScript archive: {_first_line(e)}", path=path) from None
    module.eval()
    return LoadedModel(module, "torchscript", str(path))


def _load_export(path: Path, spec: ModelSpec) -> LoadedModel:
    import torch

    if not spec.trust_pickle:
        check_pt2_archive(path)
    try:
        with forced_weights_only(not spec.trust_pickle), quiet():
            program = torch.export.load(str(path))
            module = program.module()
    except InputError:
        raise
    except Exception as e:  # torch raises many kinds here; all mean "cannot load"
        if "weights_only" in str(e) or "Unsupported global" in str(e):
            raise InputError(
                f"the .pt2 archive holds pickled objects; refusing to unpickle them. {TRUST_HINT}",
                path=path,
            ) from None
        raise InputError(f"cannot load torch.export program: {_first_line(e)}", path=path) from None
    inputs = list(program.graph_signature.user_inputs)
    if len(inputs) != 1:
        raise InputError(
            f"the exported program takes {len(inputs)} inputs; sc-eval feeds exactly one tensor",
            path=path,
        )
    fixed = None
    for node in program.graph.nodes:
        if node.op == "placeholder" and node.name == inputs[0]:
            val = node.meta.get("val")
            shape = getattr(val, "shape", None)
            if shape is not None and len(shape) > 0 and isinstance(shape[0], int):
                fixed = int(shape[0])
    return LoadedModel(module, "export", str(path), fixed_batch=fixed)


def _load_torch(path: Path, spec: ModelSpec) -> LoadedModel:
    import torch

    try:
        obj: Any = _torch_load_safe(path)
        kind = "state_dict"
    except _PickleRefused as refused:
        if not spec.trust_pickle:
            raise InputError(
                f"holds pickled Python objects ({refused.names}), e.g. a whole nn.Module "
                "saved with torch.save(model); refusing to unpickle them because that can run "
                "arbitrary code. Save model.state_dict() and pass --arch, or export the model "
                f"with torch.export / TorchScript. {TRUST_HINT}",
                path=path,
            ) from None
        obj = _torch_load_trusted(path)
        kind = "pickle"
    if isinstance(obj, Mapping) and any(
        isinstance(obj.get(k), torch.Tensor) for k in ("logits", "probs")
    ):
        raise InputError("holds predictions, not a model; nothing to infer", path=path)
    module = _find_module(obj, spec.state_dict_key) if kind == "pickle" else None
    if module is not None:
        module.eval()
        return LoadedModel(module, "pickle", str(path))
    state = unwrap_state_dict(obj, key=spec.state_dict_key, path=path)
    return _from_state_dict(path, state, spec, kind)


def _load_safetensors(path: Path, spec: ModelSpec) -> LoadedModel:
    from safetensors.torch import load_file

    try:
        state = load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as e:
        raise InputError(f"cannot read safetensors weights: {_first_line(e)}", path=path) from None
    return _from_state_dict(path, state, spec, "state_dict")


_LOADERS = {
    "torchscript": _load_torchscript,
    "export": _load_export,
    "torch": _load_torch,
    "safetensors": _load_safetensors,
}


class _PickleRefused(Exception):
    def __init__(self, names: str):
        super().__init__(names)
        self.names = names


def _torch_load_safe(path: Path) -> Any:
    """``torch.load(weights_only=True)``, memory-mapped when the format allows."""

    try:
        return torch_load_weights(path)
    except InputError:
        raise
    except pickle.UnpicklingError as e:
        is_pickle, detail = unpickling_refusal(e)
        if is_pickle:
            raise _PickleRefused(_unsafe_globals(path)) from None
        raise InputError(f"not a valid torch.save file ({detail})", path=path) from None
    except Exception as e:  # on malformed bytes torch.load raises KeyError, IndexError, …
        raise InputError(torch_failure(e, "checkpoint"), path=path) from None


def _torch_load_trusted(path: Path) -> Any:
    import torch

    try:
        with quiet():
            return torch.load(path, map_location="cpu", weights_only=False)
    except (ModuleNotFoundError, AttributeError) as e:
        raise InputError(
            f"the pickled objects need code that is not importable here: {_first_line(e)}",
            path=path,
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError) as e:
        raise InputError(f"corrupt or unreadable checkpoint: {_first_line(e)}", path=path) from None


def _unsafe_globals(path: Path) -> str:
    """Names of the Python objects a pickle would import — read without unpickling."""
    import torch

    try:
        with quiet():
            names = torch.serialization.get_unsafe_globals_in_checkpoint(path)
    except Exception:  # older formats cannot be scanned; the refusal stands anyway
        return "objects other than tensors"
    names = sorted(names, key=lambda n: (n.startswith("torch."), n))  # the user's classes first
    shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
    return shown or "objects other than tensors"


def _find_module(obj: Any, key: str | None) -> Any:
    """A whole ``nn.Module`` inside a trusted pickle (the object itself or a wrapper value)."""
    import torch

    if isinstance(obj, torch.nn.Module):
        return obj
    if isinstance(obj, Mapping):
        for k in (key,) if key else WRAPPER_KEYS:
            if isinstance(obj.get(k), torch.nn.Module):
                return obj[k]
    return None


# --------------------------------------------------------------------------- state dicts
def unwrap_state_dict(
    obj: Any, *, key: str | None = None, path: object = None
) -> dict[str, torch.Tensor]:
    """The tensors of a checkpoint, unwrapped from ``{"state_dict": …}``-style nesting.

    Parameters
    ----------
    obj : object
        What ``torch.load`` returned.
    key : str, optional
        Take ``obj[key]`` (e.g. ``state_dict_ema``); default: descend through
        the first of :data:`WRAPPER_KEYS` present until the values are tensors.
    path : object, optional
        For error messages.

    Returns
    -------
    dict of str to Tensor
        Non-tensor entries (epoch counters, optimiser state …) are dropped.
    """
    import torch

    if not isinstance(obj, Mapping):
        raise InputError(f"expected a dict of tensors, found {type(obj).__name__}", path=path)
    if key is not None:
        if key not in obj:
            raise InputError(
                f"no entry '{key}' (top-level keys: {_keys(obj)})", path=path, field=key
            )
        obj = obj[key]
    for _ in range(8):
        if not isinstance(obj, Mapping) or all(isinstance(v, torch.Tensor) for v in obj.values()):
            break
        nested = next((k for k in WRAPPER_KEYS if isinstance(obj.get(k), Mapping)), None)
        if nested is None:
            break
        obj = obj[nested]
    if not isinstance(obj, Mapping):
        raise InputError(f"expected a dict of tensors, found {type(obj).__name__}", path=path)
    tensors = {str(k): v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise InputError(
            f"found no weight tensors (keys: {_keys(obj)}); name the entry holding them "
            "with --state-dict-key",
            path=path,
        )
    return tensors


def _keys(obj: Mapping[Any, Any], limit: int = 8) -> str:
    keys = [str(k) for k in obj]
    return ", ".join(keys[:limit]) + (", …" if len(keys) > limit else "") or "none"


def align_state_dict(
    state: Mapping[str, torch.Tensor], expected: set[str]
) -> dict[str, torch.Tensor]:
    """Strip wrapper prefixes (``module.`` from DDP, ``_orig_mod.`` from ``torch.compile``,
    ``model.`` from Lightning …) so the keys match the network's.

    A leading dotted component is removed only while *every* key carries it,
    and the version that best matches ``expected`` wins, so a network whose
    own keys start with ``module.`` is left alone.

    Examples
    --------
    >>> align_state_dict({"module.fc.weight": 1, "module.fc.bias": 2}, {"fc.weight", "fc.bias"})
    {'fc.weight': 1, 'fc.bias': 2}
    """
    best = dict(state)
    best_hits = len(expected & set(best))
    current = dict(state)
    while current and best_hits < len(expected):
        heads = {k.split(".", 1)[0] for k in current}
        if len(heads) != 1 or any("." not in k for k in current):
            break
        cut = len(heads.pop()) + 1
        current = {k[cut:]: v for k, v in current.items()}
        hits = len(expected & set(current))
        if hits > best_hits:
            best, best_hits = current, hits
    return best


def _from_state_dict(
    path: Path, state: Mapping[str, torch.Tensor], spec: ModelSpec, kind: str
) -> LoadedModel:
    if not spec.arch:
        raise InputError(
            f"is a state_dict ({len(state)} tensors) and needs an architecture: pass "
            "--arch timm:NAME, --arch torchvision:NAME or --arch package.module:callable",
            path=path,
        )
    model = build_arch(spec.arch, kwargs=spec.arch_kwargs, num_classes=spec.num_classes)
    expected = set(model.state_dict())
    aligned = align_state_dict(state, expected)
    try:
        model.load_state_dict(aligned, strict=True)
    except RuntimeError as e:
        missing = sorted(expected - set(aligned))
        unexpected = sorted(set(aligned) - expected)
        detail = (
            _first_line(e)
            if not (missing or unexpected)
            else (
                f"missing {len(missing)} keys ({', '.join(missing[:3])}), unexpected "
                f"{len(unexpected)} ({', '.join(unexpected[:3])})"
            )
        )
        if "size mismatch" in str(e):
            words = str(e).split("size mismatch", 1)[1].split()[:40]
            detail = ("size mismatch " + " ".join(words)).rstrip(" .;")
        raise InputError(
            f"weights do not fit --arch {spec.arch}: {detail}; check --arch, --arch-kwargs "
            "and --num-classes",
            path=path,
        ) from None
    model.eval()
    return LoadedModel(model, kind, str(path), arch=spec.arch)


# --------------------------------------------------------------------------- architectures
def build_arch(
    arch: str, *, kwargs: Mapping[str, Any] | None = None, num_classes: int | None = None
) -> torch.nn.Module:
    """Build an untrained network from an ``--arch`` string.

    Parameters
    ----------
    arch : str
        ``timm:NAME`` (``timm.create_model``), ``torchvision:NAME``
        (``torchvision.models.get_model``) — both optional packages — or
        ``package.module:callable`` (imported; the current directory is
        searched too).
    kwargs : mapping, optional
        Keyword arguments for the factory.
    num_classes : int, optional
        Added to ``kwargs`` as ``num_classes``.

    Raises
    ------
    UsageError
        Malformed string, package not installed, unknown name, failing factory.
    """
    import torch

    prefix, sep, name = arch.partition(":")
    if not sep or not prefix or not name:
        raise UsageError(
            f"--arch '{arch}': expected timm:NAME, torchvision:NAME or package.module:callable"
        )
    args = dict(kwargs or {})
    if num_classes is not None:
        args["num_classes"] = num_classes
    builder = _ARCH_BUILDERS.get(prefix, _build_callable)
    model = builder(prefix, name, args)
    if not isinstance(model, torch.nn.Module):
        raise UsageError(
            f"--arch '{arch}' returned {type(model).__name__}, expected a torch.nn.Module"
        )
    return model


def _import_optional(package: str, arch: str) -> Any:
    try:
        return importlib.import_module(package)
    except ImportError:
        raise UsageError(
            f"--arch '{arch}' needs the optional package '{package}', which is not installed "
            f"(pip install {package})"
        ) from None
    except Exception as e:  # e.g. a torchvision build that does not match torch
        raise UsageError(
            f"--arch '{arch}': the optional package '{package}' is installed but failed to "
            f"import: {_first_line(e)}"
        ) from None


def _build_timm(prefix: str, name: str, args: dict[str, Any]) -> Any:
    timm = _import_optional("timm", f"{prefix}:{name}")
    return _call(f"{prefix}:{name}", timm.create_model, name, pretrained=False, **args)


def _build_torchvision(prefix: str, name: str, args: dict[str, Any]) -> Any:
    _import_optional("torchvision", f"{prefix}:{name}")
    models = importlib.import_module("torchvision.models")
    return _call(f"{prefix}:{name}", models.get_model, name, weights=None, **args)


def _build_callable(module_name: str, attr: str, args: dict[str, Any]) -> Any:
    arch = f"{module_name}:{attr}"
    try:
        module = _import_user_module(module_name)
    except (ImportError, SyntaxError) as e:
        raise UsageError(f"--arch '{arch}': cannot import '{module_name}': {e}") from None
    except (Exception, SystemExit) as e:  # the module's own code failed while importing
        raise UsageError(
            f"--arch '{arch}': importing '{module_name}' failed: {_first_line(e)}"
        ) from None
    target: Any = module
    for part in attr.split("."):
        if not hasattr(target, part):
            raise UsageError(f"--arch '{arch}': '{module_name}' has no attribute '{attr}'")
        target = getattr(target, part)
    if not callable(target):
        raise UsageError(f"--arch '{arch}': '{attr}' is not callable")
    return _call(arch, target, **args)


_ARCH_BUILDERS = {"timm": _build_timm, "torchvision": _build_torchvision}


def _import_user_module(name: str) -> Any:
    """Import ``name``; if that fails, retry with the current directory on ``sys.path``
    (the console script does not put it there, ``python -m`` does)."""
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError:
        cwd = os.getcwd()
        if cwd in sys.path:
            raise
        sys.path.append(cwd)
        importlib.invalidate_caches()
        return importlib.import_module(name)


def _call(arch: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
    try:
        return fn(*args, **kwargs)
    except SystemExit as e:  # a factory that calls sys.exit() must not end sc-eval quietly
        raise UsageError(f"--arch '{arch}': the factory called exit({e.code})") from None
    except (TypeError, ValueError, KeyError, RuntimeError) as e:
        shown = ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
        raise UsageError(f"--arch '{arch}': building it with ({shown}) failed: {e}") from None


def arch_source_digest(arch: str | None) -> str | None:
    """SHA-256 of the source file behind a ``package.module:callable`` arch (for cache
    keys: editing the network's code invalidates cached predictions), or the
    package version for ``timm:``/``torchvision:``. Found without importing it."""
    if not arch or ":" not in arch:
        return None

    prefix = arch.split(":", 1)[0]
    if prefix in _ARCH_BUILDERS:
        try:
            return f"{prefix}=={metadata.version(prefix)}"
        except metadata.PackageNotFoundError:
            return None
    try:
        spec = importlib.util.find_spec(prefix)
    except (ImportError, ValueError):
        spec = None
    if spec is None:
        cwd = os.getcwd()
        candidate = Path(cwd, *prefix.split(".")).with_suffix(".py")
        origin = str(candidate) if candidate.is_file() else None
    else:
        origin = spec.origin
    if not origin or not os.path.isfile(origin):
        return None

    return file_sha256(origin)


# --------------------------------------------------------------------------- .pt2 checks
_SAFE_TARGET = re.compile(
    r"^(torch\.ops\.[A-Za-z0-9_.]+|_operator\.[a-z_]+|math\.[a-z_0-9]+|"
    r"torch\.sym_[a-z_]+|torch\._sym_[a-z_]+|#.*)$"
)
#: Operator namespaces a program may call: tensor maths. Others reach files, the network
#: or devices (c10d, symm_mem, debugprims.load_tensor …) and are refused.
_SAFE_OP_NAMESPACES = frozenset(
    {"aten", "prims", "quantized", "_quantized", "higher_order", "mkldnn", "onednn",
     "quantization", "rngprims", "profiler"}
)  # fmt: skip
#: Operators of those namespaces that touch files: ``aten.from_file`` maps (and with
#: ``shared=True`` writes) any path.
_UNSAFE_OPS = frozenset({"from_file"})
#: Words whose presence in TorchScript code means file, library or network access.
_UNSAFE_SCRIPT = re.compile(
    rb"\bfrom_file\b|load_library|\bc10d\b|debugprims|symm_mem|_load_for_mobile"
)
#: Largest integer constant and exponent a shape expression or guard may hold.
_MAX_CONSTANT = 2**63
_MAX_EXPONENT = 64
_GUARD_NAMES = frozenset(
    {"L", "math", "torch", "IsNonOverlappingAndDenseIndicator",
     "cast_symbool_to_symint_guardless", "int", "float", "abs", "min", "max", "round", "bool",
     "True", "False", "None"}
)  # fmt: skip
_GUARD_ATTRS = frozenset(
    {"size", "stride", "storage_offset", "dim", "numel", "shape", "floor", "ceil", "trunc",
     "sqrt", "log2", "inf", "sym_int", "sym_float", "sym_max", "sym_min", "sym_sqrt",
     "sym_not", "sym_ite", "sym_sum"}
)  # fmt: skip
_SYMPY_NAMES = frozenset(
    {"Symbol", "Integer", "Float", "Rational", "Mul", "Add", "Pow", "Mod", "Max", "Min", "Abs",
     "floor", "ceiling", "Eq", "Ne", "Lt", "Le", "Gt", "Ge", "And", "Or", "Not", "oo", "zoo",
     "nan", "true", "false", "True", "False", "FloorDiv", "ModularIndexing", "Where",
     "PythonMod", "CleanDiv", "CeilToInt", "FloorToInt", "CeilDiv", "IntTrueDiv",
     "FloatTrueDiv", "LShift", "RShift", "IsNonOverlappingAndDenseIndicator", "TruncToFloat",
     "TruncToInt", "RoundToInt", "RoundDecimal", "ToFloat", "FloatPow", "PowByNatural",
     "Identity"}
)  # fmt: skip
_SYMBOL_NAME = re.compile(r"^[a-z]{1,4}\d+$")
_ALLOWED_AST = (
    ast.Expression, ast.Compare, ast.BoolOp, ast.BinOp, ast.UnaryOp, ast.Constant, ast.Name,
    ast.Load, ast.Call, ast.keyword, ast.Attribute, ast.Subscript, ast.Tuple, ast.operator,
    ast.boolop, ast.cmpop, ast.unaryop,
)  # fmt: skip


def _expression_ok(text: str, *, names: frozenset[str], attrs: frozenset[str]) -> bool:
    """True when ``text`` is a plain expression over allowed names and attributes:
    no statements, no lambdas, no comprehensions, no dunder anything."""
    if "__" in text:
        return False
    try:
        tree = ast.parse(text, mode="eval")
    except (SyntaxError, ValueError):
        return False
    for node in ast.walk(tree):
        if not isinstance(node, _ALLOWED_AST):
            return False
        if isinstance(node, ast.Name) and not (node.id in names or _SYMBOL_NAME.match(node.id)):
            return False
        if isinstance(node, ast.Attribute) and node.attr not in attrs:
            return False
        if isinstance(node, ast.Constant) and not _constant_ok(node.value):
            return False
        bounded = (
            isinstance(node.op, ast.Pow | ast.LShift | ast.Mult)
            if isinstance(node, ast.BinOp)
            else False
        )
        if bounded and not _bounded_operation(node):  # type: ignore[arg-type]
            return False
    return True


def _constant_ok(value: object) -> bool:
    if isinstance(value, bool) or value is None:
        return True
    if isinstance(value, int | float):
        return abs(value) <= _MAX_CONSTANT
    return isinstance(value, str) and len(value) <= 256


def _bounded_operation(node: ast.BinOp) -> bool:
    """``x ** k`` and ``x << k`` only with a small constant ``k`` (``9**9**9`` would run
    for ever); no multiplication of strings (``'a' * 10**10``)."""
    if isinstance(node.op, ast.Mult):
        return not any(
            isinstance(side, ast.Constant) and isinstance(side.value, str)
            for side in (node.left, node.right)
        )
    k = node.right
    return (
        isinstance(k, ast.Constant) and isinstance(k.value, int) and abs(k.value) <= (_MAX_EXPONENT)
    )


def _target_ok(target: str) -> bool:
    """A call target of an exported program that cannot reach files, network or devices."""
    if not _SAFE_TARGET.match(target):
        return False
    if not target.startswith("torch.ops."):
        return True
    parts = target.split(".")
    namespace = parts[2] if len(parts) > 2 else ""
    op = parts[3] if len(parts) > 3 else ""
    return namespace in _SAFE_OP_NAMESPACES and op not in _UNSAFE_OPS


def _walk_json(obj: Any) -> Iterator[tuple[str, Any]]:
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield k, v
            yield from _walk_json(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _walk_json(v)


def check_pt2_archive(path: str | os.PathLike[str]) -> None:
    """Refuse a ``torch.export`` archive whose loading could run code beyond PyTorch operators.

    ``torch.export.load`` unpickles payloads marked ``use_pickle`` (with
    ``weights_only=False``) and "opaque"/"custom" constants, resolves call
    targets by attribute path from ``torch``, ``sympify``-s shape expressions
    and compiles guard snippets into Python. This check reads the archive as
    zip + JSON (nothing is executed) and refuses:

    * compiled packages (AOTInductor, ExecuTorch, MTIA): native code;
    * pickled weights/constants and custom/opaque objects;
    * call targets other than ``torch.ops.*``, ``_operator.*``, ``math.*``,
      ``torch.sym_*``;
    * shape expressions and guards that are not plain arithmetic over the
      names ``torch.export`` emits.

    Raises
    ------
    InputError
        Naming what was found and the ``--trust-pickle`` escape hatch.
    """
    import torch

    p = Path(path)
    listed = {m.name.split("/", 1)[1] for m in check_zip(p, single_root=True)}
    try:  # read what torch.export.load will read, through the reader it uses
        with quiet():
            reader = torch._C.PyTorchFileReader(str(p))
            records = set(reader.get_all_records())
    except Exception as e:
        raise InputError(f"corrupt .pt2 archive: {_first_line(e)}", path=path) from None
    if records != listed:
        raise InputError(
            "torch's zip reader and Python's see different members in this archive; refusing it",
            path=path,
        )
    for inner in sorted(records):
        if inner.startswith(("data/aotinductor/", "data/executorch/", "data/mtia")):
            raise InputError(
                "is a compiled .pt2 package (AOTInductor/ExecuTorch: native code), "
                "not a torch.export program; sc-eval loads exported programs only",
                path=path,
            )
    for inner in sorted(records):
        is_config = inner.startswith(("data/weights/", "data/constants/"))
        is_program = inner.startswith("models/") and inner.endswith(".json")
        if not (is_config and inner.endswith("_config.json")) and not is_program:
            continue
        try:
            with quiet():
                raw = bytes(reader.get_record(inner))
        except Exception as e:
            raise InputError(f"corrupt .pt2 member {inner}: {_first_line(e)}", path=path) from None
        doc = parse_json(raw, path=path, what=f".pt2 member {inner}")
        if is_program:
            _check_program_json(doc, inner, p)
        else:
            _check_payload_config(doc, inner, p)


def _check_payload_config(config: Any, member: str, path: Path) -> None:
    entries = config.get("config", {}) if isinstance(config, dict) else {}
    for fqn, meta in entries.items() if isinstance(entries, dict) else ():
        if not isinstance(meta, dict):
            continue
        name = str(meta.get("path_name", ""))
        if meta.get("use_pickle") or name.startswith(("custom_obj_", "opaque_obj_")):
            raise InputError(
                f"the .pt2 archive stores '{fqn}' as a pickled object ({member}); refusing "
                f"to unpickle it. {TRUST_HINT}",
                path=path,
            )


def _check_program_json(program: Any, member: str, path: Path) -> None:
    for key, value in _walk_json(program):
        if key == "target" and isinstance(value, str) and not _target_ok(value):
            raise InputError(
                f"the exported program ({member}) calls '{value[:80]}', which is not a "
                f"tensor operator sc-eval allows (file, network or device access, or plain "
                f"Python); refusing to load it. {TRUST_HINT}",
                path=path,
            )
        if key == "expr_str" and not (
            isinstance(value, str) and _expression_ok(value, names=_SYMPY_NAMES, attrs=frozenset())
        ):
            raise InputError(
                f"the exported program ({member}) has a shape expression that is not plain "
                f"arithmetic: {str(value)[:80]!r}; refusing to evaluate it. {TRUST_HINT}",
                path=path,
            )
        if key == "guards_code":
            for guard in value if isinstance(value, list) else [value]:
                if not (
                    isinstance(guard, str)
                    and _expression_ok(guard, names=_GUARD_NAMES, attrs=_GUARD_ATTRS)
                ):
                    raise InputError(
                        f"the exported program ({member}) has a guard that is not a plain "
                        f"shape check: {str(guard)[:80]!r}; refusing to run it. {TRUST_HINT}",
                        path=path,
                    )


@contextlib.contextmanager
def forced_weights_only(enabled: bool) -> Iterator[None]:
    """Make every ``torch.load`` inside (even ``weights_only=False`` ones) weights-only."""
    if not enabled:
        yield
        return
    name = "TORCH_FORCE_WEIGHTS_ONLY_LOAD"
    old = os.environ.get(name)
    os.environ[name] = "1"
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = old


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    line = (text.splitlines()[0] if text else "")[:300]
    return line if len(line) >= 12 else f"{type(e).__name__}: {line}".rstrip(": ")
