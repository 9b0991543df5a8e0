"""Content hashes and the predictions cache.

A checkpoint run through ``score``/``compare``/``gate`` is inferred once; its
predictions are stored under the cache directory, named by a key built from
the checkpoint's SHA-256, the data's SHA-256 and the options that change the
logits. The next run with the same inputs loads the stored file instead.

Hashing a large file on every run would make that "instant" run slow, so a
digest is memoised under the cache directory too, keyed by the file's path,
size, modification time and inode: editing a file changes its ``stat`` and
forces a rehash. No torch here.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import stat
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from sc_eval.errors import InputError
from sc_eval.outputs import write_text

__all__ = [
    "CACHE_ENV",
    "cache_key",
    "default_cache_dir",
    "file_sha256",
    "memo_digest",
    "tree_sha256",
]

CACHE_ENV = "SC_EVAL_CACHE"
CACHE_VERSION = "1"
_BLOCK = 1 << 20


def default_cache_dir() -> Path:
    """``$SC_EVAL_CACHE``, else ``$XDG_CACHE_HOME/sc-eval``, else ``~/.cache/sc-eval``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "sc-eval"


def file_sha256(path: str | os.PathLike[str]) -> str:
    """SHA-256 of a file's bytes, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(_BLOCK):
            h.update(block)
    return h.hexdigest()


def tree_sha256(root: str | os.PathLike[str], files: Iterable[str]) -> str:
    """SHA-256 over ``relative path NUL file SHA-256 LF`` for ``files`` in the order given.

    Renaming, adding, removing or editing a file changes the digest.
    """
    h = hashlib.sha256()
    for rel in files:
        h.update(rel.encode("utf-8") + b"\0" + file_sha256(Path(root, rel)).encode() + b"\n")
    return h.hexdigest()


def _stat_signature(paths: Iterable[Path]) -> str:
    h = hashlib.sha256()
    for p in paths:
        st = p.stat()  # ctime too: `cp -p` or `touch -r` can restore mtime, not ctime
        sig = f"{p.resolve()}\0{st.st_size}\0{st.st_mtime_ns}\0{st.st_ctime_ns}\0{st.st_ino}\n"
        h.update(sig.encode())
    return h.hexdigest()


def memo_digest(
    paths: Iterable[Path], compute: Callable[[], str], *, cache_dir: Path | None
) -> str:
    """``compute()`` memoised under ``cache_dir/hashes`` by the ``stat`` of ``paths``.

    Without a cache directory it is just ``compute()``. A memo that cannot be
    written (read-only cache) is skipped silently: it only saves time.
    """
    if cache_dir is None:
        return compute()
    memo = cache_dir / "hashes" / f"{_stat_signature(paths)}.sha256"
    text = read_cache_text(memo, limit=65)
    if text is not None and re.fullmatch(r"[0-9a-f]{64}", text.strip()):
        return text.strip()
    digest = compute()

    with contextlib.suppress(OSError, InputError):
        memo.parent.mkdir(parents=True, exist_ok=True)
        write_text(memo, digest + "\n", cache=True)
    return digest


def is_cache_file(path: Path) -> bool:
    """True for a regular file that is not a symbolic link: cache entries are only ever
    written so, and anything else (a planted link, FIFO or device) is ignored."""
    try:
        st = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISREG(st.st_mode)


def read_cache_text(path: Path, *, limit: int) -> str | None:
    """A small cache file's text, or None: never follows a link, never blocks on a FIFO,
    never reads more than ``limit`` bytes (a link to ``/dev/zero`` would never end)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        return os.read(fd, limit).decode("ascii")
    except (OSError, UnicodeDecodeError):
        return None
    finally:
        os.close(fd)


def cache_key(fields: dict[str, Any]) -> str:
    """Stable hex key of a JSON-serialisable dict (sorted keys, cache format version)."""
    payload = json.dumps({"v": CACHE_VERSION, **fields}, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()
