"""Tar files of the shards: deterministic members written with :mod:`tarfile`, read by a lean parser.

The writer fixes mtime, mode and owner, so the same inputs give byte-identical shards, readable by ``tar``,
``webdataset`` and Hugging Face ``datasets``. The reader (:func:`iter_tar_members`) is the only one the
toolkit uses: ``verify``, ``inspect`` and the training streams.
"""

from __future__ import annotations

import io
import tarfile
from collections.abc import Iterator
from pathlib import Path

TAR_BLOCK = 512


def member_size(n: int) -> int:
    """Bytes a member of ``n`` data bytes takes in a tar (header plus padded data)."""
    return TAR_BLOCK + -(-n // TAR_BLOCK) * TAR_BLOCK


def add_member(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    """Add a read-only regular file with fixed mtime and owner (deterministic bytes)."""
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = 0
    info.mode = 0o444
    info.uname = info.gname = "pda"
    tar.addfile(info, io.BytesIO(data))


def _octal(field: bytes) -> int:
    """A tar numeric header field: NUL/space-padded octal, or GNU base-256 when the high bit is set."""
    if field[0] & 0x80:
        return int.from_bytes(field[1:], "big")
    digits = field.replace(b"\0", b" ").strip()
    return int(digits, 8) if digits else 0


def _pax_path(data: bytes) -> str | None:
    """The ``path`` record of a pax extended header ("<len> path=<value>\\n" records), if any."""
    pos = 0
    while pos < len(data):
        length = int(data[pos : data.index(b" ", pos)])
        record = data[pos : pos + length]
        keyword, _, value = record[record.index(b" ") + 1 : -1].partition(b"=")
        if keyword == b"path":
            return value.decode("utf-8")
        pos += length
    return None


def iter_tar_members(path: str | Path) -> Iterator[tuple[str, bytes]]:
    """(member name, bytes) of each regular file of a tar, in file order, parsed without :mod:`tarfile`.

    Reads ustar/GNU/pax headers directly (about 4x cheaper per member than ``tarfile``, which matters to
    the training streams). A bad header checksum or a member cut short raises ``tarfile.ReadError``.
    """
    with open(path, "rb", buffering=1 << 16) as f:  # members larger than the buffer are read straight
        long_name: str | None = None
        offset = 0
        while True:
            header = f.read(TAR_BLOCK)
            if len(header) < TAR_BLOCK or not header.strip(b"\0"):
                if header.strip(b"\0"):
                    raise tarfile.ReadError(f"truncated tar header at byte {offset}")
                return  # end-of-archive marker (or a clean end of file, as tarfile accepts)
            stored = _octal(header[148:156])
            if stored != sum(header) - sum(header[148:156]) + 8 * 32:
                raise tarfile.ReadError(f"bad tar header checksum at byte {offset}")
            size = _octal(header[124:136])
            data = f.read(size)
            if len(data) < size:
                raise tarfile.ReadError(f"member at byte {offset} cut short ({len(data)} of {size} bytes)")
            pad = -size % TAR_BLOCK
            if pad:
                f.seek(pad, 1)
            offset += TAR_BLOCK + size + pad
            kind = header[156:157]
            if kind in (b"L", b"x"):
                long_name = data.rstrip(b"\0").decode("utf-8") if kind == b"L" else _pax_path(data)
                continue
            if kind in (b"0", b"\0", b"7"):
                name = header[:100].split(b"\0", 1)[0].decode("utf-8")
                if header[257:263] == b"ustar\0" and header[345] != 0:  # POSIX prefix (not GNU)
                    name = header[345:500].split(b"\0", 1)[0].decode("utf-8") + "/" + name
                yield long_name or name, data
            long_name = None


def iter_tar_samples(path: str | Path) -> Iterator[tuple[str, dict[str, bytes]]]:
    """(key, {extension: bytes}) for each sample of a shard, in file order; ``tarfile.ReadError`` on damage.

    A sample is the run of consecutive members sharing a key (file name up to its first dot).
    """
    key: str | None = None
    members: dict[str, bytes] = {}
    for name, data in iter_tar_members(path):
        stem, _, ext = name.rpartition("/")[2].partition(".")
        if stem != key:
            if key is not None:
                yield key, members
            key, members = stem, {}
        members[ext] = data
    if key is not None:
        yield key, members
