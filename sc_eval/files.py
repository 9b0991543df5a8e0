"""Input files, checked before they are opened: one place for the rules every reader shares.

* :func:`check_input_file` — the path names a regular file that can be read
  (a FIFO or device would block ``open`` or never end; a directory, an
  over-long name, a permission problem each get their own one-line reason);
* :func:`read_json` — a small JSON document (gate baselines, selectors):
  size-bounded, duplicate keys and absurd nesting refused;
* :func:`check_zip` — the zip container of ``.npz``, ``torch.save``,
  TorchScript and ``.pt2`` files, checked so that every zip reader sees the
  same members: no duplicate or look-alike names, no ``..`` or absolute
  names, local headers that agree with the central directory, members that
  neither overlap nor hide data before, between or after them;
* :func:`detect` — what a file holds, from its first bytes (:func:`is_zip` for
  the one question a reader asks again: zip container or legacy pickle).

Every problem raises :class:`~sc_eval.errors.InputError` naming the file.
"""

from __future__ import annotations

import errno
import json
import os
import stat
import struct
import unicodedata
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from sc_eval.errors import InputError

__all__ = [
    "ZIP_ERRORS",
    "ZipMember",
    "check_input_file",
    "check_zip",
    "detect",
    "is_zip",
    "os_error_reason",
    "parse_json",
    "read_head",
    "read_json",
    "verify_crc",
]

#: What :mod:`zipfile` raises on a damaged archive besides ``BadZipFile``
#: (undecodable names, bad struct fields, unknown compression, truncated streams).
ZIP_ERRORS: tuple[type[Exception], ...] = (
    zipfile.BadZipFile,
    ValueError,
    EOFError,
    struct.error,
    OverflowError,
    NotImplementedError,
    zlib.error,
)

#: JSON inputs (baselines, selectors) are small; anything larger is not ours.
MAX_JSON_BYTES = 64 * 1024 * 1024
#: Deeper nesting than any sc-eval document has (Python's parser would recurse).
MAX_JSON_DEPTH = 64


def os_error_reason(e: OSError) -> str:
    """A short, human reason for an OS error (``file name too long``, ``no space left``…)."""
    reasons = {
        errno.ENAMETOOLONG: "file name too long",
        errno.ENOSPC: "no space left on the device",
        errno.EDQUOT: "disk quota exceeded",
        errno.EACCES: "permission denied",
        errno.EPERM: "operation not permitted",
        errno.EROFS: "read-only file system",
        errno.ELOOP: "too many levels of symbolic links",
        errno.ENOENT: "no such file or directory",
        errno.ENOTDIR: "a component of the path is not a directory",
        errno.EISDIR: "is a directory",
        errno.EIO: "input/output error",
        errno.EFBIG: "file too large",
        errno.ENOMEM: "not enough memory",
    }
    return reasons.get(e.errno or 0) or (e.strerror or type(e).__name__).lower()


_KIND_NAMES = {
    stat.S_IFIFO: "a FIFO (named pipe)",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFSOCK: "a socket",
}


def check_input_file(path: str | os.PathLike[str], what: str = "file") -> Path:
    """Refuse anything but an existing, readable regular file (links are followed).

    Checked with ``stat`` before any ``open``: opening a FIFO blocks until a
    writer appears, and a device such as ``/dev/zero`` never ends.
    """
    p = Path(path)
    try:
        st = os.stat(p)
    except FileNotFoundError:
        raise InputError("no such file", path=path) from None
    except OSError as e:
        raise InputError(f"cannot read: {os_error_reason(e)}", path=path) from None
    if stat.S_ISDIR(st.st_mode):
        raise InputError(f"is a directory, expected a {what}", path=path)
    if not stat.S_ISREG(st.st_mode):
        kind = _KIND_NAMES.get(stat.S_IFMT(st.st_mode), "not a regular file")
        raise InputError(f"is {kind}, expected a regular {what}", path=path)
    if not os.access(p, os.R_OK):
        raise InputError("cannot read: permission denied", path=path)
    return p


# --------------------------------------------------------------------------- JSON
def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise _DuplicateKey(k)
        out[k] = v
    return out


