"""The engine behind ``synth-structure``, ``synth-highlights`` and ``synth-aug``.

It reads the input faces (anime annotation file, curated portrait folders), draws the pairs and kinds with
one seeded generator, makes every sample with its own generator (seeded by the run seed and the sample
index, so results do not depend on the number of workers), writes images atomically, reports bad inputs
as rejected rows instead of stopping, and finishes with a manifest and a contact sheet
(input | mask | result rows). The manifest is also written every few hundred samples; a rerun with the same
inputs and options reuses the kept samples whose fingerprint (inputs, kind, seed, options) and files match.
"""

from __future__ import annotations

import concurrent.futures as cf
import hashlib
import multiprocessing as mp
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd

from pda_data.annotations.table import read_annotations
from pda_data.curation.manifest import (
    IMAGES_DIR,
    MANIFEST_NAME,
    STATUS_KEPT,
    STATUS_REJECTED,
    ManifestError,
    kept_rows,
    read_manifest,
    write_manifest,
)
from pda_data.io.images import ImageError, load_image, save_image
from pda_data.schema import ANIME56, HUMAN68, LandmarkSchema, flatten_points, unflatten_points
from pda_data.synthesis.augportrait import fuse_parts
from pda_data.synthesis.highlights import synthesize_highlights
from pda_data.synthesis.options import ABNORMAL_KINDS, LEGIT, FusionOptions
from pda_data.synthesis.structure import SynthesisError, synthesize_structure
from pda_data.viz.sheet import contact_sheet, draw_landmarks

MASKS_DIR = "masks"
SHEET_NAME = "contact_sheet.jpg"
SHEET_TILE = 128


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


@dataclass
class Outcome:
    """A finished sample: its manifest row and, for the contact sheet, its tiles."""

    row: dict[str, Any]
    tiles: list[np.ndarray] = field(default_factory=list)


def _checked_faces(
    rows: pd.DataFrame, path_of: Callable[[pd.Series], Path], column: str, schema: LandmarkSchema
) -> tuple[list[Face], list[str]]:
    faces: list[Face] = []
    problems: list[str] = []
    for _, row in rows.iterrows():
        try:
            pts = schema.check_shape(unflatten_points(row[column]))
        except (ValueError, TypeError) as exc:
            problems.append(f"{row['key']}: bad landmarks ({exc})")
            continue
        if not np.isfinite(pts).all():
            problems.append(f"{row['key']}: non-finite landmarks")
            continue
        faces.append(Face(str(row["key"]), path_of(row), pts))
    return faces, problems


def load_anime_faces(annotations: str | Path) -> tuple[list[Face], list[str]]:
    """Anime faces of an annotation file (``pda-data landmarks import``), and one line per unusable row."""
    df = read_annotations(annotations)
    return _checked_faces(df, lambda r: Path(str(r["path"])), "points", ANIME56)


def load_portrait_faces(folder: str | Path) -> tuple[list[Face], list[str]]:
    """Kept faces of a curated portrait folder (``crop-cosers`` / ``crop-humans``), and unusable rows."""
    root = Path(folder)
    df = kept_rows(read_manifest(root, required=("key", "image", "landmarks")))
    return _checked_faces(df, lambda r: root / str(r["image"]), "landmarks", HUMAN68)


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


def _mask_tile(mask: np.ndarray) -> np.ndarray:
    return (np.clip(mask, 0, 1) * 255 + 0.5).astype(np.uint8)


def _make_structure(
    task: Task, images: dict[str, np.ndarray], rng: np.random.Generator, out: Path
) -> Outcome:
    anime = task.faces["anime"]
    sample = synthesize_structure(images["anime"], anime.points, task.kind, rng, **task.options)
    image_rel = f"{IMAGES_DIR}/{task.key}.png"
    save_image(out / image_rel, sample.image)
    row = {
        "image": image_rel,
        "label": sample.label,
        "structure_points": flatten_points(sample.points),
        "structure_channels": sample.channels.tolist(),
    }
    tiles = []
    if task.sheet:
        tiles = [
            images["anime"],
            _mask_tile(sample.region),
            draw_landmarks(sample.image, sample.points, radius=3),
        ]
    return Outcome(row, tiles)


