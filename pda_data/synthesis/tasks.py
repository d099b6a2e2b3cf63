"""What a synthesis run makes: the input faces, and the seeded plan of samples (:class:`Task`) over them.

The inputs are read through their tables' readers (the anime annotation file, curated portrait folders), so
every face here has finite landmarks of its schema. The pairs and kinds are drawn with one seeded generator;
each task carries its own seed, so results do not depend on the number of workers.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pda_data.annotations.table import points_array, read_annotations
from pda_data.curation.table import kept_portraits
from pda_data.synthesis.options import ABNORMAL_KINDS, LEGIT


@dataclass(frozen=True)
class Face:
    """One input face: its key, image file and landmarks (pixels of that file)."""

    key: str
    path: Path
    points: np.ndarray


@dataclass(frozen=True)
class Task:
    """One sample to make. ``faces`` maps a role (anime, human, coser) to its input face."""

    index: int
    key: str
    kind: str
    seed: int
    faces: dict[str, Face]
    options: dict[str, Any] = field(default_factory=dict)
    sheet: bool = False

    def fingerprint(self, job: str) -> str:
        """A digest of everything that determines this sample, to recognize it on a rerun."""
        digest = hashlib.sha256(
            repr((job, self.index, self.key, self.kind, self.seed, self.options)).encode()
        )
        for role in sorted(self.faces):
            face = self.faces[role]
            digest.update(f"{role}:{face.key}:{face.path}".encode())
            digest.update(np.ascontiguousarray(face.points, np.float64).tobytes())
        return digest.hexdigest()[:32]



def load_anime_faces(annotations: str | Path) -> list[Face]:
    """Anime faces of an annotation file (``pda-data landmarks import``)."""
    df = read_annotations(annotations)
    return [Face(str(k), Path(str(p)), pts) for k, p, pts in zip(df["key"], df["path"], points_array(df),
                                                                   strict=True)]


def load_portrait_faces(folder: str | Path) -> tuple[list[Face], list[str]]:
    """Kept faces of a curated portrait folder (``crop-cosers`` / ``crop-humans``), and one line per kept
    row that cannot be used (left out)."""
    root = Path(folder)
    kept, points, unusable = kept_portraits(root)
    faces = [Face(str(k), root / str(rel), pts) for k, rel, pts in zip(kept["key"], kept["image"], points,
                                                                         strict=True)]
    return faces, [f"{key}: {why}" for key, why in unusable]


def _pick(faces: Sequence[Face], rng: np.random.Generator) -> Face:
    return faces[int(rng.integers(len(faces)))]


def _kinds(n: int, legit_fraction: float, abnormal: Sequence[str], rng: np.random.Generator) -> list[str]:
    legit = rng.random(n) < legit_fraction
    other = rng.integers(len(abnormal), size=n)
    return [LEGIT if ok else abnormal[k] for ok, k in zip(legit, other, strict=True)]


def _tasks(
    kinds: Sequence[str],
    faces: Sequence[dict[str, Face]],
    seed: int,
    options: dict[str, Any] | None,
    sheet_rows: int,
) -> list[Task]:
    """Tasks keyed by index; the contact sheet shows the first samples of every kind in equal shares."""
    quota = -(-sheet_rows // max(1, len(set(kinds))))
    shown: Counter = Counter()
    tasks = []
    for i, (kind, roles) in enumerate(zip(kinds, faces, strict=True)):
        show = sum(shown.values()) < sheet_rows and shown[kind] < quota
        shown[kind] += show
        tasks.append(Task(i, f"{i:06d}", kind, seed, roles, options or {}, show))
    return tasks


def plan_structure(
    anime: Sequence[Face],
    n: int,
    seed: int,
    legit_fraction: float = 0.5,
    kinds: Sequence[str] = ABNORMAL_KINDS,
    options: dict[str, Any] | None = None,
    sheet_rows: int = 8,
) -> list[Task]:
    """``n`` structure tasks: a random anime face each, legit with probability ``legit_fraction``."""
    rng = np.random.default_rng(seed)
    chosen = _kinds(n, legit_fraction, kinds, rng)
    return _tasks(chosen, [{"anime": _pick(anime, rng)} for _ in range(n)], seed, options, sheet_rows)


def plan_highlights(
    humans: Sequence[Face],
    anime: Sequence[Face],
    n: int,
    seed: int,
    legit_fraction: float = 0.5,
    options: dict[str, Any] | None = None,
    sheet_rows: int = 8,
) -> list[Task]:
    """``n`` highlight tasks: random (human, anime) pairs; legit ones are the clean anime face alone."""
    rng = np.random.default_rng(seed)
    chosen = _kinds(n, legit_fraction, ("highlight",), rng)
    faces = [{"human": _pick(humans, rng), "anime": _pick(anime, rng)} for _ in range(n)]
    faces = [f if k != LEGIT else {"anime": f["anime"]} for k, f in zip(chosen, faces, strict=True)]
    return _tasks(chosen, faces, seed, options, sheet_rows)


def plan_aug(
    humans: Sequence[Face],
    cosers: Sequence[Face],
    n: int,
    seed: int,
    options: dict[str, Any] | None = None,
    sheet_rows: int = 8,
) -> list[Task]:
    """``n`` Aug-Portrait tasks: random (human, coser) pairs."""
    rng = np.random.default_rng(seed)
    faces = [{"human": _pick(humans, rng), "coser": _pick(cosers, rng)} for _ in range(n)]
    return _tasks(["aug"] * n, faces, seed, options, sheet_rows)

