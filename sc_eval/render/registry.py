"""The renderer registry, keyed by (result type, format).

A result type registers one :class:`~sc_eval.render.view.View`
(:func:`register_view`); a format registers one function of a view and a
result (:func:`register_format`) and then renders every result type. A format
that only makes sense for one type (``junit`` for a gate report) registers
for that type alone (:func:`register`).

A result is one object, or a sequence of objects of one type (one per source,
as ``sc-eval score`` makes).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from sc_eval.errors import unknown_name
from sc_eval.render.view import View

__all__ = [
    "all_formats",
    "formats_for",
    "register",
    "register_format",
    "register_view",
    "render",
    "result_types",
]

F = TypeVar("F", bound=Callable[..., str])

#: Format name → ``fn(view, result, **opts) -> str``, for every result type with a view.
_FORMATS: dict[str, Callable[..., str]] = {}
#: (result type, format) → ``fn(result, **opts) -> str``: formats of one type only.
_SPECIFIC: dict[tuple[type, str], Callable[..., str]] = {}
#: Result type → (its view, whether it is rendered as a sequence of results).
_VIEWS: dict[type, tuple[View, bool]] = {}

#: The module registering the view of each result type (by ``module.QualName``), imported
#: when a result of that type is first rendered: a command loads only its own view (and
#: what that view imports), not every other command's.
VIEW_MODULES: dict[str, str] = {
    "sc_eval.pipeline.Evaluation": "sc_eval.render.score",
    "sc_eval.comparison.Comparison": "sc_eval.render.compare",
    "sc_eval.slices.SliceTable": "sc_eval.render.slices",
    "sc_eval.threshold.ThresholdResult": "sc_eval.render.threshold",
    "sc_eval.gate.GateReport": "sc_eval.render.gate",
    "sc_eval.diagnosis.Diagnosis": "sc_eval.render.diagnose",
}


def _load_view(result_type: type) -> None:
    """Import the module that registers ``result_type``'s view, once."""
    if result_type not in _VIEWS:
        module = VIEW_MODULES.get(f"{result_type.__module__}.{result_type.__qualname__}")
        if module is not None:
            importlib.import_module(module)


def _load_all_views() -> None:
    for module in VIEW_MODULES.values():
        importlib.import_module(module)


def register_view(result_type: type, view: View, *, many: bool = False) -> None:
    """Declare how ``result_type`` is shown; it then renders in every registered format.

    With ``many`` the view's functions receive a list of results (one per source).
    """
    _VIEWS[result_type] = (view, many)


def register_format(name: str) -> Callable[[F], F]:
    """Decorator: ``fn(view, result, **opts) -> str`` renders format ``name`` of any view."""

    def deco(fn: F) -> F:
        _FORMATS[name] = fn
        return fn

    return deco


def register(result_type: type, fmt: str) -> Callable[[F], F]:
    """Decorator: ``fn(result, **opts) -> str`` renders ``result_type`` in ``fmt`` (and
    takes precedence over the format's generic renderer)."""

    def deco(fn: F) -> F:
        _SPECIFIC[(result_type, fmt)] = fn
        return fn

    return deco


def _type_of(result: Any) -> type:
    if isinstance(result, list | tuple):
        if not result:
            raise ValueError("nothing to render: an empty list of results")
        kinds = {type(r) for r in result}
        if len(kinds) != 1:
            raise TypeError(
                f"cannot render results of mixed types {sorted(k.__name__ for k in kinds)}"
            )
        return type(result[0])
    return type(result)


def formats_for(result_type: type) -> list[str]:
    """The formats ``result_type`` renders in, generic ones first."""
    _load_view(result_type)
    names = list(_FORMATS) if result_type in _VIEWS else []
    return names + [f for (t, f) in _SPECIFIC if t is result_type and f not in names]


def all_formats() -> list[str]:
    """Every format name some result type renders in."""
    _load_all_views()
    return list(dict.fromkeys([*_FORMATS, *(f for _, f in _SPECIFIC)]))


def result_types() -> list[type]:
    """Every result type with a registered view."""
    _load_all_views()
    return list(_VIEWS)


def view_of(result_type: type) -> View:
    """The registered view of ``result_type`` (KeyError when it has none)."""
    _load_view(result_type)
    return _VIEWS[result_type][0]


def render(result: Any, fmt: str, **opts: Any) -> str:
    """Render ``result`` (a result, or a sequence of results of one type) in format ``fmt``.

    Raises
    ------
    UsageError
        ``fmt`` is not a format of this result type (with a "did you mean").
    """
    kind = _type_of(result)
    _load_view(kind)
    specific = _SPECIFIC.get((kind, fmt))
    if specific is not None:
        return specific(result, **opts)
    if kind not in _VIEWS or fmt not in _FORMATS:
        raise unknown_name("format", fmt, formats_for(kind))
    view, many = _VIEWS[kind]
    items: Any = list(result) if many and isinstance(result, Sequence) else result
    if many and not isinstance(result, Sequence):
        items = [result]
    return _FORMATS[fmt](view, items, **opts)
