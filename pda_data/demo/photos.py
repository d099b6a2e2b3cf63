"""Coser photos: a room-like backdrop with one to three disguised coser faces, placed so they do not
overlap.

Each photo plans which faces it holds (frontal, turned away, too small) and what curation should make of each,
so the truth record can say what the pipeline ought to keep and reject.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from pda_data.demo.faces import apply_affine, lighting, make_face, similarity, to_u8

CANVAS = (640, 480)

# Face sizes, measured as the width of the 17-point contour in output pixels.
FRONTAL_WIDTH = (110.0, 170.0)
TURNED_WIDTH = (100.0, 130.0)
SMALL_WIDTH = (26.0, 34.0)
MIN_FACE_WIDTH = 84.0  # frontal and turned faces stay well above the curation default of 64 px
TURN_DEGREES = (12.0, 18.0)  # with TURN_SQUEEZE, dlib measures |yaw| of about 35-45 degrees


def background(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """A room-like backdrop: a colour gradient with a few soft blocks and sensor noise."""
    c0, c1 = rng.uniform(0.15, 0.9, 3), rng.uniform(0.15, 0.9, 3)
    t = np.linspace(0, 1, height, dtype=np.float32)[:, None, None]
    bg = np.broadcast_to(c0 * (1 - t) + c1 * t, (height, width, 3)).astype(np.float32).copy()
    for _ in range(int(rng.integers(2, 6))):
        x0, y0 = int(rng.integers(0, width)), int(rng.integers(0, height))
        x1, y1 = x0 + int(rng.integers(40, 240)), y0 + int(rng.integers(40, 240))
        cv2.rectangle(bg, (x0, y0), (x1, y1), tuple(float(v) for v in rng.uniform(0.1, 0.95, 3)), -1)
    bg = cv2.GaussianBlur(bg, (0, 0), 2.0)
    return np.clip(bg + rng.normal(0, 0.015, bg.shape).astype(np.float32), 0, 1)


@dataclass(frozen=True)
class _Placement:
    kind: str  # frontal | turned | small
    expected: str  # kept | not_frontal | too_small
    width: float
    turn: float


def _plan_faces(rng: np.random.Generator, index: int) -> list[_Placement]:
    """Which faces a coser photo holds; the first photos are guaranteed one turned and one small face."""
    n = int(rng.integers(1, 4))
    kinds = ["frontal"] * n
    if index == 1 or (index > 2 and rng.random() < 0.25):
        kinds[-1] = "turned"
    if index == 2 or (index > 2 and rng.random() < 0.25):
        kinds[0] = "small"
    plan = []
    crowd = (1.0, 0.85, 0.72)[n - 1]  # smaller faces when several share the photo
    # Turned and small faces are placed first, so a crowded photo never drops them.
    for kind in sorted(kinds, key=("turned", "small", "frontal").index):
        if kind == "turned":
            turn = rng.uniform(*TURN_DEGREES) * rng.choice([-1.0, 1.0])
            plan.append(_Placement(kind, "not_frontal", rng.uniform(*TURNED_WIDTH) * crowd, float(turn)))
        elif kind == "small":
            plan.append(_Placement(kind, "too_small", rng.uniform(*SMALL_WIDTH), 0.0))
        else:
            plan.append(_Placement(kind, "kept", rng.uniform(*FRONTAL_WIDTH) * crowd, 0.0))
    return plan


def _head_box(points: np.ndarray) -> np.ndarray:
    """The region a face occupies with its hair: landmark box grown to a head box (x0, y0, x1, y1)."""
    lo, hi = points.min(axis=0), points.max(axis=0)
    w = hi[0] - lo[0]
    return np.array([lo[0] - 0.45 * w, lo[1] - 0.8 * w, hi[0] + 0.45 * w, hi[1] + 0.35 * w])


def _overlaps(box: np.ndarray, others: list[np.ndarray]) -> bool:
    return any(box[0] < o[2] and o[0] < box[2] and box[1] < o[3] and o[1] < box[3] for o in others)


def _place(
    rng: np.random.Generator, points: np.ndarray, width: float, angle: float, taken: list[np.ndarray]
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """A free spot for a face on the canvas: (affine, its landmarks, its head box), shrinking it
    when the canvas is crowded (never below ``MIN_FACE_WIDTH``); ``None`` when no spot is free."""
    canvas_w, canvas_h = CANVAS
    for attempt in range(40):
        scaled = max(width * 0.97**attempt, min(width, MIN_FACE_WIDTH))
        m = similarity(points, scaled, (0.0, 0.0), angle)
        box = _head_box(apply_affine(m, points))
        lo_x, hi_x = -box[0], canvas_w - box[2]
        lo_y, hi_y = -box[1], canvas_h - box[3]
        if lo_x > hi_x or lo_y > hi_y:
            continue
        shift = np.array([rng.uniform(lo_x, hi_x), rng.uniform(lo_y, hi_y)])
        if not _overlaps(box + np.tile(shift, 2), taken):
            m[:, 2] += shift
            return m, apply_affine(m, points), box + np.tile(shift, 2)
    return None


def coser_photo(rng: np.random.Generator, index: int) -> tuple[np.ndarray, list[dict]]:
    """A 640x480 coser photo (uint8 RGB) and, per placed face, its plan and landmarks in photo pixels."""
    width, height = CANVAS
    canvas = background(rng, width, height)
    faces: list[dict] = []
    boxes: list[np.ndarray] = []
    for plan in _plan_faces(rng, index):
        face = make_face(rng, coser=True, turn=plan.turn)
        angle = rng.uniform(-10, 10)
        placed = _place(rng, face.points, plan.width, angle, boxes)
        if placed is None:
            continue
        m, pts, box = placed
        boxes.append(box)
        ellipse = np.zeros(face.image.shape[:2], np.float32)
        inv = cv2.invertAffineTransform(m)
        c, (w0, h0) = (
            apply_affine(inv, ((box[:2] + box[2:]) / 2)[None])[0],
            (box[2:] - box[:2]) / 2 / np.hypot(*m[:, 0]),
        )
        cv2.ellipse(ellipse, (round(c[0]), round(c[1])), (round(w0), round(h0)), -angle, 0, 360, 1.0, -1)
        alpha = cv2.GaussianBlur(ellipse, (0, 0), max(1.0, 0.04 * w0))
        flags = cv2.INTER_AREA if plan.width < 100 else cv2.INTER_LINEAR
        layer = cv2.warpAffine(lighting(rng, face.image), m, (width, height), flags=flags)
        a = cv2.warpAffine(alpha, m, (width, height), flags=cv2.INTER_LINEAR)[..., None]
        canvas = canvas * (1 - a) + layer * a
        faces.append(
            {
                "kind": plan.kind,
                "expected": plan.expected,
                "turn_degrees": round(plan.turn, 2),
                "rotation_degrees": round(float(angle), 2),
                "points": pts,
            }
        )
    return to_u8(canvas), faces
