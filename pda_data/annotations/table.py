"""The canonical anime landmark annotation file: validation, import, Parquet I/O, statistics, mean shapes.

Annotators' exports (see :mod:`pda_data.annotations.formats`) become one Parquet file with a row per valid
image: ``key``, ``path`` (absolute), ``sha256``, ``width``, ``height``, ``points`` (112 floats, ANIME56 in
image pixels), ``source_format``, ``source_file``, ``schema_version``. Everything downstream trusts that
file, so an image gets in only if its 56 points are complete, finite, inside the image and geometrically sane.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import cv2
import numpy as np
import pandas as pd

from pda_data.annotations.formats.records import ImageAnnotation
from pda_data.curation.manifest import ManifestError, read_manifest, write_manifest
from pda_data.demo.anime_draw import draw_anime_face
from pda_data.io.files import atomic_write_bytes, sha256_bytes, sha256_file
from pda_data.io.images import REASONS as IMAGE_REASONS
from pda_data.io.images import ImageError, encode_image, load_image
from pda_data.schema import ANIME56, SCHEMA_VERSION, LandmarkSchema, flatten_points, unflatten_points
from pda_data.viz.sheet import draw_landmarks

COLUMNS: tuple[str, ...] = (
    "key",
    "path",
    "sha256",
    "width",
    "height",
    "points",
    "source_format",
    "source_file",
    "schema_version",
)

REASONS: dict[str, str] = {
    "wrong_count": "wrong number of points",
    "bad_label": "a point label is not a landmark index",
    "missing_index": "landmark indices missing",
    "duplicate_index": "landmark index given more than once",
    "nan": "coordinate is NaN or infinite",
    "out_of_bounds": "point outside the image",
    "image_missing": "image file not found",
    "image_unreadable": "image file cannot be decoded",
    "size_mismatch": "annotated image size differs from the file",
    "image_changed": "image file changed since import (sha256)",
    "duplicate_image": "image annotated more than once",
    "geometry": "implausible face geometry",
}


class AnnotationError(ValueError):
    """An annotation file that is missing, unreadable or not of this schema version."""


@dataclass(frozen=True)
class Problem:
    """Why one image was rejected: ``code`` is a key of :data:`REASONS`, ``detail`` says exactly what."""

    name: str
    code: str
    detail: str

    def __str__(self) -> str:
        return f"{self.name}: {self.code} ({self.detail})"


# ------------------------------------------------------------------------------------------- validation


def ordered_points(
    ann: ImageAnnotation, schema: LandmarkSchema = ANIME56
) -> tuple[np.ndarray | None, tuple[str, str]]:
    """The record's points in index order (n_points, 2), or ``None`` and (code, detail) saying why not."""
    n = schema.n_points
    if ann.problem is not None:
        return None, ann.problem
    pts = np.asarray(ann.points, dtype=np.float64).reshape(-1, 2)
    if ann.labels is None:
        if len(pts) != n:
            return None, ("wrong_count", f"{len(pts)} points, expected {n}")
        return pts, ("", "")
    indices = []
    for label in ann.labels:
        text = label.strip()
        if not text.isdigit() or int(text) >= n:
            return None, ("bad_label", f"label {label!r} is not an index 0..{n - 1}")
        indices.append(int(text))
    counts = np.bincount(np.asarray(indices, dtype=np.int64), minlength=n)
    if (counts > 1).any():
        return None, (
            "duplicate_index",
            "index " + ", ".join(map(str, np.flatnonzero(counts > 1))) + " given twice",
        )
    if (counts == 0).any():
        missing = np.flatnonzero(counts == 0)
        shown = ", ".join(map(str, missing[:8])) + (", ..." if len(missing) > 8 else "")
        return None, ("missing_index", f"{len(missing)} missing: {shown}")
    out = np.empty((n, 2))
    out[indices] = pts
    return out, ("", "")


def _segments_cross(p1: np.ndarray, p2: np.ndarray, q1: np.ndarray, q2: np.ndarray) -> bool:
    def cross(o: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
        return float((a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0]))

    d1, d2 = cross(q1, q2, p1), cross(q1, q2, p2)
    d3, d4 = cross(p1, p2, q1), cross(p1, p2, q2)
    return d1 * d2 < 0 and d3 * d4 < 0


def polyline_self_crosses(points: np.ndarray) -> bool:
    """Whether any two non-adjacent segments of an open polyline properly intersect."""
    n = len(points) - 1
    return any(
        _segments_cross(points[i], points[i + 1], points[j], points[j + 1])
        for i in range(n)
        for j in range(i + 2, n)
    )


