"""The view of ``sc-eval score --by class|group``: a list of
:class:`~sc_eval.slices.SliceTable` (one per source and score)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sc_eval import numbers as num
from sc_eval.errors import printable
from sc_eval.render.registry import register_view
from sc_eval.render.view import Grid, Page, Records, Section, View
from sc_eval.slices import MIN_ACCEPTED, OOD_SLICE, SliceRow, SliceTable, slices_document

__all__ = ["grid", "notes"]


def _ci(ci: tuple[float, float]) -> str:
    return f"[{num.pct(ci[0])}, {num.pct(ci[1])}]"


def _cells(r: SliceRow, total_n: int) -> list[str]:
    return [
        printable(r.name),  # a group id's newline must not split the row
        str(r.n),
        num.pct(r.n / total_n),
        num.pct(r.acc),
        _ci(r.acc_ci),
        num.pct(r.aurc),
        str(r.accepted),
        num.pct(r.coverage),
        num.pct(r.risk),
        _ci(r.risk_ci) if r.accepted else num.NA,
        "small" if r.small else "",
    ]


HEADERS = ["n", "share (%)", "acc (%)", "acc 95% CI (%)", "AURC (%)", "accepted",
           "coverage (%)", "sel. risk (%)", "risk 95% CI (%)", "note"]  # fmt: skip


def grid(t: SliceTable) -> Grid:
    """A slice table in percent, worst first, the ``all`` row last."""
    rows = [_cells(r, t.total.n) for r in t.rows] + [_cells(t.total, t.total.n)]
    params = num.params_text(t.params)
    what = f"{t.score} ({params}{', tuned' if t.tuned else ''})" if params else t.score
    title = f"{t.source} — {what} by {t.label}, worst first"
    headers = [t.label, *HEADERS]
    return Grid(title, headers, rows, text_columns=frozenset({len(headers) - 1}), total_row=True)


def notes(t: SliceTable) -> list[str]:
    """The operating point, the sort order and the small slices, in words."""
    lines = [
        f"operating point: one global threshold accepting {num.pct(t.total.coverage)}% of all "
        f"samples (target {num.pct(t.target_coverage)}%, ties never split): {t.score} >= "
        f"{num.real(t.threshold_value)} (rank key >= {t.threshold_key!r}); coverage and "
        "selective risk of each slice are read at that threshold",
        "worst first: highest selective risk at the operating point (nothing accepted "
        "first), then lowest coverage; intervals are 95% Clopper–Pearson",
    ]
    small = [r.name for r in t.rows if r.small]
    if small:
        shown = ", ".join(small[:20]) + (f" … (+{len(small) - 20})" if len(small) > 20 else "")
        lines.append(
            f"small: {len(small)} slice(s) with fewer than {MIN_ACCEPTED} accepted samples "
            f"({shown}); their point values say little, read the interval"
        )
    if any(r.name == OOD_SLICE for r in t.rows):
        lines.append(
            f"{OOD_SLICE}: samples of classes the model never saw, each an error when accepted "
            "(SCOD); their coverage is the fraction of OOD inputs the threshold lets through"
        )
    return lines


def page(tables: Sequence[SliceTable], **_: Any) -> Page:
    sections = tuple(Section(grids=(grid(t),), notes=tuple(notes(t))) for t in tables)
    sources = ", ".join(dict.fromkeys(t.source for t in tables))
    return Page(f"sc-eval score --by {tables[0].label}: {sources}", sections)


def document(tables: Sequence[SliceTable], **_: Any) -> Any:
    return slices_document(tables)


CSV_FIELDS = ("n", "errors", "acc", "acc_lo", "acc_hi", "aurc", "accepted", "accepted_errors",
              "coverage", "risk", "risk_lo", "risk_hi", "small")  # fmt: skip


def records(tables: Sequence[SliceTable], **_: Any) -> Records:
    """One row per slice (and an ``all`` row); rates are fractions, counts are counts."""
    rows: list[list[Any]] = []
    for t in tables:
        by = t.by if t.by == "class" else f"group:{t.groups_key}"
        for r in (*t.rows, t.total):
            vals = [r.n, r.errors, r.acc, r.acc_ci[0], r.acc_ci[1], r.aurc, r.accepted,
                    r.accepted_errors, r.coverage, r.risk, r.risk_ci[0], r.risk_ci[1],
                    r.small]  # fmt: skip
            rows.append([t.source, t.score, by, r.name, *vals, "fraction", t.target_coverage])
    header = ["source", "score", "by", "slice", *CSV_FIELDS, "unit", "target_coverage"]
    return Records(header, rows)


def provenance(tables: Sequence[SliceTable], **_: Any) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for t in tables:
        out += [
            (f"{t.source}: samples", f"N={t.total.n}"),
            (f"{t.source}: {t.score} sliced by", t.label),
            (f"{t.source}: AURC convention", t.convention),
        ]
    return list(dict.fromkeys(out))


register_view(SliceTable, View(page, document, records, provenance), many=True)
