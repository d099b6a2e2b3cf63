"""The faces an evaluation scores: by default the test split that ``pda-data pack`` recorded in the shards.

A model trained on a shard set must be scored on faces it never saw. :func:`shard_faces` reads the human
role's test shards themselves (the exact samples the split holds). A curated folder (``--portraits``) is
matched against the shard index: when it is the folder the role was packed from, only the keys of the
chosen split are used (the split is :func:`pda_data.shards.index.split_of` of the key with the role's
recorded test fraction); evaluating train faces as well takes an explicit ``split="all"``, and the counts of
both are reported. A folder that was never packed is external: every face is used.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pda_data.curation.table import kept_portraits
from pda_data.io.images import ImageError, load_image
from pda_data.io.table import TableError
from pda_data.schema import normalize_points
from pda_data.shards.index import ShardError, read_index, split_of
from pda_data.shards.names import SPLIT_SCOPES
from pda_data.stream.readers import decoded_role, role_source

PORTRAIT_ROLE = "human"


@dataclass
class Faces:
    """Evaluation faces: keys, RGB crops, (N, 68, 2) crop-pixel landmarks, and where they came from."""

    keys: list[str]
    crops: list[np.ndarray]
    points: np.ndarray
    source: str  # "shards" | "folder" (packed source folder) | "external" (never packed)
    split: str  # the split asked for: test, train or all
    counts: dict[str, int] = field(default_factory=dict)  # faces used per pack split ("external" if none)
    skipped: list[str] = field(default_factory=list)  # unreadable images, one message each
    sources: list[str] = field(default_factory=list)  # per face, the photo curation cropped it from

    def describe(self) -> dict[str, Any]:
        return {"source": self.source, "split": self.split, "count": len(self.keys), "per_split": self.counts}


def _splits(split: str) -> tuple[str, ...]:
    if split not in SPLIT_SCOPES:
        raise ValueError(f"split {split!r}: choose {', '.join(SPLIT_SCOPES)}")
    return ("train", "test") if split == "all" else (split,)


def shard_faces(shards: Path, split: str = "test", limit: int = 0, role: str = PORTRAIT_ROLE) -> Faces:
    """The ``role`` faces of the shard set's ``split`` (one pass, file order), read from the shards."""
    keys: list[str] = []
    crops: list[np.ndarray] = []
    points: list[np.ndarray] = []
    sources: list[str] = []
    counts: dict[str, int] = {}
    for name in _splits(split):
        try:
            source = role_source(shards, role, name)
        except ShardError:
            if split != "all":
                raise
            continue
        before = len(keys)
        for sample in decoded_role(source, seed=0, infinite=False):
            if limit and len(keys) >= limit:
                break
            keys.append(str(sample["meta"].get("key", sample["key"])))  # the manifest key, not the tar's
            crops.append(sample["image"])
            points.append(sample["points"])
            sources.append(str(sample["meta"].get("source", "")))
        counts[name] = len(keys) - before
    if not keys:
        raise ShardError(f"{shards}: no {role} faces in the {split} split")
    return Faces(keys, crops, np.stack(points), "shards", split, counts, sources=sources)


def packed_role(folder: Path, shards: Path | None) -> tuple[str, float] | None:
    """(role, test fraction) when ``folder`` is the source a role of ``shards`` was packed from."""
    if shards is None:
        return None
    target = folder.resolve()
    for role, info in read_index(shards)["roles"].items():
        source = info.get("source")
        if isinstance(source, str) and Path(source).resolve() == target:
            return role, float(info.get("test_fraction", 0.0))
    return None


def folder_faces(folder: Path, split: str = "test", shards: Path | None = None, limit: int = 0) -> Faces:
    """The kept faces of a curated folder; only ``split``'s keys when ``shards`` was packed from it."""
    wanted = _splits(split)
    df, all_points, unusable = kept_portraits(folder)
    packed = packed_role(folder, shards)
    if packed is None:
        chosen = np.ones(len(df), dtype=bool)
        labels = ["external"] * len(df)
    else:
        labels = [split_of(str(k), packed[1]) for k in df["key"]]
        chosen = np.array([s in wanted for s in labels], dtype=bool)
    df, all_points = df[chosen], all_points[chosen]
    labels = [s for s, c in zip(labels, chosen, strict=True) if c]
    if limit:
        df, all_points, labels = df.head(limit), all_points[:limit], labels[:limit]
    keys, crops, points, sources, counts = [], [], [], [], {}
    skipped = [f"{folder} [{key}]: {why}" for key, why in unusable]
    rows = zip(df["key"], df["image"], df["source"], all_points, labels, strict=True)
    for key, rel, src, pts, label in rows:
        try:
            crops.append(load_image(folder / str(rel)))
        except ImageError as exc:
            skipped.append(str(exc))
            continue
        keys.append(str(key))
        points.append(pts)
        sources.append(str(src))
        counts[label] = counts.get(label, 0) + 1
    if not keys:
        scope = "" if packed is None else f" in the {split} split of {shards}"
        raise TableError(f"{folder}: no readable kept portraits{scope} to evaluate")
    return Faces(keys, crops, np.stack(points), "external" if packed is None else "folder", split, counts,
                 skipped, sources)


def _role_samples(shards: Path, role: str, split: str) -> list[dict[str, Any]]:
    """The decoded samples of one role's split (empty when the set has no such shards)."""
    try:
        source = role_source(shards, role, split)
    except ShardError:
        return []
    return list(decoded_role(source, seed=0, infinite=False))


def shard_anime(shards: Path) -> tuple[np.ndarray, list[np.ndarray], str]:
    """(N, 56, 2) normalized landmarks and RGB images of the anime test split (the train split when the
    set has no anime test shards), and the split used."""
    for split in ("test", "train"):
        samples = _role_samples(shards, "anime", split)
        if samples:
            pts = [normalize_points(s["points"], s["image"].shape[1], s["image"].shape[0]) for s in samples]
            return np.stack(pts), [s["image"] for s in samples], split
    raise ShardError(f"{shards}: no anime faces for the landmark MMD")


def role_images(shards: Path, role: str, split: str) -> list[np.ndarray]:
    """The RGB images of one role's split (empty when the set has no such shards)."""
    return [s["image"] for s in _role_samples(shards, role, split)]


def run_shards(model: Path) -> Path | None:
    """The shard folder of the run that exported ``model`` (its ``experiment.yaml``), if that is readable."""
    from pda_train.manifest import ExperimentError, load_experiment
    from pda_train.training.loop import RESOLVED_MANIFEST

    manifest = model.parent / RESOLVED_MANIFEST
    if not manifest.is_file():
        return None
    try:
        return Path(load_experiment(manifest).data.shards)
    except ExperimentError:
        return None

