"""File-system edges: atomic writes and content hashes.

Nothing the toolkit writes is ever left half-written: data goes to a temporary name in the target
folder and is renamed into place, which is atomic on POSIX file systems. A kill between the two leaves the
temporary file (``.NAME.PID.XXXXXXXX.tmp``); the next writing command removes it
(:func:`remove_stale_temps`, called when it takes the folder's lock, :mod:`pda_data.io.lock`).

Untrusted inputs are read with :func:`read_regular_file`: opened once, checked, then read, never blocking.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

_CHUNK = 1 << 20
# mkstemp creates files readable by their owner only; finished files get the usual umask-based mode.
_UMASK = os.umask(0)
os.umask(_UMASK)
_FILE_MODE = 0o666 & ~_UMASK


TEMP_SUFFIX = ".tmp"


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds.

    The temporary name holds the writer's pid (``.NAME.PID.XXXXXXXX.tmp``), so a cleanup can tell a live
    writer's file from a killed one's. An OS error while writing (disk full, permission) names ``path``.
    """
    target = Path(path)
    ensure_folder(target.parent)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.{os.getpid()}.", suffix=TEMP_SUFFIX,
                                   dir=target.parent)
    except OSError as exc:
        raise _naming(exc, target) from exc
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, _FILE_MODE)
        os.replace(tmp_path, target)
    except OSError as exc:
        if exc.filename not in (None, tmp):
            raise  # about another file (a source read inside the block): already named
        raise _naming(exc, target) from exc
    finally:
        tmp_path.unlink(missing_ok=True)


def _naming(exc: OSError, path: Path) -> OSError:
    """``exc`` as the same kind of OS error about ``path`` (the file the user asked for, not a temp name)."""
    return OSError(exc.errno, exc.strerror or str(exc), str(path))


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def sha256_bytes(data: bytes) -> str:
    """Hex sha256 of a byte string."""
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file, read in chunks so large files use constant memory."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


# --------------------------------------------------------------------------------------------- reading inputs

# Why read_regular_file refuses a path: codes manifests record (pda_data.io.images.REASONS has their text).
NOT_REGULAR_FILE, TOO_LARGE, UNREADABLE = "not_regular_file", "too_large", "unreadable"
_KINDS = {stat.S_IFIFO: "FIFO", stat.S_IFCHR: "character device", stat.S_IFBLK: "block device",
          stat.S_IFDIR: "folder", stat.S_IFSOCK: "socket"}


class RefusedFile(OSError):
    """A path :func:`read_regular_file` would not read; ``reason`` is one of its codes, ``detail`` says what
    was found (``FIFO``, ``300 bytes > 100``, ``Permission denied``)."""

    def __init__(self, path: str | Path, reason: str, detail: str) -> None:
        self.path = os.fsdecode(path)
        self.reason = reason
        self.detail = detail
        super().__init__(f"{self.path}: {reason} ({detail})")


def _read_at_most(fd: int, limit: int) -> bytes:
    chunks: list[bytes] = []
    while limit > 0 and (chunk := os.read(fd, min(_CHUNK, limit))):
        chunks.append(chunk)
        limit -= len(chunk)
    return b"".join(chunks)


def read_regular_file(path: str | Path, max_bytes: int) -> bytes:
    """The bytes of ``path``, which is opened once and must be a regular file of at most ``max_bytes``.

    Untrusted inputs may be FIFOs or devices (a ``.jpg`` linked to ``/dev/zero``): the open does not block
    (``O_NONBLOCK``), the type and size come from ``fstat`` of that open file, and at most ``max_bytes + 1``
    bytes are ever read, so a file that grows after the check is refused too. Raises :class:`RefusedFile`.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError as exc:
        raise RefusedFile(path, UNREADABLE, exc.strerror or str(exc)) from exc
    try:
        try:
            info = os.fstat(fd)
            regular = stat.S_ISREG(info.st_mode)
            data = _read_at_most(fd, max_bytes + 1) if regular and info.st_size <= max_bytes else b""
        except OSError as exc:
            raise RefusedFile(path, UNREADABLE, exc.strerror or str(exc)) from exc
    finally:
        os.close(fd)
    if not regular:
        raise RefusedFile(path, NOT_REGULAR_FILE, _KINDS.get(stat.S_IFMT(info.st_mode), "special file"))
    size = max(info.st_size, len(data))
    if size > max_bytes:
        raise RefusedFile(path, TOO_LARGE, f"{size} bytes > {max_bytes}")
    return data
def ensure_folder(path: str | Path) -> Path:
    """Create folder ``path`` and its parents; a file where a folder should be raises NotADirectoryError
    naming the path (``out: Not a directory (a file is in the way)``)."""
    folder = Path(path)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError) as exc:
        blocker = next((p for p in (folder, *folder.parents) if p.exists() and not p.is_dir()), folder)
        why = "a file is in the way" if blocker == folder else f"{blocker} is a file"
        raise NotADirectoryError(errno.ENOTDIR, f"{os.strerror(errno.ENOTDIR)} ({why})", str(folder)) from exc
    return folder


def process_alive(pid: int) -> bool:
    """Whether a process with this pid runs on this machine (a lock holder, a temp file's writer)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        return True
    return True


# atomic_path's temp names: ``.NAME.PID.RANDOM.tmp`` (``.NAME.RANDOM.tmp`` before the pid was added).
_TEMP_NAME = re.compile(r"^\..+\.[a-z0-9_]+" + re.escape(TEMP_SUFFIX) + "$")
_TEMP_PID = re.compile(r"\.(\d+)\.[a-z0-9_]+" + re.escape(TEMP_SUFFIX) + "$")


def remove_stale_temps(folder: str | Path) -> int:
    """Delete the temp files killed writers left under ``folder`` (atomic_path's ``.NAME.PID.RANDOM.tmp``);
    returns how many. Call it holding the folder's lock: no other run writes there then. A temp file of
    another live process (a command writing a subfolder) is kept; one of this process is not in flight.
    """
    removed = 0
    for root, _, files in os.walk(folder):
        for name in files:
            if not _TEMP_NAME.match(name):
                continue
            match = _TEMP_PID.search(name)
            pid = int(match.group(1)) if match else 0
            if pid != os.getpid() and process_alive(pid):
                continue
            with contextlib.suppress(FileNotFoundError):
                (Path(root) / name).unlink()
                removed += 1
    return removed
