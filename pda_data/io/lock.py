"""One run per output folder: the ``.pda.lock`` file a writing command holds for its whole run.

Two runs writing one folder corrupt it (each resumes from, and rewrites, the other's files), so every command
that writes a folder takes its lock at its library entry (curation, merge, synthesis, pack, training). The
lock file is created with ``O_CREAT | O_EXCL`` and holds JSON naming its holder (pid, host, command, start
time); the holder also keeps an ``flock`` on it, so two runs can never both take over one stale lock. It is
removed when the run ends, on an error or Ctrl-C too. A lock left by a process that is gone (same host, no
such pid) is taken over with a one-line warning; any other raises :class:`LockError` naming the holder.
Taking the lock also removes the temp files killed writers left in the folder
(:func:`pda_data.io.files.remove_stale_temps`).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pda_data.io.files import ensure_folder, process_alive, remove_stale_temps

LOCK_NAME = ".pda.lock"
_COMMAND_CHARS = 120  # the holder's command line as recorded, at most
_ATTEMPTS = 3  # a holder that releases while we look at its lock: look again


class LockError(RuntimeError):
    """The folder is in use by another run; the message names the holder and what to do."""


def process_command() -> str:
    """This process's command line, as a lock records its holder (``pda-data crop-cosers raw --out x``)."""
    argv = [Path(sys.argv[0]).name if sys.argv and sys.argv[0] else "python", *sys.argv[1:]]
    text = " ".join(argv)
    return text if len(text) <= _COMMAND_CHARS else text[: _COMMAND_CHARS - 3] + "..."


@contextlib.contextmanager
def folder_lock(folder: str | Path, command: str | None = None) -> Iterator[Path]:
    """Hold ``folder``'s lock (creating the folder) for the block; yields the folder.

    ``command`` describes the holder to a second run (default: this process's command line). Raises
    :class:`LockError` when another live run holds it, and an OSError naming the folder when it cannot be
    created or written (a file in the way, permission, read-only or full disk). Taking over a stale lock
    prints one ``warning:`` line on stderr (a CLI's progress display shows it above the bar).
    """
    path = ensure_folder(folder) / LOCK_NAME
    record = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "command": command or process_command(),
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    fd = _acquire(path, record)
    try:
        remove_stale_temps(path.parent)
        yield path.parent
    finally:
        _release(fd, path)


def _acquire(path: Path, record: dict[str, Any]) -> int:
    """An open, flocked descriptor of the lock file, which now names this process."""
    for _ in range(_ATTEMPTS):
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            taken = _take_over(path, record)
            if taken is not None:
                return taken
            continue
        except OSError as exc:
            raise _about_folder(exc, path) from exc
        try:
            _write(fd, record, path)
            _flock(fd, blocking=True)  # only a run reading the fresh file can hold it, for a moment
        except BaseException:
            os.close(fd)
            path.unlink(missing_ok=True)
            raise
        return fd
    raise LockError(f"{path.parent}: its lock {path} keeps changing hands; try again")


def _take_over(path: Path, record: dict[str, Any]) -> int | None:
    """The existing lock's descriptor, taken over when its holder is gone; None when it vanished meanwhile."""
    try:
        fd = os.open(path, os.O_RDONLY)  # flock needs no write access: another user's lock is read too
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise _about_folder(exc, path) from exc
    try:
        if not _flock(fd, blocking=False):
            raise LockError(_in_use(path, _read(fd)))
        if not _same_file(fd, path):  # released (and maybe taken again) between our open and our flock
            os.close(fd)
            return None
        holder = _read(fd)
        if holder is None or not _gone(holder):
            raise LockError(_in_use(path, holder))
        print(f"warning: {path.parent}: taking over the lock of {_describe(holder)}: that process is gone",
              file=sys.stderr, flush=True)
        try:
            out = os.open(path, os.O_WRONLY)
        except OSError as exc:
            raise _about_folder(exc, path) from exc
        try:
            _write(out, record, path)
        finally:
            os.close(out)
    except BaseException:
        with contextlib.suppress(OSError):
            os.close(fd)
        raise
    return fd


def _release(fd: int, path: Path) -> None:
    """Remove the lock file (if it is still ours) and close it; never raises over the run's own error."""
    with contextlib.suppress(OSError):
        if _same_file(fd, path):
            path.unlink()
    with contextlib.suppress(OSError):
        os.close(fd)


def _flock(fd: int, blocking: bool) -> bool:
    """Take the flock; False when another process holds it. File systems without flock count as free."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX if blocking else fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError as exc:
        if exc.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS):
            raise
    return True


def _same_file(fd: int, path: Path) -> bool:
    try:
        mine, now = os.fstat(fd), os.stat(path)
    except OSError:
        return False
    return (mine.st_dev, mine.st_ino) == (now.st_dev, now.st_ino)


def _read(fd: int) -> dict[str, Any] | None:
    try:
        record = json.loads(os.pread(fd, 1 << 16, 0).decode("utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    return record if isinstance(record, dict) and isinstance(record.get("pid"), int) else None


def _write(fd: int, record: dict[str, Any], path: Path) -> None:
    data = (json.dumps(record) + "\n").encode("utf-8")
    try:
        os.ftruncate(fd, 0)
        if os.pwrite(fd, data, 0) != len(data):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
    except OSError as exc:
        raise _about_folder(exc, path) from exc


def _gone(holder: dict[str, Any]) -> bool:
    """Whether the holder is a process of this host that no longer exists (another host's: never known).

    Called with the lock's flock taken, so a record naming this very process is a reused pid (say, pid 1
    of a container again): had this process the lock, the flock would have been refused.
    """
    pid = int(holder["pid"])
    return holder.get("host") == socket.gethostname() and (pid == os.getpid() or not process_alive(pid))


def _describe(holder: dict[str, Any]) -> str:
    return (f"{holder.get('command', '?')} (pid {holder['pid']} on host {holder.get('host', '?')} since "
            f"{holder.get('started', '?')})")


def _in_use(path: Path, holder: dict[str, Any] | None) -> str:
    who = _describe(holder) if holder is not None else f"another run (its lock file {path} is unreadable)"
    return f"{path.parent} is in use by {who}; wait for it or remove {path} if that process is gone"


def _about_folder(exc: OSError, path: Path) -> OSError:
    """An OS error on the lock file as one about its folder: the user named the folder, not the lock."""
    return OSError(exc.errno, exc.strerror or str(exc), str(path.parent))
