"""The embedded demo world: a small, offline, reproducible data set for smoke tests and the quick start.

Every human and coser face is derived from the real portrait in ``skimage.data.astronaut()`` (so dlib finds
it): her 68 landmarks are detected once, then each instance gets a random thin-plate face-shape deformation,
hair and skin colour changes inside landmark masks, a flip, scale, rotation and lighting. Cosers get vivid wig
colours, smoothed skin, enlarged eyes and inked outlines. Anime portraits are drawn procedurally with exact
56-point landmarks (:mod:`pda_data.demo.anime_draw`) and written as a CVAT-for-images XML file.

Layout written by :func:`write_demo`::

    OUT/raw_cosers/*.jpg|png    640x480 photos with 1-3 faces (frontal, turned, too small) + corrupt files
    OUT/humans/*.png            256x256 human portrait crops
    OUT/anime/*.png             256x256 procedural anime portraits
    OUT/anime_annotations.xml   their 56 landmarks, CVAT for images 1.1
    OUT/demo_truth.json         what every file holds and what the pipeline should make of it

It is a smoke-test world: one identity in many disguises. Real training points at real data sets.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from pda_data.annotations.formats import ImageAnnotation, write_cvat
from pda_data.demo.anime_draw import draw_anime_face
from pda_data.faces.detectors import Landmarker, head_pose, make_detector
from pda_data.geometry.masks import face_mask
from pda_data.geometry.warp import tps_warp
from pda_data.io.files import atomic_write_bytes, atomic_write_text
from pda_data.io.images import encode_image, save_image
from pda_data.schema import HUMAN68, flatten_points, normalize_points

TRUTH_NAME = "demo_truth.json"
ANNOTATIONS_NAME = "anime_annotations.xml"
COSERS_DIR, HUMANS_DIR, ANIME_DIR = "raw_cosers", "humans", "anime"
CANVAS = (640, 480)
PORTRAIT_SIZE = 256

# Face sizes, measured as the width of the 17-point contour in output pixels.
FRONTAL_WIDTH = (110.0, 170.0)
TURNED_WIDTH = (100.0, 130.0)
SMALL_WIDTH = (26.0, 34.0)
NOSE_SWING = 0.22  # sideways nose shift per unit sin(turn), in face widths: the nose protrudes
TURN_SQUEEZE = 0.7
MIN_FACE_WIDTH = 84.0  # frontal and turned faces stay well above the curation default of 64 px
TURN_DEGREES = (12.0, 18.0)  # with TURN_SQUEEZE, dlib measures |yaw| of about 35-45 degrees
_MAX_TRIES = 8
COSER_EYE_SCALE = (1.5, 1.7)
SKIN_BROW_LIFT = 0.45  # the skin mask reaches this far (in chin-to-brow heights) above the brows


@dataclass(frozen=True)
class DemoConfig:
    """How much of the demo world to generate."""

    seed: int = 0
    n_cosers: int = 8
    n_humans: int = 8
    n_anime: int = 12
    verify: bool = True  # re-detect every coser photo / human crop with dlib and retry until the truth holds


@dataclass
class _Face:
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


def _make_face(rng: np.random.Generator, coser: bool, turn: float = 0.0) -> _Face:
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
    return _Face(np.clip(img, 0, 1).astype(np.float32), dst)


def _similarity(points: np.ndarray, width: float, centre: tuple[float, float], angle: float) -> np.ndarray:
    """2x3 affine giving a face contour width ``width``, landmark centre ``centre`` and rotation ``angle``."""
    contour = points[list(HUMAN68.contour)]
    scale = width / np.ptp(contour[:, 0])
    m = cv2.getRotationMatrix2D(tuple(float(v) for v in points.mean(axis=0)), angle, scale)
    m[:, 2] += np.asarray(centre) - points.mean(axis=0)
    return m


def _apply(m: np.ndarray, points: np.ndarray) -> np.ndarray:
    return points @ m[:, :2].T + m[:, 2]


def _lighting(rng: np.random.Generator, image: np.ndarray) -> np.ndarray:
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


def _to_u8(image: np.ndarray) -> np.ndarray:
    return (np.clip(image, 0, 1) * 255 + 0.5).astype(np.uint8)


def human_portrait(rng: np.random.Generator, size: int = PORTRAIT_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """A ``size`` x ``size`` human portrait crop (uint8 RGB) and its 68 landmarks in crop pixels."""
    face = _make_face(rng, coser=False)
    width = size * rng.uniform(0.42, 0.55)
    centre = (size / 2 + rng.normal(0, size * 0.02), size * rng.uniform(0.52, 0.58))
    m = _similarity(face.points, width, centre, rng.uniform(-8, 8))
    crop = cv2.warpAffine(face.image, m, (size, size), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REFLECT)
    return _to_u8(_lighting(rng, crop)), _apply(m, face.points)


def _background(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
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
        m = _similarity(points, scaled, (0.0, 0.0), angle)
        box = _head_box(_apply(m, points))
        lo_x, hi_x = -box[0], canvas_w - box[2]
        lo_y, hi_y = -box[1], canvas_h - box[3]
        if lo_x > hi_x or lo_y > hi_y:
            continue
        shift = np.array([rng.uniform(lo_x, hi_x), rng.uniform(lo_y, hi_y)])
        if not _overlaps(box + np.tile(shift, 2), taken):
            m[:, 2] += shift
            return m, _apply(m, points), box + np.tile(shift, 2)
    return None


def coser_photo(rng: np.random.Generator, index: int) -> tuple[np.ndarray, list[dict]]:
    """A 640x480 coser photo (uint8 RGB) and, per placed face, its plan and landmarks in photo pixels."""
    width, height = CANVAS
    canvas = _background(rng, width, height)
    faces: list[dict] = []
    boxes: list[np.ndarray] = []
    for plan in _plan_faces(rng, index):
        face = _make_face(rng, coser=True, turn=plan.turn)
        angle = rng.uniform(-10, 10)
        placed = _place(rng, face.points, plan.width, angle, boxes)
        if placed is None:
            continue
        m, pts, box = placed
        boxes.append(box)
        ellipse = np.zeros(face.image.shape[:2], np.float32)
        inv = cv2.invertAffineTransform(m)
        c, (w0, h0) = (
            _apply(inv, ((box[:2] + box[2:]) / 2)[None])[0],
            (box[2:] - box[:2]) / 2 / np.hypot(*m[:, 0]),
        )
        cv2.ellipse(ellipse, (round(c[0]), round(c[1])), (round(w0), round(h0)), -angle, 0, 360, 1.0, -1)
        alpha = cv2.GaussianBlur(ellipse, (0, 0), max(1.0, 0.04 * w0))
        flags = cv2.INTER_AREA if plan.width < 100 else cv2.INTER_LINEAR
        layer = cv2.warpAffine(_lighting(rng, face.image), m, (width, height), flags=flags)
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
    return _to_u8(canvas), faces


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _matches(points: np.ndarray, boxes: list[np.ndarray]) -> np.ndarray | None:
    """The detection box belonging to the face with these landmarks (centre inside, similar size), if any."""
    lo, hi = points.min(axis=0), points.max(axis=0)
    own = np.concatenate([lo, hi])
    best = max(boxes, key=lambda b: _iou(own, b), default=None)
    return best if best is not None and _iou(own, best) > 0.2 else None


class _Verifier:
    """Re-detects generated faces with the toolkit's own detectors and landmarker, to record what holds."""

    def __init__(self, cascade: Path | None) -> None:
        self.hog = make_detector("dlib-hog")
        self.landmarker = Landmarker()
        self.lbp = make_detector("anime-lbp", cascade) if cascade is not None else None

    def check(self, rgb: np.ndarray, faces: list[dict]) -> None:
        """Add ``detected`` flags and, for dlib-found faces, the measured yaw to each face record."""
        hog = [np.asarray(d.box) for d in self.hog.detect(rgb)]
        lbp = [np.asarray(d.box) for d in self.lbp.detect(rgb)] if self.lbp is not None else []
        h, w = rgb.shape[:2]
        for face in faces:
            box = _matches(face["points"], hog)
            face["detected"] = {"dlib-hog": box is not None}
            if self.lbp is not None:
                face["detected"]["anime-lbp"] = _matches(face["points"], lbp) is not None
            if box is not None:
                found = self.landmarker.refine(rgb, tuple(box))
                face["measured_pose"] = [round(v, 2) for v in head_pose(found, w, h)]
            face["verified"] = _holds(face)


