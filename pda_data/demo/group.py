"""Demo scenes for translation: a group photo of frontal faces, and a clip of one moving, growing face.

Both are made of the demo world's disguised astronauts (so dlib finds every face).

Each face is stamped onto a backdrop (:func:`pda_data.demo.photos.background`) through a soft head-sized
ellipse; the functions return the landmarks they placed, so tests know where every face is.
"""

from __future__ import annotations

import cv2
import numpy as np

from pda_data.demo.faces import Face, apply_affine, make_face, similarity, to_u8
from pda_data.demo.photos import background

GROUP_WIDTHS = (120.0, 96.0, 78.0)  # contour widths of the group photo's faces, largest first
CLIP_WIDTHS = (84.0, 108.0)  # the clip's face grows from the first to the second contour width


def _head_alpha(face: Face) -> np.ndarray:
    """A soft ellipse over the face and its hair, in the face's own frame (H, W) float32."""
    lo, hi = face.points.min(axis=0), face.points.max(axis=0)
    w = hi[0] - lo[0]
    centre = (round((lo[0] + hi[0]) / 2), round((lo[1] + hi[1]) / 2 - 0.25 * w))
    axes = (round(0.95 * w), round(1.1 * w))
    alpha = np.zeros(face.image.shape[:2], np.float32)
    cv2.ellipse(alpha, centre, axes, 0, 0, 360, 1.0, -1)
    return cv2.GaussianBlur(alpha, (0, 0), 0.04 * w)


def _stamp(canvas: np.ndarray, face: Face, alpha: np.ndarray, m: np.ndarray) -> np.ndarray:
    """``canvas`` (float RGB) with ``face`` drawn at the face->canvas affine ``m``."""
    h, w = canvas.shape[:2]
    layer = cv2.warpAffine(face.image, m, (w, h), flags=cv2.INTER_AREA)
    a = cv2.warpAffine(alpha, m, (w, h), flags=cv2.INTER_LINEAR)[..., None]
    return canvas * (1 - a) + layer * a


def group_photo(
    rng: np.random.Generator, widths: tuple[float, ...] = GROUP_WIDTHS, size: tuple[int, int] = (640, 360)
) -> tuple[np.ndarray, list[np.ndarray]]:
    """A photo (uint8 RGB, ``size`` = (width, height)) of upright frontal faces side by side with these
    contour ``widths``, and each face's 68 landmarks in photo pixels, in the order of ``widths``."""
    canvas_w, canvas_h = size
    canvas = background(rng, canvas_w, canvas_h)
    slots = (np.arange(len(widths)) + 0.5) * canvas_w / len(widths)
    placed = []
    for x, width in zip(slots, widths, strict=True):
        face = make_face(rng, coser=False)
        m = similarity(face.points, width, (float(x), canvas_h * 0.55), rng.uniform(-4, 4))
        canvas = _stamp(canvas, face, _head_alpha(face), m)
        placed.append(apply_affine(m, face.points))
    return to_u8(canvas), placed


def moving_face_clip(
    rng: np.random.Generator,
    frames: int = 24,
    size: tuple[int, int] = (320, 240),
    widths: tuple[float, float] = CLIP_WIDTHS,
    noise: float = 0.03,
) -> tuple[list[np.ndarray], np.ndarray]:
    """``frames`` video frames (uint8 RGB, ``size`` = (width, height)) of one face gliding from left to
    right while its contour width grows linearly through ``widths``, each frame with fresh sensor noise
    (std ``noise``), and the face's landmark centre per frame (frames, 2): a straight, even path."""
    canvas_w, canvas_h = size
    backdrop = background(rng, canvas_w, canvas_h)
    face = make_face(rng, coser=False)
    alpha = _head_alpha(face)
    t = np.linspace(0.0, 1.0, frames)
    centres = np.stack([canvas_w * (0.38 + 0.24 * t), canvas_h * (0.56 + 0.04 * t)], -1)
    out = []
    for c, width in zip(centres, widths[0] + (widths[1] - widths[0]) * t, strict=True):
        m = similarity(face.points, float(width), (float(c[0]), float(c[1])), 0.0)
        frame = _stamp(backdrop, face, alpha, m)
        out.append(to_u8(frame + rng.normal(0, noise, frame.shape).astype(np.float32)))
    return out, centres
