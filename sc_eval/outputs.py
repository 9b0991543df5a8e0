"""Output files: checked before any work, written atomically, all or nothing.

* :func:`check_output_path` — run for every output before a command starts:
  the directory exists and takes a new file, the name is not too long, and
  the path is not one of the command's inputs (same file through a hard or
  symbolic link included), so ``-o`` can never destroy what is being read.
* :func:`atomic_output` — the writer fills a temporary file beside the
  target (a short fixed-length name, so a 255-byte target name still fits);
  on success it replaces the target in one rename. A symbolic link is
  followed and its *target* replaced (the link stays). A character device,
  FIFO or ``/dev/stdout`` is written through, never replaced by a file.
* :func:`transaction` — the command line runs each command inside one:
  outputs are staged and only moved into place when the whole command
  succeeded; on any error (or Ctrl-C, SIGTERM) every staged file is removed.

Every OS error becomes one :class:`~sc_eval.errors.InputError` naming the
path and the reason.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import re
import stat
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from sc_eval.errors import InputError, printable
from sc_eval.files import os_error_reason

__all__ = [
    "append_on_commit",
    "atomic_output",
    "check_appendable",
    "check_output_path",
    "check_replaceable",
    "is_stream",
    "transaction",
    "write_text",
]

_NAME_MAX = 255
_TMP_PREFIX = ".sc-eval-"
_FD_PATH = re.compile(r"^/(?:dev/fd|proc/self/fd)/(\d+)$")
_STD_STREAMS = {"/dev/stdout": 1, "/dev/stderr": 2}


@dataclass
class _Staged:
    tmp: Path
    target: Path
    stream: bool  # write through (device, FIFO, /dev/stdout) instead of renaming
    announce: str | None


@dataclass
class _Transaction:
    inputs: list[tuple[str, tuple[int, int]]] = field(default_factory=list)
    staged: list[_Staged] = field(default_factory=list)
    appends: list[tuple[Path, str]] = field(default_factory=list)

    def commit(self, echo: Callable[[str], None]) -> None:
        for path, text in self.appends:  # appends can fail: do them before any rename
            try:
                with open(path, "a", encoding="utf-8") as f:
                    f.write(text)
            except OSError as e:
                raise InputError(f"cannot append: {os_error_reason(e)}", path=path) from None
        for item in self.staged:
            _finish(item)
            if item.announce:
                echo(item.announce)
        self.staged.clear()

    def discard(self) -> None:
        for item in self.staged:
            with contextlib.suppress(OSError):
                item.tmp.unlink()
        self.staged.clear()


_ACTIVE: contextvars.ContextVar[_Transaction | None] = contextvars.ContextVar(
    "sc_eval_outputs", default=None
)


def _identity(path: str | os.PathLike[str]) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return None
    return (st.st_dev, st.st_ino) if stat.S_ISREG(st.st_mode) else None


@contextlib.contextmanager
def transaction(
    inputs: Iterable[str | os.PathLike[str]] = (),
    *,
    keep: Callable[[BaseException], bool] = lambda exc: False,
    echo: Callable[[str], None] | None = None,
) -> Iterator[None]:
    """Stage every :func:`atomic_output` inside; commit them together at the end.

    ``inputs`` are the files the command reads: :func:`check_output_path`
    refuses an output that is one of them. An exception discards every staged
    output unless ``keep(exception)`` (e.g. a deliberate exit code). Nested
    transactions join the outer one.
    """
    if _ACTIVE.get() is not None:
        yield
        return
    txn = _Transaction()
    for p in inputs:
        ident = _identity(p)
        if ident is not None:
            txn.inputs.append((os.fspath(p), ident))
    token = _ACTIVE.set(txn)
    say = echo or (lambda line: print(line, file=sys.stderr))
    try:
        yield
    except BaseException as exc:
        if keep(exc):
            txn.commit(say)
        raise
    else:
        txn.commit(say)
    finally:
        txn.discard()
        _ACTIVE.reset(token)


@contextlib.contextmanager
def detached() -> Iterator[None]:
    """Write immediately inside the block, outside any transaction: for pipelines that
    read back what they wrote (the demo's checkpoints, a predictions cache)."""
    token = _ACTIVE.set(None)
    try:
        yield
    finally:
        _ACTIVE.reset(token)


def append_on_commit(path: str | os.PathLike[str], text: str) -> None:
    """Append ``text`` to ``path`` when the transaction commits (now when none is active)."""
    p = Path(path)
    txn = _ACTIVE.get()
    if txn is None:
        try:
            with open(p, "a", encoding="utf-8") as f:
                f.write(text)
        except OSError as e:
            raise InputError(f"cannot append: {os_error_reason(e)}", path=path) from None
        return
    txn.appends.append((p, text))


# --------------------------------------------------------------------------- checks
def is_stream(path: Path) -> bool:
    """Write through rather than replace: devices, FIFOs, ``/dev/stdout`` and friends."""
    text = os.fspath(path)
    if text in _STD_STREAMS or _FD_PATH.match(text):
        return True
    try:
        st = os.stat(path)
    except OSError:
        return False
    return not stat.S_ISREG(st.st_mode) and not stat.S_ISDIR(st.st_mode)


def _real_target(path: Path) -> Path:
    """Where a rename must land: a symbolic link is followed to the file it names."""
    if not path.is_symlink():
        return path
    try:
        return Path(os.path.realpath(path, strict=True))
    except FileNotFoundError:  # a dangling link: its target will be created
        return Path(os.path.realpath(path))
    except OSError as e:  # ELOOP: a link cycle
        raise InputError(f"cannot write: {os_error_reason(e)}", path=path) from None


def check_output_path(path: str | os.PathLike[str], *, rewrites_input: bool = False) -> Path:
    """Refuse an output path before any work: missing or unwritable directory, a
    directory as the path, an over-long name, or one of the command's inputs.

    Commands call this for every output option first, so a run never writes
    one output and then fails on the next.
    """
    given = Path(path)
    try:
        if is_stream(given):
            return given
        target = _real_target(given)
        if len(os.fsencode(target.name)) > _NAME_MAX:
            raise InputError(
                f"cannot write: file name too long ({len(os.fsencode(target.name))} bytes, "
                f"at most {_NAME_MAX})",
                path=path,
            )
        parent = target.parent if str(target.parent) else Path(".")
        if not parent.is_dir():
            raise InputError("output directory does not exist", path=parent)
        if target.is_dir():
            raise InputError("is a directory, expected an output file path", path=given)
        if not rewrites_input:
            _refuse_input(target, given)
        _probe_directory(parent)
    except OSError as e:
        raise InputError(f"cannot write: {os_error_reason(e)}", path=path) from None
    return given


def check_appendable(path: str | os.PathLike[str]) -> Path:
    """Refuse, before any work, a file that cannot be appended to (e.g. a bad
    ``$GITHUB_STEP_SUMMARY``): its directory must exist, the file (if there) be
    a writable regular file or stream."""
    p = Path(path)
    try:
        if is_stream(p):
            return p
        parent = p.parent if str(p.parent) else Path(".")
        if not parent.is_dir():
            raise InputError("cannot append: the directory does not exist", path=path)
        if p.is_dir():
            raise InputError("cannot append: is a directory", path=path)
        if p.exists() and not os.access(p, os.W_OK):
            raise InputError("cannot append: permission denied", path=path)
        _refuse_input(p, path)
        if not p.exists():
            _probe_directory(parent)
    except OSError as e:
        raise InputError(f"cannot append: {os_error_reason(e)}", path=path) from None
    return p


def check_replaceable(path: str | os.PathLike[str]) -> Path:
    """Refuse, before any work, an input file that a command is to rewrite in place
    (``gate --update-baseline``) when its directory takes no new file."""
    p = Path(path)
    target = _real_target(p)
    try:
        _probe_directory(target.parent if str(target.parent) else Path("."))
    except OSError as e:
        raise InputError(f"cannot rewrite: {os_error_reason(e)}", path=path) from None
    return p


def _refuse_input(target: Path, given: object) -> None:
    """An output that is one of the running command's inputs (any link to it) is refused."""
    txn = _ACTIVE.get()
    ident = _identity(target)
    if txn is None or ident is None:
        return
    for name, other in txn.inputs:
        if other == ident:
            raise InputError(
                f"is the same file as the input {name}; writing it would destroy the input. "
                "Choose another output path",
                path=given,
            )


def _probe_directory(parent: Path) -> None:
    """Create and remove a temporary file: the only exact test that the directory takes one."""
    fd, tmp = tempfile.mkstemp(prefix=_TMP_PREFIX, suffix=".tmp", dir=parent)
    os.close(fd)
    os.unlink(tmp)


# --------------------------------------------------------------------------- writing
@contextlib.contextmanager
def atomic_output(
    path: str | os.PathLike[str],
    *,
    announce: bool = False,
    rewrites_input: bool = False,
    cache: bool = False,
) -> Iterator[Path]:
    """Yield a temporary path to write; put it in place at the end.

    Inside a :func:`transaction` the file is staged and moved into place when
    the transaction commits; otherwise (and for ``cache`` files) at once. On any
    exception the temporary file is removed and ``path`` is untouched.
    ``announce`` prints ``sc-eval: wrote PATH`` on stderr once it is in place;
    ``rewrites_input`` allows replacing one of the command's inputs on purpose
    (``gate --update-baseline``). ``cache`` (cache entries, hash memos): not one of
    the command's outputs, so written at once; the path itself is replaced whatever
    it is — a planted symbolic link is not followed, a FIFO or device not written
    through.
    """
    if cache:
        given, stream, target = Path(path), False, Path(path)
    else:
        given = check_output_path(path, rewrites_input=rewrites_input)
        stream = is_stream(given)
        target = given if stream else _real_target(given)
    directory = Path(tempfile.gettempdir()) if stream else (target.parent or Path("."))
    try:
        fd, name = tempfile.mkstemp(prefix=_TMP_PREFIX, suffix=".tmp", dir=directory)
        os.close(fd)
    except OSError as e:
        raise InputError(f"cannot write: {os_error_reason(e)}", path=path) from None
    tmp = Path(name)
    said = f"sc-eval: wrote {printable(path)}" if announce and not stream else None
    item = _Staged(tmp, target, stream, said)
    try:
        try:
            yield tmp
            # mkstemp makes 0600, and writers may recreate the file: set the usual mode last
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)
        except OSError as e:
            raise InputError(f"cannot write: {os_error_reason(e)}", path=path) from None
        txn = _ACTIVE.get()
        if txn is not None and not cache:
            txn.staged.append(item)
            return
        _finish(item)
        if item.announce:
            print(item.announce, file=sys.stderr)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def _finish(item: _Staged) -> None:
    """Move a staged file into place (rename), or copy it through to a stream."""
    try:
        if not item.stream:
            os.replace(item.tmp, item.target)
            return
        text = os.fspath(item.target)
        fd_number = _STD_STREAMS.get(text)
        match = _FD_PATH.match(text)
        if fd_number is None and match:
            fd_number = int(match.group(1))
        with open(item.tmp, "rb") as src:
            if fd_number is not None:
                for sync in (sys.stdout, sys.stderr):
                    with contextlib.suppress(Exception):
                        sync.flush()
                while block := src.read(1 << 20):
                    view = memoryview(block)
                    while view:
                        view = view[os.write(fd_number, view) :]
            else:
                with open(item.target, "wb") as dst:
                    while block := src.read(1 << 20):
                        dst.write(block)
        os.unlink(item.tmp)
    except OSError as e:
        raise InputError(f"cannot write: {os_error_reason(e)}", path=item.target) from None


def write_text(
    path: str | os.PathLike[str],
    text: str,
    *,
    announce: bool = False,
    rewrites_input: bool = False,
    cache: bool = False,
) -> None:
    """Write ``text`` to ``path`` atomically (see :func:`atomic_output` for the flags)."""
    with atomic_output(path, announce=announce, rewrites_input=rewrites_input, cache=cache) as tmp:
        tmp.write_text(text, encoding="utf-8")
