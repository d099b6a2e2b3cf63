"""Disguised astronauts: every demo human and coser face, made from the real portrait in
``skimage.data.astronaut()`` (so dlib finds it).

Her 68 landmarks are detected once; each instance then gets a random thin-plate face-shape deformation, hair
and skin colour changes inside landmark masks, a flip, and (when posed) a scale, rotation and lighting.
Cosers get vivid wig colours, smoothed skin, enlarged eyes and inked outlines.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from pda_data.faces.detectors import make_detector
from pda_data.faces.landmarks import Landmarker
from pda_data.geometry.masks import face_mask
from pda_data.geometry.warp import tps_warp
from pda_data.schema import HUMAN68, normalize_points

PORTRAIT_SIZE = 256
NOSE_SWING = 0.22  # sideways nose shift per unit sin(turn), in face widths: the nose protrudes
TURN_SQUEEZE = 0.7
COSER_EYE_SCALE = (1.5, 1.7)
SKIN_BROW_LIFT = 0.45  # the skin mask reaches this far (in chin-to-brow heights) above the brows


@dataclass
class Face:
    """A face instance in the astronaut frame: float RGB in [0, 1] and its 68 landmarks."""

    image: np.ndarray
    points: np.ndarray


@functools.cache
def _base() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The astronaut portrait (float RGB), her 68 landmarks and a soft hair mask, computed once."""
    from skimage import data

    rgb = data.astronaut()
    dets = make_detector("dlib-hog").detect(rgb)
    # Her face is the upper one; the helmet visor below can also fire.
    det = min(dets, key=lambda d: d.box[1])
    points = Landmarker().refine(rgb, det.box)
    image = rgb.astype(np.float32) / 255.0
    return image, points, _hair_mask(image, points)


