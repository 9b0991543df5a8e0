"""One renderer registry for every result, keyed by (result type, format).

>>> from sc_eval.render import render, formats_for      # doctest: +SKIP
>>> print(render(evaluations, "markdown"))              # doctest: +SKIP

Formats, one module each: ``table`` (Rich, folded to the terminal),
``json`` (the versioned document), ``csv`` (long format), ``markdown``,
``html`` (a self-contained page), and ``junit`` for a gate report. Result
types, one view each: a list of :class:`~sc_eval.pipeline.Evaluation`
(``score``), :class:`~sc_eval.comparison.Comparison`, a list of
:class:`~sc_eval.slices.SliceTable` (``score --by``), a list of
:class:`~sc_eval.threshold.ThresholdResult`, :class:`~sc_eval.gate.GateReport`
and :class:`~sc_eval.diagnosis.Diagnosis`.

Adding a format: a module with a ``@register_format(NAME)`` function of a
:class:`~sc_eval.render.view.View` and a result, imported below. Adding a
result type: a module that builds its view and calls ``register_view``, named
in :data:`~sc_eval.render.registry.VIEW_MODULES` (imported when first needed).
"""

from __future__ import annotations

# The formats: importing a module registers it (views load on first use, see
# registry.VIEW_MODULES).
from sc_eval.render import (  # noqa: F401
    csvfmt,
    html,
    jsonfmt,
    markdown,
    table,
)
from sc_eval.render.registry import (
    all_formats,
    formats_for,
    register,
    register_format,
    register_view,
    render,
    result_types,
)
from sc_eval.render.view import Grid, Page, Records, Section, Status, View

__all__ = [
    "Grid",
    "Page",
    "Records",
    "Section",
    "Status",
    "View",
    "all_formats",
    "formats_for",
    "register",
    "register_format",
    "register_view",
    "render",
    "result_types",
]
