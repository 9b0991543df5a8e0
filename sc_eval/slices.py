"""Who pays for the threshold: per-class and per-group selective classification.

``sc-eval score preds --by class`` (or ``--by group --groups-key KEY``) splits
the samples by true label (or by any integer/string vector of length ``N``
stored in the file) and reports, for each slice:

* ``n``, its share of all samples, accuracy with a 95% Clopper–Pearson interval;
* the slice's own AURC (its risk–coverage curve under the run's convention);
* at the **global operating point** — the one threshold, chosen on all samples,
  that accepts the fewest most-confident tie blocks reaching coverage ``c``
  (default 0.9, ``--at-coverage``): how many of the slice's samples are
  accepted (its coverage) and the selective risk among them, with a 95%
  Clopper–Pearson interval.

A deployed system has one threshold, so per-slice coverage and risk are read
at that threshold, not at per-slice thresholds. Rows are sorted worst first:
highest selective risk at the operating point (a slice with nothing accepted
first), then lowest coverage. Slices with fewer than :data:`MIN_ACCEPTED`
accepted samples are marked ``small``: their point values say little, read
the interval. Slices partition the samples, so counts add up to the whole
(the ``all`` row).

References
----------
Clopper & Pearson (1934), Biometrika 26(4) — exact binomial intervals.
Jones et al. (2021), *Selective classification can magnify disparities across
groups*, ICLR — why per-group analysis matters.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from sc_eval.curves import sort_scores
from sc_eval.errors import InputError, UsageError
from sc_eval.io import OOD_LABEL, Predictions
from sc_eval.metrics import Convention, Curves, get_convention
from sc_eval.pipeline import EvalOptions, ScoredSamples, evaluate_source
from sc_eval.report import json_safe
from sc_eval.sources import CheckpointOptions, KeyOptions, load_source
from sc_eval.threshold import clopper_pearson, risk_bound_at_coverage

__all__ = [
    "BY",
    "DEFAULT_SLICE_COVERAGE",
    "MIN_ACCEPTED",
    "SliceRow",
    "SliceTable",
    "slice_ids",
    "slice_scored",
    "slice_sources",
    "slices_document",
]

SLICES_SCHEMA = "sc-eval/slices"
SLICES_VERSION = 1
DEFAULT_SLICE_COVERAGE = 0.9
MIN_ACCEPTED = 30
BY = ("class", "group")
#: The slice of the OOD samples (label -1): each is an error when accepted (docs/ood.md)
OOD_SLICE = "OOD (label -1)"


@dataclass(frozen=True)
class SliceRow:
    """One slice at the global operating point.

    Attributes
    ----------
    name : str
    n, errors : int
        Samples and misclassified samples in the slice.
    aurc : float
        AURC of the slice's own risk–coverage curve.
    accepted, accepted_errors : int
        Samples accepted by the global threshold, and the errors among them.
    acc_ci, risk_ci : tuple of float
        95% Clopper–Pearson intervals of accuracy and of selective risk.
    """

    name: str
    n: int
    errors: int
    aurc: float
    accepted: int
    accepted_errors: int
    acc_ci: tuple[float, float]
    risk_ci: tuple[float, float]

    @property
    def acc(self) -> float:
        return 1.0 - self.errors / self.n

    @property
    def coverage(self) -> float:
        return self.accepted / self.n

    @property
    def risk(self) -> float:
        return self.accepted_errors / self.accepted if self.accepted else math.nan

    @property
    def small(self) -> bool:
        return self.accepted < MIN_ACCEPTED


@dataclass(frozen=True)
class SliceTable:
    """Slices of one source for one score, worst first, and the whole (``total``)."""

    source: str
    score: str
    params: dict[str, float]
    tuned: bool
    by: str
    groups_key: str | None
    target_coverage: float
    threshold_key: float
    threshold_value: float
    convention: str
    rows: tuple[SliceRow, ...]
    total: SliceRow

    @property
    def label(self) -> str:
        return "class" if self.by == "class" else (self.groups_key or "group")


# --------------------------------------------------------------------------- computing
def slice_ids(
    preds: Predictions, *, by: str, groups_key: str | None = None
) -> tuple[np.ndarray, list[str]]:
    """Slice index of every sample of ``preds`` and the slice names.

    Parameters
    ----------
    preds : Predictions
    by : {"class", "group"}
        ``class`` slices by true label; ``group`` by the 1-D vector ``groups_key``
        stored in the file (integers, booleans or strings; one per sample).

    Returns
    -------
    ids : ndarray of int64, shape (N,)
    names : list of str

    Raises
    ------
    InputError
        The group vector is missing or holds floats.
    """
    if by not in BY:
        raise UsageError(f"--by must be one of {', '.join(BY)}, got '{by}'")
    if by == "class":
        values = preds.labels
    else:
        if not groups_key:
            raise UsageError("--by group needs --groups-key NAME (a 1-D vector in the file)")
        if groups_key not in preds.extra:
            found = ", ".join(sorted(preds.extra)) or "none"
            raise InputError(
                f"expected a 1-D vector of {preds.n} group ids (found such vectors: {found})",
                path=preds.path,
                field=groups_key,
            )
        values = np.asarray(preds.extra[groups_key])
        if values.dtype.kind not in "iubUS":
            raise InputError(
                f"expected integer, boolean or string group ids, got {values.dtype}",
                path=preds.path,
                field=groups_key,
            )
    ood = preds.labels == OOD_LABEL
    uniq, ids = np.unique(values[~ood], return_inverse=True)
    names = [v.decode() if isinstance(v, bytes) else str(v) for v in uniq.tolist()]
    out = np.full(preds.n, len(names), dtype=np.int64)  # OOD samples: a slice of their own
    out[~ood] = ids.reshape(-1)
    return out, names + ([OOD_SLICE] if ood.any() else [])


def _row(
    name: str, keys: np.ndarray, errors: np.ndarray, accept: np.ndarray, conv: Convention
) -> SliceRow:
    n, e = int(errors.shape[0]), int(errors.sum())
    m, k = int(accept.sum()), int(errors[accept].sum())
    lo, hi = clopper_pearson(e, n)
    aurc = float(conv.aurc(Curves(sort_scores(keys, errors)))) if n else math.nan
    return SliceRow(name, n, e, aurc, m, k, (1 - hi, 1 - lo), clopper_pearson(k, m))


def _worst_first(r: SliceRow) -> tuple[float, float, str]:
    risk = math.inf if math.isnan(r.risk) else r.risk
    return (-risk, r.coverage, r.name)


def slice_scored(
    scored: ScoredSamples,
    ids: np.ndarray,
    names: Sequence[str],
    *,
    source: str = "<arrays>",
    by: str = "class",
    groups_key: str | None = None,
    coverage: float = DEFAULT_SLICE_COVERAGE,
    convention: str = "mean",
    tuned: Sequence[str] = (),
) -> list[SliceTable]:
    """Slice tables (one per score) of scored samples.

    Parameters
    ----------
    scored : ScoredSamples
    ids : ndarray of int, shape (scored.n,)
        Slice index of each scored sample; ``names[ids[i]]`` names it.
    coverage : float
        Global coverage of the operating point, in (0, 1].

    Returns
    -------
    list of SliceTable
    """
    conv = get_convention(convention)
    order = np.argsort(ids, kind="stable")
    bounds = np.flatnonzero(np.diff(ids[order])) + 1
    members = [(int(ids[m[0]]), m) for m in np.split(order, bounds) if m.size]
    out = []
    for score, keys in scored.keys.items():
        control = risk_bound_at_coverage(keys, scored.errors, coverage=coverage)
        accept = keys >= control.key
        at = np.flatnonzero(keys == control.key)
        value = float(scored.values[score][at[0]]) if at.size else math.nan
        rows = []
        for j, sel in members:
            rows.append(_row(names[j], keys[sel], scored.errors[sel], accept[sel], conv))
        rows.sort(key=_worst_first)
        out.append(
            SliceTable(
                source=source,
                score=score,
                params=dict(scored.params[score]),
                tuned=score in tuned,
                by=by,
                groups_key=groups_key if by == "group" else None,
                target_coverage=coverage,
                threshold_key=control.key,
                threshold_value=value,
                convention=convention,
                rows=tuple(rows),
                total=_row("all", keys, scored.errors, accept, conv),
            )
        )
    return out


def slice_sources(
    sources: Sequence[str | os.PathLike[str]],
    opts: EvalOptions,
    *,
    keys: KeyOptions | None = None,
    checkpoint: CheckpointOptions | None = None,
    by: str,
    groups_key: str | None = None,
    coverage: float = DEFAULT_SLICE_COVERAGE,
) -> list[SliceTable]:
    """Load (running checkpoints through ``checkpoint`` options), score (with tuning
    when ``opts`` asks) and slice each source."""

    if by == "class" and groups_key:
        raise UsageError("--groups-key applies to --by group, not --by class")
    if not 0.0 < coverage <= 1.0 or math.isnan(coverage):
        raise UsageError(f"--at-coverage must be in (0, 1], got {coverage}")
    tables: list[SliceTable] = []
    for src in sources:
        preds = load_source(src, keys=keys or KeyOptions(), checkpoint=checkpoint)
        ids, names = slice_ids(preds, by=by, groups_key=groups_key)
        ev, scored = evaluate_source(preds, opts)
        tables += slice_scored(
            scored,
            ids[scored.index],
            names,
            source=preds.name,
            by=by,
            groups_key=groups_key,
            coverage=coverage,
            convention=opts.convention,
            tuned=[s.name for s in ev.scores.values() if s.tuned],
        )
    return tables


# --------------------------------------------------------------------------- JSON
def _row_dict(r: SliceRow) -> dict[str, Any]:
    return {
        "slice": r.name,
        "n": r.n,
        "errors": r.errors,
        "acc": r.acc,
        "acc_ci95": list(r.acc_ci),
        "aurc": r.aurc,
        "accepted": r.accepted,
        "accepted_errors": r.accepted_errors,
        "coverage": r.coverage,
        "risk": r.risk,
        "risk_ci95": list(r.risk_ci),
        "small": r.small,
    }


def slices_document(tables: Sequence[SliceTable]) -> dict[str, Any]:
    """The versioned JSON document of ``sc-eval score --by`` (fractions; NaN as null)."""
    from sc_eval import __version__

    return json_safe(
        {
            "schema": SLICES_SCHEMA,
            "version": SLICES_VERSION,
            "tool": f"sc-eval {__version__}",
            "command": "score --by",
            "units": "fractions (multiply by 100 for %); intervals are 95% Clopper-Pearson",
            "min_accepted": MIN_ACCEPTED,
            "results": [
                {
                    "source": t.source,
                    "score": t.score,
                    "params": t.params,
                    "tuned": t.tuned,
                    "by": t.by,
                    "groups_key": t.groups_key,
                    "convention": t.convention,
                    "operating_point": {
                        "target_coverage": t.target_coverage,
                        "coverage": t.total.coverage,
                        "threshold_key": t.threshold_key,
                        "threshold_value": t.threshold_value,
                    },
                    "slices": [_row_dict(r) for r in t.rows],
                    "total": _row_dict(t.total),
                }
                for t in tables
            ],
        }
    )
