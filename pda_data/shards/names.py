"""The vocabulary of a shard set: roles, splits, image formats, and the ``pda-data pack`` command line.

Apart from the shard code (no cv2 or pandas) so that the command-line help lists the choices cheaply.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from pathlib import Path

ROLES: tuple[str, ...] = ("coser", "human", "anime", "structure", "highlight")
SPLITS: tuple[str, ...] = ("train", "test")
SPLIT_SCOPES: tuple[str, ...] = (*SPLITS, "all")  # what an evaluation may score: one split or both
IMAGE_FORMATS: tuple[str, ...] = ("png", "jpg")
# The `pda-data pack` option that names each role's input.
PACK_FLAGS: dict[str, str] = {
    "coser": "--cosers",
    "human": "--humans",
    "anime": "--anime",
    "structure": "--structure",
    "highlight": "--highlights",
}


def pack_command(
    out: str | Path,
    sources: Mapping[str, str | Path],
    *,
    test_fraction: float,
    shard_size: int,
    max_shard_bytes: int,
    image_format: str,
    seed: int,
) -> str:
    """The ``pda-data pack`` command line that packs ``sources`` with these options (kept in the index)."""
    args = ["pda-data", "pack", "--out", str(out)]
    args += [a for role in ROLES if role in sources for a in (PACK_FLAGS[role], str(sources[role]))]
    args += ["--test-fraction", str(test_fraction), "--shard-size", str(shard_size)]
    args += ["--max-shard-bytes", str(max_shard_bytes), "--image-format", image_format, "--seed", str(seed)]
    return shlex.join(args)
