"""Paste-back: translated face crops blended into the photo they came from, through their crops' affines.

Each crop is mapped into the photo by the inverse of its photo->crop affine, with a mask that fades out over
``feather`` of the crop side at its border. Several faces are composited in order of size, largest on top,
and a face fills only the coverage the faces above it left: face k gets the weight
``w_k = a_k * prod_{j<k} (1 - a_j)`` (``a`` its mask), the photo keeps ``1 - sum(w)``. Every output pixel
is therefore one convex combination of the photo and the faces' pixels: where two masks overlap, nothing is
blended a second time over an earlier blend, and pixels outside every mask keep their exact value.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

PASTE_FEATHER = 0.08  # fraction of the crop side over which a pasted crop fades into the photo


@dataclass(frozen=True)
class Pasted:
    """A composite (H, W, 3) uint8 and its face coverage (H, W) float32 in [0, 1] (0: photo untouched)."""

    image: np.ndarray
    coverage: np.ndarray


def crop_mask(size: int, feather: float = PASTE_FEATHER) -> np.ndarray:
    """(size, size) float32 mask: 1 inside, a linear ramp over ``feather * size`` pixels to 0 at the edge."""
    ramp = max(1, round(feather * size))
    edge = np.minimum(np.arange(size), np.arange(size)[::-1]).astype(np.float32)
    fade = np.clip(edge / ramp, 0.0, 1.0)
    return np.outer(fade, fade)


def _roi(affine: np.ndarray, size: int, shape: tuple[int, int]) -> tuple[int, int, int, int]:
    """The photo rectangle (x0, y0, x1, y1) that the crop square covers, clipped to the photo."""
    inv = cv2.invertAffineTransform(affine)
    corners = np.array([[0, 0], [size, 0], [0, size], [size, size]], np.float64) @ inv[:, :2].T + inv[:, 2]
    (x0, y0), (x1, y1) = np.floor(corners.min(0)) - 1, np.ceil(corners.max(0)) + 1
    h, w = shape
    return int(max(x0, 0)), int(max(y0, 0)), int(min(x1, w)), int(min(y1, h))


def paste_faces(
    photo: np.ndarray,
    crops: Sequence[np.ndarray],
    affines: Sequence[np.ndarray],
    feather: float = PASTE_FEATHER,
) -> Pasted:
    """Blend square ``crops`` (S, S, 3) uint8, given largest face first, into a copy of ``photo`` (H, W, 3)
    at their photo->crop ``affines`` (2x3)."""
    h, w = photo.shape[:2]
    faces = np.zeros((h, w, 3), np.float32)
    remaining = np.ones((h, w), np.float32)
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    for crop, affine in zip(crops, affines, strict=True):
        size = crop.shape[0]
        x0, y0, x1, y1 = _roi(affine, size, (h, w))
        if x1 <= x0 or y1 <= y0:
            continue
        local = affine.astype(np.float64).copy()
        local[:, 2] += local[:, :2] @ np.array([x0, y0], np.float64)  # the affine of the ROI's pixels
        roi = (x1 - x0, y1 - y0)
        warped = cv2.warpAffine(crop, local, roi, flags=flags, borderMode=cv2.BORDER_REPLICATE)
        alpha = cv2.warpAffine(crop_mask(size, feather), local, roi, flags=flags,
                               borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        weight = alpha * remaining[y0:y1, x0:x1]
        faces[y0:y1, x0:x1] += warped.astype(np.float32) * weight[..., None]
        remaining[y0:y1, x0:x1] -= weight
    blend = faces + photo.astype(np.float32) * remaining[..., None]
    return Pasted(np.clip(blend + 0.5, 0, 255).astype(np.uint8), 1.0 - remaining)
