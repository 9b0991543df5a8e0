"""Exceptions that the command line maps to exit codes.

Every error a user can cause by what they pass in is an :class:`InputError`
(bad file, field, shape or value) or a :class:`UsageError` (bad option). Both
map to exit code 2 with one line on stderr; anything else is a bug.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from difflib import get_close_matches

__all__ = [
    "InputError",
    "ScEvalError",
    "ScEvalWarning",
    "UsageError",
    "printable",
    "unknown_name",
]


def printable(text: object) -> str:
    """``text`` with control characters escaped (``\\n``, ``\\x1b`` …), safe to echo.

    File and tensor names come from users and files: a raw newline would let a
    name fake extra lines (a "Traceback"), an escape sequence would drive the
    terminal (change its title, hide text).
    """
    out = []
    for ch in str(text):
        code = ord(ch)
        if code < 32 or 127 <= code < 160:
            out.append(repr(ch)[1:-1])
        elif unicodedata.category(ch) in ("Cf", "Cs", "Zl", "Zp"):
            # format characters (U+202E reverses the text after it), undecodable bytes of
            # a file name (surrogates), line and paragraph separators
            out.append(f"\\u{code:04x}")
        else:
            out.append(ch)
    return "".join(out)


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
            parts.append(f"{printable(path)}:")
        if field is not None:
            parts.append(f"field '{printable(field)}':")
        parts.append(message)
        super().__init__(" ".join(parts))
        self.path = path
        self.field = field


class NonFiniteInput(InputError):
    """Logits or probabilities hold NaN or Inf (``--nan-policy refuse``)."""

    def __init__(self, message: str, *, path: object | None = None, field: str | None = None,
                 rows: int = 0, first: int = -1):  # fmt: skip
        super().__init__(message, path=path, field=field)
        self.rows, self.first = rows, first


class UsageError(ScEvalError):
    """An option or argument value is invalid."""


class ScEvalWarning(UserWarning):
    """A problem worth telling the user about that does not stop the run."""


def unknown_name(kind: str, name: str, choices: Iterable[str]) -> UsageError:
    """Build the error for an unknown registry name, suggesting the closest one."""
    choices = sorted(choices)
    close = get_close_matches(name, choices, n=1)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    return UsageError(f"unknown {kind} '{name}'.{hint} Choose from: {', '.join(choices)}.")
