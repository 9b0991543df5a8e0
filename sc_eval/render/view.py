"""What a format draws: a result's page (sections of grids and notes), JSON document,
CSV records and provenance, declared once per result type.

A :class:`View` is the only thing a result type gives the renderers; every
format (:mod:`sc_eval.render.table`, ``markdown``, ``html``, ``json``, ``csv``)
draws any result type from it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Grid", "Page", "Records", "Section", "Status", "View"]


@dataclass(frozen=True)
class Grid:
    """A titled table of text cells.

    Attributes
    ----------
    title : str
    headers : list of str
    rows : list of list of str
        A cell may hold several lines (``"\\n"``): a value and its interval.
    lead : int
        Leading text columns (left-aligned, repeated when the table folds); the
        rest are numbers (right-aligned, never wrapped).
    styles : mapping of (row, column) to tuple of str
        Rich styles of a cell's lines (the last repeats for further lines):
        ``bold`` is bold in Markdown and HTML too; colours say better/worse.
    text_columns : frozenset of int
        Columns beyond ``lead`` that hold words (left-aligned).
    total_row : bool
        The last row is a total (a rule above it).
    """

    title: str
    headers: list[str]
    rows: list[list[str]]
    lead: int = 1
    styles: Mapping[tuple[int, int], tuple[str, ...]] = field(default_factory=dict)
    text_columns: frozenset[int] = frozenset()
    total_row: bool = False

    def style(self, i: int, j: int, k: int = 0) -> str:
        """The style of line ``k`` of cell ``(i, j)`` ('' = plain)."""
        looks = self.styles.get((i, j), ())
        return looks[min(k, len(looks) - 1)] if looks else ""

    def left(self, j: int) -> bool:
        """Column ``j`` is text (left-aligned)."""
        return j < self.lead or j in self.text_columns


@dataclass(frozen=True)
class Status:
    """A verdict shown beside a heading: ``PASSED`` in green, ✅ in Markdown."""

    text: str
    style: str
    icon: str


@dataclass(frozen=True)
class Section:
    """A heading, a summary line, grids and notes (one source, one model, one verdict).

    ``heading`` and ``summary`` share the first line of a terminal table
    (``heading: summary``); Markdown and HTML make the heading a heading and
    the summary a paragraph. ``heading_in_table`` False leaves the heading out
    of terminal tables (the summary says it). ``summary_items`` are shown as a
    list under the summary.
    """

    heading: str = ""
    summary: str = ""
    grids: tuple[Grid, ...] = ()
    notes: tuple[str, ...] = ()
    status: Status | None = None
    summary_items: tuple[str, ...] = ()
    heading_in_table: bool = True
    #: notes in plain text rather than dim (a summary of findings)
    plain_notes: bool = False


@dataclass(frozen=True)
class Page:
    """Everything a human format shows of one result: its title and sections."""

    title: str
    sections: tuple[Section, ...]


@dataclass(frozen=True)
class Records:
    """A long-format table for CSV: a header and rows of numbers and text."""

    header: list[str]
    rows: list[list[Any]]


@dataclass(frozen=True)
class View:
    """How a result type is shown; each part is a function of the result and options.

    Attributes
    ----------
    page : callable
        ``page(result, *, colour=True, **opts) -> Page`` (table, markdown, html);
        ``colour`` False: the format shows no colour, so notes must not mention any.
    document : callable
        ``document(result, **opts) ->`` the JSON document (dict or list).
    records : callable
        ``records(result, **opts) -> Records`` (csv).
    provenance : callable
        ``provenance(result, **opts) ->`` ``(what, value)`` pairs: input files,
        label hashes, convention (html).
    curves : callable, optional
        ``curves(result, **opts) ->`` :class:`sc_eval.plot.Curve` list for the
        risk–coverage plot of the html page (none: no plot).
    """

    page: Callable[..., Page]
    document: Callable[..., Any]
    records: Callable[..., Records]
    provenance: Callable[..., Sequence[tuple[str, str]]]
    curves: Callable[..., Sequence[Any]] | None = None
