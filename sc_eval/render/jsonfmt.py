"""``--format json``: the result's versioned JSON document (fractions; NaN as null)."""

from __future__ import annotations

import json
from typing import Any

from sc_eval.render.registry import register_format
from sc_eval.render.view import View

__all__ = ["render_json"]


@register_format("json")
def render_json(view: View, result: Any, **opts: Any) -> str:
    return json.dumps(view.document(result, **opts), indent=2, allow_nan=False) + "\n"