class _DuplicateKey(ValueError):
    pass


def _json_depth_ok(text: str | bytes, limit: int) -> bool:
    """True when brackets nest at most ``limit`` deep (strings are skipped)."""
    data = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text
    depth = 0
    in_string = escaped = False
    for byte in data:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):
            depth += 1
            if depth > limit:
                return False
        elif byte in (0x5D, 0x7D):
            depth -= 1
    return True


def parse_json(data: bytes | str, *, path: object, what: str = "JSON") -> Any:
    """Parse untrusted JSON: nesting bounded, duplicate keys refused."""
    if not _json_depth_ok(data, MAX_JSON_DEPTH):
        raise InputError(f"{what} nested more than {MAX_JSON_DEPTH} levels deep", path=path)
    try:
        return json.loads(data, object_pairs_hook=_no_duplicate_keys)
    except _DuplicateKey as e:
        raise InputError(f"{what} has the key {str(e)!r} twice", path=path) from None
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InputError(f"not valid {what}: {e}", path=path) from None
    except ValueError as e:  # e.g. an integer of more than 4300 digits
        raise InputError(f"{what} holds an unreadable number: {_short(e)}", path=path) from None
    except RecursionError:  # pragma: no cover - the depth check comes first
        raise InputError(f"{what} nested too deeply", path=path) from None


def read_json(path: str | os.PathLike[str], what: str = "JSON file") -> Any:
    """Read a small JSON document from a regular file (see :func:`parse_json`)."""
    p = check_input_file(path, what)
    try:
        size = p.stat().st_size
        if size > MAX_JSON_BYTES:
            raise InputError(
                f"is {size} bytes; a {what} is at most {MAX_JSON_BYTES} bytes", path=path
            )
        data = p.read_bytes()
    except OSError as e:
        raise InputError(f"cannot read: {os_error_reason(e)}", path=path) from None
    return parse_json(data, path=path, what="JSON")


# --------------------------------------------------------------------------- zip
@dataclass(frozen=True)
class ZipMember:
    """One member of a checked zip archive."""

    name: str
    size: int  #: uncompressed bytes
    compressed: int
    method: int
    header_offset: int  #: where the member's local header starts
    data_offset: int  #: where the member's (compressed) bytes start
    descriptor: bool  #: a data descriptor (12–24 bytes) follows the data
    crc: int  #: CRC-32 of the uncompressed bytes, from the central directory


_LOCAL = struct.Struct("<4sHHHHHIIIHH")
_LOCAL_SIG = b"PK\x03\x04"
_STORED_OR_DEFLATED = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)
_ZIP64_LIMIT = 0xFFFFFFFF


def _bad_name(name: str) -> str | None:
    if not name:
        return "an empty member name"
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        return f"an absolute member name {name!r}"
    if "\\" in name:
        return f"a member name with a backslash {name!r}"
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in name):
        return f"a member name with control characters {name!r}"
    if ".." in name.split("/"):
        return f"a member name with '..' {name!r}"
    return None


