"""Silence a library's own chatter while sc-eval loads a file through it.

torch logs warnings (``W1201 … Unable to load package``, whole tracebacks) and
issues Python warnings while it reads checkpoints; sc-eval reports what went
wrong in one line of its own, so nothing else may reach the user's terminal.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator

__all__ = ["quiet"]


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Within the block: no log records (any logger, any level) and no warnings."""
    previous = logging.root.manager.disable
    logging.disable(logging.CRITICAL)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logging.disable(previous)