def _make_highlight(
    task: Task, images: dict[str, np.ndarray], rng: np.random.Generator, out: Path
) -> Outcome:
    anime = task.faces["anime"]
    image_rel, mask_rel = f"{IMAGES_DIR}/{task.key}.png", f"{MASKS_DIR}/{task.key}.png"
    if task.kind == LEGIT:
        image, mask = images["anime"], np.zeros(images["anime"].shape[:2], np.float32)
        human_tile = np.zeros_like(image)
    else:
        human = task.faces["human"]
        sample = synthesize_highlights(
            images["human"], human.points, images["anime"], anime.points, **task.options
        )
        image, mask, human_tile = sample.image, sample.mask, images["human"]
    save_image(out / image_rel, image)
    mask_u8 = _mask_tile(mask)
    save_image(out / mask_rel, np.repeat(mask_u8[..., None], 3, axis=2))
    row = {"image": image_rel, "mask": mask_rel, "label": int(task.kind == LEGIT)}
    tiles = [human_tile, images["anime"], mask_u8, image] if task.sheet else []
    return Outcome(row, tiles)


def _make_aug(task: Task, images: dict[str, np.ndarray], rng: np.random.Generator, out: Path) -> Outcome:
    human, coser = task.faces["human"], task.faces["coser"]
    fusion = fuse_parts(
        images["human"], human.points, images["coser"], coser.points, rng, FusionOptions(**task.options)
    )
    image_rel = f"{IMAGES_DIR}/{task.key}.png"
    save_image(out / image_rel, fusion.image)
    row = {"image": image_rel, "label": 1}
    tiles = [images["human"], images["coser"], _mask_tile(fusion.mask), fusion.image] if task.sheet else []
    return Outcome(row, tiles)


_ROLES: dict[str, tuple[str, ...]] = {
    "structure": ("anime",),
    "highlight": ("anime", "human"),
    "aug": ("human", "coser"),
}
MAKERS: dict[str, Callable[[Task, dict[str, np.ndarray], np.random.Generator, Path], Outcome]] = {
    "structure": _make_structure,
    "highlight": _make_highlight,
    "aug": _make_aug,
}


def _check_in_frame(face: Face, image: np.ndarray) -> None:
    """Landmarks that lie far outside their image belong to another image (or a broken annotation)."""
    h, w = image.shape[:2]
    x, y = face.points[:, 0], face.points[:, 1]
    if (x < -0.5 * w).any() or (x > 1.5 * w).any() or (y < -0.5 * h).any() or (y > 1.5 * h).any():
        raise SynthesisError("bad_landmarks", f"{face.key}: landmarks far outside its {w}x{h} image")


def make_sample(job: str, task: Task, out: Path) -> Outcome:
    """Make one sample of ``job`` (structure, highlight, aug); failures become a rejected row."""
    base = task.faces["anime"] if "anime" in task.faces else task.faces["coser"]
    row: dict[str, Any] = {
        "key": task.key,
        "image": "",
        "status": STATUS_REJECTED,
        "reason": "",
        "detail": "",
        "label": -1,
        "kind": task.kind,
        "landmarks": flatten_points(base.points),
        "fingerprint": task.fingerprint(job),
        "structure_points": [],
        "structure_channels": [],
        **{f"{role}_key": "" for role in _ROLES[job]},
        **{f"{role}_key": face.key for role, face in task.faces.items()},
    }
    if job == "highlight":
        row["mask"] = ""
    try:
        images = {role: load_image(face.path) for role, face in task.faces.items()}
        for role, face in task.faces.items():
            _check_in_frame(face, images[role])
        rng = np.random.default_rng([task.seed, task.index])
        outcome = MAKERS[job](task, images, rng, out)
    except (ImageError, SynthesisError) as exc:
        row.update(reason=exc.reason, detail=str(exc))
        return Outcome(row)
    except (ValueError, cv2.error) as exc:  # degenerate landmark geometry (no triangulation, singular spline)
        row.update(reason="degenerate", detail=str(exc))
        return Outcome(row)
    row.update(outcome.row, status=STATUS_KEPT)
    return Outcome(row, outcome.tiles)


def _init_worker() -> None:
    import torch

    torch.set_num_threads(1)
    cv2.setNumThreads(1)


def _run_chunk(job: str, tasks: list[Task], out: Path) -> list[Outcome]:
    return [make_sample(job, t, out) for t in tasks]


