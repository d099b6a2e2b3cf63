"""``verify``: the shard files against the index (size, sha256, sample count) and, deep, every sample."""

from __future__ import annotations

import tarfile
from collections.abc import Callable
from pathlib import Path

from pda_data.io.files import sha256_file
from pda_data.schema import SCHEMA_VERSION
from pda_data.shards.index import INDEX_NAME, Problem, read_index, shard_entries
from pda_data.shards.sample import check_sample
from pda_data.shards.tar import iter_tar_samples


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
        path = root / entry["name"]
        name = entry["name"]
        if on_shard is not None:
            on_shard(name)
        if not path.is_file():
            problems.append(Problem(name, "", "shard file is missing"))
            continue
        size = path.stat().st_size
        if size != entry["bytes"]:
            problems.append(Problem(name, "", f"size {size} bytes, index says {entry['bytes']}"))
        if sha256_file(path) != entry["sha256"]:
            problems.append(Problem(name, "", "sha256 differs from the index (corrupt or modified shard)"))
        fmt = index["roles"][role].get("image_format", "png")
        count = 0
        try:
            for key, members in iter_tar_samples(path):
                count += 1
                if deep:
                    problems += [Problem(name, key, msg) for msg in check_sample(role, members, fmt)]
        except (tarfile.TarError, OSError, EOFError) as exc:
            problems.append(Problem(name, "", f"unreadable tar after {count} samples ({exc})"))
            continue
        if count != entry["samples"]:
            problems.append(Problem(name, "", f"{count} samples, index says {entry['samples']}"))
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
        for split, split_info in info.get("splits", {}).items():
            total = sum(e["samples"] for e in split_info.get("shards", []))
            if total != split_info.get("samples"):
                problems.append(
                    Problem(
                        INDEX_NAME,
                        "",
                        f"{role}/{split} sample count "
                        f"{split_info.get('samples')} != sum over its shards {total}",
                    )
                )
    return problems, len(entries)
