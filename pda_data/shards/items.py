"""The inputs of ``pack``: one :class:`~pda_data.shards.sample.PackItem` per kept row of a role's table.

Each table is read by its own reader (curated folders, the anime annotation file, synth folders), which
validates it; what is left to report here is a key that two rows share once made tar-safe.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from pda_data.annotations.table import points_array, read_annotations
from pda_data.curation.table import kept_portraits
from pda_data.io.table import kept_rows
from pda_data.shards.index import Problem
from pda_data.shards.sample import POINT_DECIMALS, PackItem, point_list, tar_key
from pda_data.synthesis.table import read_synth


def _pose(yaw: float, pitch: float, roll: float) -> dict[str, float] | None:
    if not np.isfinite([yaw, pitch, roll]).all():
        return None
    return {"yaw": float(yaw), "pitch": float(pitch), "roll": float(roll)}


def _unique(items: list[PackItem], where: str) -> tuple[list[PackItem], list[Problem]]:
    """The items whose tar key no earlier item has, and a problem for each other one."""
    kept: list[PackItem] = []
    problems: list[Problem] = []
    seen: set[str] = set()
    for item in items:
        tk = tar_key(item.key)
        if tk in seen:
            problems.append(Problem(where, item.key, f"duplicate key {tk!r}"))
            continue
        seen.add(tk)
        kept.append(item)
    return kept, problems


def items_from_portraits(folder: str | Path) -> tuple[list[PackItem], list[Problem]]:
    """Kept faces of a curated portrait folder (``crop-cosers`` / ``crop-humans`` output)."""
    root = Path(folder)
    df, points, unusable = kept_portraits(root)
    items = [
        PackItem(
            str(row.key),
            root / str(row.image),
            {
                "source": str(row.source),
                "source_sha256": str(row.source_sha256),
                "landmarks": point_list(pts),
                "pose": _pose(row.yaw, row.pitch, row.roll),
            },
        )
        for row, pts in zip(df.itertuples(index=False), points, strict=True)
    ]
    kept, problems = _unique(items, str(root))
    return kept, [Problem(str(root), key, f"unusable row: {why}") for key, why in unusable] + problems


def items_from_annotations(path: str | Path) -> tuple[list[PackItem], list[Problem]]:
    """Anime images of a landmark annotation file (``landmarks import`` output; ``path`` is absolute)."""
    df = read_annotations(path)
    items = [
        PackItem(
            str(row.key),
            Path(str(row.path)),
            {"source": str(row.path), "source_sha256": str(row.sha256), "landmarks": point_list(pts),
             "pose": None},
        )
        for row, pts in zip(df.itertuples(index=False), points_array(df), strict=True)
    ]
    return _unique(items, str(path))


def items_from_synth(folder: str | Path, role: str) -> tuple[list[PackItem], list[Problem]]:
    """Kept samples of a classifier synthesis folder (``synth-structure`` / ``synth-highlights`` output)."""
    root = Path(folder)
    df = kept_rows(read_synth(role, root))
    keys = [c for c in ("anime_key", "human_key") if c in df.columns]
    items = []
    for row in df.to_dict("records"):
        meta: dict[str, Any] = {
            "source": "#".join(str(row[c]) for c in keys if row[c]),
            "source_sha256": "",
            "landmarks": point_list(row["landmarks"]),
            "pose": None,
            "label": int(row["label"]),
            "kind": str(row["kind"]),
            "structure_points": [round(float(v), POINT_DECIMALS) for v in row.get("structure_points", [])],
            "structure_channels": [int(v) for v in row.get("structure_channels", [])],
        }
        items.append(PackItem(str(row["key"]), root / str(row["image"]), meta))
    return _unique(items, str(root))


def role_items(role: str, source: str | Path) -> tuple[list[PackItem], list[Problem]]:
    """The items of ``source`` for ``role`` (a curated folder, an annotation file or a synth folder)."""
    if role in ("coser", "human"):
        return items_from_portraits(source)
    if role == "anime":
        return items_from_annotations(source)
    return items_from_synth(source, role)
