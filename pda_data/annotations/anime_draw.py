"""Procedural anime portraits with exact ANIME56 landmarks, for the demo world and tests.

A face is built from a handful of random parameters (face width and jaw shape, eye size and spacing, hair and
eye colours, tilt); the landmarks are computed from those parameters first and every drawn part (contour,
lids, brows, nose tick, lips) passes through them, so the points are the ground truth of the drawing.
"""

from __future__ import annotations

import colorsys
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from pda_data.geometry.masks import smooth_closed_curve
from pda_data.schema import ANIME56

_SHIFT = 4  # cv2 fixed-point bits: sub-pixel drawing
_ONE = 1 << _SHIFT
_OUTLINE = (70, 40, 40)
# (hue, saturation, value) ranges in [0, 1] (hue wraps) of each painted part. The colours are those of
# portrait photos: warm skin, brown to black hair, muted backdrops and clothes, so that a translation can
# keep a photo's hue and still look like this domain (Hue-HistD measures exactly that). Anime art with
# vivid hair and backgrounds would teach a translator to recolour.
PALETTE: dict[str, tuple[tuple[float, float], tuple[float, float], tuple[float, float]]] = {
    "background": ((-0.05, 0.12), (0.03, 0.2), (0.55, 0.9)),
    "hair": ((0.0, 0.16), (0.3, 0.8), (0.2, 0.8)),
    "iris": ((0.02, 0.6), (0.4, 0.8), (0.3, 0.7)),
    "clothes": ((0.6, 0.95), (0.1, 0.5), (0.15, 0.55)),
}


@dataclass(frozen=True)
class AnimeFace:
    """One procedural anime portrait and its landmarks (ANIME56, image pixels, rounded to 1/100 px)."""

    image: np.ndarray
    points: np.ndarray
    params: dict[str, float]


def _tone(rng: np.random.Generator, part: str) -> tuple[int, int, int]:
    """A random RGB colour for ``part`` from its :data:`PALETTE` ranges."""
    hue, sat, val = PALETTE[part]
    r, g, b = colorsys.hsv_to_rgb(rng.uniform(*hue) % 1.0, rng.uniform(*sat), rng.uniform(*val))
    return round(r * 255), round(g * 255), round(b * 255)


def _shade(color: tuple[int, int, int], factor: float) -> tuple[int, int, int]:
    return tuple(int(np.clip(c * factor, 0, 255)) for c in color)  # type: ignore[return-value]


def _fixed(points: np.ndarray) -> np.ndarray:
    return np.round(np.asarray(points) * _ONE).astype(np.int32).reshape(-1, 1, 2)


def _fill(img: np.ndarray, poly: np.ndarray, color: tuple[int, int, int]) -> None:
    cv2.fillPoly(img, [_fixed(poly)], color, cv2.LINE_AA, _SHIFT)


def _line(
    img: np.ndarray, pts: np.ndarray, color: tuple[int, int, int], width: int, closed: bool = False
) -> None:
    cv2.polylines(img, [_fixed(pts)], closed, color, width, cv2.LINE_AA, _SHIFT)


def _lid(x0: float, x1: float, y: float, height: float, ts: np.ndarray, power: float) -> np.ndarray:
    """Points on an eyelid arc over the corner line from ``x0`` to ``x1`` (negative height = upward)."""
    return np.stack([x0 + (x1 - x0) * ts, y + height * np.sin(np.pi * ts) ** power], axis=1)


def _eye_points(cx: float, cy: float, w: float, h: float, outer_lift: float, outer_left: bool) -> np.ndarray:
    """8 eye points clockwise from the image-left corner (the order ANIME56 prescribes)."""
    lift_l, lift_r = (outer_lift, 0.0) if outer_left else (0.0, outer_lift)
    x0, x1 = cx - w / 2, cx + w / 2
    ts = np.array([0.25, 0.5, 0.75])
    upper = _lid(x0, x1, cy, -h * 0.55, ts, 0.6)
    lower = _lid(x0, x1, cy, h * 0.45, ts[::-1], 0.8)
    return np.concatenate([[[x0, cy - lift_l]], upper, [[x1, cy - lift_r]], lower])


def _mouth_points(cx: float, cy: float, w: float, open_h: float, smile: float) -> np.ndarray:
    """12 mouth points clockwise from the image-left corner: corner, 5 upper, corner, 5 lower."""
    ts = np.arange(1, 6) / 6.0
    upper = np.stack([cx - w / 2 + w * ts, cy + smile * 0.3 - open_h * 0.25 * np.sin(np.pi * ts)], axis=1)
    lower = np.stack(
        [cx - w / 2 + w * ts[::-1], cy + smile * 0.3 + open_h * np.sin(np.pi * ts[::-1])], axis=1
    )
    corners = [[cx - w / 2, cy - smile], [cx + w / 2, cy - smile]]
    return np.concatenate([[corners[0]], upper, [corners[1]], lower])