def _holds(face: dict) -> bool:
    """Whether dlib finds the face and its measured pose agrees with the expected outcome (with margins
    around the curation defaults: |yaw| <= 30, |pitch| <= 25); small faces only need to be found."""
    if not face["detected"]["dlib-hog"]:
        return False
    yaw, pitch, _ = face["measured_pose"]
    if face["kind"] == "frontal":
        return abs(yaw) < 22.0 and abs(pitch) < 18.0
    if face["kind"] == "turned":
        return abs(yaw) > 34.0
    return True


def _corrupt_files(valid_jpeg: bytes) -> list[tuple[str, bytes, str]]:
    """(name, bytes, expected ImageError reason) of the deliberately broken inputs."""
    return [
        ("corrupt_empty.jpg", b"", "empty"),
        ("corrupt_truncated.jpg", valid_jpeg[: len(valid_jpeg) // 3], "truncated"),
        ("corrupt_text.jpg", b"<html><body>404 Not Found</body></html>\n", "not_image"),
    ]


def _record(face: dict) -> dict:
    out = {k: v for k, v in face.items() if k != "points"}
    lo, hi = face["points"].min(axis=0), face["points"].max(axis=0)
    out["landmark_box"] = [round(float(v), 2) for v in (*lo, *hi)]
    out["landmarks"] = [round(v, 3) for v in flatten_points(face["points"])]
    return out


def write_demo(
    out: str | Path,
    config: DemoConfig = DemoConfig(),
    cascade: Path | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict:
    """Generate the demo world under ``out`` and return the truth record (also written to demo_truth.json).

    ``cascade`` (the anime-face LBP cascade) is only used to record whether it finds the coser faces.
    ``progress`` is called with a short label after each file.
    """
    root = Path(out)
    tick = progress or (lambda _label: None)
    verifier = _Verifier(cascade) if config.verify else None
    truth: dict = {
        "seed": config.seed,
        "schema_version": 1,
        "cosers": [],
        "corrupt": [],
        "humans": [],
        "anime": [],
    }
    seeds = np.random.SeedSequence(config.seed).spawn(3)

    coser_rng = np.random.default_rng(seeds[0])
    first_jpeg = b""
    for i in range(config.n_cosers):
        photo_seed = int(coser_rng.integers(2**32))
        for attempt in range(_MAX_TRIES):
            rng = np.random.default_rng([photo_seed, attempt])
            rgb, faces = coser_photo(rng, i)
            if verifier is None:
                break
            verifier.check(rgb, faces)
            if all(f["verified"] for f in faces):
                break
        fmt = "jpg" if rng.random() < 0.6 else "png"
        name = f"{COSERS_DIR}/coser_{i:03d}.{fmt}"
        data = encode_image(rgb, fmt, quality=92)
        atomic_write_bytes(root / name, data)
        if fmt == "jpg" and not first_jpeg:
            first_jpeg = data
        truth["cosers"].append(
            {"file": name, "width": CANVAS[0], "height": CANVAS[1], "faces": [_record(f) for f in faces]}
        )
        tick(name)
    for name, data, reason in _corrupt_files(
        first_jpeg or encode_image(_to_u8(_background(coser_rng, 64, 48)), "jpg")
    ):
        atomic_write_bytes(root / COSERS_DIR / name, data)
        truth["corrupt"].append({"file": f"{COSERS_DIR}/{name}", "expected_reason": reason})

    human_rng = np.random.default_rng(seeds[1])
    for i in range(config.n_humans):
        photo_seed = int(human_rng.integers(2**32))
        for attempt in range(_MAX_TRIES):
            rgb, points = human_portrait(np.random.default_rng([photo_seed, attempt]))
            record = {"kind": "frontal", "points": points}
            if verifier is None:
                break
            verifier.check(rgb, [record])
            if record["verified"]:
                break
        name = f"{HUMANS_DIR}/human_{i:03d}.png"
        save_image(root / name, rgb)
        truth["humans"].append({"file": name, **_record(record)})
        tick(name)

    anime_rng = np.random.default_rng(seeds[2])
    annotations = []
    for i in range(config.n_anime):
        face = draw_anime_face(anime_rng, PORTRAIT_SIZE)
        name = f"anime_{i:03d}.png"
        save_image(root / ANIME_DIR / name, face.image)
        annotations.append(
            ImageAnnotation(name=name, points=face.points, width=PORTRAIT_SIZE, height=PORTRAIT_SIZE)
        )
        truth["anime"].append({"file": f"{ANIME_DIR}/{name}", "points": flatten_points(face.points)})
        tick(f"{ANIME_DIR}/{name}")
    atomic_write_text(root / ANNOTATIONS_NAME, write_cvat(annotations))
    atomic_write_text(root / TRUTH_NAME, json.dumps(truth, indent=1))
    return truth
