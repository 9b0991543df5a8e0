"""The ``sc-eval`` command line: parse, call the library, format, exit code.

No maths here. Each command lives in its own module of this package and
registers itself on :data:`app`. Heavy imports (numpy, torch, matplotlib)
happen inside the commands, so ``sc-eval --help`` stays fast.

Exit codes: 0 success, 1 gate/threshold failed, 2 bad input or usage,
130 interrupted.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import os
import re
import shutil
import signal
import sys
import textwrap
import threading
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import typer
from typer.core import TyperGroup

from sc_eval.errors import ScEvalError, printable
from sc_eval.files import os_error_reason
from sc_eval.outputs import transaction, write_text

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

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        command = super().get_command(ctx, cmd_name)
        if command is not None and not getattr(command, "_sc_eval_help", False):
            original = command.get_help
            command.get_help = lambda ctx: plain_help(original(ctx))  # type: ignore[method-assign]
            command._sc_eval_help = True  # type: ignore[attr-defined]
        return command


#: Type labels that Typer prints as Python types, in the words of Click's own help.
_HELP_TYPES = {
    "<str>": "TEXT",
    "<int>": "INTEGER",
    "<int range>": "INTEGER",
    "<float>": "NUMBER",
    "<float range>": "NUMBER",
    "<path>": "PATH",
    "<Path>": "PATH",
    "<list[str]>": "TEXT",
}
_HELP_TYPE = re.compile(r"<(?:str|int|float|int range|float range|path|Path|list\[\w+\])>")


def plain_help(text: str) -> str:
    """A command's help without Python type names: ``SOURCE <list[Path]>`` → ``SOURCE``,
    ``--seed <int range>`` → ``--seed INTEGER``, usage ``{SOURCE}...`` → ``SOURCE...``.

    Labels are replaced by text of the same width, so help columns stay aligned.
    """
    text = re.sub(r"\{([A-Z][A-Z_]*)\}", r"\1", text)

    def label(match: re.Match[str]) -> str:
        token = match.group(0)
        word = "" if token.startswith("<list[") and "Path" in token else _HELP_TYPES.get(token, "")
        return word.ljust(len(token)) if word or token else token

    lines = []
    for line in text.splitlines():
        new = _HELP_TYPE.sub(label, line)
        lines.append(new.rstrip() if new != line else line)
    return "\n".join(lines) + ("\n" if text.endswith("\n") else "")


@contextlib.contextmanager
def _one_line_usage_errors() -> Iterator[None]:
    try:
        from typer._click.exceptions import UsageError
    except ImportError:  # typer < 0.24 uses the click package
        from click.exceptions import UsageError  # type: ignore[no-redef,assignment,unused-ignore]
    try:
        yield
    except UsageError as e:
        if type(e).__name__ == "NoArgsIsHelpError":  # bare `sc-eval`: show the help
            raise
        message = " ".join(e.format_message().split()).rstrip(".")
        message += "" if message.endswith(("?", "!")) else "."
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
    """Print one line on stderr (control characters escaped) and return the Exit to raise."""
    typer.echo(f"sc-eval: error: {printable(message)}", err=True)
    return typer.Exit(code)


def _show_warning(
    message: Any, category: Any, filename: str, lineno: int, file: Any = None, line: Any = None
) -> None:
    """One ``sc-eval: warning:`` line; on a terminal, wrapped at word boundaries to its
    width (the terminal would otherwise break words), in a pipe or log one line."""
    text = f"sc-eval: warning: {printable(str(message))}"
    if sys.stderr.isatty():
        width = shutil.get_terminal_size().columns
        text = textwrap.fill(text, width=max(width - 1, 40), subsequent_indent="  ")
    sys.stderr.write(text + "\n")


class Terminated(BaseException):
    """SIGTERM or SIGHUP arrived: unwind like Ctrl-C (temporary files removed)."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