def _hair_mask(image: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Saturated, non-grey pixels in a head-sized ellipse around the face but outside its skin region."""
    h, w = image.shape[:2]
    contour = points[list(HUMAN68.contour)]
    width = contour[:, 0].max() - contour[:, 0].min()
    centre = points.mean(axis=0) - [0.0, 0.35 * width]
    yy, xx = np.mgrid[0:h, 0:w]
    head = ((xx - centre[0]) / (0.95 * width)) ** 2 + ((yy - centre[1]) / (0.9 * width)) ** 2 < 1.0
    above_chin = yy < contour[:, 1].max() - 0.25 * width
    hsv = cv2.cvtColor(image, cv2.COLOR_RGB2HSV)
    hairy = (hsv[..., 1] > 0.28) & (hsv[..., 2] < 0.85)
    skin = face_mask(points, HUMAN68, (h, w), brow_lift=0.3) > 0.5
    mask = (head & above_chin & hairy & ~skin).astype(np.float32)
    mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    return cv2.GaussianBlur(mask, (0, 0), 1.5)


def _recolour(
    image: np.ndarray,
    mask: np.ndarray,
    hue: Callable[[np.ndarray], np.ndarray],
    sat: Callable[[np.ndarray], np.ndarray],
    val: Callable[[np.ndarray], np.ndarray],
) -> np.ndarray:
    """Blend an HSV edit of ``image`` in through ``mask`` (HSV in OpenCV float ranges: H 0-360, S/V 0-1)."""
    hsv = cv2.cvtColor(image, cv2.COLOR_RGB2HSV)
    edited = np.stack(
        [hue(hsv[..., 0]) % 360.0, np.clip(sat(hsv[..., 1]), 0, 1), np.clip(val(hsv[..., 2]), 0, 1)], -1
    )
    out = cv2.cvtColor(edited.astype(np.float32), cv2.COLOR_HSV2RGB)
    m = mask[..., None]
    return image * (1 - m) + out * m


def _shape_targets(rng: np.random.Generator, points: np.ndarray, coser: bool, turn: float) -> np.ndarray:
    """Where each landmark moves: jaw width and length, bigger eyes for cosers, a yaw squeeze when turned."""
    dst = points.copy()
    contour = list(HUMAN68.contour)
    centre = points[contour].mean(axis=0)
    width = np.ptp(points[contour, 0])
    # Jaw: scale x about the centre more near the chin (narrow or wide jaw), move the chin up or down.
    depth = np.clip((points[contour, 1] - points[contour, 1].min()) / np.ptp(points[contour, 1]), 0, 1)
    jaw = rng.uniform(0.9, 1.1) if not coser else rng.uniform(0.84, 0.98)
    cheek = rng.uniform(0.95, 1.06)
    sx = cheek + (jaw - cheek) * depth**2
    dst[contour, 0] = centre[0] + (points[contour, 0] - centre[0]) * sx
    dst[contour, 1] += rng.uniform(-0.05, 0.06) * width * depth**3
    if coser:
        scale = rng.uniform(*COSER_EYE_SCALE)
        for eye in (HUMAN68.left_eye, HUMAN68.right_eye):
            idx = list(eye)
            c = points[idx].mean(axis=0)
            dst[idx] = c + (points[idx] - c) * [scale, scale * 1.15]
        brows = list(HUMAN68.groups["left_brow"] + HUMAN68.groups["right_brow"])
        dst[brows, 1] -= 0.03 * width
    if turn:
        # Features on a cylinder of radius r rotate by ``turn`` degrees; the nose also swings by its depth.
        r = 0.5 * width / np.sin(np.radians(75))
        u = np.clip((dst[:, 0] - centre[0]) / r, -1, 1)
        phi = np.clip(np.arcsin(u) + np.radians(turn), -np.radians(85), np.radians(85))
        dst[:, 0] = centre[0] + r * np.sin(phi)
        nose = list(HUMAN68.groups["nose_bridge"] + HUMAN68.groups["nose_base"])
        dst[nose, 0] += NOSE_SWING * width * np.sin(np.radians(turn))
        # Foreshortening: a face turned away is narrower than it is tall.
        dst[:, 0] = centre[0] + (dst[:, 0] - centre[0]) * TURN_SQUEEZE
    return dst


def _deform(image: np.ndarray, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Thin-plate warp of an HxWx3 float image moving ``src`` pixels to ``dst`` (border pinned)."""
    h, w = image.shape[:2]
    t = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))[None]
    s = torch.from_numpy(normalize_points(src, w, h))[None]
    d = torch.from_numpy(normalize_points(dst, w, h))[None]
    out = tps_warp(t, s, d, grid=64, check=True)
    return out[0].numpy().transpose(1, 2, 0)


def _ink(image: np.ndarray, points: np.ndarray, skin: np.ndarray) -> np.ndarray:
    """Coser make-up: smoothed skin, eyeliner along the upper lids, dark outlines on strong edges."""
    u8 = (np.clip(image, 0, 1) * 255).astype(np.uint8)
    smooth = cv2.bilateralFilter(u8, 7, 30, 5).astype(np.float32) / 255.0
    out = image * (1 - skin[..., None]) + smooth * skin[..., None]
    edges = cv2.Canny(u8, 60, 140)
    edges = cv2.GaussianBlur(edges.astype(np.float32) / 255.0, (0, 0), 0.8)
    out = out * (1 - 0.5 * np.clip(edges, 0, 1)[..., None])
    return _liner(out, points)


