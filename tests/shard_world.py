"""Small input folders in the exact formats `pda-data pack` reads, with real pixels and plausible landmarks.

Used by the shard/stream tests and tools/bench_stream.py: crops of ``skimage.data.astronaut()`` stand in for
coser and human portraits, crops of the shared anime samples for anime portraits; landmarks are a template
face in schema order, placed and jittered per image. Nothing here is a producer: the real ones are the
curation, annotation and synthesis commands.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import skimage.data

from pda_data.annotations.table import annotation_frame, write_annotations
from pda_data.curation.table import portrait_frame, write_portraits
from pda_data.io.images import save_image
from pda_data.io.table import IMAGES_DIR, MANIFEST_NAME, STATUS_KEPT, STATUS_REJECTED
from pda_data.schema import ANIME56, HUMAN68, LandmarkSchema, flatten_points
from pda_data.synthesis.table import synth_frame, write_synth

_CYCLE_GROUPS = {
    "left_eye": (0.35, 0.42, 0.07, 0.035),
    "right_eye": (0.65, 0.42, 0.07, 0.035),
    "outer_lip": (0.5, 0.75, 0.12, 0.05),
    "mouth": (0.5, 0.75, 0.12, 0.05),
    "inner_lip": (0.5, 0.75, 0.08, 0.025),
}
_RUN_GROUPS = {
    "left_brow": ((0.22, 0.32), (0.45, 0.32)),
    "right_brow": ((0.55, 0.32), (0.78, 0.32)),
    "nose_bridge": ((0.5, 0.4), (0.5, 0.55)),
    "nose_base": ((0.42, 0.6), (0.58, 0.6)),
    "nose": ((0.5, 0.6), (0.5, 0.6)),
}


def face_template(schema: LandmarkSchema) -> np.ndarray:
    """A frontal face in the unit square, in ``schema`` order (contour arc, brows, eye/mouth cycles)."""
    pts = np.zeros((schema.n_points, 2))
    for name, idx in schema.groups.items():
        n = len(idx)
        if name == "contour":
            theta = np.pi - np.pi * np.arange(n) / (n - 1)
            pts[list(idx)] = np.stack([0.5 + 0.35 * np.cos(theta), 0.35 + 0.55 * np.sin(theta)], 1)
        elif name in _CYCLE_GROUPS:
            cx, cy, rx, ry = _CYCLE_GROUPS[name]
            # Clockwise on screen from the image-left corner, as both schemas define their cycles.
            a = np.pi + 2 * np.pi * np.arange(n) / n
            pts[list(idx)] = np.stack([cx + rx * np.cos(a), cy + ry * np.sin(a)], 1)
        else:
            (x0, y0), (x1, y1) = _RUN_GROUPS[name]
            t = np.linspace(0, 1, n)
            pts[list(idx)] = np.stack([x0 + (x1 - x0) * t, y0 + (y1 - y0) * t], 1)
    return pts


def _crop(rng: np.random.Generator, image: np.ndarray, size: int) -> np.ndarray:
    h, w = image.shape[:2]
    side = int(rng.uniform(0.6, 0.95) * min(h, w))
    y0, x0 = rng.integers(0, h - side + 1), rng.integers(0, w - side + 1)
    return cv2.resize(image[y0 : y0 + side, x0 : x0 + side], (size, size), interpolation=cv2.INTER_AREA)


def _landmarks(rng: np.random.Generator, schema: LandmarkSchema, size: int) -> np.ndarray:
    scale = rng.uniform(0.8, 0.95) * size
    offset = (size - scale) / 2 + rng.uniform(-0.03, 0.03, 2) * size
    return face_template(schema) * scale + offset + rng.normal(0, 0.5, (schema.n_points, 2))


def portrait_folder(
    out: Path, n: int, *, prefix: str, size: int = 256, seed: int = 0, rejected: int = 1
) -> Path:
    """A curated portrait folder (crop-cosers / crop-humans layout) of ``n`` kept faces plus rejected rows."""
    rng = np.random.default_rng(seed)
    base = skimage.data.astronaut()
    rows = []
    for i in range(n):
        key = f"{prefix}_{i:05d}"
        rgb = _crop(rng, base, size)
        save_image(out / IMAGES_DIR / f"{key}.png", rgb)
        rows.append(
            {
                "key": key,
                "source": f"astronaut#{i}",
                "source_sha256": f"{i:064x}",
                "status": STATUS_KEPT,
                "reason": "",
                "detector": "dlib-hog",
                "score": 1.0,
                "box": [0.0, 0.0, 10.0, 10.0],
                "yaw": float(rng.normal(0, 5)),
                "pitch": float(rng.normal(0, 5)),
                "roll": 0.0,
                "landmarks": flatten_points(_landmarks(rng, HUMAN68, size)),
                "crop_size": size,
                "phash": f"{i:016x}",
                "image": f"{IMAGES_DIR}/{key}.png",
            }
        )
    for j in range(rejected):
        rows.append(
            {
                "key": f"{prefix}_rej{j}",
                "source": "bad.jpg",
                "source_sha256": "",
                "status": STATUS_REJECTED,
                "reason": "no_face",
                "detector": "dlib-hog",
                "score": 0.0,
                "box": [0.0] * 4,
                "yaw": np.nan,
                "pitch": np.nan,
                "roll": np.nan,
                "landmarks": [],
                "crop_size": size,
                "phash": "",
                "image": "",
            }
        )
    write_portraits(portrait_frame(rows), out / MANIFEST_NAME)
    return out


def anime_annotations(out: Path, samples_dir: Path, n: int, *, size: int = 256, seed: int = 1) -> Path:
    """An anime annotation Parquet (landmarks import layout) over crops of the shared anime samples."""
    rng = np.random.default_rng(seed)
    bases = [
        cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB) for p in sorted(samples_dir.glob("anime_*.png"))
    ]
    rows = []
    for i in range(n):
        key = f"anime_{i:05d}"
        path = out / "anime_images" / f"{key}.png"
        save_image(path, _crop(rng, bases[i % len(bases)], size))
        rows.append(
            {
                "key": key,
                "path": str(path.resolve()),
                "sha256": "",
                "width": size,
                "height": size,
                "points": flatten_points(_landmarks(rng, ANIME56, size)),
                "source_format": "test",
                "source_file": "",
                "schema_version": 1,
            }
        )
    ann = out / "anime.parquet"
    write_annotations(annotation_frame(rows), ann)
    return ann


def synth_folder(
    out: Path, samples_dir: Path, n: int, *, size: int = 256, seed: int = 2, job: str = "structure"
) -> Path:
    """A classifier synthesis folder of ``job`` (structure or highlight): label 1 = legit, 0 = an eye removed
    (3 structure points, kept for structure only) or a highlight."""
    rng = np.random.default_rng(seed)
    bases = [
        cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB) for p in sorted(samples_dir.glob("anime_*.png"))
    ]
    rows = []
    for i in range(n):
        key = f"struct_{i:05d}"
        lm = _landmarks(rng, ANIME56, size)
        sp = ANIME56.structure_points(lm)
        label = i % 2
        channels = [0, 1, 2, 3] if label else [1, 2, 3]
        save_image(out / IMAGES_DIR / f"{key}.png", _crop(rng, bases[i % len(bases)], size))
        rows.append(
            {
                "key": key,
                "image": f"{IMAGES_DIR}/{key}.png",
                "status": STATUS_KEPT,
                "reason": "",
                "label": label,
                "kind": "legit" if label else ("eye_removed" if job == "structure" else "highlight"),
                "landmarks": flatten_points(lm),
                "structure_points": flatten_points(sp[channels]),
                "structure_channels": channels,
                "anime_key": f"anime_{i}",
                "human_key": "",
            }
        )
    write_synth(job, synth_frame(job, rows), out / MANIFEST_NAME)
    return out