def _contour_points(cx: float, y_ear: float, a: float, b: float, point: float, drop: float) -> np.ndarray:
    """Contour points from the image-left ear down to the chin (the middle one) and up to the right ear."""
    n = len(ANIME56.contour)
    theta = np.pi - np.pi * np.arange(n) / (n - 1)
    c, s = np.cos(theta), np.sin(theta)
    x = cx + a * np.sign(c) * np.abs(c) ** point
    y = y_ear + b * s**drop
    return np.stack([x, y], axis=1)


def _brow_points(x0: float, x1: float, y: float, arch: float) -> np.ndarray:
    ts = np.linspace(0.0, 1.0, 5)
    return np.stack([x0 + (x1 - x0) * ts, y - arch * np.sin(np.pi * ts)], axis=1)


def draw_anime_face(rng: np.random.Generator, size: int = 256) -> AnimeFace:
    """Draw one random anime portrait of ``size`` x ``size`` pixels with its exact 56 landmarks."""
    k = size / 256.0
    p: dict[str, float] = {
        "cx": size / 2 + rng.normal(0, 4 * k),
        "a": rng.uniform(56, 68) * k,
        "y_ear": rng.uniform(116, 128) * k,
        "point": rng.uniform(0.55, 1.0),
        "drop": rng.uniform(1.0, 1.5),
        "tilt": rng.uniform(-6.0, 6.0),
        "eye_w": rng.uniform(0.46, 0.56),
        "eye_h": rng.uniform(0.75, 1.05),
        "eye_d": rng.uniform(0.44, 0.52),
        "eye_drop": rng.uniform(-2, 8) * k,
        "mouth_w": rng.uniform(0.22, 0.36),
        "mouth_open": rng.uniform(0.02, 0.14),
        "smile": rng.uniform(-1.0, 2.5) * k,
    }
    a, cx = p["a"], p["cx"]
    p["b"] = a * rng.uniform(1.05, 1.3)
    contour = _contour_points(cx, p["y_ear"], a, p["b"], p["point"], p["drop"])
    chin_y = contour[8, 1]

    ew, eh = p["eye_w"] * a, p["eye_w"] * a * p["eye_h"]
    ey = p["y_ear"] + p["eye_drop"]
    ed = p["eye_d"] * a
    lift = rng.uniform(0, 0.12) * eh
    left_eye = _eye_points(cx - ed, ey, ew, eh, lift, outer_left=True)
    right_eye = _eye_points(cx + ed, ey, ew, eh, lift, outer_left=False)

    brow_y = ey - eh * 0.55 - rng.uniform(7, 14) * k
    brow_w = ew * rng.uniform(1.0, 1.2)
    arch = rng.uniform(1.0, 4.0) * k
    left_brow = _brow_points(cx - ed - brow_w / 2 - 2 * k, cx - ed + brow_w / 2 - 2 * k, brow_y, arch)
    right_brow = _brow_points(cx + ed - brow_w / 2 + 2 * k, cx + ed + brow_w / 2 + 2 * k, brow_y, arch)

    mouth_y = ey + (chin_y - ey) * rng.uniform(0.58, 0.68)
    nose = np.array([[cx + rng.normal(0, 1.0 * k), ey + (mouth_y - ey) * rng.uniform(0.5, 0.62)]])
    mouth = _mouth_points(cx, mouth_y, p["mouth_w"] * a, p["mouth_open"] * a, p["smile"])

    points = np.empty((ANIME56.n_points, 2))
    g = ANIME56.groups
    for name, pts in (
        ("contour", contour),
        ("left_brow", left_brow),
        ("right_brow", right_brow),
        ("left_eye", left_eye),
        ("right_eye", right_eye),
        ("nose", nose),
        ("mouth", mouth),
    ):
        points[list(g[name])] = pts

    centre = (cx, ey)
    rot = cv2.getRotationMatrix2D(centre, p["tilt"], 1.0)

    def turn(pts: np.ndarray) -> np.ndarray:
        pts = np.asarray(pts, dtype=np.float64).reshape(-1, 2)
        return pts @ rot[:, :2].T + rot[:, 2]

    points = np.round(turn(points), 2)
    image = _paint(rng, p, points, turn, size)
    return AnimeFace(image=image, points=points, params=p)


