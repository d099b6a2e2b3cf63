"""Tar files of the shards: deterministic members written with :mod:`tarfile`, read by one validating parser.

The writer fixes mtime, mode and owner, so the same inputs give byte-identical shards, readable by ``tar``,
``webdataset`` and Hugging Face ``datasets``. The reader (:func:`iter_tar_members`) is the only one the
toolkit uses (``verify``, ``inspect``, ``export-hf`` and the training streams). It trusts no header field: a
shard that is damaged, cut short or hostile raises :class:`TarDamage` naming the file, the byte offset and
the member, and the reader never reads or allocates more than the file holds.
"""

from __future__ import annotations

import io
import os
import tarfile
from collections.abc import Iterator
from pathlib import Path

from pda_data.shards.index import ShardError

TAR_BLOCK = 512
READ_BUFFER = 1 << 16  # bytes buffered per open shard; larger members are read straight into their bytes
REGULAR_TYPES = (b"0", b"\0", b"7")  # regular files (7: contiguous): the members the reader yields
_LONG_NAME, _PAX_MEMBER, _PAX_GLOBAL = b"L", b"x", b"g"
# Members whose data is read; any other type (links, devices, directories, FIFOs, GNU long link names,
# vendor extensions) is passed over unread.
_READ_TYPES = (*REGULAR_TYPES, _LONG_NAME, _PAX_MEMBER, _PAX_GLOBAL)
_OCTAL_DIGITS, _DECIMAL_DIGITS = b"01234567", b"0123456789"
_MAX_DIGITS = 20  # decimal digits of a pax length or size: 10^20 bytes is past any file


class TarDamage(ShardError, tarfile.ReadError):
    """A shard tar that cannot be read on: a bad header, a member cut short, a hostile name, an OS error.

    ``reason`` names the member and what is wrong; ``str()`` adds the file: ``PATH: member 'k.png' at byte
    1536 declares 2^70 bytes, 2048 left in the file``. Also a ``tarfile.ReadError``, like tarfile's own.
    """

    def __init__(self, message: str, *, path: str = "", offset: int = -1, member: str = "") -> None:
        super().__init__(f"{path}: {message}" if path else message)
        self.reason, self.path, self.offset, self.member = message, path, offset, member


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


def _count(n: int) -> str:
    """A byte count for a message: a large power of two as ``2^k`` (how hostile sizes are usually made)."""
    return f"2^{n.bit_length() - 1}" if n >= 1 << 32 and n & (n - 1) == 0 else str(n)


class _Damage(Exception):
    """A problem found inside one header; :func:`iter_tar_members` adds the file, offset and member."""


def _number(field: bytes, what: str) -> int:
    """A numeric header field: octal digits (NUL/space padded) or GNU base-256 (first byte 0x80).

    Anything else (a sign, an underscore, a negative base-256 value, a stray byte) is damage, not a number.
    """
    if field[0] == 0x80:
        return int.from_bytes(field[1:], "big")  # at most 2^88 for the size field: checked by the caller
    if field[0] & 0x80:
        raise _Damage(f"has a {what} field {field!r} that is neither octal nor positive base-256")
    digits = field.split(b"\0", 1)[0].strip(b" ")
    if digits.strip(_OCTAL_DIGITS):  # a byte other than 0-7 remains (strip stops at the first one)
        raise _Damage(f"has a {what} field {field!r} that is not octal")
    return int(digits, 8) if digits else 0


