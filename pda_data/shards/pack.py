"""``pack``: the rows of the role tables into train/test shards, deterministically, and the index.

Splits follow :func:`~pda_data.shards.index.split_of`; samples are shuffled across shards with a seed. Each
shard is written under a temporary name and renamed when complete, so an interrupted pack leaves no
partial shard (its temp files go when the next writing command locks the folder, :mod:`pda_data.io.lock`).
Unusable inputs are skipped and returned as problems.
"""

from __future__ import annotations

import tarfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pda_data.io.files import atomic_path, sha256_file
from pda_data.io.images import ImageError
from pda_data.io.lock import folder_lock
from pda_data.schema import SCHEMA_VERSION
from pda_data.shards.index import (
    INDEX_NAME,
    ROLE_SCHEMA,
    SHARD_RE,
    Problem,
    read_index,
    shard_path,
    split_of,
    write_index,
)
from pda_data.shards.items import role_items
from pda_data.shards.names import IMAGE_FORMATS, ROLES, SPLITS, pack_command
from pda_data.shards.sample import PackItem, encode_sample
from pda_data.shards.tar import TAR_BLOCK, add_member, member_size


@dataclass
class PackResult:
    """What :func:`pack` did: the index it wrote and every input it skipped."""

    index: dict[str, Any]
    problems: list[Problem] = field(default_factory=list)



def write_shards(
    samples: Iterable[tuple[str, bytes, bytes]],
    root: str | Path,
    role: str,
    split: str,
    *,
    image_format: str,
    shard_size: int,
    max_shard_bytes: int,
) -> list[dict[str, Any]]:
    """Write (key, image, json) samples into shards of at most ``shard_size`` samples and ``max_shard_bytes``.

    Each shard is written under a temporary name and renamed when complete; returns the index entries.
    """
    entries: list[dict[str, Any]] = []
    it = iter(samples)
    pending = next(it, None)
    while pending is not None:
        path = shard_path(root, role, split, len(entries))
        count = 0
        size = 2 * TAR_BLOCK  # end-of-archive marker
        with atomic_path(path) as tmp:
            with tarfile.open(tmp, "w", format=tarfile.USTAR_FORMAT) as tar:
                while pending is not None:
                    key, image, meta = pending
                    need = member_size(len(image)) + member_size(len(meta))
                    if count and (count >= shard_size or size + need > max_shard_bytes):
                        break
                    add_member(tar, f"{key}.{image_format}", image)
                    add_member(tar, f"{key}.json", meta)
                    count += 1
                    size += need
                    pending = next(it, None)
            entries.append(
                {
                    "name": path.relative_to(root).as_posix(),
                    "samples": count,
                    "bytes": tmp.stat().st_size,
                    "sha256": sha256_file(tmp),
                }
            )
    return entries



def pack(
    out: str | Path,
    sources: dict[str, str | Path],
    *,
    test_fraction: float = 0.1,
    shard_size: int = 1000,
    max_shard_bytes: int = 1 << 30,
    image_format: str = "png",
    seed: int = 0,
    on_sample: Callable[[str], None] | None = None,
) -> PackResult:
    """Pack each ``sources[role]`` folder/file into train/test shards under ``out`` and (re)write the index.

    Roles not in ``sources`` keep their entries from an existing index, so roles can be packed one at a time.
    Splits follow :func:`split_of`; samples are shuffled across shards with ``seed``. Unusable inputs are
    skipped and returned as problems. ``on_sample(role)`` is called once per input item (progress). The
    index records the equivalent command line (:func:`pda_data.shards.names.pack_command`). ``out`` is
    locked for the pack.
    """
    unknown = set(sources) - set(ROLES)
    if unknown:
        raise ValueError(f"unknown role(s) {sorted(unknown)}; roles are {', '.join(ROLES)}")
    if image_format not in IMAGE_FORMATS:
        raise ValueError(f"image format {image_format!r} is not one of {IMAGE_FORMATS}")
    if not 0.0 <= test_fraction < 1.0:
        raise ValueError(f"test fraction {test_fraction} outside [0, 1)")
    if shard_size < 1 or max_shard_bytes < 1:
        raise ValueError("shard size and max shard bytes must be positive")
    command = pack_command(
        out,
        sources,
        test_fraction=test_fraction,
        shard_size=shard_size,
        max_shard_bytes=max_shard_bytes,
        image_format=image_format,
        seed=seed,
    )
    with folder_lock(out) as root:
        return _pack(root, sources, command, test_fraction, shard_size, max_shard_bytes, image_format, seed,
                     on_sample)


def _pack(
    root: Path,
    sources: dict[str, str | Path],
    command: str,
    test_fraction: float,
    shard_size: int,
    max_shard_bytes: int,
    image_format: str,
    seed: int,
    on_sample: Callable[[str], None] | None,
) -> PackResult:
    """:func:`pack` with the lock of ``root`` held."""
    index_path = root / INDEX_NAME
    index = read_index(root) if index_path.is_file() else {"roles": {}}
    problems: list[Problem] = []
    for role in ROLES:
        if role not in sources:
            continue
        items, role_problems = role_items(role, sources[role])
        splits: dict[str, Any] = {}
        for split_n, split in enumerate(SPLITS):
            chosen = sorted(
                (it for it in items if split_of(it.key, test_fraction) == split), key=lambda it: it.key
            )
            order = np.random.default_rng([seed, ROLES.index(role), split_n]).permutation(len(chosen))
            entries = write_shards(
                _encoded(role, [chosen[i] for i in order], image_format, role_problems, on_sample),
                root,
                role,
                split,
                image_format=image_format,
                shard_size=shard_size,
                max_shard_bytes=max_shard_bytes,
            )
            _remove_stale(root / role / split, {e["name"] for e in entries}, root)
            splits[split] = {"samples": sum(e["samples"] for e in entries), "shards": entries}
        index["roles"][role] = {
            "schema": ROLE_SCHEMA[role].name,
            "source": str(sources[role]),
            "image_format": image_format,
            "seed": seed,
            "test_fraction": test_fraction,
            "skipped": len(role_problems),
            "command": command,
            "splits": splits,
        }
        problems += role_problems
    index.update(schema_version=SCHEMA_VERSION, command=command, format="webdataset")
    write_index(root, index)
    return PackResult(index, problems)


def _encoded(
    role: str,
    items: list[PackItem],
    image_format: str,
    problems: list[Problem],
    on_sample: Callable[[str], None] | None,
) -> Iterator[tuple[str, bytes, bytes]]:
    for item in items:
        try:
            yield encode_sample(role, item, image_format)
        except (ImageError, ValueError, OSError) as exc:
            reason = str(exc).removeprefix(f"{item.image_path}: ")
            problems.append(Problem(str(item.image_path), item.key, reason))
        finally:
            if on_sample is not None:
                on_sample(role)


def _remove_stale(folder: Path, keep: set[str], root: Path) -> None:
    """Delete shards of an earlier, larger pack (temp files of an interrupted one went with the lock)."""
    if not folder.is_dir():
        return
    for f in folder.iterdir():
        if SHARD_RE.match(f.name) and f.relative_to(root).as_posix() not in keep:
            f.unlink()

