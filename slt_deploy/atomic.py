"""Atomic writes of files and folders.

A file: a temporary file in the target's folder, fsync, then one rename. A folder (the C
export): the new folder is written next to the old one, then the two are swapped in one step
with Linux's ``renameat2(RENAME_EXCHANGE)`` (through ctypes) and the old one removed; where the
kernel or file system lacks it, the old folder is renamed aside (``.NAME.sltPID-old``) and the new
one renamed in, and the next write to the same destination puts the old one back if a kill came
between the two renames. So a kill at any moment leaves the old or the complete new output.

Temporaries are named ``.NAME.slt<pid>-...``: a failed write removes its own, and every write first
removes those of processes that no longer run (a killed export left ``.NAME.XXXX/`` folders and
``.NAME.XXXX.tmp`` files nobody cleaned). Only regular files and folders are replaced: a symlink,
device node, FIFO or socket at the destination is refused (``-o /dev/...`` replaced the node). A
replaced file keeps its permission bits; a new one gets 0644.

A folder is replaced only if slt wrote it: :func:`seal_folder` stores ``.slt-manifest.json`` (the
sha256 of every file) in each folder slt writes, and :func:`replace_folder` refuses a non-empty
destination whose files are not exactly those the manifest lists, unchanged (a file the user
added or edited would be lost; a folder without a manifest is not slt's).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import hashlib
import json
import os
import re
import shutil
import stat
import tempfile

from .errors import SltError

_RENAME_EXCHANGE = 2
MANIFEST = ".slt-manifest.json"
_STALE = re.compile(r"slt(\d+)-")


def temp_prefix(path: str | os.PathLike[str]) -> str:
    """Prefix of this process's temporaries for ``path``: ``.NAME.slt<pid>-``."""
    return f".{os.path.basename(os.fsdecode(os.fspath(path)))}.slt{os.getpid()}-"


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


def clean_stale(path: str | os.PathLike[str]) -> None:
    """Remove temporaries of ``path`` left by processes that no longer run; put back a folder left
    aside (``-old``) by a kill between the two renames of the fallback swap."""
    path = os.path.abspath(os.fsdecode(os.fspath(path)))
    directory, name = os.path.split(path)
    head = f".{name}.slt"
    try:
        entries = [e for e in os.listdir(directory) if e.startswith(head)]
    except OSError:
        return
    for entry in sorted(entries, key=lambda e: not e.endswith("-old")):  # recover first, then clean
        m = _STALE.match(entry[len(f".{name}."):])
        if not m or _alive(int(m.group(1))):
            continue
        full = os.path.join(directory, entry)
        with contextlib.suppress(OSError):
            if entry.endswith("-old") and not os.path.lexists(path):
                os.rename(full, path)
                continue
            if os.path.isdir(full) and not os.path.islink(full):
                shutil.rmtree(full, ignore_errors=True)
            else:
                os.unlink(full)


def refuse_special(path: str, what: str = "a file") -> os.stat_result | None:
    """The ``lstat`` of ``path`` (None if absent), refusing symlinks and anything not a regular file or folder."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise SltError(f"cannot write '{path}': {exc.strerror or exc}") from None
    if stat.S_ISLNK(st.st_mode):
        raise SltError(f"cannot write '{path}': it is a symbolic link; slt replaces only {what} it can own, give "
                       "another path")
    if not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)):
        raise SltError(f"cannot write '{path}': it is a device, FIFO or socket, not {what}; give another path")
    return st


def _exchange(a: str, b: str) -> bool:
    """Swap two paths in one step (Linux renameat2 RENAME_EXCHANGE); False where unsupported."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    at_fdcwd = -100
    if fn(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.EXDEV):
        return False
    raise OSError(err, os.strerror(err), b)


def _sha256(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def seal_folder(folder: str | os.PathLike[str]) -> None:
    """Write ``MANIFEST`` into a folder slt has just written: ``{"written_by": "slt-deploy",
    "files": {name: sha256}}`` over its regular files (sub-folders are not allowed)."""
    folder = os.fsdecode(os.fspath(folder))
    files = {}
    for name in sorted(os.listdir(folder)):
        full = os.path.join(folder, name)
        if name == MANIFEST:
            continue
        if os.path.islink(full) or not os.path.isfile(full):
            raise SltError(f"internal: {full} is not a regular file; slt seals only folders of files")
        files[name] = _sha256(full)
    with open(os.path.join(folder, MANIFEST), "w", encoding="utf-8") as f:
        json.dump({"written_by": "slt-deploy", "files": files}, f, indent=1, sort_keys=True)
        f.write("\n")


def foreign_entry(folder: str) -> str | None:
    """Why ``folder`` (an existing folder) is not one slt wrote, or None if it is, or is empty:
    every entry must be listed in its ``MANIFEST`` with an unchanged sha256."""
    entries = sorted(os.listdir(folder))
    if not entries:
        return None
    try:
        with open(os.path.join(folder, MANIFEST), "rb") as f:
            files = json.loads(f.read(1 << 20).decode("utf-8"))["files"]
        assert isinstance(files, dict)
    except (OSError, ValueError, KeyError, TypeError, AssertionError, RecursionError):
        return f"it has no readable {MANIFEST} (slt writes one in every folder it writes), so slt did not write it"
    for name in entries:
        full = os.path.join(folder, name)
        if name == MANIFEST:
            continue
        if name not in files or os.path.islink(full) or not os.path.isfile(full):
            return f"it holds '{name}', which slt did not write"
        if _sha256(full) != files[name]:
            return f"'{name}' was changed after slt wrote it"
    return None


def replace_folder(tmp: str | os.PathLike[str], out: str | os.PathLike[str]) -> None:
    """Put the finished folder ``tmp`` at ``out`` in one step (see the module doc); removes the old one.

    ``tmp`` is sealed (:func:`seal_folder`); a non-empty ``out`` that slt did not write is refused."""
    tmp, out = os.fsdecode(os.fspath(tmp)), os.fsdecode(os.fspath(out))
    st = refuse_special(out, "a folder")
    if st is not None and not stat.S_ISDIR(st.st_mode):
        raise SltError(f"cannot write '{out}': it is a file, not a folder")
    if st is not None and (why := foreign_entry(out)) is not None:
        raise SltError(f"will not replace the folder '{out}': {why}; remove it yourself or give another folder")
    seal_folder(tmp)
    if st is None:
        os.rename(tmp, out)
    elif _exchange(tmp, out):
        shutil.rmtree(tmp, ignore_errors=True)  # tmp now holds the old folder
    else:
        old = os.path.join(os.path.dirname(os.path.abspath(out)), temp_prefix(out) + "old")
        os.rename(out, old)
        os.rename(tmp, out)
        shutil.rmtree(old, ignore_errors=True)
    _fsync_directory(os.path.dirname(os.path.abspath(out)))


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` atomically; an OS failure becomes an :class:`SltError`."""
    path = os.fsdecode(os.fspath(path))
    directory = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path) and not os.path.islink(path):
        raise SltError(f"cannot write '{path}': it is a directory; give a file path")
    refuse_special(path)
    clean_stale(path)
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        mode = 0o644
    try:
        fd, tmp = tempfile.mkstemp(prefix=temp_prefix(path), suffix=".tmp", dir=directory)
    except OSError as exc:
        raise SltError(f"cannot write '{path}': {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise SltError(f"cannot write '{path}': {exc.strerror or exc}") from None
        raise
    _fsync_directory(directory)


def _fsync_directory(directory: str) -> None:
    """Make the rename durable where the OS allows it (best effort)."""
    with contextlib.suppress(OSError, AttributeError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
