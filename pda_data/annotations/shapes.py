"""Statistics and mean shapes of annotated anime faces (``landmarks stats``, ``landmarks suggest``)."""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd

from pda_data.annotations.anime_draw import draw_anime_face
from pda_data.annotations.table import points_array
from pda_data.schema import ANIME56, LandmarkSchema


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


def landmark_box(
    points: np.ndarray, frame: tuple[float, float, float, float] = LBP_BOX_TO_LANDMARKS
) -> tuple[float, float, float, float]:
    """The square detection box (x0, y0, x1, y1) that ``points`` (K, 2) imply through ``frame``: the inverse
    of :func:`place_shape`, its side the mean of the sides that the width and the height give."""
    pts = np.asarray(points, dtype=np.float64)
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    side = float(np.mean((hi - lo) / [frame[2] - frame[0], frame[3] - frame[1]]))
    centre = (lo + hi) / 2 - side * (np.array([frame[0] + frame[2], frame[1] + frame[3]]) / 2 - 0.5)
    x0, y0 = centre - side / 2
    return float(x0), float(y0), float(x0 + side), float(y0 + side)


@functools.cache
def default_shape(samples: int = 64) -> np.ndarray:
    """Built-in unit-square mean shape: the average procedural anime face (fixed seed: always the same)."""
    rng = np.random.default_rng(0)
    return mean_shape(np.stack([draw_anime_face(rng).points for _ in range(samples)]))
