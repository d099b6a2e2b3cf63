"""Real inputs for the synthesis tests: the shared samples with their landmarks.

Anime: ``anime_0006`` (the demo fixture ``anime_0006_landmarks.csv``) and ``anime_3414``
(``synth_anime56.json``), both hand-placed ANIME56 points. Humans: the two selfies with the dlib 68 points
that ``pda_data.faces.detectors`` finds on them (``synth_selfie68.json``; ``test_synth`` checks them against
dlib).
Writers build the input folders in the formats the synth commands read.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from pda_data.annotations.table import annotation_frame, write_annotations
from pda_data.curation.table import portrait_frame, write_portraits
from pda_data.io.files import sha256_file
from pda_data.io.images import load_image, save_image
from pda_data.io.table import IMAGES_DIR, MANIFEST_NAME, STATUS_KEPT
from pda_data.schema import ANIME56, HUMAN68, SCHEMA_VERSION, flatten_points

FIXTURES = Path(__file__).resolve().parent / "fixtures"
ANIME = ("anime_0006.png", "anime_3414.png")
SELFIES = ("selfie_female_222.jpg", "selfie_female_2321.jpg")


def anime_points() -> dict[str, np.ndarray]:
    """ANIME56 points (56, 2) of each anime sample."""
    points = {
        k: np.asarray(v, float)
        for k, v in json.loads((FIXTURES / "synth_anime56.json").read_text())["images"].items()
    }
    with open(FIXTURES / "anime_0006_landmarks.csv", newline="") as fh:
        for row in csv.DictReader(fh):
            points[row["image"]] = np.array(
                [[float(row[f"x{i}"]), float(row[f"y{i}"])] for i in range(ANIME56.n_points)]
            )
    return points


def selfie_points() -> dict[str, np.ndarray]:
    """HUMAN68 points (68, 2) of each selfie sample."""
    doc = json.loads((FIXTURES / "synth_selfie68.json").read_text())
    return {k: HUMAN68.check_shape(v) for k, v in doc["images"].items()}


def write_anime_annotations(samples: Path, path: Path, points: dict[str, np.ndarray] | None = None) -> Path:
    """An annotation file (``pda-data landmarks import`` format) of the anime samples."""
    rows = []
    for name, pts in (points or anime_points()).items():
        image = samples / name
        rows.append(
            {
                "key": Path(name).stem,
                "path": str(image),
                "sha256": sha256_file(image),
                "width": 256,
                "height": 256,
                "points": flatten_points(pts),
                "source_format": "json",
                "source_file": "synth_anime56.json",
                "schema_version": SCHEMA_VERSION,
            }
        )
    write_annotations(annotation_frame(rows), path)
    return path


def write_portrait_folder(samples: Path, folder: Path, points: dict[str, np.ndarray] | None = None) -> Path:
    """A curated portrait folder (``crop-humans`` format, the columns synth reads) of the selfies."""
    rows = []
    for name, pts in (points or selfie_points()).items():
        key = Path(name).stem
        rel = f"{IMAGES_DIR}/{key}.png"
        save_image(folder / rel, load_image(samples / name))
        rows.append(
            {"key": key, "image": rel, "status": STATUS_KEPT, "reason": "", "landmarks": flatten_points(pts)}
        )
    write_portraits(portrait_frame(rows), folder / MANIFEST_NAME)
    return folder
