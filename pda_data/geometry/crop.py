"""Face-crop geometry: the curation head crop, and a crop -> model-input resize that landmarks follow exactly.

Both curation and ``pda-train translate`` frame faces with :func:`crop_face`; the training stream and
``translate`` bring crops to the model's size with :func:`resize_to_model`, so a landmark means the same
pixel in training and at inference. Pixel centres follow :mod:`pda_data.schema`: pixel i covers [i - 0.5,
i + 0.5], and the output pixel u of a resize from w to s pixels samples the input at (u + 0.5) * w / s - 0.5
(the map ``cv2.resize`` implements).
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from pda_data.schema import HUMAN68

# The crop centre sits this fraction of the face size above the landmarks' centre, so the hair fits.
HEAD_SHIFT = 0.15


def crop_face(
    rgb: np.ndarray, points68: np.ndarray, *, margin: float, size: int, align: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Square head crop of a face: (size x size crop, the 68 points in crop pixels, 2x3 affine image->crop).

    The face size is the larger side of the landmarks' bounding box (brows to chin); the crop side is that
    times ``1 + 2 * margin`` and its centre sits a little above the landmarks' centre, so ``margin=0.5`` holds
    the hair and a bit of neck. ``align`` rotates the crop so the eye centres are level. Areas outside the
    photo repeat its border pixels.
    """
    pts = HUMAN68.check_shape(points68)
    angle = 0.0
    if align:
        left, right = HUMAN68.eye_centres(pts)
        angle = math.atan2(right[1] - left[1], right[0] - left[0])
    cos, sin = math.cos(angle), math.sin(angle)
    to_level = np.array([[cos, sin], [-sin, cos]])  # rotation by -angle
    origin = pts.mean(axis=0)
    local = (pts - origin) @ to_level.T
    lo, hi = local.min(axis=0), local.max(axis=0)
    face = float(max(hi - lo))
    side = max(face, 1.0) * (1.0 + 2.0 * margin)
    centre = origin + ((lo + hi) / 2.0 - np.array([0.0, HEAD_SHIFT * face])) @ to_level
    linear = (size / side) * to_level
    shift = np.full(2, (size - 1) / 2.0) - linear @ centre
    matrix = np.hstack([linear, shift[:, None]])
    crop = warp_square(rgb, matrix, size)
    return crop, pts @ linear.T + shift, matrix


def warp_square(rgb: np.ndarray, matrix: np.ndarray, size: int) -> np.ndarray:
    """``cv2.warpAffine`` to a size x size square, area-averaging first when it shrinks (no aliasing)."""
    scale = math.sqrt(abs(np.linalg.det(matrix[:, :2])))
    h, w = rgb.shape[:2]
    border = {"borderMode": cv2.BORDER_REPLICATE}
    if scale >= 0.9:
        flags = cv2.INTER_CUBIC if scale > 1.1 else cv2.INTER_LINEAR
        return cv2.warpAffine(rgb, matrix, (size, size), flags=flags, **border)
    corners = np.array([[0, 0, 1], [size - 1, 0, 1], [0, size - 1, 1], [size - 1, size - 1, 1]], np.float64)
    back = corners @ cv2.invertAffineTransform(matrix).T
    x0, y0 = np.clip(np.floor(back.min(axis=0)).astype(int) - 2, 0, [w - 1, h - 1])
    x1, y1 = np.clip(np.ceil(back.max(axis=0)).astype(int) + 3, [x0 + 1, y0 + 1], [w, h])
    roi = rgb[y0:y1, x0:x1]
    nw, nh = max(1, round(roi.shape[1] * scale)), max(1, round(roi.shape[0] * scale))
    small = cv2.resize(roi, (nw, nh), interpolation=cv2.INTER_AREA)
    fx, fy = nw / roi.shape[1], nh / roi.shape[0]
    # Pixel centre u of ``small`` is image x = (u + 0.5) / fx - 0.5 + x0 (and likewise for y).
    to_image = np.array([[1 / fx, 0, 0.5 / fx - 0.5 + x0], [0, 1 / fy, 0.5 / fy - 0.5 + y0]])
    linear = matrix[:, :2] @ to_image[:, :2]
    shift = matrix[:, :2] @ to_image[:, 2] + matrix[:, 2]
    composed = np.hstack([linear, shift[:, None]])
    return cv2.warpAffine(small, composed, (size, size), flags=cv2.INTER_LINEAR, **border)


def resize_to_model(
    image: np.ndarray,
    points: np.ndarray,
    size: int,
    *,
    box: tuple[int, int, int, int] | None = None,
    out: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Resize ``image[box]`` to a size x size model input; return it and ``points`` (..., 2) in its pixels.

    ``box`` is (x0, y0, width, height) in image pixels, the whole image when None. Output pixel u samples
    the box at (u + 0.5) * width / size - 0.5, so a point p maps to (p - x0 + 0.5) * size / width - 0.5.
    Shrinking on both axes averages areas; otherwise the resize is bilinear. ``out``, a (size, size, C)
    uint8 array, receives the pixels (the stream reuses one buffer per batch slot).
    """
    x0, y0, w, h = (0, 0, image.shape[1], image.shape[0]) if box is None else box
    scale = np.array([size / w, size / h])
    shift = np.array([(0.5 - x0) * scale[0] - 0.5, (0.5 - y0) * scale[1] - 0.5])
    interp = cv2.INTER_AREA if w > size and h > size else cv2.INTER_LINEAR
    region = image[y0 : y0 + h, x0 : x0 + w]
    if out is None:
        out = np.empty((size, size, *image.shape[2:]), image.dtype)
    cv2.resize(region, (size, size), dst=out, interpolation=interp)
    return out, np.asarray(points, dtype=np.float64) * scale + shift