def _text(raw: bytes, what: str) -> str:
    """UTF-8 header text (a name or a pax value), or damage."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise _Damage(f"has a {what} {raw[:100]!r} that is not UTF-8") from None


def _checked_name(name: str) -> str:
    """A member name that stays inside the archive: not empty, relative, no ``..`` component, no NUL."""
    if not name or "\0" in name or name.startswith("/") or ".." in name.split("/"):
        raise _Damage(f"has a name {name!r} that is empty, absolute or leaves the archive")
    return name


def _pax_records(data: bytes) -> dict[bytes, bytes]:
    """The ``<length> <keyword>=<value>\\n`` records of a pax extended header, each checked."""
    records: dict[bytes, bytes] = {}
    pos = 0
    while data[pos:].strip(b"\0"):  # NUL padding after the last record is tolerated, as tarfile does
        space = data.find(b" ", pos, pos + _MAX_DIGITS + 1)
        digits = data[pos:space] if space > pos else b""
        if not digits or digits.strip(_DECIMAL_DIGITS):
            raise _Damage(f"has a pax record at offset {pos} without a decimal length")
        length = int(digits)
        record = data[space + 1 : pos + length]
        if pos + length > len(data) or length <= space - pos + 1 or not record.endswith(b"\n"):
            raise _Damage(f"has a pax record at offset {pos} of {length} bytes not ending in a newline")
        keyword, eq, value = record[:-1].partition(b"=")
        if not eq or not keyword:
            raise _Damage(f"has a pax record at offset {pos} that is not 'keyword=value'")
        records[keyword] = value
        pos += length
    return records


def _pax_size(records: dict[bytes, bytes]) -> int | None:
    """The ``size`` a pax header sets for the next member (members over 8 GiB), if any."""
    value = records.get(b"size")
    if value is None:
        return None
    if not value or len(value) > _MAX_DIGITS or value.strip(_DECIMAL_DIGITS):
        raise _Damage(f"has a pax size {value[:40]!r} that is not a decimal number")
    return int(value)


def _header_name(header: bytes) -> bytes:
    """The raw member name of a header: the name field, with the POSIX ustar prefix when there is one."""
    name = header[:100].split(b"\0", 1)[0]
    if header[257:263] == b"ustar\0" and header[345] != 0:  # POSIX prefix (GNU headers have none)
        name = header[345:500].split(b"\0", 1)[0] + b"/" + name
    return name


def _check_sum(header: bytes) -> None:
    """The header checksum: unsigned byte sum with the field as spaces (or the signed sum old tars used)."""
    stored = _number(header[148:156], "checksum")
    unsigned = sum(header) - sum(header[148:156]) + 8 * 32
    if stored != unsigned:
        high = sum(b > 127 for b in header[:148] + header[156:])
        if stored != unsigned - 256 * high:
            raise _Damage(f"has a bad tar header checksum ({stored} stored, {unsigned} computed)")


def _read_member(
    f: io.BufferedReader, header: bytes, left: int, size: int | None
) -> tuple[bytes, bytes, int]:
    """(type, data, bytes taken after the header) of the member whose header was just read.

    ``left``: bytes of the file after the header; ``size``: a pax header's size for this member. The data
    of the members the reader uses is read (never more than ``left``), that of skipped ones passed over.
    """
    _check_sum(header)
    if size is None:
        size = _number(header[124:136], "size")
    if size > left:
        raise _Damage(f"declares {_count(size)} bytes, {left} left in the file (cut short or a corrupt size)")
    kind = header[156:157]
    if kind in _READ_TYPES:
        data = f.read(size)
        if len(data) < size:  # the file shrank while it was read
            raise _Damage(f"was cut short ({len(data)} of {size} bytes)")
    else:
        data = b""
        f.seek(size, os.SEEK_CUR)
    pad = -size % TAR_BLOCK
    if pad:
        f.seek(pad, os.SEEK_CUR)
    return kind, data, size + pad


def iter_tar_members(path: str | Path) -> Iterator[tuple[str, bytes]]:
    """(member name, bytes) of each regular file of a tar, in file order; :class:`TarDamage` on damage.

    Reads ustar/GNU/pax headers directly (about 4x cheaper per member than ``tarfile``, which matters to the
    training streams) and checks every field it uses: the checksum; sizes (octal digits, or base-256) within
    the bytes left in the file, so nothing larger than the file is ever read; names (UTF-8, relative, no
    ``..``); GNU long names and pax records (lengths, ``keyword=value``, UTF-8 ``path``, decimal ``size``).
    Regular members (types 0, NUL, 7) are yielded; links, devices, directories and other types are skipped.
    The end-of-archive block, or a clean end of the file (as tarfile accepts), ends the iteration.
    """
    where = str(path)
    try:
        f = open(path, "rb", buffering=READ_BUFFER)  # noqa: SIM115 - a with block follows at once
    except OSError as exc:
        raise TarDamage(f"cannot be opened ({exc.strerror or exc})", path=where, offset=0) from exc
    with f:
        try:
            yield from _members(f, os.fstat(f.fileno()).st_size, where)
        except OSError as exc:
            raise TarDamage(f"read failed ({exc.strerror or exc})", path=where) from exc


def _members(f: io.BufferedReader, file_size: int, where: str) -> Iterator[tuple[str, bytes]]:
    long_name: str | None = None  # from a GNU long name or pax header, for the next member
    pax_size: int | None = None
    offset = 0
    while True:
        header = f.read(TAR_BLOCK)
        if len(header) < TAR_BLOCK or not header.strip(b"\0"):
            if header.strip(b"\0"):
                raise TarDamage(f"truncated tar header at byte {offset} ({len(header)} of {TAR_BLOCK} bytes)",
                                path=where, offset=offset)
            return  # end-of-archive marker (or a clean end of file, as tarfile accepts)
        name, named = None, long_name  # ``named``: this member's long name, for a message
        try:
            kind, data, taken = _read_member(f, header, file_size - offset - TAR_BLOCK, pax_size)
            if kind == _LONG_NAME:
                long_name, pax_size = _text(data.split(b"\0", 1)[0], "GNU long name"), None
            elif kind == _PAX_MEMBER:
                records = _pax_records(data)
                pax_path = records.get(b"path")
                long_name = _text(pax_path, "pax path") if pax_path is not None else None
                pax_size = _pax_size(records)
            elif kind == _PAX_GLOBAL:
                _pax_records(data)  # checked; its values do not name members
            else:
                if kind in REGULAR_TYPES:
                    name = _checked_name(long_name or _text(_header_name(header), "name"))
                long_name, pax_size = None, None
        except _Damage as exc:
            member = named or _header_name(header).decode("utf-8", "replace")
            what = f"member {member!r} at byte {offset}" if member else f"member at byte {offset}"
            raise TarDamage(f"{what} {exc}", path=where, offset=offset, member=member) from None
        if name is not None:
            yield name, data
        offset += TAR_BLOCK + taken


def iter_tar_samples(path: str | Path) -> Iterator[tuple[str, dict[str, bytes]]]:
    """(key, {extension: bytes}) for each sample of a shard, in file order; :class:`TarDamage` on damage.

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
