"""Inference data: tensor files and image folders.

* **Tensor file** — ``.safetensors``, ``.npz`` or ``.pt`` (kind detected from
  content, read by :mod:`sc_eval.io`; safetensors stay on disk, read batch by
  batch) holding
  ``inputs`` ``[N, …]`` and integer ``labels`` ``[N]``, optionally ``index``
  ``[N]`` sample ids that are carried into the predictions file.
* **Image folder** — one sub-folder per class; class ``i`` is the ``i``-th
  folder name in sorted order; images are found recursively (sorted) and go
  through the standard evaluation transform: resize the shorter side to
  ``resize_size`` (default ``image_size / 0.875``), centre-crop
  ``image_size``, scale to [0, 1], normalise with ``mean``/``std``
  (ImageNet's by default). Needs Pillow (``pip install 'sc-eval[images]'``).

A dataset here is indexed by a *list* of positions and returns a whole batch
``(inputs, positions)``, so tensor files are sliced, not collated row by row.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sc_eval.cache import file_sha256, memo_digest, tree_sha256
from sc_eval.errors import InputError, UsageError
from sc_eval.files import check_input_file
from sc_eval.io import read_arrays

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "IMAGE_EXTENSIONS",
    "ImageBatches",
    "ImageTransform",
    "InferenceData",
    "TensorBatches",
    "open_data",
]

IMAGE_EXTENSIONS = (".bmp", ".gif", ".jpeg", ".jpg", ".png", ".ppm", ".tif", ".tiff", ".webp")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
INTERPOLATIONS = ("bilinear", "bicubic", "nearest", "lanczos")
CROP_PCT = 0.875
INPUTS_KEY = "inputs"
LABELS_KEY = "labels"
INDEX_KEY = "index"


@dataclass(frozen=True)
class ImageTransform:
    """The evaluation transform of image folders.

    Attributes
    ----------
    image_size : int
        Side of the square centre crop fed to the model.
    resize_size : int or None
        Shorter side after resizing; default ``round(image_size / 0.875)``
        (256 for 224).
    mean, std : tuple of float
        Per-channel normalisation of RGB values in [0, 1].
    interpolation : {"bilinear", "bicubic", "nearest", "lanczos"}
    """

    image_size: int = 224
    resize_size: int | None = None
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    interpolation: str = "bilinear"

    def __post_init__(self) -> None:
        if self.image_size < 1:
            raise UsageError(f"--image-size must be >= 1, got {self.image_size}")
        if self.resize_size is not None and self.resize_size < self.image_size:
            raise UsageError(
                f"--resize-size ({self.resize_size}) must be >= --image-size ({self.image_size})"
            )
        if self.interpolation not in INTERPOLATIONS:
            raise UsageError(
                f"unknown --interpolation '{self.interpolation}'; choose from "
                f"{', '.join(INTERPOLATIONS)}"
            )
        if len(self.mean) != len(self.std) or len(self.mean) not in (1, 3):
            raise UsageError(
                f"--mean and --std need 1 or 3 values each, got {len(self.mean)} and "
                f"{len(self.std)}"
            )
        if any(not s > 0 for s in self.std):
            raise UsageError(f"--std values must be > 0, got {list(self.std)}")

    @property
    def resize(self) -> int:
        """The shorter side after resizing (the default resolved)."""
        if self.resize_size is not None:
            return self.resize_size
        return max(self.image_size, round(self.image_size / CROP_PCT))

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["resize_size"] = self.resize
        d["mean"], d["std"] = list(self.mean), list(self.std)
        return d


# --------------------------------------------------------------------------- datasets
class TensorBatches:
    """Batches of rows of an ``inputs`` array (read from disk batch by batch when the file
    allows)."""

    def __init__(self, inputs: np.ndarray, dtype: str):
        self.inputs = inputs
        self.dtype = dtype

    def __len__(self) -> int:
        return int(self.inputs.shape[0])

    def __getitem__(self, positions: Sequence[int]) -> tuple[Any, Any]:
        import torch

        pos = np.asarray(positions, dtype=np.int64)
        if pos.size and pos[-1] - pos[0] + 1 == pos.size and np.all(np.diff(pos) == 1):
            rows = np.array(self.inputs[int(pos[0]) : int(pos[-1]) + 1])
        else:
            rows = np.array(self.inputs[pos])
        if self.dtype == "bfloat16":
            batch = torch.from_numpy(rows.view(np.int16)).view(torch.bfloat16)
        else:
            batch = torch.from_numpy(rows)
        return batch, torch.from_numpy(pos)


class ImageBatches:
    """Batches of decoded, transformed images (``float32`` ``[B, 3, S, S]``)."""

    def __init__(self, root: Path, files: list[str], transform: ImageTransform):
        self.root = root
        self.files = files
        self.transform = transform
        t = transform
        self._mean = np.asarray(t.mean, dtype=np.float32).reshape(1, 1, -1)
        self._scale = (1.0 / (255.0 * np.asarray(t.std, dtype=np.float32))).reshape(1, 1, -1)

    def __len__(self) -> int:
        return len(self.files)

    def load(self, position: int) -> np.ndarray:
        """One image as a normalised ``float32`` ``[3, S, S]`` array."""
        from PIL import Image, UnidentifiedImageError
        from PIL.Image import DecompressionBombError

        t = self.transform
        path = self.root / self.files[position]
        try:
            with Image.open(path) as im:
                rgb = im.convert("RGB")
        except DecompressionBombError as e:
            raise InputError(f"refusing an oversized image (decompression bomb?): {e}",
                             path=path) from None  # fmt: skip
        except (UnidentifiedImageError, OSError, ValueError) as e:
            raise InputError(f"cannot read image: {e}", path=path) from None
        w, h = rgb.size
        short = t.resize
        if w <= h:
            size = (short, max(1, int(short * h / w)))
        else:
            size = (max(1, int(short * w / h)), short)
        resample = getattr(Image.Resampling, t.interpolation.upper())
        if size != (w, h):
            rgb = rgb.resize(size, resample=resample)
        left = round((size[0] - t.image_size) / 2.0)
        top = round((size[1] - t.image_size) / 2.0)
        rgb = rgb.crop((left, top, left + t.image_size, top + t.image_size))
        arr = np.asarray(rgb, dtype=np.float32)
        arr = (arr - 255.0 * self._mean) * self._scale
        return np.ascontiguousarray(arr.transpose(2, 0, 1))

    def __getitem__(self, positions: Sequence[int]) -> tuple[Any, Any]:
        import torch

        pos = np.asarray(positions, dtype=np.int64)
        batch = np.stack([self.load(int(i)) for i in pos])
        return torch.from_numpy(batch), torch.from_numpy(pos)


# --------------------------------------------------------------------------- opening
@dataclass(frozen=True)
class InferenceData:
    """Inference inputs and the labels that travel with the logits.

    Attributes
    ----------
    kind : {"tensors", "images"}
    path : str
    dataset : TensorBatches or ImageBatches
        Indexed by a list of positions, returns ``(inputs, positions)``.
    labels : ndarray of int64, shape (N,)
    index : ndarray of int64, shape (N,)
        Sample ids written to the predictions file (``index`` of the data
        file when present, else ``0 .. N-1``).
    metadata : dict
        Free text for the predictions file (class names of an image folder,
        the transform).
    """

    kind: str
    path: str
    dataset: Any
    labels: np.ndarray
    index: np.ndarray
    metadata: dict[str, str] = field(default_factory=dict)
    files: tuple[str, ...] = ()
    classes: tuple[str, ...] = ()

    @property
    def n(self) -> int:
        return int(self.labels.shape[0])

    def sha256(self, *, cache_dir: Path | None = None) -> str:
        """Content hash: the file's bytes, or every image's bytes, path and the class list."""

        root = Path(self.path)
        if self.kind == "tensors":
            return memo_digest([root], lambda: file_sha256(root), cache_dir=cache_dir)

        def compute() -> str:
            tree = tree_sha256(root, self.files)

            head = json.dumps(list(self.classes)).encode("utf-8")
            return hashlib.sha256(head + b"\n" + tree.encode()).hexdigest()

        paths = [root] + [root / f for f in self.files]
        return memo_digest(paths, compute, cache_dir=cache_dir)

    def cache_fields(self) -> dict[str, Any]:
        """Options that change what the model sees (the transform of image folders)."""
        if self.kind == "images":
            return {"transform": self.metadata.get("image_transform")}
        return {}


def open_data(
    path: str | os.PathLike[str], *, transform: ImageTransform | None = None
) -> InferenceData:
    """Open a tensor file or an image folder for inference.

    Parameters
    ----------
    path : path-like
        A ``.safetensors``/``.npz``/``.pt`` file with ``inputs`` and
        ``labels``, or a folder with one sub-folder per class.
    transform : ImageTransform, optional
        For image folders (default :class:`ImageTransform`).

    Raises
    ------
    InputError
        Missing path, missing or malformed ``inputs``/``labels``/``index``,
        a folder without class folders or images.
    """
    p = Path(path)
    if not p.exists():
        raise InputError("no such file or folder (--data)", path=path)
    if p.is_dir():
        return _open_image_folder(p, transform or ImageTransform())
    return _open_tensor_file(p)


def _int_vector(a: Any, n: int | None, *, path: Path, name: str) -> np.ndarray:
    arr = np.asarray(a.full())
    if not np.issubdtype(arr.dtype, np.integer):
        raise InputError(f"expected integers, got {a.dtype}", path=path, field=name)
    if arr.ndim != 1 or (n is not None and arr.shape[0] != n):
        raise InputError(
            f"expected shape [{n}] to match the {n} rows of '{INPUTS_KEY}', got {list(arr.shape)}",
            path=path,
            field=name,
        )
    return arr.astype(np.int64)


def _open_tensor_file(p: Path) -> InferenceData:
    arrays, _ = read_arrays(p, what="data file with 'inputs' and 'labels'")
    found = ", ".join(sorted(arrays)) or "none"
    for key in (INPUTS_KEY, LABELS_KEY):
        if key not in arrays:
            raise InputError(
                f"expected tensors '{INPUTS_KEY}' [N, …] and '{LABELS_KEY}' [N] (found: {found})",
                path=p,
                field=key,
            )
    inputs = arrays[INPUTS_KEY]
    if len(inputs.shape) < 1 or inputs.shape[0] == 0:
        raise InputError(
            f"expected a [N, …] array with N >= 1, got shape {list(inputs.shape)}",
            path=p,
            field=INPUTS_KEY,
        )
    if inputs.dtype == "bool":
        raise InputError("expected numeric inputs, got bool", path=p, field=INPUTS_KEY)
    n = int(inputs.shape[0])
    labels = _int_vector(arrays[LABELS_KEY], n, path=p, name=LABELS_KEY)
    if labels.min() < 0:
        raise InputError("expected labels >= 0", path=p, field=LABELS_KEY)
    index = np.arange(n, dtype=np.int64)
    if INDEX_KEY in arrays:
        index = _int_vector(arrays[INDEX_KEY], n, path=p, name=INDEX_KEY)
        if np.unique(index).shape[0] != n:
            raise InputError("expected unique sample ids", path=p, field=INDEX_KEY)
    return InferenceData("tensors", str(p), TensorBatches(inputs.data, inputs.dtype), labels, index)


def _scan_images(folder: Path) -> list[Path]:
    """Image files under ``folder`` (links followed, each directory visited once, so a
    link cycle cannot loop); anything but a regular file is refused, since opening a
    FIFO or device named like an image would block or never end."""

    found = []
    seen: set[tuple[int, int]] = set()
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        st = os.stat(dirpath)
        if (st.st_dev, st.st_ino) in seen:
            dirnames[:] = []
            continue
        seen.add((st.st_dev, st.st_ino))
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if not name.startswith(".") and name.lower().endswith(IMAGE_EXTENSIONS):
                found.append(check_input_file(Path(dirpath, name), "image file"))
    return found


def _open_image_folder(root: Path, transform: ImageTransform) -> InferenceData:
    try:
        import PIL  # noqa: F401
    except ImportError:
        raise UsageError(
            "reading an image folder needs Pillow, which is not installed "
            "(pip install 'sc-eval[images]')"
        ) from None
    classes = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not classes:
        raise InputError(
            "expected an image folder with one sub-folder per class, found no sub-folders",
            path=root,
        )
    files: list[str] = []
    labels: list[int] = []
    for label, name in enumerate(classes):
        for f in _scan_images(root / name):
            files.append(f.relative_to(root).as_posix())
            labels.append(label)
    if not files:
        raise InputError(
            f"found no images ({', '.join(IMAGE_EXTENSIONS)}) in {len(classes)} class folders",
            path=root,
        )
    meta = {
        "classes": json.dumps(classes),
        "image_transform": json.dumps(transform.as_dict(), sort_keys=True),
    }
    return InferenceData(
        "images",
        str(root),
        ImageBatches(root, files, transform),
        np.asarray(labels, dtype=np.int64),
        np.arange(len(files), dtype=np.int64),
        meta,
        tuple(files),
        tuple(classes),
    )
