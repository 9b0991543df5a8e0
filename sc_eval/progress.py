"""Progress bars on stderr for the long steps: bootstrap, tuning, scoring big files.

The library reports progress through :func:`task`; a bar appears only when
the caller turned bars on (:func:`enabled`, which the CLI does unless
``--no-progress``), stderr is a terminal, and the step is still running after
a short delay, so quick runs, pipes, files and tests never see one. Nothing
is ever written to stdout, and a finished bar is erased: results are
byte-identical with and without bars.

Nested tasks (tuning inside an evaluation, say) share one Rich display, one
line each.
"""

from __future__ import annotations

import contextlib
import sys
import threading
from collections.abc import Callable, Iterator
from contextvars import ContextVar

from rich.console import Console
from rich.errors import LiveError
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

__all__ = ["DELAY", "enabled", "rich_progress", "task"]

DELAY = 0.5
"""Seconds a step runs before its bar appears."""

_ENABLED: ContextVar[bool] = ContextVar("sc_eval_progress", default=False)
_DISPLAY: ContextVar[_Display | None] = ContextVar("sc_eval_progress_display", default=None)


@contextlib.contextmanager
def enabled(on: bool = True) -> Iterator[None]:
    """Turn progress bars on (or off) for the code inside the ``with`` block."""
    token = _ENABLED.set(on)
    try:
        yield
    finally:
        _ENABLED.reset(token)


def _noop(count: int = 1) -> None:
    return None


def _stderr_is_terminal() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):  # replaced or closed stderr
        return False


def rich_progress(*, transient: bool) -> Progress:
    """A Rich ``Progress`` on stderr: description, bar, done/total, rate in the task's
    ``unit`` per second, elapsed time and ETA (shared with ``sc-eval infer``)."""

    class Rate(ProgressColumn):
        def render(self, task: Task) -> Text:
            speed = task.finished_speed or task.speed
            unit = task.fields.get("unit", "")
            return Text(f"{speed:,.0f} {unit}/s" if speed else f"- {unit}/s")

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        Rate(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=Console(stderr=True, highlight=False),
        transient=transient,
        redirect_stdout=False,  # stdout carries results: never touch it
    )


class _Display:
    """One Rich progress display on stderr, started after ``delay`` seconds."""

    def __init__(self, delay: float):
        self.progress = rich_progress(transient=True)
        self._lock = threading.Lock()
        self._state = "waiting"
        self._timer = threading.Timer(delay, self._start)
        self._timer.daemon = True
        self._timer.start()

    def _start(self) -> None:
        with self._lock:
            if self._state == "waiting":
                try:
                    self.progress.start()
                except LiveError:  # another display (inference, demo) holds the terminal
                    self._state = "closed"
                    return
                self._state = "shown"

    def close(self) -> None:
        self._timer.cancel()
        with self._lock:
            if self._state == "shown":
                self.progress.stop()
            self._state = "closed"


@contextlib.contextmanager
def task(
    description: str, total: int, *, unit: str = "", delay: float = DELAY
) -> Iterator[Callable[[int], None]]:
    """A step of ``total`` units; yields ``advance(count)`` to call as units finish.

    Parameters
    ----------
    description : str
        What is running, e.g. ``"bootstrap"``.
    total : int
        Units of work (resamples, chunks …).
    unit : str
        Their name, shown in the rate column (``resamples/s``).
    delay : float
        Seconds before the bar appears (inside another task, the outer one's).

    Examples
    --------
    >>> with task("bootstrap", 3, unit="resamples") as advance:  # off: no terminal
    ...     advance(3)
    """
    if not _ENABLED.get() or total <= 0 or not _stderr_is_terminal():
        yield _noop
        return
    display = _DISPLAY.get()
    token = None
    if display is None:
        display = _Display(delay)
        token = _DISPLAY.set(display)
    progress = display.progress
    task_id = progress.add_task(description, total=total, unit=unit)

    def advance(count: int = 1) -> None:
        progress.advance(task_id, count)

    try:
        yield advance
    finally:
        if token is None:
            progress.remove_task(task_id)
        else:
            display.close()
            _DISPLAY.reset(token)