def _paint(
    rng: np.random.Generator,
    p: dict[str, float],
    pts: np.ndarray,
    turn: Callable[[np.ndarray], np.ndarray],
    size: int,
) -> np.ndarray:
    """Paint the portrait around the (already tilted) landmarks ``pts``; ``turn`` tilts extra geometry."""
    k = size / 256.0
    g = ANIME56.groups
    bg, hair, iris, clothes = (_tone(rng, part) for part in ("background", "hair", "iris", "clothes"))
    skin = _shade((255, 226, 206), rng.uniform(0.93, 1.03))
    img = np.empty((size, size, 3), np.uint8)
    img[:] = bg

    cx, a, y_ear = p["cx"], p["a"], p["y_ear"]
    chin_y = y_ear + p["b"]
    # Hair mass behind the head, long enough to frame the face down to the chin.
    back = cv2.ellipse2Poly((0, 0), (1000, 1000), 0, 180, 360, 5).astype(np.float64) / 1000.0
    hair_back = np.concatenate(
        [
            back * [a * 1.32, a * 1.45] + [cx, y_ear - 2 * k],
            [[cx + a * 1.32, chin_y + 10 * k], [cx - a * 1.32, chin_y + 10 * k]],
        ]
    )
    _fill(img, turn(hair_back), hair)
    neck = np.array(
        [
            [cx - a * 0.3, chin_y - 20 * k],
            [cx + a * 0.3, chin_y - 20 * k],
            [cx + a * 0.32, size + 5],
            [cx - a * 0.32, size + 5],
        ]
    )
    _fill(img, turn(neck), _shade(skin, 0.86))
    shoulders = np.array(
        [
            [cx - a * 1.6, size + 5],
            [cx - a * 1.2, chin_y + 26 * k],
            [cx, chin_y + 34 * k],
            [cx + a * 1.2, chin_y + 26 * k],
            [cx + a * 1.6, size + 5],
        ]
    )
    _fill(img, turn(shoulders), clothes)

    contour = pts[list(g["contour"])]
    top = back[::-1] * [a, a * 1.15] + [cx, y_ear]
    face = np.concatenate([contour, turn(top)[1:-1]])
    _fill(img, face, skin)
    _line(img, contour, _OUTLINE, 2)

    for eye_name in ("left_eye", "right_eye"):
        _paint_eye(rng, img, pts[list(g[eye_name])], iris)
    brow_color = _shade(hair, 0.6)
    for brow_name in ("left_brow", "right_brow"):
        _line(img, pts[list(g[brow_name])], brow_color, max(2, round(3 * k)))

    nose = pts[ANIME56.nose_tip]
    _line(img, np.array([nose + [-2.0 * k, -4.0 * k], nose]), _shade(skin, 0.7), 1)

    mouth = pts[list(g["mouth"])]
    _fill(img, mouth, (170, 60, 70))
    _line(img, mouth[: len(mouth) // 2 + 1], (110, 40, 45), 1)

    # Bangs: a fringe with a zig-zag lower edge that stops above the brows.
    brow_top = pts[list(g["left_brow"] + g["right_brow"]), 1].min()
    n_tufts = int(rng.integers(4, 8))
    xs = np.linspace(cx - a * 1.1, cx + a * 1.1, 2 * n_tufts + 1)
    ys = np.where(np.arange(len(xs)) % 2 == 1, brow_top - 3 * k, brow_top - rng.uniform(14, 26) * k)
    fringe = np.concatenate(
        [np.stack([xs, ys], axis=1), back[::-1][1:-1] * [a * 1.15, a * 1.35] + [cx, y_ear]]
    )
    _fill(img, fringe, hair)
    _line(img, np.stack([xs, ys], axis=1), _shade(hair, 0.55), 1)
    return img


def _paint_eye(
    rng: np.random.Generator, img: np.ndarray, eye: np.ndarray, iris: tuple[int, int, int]
) -> None:
    """Sclera, iris, pupil and highlight inside the eye outline, then thick upper lashes."""
    outline = smooth_closed_curve(eye, samples=64)
    mask = np.zeros(img.shape[:2], np.uint8)
    _fill(mask, outline, 255)
    layer = img.copy()
    _fill(layer, outline, (255, 255, 255))
    centre = eye.mean(axis=0)
    w = np.linalg.norm(eye[4] - eye[0])
    h = np.linalg.norm(eye[2] - eye[6])
    iris_c = centre + [rng.normal(0, w * 0.05), h * 0.08]
    iris_poly = cv2.ellipse2Poly((0, 0), (1000, 1000), 0, 0, 360, 10).astype(np.float64) / 1000.0
    _fill(layer, iris_poly * [w * 0.3, h * 0.5] + iris_c, iris)
    _fill(layer, iris_poly * [w * 0.15, h * 0.26] + iris_c, _shade(iris, 0.35))
    _fill(layer, iris_poly * [w * 0.08, w * 0.08] + iris_c + [w * 0.08, -h * 0.18], (255, 255, 255))
    inside = mask > 0
    img[inside] = layer[inside]
    upper = eye[0:5]
    lower = np.concatenate([eye[4:8], eye[0:1]])
    _line(img, upper, (40, 25, 30), max(2, round(w / 12)))
    _line(img, lower, _OUTLINE, 1)