def check_zip(path: str | os.PathLike[str], *, single_root: bool = False) -> list[ZipMember]:
    """Check a zip container so that every reader sees the same members, and list them.

    Refused: duplicate names (also after Unicode normalisation and case
    folding), absolute names, ``..``, backslashes, control characters;
    encrypted members; compression other than stored/deflate; a local header
    that disagrees with the central directory (name, method, sizes, CRC);
    members that overlap, or bytes before the first member, between members
    or after the central directory (a comment included). ``single_root``
    (torch archives): every member lives under one top-level folder.

    Python's :mod:`zipfile` (numpy) keeps the *last* of two equal names,
    torch's reader may take the first: a checker that read one copy would
    approve what the loader never sees.
    """
    p = Path(path)
    try:
        with zipfile.ZipFile(p) as zf:
            infos = zf.infolist()
            start_dir = zf.start_dir
            comment = zf.comment
        size = p.stat().st_size
        with open(p, "rb") as f:
            members = [_check_local(f, info, path) for info in infos]
    except InputError:
        raise
    except OSError as e:
        raise InputError(f"cannot read: {os_error_reason(e)}", path=path) from None
    except ZIP_ERRORS as e:
        raise InputError(f"corrupt zip archive ({_short(e)})", path=path) from None
    if not infos:
        raise InputError("empty zip archive", path=path)
    if comment:
        raise InputError("zip archive has a comment; sc-eval's archives never do", path=path)
    seen: dict[str, str] = {}
    for info in infos:
        reason = _bad_name(info.filename)
        if reason:
            raise InputError(f"zip archive has {reason}", path=path)
        folded = unicodedata.normalize("NFC", info.filename).casefold()
        if folded in seen:
            same = "twice" if seen[folded] == info.filename else f"and {seen[folded]!r}"
            raise InputError(
                f"zip archive has the member {info.filename!r} {same}; zip readers disagree "
                "on which copy counts, so the archive is refused",
                path=path,
            )
        seen[folded] = info.filename
        if info.flag_bits & 0x1:
            raise InputError(f"zip member {info.filename!r} is encrypted", path=path)
        if info.compress_type not in _STORED_OR_DEFLATED:
            raise InputError(
                f"zip member {info.filename!r} uses compression method {info.compress_type}; "
                "expected stored or deflate",
                path=path,
            )
    if single_root:
        require_single_root([info.filename for info in infos], path)
    # the members, in file order, must tile the bytes before the central directory
    position, slack = 0, 0
    for m in sorted(members, key=lambda m: m.header_offset):
        if not position <= m.header_offset <= position + slack:
            what = "overlap" if m.header_offset < position else "leave unexplained bytes"
            raise InputError(f"zip members {what} (offset {m.header_offset})", path=path)
        position = m.data_offset + m.compressed
        slack = 24 if m.descriptor else 0  # a data descriptor may follow the data
    if not position <= start_dir <= position + slack:
        raise InputError("zip archive has unexplained bytes before its directory", path=path)
    if start_dir > size - 22:
        raise InputError("corrupt zip archive (directory past the end)", path=path)
    return members


def require_single_root(names: list[str], path: object) -> None:
    """torch archives keep every member under one top-level folder; refuse others."""
    roots = {name.split("/", 1)[0] for name in names}
    if len(roots) != 1 or any("/" not in name for name in names):
        raise InputError(
            "zip archive does not keep every member under one top-level folder "
            "(as torch writes it)",
            path=path,
        )


def _check_local(f: BinaryIO, info: zipfile.ZipInfo, path: object) -> ZipMember:
    f.seek(info.header_offset)
    head = f.read(_LOCAL.size)
    if len(head) < _LOCAL.size:
        raise InputError(f"zip member {info.filename!r}: local header truncated", path=path)
    sig, _ver, flags, method, _t, _d, crc, csize, usize, nlen, xlen = _LOCAL.unpack(head)
    if sig != _LOCAL_SIG:
        raise InputError(f"zip member {info.filename!r}: no local header where the directory "
                         "points", path=path)  # fmt: skip
    raw_name = f.read(nlen)
    central = info.orig_filename.encode("utf-8" if info.flag_bits & 0x800 else "cp437")
    if raw_name != central:
        raise InputError(
            f"zip member {info.filename!r}: the local header names it "
            f"{raw_name.decode('utf-8', 'replace')!r}; readers would disagree",
            path=path,
        )
    if method != info.compress_type:
        raise InputError(f"zip member {info.filename!r}: compression differs between the local "
                         "header and the directory", path=path)  # fmt: skip
    if not flags & 0x8:  # no data descriptor: the local header carries CRC and sizes
        sizes_ok = (usize == info.file_size or usize == _ZIP64_LIMIT) and (
            csize == info.compress_size or csize == _ZIP64_LIMIT
        )
        if crc != info.CRC or not sizes_ok:
            raise InputError(
                f"zip member {info.filename!r}: CRC or sizes differ between the local header "
                "and the directory",
                path=path,
            )
    data_offset = info.header_offset + _LOCAL.size + nlen + xlen
    return ZipMember(
        info.filename,
        info.file_size,
        info.compress_size,
        method,
        info.header_offset,
        data_offset,
        bool(flags & 0x8),
        info.CRC,
    )


