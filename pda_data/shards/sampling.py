"""Random samples of a role's shards, decoded, and their contact sheet, for ``pda-data inspect``."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pda_data.schema import SCHEMAS, LandmarkSchema, unflatten_points
from pda_data.shards.index import CLASSIFIER_ROLES, read_index, shard_urls
from pda_data.shards.sample import decode_rgb
from pda_data.shards.tar import iter_tar_samples
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
) -> list[Sample]:
    """``count`` samples of a role drawn with ``seed``: shards first, then samples among theirs."""
    root = Path(root)
    fmt = read_index(root)["roles"].get(role, {}).get("image_format", "png")
    urls = shard_urls(root, role, split)
    rng = np.random.default_rng(seed)
    picked = rng.choice(len(urls), size=min(len(urls), count), replace=False)
    pool = [(k, m) for i in sorted(picked) for k, m in iter_tar_samples(urls[i])]
    chosen = rng.choice(len(pool), size=min(len(pool), count), replace=False)
    samples = []
    for i in chosen:
        key, members = pool[i]
        meta = json.loads(members["json"])
        caption = f"{meta['label']}:{meta['kind']}" if role in CLASSIFIER_ROLES else key
        samples.append(Sample(key, decode_rgb(members[fmt]), unflatten_points(meta["landmarks"]),
                              SCHEMAS[meta["schema"]], meta, caption))
    return samples


def sample_sheet(samples: Sequence[Sample], tile_size: int = 160) -> np.ndarray:
    """Shard samples with their landmarks drawn and captioned, up to 8 a row."""
    columns = min(8, max(1, len(samples)))
    return landmark_sheet([s.rgb for s in samples], [s.points for s in samples], [s.schema for s in samples],
                          [s.caption for s in samples], columns=columns, tile_size=tile_size)
