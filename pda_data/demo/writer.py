"""Writing the embedded demo world: a small, offline, reproducible data set for smoke tests and the quick
start.

Human portraits and coser photos hold disguised astronauts (:mod:`pda_data.demo.faces`,
:mod:`pda_data.demo.photos`), checked with the toolkit's own detectors (:mod:`pda_data.demo.truth`). Anime
portraits are drawn procedurally with exact 56-point landmarks (:mod:`pda_data.annotations.anime_draw`) and
written as a CVAT-for-images XML file.

Layout written by :func:`write_demo`::

    OUT/raw_cosers/*.jpg|png    640x480 photos with 1-3 faces (frontal, turned, too small) + corrupt files
    OUT/humans/*.png            256x256 human portrait crops
    OUT/anime/*.png             256x256 procedural anime portraits
    OUT/anime_annotations.xml   their 56 landmarks, CVAT for images 1.1
    OUT/demo_truth.json         what every file holds and what the pipeline should make of it

It is a smoke-test world: one identity in many disguises. Real training points at real data sets.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np

from pda_data.annotations.anime_draw import draw_anime_face
from pda_data.annotations.formats.cvat import write_cvat
from pda_data.annotations.formats.records import ImageAnnotation
from pda_data.demo.config import DemoConfig
from pda_data.demo.faces import PORTRAIT_SIZE, human_portrait, to_u8
from pda_data.demo.photos import CANVAS, background, coser_photo
from pda_data.demo.truth import Verifier, face_record
from pda_data.io.files import atomic_write_bytes, atomic_write_text
from pda_data.io.images import encode_image, save_image
from pda_data.schema import flatten_points

TRUTH_NAME = "demo_truth.json"
ANNOTATIONS_NAME = "anime_annotations.xml"
COSERS_DIR, HUMANS_DIR, ANIME_DIR = "raw_cosers", "humans", "anime"
_MAX_TRIES = 8
DEFAULT_CONFIG = DemoConfig()


def _corrupt_files(valid_jpeg: bytes) -> list[tuple[str, bytes, str]]:
    """(name, bytes, expected ImageError reason) of the deliberately broken inputs."""
    return [
        ("corrupt_empty.jpg", b"", "empty"),
        ("corrupt_truncated.jpg", valid_jpeg[: len(valid_jpeg) // 3], "truncated"),
        ("corrupt_text.jpg", b"<html><body>404 Not Found</body></html>\n", "not_image"),
    ]


def _human(rng: np.random.Generator) -> tuple[np.ndarray, list[dict]]:
    """A human portrait crop and its one face record (always frontal)."""
    rgb, points = human_portrait(rng)
    return rgb, [{"kind": "frontal", "points": points}]


def _until_verified(
    seed: int,
    make: Callable[[np.random.Generator], tuple[np.ndarray, list[dict]]],
    verifier: Verifier | None,
) -> tuple[np.random.Generator, np.ndarray, list[dict]]:
    """Make a picture (RGB, face records) from ``rng([seed, attempt])`` until the verifier confirms every
    face, at most ``_MAX_TRIES`` attempts; returns the last attempt and its generator as ``make`` left it."""
    for attempt in range(_MAX_TRIES):
        rng = np.random.default_rng([seed, attempt])
        rgb, faces = make(rng)
        if verifier is None:
            break
        verifier.check(rgb, faces)
        if all(f["verified"] for f in faces):
            break
    return rng, rgb, faces


def write_demo(
    out: str | Path,
    config: DemoConfig = DEFAULT_CONFIG,
    cascade: Path | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict:
    """Generate the demo world under ``out`` and return the truth record (also written to demo_truth.json).

    ``cascade`` (the anime-face LBP cascade) is only used to record whether it finds the coser faces.
    ``progress`` is called with a short label after each file.
    """
    root = Path(out)
    tick = progress or (lambda _label: None)
    verifier = Verifier(cascade) if config.verify else None
    truth: dict = {
        "seed": config.seed,
        "schema_version": 1,
        "cosers": [],
        "corrupt": [],
        "humans": [],
        "anime": [],
    }
    seeds = np.random.SeedSequence(config.seed).spawn(3)

    coser_rng = np.random.default_rng(seeds[0])
    first_jpeg = b""
    for i in range(config.n_cosers):
        seed = int(coser_rng.integers(2**32))
        rng, rgb, faces = _until_verified(seed, partial(coser_photo, index=i), verifier)
        fmt = "jpg" if rng.random() < 0.6 else "png"
        name = f"{COSERS_DIR}/coser_{i:03d}.{fmt}"
        data = encode_image(rgb, fmt, quality=92)
        atomic_write_bytes(root / name, data)
        if fmt == "jpg" and not first_jpeg:
            first_jpeg = data
        truth["cosers"].append(
            {"file": name, "width": CANVAS[0], "height": CANVAS[1], "faces": [face_record(f) for f in faces]}
        )
        tick(name)
    for name, data, reason in _corrupt_files(
        first_jpeg or encode_image(to_u8(background(coser_rng, 64, 48)), "jpg")
    ):
        atomic_write_bytes(root / COSERS_DIR / name, data)
        truth["corrupt"].append({"file": f"{COSERS_DIR}/{name}", "expected_reason": reason})

    human_rng = np.random.default_rng(seeds[1])
    for i in range(config.n_humans):
        _, rgb, (record,) = _until_verified(int(human_rng.integers(2**32)), _human, verifier)
        name = f"{HUMANS_DIR}/human_{i:03d}.png"
        save_image(root / name, rgb)
        truth["humans"].append({"file": name, **face_record(record)})
        tick(name)

    anime_rng = np.random.default_rng(seeds[2])
    annotations = []
    for i in range(config.n_anime):
        face = draw_anime_face(anime_rng, PORTRAIT_SIZE)
        name = f"anime_{i:03d}.png"
        save_image(root / ANIME_DIR / name, face.image)
        annotations.append(
            ImageAnnotation(name=name, points=face.points, width=PORTRAIT_SIZE, height=PORTRAIT_SIZE)
        )
        truth["anime"].append({"file": f"{ANIME_DIR}/{name}", "points": flatten_points(face.points)})
        tick(f"{ANIME_DIR}/{name}")
    atomic_write_text(root / ANNOTATIONS_NAME, write_cvat(annotations))
    atomic_write_text(root / TRUTH_NAME, json.dumps(truth, indent=1))
    return truth