def verify_crc(path: str | os.PathLike[str], member: ZipMember) -> bool:
    """True when a member's bytes match its CRC-32 (readers that memory-map skip it)."""
    if member.method != zipfile.ZIP_STORED:
        with zipfile.ZipFile(path) as zf:
            try:
                zf.read(member.name)  # zipfile checks the CRC while inflating
            except ZIP_ERRORS:
                return False
        return True
    crc, remaining = 0, member.compressed
    with open(path, "rb") as f:
        f.seek(member.data_offset)
        while remaining:
            block = f.read(min(remaining, 1 << 22))
            if not block:
                return False
            crc = zlib.crc32(block, crc)
            remaining -= len(block)
    return crc == member.crc


def _short(e: BaseException) -> str:
    text = str(e).strip().splitlines()[0][:120] if str(e).strip() else type(e).__name__
    return text


# --------------------------------------------------------------------------- detection
_PICKLE_PROTO2 = b"\x80\x02"  # torch.save's legacy format always starts so


def is_zip(head: bytes) -> bool:
    """True when a file's first bytes are a zip local header (``.npz``, ``torch.save``,
    TorchScript and ``.pt2`` are all zips; a legacy ``torch.save`` pickle is not)."""
    return head[:4] == _LOCAL_SIG


def read_head(path: str | os.PathLike[str], size: int = 16) -> bytes:
    """A file's first ``size`` bytes (fewer when it is shorter)."""
    try:
        with open(path, "rb") as f:
            return f.read(size)
    except OSError as e:
        raise InputError(f"cannot read: {os_error_reason(e)}", path=path) from None


def is_json(path: str | os.PathLike[str], what: str = "file") -> bool:
    """Whether ``path`` holds a JSON document (sc-eval's results, selectors): its first
    non-blank byte is ``{``, or it is named ``*.json`` (so that a broken one is reported
    as broken JSON, not as an unknown predictions file)."""
    head = read_head(check_input_file(path, what), 64).lstrip()
    return head.startswith(b"{") or Path(path).suffix.lower() == ".json"


def detect(path: str | os.PathLike[str], what: str = "file") -> str:
    """What a file holds, from its bytes (not its suffix).

    Returns one of ``safetensors``, ``npz`` (a zip of ``.npy`` members),
    ``torch`` (a ``torch.save`` file, zip or legacy pickle), ``torchscript``,
    ``export`` (a ``torch.export`` ``.pt2``). Zip containers are checked with
    :func:`check_zip` on the way.
    """
    p = check_input_file(path, what)
    head = read_head(p)
    try:
        size = p.stat().st_size
    except OSError as e:
        raise InputError(f"cannot read: {os_error_reason(e)}", path=path) from None
    if is_zip(head):
        members = check_zip(p)
        names = [m.name for m in members]
        if all(n.endswith(".npy") for n in names):
            return "npz"
        require_single_root(names, path)
        inner = {n.split("/", 1)[1] for n in names}
        if "archive_format" in inner or any(n.startswith("models/") for n in inner):
            return "export"
        if "constants.pkl" in inner or any(n.startswith("code/") for n in inner):
            return "torchscript"
        if "data.pkl" in inner:
            return "torch"
        raise InputError(
            "unrecognised zip archive: expected an .npz predictions file, a torch.save "
            "checkpoint, a TorchScript archive or a torch.export .pt2",
            path=path,
        )
    # safetensors before pickles: its 8-byte header length may itself start with 0x80
    if len(head) >= 9 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") <= size - 8:
        return "safetensors"
    if head[:2] == _PICKLE_PROTO2 or head[:1] == b"\x80":
        return "torch"
    if head[:6] == b"\x93NUMPY":
        raise InputError(
            f"is a single .npy array, not a {what}: a predictions file holds the logits "
            "(or probs) and the labels together, e.g. "
            "numpy.savez('preds.npz', logits=logits, labels=labels)",
            path=path,
        )
    if size == 0:
        raise InputError(f"is empty, expected a {what}", path=path)
    raise InputError(
        f"unrecognised file kind: not a .safetensors, .npz or torch.save {what} "
        "(the first bytes match none of them)",
        path=path,
    )
