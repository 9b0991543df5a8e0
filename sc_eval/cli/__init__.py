"""The ``sc-eval`` command line: parse, call the library, format, exit code.

No maths here. Each command lives in its own module of this package and
registers itself on :data:`app`. Heavy imports (numpy, torch, matplotlib)
happen inside the commands, so ``sc-eval --help`` stays fast.

Exit codes: 0 success, 1 gate/threshold failed, 2 bad input or usage,
130 interrupted.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import typer
from typer.core import TyperGroup

__all__ = ["app", "main"]


class _OneLineErrors(TyperGroup):
    """Report Click's own usage errors (unknown option, bad or missing value) as one
    ``sc-eval: error:`` line on stderr, exit 2, like every other bad input."""

    def make_context(self, *args: Any, **kwargs: Any) -> Any:
        with _one_line_usage_errors():
            return super().make_context(*args, **kwargs)

    def invoke(self, ctx: Any) -> Any:
        with _one_line_usage_errors():
            return super().invoke(ctx)


@contextlib.contextmanager
def _one_line_usage_errors() -> Iterator[None]:
    try:
        from typer._click.exceptions import UsageError
    except ImportError:  # typer < 0.24 uses the click package
        from click.exceptions import UsageError  # type: ignore[no-redef]
    try:
        yield
    except UsageError as e:
        if type(e).__name__ == "NoArgsIsHelpError":  # bare `sc-eval`: show the help
            raise
        message = " ".join(e.format_message().split()).rstrip(".") + "."
        hint = f" See '{e.ctx.command_path} --help'." if e.ctx is not None else ""
        raise fail(f"{message}{hint}", e.exit_code) from None


app = typer.Typer(
    name="sc-eval",
    cls=_OneLineErrors,
    help="Selective-classification evaluation: does your classifier know when it is wrong?",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain Click help: typer.rich_utils alone would double start-up time
    context_settings={"help_option_names": ["-h", "--help"]},
)

F = TypeVar("F", bound=Callable[..., Any])


def _version_callback(value: bool) -> None:
    if value:
        from sc_eval import __version__

        typer.echo(f"sc-eval {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version_callback, is_eager=True, help="Show the version."
    ),
) -> None:
    """Selective-classification evaluation: does your classifier know when it is wrong?"""


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print one line on stderr and return the Exit to raise."""
    typer.echo(f"sc-eval: error: {message}", err=True)
    return typer.Exit(code)


def _show_warning(
    message: Any, category: Any, filename: str, lineno: int, file: Any = None, line: Any = None
) -> None:
    sys.stderr.write(f"sc-eval: warning: {message}\n")


def handle_errors(fn: F) -> F:
    """Map sc-eval errors to one stderr line and exit code 2 (traceback only with --debug)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from sc_eval.errors import ScEvalError

        debug = bool(kwargs.get("debug")) or os.environ.get("SC_EVAL_DEBUG") == "1"
        old = warnings.showwarning
        warnings.showwarning = _show_warning
        try:
            return fn(*args, **kwargs)
        except ScEvalError as e:
            if debug:
                raise
            raise fail(str(e), e.exit_code) from None
        except KeyboardInterrupt:
            if debug:
                raise
            raise fail("interrupted; no output was written", 130) from None
        except MemoryError:
            if debug:
                raise
            raise fail("out of memory; try a smaller --chunk-size", 2) from None
        finally:
            warnings.showwarning = old

    return wrapper  # type: ignore[return-value]


def split_list(text: str | None) -> list[str]:
    """``"a, b,c"`` → ``["a", "b", "c"]`` (None or empty → [])."""
    if not text:
        return []
    return [t.strip() for t in text.split(",") if t.strip()]


def emit(text: str, output: Path | None) -> None:
    """Write results to ``output`` atomically, or to stdout."""
    if output is None:
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    from sc_eval.io import write_text

    write_text(output, text)
    typer.echo(f"sc-eval: wrote {output}", err=True)


@contextlib.contextmanager
def stdout_console() -> Iterator[Any]:
    """A Rich console on stdout (honours NO_COLOR and non-terminals)."""
    from rich.console import Console

    wide = None if sys.stdout.isatty() else 200
    yield Console(highlight=False, width=wide)


def main() -> None:
    """Entry point of the ``sc-eval`` console script."""
    app()


# Register the commands (their modules import only typer and stdlib at top level).
from sc_eval.cli import compare as _compare  # noqa: E402,F401
from sc_eval.cli import demo as _demo  # noqa: E402,F401
from sc_eval.cli import diagnose as _diagnose  # noqa: E402,F401
from sc_eval.cli import gate as _gate  # noqa: E402,F401
from sc_eval.cli import infer as _infer  # noqa: E402,F401
from sc_eval.cli import listing as _listing  # noqa: E402,F401
from sc_eval.cli import score as _score  # noqa: E402,F401
from sc_eval.cli import threshold as _threshold  # noqa: E402,F401