@contextlib.contextmanager
def _termination_as_exception() -> Iterator[None]:
    """Turn SIGTERM and SIGHUP into :class:`Terminated` while a command runs."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def raise_terminated(signum: int, frame: object) -> None:
        raise Terminated(signum)

    wanted = [signal.SIGTERM, getattr(signal, "SIGHUP", None)]
    previous = {sig: signal.signal(sig, raise_terminated) for sig in wanted if sig is not None}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


#: Parameters naming files a command writes (every other path parameter is an input).
OUTPUT_PARAMS = frozenset({"output", "out", "plot", "junit", "cache_dir", "features_out"})


def _input_paths(kwargs: dict[str, Any]) -> list[Path]:
    """The files a command reads: every path argument that is not an output option."""
    found: list[Path] = []
    for name, value in kwargs.items():
        if name in OUTPUT_PARAMS:
            continue
        values = value if isinstance(value, list | tuple) else [value]
        found.extend(v for v in values if isinstance(v, Path))
    return found


def _keeps_outputs(exc: BaseException) -> bool:
    """A command that ends with exit 0 or 1 (gate/threshold not met) keeps its outputs."""
    return isinstance(exc, typer.Exit) and exc.exit_code in (0, 1)


def handle_errors(fn: F) -> F:
    """Run a command as one unit: outputs all or nothing, every failure one stderr line.

    sc-eval errors exit 2 (traceback only with --debug); Ctrl-C exits 130,
    SIGTERM 143 and SIGHUP 129, each removing every temporary file; an OS
    error, a failed import or an exhausted memory is one line too.
    """

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        debug = bool(kwargs.get("debug")) or os.environ.get("SC_EVAL_DEBUG") == "1"
        old = warnings.showwarning
        warnings.showwarning = _show_warning
        try:
            with (
                _termination_as_exception(),
                transaction(_input_paths(kwargs), keep=_keeps_outputs, echo=_say),
            ):
                return fn(*args, **kwargs)
        except typer.Exit:
            raise
        except Exception as e:
            if debug:
                raise
            if isinstance(e, ScEvalError):
                raise fail(str(e), e.exit_code) from None
            if isinstance(e, MemoryError):
                raise fail("out of memory; try a smaller --chunk-size", 2) from None
            if isinstance(e, ImportError):
                raise fail(_import_failure(e), 2) from None
            if isinstance(e, OSError):
                where = f"{e.filename}: " if e.filename else ""
                raise fail(f"{where}{os_error_reason(e)}", 2) from None
            if isinstance(e, RecursionError):
                raise fail("input nested too deeply to read", 2) from None
            raise
        except KeyboardInterrupt:
            if debug:
                raise
            raise fail("interrupted; no output was written", 130) from None
        except Terminated as e:
            name = signal.Signals(e.signum).name
            raise fail(f"terminated by {name}; no output was written", 128 + e.signum) from None
        finally:
            warnings.showwarning = old

    return wrapper  # type: ignore[return-value]


def _import_failure(e: ImportError) -> str:
    """Name the package that failed to import (torch's native libraries say ``_C``)."""
    name = e.name or ""
    if "torch" in name or "torch" in str(e) or name == "_C":
        what = "torch (PyTorch, needed for .pt files, checkpoints and inference)"
    else:
        what = name or "a required module"
    hint = " (out of memory, or an address-space limit?)" if "map segment" in str(e) else ""
    return f"could not import {what}: {_first_line(e)}{hint}"


def _say(line: str) -> None:
    typer.echo(line, err=True)


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return (text.splitlines()[0] if text else type(e).__name__)[:200]


def split_list(text: str | None) -> list[str]:
    """``"a, b,c"`` → ``["a", "b", "c"]`` (None or empty → [])."""
    if not text:
        return []
    return [t.strip() for t in text.split(",") if t.strip()]


def emit(text: str, output: Path | None) -> None:
    """Write results to ``output`` (atomically, with the command's other outputs), or stdout."""
    if output is None:
        sys.stdout.write(text)
        sys.stdout.flush()
        return

    write_text(output, text, announce=True)


def emit_result(result: Any, fmt: str, output: Path | None, **opts: Any) -> None:
    """Render ``result`` in ``fmt`` (see :func:`sc_eval.render.render`): a table for the
    terminal goes straight to stdout, in colour and folded to its width; anything else
    is written to ``output``, or stdout."""
    from sc_eval.render import render

    if fmt == "table" and output is None:
        with stdout_console() as console:
            render(result, fmt, console=console, **opts)
        return
    emit(render(result, fmt, **opts), output)


@contextlib.contextmanager
def stdout_console() -> Iterator[Any]:
    """A Rich console on stdout (honours NO_COLOR and non-terminals)."""
    from rich.console import Console

    wide = None if sys.stdout.isatty() else 200
    yield Console(highlight=False, width=wide)


class _ClosedPipeSafe:
    """stdout that goes quiet when its reader goes away (``sc-eval score … | head``).

    The first ``BrokenPipeError`` points file descriptor 1 at ``/dev/null`` and
    every later write succeeds silently, so the command finishes normally, its
    exit code (a gate's verdict) unchanged and without an error message, like
    other Unix tools.
    """

    def __init__(self, stream: Any):
        self._stream = stream
        self._closed = False

    def _quiet(self) -> None:
        self._closed = True
        devnull = os.open(os.devnull, os.O_WRONLY)
        with contextlib.suppress(OSError):
            os.dup2(devnull, self._stream.fileno())
        os.close(devnull)

    def write(self, text: str) -> int:
        if not self._closed:
            try:
                return int(self._stream.write(text))
            except BrokenPipeError:
                self._quiet()
        return len(text)

    def flush(self) -> None:
        if not self._closed:
            try:
                self._stream.flush()
            except BrokenPipeError:
                self._quiet()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def main() -> None:
    """Entry point of the ``sc-eval`` console script."""
    if sys.stdout is None:  # started with stdout closed (`>&-`): like a reader gone away
        sys.stdout = open(os.devnull, "w", encoding="utf-8")  # noqa: SIM115 - for the run
        atexit.register(sys.stdout.close)
    if not isinstance(sys.stdout, _ClosedPipeSafe):
        sys.stdout = _ClosedPipeSafe(sys.stdout)
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
