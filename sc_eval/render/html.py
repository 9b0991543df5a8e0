"""``--format html``: one self-contained page per result, made for CI artifacts.

The page holds the result's tables, its notes, an inline SVG risk–coverage
plot when the result carries curves and matplotlib is installed (a note says
why there is none otherwise), and the provenance: input files, label hashes,
AURC convention and the sc-eval version. No script, no external resource;
every piece of text is escaped.
"""

from __future__ import annotations

import html
from typing import Any

from sc_eval.errors import printable
from sc_eval.plot import INSTALL_HINT, svg_text
from sc_eval.render.registry import register_format
from sc_eval.render.view import Grid, Page, Section, View

__all__ = ["page_html", "render_html"]

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
caption { text-align: left; font-style: italic; padding: 0.3em 0; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; vertical-align: top; }
th { background: #f4f4f4; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr.total td { border-top: 2px solid #888; }
.green { color: #17702a; } .red { color: #b3261e; } .yellow { color: #8a6d00; }
.dim, .notes { color: #666; }
.bold { font-weight: bold; }
.status { padding: 0 0.3em; }
figure { margin: 1em 0; } figure svg { max-width: 100%; height: auto; }
dl { display: grid; grid-template-columns: max-content auto; gap: 0.2em 1em; }
dt { font-weight: bold; } dd { margin: 0; font-family: monospace; word-break: break-all; }
"""

#: Rich style words that become CSS classes (others are dropped).
_CLASSES = ("bold", "green", "red", "yellow", "dim")


def esc(text: object) -> str:
    """Text safe in HTML content and attribute values (control characters escaped too)."""
    return html.escape(printable(text), quote=True)


def _classes(style: str) -> str:
    words = [w for w in style.split() if w in _CLASSES]
    return f' class="{" ".join(words)}"' if words else ""


def _cell(g: Grid, i: int, j: int) -> str:
    lines = []
    for k, line in enumerate(g.rows[i][j].split("\n")):
        look = _classes(g.style(i, j, k))
        lines.append(f"<span{look}>{esc(line)}</span>" if look else esc(line))
    return "<br>".join(lines)


def table_html(g: Grid) -> str:
    out = [f"<table>\n<caption>{esc(g.title)}</caption>\n<thead><tr>"]
    out += [f'<th scope="col">{esc(h)}</th>' for h in g.headers]
    out.append("</tr></thead>\n<tbody>")
    last = len(g.rows) - 1
    for i in range(len(g.rows)):
        total = ' class="total"' if g.total_row and i == last else ""
        cells = []
        for j in range(len(g.headers)):
            kind = "" if g.left(j) else ' class="num"'
            cells.append(f"<td{kind}>{_cell(g, i, j)}</td>")
        out.append(f"<tr{total}>" + "".join(cells) + "</tr>")
    out.append("</tbody>\n</table>")
    return "\n".join(out)


def _section(s: Section) -> str:
    out = ["<section>"]
    if s.heading or s.status is not None:
        status = ""
        if s.status is not None:
            status = f' <span class="status {esc(s.status.style)}">{esc(s.status.text)}</span>'
        out.append(f"<h2>{esc(s.heading)}{status}</h2>")
    if s.summary:
        out.append(f"<p>{esc(s.summary)}</p>")
    if s.summary_items:
        out.append("<ul>" + "".join(f"<li>{esc(x)}</li>" for x in s.summary_items) + "</ul>")
    out += [table_html(g) for g in s.grids]
    if s.notes:
        look = "" if s.plain_notes else ' class="notes"'
        out.append(f"<ul{look}>" + "".join(f"<li>{esc(n)}</li>" for n in s.notes) + "</ul>")
    out.append("</section>")
    return "\n".join(out)


def page_html(
    page: Page,
    provenance: list[tuple[str, str]],
    *,
    figure: str | None = None,
    figure_note: str = "",
) -> str:
    """The whole page: title, sections, figure (an ``<svg>`` element) or a note, provenance."""
    from sc_eval import __version__

    body = [f"<h1>{esc(page.title)}</h1>"]
    body += [_section(s) for s in page.sections]
    if figure is not None:
        body.append(
            "<figure>\n<figcaption>risk–coverage and generalised risk</figcaption>\n"
            f"{figure}\n</figure>"
        )
    elif figure_note:
        body.append(f'<p class="notes">{esc(figure_note)}</p>')
    rows = [*provenance, ("sc-eval", __version__)]
    body.append(
        "<section>\n<h2>Provenance</h2>\n<dl>"
        + "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in rows)
        + "</dl>\n</section>"
    )
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{esc(page.title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<main>\n"
        + "\n".join(body)
        + "\n</main>\n</body>\n</html>\n"
    )


@register_format("html")
def render_html(view: View, result: Any, **opts: Any) -> str:
    curves = list(view.curves(result, **opts)) if view.curves is not None else []
    figure, note = None, ""
    if curves:
        figure = svg_text(curves)
        if figure is None:
            note = f"no risk–coverage plot: matplotlib is not installed ({INSTALL_HINT})"
    return page_html(
        view.page(result, **opts),
        list(view.provenance(result, **opts)),
        figure=figure,
        figure_note=note,
    )
