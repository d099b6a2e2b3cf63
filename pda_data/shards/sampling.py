"""Random samples of a role's shards, decoded, and their contact sheet, for ``pda-data inspect``."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pda_data.schema import LandmarkSchema, unflatten_points
from pda_data.shards.index import CLASSIFIER_ROLES, ROLE_SCHEMA, Problem, read_index, role_entries
from pda_data.shards.sample import check_sample, decode_rgb
from pda_data.shards.tar import TarDamage, iter_tar_samples
from pda_data.viz.sheet import landmark_sheet


@dataclass(frozen=True)
class Sample:
    """A decoded shard sample: key, RGB image, (K, 2) landmarks in their schema, the json metadata, and a
    caption (``label:kind`` for classifier roles, else the key)."""

    key: str
    rgb: np.ndarray
    points: np.ndarray
    schema: LandmarkSchema
    meta: dict[str, Any]
    caption: str


def random_samples(
    root: str | Path, role: str, *, split: str = "train", count: int = 16, seed: int = 0
) -> tuple[list[Sample], list[Problem]]:
    """``count`` samples of a role drawn with ``seed`` from what is readable, and what was not.

    Shards are drawn first (up to ``count`` readable ones; a damaged shard is replaced by the next draw and
    its readable samples kept), then samples among theirs; a sample that fails :func:`check_sample` is
    replaced too. The problems name each bad shard (and key). ShardError when the role has no shards.
    """
    root = Path(root)
    index = read_index(root)
    entries = role_entries(index, root, role, split)
    fmt = index["roles"][role]["image_format"]
    rng = np.random.default_rng(seed)
    pool: list[tuple[str, str, dict[str, bytes]]] = []
    problems: list[Problem] = []
    read = 0
    for i in rng.permutation(len(entries)):
        if read == count:
            break
        name = entries[i]["name"]
        try:
            for key, members in iter_tar_samples(root / name):
                pool.append((name, key, members))
            read += 1
        except TarDamage as exc:
            problems.append(Problem(name, "", f"unreadable tar: {exc.reason}"))
    samples = []
    for j in rng.permutation(len(pool)):
        if len(samples) == count:
            break
        name, key, members = pool[j]
        errors = check_sample(role, members, fmt)
        if errors:
            problems.append(Problem(name, key, "; ".join(errors)))
            continue
        meta = json.loads(members["json"])
        caption = f"{meta['label']}:{meta.get('kind')}" if role in CLASSIFIER_ROLES else key
        samples.append(Sample(key, decode_rgb(members[fmt]), unflatten_points(meta["landmarks"]),
                              ROLE_SCHEMA[role], meta, caption))
    return samples, problems


def sample_sheet(samples: Sequence[Sample], tile_size: int = 160) -> np.ndarray:
    """Shard samples with their landmarks drawn and captioned, up to 8 a row."""
    columns = min(8, max(1, len(samples)))
    return landmark_sheet([s.rgb for s in samples], [s.points for s in samples], [s.schema for s in samples],
                          [s.caption for s in samples], columns=columns, tile_size=tile_size)