def _liner(image: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Eyeliner along the upper lids; thin lines kept the anime cascade firing more often than thick ones."""
    out = image.copy()
    for eye in (HUMAN68.left_eye, HUMAN68.right_eye):
        pts = points[list(eye)]
        lid = pts[: len(eye) // 2 + 1]
        cv2.polylines(
            out,
            [np.round(lid * 16).astype(np.int32)],
            False,
            (0.05, 0.03, 0.03),
            max(2, round(np.ptp(pts[:, 0]) / 14)),
            cv2.LINE_AA,
            4,
        )
    return out


def make_face(rng: np.random.Generator, coser: bool, turn: float = 0.0) -> Face:
    """One disguised astronaut in her own 512x512 frame."""
    base, points, hair = _base()
    skin = face_mask(points, HUMAN68, base.shape[:2], feather=3.0, brow_lift=SKIN_BROW_LIFT)
    img = base
    if coser:
        wig_hue = rng.uniform(0, 360)
        wig_sat = rng.uniform(0.6, 0.95)
        img = _recolour(
            img,
            hair,
            lambda h: np.full_like(h, wig_hue),
            lambda s: np.full_like(s, wig_sat),
            lambda v: 0.35 + 1.3 * v,
        )
        img = _recolour(img, skin, lambda h: h, lambda s: s * 0.75, lambda v: v * 1.08 + 0.03)
    else:
        dh, ds, dv = rng.uniform(-18, 18), rng.uniform(0.7, 1.3), rng.uniform(0.55, 1.25)
        img = _recolour(img, hair, lambda h: h + dh, lambda s: s * ds, lambda v: v * dv)
        sh, ss, sv = rng.uniform(-6, 6), rng.uniform(0.8, 1.2), rng.uniform(0.8, 1.1)
        img = _recolour(img, skin, lambda h: h + sh, lambda s: s * ss, lambda v: v * sv)
    dst = _shape_targets(rng, points, coser, turn)
    img = _deform(img.astype(np.float32), points, dst)
    if coser:
        img = _ink(img, dst, face_mask(dst, HUMAN68, img.shape[:2], feather=3.0, brow_lift=SKIN_BROW_LIFT))
    if rng.random() < 0.5:
        img = np.ascontiguousarray(img[:, ::-1])
        dst = HUMAN68.flip(dst, img.shape[1])
    return Face(np.clip(img, 0, 1).astype(np.float32), dst)


def similarity(points: np.ndarray, width: float, centre: tuple[float, float], angle: float) -> np.ndarray:
    """2x3 affine giving a face contour width ``width``, landmark centre ``centre`` and rotation ``angle``."""
    contour = points[list(HUMAN68.contour)]
    scale = width / np.ptp(contour[:, 0])
    m = cv2.getRotationMatrix2D(tuple(float(v) for v in points.mean(axis=0)), angle, scale)
    m[:, 2] += np.asarray(centre) - points.mean(axis=0)
    return m


def apply_affine(m: np.ndarray, points: np.ndarray) -> np.ndarray:
    return points @ m[:, :2].T + m[:, 2]


def lighting(rng: np.random.Generator, image: np.ndarray) -> np.ndarray:
    """Gain, gamma and a linear side light, as photos under varied lighting."""
    h, w = image.shape[:2]
    angle = rng.uniform(0, 2 * np.pi)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    ramp = ((xx / w - 0.5) * np.cos(angle) + (yy / h - 0.5) * np.sin(angle))[..., None]
    out = (
        np.clip(image, 0, 1) ** rng.uniform(0.8, 1.25)
        * rng.uniform(0.85, 1.1)
        * (1 + rng.uniform(0, 0.35) * ramp)
    )
    return np.clip(out, 0, 1)


def to_u8(image: np.ndarray) -> np.ndarray:
    return (np.clip(image, 0, 1) * 255 + 0.5).astype(np.uint8)


def human_portrait(rng: np.random.Generator, size: int = PORTRAIT_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """A ``size`` x ``size`` human portrait crop (uint8 RGB) and its 68 landmarks in crop pixels."""
    face = make_face(rng, coser=False)
    width = size * rng.uniform(0.42, 0.55)
    centre = (size / 2 + rng.normal(0, size * 0.02), size * rng.uniform(0.52, 0.58))
    m = similarity(face.points, width, centre, rng.uniform(-8, 8))
    crop = cv2.warpAffine(face.image, m, (size, size), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REFLECT)
    return to_u8(lighting(rng, crop)), apply_affine(m, face.points)
