"""``verify``: the shard files against the index (size, sha256, sample count) and, deep, every sample."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from pda_data.io.files import sha256_file
from pda_data.schema import SCHEMA_VERSION
from pda_data.shards.index import INDEX_NAME, Problem, read_index, shard_entries
from pda_data.shards.sample import check_sample
from pda_data.shards.tar import TarDamage, iter_tar_samples


def _check_shard(path: Path, entry: dict[str, Any], role: str, fmt: str, deep: bool) -> list[Problem]:
    """The problems of one shard file against its index entry (and of its samples, when ``deep``)."""
    name = entry["name"]
    if not path.is_file():
        return [Problem(name, "", "shard file is missing")]
    problems: list[Problem] = []
    try:
        size = path.stat().st_size
        digest = sha256_file(path)
    except OSError as exc:
        return [Problem(name, "", f"unreadable shard file ({exc.strerror or exc})")]
    if size != entry["bytes"]:
        problems.append(Problem(name, "", f"size {size} bytes, index says {entry['bytes']}"))
    if digest != entry["sha256"]:
        problems.append(Problem(name, "", "sha256 differs from the index (corrupt or modified shard)"))
    count = 0
    try:
        for key, members in iter_tar_samples(path):
            count += 1
            if deep:
                problems += [Problem(name, key, msg) for msg in check_sample(role, members, fmt)]
    except TarDamage as exc:
        return [*problems, Problem(name, "", f"unreadable tar after {count} samples: {exc.reason}")]
    if count != entry["samples"]:
        problems.append(Problem(name, "", f"{count} samples, index says {entry['samples']}"))
    return problems


def verify(
    root: str | Path, deep: bool = False, on_shard: Callable[[str], None] | None = None
) -> tuple[list[Problem], int]:
    """Check the index against the shard files (existence, byte size, sha256, sample count).

    With ``deep`` every sample is decoded and its metadata validated (:func:`check_sample`). Returns the
    problems (each naming the shard, and the key for sample problems) and the number of shards checked.
    """
    root = Path(root)
    index = read_index(root)
    problems: list[Problem] = []
    entries = shard_entries(index)
    for role, _split, entry in entries:
        name = entry["name"]
        if on_shard is not None:
            on_shard(name)
        problems += _check_shard(root / name, entry, role, index["roles"][role]["image_format"], deep)
    if index.get("schema_version") != SCHEMA_VERSION:
        problems.append(
            Problem(
                INDEX_NAME,
                "",
                f"schema version {index.get('schema_version')!r}, this toolkit reads {SCHEMA_VERSION}",
            )
        )
    listed = {e["name"] for _, _, e in entries}
    for f in sorted(root.glob("*/*/*.tar")):
        rel = f.relative_to(root).as_posix()
        if rel not in listed:
            problems.append(Problem(rel, "", "shard file is not in the index"))
    for role, info in index["roles"].items():
        for split, split_info in info["splits"].items():
            total, listed_total = sum(e["samples"] for e in split_info["shards"]), split_info["samples"]
            if total != listed_total:
                message = f"{role}/{split} sample count {listed_total} != sum over its shards {total}"
                problems.append(Problem(INDEX_NAME, "", message))
    return problems, len(entries)
