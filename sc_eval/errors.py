"""Exceptions that the command line maps to exit codes.

Every error a user can cause by what they pass in is an :class:`InputError`
(bad file, field, shape or value) or a :class:`UsageError` (bad option). Both
map to exit code 2 with one line on stderr; anything else is a bug.
"""

from __future__ import annotations

from collections.abc import Iterable
from difflib import get_close_matches

__all__ = ["InputError", "ScEvalError", "UsageError", "unknown_name"]


class ScEvalError(Exception):
    """Base class of the errors that sc-eval reports to the user (exit code 2)."""

    exit_code = 2


class InputError(ScEvalError):
    """A file or array does not hold what was expected.

    The message names the file (when there is one), the field and what was
    expected, e.g. ``preds.npz: field 'labels': expected integers, got float32``.
    """

    def __init__(self, message: str, *, path: object | None = None, field: str | None = None):
        parts = []
        if path is not None:
            parts.append(f"{path}:")
        if field is not None:
            parts.append(f"field '{field}':")
        parts.append(message)
        super().__init__(" ".join(parts))
        self.path = path
        self.field = field


class UsageError(ScEvalError):
    """An option or argument value is invalid."""


def unknown_name(kind: str, name: str, choices: Iterable[str]) -> UsageError:
    """Build the error for an unknown registry name, suggesting the closest one."""
    choices = sorted(choices)
    close = get_close_matches(name, choices, n=1)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    return UsageError(f"unknown {kind} '{name}'.{hint} Choose from: {', '.join(choices)}.")