def geometry_problems(points: np.ndarray, schema: LandmarkSchema = ANIME56) -> list[str]:
    """Names of the violated sanity rules for an upright face ("left" = image-left; y grows downwards).

    Rules: ``left_right`` (every image-left part is left of its image-right twin), ``eyes_above_mouth``,
    ``brows_above_eyes``, ``nose_between_eyes_and_mouth``, ``contour_crossing`` (the contour polyline
    crosses itself). A mirrored labelling (left and right swapped) breaks ``left_right``.
    """
    pts = schema.check_shape(points)
    g = schema.groups
    left_eye, right_eye = schema.eye_centres(pts)
    mouth = pts[list(g["mouth"])].mean(axis=0)
    nose = pts[schema.nose_tip]
    left_brow, right_brow = pts[list(g["left_brow"])].mean(axis=0), pts[list(g["right_brow"])].mean(axis=0)
    contour = pts[list(schema.contour)]
    half = len(contour) // 2
    mouth_l, mouth_r = pts[list(schema.mouth_corners)]
    problems = []
    pairs = [
        (left_eye, right_eye),
        (left_brow, right_brow),
        (contour[0], contour[-1]),
        (mouth_l, mouth_r),
        (contour[:half].mean(axis=0), contour[half + 1 :].mean(axis=0)),
    ]
    eye_corners = [(pts[eye[0]], pts[eye[len(eye) // 2]]) for eye in (schema.left_eye, schema.right_eye)]
    if any(a[0] >= b[0] for a, b in pairs + eye_corners):
        problems.append("left_right")
    if max(left_eye[1], right_eye[1]) >= mouth[1]:
        problems.append("eyes_above_mouth")
    if left_brow[1] >= left_eye[1] or right_brow[1] >= right_eye[1]:
        problems.append("brows_above_eyes")
    if not (min(left_eye[1], right_eye[1]) < nose[1] < mouth[1]):
        problems.append("nose_between_eyes_and_mouth")
    if polyline_self_crosses(contour):
        problems.append("contour_crossing")
    return problems


def point_problem(
    points: np.ndarray, width: int, height: int, schema: LandmarkSchema = ANIME56
) -> tuple[str, str] | None:
    """First problem of complete points in a ``width`` x ``height`` image: nan, out_of_bounds or geometry."""
    pts = schema.check_shape(points)
    bad = np.flatnonzero(~np.isfinite(pts).all(axis=1))
    if len(bad):
        return "nan", f"point {bad[0]} is {tuple(pts[bad[0]])}"
    # Pixel centres sit on integers, so the image spans [-0.5, size - 0.5].
    outside = np.flatnonzero(
        (pts[:, 0] < -0.5) | (pts[:, 0] > width - 0.5) | (pts[:, 1] < -0.5) | (pts[:, 1] > height - 0.5)
    )
    if len(outside):
        i = outside[0]
        return "out_of_bounds", f"point {i} at ({pts[i, 0]:g}, {pts[i, 1]:g}) outside {width}x{height}"
    rules = geometry_problems(pts, schema)
    if rules:
        return "geometry", ", ".join(rules)
    return None


# ----------------------------------------------------------------------------------------------- import


def image_key(name: str) -> str:
    """Row key of an annotated image name: its relative path without suffix, "/" as "__"."""
    parts = [
        p for p in PurePosixPath(name.replace("\\", "/")).with_suffix("").parts if p not in ("", ".", "/")
    ]
    return "__".join(parts)


def resolve_image(name: str, images: Path) -> Path | None:
    """The image an annotation names: ``images/name``, else ``images/<basename>``; ``None`` if neither is."""
    rel = name.replace("\\", "/")
    for candidate in (images / rel.lstrip("/"), images / PurePosixPath(rel).name):
        if candidate.is_file():
            return candidate
    return None


def scale_points(points: np.ndarray, old: tuple[int, int], new: tuple[int, int]) -> np.ndarray:
    """Points of a (width, height) ``old`` image in its copy resized to ``new`` (pixel centres: integers)."""
    factor = np.array([new[0] / old[0], new[1] / old[1]])
    return (np.asarray(points, dtype=np.float64) + 0.5) * factor - 0.5


def import_annotations(
    annotations: Iterable[ImageAnnotation],
    images: str | Path,
    source_format: str,
    *,
    size: int | None = None,
    resized_dir: str | Path | None = None,
) -> tuple[pd.DataFrame, list[Problem]]:
    """Validate parsed records against their images; return the table of valid rows and the rejected ones.

    With ``size`` every valid image is resized to ``size`` x ``size`` (written as PNG under ``resized_dir``),
    its points scaled exactly, and the row's path, sha256 and size describe the resized copy.
    """
    root = Path(images).resolve()
    rows: list[dict] = []
    problems: list[Problem] = []
    seen: set[str] = set()
    for ann in annotations:
        name = ann.name
        points, (code, detail) = ordered_points(ann)
        if points is None:
            problems.append(Problem(name, code, detail))
            continue
        key = image_key(name)
        if key in seen:
            problems.append(Problem(name, "duplicate_image", f"key {key!r} already imported"))
            continue
        path = resolve_image(name, root)
        if path is None:
            problems.append(Problem(name, "image_missing", f"not found under {root}"))
            continue
        try:
            data = path.read_bytes()
            rgb = load_image(data, str(path))
        except ImageError as exc:
            problems.append(Problem(name, "image_unreadable", IMAGE_REASONS.get(exc.reason, exc.reason)))
            continue
        except OSError as exc:
            problems.append(Problem(name, "image_unreadable", exc.strerror or str(exc)))
            continue
        height, width = rgb.shape[:2]
        if (ann.width, ann.height) != (None, None) and (ann.width, ann.height) != (width, height):
            problems.append(
                Problem(name, "size_mismatch", f"annotated {ann.width}x{ann.height}, file {width}x{height}")
            )
            continue
        bad = point_problem(points, width, height)
        if bad is not None:
            problems.append(Problem(name, *bad))
            continue
        seen.add(key)
        sha = sha256_bytes(data)
        if size is not None:
            if resized_dir is None:
                raise ValueError("resizing needs resized_dir")
            points = scale_points(points, (width, height), (size, size))
            interp = cv2.INTER_AREA if size < min(width, height) else cv2.INTER_CUBIC
            encoded = encode_image(cv2.resize(rgb, (size, size), interpolation=interp), "png")
            path = Path(resized_dir).resolve() / f"{key}.png"
            atomic_write_bytes(path, encoded)
            sha, width, height = sha256_bytes(encoded), size, size
        rows.append(
            {
                "key": key,
                "path": str(path),
                "sha256": sha,
                "width": int(width),
                "height": int(height),
                "points": flatten_points(points),
                "source_format": source_format,
                "source_file": str(Path(ann.source_file).resolve()) if ann.source_file else "",
                "schema_version": SCHEMA_VERSION,
            }
        )
    return annotation_frame(rows), problems


def annotation_frame(rows: list[dict]) -> pd.DataFrame:
    """A table with exactly :data:`COLUMNS` (typed even when empty)."""
    df = pd.DataFrame(rows, columns=list(COLUMNS))
    return df.astype({"width": "int64", "height": "int64", "schema_version": "int64"})


# --------------------------------------------------------------------------------------------- file I/O


def write_annotations(df: pd.DataFrame, path: str | Path) -> None:
    """Write the canonical annotation Parquet file atomically."""
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"annotation table lacks column(s) {', '.join(missing)}")
    write_manifest(df[list(COLUMNS)].reset_index(drop=True), path)


def read_annotations(path: str | Path) -> pd.DataFrame:
    """Read and check an annotation file: columns, schema version and 112 values per ``points`` row."""
    try:
        df = read_manifest(path, COLUMNS)
    except ManifestError as exc:
        raise AnnotationError(str(exc)) from exc
    versions = set(df["schema_version"].tolist())
    if versions - {SCHEMA_VERSION}:
        raise AnnotationError(
            f"{path}: schema version {sorted(versions)} (this toolkit reads {SCHEMA_VERSION})"
        )
    lengths = {len(v) for v in df["points"]}
    if lengths - {2 * ANIME56.n_points}:
        raise AnnotationError(
            f"{path}: points rows of length {sorted(lengths)}, expected {2 * ANIME56.n_points}"
        )
    return df


def points_array(df: pd.DataFrame) -> np.ndarray:
    """All rows' points as (N, 56, 2)."""
    if len(df) == 0:
        return np.zeros((0, ANIME56.n_points, 2))
    return np.stack([unflatten_points(v) for v in df["points"]])


def recheck(df: pd.DataFrame, verify_images: bool = True) -> list[Problem]:
    """Re-validate an annotation table: points, geometry and (optionally) that each image still matches."""
    problems = []
    for row in df.itertuples(index=False):
        pts = unflatten_points(row.points)
        if len(pts) != ANIME56.n_points:
            problems.append(Problem(row.key, "wrong_count", f"{len(pts)} points"))
            continue
        bad = point_problem(pts, int(row.width), int(row.height))
        if bad is not None:
            problems.append(Problem(row.key, *bad))
        if verify_images:
            if not os.path.isfile(row.path):
                problems.append(Problem(row.key, "image_missing", row.path))
            elif sha256_file(row.path) != row.sha256:
                problems.append(Problem(row.key, "image_changed", row.path))
    return problems


# ----------------------------------------------------------------------------------- statistics, shapes


def group_statistics(df: pd.DataFrame, schema: LandmarkSchema = ANIME56) -> pd.DataFrame:
    """Per landmark group: mean centre and extent as fractions of the image, and the spread of the centre."""
    pts = points_array(df)
    if len(pts) == 0:
        return pd.DataFrame(
            columns=["group", "points", "centre_x", "centre_y", "width", "height", "centre_std"]
        )
    size = np.stack([df["width"].to_numpy(float), df["height"].to_numpy(float)], axis=1)[:, None, :]
    rel = (pts + 0.5) / size
    rows = []
    for name, idx in schema.groups.items():
        sub = rel[:, list(idx)]
        centre = sub.mean(axis=1)
        extent = sub.max(axis=1) - sub.min(axis=1)
        rows.append(
            {
                "group": name,
                "points": len(idx),
                "centre_x": centre[:, 0].mean(),
                "centre_y": centre[:, 1].mean(),
                "width": extent[:, 0].mean(),
                "height": extent[:, 1].mean(),
                "centre_std": float(np.sqrt(centre.var(axis=0).sum())),
            }
        )
    return pd.DataFrame(rows)


def mean_shape(points: np.ndarray) -> np.ndarray:
    """Mean of (N, K, 2) shapes after mapping each one's bounding box to the unit square (K, 2)."""
    pts = np.asarray(points, dtype=np.float64)
    lo = pts.min(axis=1, keepdims=True)
    span = np.maximum(pts.max(axis=1, keepdims=True) - lo, 1e-9)
    return ((pts - lo) / span).mean(axis=0)


# Where the landmarks' bounding box sits inside an anime-lbp detection box (x0, y0, x1, y1 as fractions),
# measured on the demo world's procedural portraits and the real sample portraits.
LBP_BOX_TO_LANDMARKS = (0.18, 0.26, 0.80, 0.81)


def place_shape(
    unit_shape: np.ndarray,
    box: tuple[float, float, float, float],
    frame: tuple[float, float, float, float] = LBP_BOX_TO_LANDMARKS,
) -> np.ndarray:
    """Map a unit-square shape into a detection ``box`` through the landmark ``frame`` inside it."""
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    lo = np.array([x0 + frame[0] * w, y0 + frame[1] * h])
    hi = np.array([x0 + frame[2] * w, y0 + frame[3] * h])
    return lo + np.asarray(unit_shape) * (hi - lo)


def to_image_annotations(df: pd.DataFrame) -> tuple[Path, list[ImageAnnotation]]:
    """Records for export: image names relative to the deepest folder holding every image (returned too)."""
    paths = [Path(p) for p in df["path"]]
    root = Path(os.path.commonpath([str(p.parent) for p in paths])) if paths else Path(".")
    anns = [
        ImageAnnotation(
            name=p.relative_to(root).as_posix(), points=unflatten_points(v), width=int(w), height=int(h)
        )
        for p, v, w, h in zip(paths, df["points"], df["width"], df["height"], strict=True)
    ]
    return root, anns


# ------------------------------------------------------------------------------------- overlays, shapes

# Groups drawn as closed outlines in overlays; the others are open polylines.
_CLOSED_GROUPS = ("left_eye", "right_eye", "mouth")


def landmark_overlay(
    rgb: np.ndarray,
    points: np.ndarray,
    *,
    indices: bool = False,
    min_side: int = 512,
    schema: LandmarkSchema = ANIME56,
) -> np.ndarray:
    """Fig. 9-style overlay: the image enlarged to at least ``min_side``, each group's outline and its points
    coloured by group, optionally numbered."""
    h, w = rgb.shape[:2]
    scale = max(1.0, min_side / min(h, w))
    big = (
        cv2.resize(rgb, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_CUBIC)
        if scale > 1
        else rgb
    )
    pts = (schema.check_shape(points) + 0.5) * scale - 0.5
    out = np.ascontiguousarray(big.copy())
    for name, idx in schema.groups.items():
        if len(idx) < 2:
            continue
        line = np.round(pts[list(idx)] * 16).astype(np.int32)
        cv2.polylines(
            out, [line], name in _CLOSED_GROUPS, schema.group_colors.get(name, (255, 0, 0)), 1, cv2.LINE_AA, 4
        )
    return draw_landmarks(out, pts, schema, radius=max(2, round(scale * 1.5)), indices=indices)


@functools.cache
def default_shape(samples: int = 64) -> np.ndarray:
    """Built-in unit-square mean shape: the average procedural anime face (fixed seed: always the same)."""
    rng = np.random.default_rng(0)
    return mean_shape(np.stack([draw_anime_face(rng).points for _ in range(samples)]))