def run_tasks(job: str, tasks: Sequence[Task], out: str | Path, workers: int = 1) -> Iterator[Outcome]:
    """Make every task (in ``workers`` processes when > 1), yielding outcomes as they finish."""
    out_dir = Path(out)
    if workers <= 1:
        for task in tasks:
            yield make_sample(job, task, out_dir)
        return
    chunk = max(1, min(32, len(tasks) // (workers * 4) or 1))
    chunks = [list(tasks[i : i + chunk]) for i in range(0, len(tasks), chunk)]
    with cf.ProcessPoolExecutor(
        workers, mp_context=mp.get_context("spawn"), initializer=_init_worker
    ) as pool:
        futures = [pool.submit(_run_chunk, job, c, out_dir) for c in chunks]
        for fut in cf.as_completed(futures):
            yield from fut.result()


@dataclass
class SynthSummary:
    """Counts of a synthesis run."""

    total: int = 0
    kept: int = 0
    reused: int = 0
    by_kind: Counter = field(default_factory=Counter)
    rejected: Counter = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)


def _write_rows(out: Path, outcomes: Sequence[Outcome]) -> pd.DataFrame:
    df = pd.DataFrame([o.row for o in sorted(outcomes, key=lambda o: o.row["key"])])
    write_manifest(df, out / MANIFEST_NAME)
    return df


def reusable_rows(job: str, tasks: Sequence[Task], out: str | Path) -> dict[str, dict[str, Any]]:
    """Kept rows of an earlier run in ``out`` that match a task's fingerprint and whose files exist."""
    out_dir = Path(out)
    if not (out_dir / MANIFEST_NAME).is_file():
        return {}
    try:
        df = read_manifest(out_dir, required=("key", "status", "image", "fingerprint"))
    except ManifestError:
        return {}
    wanted = {t.key: t.fingerprint(job) for t in tasks if not t.sheet}
    reused = {}
    for row in df.to_dict("records"):
        files = [row["image"], row.get("mask") or row["image"]]
        if (
            row["status"] == STATUS_KEPT
            and wanted.get(row["key"]) == row["fingerprint"]
            and all((out_dir / f).is_file() for f in files)
        ):
            reused[row["key"]] = row
    return reused


def run_synth(
    job: str,
    tasks: Sequence[Task],
    out: str | Path,
    workers: int = 1,
    on_progress: Callable[[int], None] | None = None,
    checkpoint: int = 500,
) -> SynthSummary:
    """Make ``tasks`` (reusing matching samples of an earlier run), then write the manifest and sheet."""
    out_dir = Path(out)
    previous = reusable_rows(job, tasks, out_dir)
    outcomes = [Outcome(row) for row in previous.values()]
    if on_progress and previous:
        on_progress(len(previous))
    for n, outcome in enumerate(
        run_tasks(job, [t for t in tasks if t.key not in previous], out_dir, workers), 1
    ):
        outcomes.append(outcome)
        if on_progress:
            on_progress(1)
        if n % checkpoint == 0:
            _write_rows(out_dir, outcomes)
    summary = finish(out_dir, outcomes)
    summary.reused = len(previous)
    return summary


def finish(out: str | Path, outcomes: Sequence[Outcome]) -> SynthSummary:
    """Write the manifest and the contact sheet of a finished run, and count it."""
    out_dir = Path(out)
    df = _write_rows(out_dir, outcomes)
    ordered = sorted(outcomes, key=lambda o: o.row["key"])
    tiles, labels = [], []
    for o in ordered:
        if o.tiles:
            tiles += o.tiles
            labels += [f"{o.row['key']} {o.row['kind']}"] + [""] * (len(o.tiles) - 1)
    if tiles:
        columns = len(next(o.tiles for o in ordered if o.tiles))
        save_image(out_dir / SHEET_NAME, contact_sheet(tiles, labels, columns=columns, tile_size=SHEET_TILE))
    summary = SynthSummary(total=len(df))
    for o in ordered:
        if o.row["status"] == STATUS_KEPT:
            summary.kept += 1
            summary.by_kind[o.row["kind"]] += 1
        else:
            summary.rejected[o.row["reason"]] += 1
            inputs = ", ".join(f"{c[:-4]} {v}" for c, v in o.row.items() if c.endswith("_key") and c != "key")
            summary.problems.append(f"{o.row['key']} ({inputs}): {o.row['reason']}: {o.row['detail']}")
    return summary
