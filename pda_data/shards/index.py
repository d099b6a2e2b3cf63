"""The shard set's index: ``SHARDS/index.json``, the roles and splits, and the paths of the shards.

Layout: ``SHARDS/<role>/<split>/<role>-<split>-%06d.tar`` plus ``SHARDS/index.json``, which lists for every
role its source, image format, seed and test fraction, and per split its shards (name, samples, bytes,
sha256). The streams and ``verify`` find shards through the index only.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pda_data.io.files import atomic_write_text
from pda_data.schema import ANIME56, HUMAN68, LandmarkSchema
from pda_data.shards.names import IMAGE_FORMATS, ROLES, SPLITS

INDEX_NAME = "index.json"
CLASSIFIER_ROLES: tuple[str, ...] = ("structure", "highlight")
ROLE_SCHEMA: dict[str, LandmarkSchema] = {
    "coser": HUMAN68,
    "human": HUMAN68,
    "anime": ANIME56,
    "structure": ANIME56,
    "highlight": ANIME56,
}
SHARD_RE = re.compile(r"^(?P<role>[a-z]+)-(?P<split>[a-z]+)-(?P<n>[0-9]{6})\.tar$")
SHA256_RE = re.compile(r"^[0-9a-f]{64}$")


class ShardError(ValueError):
    """A shard set (index or shard file) that cannot be used."""


@dataclass(frozen=True)
class Problem:
    """One problem with an input row or a shard sample; ``where`` is a file or shard, ``key`` may be ''."""

    where: str
    key: str
    message: str

    def __str__(self) -> str:
        return f"{self.where}" + (f" [{self.key}]" if self.key else "") + f": {self.message}"



def split_of(key: str, test_fraction: float) -> str:
    """``test`` when sha1(key) mapped to [0, 1) is below ``test_fraction``: stable as the data set grows."""
    h = int.from_bytes(hashlib.sha1(key.encode("utf-8")).digest()[:8], "big") / 2.0**64
    return "test" if h < test_fraction else "train"



def shard_path(root: str | Path, role: str, split: str, n: int) -> Path:
    """Path of shard ``n`` of a role/split."""
    return Path(root) / role / split / f"{role}-{split}-{n:06d}.tar"



def read_index(root: str | Path) -> dict[str, Any]:
    """Load ``SHARDS/index.json`` and check its structure (:func:`check_index`), so its readers can trust it.

    Raises ShardError naming the file (and the JSON path of a bad field) when missing or malformed.
    """
    path = Path(root) / INDEX_NAME
    try:
        index = json.loads(path.read_text("utf-8"))
    except FileNotFoundError as exc:
        raise ShardError(f"{path}: no shard index (run `pda-data pack` first)") from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise ShardError(f"{path}: unreadable shard index ({exc})") from exc
    return check_index(index, root)


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _typed(value: Any, kind: type, what: str, file: Path, where: str) -> Any:
    """``value`` when it is a ``kind`` (a bool is no int here), else ShardError naming ``where``."""
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise ShardError(f"{file}: {where} must be {what}, got {_shown(value)}")
    return value


def _field(obj: dict[str, Any], key: str, kind: type, what: str, file: Path, where: str) -> Any:
    """``obj[key]`` checked with :func:`_typed`; ShardError when the key is missing."""
    if key not in obj:
        raise ShardError(f"{file}: {where} has no {key!r}")
    return _typed(obj[key], kind, what, file, f"{where}.{key}")


def _count(obj: dict[str, Any], key: str, file: Path, where: str) -> int:
    value = _field(obj, key, int, "a non-negative integer", file, where)
    if value < 0:
        raise ShardError(f"{file}: {where}.{key} must be a non-negative integer, got {value}")
    return value


def _check_name(name: str, role: str, split: str, root: Path, file: Path, where: str) -> None:
    """A shard name must be ``<role>/<split>/<role>-<split>-NNNNNN.tar`` and resolve inside ``root``."""
    pattern = f"{role}/{split}/{role}-{split}-NNNNNN.tar"
    if name.startswith("/") or ".." in name.split("/") or "\\" in name:
        raise ShardError(f"{file}: {where} {name!r} is outside the shard folder (expected {pattern})")
    base = name.rpartition("/")[2]
    m = SHARD_RE.fullmatch(base)
    if name != f"{role}/{split}/{base}" or m is None or (m["role"], m["split"]) != (role, split):
        raise ShardError(f"{file}: {where} {name!r} is not a shard name of this split (expected {pattern})")
    try:
        inside = (root / name).resolve().is_relative_to(root.resolve())
    except (OSError, RuntimeError) as exc:  # a symlink loop
        raise ShardError(f"{file}: {where} {name!r} does not resolve ({exc})") from exc
    if not inside:
        raise ShardError(f"{file}: {where} {name!r} resolves outside the shard folder (a link?)")


def check_index(index: Any, root: str | Path) -> dict[str, Any]:
    """``index`` (parsed ``index.json`` of ``root``) when its structure is sound, else ShardError.

    Checks the types of every role (a known role: ``schema``, ``image_format``, ``splits``), split (a known
    split: ``samples``, ``shards``) and shard entry (``name``, ``samples``, ``bytes``, ``sha256``), and that
    each shard name is its split's ``<role>/<split>/<role>-<split>-NNNNNN.tar``, listed once, inside
    ``root``. The message names the file and the JSON path of the field:
    ``index.json: roles.human.splits.train.shards[0].name '../../etc/passwd' is outside the shard folder``.
    Counts that disagree (a split's samples against its shards') are for ``verify`` to report.
    """
    root = Path(root)
    file = root / INDEX_NAME
    if not isinstance(index, dict) or not isinstance(index.get("roles"), dict):
        raise ShardError(f"{file}: not a shard index (no 'roles' object)")
    seen: set[str] = set()
    for role, info in index["roles"].items():
        where = f"roles.{role}"
        if role not in ROLES:
            raise ShardError(f"{file}: {where} is not a role (roles: {', '.join(ROLES)})")
        _typed(info, dict, "an object", file, where)
        _field(info, "schema", str, "a string", file, where)
        fmt = _field(info, "image_format", str, "a string", file, where)
        if fmt not in IMAGE_FORMATS:
            raise ShardError(f"{file}: {where}.image_format {fmt!r} is not one of {', '.join(IMAGE_FORMATS)}")
        for split, split_info in _field(info, "splits", dict, "an object", file, where).items():
            at = f"{where}.splits.{split}"
            if split not in SPLITS:
                raise ShardError(f"{file}: {at} is not a split (splits: {', '.join(SPLITS)})")
            _typed(split_info, dict, "an object", file, at)
            _count(split_info, "samples", file, at)
            for i, entry in enumerate(_field(split_info, "shards", list, "a list", file, at)):
                here = f"{at}.shards[{i}]"
                _typed(entry, dict, "an object", file, here)
                name = _field(entry, "name", str, "a string", file, here)
                _check_name(name, role, split, root, file, f"{here}.name")
                if name in seen:
                    raise ShardError(f"{file}: {here}.name {name!r} is listed twice")
                seen.add(name)
                _count(entry, "samples", file, here)
                _count(entry, "bytes", file, here)
                digest = _field(entry, "sha256", str, "a string", file, here)
                if not SHA256_RE.fullmatch(digest):
                    raise ShardError(f"{file}: {here}.sha256 {_shown(digest)} is not 64 hex digits")
    return index


def write_index(root: str | Path, index: dict[str, Any]) -> None:
    """Write ``SHARDS/index.json`` atomically (sorted keys, so equal indexes are equal files)."""
    atomic_write_text(Path(root) / INDEX_NAME, json.dumps(index, indent=2, sort_keys=True) + "\n")


def shard_entries(
    index: dict[str, Any], role: str | None = None, split: str | None = None
) -> list[tuple[str, str, dict[str, Any]]]:
    """(role, split, entry) for every shard in the index, optionally for one role and/or split."""
    out = []
    for r, info in index["roles"].items():
        if role is not None and r != role:
            continue
        for s, split_info in info["splits"].items():
            if split is None or s == split:
                out += [(r, s, e) for e in split_info["shards"]]
    return out


def role_entries(index: dict[str, Any], root: str | Path, role: str, split: str) -> list[dict[str, Any]]:
    """The shard entries of a role's split; raises ShardError (naming the index) when there are none."""
    if role not in index["roles"]:
        packed = ", ".join(index["roles"]) or "none"
        raise ShardError(f"{Path(root) / INDEX_NAME}: no {role!r} shards (packed roles: {packed})")
    entries = [e for _, _, e in shard_entries(index, role, split)]
    if not entries:
        raise ShardError(f"{Path(root) / INDEX_NAME}: role {role!r} has no {split!r} shards")
    return entries


def shard_urls(root: str | Path, role: str, split: str = "train") -> list[str]:
    """Paths of a role's shards for one split, from the index; raises ShardError when there are none."""
    return [str(Path(root) / e["name"]) for e in role_entries(read_index(root), root, role, split)]
