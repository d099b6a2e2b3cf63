"""Landmarks drawn on images: points coloured by group, and the Fig. 9-style outline overlay."""

from __future__ import annotations

import cv2
import numpy as np

from pda_data.schema import ANIME56, LandmarkSchema

# Groups drawn as closed outlines in overlays; the others are open polylines.
_CLOSED_GROUPS = ("left_eye", "right_eye", "mouth")


def draw_landmarks(
    image: np.ndarray,
    points: np.ndarray,
    schema: LandmarkSchema | None = None,
    radius: int | None = None,
    indices: bool = False,
    color: tuple[int, int, int] = (255, 0, 0),
) -> np.ndarray:
    """Return a copy of RGB ``image`` with ``points`` (K, 2) drawn, coloured by schema group when given."""
    out = np.ascontiguousarray(image.copy())
    pts = np.asarray(points, dtype=np.float64)
    r = radius if radius is not None else max(1, round(min(out.shape[:2]) / 128))
    groups = schema.group_of() if schema is not None else None
    for i, (x, y) in enumerate(pts):
        if not (np.isfinite(x) and np.isfinite(y)):
            continue
        c = schema.group_colors.get(groups[i], color) if schema is not None and groups else color
        centre = (round(float(x)), round(float(y)))
        cv2.circle(out, centre, r, c, -1, lineType=cv2.LINE_AA)
        if indices:
            cv2.putText(out, str(i), (centre[0] + r + 1, centre[1]), cv2.FONT_HERSHEY_PLAIN,
                        max(0.5, min(out.shape[:2]) / 512), c, 1, cv2.LINE_AA)
    return out


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
