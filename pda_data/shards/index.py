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

INDEX_NAME = "index.json"
CLASSIFIER_ROLES: tuple[str, ...] = ("structure", "highlight")
ROLE_SCHEMA: dict[str, LandmarkSchema] = {
    "coser": HUMAN68,
    "human": HUMAN68,
    "anime": ANIME56,
    "structure": ANIME56,
    "highlight": ANIME56,
}
SHARD_RE = re.compile(r"^(?P<role>[a-z]+)-(?P<split>[a-z]+)-(?P<n>\d{6})\.tar$")


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
    """Load ``SHARDS/index.json``; raises ShardError naming the file when missing or malformed."""
    path = Path(root) / INDEX_NAME
    try:
        index = json.loads(path.read_text("utf-8"))
    except FileNotFoundError as exc:
        raise ShardError(f"{path}: no shard index (run `pda-data pack` first)") from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ShardError(f"{path}: unreadable shard index ({exc})") from exc
    if not isinstance(index, dict) or not isinstance(index.get("roles"), dict):
        raise ShardError(f"{path}: not a shard index (no 'roles')")
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
        for s, split_info in info.get("splits", {}).items():
            if split is None or s == split:
                out += [(r, s, e) for e in split_info.get("shards", [])]
    return out


def shard_urls(root: str | Path, role: str, split: str = "train") -> list[str]:
    """Paths of a role's shards for one split, from the index; raises ShardError when there are none."""
    index = read_index(root)
    if role not in index["roles"]:
        packed = ", ".join(index["roles"]) or "none"
        raise ShardError(f"{Path(root) / INDEX_NAME}: no {role!r} shards (packed roles: {packed})")
    urls = [str(Path(root) / e["name"]) for _, _, e in shard_entries(index, role, split)]
    if not urls:
        raise ShardError(f"{Path(root) / INDEX_NAME}: role {role!r} has no {split!r} shards")
    return urls

