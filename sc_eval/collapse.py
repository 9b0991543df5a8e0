"""Neural collapse of penultimate-layer features (Papyan, Han & Donoho 2020), streamed.

Notation: ``N`` samples with features ``h_i`` in ``R^D`` and labels ``y_i``;
the ``C`` classes present have ``n_c`` samples and means ``μ_c``; ``μ_G`` is
the global mean of all samples (Papyan et al.'s ``Ave_{i,c} h_{i,c}``):

* ``Σ_W = (1/N) Σ_i (h_i − μ_{y_i})(h_i − μ_{y_i})ᵀ`` (within-class covariance);
* ``Σ_B = (1/C) Σ_c (μ_c − μ_G)(μ_c − μ_G)ᵀ`` (between-class covariance);
* **NC1** ``= tr(Σ_W Σ_B^†) / C`` — within-class variability relative to the
  spread of the class means; 0 when every sample sits on its class mean;
* **NC2** with ``M_c = μ_c − μ_G``: *equinorm* ``= std_c ‖M_c‖ / mean_c ‖M_c‖``
  (coefficient of variation) and *equiangularity* ``= mean_{c≠c'} |cos(M_c,
  M_c') + 1/(C−1)|``, the spread of the pairwise cosines around the simplex-ETF
  value ``−1/(C−1)`` (the standard deviation of the cosines is reported too);
  both 0 for a simplex equiangular tight frame;
* **NC3** (classifier weights ``W [C, D]`` given) ``= ‖W/‖W‖_F − M/‖M‖_F‖²_F``,
  self-duality of the classifier and the centred class means (0 when ``W`` is
  a positive multiple of ``M``; at most 4).

Everything comes from one pass over the features in chunks of rows, keeping
only per-class sums ``Σ_{i∈c} h_i`` (``C × D``), the total cross-product
``Σ_i h_i h_iᵀ`` (``D × D``) and the per-sample norms: memory does not grow
with ``N × D`` (1M × 2048 features need ~50 MiB besides one chunk). The
pseudo-inverse is taken in the span of the class means (a thin SVD of the
``C × D`` matrix ``M``), with scipy's default cut-off for ``pinv(Σ_B)``.

References
----------
Papyan, Han & Donoho (2020), *Prevalence of neural collapse during the terminal
phase of deep learning training*, PNAS 117(40).
Guo et al. (2024), *Cross entropy versus label smoothing: a neural collapse
perspective*, arXiv 2402.03979.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

import numpy as np

from sc_eval.errors import InputError
from sc_eval.io import FLOAT_KINDS, RawArray, read_arrays

__all__ = [
    "Collapse",
    "CollapseMoments",
    "FeatureFile",
    "collapse_from_moments",
    "load_features",
    "neural_collapse",
]

CHUNK_BYTES = 32 * 1024 * 1024
"""float64 bytes of one chunk of feature rows."""


# --------------------------------------------------------------------------- input
@dataclass(frozen=True)
class FeatureFile:
    """Validated penultimate features of one model (``--features``).

    Attributes
    ----------
    path : str
    features : RawArray
        ``[N, D]``, possibly still on disk; read chunk by chunk.
    W : ndarray or None
        Classifier weights ``[C, D]`` (float64).
    b : ndarray or None
        Classifier bias ``[C]`` (float64).
    """

    path: str
    features: RawArray = field(repr=False)
    W: np.ndarray | None = field(default=None, repr=False)
    b: np.ndarray | None = field(default=None, repr=False)

    @property
    def dim(self) -> int:
        return int(self.features.shape[1])


def _finite_float(
    a: RawArray, shape: tuple[int, ...], *, path: object, name: str, what: str
) -> np.ndarray:
    if a.dtype not in FLOAT_KINDS:
        raise InputError(f"expected floating point values, got {a.dtype}", path=path, field=name)
    if a.shape != shape:
        raise InputError(f"expected shape {list(shape)} ({what}), got {list(a.shape)}",
                         path=path, field=name)  # fmt: skip
    x = np.asarray(a.full(), dtype=np.float64)
    if not np.isfinite(x).all():
        raise InputError("expected finite values, found NaN or Inf", path=path, field=name)
    return x


def load_features(
    path: str | os.PathLike[str], *, n: int, num_classes: int | None = None
) -> FeatureFile:
    """Read and validate a features file (``.safetensors``, ``.npz`` or ``.pt``).

    Parameters
    ----------
    path : path-like
        Holds ``features [N, D]`` and optionally ``W [C, D]`` and ``b [C]``.
    n : int
        Rows expected (the samples of the matching predictions file, same order).
    num_classes : int, optional
        ``C`` of the predictions, which ``W`` and ``b`` must match.

    Raises
    ------
    InputError
        Missing ``features``, wrong shapes or dtypes, non-finite ``W``/``b``
        (non-finite feature rows are found during the pass).
    """
    arrays, _ = read_arrays(path, what="features file")
    if "features" not in arrays:
        found = ", ".join(sorted(arrays)) or "nothing"
        raise InputError(
            f"expected a tensor 'features' [N, D] (penultimate-layer features); found {found}",
            path=path,
            field="features",
        )
    f = arrays["features"]
    if len(f.shape) != 2 or f.shape[1] < 1:
        raise InputError(f"expected shape [N, D], got {list(f.shape)}", path=path, field="features")
    if f.dtype not in FLOAT_KINDS:
        raise InputError(f"expected floating point values, got {f.dtype}", path=path,
                         field="features")  # fmt: skip
    if f.shape[0] != n:
        raise InputError(
            f"expected {n} rows, one per sample of the predictions in the same order, "
            f"got {f.shape[0]}",
            path=path,
            field="features",
        )
    d = int(f.shape[1])
    w = b = None
    if "W" in arrays:
        c = num_classes if num_classes is not None else int(arrays["W"].shape[0])
        w = _finite_float(arrays["W"], (c, d), path=path, name="W", what="classes × features")
    if "b" in arrays:
        c = num_classes if num_classes is not None else int(arrays["b"].shape[0])
        b = _finite_float(arrays["b"], (c,), path=path, name="b", what="one per class")
    return FeatureFile(str(path), f, w, b)


# --------------------------------------------------------------------------- the pass
class CollapseMoments:
    """Running per-class sums and the total cross-product of shifted features.

    Features are shifted by a fixed vector (the first chunk's mean) before they
    are accumulated; every statistic here is shift-invariant and the shift
    keeps ``Σ h hᵀ − Σ_c n_c μ_c μ_cᵀ`` from cancelling catastrophically.
    """

    def __init__(self, num_classes: int, dim: int):
        self.counts = np.zeros(num_classes, dtype=np.int64)
        self.sums = np.zeros((num_classes, dim))
        self.cross = np.zeros((dim, dim))
        self.shift: np.ndarray | None = None

    def add(self, features: np.ndarray, labels: np.ndarray) -> None:
        """Accumulate a chunk ``features [k, D]`` (float64) with its ``labels [k]``."""
        if self.shift is None:
            self.shift = features.mean(axis=0)
        h = features - self.shift
        order = np.argsort(labels, kind="stable")
        ys = labels[order]
        starts = np.flatnonzero(np.r_[True, ys[1:] != ys[:-1]])
        self.sums[ys[starts]] += np.add.reduceat(h[order], starts, axis=0)
        self.counts += np.bincount(labels, minlength=self.counts.shape[0])
        self.cross += h.T @ h


@dataclass(frozen=True)
class Collapse:
    """Neural-collapse measurements of one model's features (see the module docstring).

    Attributes
    ----------
    n, dim, classes : int
        Samples, feature dimension ``D``, classes present ``C``.
    nc1 : float
        ``tr(Σ_W Σ_B^†) / C``.
    equinorm : float
        Coefficient of variation of ``‖μ_c − μ_G‖``.
    equiangular : float
        ``mean_{c≠c'} |cos + 1/(C−1)|``.
    cos_mean, cos_std : float
        Mean and standard deviation of the pairwise cosines (ETF: ``−1/(C−1)``, 0).
    nc3 : float
        ``‖W/‖W‖_F − M/‖M‖_F‖²_F``; NaN without ``W``.
    within, between : float
        ``tr Σ_W`` and ``tr Σ_B`` (squared feature units).
    rank_between : int
        Rank of ``Σ_B`` used by the pseudo-inverse (at most ``C − 1``).
    norms : ndarray
        ``‖h_i‖₂`` of every sample (for correct-vs-wrong summaries).
    """

    n: int
    dim: int
    classes: int
    nc1: float
    equinorm: float
    equiangular: float
    cos_mean: float
    cos_std: float
    nc3: float
    within: float
    between: float
    rank_between: int
    norms: np.ndarray = field(repr=False, compare=False)


def collapse_from_moments(
    moments: CollapseMoments, *, W: np.ndarray | None = None, norms: np.ndarray | None = None
) -> Collapse:
    """NC1–NC3 from accumulated :class:`CollapseMoments`."""
    present = moments.counts > 0
    counts = moments.counts[present].astype(np.float64)
    sums = moments.sums[present]
    n = float(counts.sum())
    c = int(present.sum())
    dim = int(moments.cross.shape[0])
    means = sums / counts[:, None]
    centred = means - sums.sum(axis=0) / n  # M, C × D
    sigma_w = (moments.cross - means.T @ sums) / n
    sigma_w = (sigma_w + sigma_w.T) / 2
    _, s, vt = np.linalg.svd(centred, full_matrices=False)
    lam = s**2 / c  # nonzero eigenvalues of Σ_B
    keep = lam > dim * np.finfo(np.float64).eps * (lam.max() if lam.size else 0.0)
    v = vt[keep]
    nc1 = math.nan  # undefined without two distinct class means
    if keep.any():
        nc1 = float(np.einsum("kd,de,ke->k", v, sigma_w, v) @ (1.0 / lam[keep])) / c
    norms_c = np.linalg.norm(centred, axis=1)
    equinorm = float(norms_c.std() / norms_c.mean()) if norms_c.mean() > 0 else math.nan
    if c >= 2 and (norms_c > 0).all():
        unit = centred / norms_c[:, None]
        cos = (unit @ unit.T)[~np.eye(c, dtype=bool)]
        equiangular = float(np.abs(cos + 1.0 / (c - 1)).mean())
        cos_mean, cos_std = float(cos.mean()), float(cos.std())
    else:
        equiangular = cos_mean = cos_std = math.nan
    nc3 = math.nan
    if W is not None:
        w = W[present]
        wn, mn = np.linalg.norm(w), np.linalg.norm(centred)
        if wn > 0 and mn > 0:
            nc3 = float(np.sum((w / wn - centred / mn) ** 2))
    return Collapse(
        n=int(n),
        dim=dim,
        classes=c,
        nc1=nc1,
        equinorm=equinorm,
        equiangular=equiangular,
        cos_mean=cos_mean,
        cos_std=cos_std,
        nc3=nc3,
        within=float(np.trace(sigma_w)),
        between=float(lam.sum()),
        rank_between=int(keep.sum()),
        norms=np.empty(0) if norms is None else norms,
    )


def neural_collapse(
    features: FeatureFile | np.ndarray,
    labels: np.ndarray,
    *,
    W: np.ndarray | None = None,
    num_classes: int | None = None,
    chunk_rows: int | None = None,
) -> Collapse:
    """NC1, NC2 and NC3 of features ``[N, D]`` in one streamed pass.

    Parameters
    ----------
    features : FeatureFile or ndarray
        A loaded features file (its ``W`` is used unless ``W`` is given) or an
        in-memory array.
    labels : ndarray of int, shape (N,)
    W : ndarray, optional
        Classifier weights ``[C, D]`` for NC3.
    num_classes : int, optional
        Default: ``max(labels) + 1``.
    chunk_rows : int, optional
        Rows per chunk (default: ~32 MiB of float64).

    Returns
    -------
    Collapse

    Raises
    ------
    InputError
        A feature row holds NaN or Inf.

    Examples
    --------
    >>> h = np.array([[1.0, 0], [1, 0], [-1, 0], [-1, 0]])  # two collapsed classes
    >>> nc = neural_collapse(h, np.array([0, 0, 1, 1]))
    >>> nc.nc1, nc.equinorm, nc.cos_mean
    (0.0, 0.0, -1.0)
    """
    if isinstance(features, FeatureFile):
        raw, path = features.features, features.path
        W = features.W if W is None else W
    else:
        arr = np.asarray(features)
        raw, path = RawArray(arr, str(arr.dtype)), None
    labels = np.asarray(labels, dtype=np.int64)
    n, dim = raw.shape
    c = num_classes if num_classes is not None else int(labels.max()) + 1
    moments = CollapseMoments(c, dim)
    rows = chunk_rows or max(1, CHUNK_BYTES // (8 * dim))
    norms = np.empty(n)
    for start in range(0, n, rows):
        stop = min(start + rows, n)
        h = np.asarray(raw.rows(start, stop), dtype=np.float64)
        bad = ~np.isfinite(h).all(axis=1)
        if bad.any():
            raise InputError(
                f"expected finite values, found NaN or Inf (first at row "
                f"{start + int(np.argmax(bad))})",
                path=path,
                field="features",
            )
        norms[start:stop] = np.linalg.norm(h, axis=1)
        moments.add(h, labels[start:stop])
    return collapse_from_moments(moments, W=W, norms=norms)
