"""Facial masks from landmarks, for both schemas: face region, forehead, eyes and mouth.

All functions take landmarks as (P, 2) image pixels in the given schema and an output ``shape`` (H, W),
and return float32 masks in [0, 1]. Points are looked up through schema groups only.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
from scipy.interpolate import splev, splprep

from pda_data.schema import LandmarkSchema

_SHIFT = 4  # cv2 fixed-point bits: polygons are filled with 1/16 px precision
_PART_ALIASES: dict[str, tuple[str, ...]] = {"mouth": ("mouth", "outer_lip")}


def _group(points: np.ndarray, schema: LandmarkSchema, name: str) -> np.ndarray:
    return points[list(schema.groups[name])]


def face_axes(points: np.ndarray, schema: LandmarkSchema) -> tuple[np.ndarray, float]:
    """Unit "up" vector of the face (chin towards brows) and the chin-to-brow distance in pixels."""
    pts = schema.check_shape(points)
    contour = _group(pts, schema, "contour")
    chin = contour[len(contour) // 2]
    brows = np.concatenate([_group(pts, schema, "left_brow"), _group(pts, schema, "right_brow")])
    up = brows.mean(0) - chin
    height = float(np.hypot(*up))
    if height < 1e-6:
        raise ValueError("degenerate landmarks: brows coincide with the chin")
    return up / height, height


def smooth_closed_curve(points: np.ndarray, samples: int = 120) -> np.ndarray:
    """A periodic interpolating cubic spline through ``points`` (K, 2), sampled at ``samples`` points."""
    pts = np.asarray(points, dtype=np.float64)
    keep = np.ones(len(pts), bool)
    keep[1:] = np.hypot(*np.diff(pts, axis=0).T) > 1e-6  # splprep rejects repeated consecutive points
    pts = pts[keep]
    if len(pts) < 4:
        raise ValueError(f"need at least 4 distinct points for a closed curve, got {len(pts)}")
    closed = np.vstack([pts, pts[:1]])
    tck, _ = splprep(closed.T, s=0, per=1, k=3)
    x, y = splev(np.linspace(0.0, 1.0, samples, endpoint=False), tck)
    return np.stack([x, y], -1)


def face_outline(points: np.ndarray, schema: LandmarkSchema, brow_lift: float = 0.08) -> np.ndarray:
    """The closed face curve: through the contour, then back over the brows raised by ``brow_lift``.

    ``brow_lift`` is a fraction of the chin-to-brow distance, so the brows themselves fall inside the mask.
    """
    pts = schema.check_shape(points)
    up, height = face_axes(pts, schema)
    brows = np.concatenate([_group(pts, schema, "left_brow"), _group(pts, schema, "right_brow")])
    ring = np.concatenate([_group(pts, schema, "contour"), (brows + up * brow_lift * height)[::-1]])
    return smooth_closed_curve(ring)


def _fill(polygon: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    mask = np.zeros(shape, np.uint8)
    fixed = np.round(np.asarray(polygon) * (1 << _SHIFT)).astype(np.int32)
    cv2.fillPoly(mask, [fixed], 255, lineType=cv2.LINE_AA, shift=_SHIFT)
    return mask.astype(np.float32) / 255.0


def feathered(mask: np.ndarray, feather: float) -> np.ndarray:
    """Soften a mask with a Gaussian of ``feather`` pixels (sigma); 0 returns it unchanged."""
    if feather <= 0:
        return mask
    return cv2.GaussianBlur(mask, (0, 0), feather)


def face_mask(
    points: np.ndarray,
    schema: LandmarkSchema,
    shape: tuple[int, int],
    feather: float = 0.0,
    brow_lift: float = 0.08,
) -> np.ndarray:
    """Face region (contour curve closed over the brows), optionally feathered, float32 (H, W) in [0, 1]."""
    return feathered(_fill(face_outline(points, schema, brow_lift), shape), feather)


def forehead_mask(
    points: np.ndarray, schema: LandmarkSchema, shape: tuple[int, int], feather: float = 0.0
) -> np.ndarray:
    """Everything above the line through the contour ends and the brows, up to one face height higher."""
    pts = schema.check_shape(points)
    up, height = face_axes(pts, schema)
    contour = _group(pts, schema, "contour")
    line = np.concatenate(
        [
            contour[:1],
            _group(pts, schema, "left_brow"),
            _group(pts, schema, "right_brow"),
            contour[-1:],
        ]
    )
    polygon = np.concatenate([line, (line + up * height * 1.5)[::-1]])
    return feathered(_fill(polygon, shape), feather)


def part_mask(
    points: np.ndarray,
    schema: LandmarkSchema,
    shape: tuple[int, int],
    parts: Sequence[str],
    grow: float = 0.0,
    feather: float = 0.0,
) -> np.ndarray:
    """Union of the convex hulls of the named groups, dilated by ``grow`` pixels.

    ``"mouth"`` names the mouth of either schema (ANIME56 ``mouth``, HUMAN68 ``outer_lip``).
    """
    pts = schema.check_shape(points)
    mask = np.zeros(shape, np.float32)
    for part in parts:
        names = [n for n in _PART_ALIASES.get(part, (part,)) if n in schema.groups]
        if not names:
            raise KeyError(f"{schema.name} has no landmark group {part!r}")
        hull = cv2.convexHull(_group(pts, schema, names[0]).astype(np.float32))[:, 0]
        mask = np.maximum(mask, _fill(hull, shape))
    if grow > 0:
        radius = int(np.ceil(grow))
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
        mask = cv2.dilate(mask, kernel)
    return feathered(mask, feather)


def eye_mask(
    points: np.ndarray, schema: LandmarkSchema, shape: tuple[int, int], grow: float = 0.0
) -> np.ndarray:
    """Both eyes (convex hulls dilated by ``grow`` px)."""
    return part_mask(points, schema, shape, ("left_eye", "right_eye"), grow)


def mouth_mask(
    points: np.ndarray, schema: LandmarkSchema, shape: tuple[int, int], grow: float = 0.0
) -> np.ndarray:
    """The mouth (convex hull dilated by ``grow`` px)."""
    return part_mask(points, schema, shape, ("mouth",), grow)
