"""Validation of anime landmark annotations: complete, finite, inside the image, geometrically sane.

Every rejected image gets a :class:`Problem` whose ``code`` is a key of :data:`REASONS`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import pandas as pd

from pda_data.annotations.formats.records import BAD_FIELD, ImageAnnotation
from pda_data.io.files import NOT_REGULAR_FILE, TOO_LARGE, UNREADABLE, sha256_bytes
from pda_data.io.images import REASONS as IMAGE_REASONS
from pda_data.io.images import ImageError, read_image_file
from pda_data.schema import ANIME56, LandmarkSchema, unflatten_points

# An image file refused before reading: these problems keep the reason of pda_data.io.images.
REFUSED = (NOT_REGULAR_FILE, TOO_LARGE, UNREADABLE)

REASONS: dict[str, str] = {
    BAD_FIELD: "a field of the annotation file has the wrong type or shape",
    "wrong_count": "wrong number of points",
    "bad_label": "a point label is not a landmark index",
    "missing_index": "landmark indices missing",
    "duplicate_index": "landmark index given more than once",
    "nan": "coordinate is NaN or infinite",
    "out_of_bounds": "point outside the image",
    "image_missing": "image file not found",
    "outside_images": "image path resolves outside --images (not read)",
    **{code: IMAGE_REASONS[code] for code in REFUSED},
    "image_unreadable": "image file cannot be decoded",
    "size_mismatch": "annotated image size differs from the file",
    "image_changed": "image file changed since import (sha256)",
    "duplicate_image": "image annotated more than once",
    "geometry": "implausible face geometry",
}



@dataclass(frozen=True)
class Problem:
    """Why one image was rejected: ``code`` is a key of :data:`REASONS`, ``detail`` says exactly what."""

    name: str
    code: str
    detail: str

    def __str__(self) -> str:
        return f"{self.name}: {self.code} ({self.detail})"



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
            problem = _image_problem(row.key, row.path, row.sha256)
            if problem is not None:
                problems.append(problem)
    return problems


def _image_problem(key: str, path: str, sha256: str) -> Problem | None:
    """Whether the image of a row is still the file imported: missing, refused, or changed (sha256)."""
    if not os.path.lexists(path):
        return Problem(key, "image_missing", path)
    try:
        data = read_image_file(path)
    except ImageError as exc:
        return Problem(key, exc.reason, str(exc))
    return Problem(key, "image_changed", path) if sha256_bytes(data) != sha256 else None
