"""``--format markdown``: GitHub Markdown (a pull-request comment, ``$GITHUB_STEP_SUMMARY``).

Each section is a ``###`` heading, its summary, its tables and its notes as a
list. Every piece of text is escaped (:func:`md_cell`): a file name cannot add
a column, a line or a heading. Lines of a cell are joined by ``<br>``; bold
lines (the best value, a significant difference) are ``**bold**``.
"""

from __future__ import annotations

from typing import Any

from sc_eval.errors import printable
from sc_eval.render.registry import register_format
from sc_eval.render.view import Grid, Page, Section, View

__all__ = ["md_cell", "md_table", "md_text", "page_markdown"]


#: Characters Markdown (GFM) or the HTML it may contain would read as syntax.
_MARKUP = str.maketrans(
    {
        "\\": "\\\\",
        "`": "\\`",
        "*": "\\*",
        "_": "\\_",
        "~": "\\~",
        "|": "\\|",
        "&": "&amp;",
        "<": "&lt;",
        ">": "&gt;",
    }
)


def md_cell(text: str) -> str:
    r"""Text shown literally in a Markdown table cell: control characters escaped,
    HTML (``<script>``) and Markdown syntax (emphasis, code, links, ``|``) escaped, so a
    file or group name cannot add markup, a column or a line.

    >>> print(md_cell("<b>a|b</b> **x** [t](u) -1"))
    &lt;b&gt;a\|b&lt;/b&gt; \*\*x\*\* [t]\(u) -1
    """
    return printable(text).translate(_MARKUP).replace("](", "]\\(").replace("][", "]\\[")


def md_text(text: str) -> str:
    r"""Text shown literally as a heading, paragraph or list item: :func:`md_cell`, and a
    leading ``#``, ``-``, ``+`` or ``=`` escaped (it would start a heading or a list).

    >>> print(md_text("# not a heading"))
    \# not a heading
    """
    out = md_cell(text)
    return "\\" + out if out[:1] in ("#", "-", "+", "=") else out


def _cell(g: Grid, i: int, j: int) -> str:
    lines = []
    for k, line in enumerate(g.rows[i][j].split("\n")):
        text = md_cell(line)
        lines.append(f"**{text}**" if text and "bold" in g.style(i, j, k) else text)
    return "<br>".join(lines)


def md_table(g: Grid) -> str:
    """A grid as a bold title and a GitHub table (text columns left, numbers right)."""
    lines = [f"**{md_cell(g.title)}**", "", "| " + " | ".join(map(md_cell, g.headers)) + " |"]
    lines.append(
        "|" + "|".join("---" if g.left(j) else "---:" for j in range(len(g.headers))) + "|"
    )
    for i in range(len(g.rows)):
        lines.append("| " + " | ".join(_cell(g, i, j) for j in range(len(g.headers))) + " |")
    return "\n".join(lines)


def _head(s: Section) -> str:
    heading = md_text(s.heading)
    if s.status is not None:
        heading += f": {s.status.icon} {md_cell(s.status.text.lower())}"
    text = f"### {heading}\n"
    if s.summary:
        text += f"\n{md_text(s.summary)}\n"
    return text


def page_markdown(page: Page) -> str:
    """Every section: heading and summary, items, tables, notes; parts separated by a
    blank line."""
    parts = []
    for s in page.sections:
        if s.heading or s.summary:
            parts.append(_head(s))
        if s.summary_items:
            parts.append("\n".join(f"- {md_text(x)}" for x in s.summary_items) + "\n")
        parts += [md_table(g) + "\n" for g in s.grids]
        if s.notes:
            parts.append("\n".join(f"- {md_text(n)}" for n in s.notes) + "\n")
    return "\n".join(parts)


@register_format("markdown")
def render_markdown(view: View, result: Any, **opts: Any) -> str:
    return page_markdown(view.page(result, colour=False, **opts))
