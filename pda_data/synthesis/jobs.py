"""The engine behind ``synth-structure``, ``synth-highlights`` and ``synth-aug``.

Given the planned tasks (:mod:`pda_data.synthesis.tasks`), it makes every sample with its own generator
(seeded by the run seed and the sample index, so results do not depend on the number of workers), writes
images atomically, reports bad inputs as rejected rows instead of stopping, and finishes with a manifest
(:mod:`pda_data.synthesis.table`) and a contact sheet (input | mask | result rows). The manifest is also
written every few hundred samples, and once more when an error (a full disk, Ctrl-C) stops the run; a rerun
with the same inputs and options reuses the kept samples whose fingerprint (inputs, kind, seed, options)
and files match. The output folder is locked for the run (:mod:`pda_data.io.lock`).
"""

from __future__ import annotations

import contextlib
import functools
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd

from pda_data.distribute import Engine, distribute
from pda_data.io.images import ImageError, load_image, save_image
from pda_data.io.lock import folder_lock
from pda_data.io.table import IMAGES_DIR, MANIFEST_NAME, STATUS_KEPT, STATUS_REJECTED, TableError
from pda_data.schema import flatten_points
from pda_data.synthesis.augportrait import fuse_parts
from pda_data.synthesis.highlights import synthesize_highlights
from pda_data.synthesis.options import LEGIT, FusionOptions
from pda_data.synthesis.structure import SynthesisError, synthesize_structure
from pda_data.synthesis.table import JOB_ROLES, read_synth, synth_frame, write_synth
from pda_data.synthesis.tasks import Face, Task
from pda_data.viz.overlay import draw_landmarks
from pda_data.viz.sheet import contact_sheet

MASKS_DIR = "masks"
SHEET_NAME = "contact_sheet.jpg"
SHEET_TILE = 128


@dataclass
class Outcome:
    """A finished sample: its manifest row and, for the contact sheet, its tiles."""

    row: dict[str, Any]
    tiles: list[np.ndarray] = field(default_factory=list)



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
        **{f"{role}_key": "" for role in JOB_ROLES[job]},
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


@dataclass(frozen=True)
class SynthWork:
    """The per-sample work of a synthesis job, as every engine's workers run it (:mod:`pda_data.distribute`).

    Worker processes start by spawning: the driver may hold torch's threads, which a fork would copy.
    """

    job: str
    out: Path
    start_method: str | None = "spawn"

    @contextlib.contextmanager
    def session(self, worker: bool) -> Iterator[Callable[[Task], Outcome]]:
        """The sample maker; in a worker process single-threaded (torch, OpenCV) so N workers use N cores."""
        if worker:
            import torch

            torch.set_num_threads(1)
            cv2.setNumThreads(1)
        yield functools.partial(make_sample, self.job, out=self.out)


def run_tasks(job: str, tasks: Sequence[Task], out: str | Path, workers: int = 1,
              engine: Engine | None = None) -> Iterator[Outcome]:
    """Make every task, yielding outcomes in task order; ``engine`` (default: the local one with
    ``workers`` processes) runs them, a few tasks per batch."""
    engine = engine or Engine("local", workers)
    batch = max(1, min(32, len(tasks) // (max(engine.workers, 1) * 4) or 1))
    return distribute(SynthWork(job, Path(out)), tasks, engine, batch_size=batch)


@dataclass
class SynthSummary:
    """Counts of a synthesis run."""

    total: int = 0
    kept: int = 0
    reused: int = 0
    by_kind: Counter = field(default_factory=Counter)
    rejected: Counter = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)


def _write_rows(job: str, out: Path, outcomes: Sequence[Outcome]) -> pd.DataFrame:
    df = synth_frame(job, [o.row for o in outcomes])
    write_synth(job, df, out / MANIFEST_NAME)
    return df


def reusable_rows(job: str, tasks: Sequence[Task], out: str | Path) -> dict[str, dict[str, Any]]:
    """Kept rows of an earlier run in ``out`` that match a task's fingerprint and whose files exist."""
    out_dir = Path(out)
    if not (out_dir / MANIFEST_NAME).is_file():
        return {}
    try:
        df = read_synth(job, out_dir)
    except TableError:
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
    engine: Engine | None = None,
) -> SynthSummary:
    """Make ``tasks`` (reusing matching samples of an earlier run), then write the manifest and sheet.

    ``engine`` makes the samples (default: the local one with ``workers`` processes); the result is the
    same whichever.

    ``out`` is locked for the run. When an error stops it, the manifest of the samples made so far is
    written if it can be (on a full disk it may not: the last checkpoint stays), then the error is raised.
    """
    with folder_lock(out) as out_dir:
        previous = reusable_rows(job, tasks, out_dir)
        outcomes = [Outcome(row) for row in previous.values()]
        if on_progress and previous:
            on_progress(len(previous))
        try:
            for n, outcome in enumerate(
                run_tasks(job, [t for t in tasks if t.key not in previous], out_dir, workers, engine), 1
            ):
                outcomes.append(outcome)
                if on_progress:
                    on_progress(1)
                if n % checkpoint == 0:
                    _write_rows(job, out_dir, outcomes)
        except BaseException:
            with contextlib.suppress(OSError, ValueError):  # the run's own error is the one to report
                _write_rows(job, out_dir, outcomes)
            raise
        summary = finish(job, out_dir, outcomes)
    summary.reused = len(previous)
    return summary


def finish(job: str, out: str | Path, outcomes: Sequence[Outcome]) -> SynthSummary:
    """Write the manifest and the contact sheet of a finished run, and count it."""
    out_dir = Path(out)
    df = _write_rows(job, out_dir, outcomes)
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

