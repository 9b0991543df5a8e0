"""``--format table``: Rich tables for a terminal, folded to its width.

A table too wide for the terminal is split into stacked tables that repeat
the leading (name) columns and say "(continued)": a number is never cut
(``2.…``) or wrapped. Prose (summaries, notes) is word-wrapped on a terminal
and left on one line when piped, so ``grep`` finds whole sentences.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.markup import escape as escape_markup
from rich.table import Table

from sc_eval.errors import printable
from sc_eval.render.registry import register_format
from sc_eval.render.view import Grid, Page, Section, View

__all__ = ["fold_columns", "print_grid", "print_page"]

#: Width of the text a table renders to when no console is given (a wide pipe).
DEFAULT_WIDTH = 160


def fold_columns(
    headers: Sequence[str], rows: Sequence[Sequence[str]], lead: int, width: int
) -> list[list[int]]:
    """Split a table's columns into groups that each fit ``width`` characters, the
    ``lead`` columns (names) repeated in every group: a table too wide for the
    terminal is stacked, never cut (a number is never shown as ``2.…``)."""
    natural = [
        max(
            len(line)
            for cell in [h, *(r[j] for r in rows)]
            for line in str(cell).splitlines() or [""]
        )
        + 3
        for j, h in enumerate(headers)
    ]
    head = list(range(min(lead, len(headers))))
    base = sum(natural[j] for j in head) + 1
    groups: list[list[int]] = []
    current: list[int] = []
    used = base
    for j in range(len(head), len(headers)):
        if current and used + natural[j] > width:
            groups.append(head + current)
            current, used = [], base
        current.append(j)
        used += natural[j]
    if current or not groups:
        groups.append(head + current)
    return groups


def escape(text: str) -> str:
    """Text as Rich shows it literally: markup escaped, and control characters
    (terminal escape sequences in a file or group name) written as ``\\x1b``."""
    return escape_markup(printable(text))


def _cell(g: Grid, i: int, j: int) -> str:
    lines = g.rows[i][j].split("\n")
    out = []
    for k, line in enumerate(lines):
        look = g.style(i, j, k)
        out.append(f"[{look}]{escape(line)}[/]" if look and line else escape(line))
    return "\n".join(out)


def print_grid(console: Console, g: Grid) -> None:
    """Print a :class:`Grid` as Rich tables, folded to the console's width.

    Number columns never wrap; text columns beyond the lead wrap at spaces. When
    the grid folds, each further part is introduced by "TITLE (continued)".
    """
    groups = fold_columns(g.headers, g.rows, g.lead, console.width)
    multiline = any("\n" in c for row in g.rows for c in row)
    for part, columns in enumerate(groups):
        if part:
            console.print(f"[dim]{escape(g.title)} (continued)[/dim]", soft_wrap=_soft(console))
        t = Table(show_lines=multiline)
        for j in columns:
            if g.left(j):
                t.add_column(escape(g.headers[j]), justify="left", overflow="fold")
            else:
                t.add_column(escape(g.headers[j]), justify="right", no_wrap=True)
        last = len(g.rows) - 1
        for i in range(len(g.rows)):
            end = g.total_row and i == last - 1
            t.add_row(*(_cell(g, i, j) for j in columns), end_section=end)
        console.print(t)


def _soft(console: Console) -> bool:
    """Prose stays on one line when piped; a terminal gets word-wrapped lines."""
    return not console.is_terminal


def _first_line(s: Section) -> str:
    summary = escape(s.summary)
    if not (s.heading_in_table and s.heading):
        return f"[bold]{summary}[/bold]" if summary else ""
    text = f"[bold]{escape(s.heading)}[/bold]"
    if s.status is not None:
        text += f" [bold {s.status.style}]{escape(s.status.text)}[/]"
    return f"{text}: {summary}" if summary else text


def print_page(console: Console, page: Page) -> None:
    """Print every section of ``page``: first line, items, grids, notes, a blank line."""
    soft = _soft(console)
    for s in page.sections:
        first = _first_line(s)
        if first:
            console.print(first, soft_wrap=soft)
        for item in s.summary_items:
            console.print(escape(item), soft_wrap=soft)
        for g in s.grids:
            console.print(f"[italic]{escape(g.title)}[/italic]", soft_wrap=soft)
            print_grid(console, g)
        for line in s.notes:
            console.print(
                escape(line) if s.plain_notes else f"[dim]{escape(line)}[/dim]", soft_wrap=soft
            )
        console.print()


@register_format("table")
def render_table(view: View, result: Any, *, console: Console | None = None, **opts: Any) -> str:
    """Rich tables. Printed to ``console`` when given (colour as the terminal allows,
    ``NO_COLOR`` honoured; returns ''); otherwise rendered as plain text and returned."""
    buf = io.StringIO()
    target = console or Console(
        file=buf, no_color=True, width=DEFAULT_WIDTH, highlight=False, soft_wrap=False
    )
    print_page(target, view.page(result, **opts))
    return buf.getvalue()
