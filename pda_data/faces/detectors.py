"""Face analysis: detectors, dlib 68-point landmarks and head pose.

Three detector backends share one interface and all return boxes in original-image pixels:

* ``anime-lbp``: OpenCV's LBP cascade for anime faces (nagadomi/lbpcascade_animeface), the paper's detector.
* ``dlib-hog``: dlib's frontal HOG + linear SVM detector.
* ``dlib-cnn``: dlib's MMOD CNN detector from ``face_recognition_models`` (slower, more robust).
"""

from __future__ import annotations

import importlib.util
import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import cv2
import dlib
import numpy as np

from pda_data.faces.names import DETECTORS, DetectorName
from pda_data.io.files import atomic_write_bytes, sha256_bytes, sha256_file
from pda_data.schema import HUMAN68

CASCADE_URL = "https://raw.githubusercontent.com/nagadomi/lbpcascade_animeface/master/lbpcascade_animeface.xml"
CASCADE_SHA256 = "9376d30ac38db6bda2a68b88b3b76bbd7e6aa33af47f7f5c76bc88ca75f1ce30"
CASCADE_ENV = "PDA_ANIME_CASCADE"
CACHE_ENV = "PDA_CACHE_DIR"

# Detection runs on a copy whose longer side is at most this; boxes are scaled back to original pixels.
DETECT_MAX_SIDE = 1024


class ModelError(RuntimeError):
    """A detector or landmark model is missing, unreadable or cannot be fetched."""


@dataclass(frozen=True)
class Detection:
    """One detected face: ``box`` = (x0, y0, x1, y1) in original pixels, ``score`` backend-specific."""

    box: tuple[float, float, float, float]
    score: float

    @property
    def size(self) -> float:
        """Side of the box (the larger of width and height), in pixels."""
        return max(self.box[2] - self.box[0], self.box[3] - self.box[1])

    @property
    def area(self) -> float:
        return max(0.0, self.box[2] - self.box[0]) * max(0.0, self.box[3] - self.box[1])


class Detector(Protocol):
    name: str

    def detect(self, rgb: np.ndarray) -> list[Detection]: ...


def cache_dir() -> Path:
    """Where downloaded models live: ``$PDA_CACHE_DIR`` or ``~/.cache/pda``."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "pda")


def resolve_cascade(path: Path | None = None) -> Path:
    """Path of the anime-face cascade: ``path``, else ``$PDA_ANIME_CASCADE``, else the cache, else a download.

    A download is checked against :data:`CASCADE_SHA256` before it is stored in the cache.
    """
    if path is None and os.environ.get(CASCADE_ENV):
        path = Path(os.environ[CASCADE_ENV])
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ModelError(f"{path}: anime face cascade not found")
        return path
    cached = cache_dir() / "lbpcascade_animeface.xml"
    if cached.is_file() and sha256_file(cached) == CASCADE_SHA256:
        return cached
    try:
        with urllib.request.urlopen(CASCADE_URL, timeout=30) as resp:
            data = resp.read()
    except (urllib.error.URLError, OSError) as exc:
        raise ModelError(
            f"cannot download the anime face cascade from {CASCADE_URL} ({exc}); download it by hand and "
            f"pass --cascade PATH (or set {CASCADE_ENV})"
        ) from exc
    digest = sha256_bytes(data)
    if digest != CASCADE_SHA256:
        raise ModelError(f"{CASCADE_URL}: sha256 {digest} does not match the pinned {CASCADE_SHA256}")
    atomic_write_bytes(cached, data)
    return cached


def dlib_model_path(filename: str) -> Path:
    """A model file shipped by ``face_recognition_models`` (located without importing the package)."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise ModelError("face_recognition_models is not installed (pip install face-recognition-models)")
    path = Path(list(spec.submodule_search_locations)[0]) / "models" / filename
    if not path.is_file():
        raise ModelError(f"{path}: dlib model file missing")
    return path


def _downscaled(rgb: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    """``rgb`` shrunk so its longer side is at most ``max_side``, and the factor back to original pixels."""
    h, w = rgb.shape[:2]
    scale = min(1.0, max_side / max(h, w))
    if scale >= 1.0:
        return rgb, 1.0
    new_size = (max(1, round(w * scale)), max(1, round(h * scale)))
    small = cv2.resize(rgb, new_size, interpolation=cv2.INTER_AREA)
    return small, w / small.shape[1]


def _scaled(rect: dlib.rectangle, factor: float) -> tuple[float, float, float, float]:
    """A dlib rectangle (inclusive corners) of a downscaled image to an original-pixel box."""
    x0, y0, x1, y1 = rect.left(), rect.top(), rect.right() + 1, rect.bottom() + 1
    return (x0 * factor, y0 * factor, x1 * factor, y1 * factor)


def _sorted(dets: list[Detection]) -> list[Detection]:
    return sorted(dets, key=lambda d: (-d.area, d.box))


class AnimeLbpDetector:
    """OpenCV LBP cascade for anime faces; the score is the cascade's level weight."""

    name = "anime-lbp"

    def __init__(self, cascade: Path | None = None, min_size: int = 24, min_neighbors: int = 5,
                 max_side: int = DETECT_MAX_SIDE) -> None:
        path = resolve_cascade(cascade)
        self._cascade = cv2.CascadeClassifier(str(path))
        if self._cascade.empty():
            raise ModelError(f"{path}: not a readable OpenCV cascade")
        self.min_size = min_size
        self.min_neighbors = min_neighbors
        self.max_side = max_side

    def detect(self, rgb: np.ndarray) -> list[Detection]:
        small, back = _downscaled(rgb, self.max_side)
        gray = cv2.equalizeHist(cv2.cvtColor(small, cv2.COLOR_RGB2GRAY))
        boxes, _, weights = self._cascade.detectMultiScale3(
            gray, scaleFactor=1.1, minNeighbors=self.min_neighbors, minSize=(self.min_size, self.min_size),
            outputRejectLevels=True,
        )
        return _sorted([
            Detection((x * back, y * back, (x + w) * back, (y + h) * back), float(s))
            for (x, y, w, h), s in zip(np.asarray(boxes).reshape(-1, 4), np.asarray(weights).reshape(-1),
                                       strict=True)
        ])


class DlibHogDetector:
    """dlib's frontal HOG detector; the score is the SVM margin. ``upsample`` finds faces down to ~40 px."""

    name = "dlib-hog"

    def __init__(self, upsample: int = 1, max_side: int = DETECT_MAX_SIDE) -> None:
        self._detector = dlib.get_frontal_face_detector()
        self.upsample = upsample
        self.max_side = max_side

    def detect(self, rgb: np.ndarray) -> list[Detection]:
        small, back = _downscaled(rgb, self.max_side)
        rects, scores, _ = self._detector.run(np.ascontiguousarray(small), self.upsample, 0.0)
        return _sorted([
            Detection(_scaled(r, back), float(s)) for r, s in zip(rects, scores, strict=True)
        ])


class DlibCnnDetector:
    """dlib's MMOD CNN detector (``mmod_human_face_detector.dat``); the score is its confidence."""

    name = "dlib-cnn"

    def __init__(self, upsample: int = 0, max_side: int = DETECT_MAX_SIDE) -> None:
        model = dlib_model_path("mmod_human_face_detector.dat")
        self._detector = dlib.cnn_face_detection_model_v1(str(model))
        self.upsample = upsample
        self.max_side = max_side

    def detect(self, rgb: np.ndarray) -> list[Detection]:
        small, back = _downscaled(rgb, self.max_side)
        found = self._detector(np.ascontiguousarray(small), self.upsample)
        return _sorted([
            Detection(_scaled(d.rect, back), float(d.confidence)) for d in found
        ])


def make_detector(name: DetectorName, cascade: Path | None = None) -> Detector:
    """Build a detector backend by name; ``cascade`` is only used by ``anime-lbp``."""
    if name == "anime-lbp":
        return AnimeLbpDetector(cascade)
    if name == "dlib-hog":
        return DlibHogDetector()
    if name == "dlib-cnn":
        return DlibCnnDetector()
    raise ValueError(f"unknown detector {name!r}; choose one of {', '.join(DETECTORS)}")


def _rect(box: tuple[float, float, float, float]) -> dlib.rectangle:
    return dlib.rectangle(round(box[0]), round(box[1]), round(box[2]) - 1, round(box[3]) - 1)


def predictor_box(points68: np.ndarray) -> tuple[float, float, float, float]:
    """The box dlib's HOG detector would give a face with these landmarks (its predictor is trained on those).

    Measured on real portraits: the HOG box is about as large as the landmarks' bounding box and starts a
    little above the brows.
    """
    pts = HUMAN68.check_shape(points68)
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    side = float(max(hi - lo))
    cx, cy = (lo + hi) / 2.0
    cy -= 0.05 * side
    return (cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2)


class Landmarker:
    """dlib's 68-point shape predictor (schema HUMAN68)."""

    def __init__(self, model: Path | None = None) -> None:
        path = model if model is not None else dlib_model_path("shape_predictor_68_face_landmarks.dat")
        self._predictor = dlib.shape_predictor(str(path))

    def predict(self, rgb: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
        """The 68 landmarks (68, 2) in image pixels of the face inside ``box`` (a HOG-like face box)."""
        shape = self._predictor(np.ascontiguousarray(rgb), _rect(box))
        return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float64)

    def refine(self, rgb: np.ndarray, box: tuple[float, float, float, float], passes: int = 2) -> np.ndarray:
        """Predict, then re-predict from the box the landmarks imply; makes any detector's box usable."""
        points = self.predict(rgb, box)
        for _ in range(passes - 1):
            points = self.predict(rgb, predictor_box(points))
        return points


# Generic 3D face (mm), camera axes: x right, y down, z away from the camera; the nose tip is the origin.
_GENERIC_FACE = np.array([
    (0.0, 0.0, 0.0),  # nose tip
    (0.0, 330.0, 65.0),  # chin
    (-225.0, -170.0, 135.0),  # outer corner of the image-left eye
    (225.0, -170.0, 135.0),  # outer corner of the image-right eye
    (-150.0, 150.0, 125.0),  # image-left mouth corner
    (150.0, 150.0, 125.0),  # image-right mouth corner
])
# dlib's landmarks of faces looking straight at the camera fit the generic face tilted by about 20 degrees
# (measured on real frontal portraits), so the model is pre-tilted to make their pitch about 0.
_NEUTRAL_PITCH = np.radians(20.0)
_POSE_MODEL = _GENERIC_FACE @ np.array([
    (1.0, 0.0, 0.0),
    (0.0, np.cos(_NEUTRAL_PITCH), np.sin(_NEUTRAL_PITCH)),
    (0.0, -np.sin(_NEUTRAL_PITCH), np.cos(_NEUTRAL_PITCH)),
])
# The matching HUMAN68 points; dlib's eye cycles start at the image-left corner and reach the image-right
# corner halfway round.
_POSE_INDICES = (
    HUMAN68.nose_tip,
    HUMAN68.contour[len(HUMAN68.contour) // 2],
    HUMAN68.left_eye[0],
    HUMAN68.right_eye[len(HUMAN68.right_eye) // 2],
    *HUMAN68.mouth_corners,
)


def head_pose(points68: np.ndarray, width: int, height: int) -> tuple[float, float, float]:
    """(yaw, pitch, roll) in degrees from the 68 landmarks, via ``cv2.solvePnP`` on a generic 3D face.

    A pinhole camera with focal length = the image's larger side is assumed, its principal point on the
    face, so where a face sits in the photo does not change its angles. All three angles are 0 for a frontal,
    upright face; roll is positive when the face tilts clockwise.
    """
    pts = HUMAN68.check_shape(points68)[list(_POSE_INDICES)]
    focal = float(max(width, height))
    cx, cy = HUMAN68.check_shape(points68).mean(axis=0)
    camera = np.array([[focal, 0, cx], [0, focal, cy], [0, 0, 1]], dtype=np.float64)
    # Start from a frontal face at the distance its eye span implies: the nearly planar model otherwise
    # lets the solver settle on the mirrored solution (a face seen from behind, roll near 180).
    eye_span = float(np.linalg.norm(pts[3] - pts[2]))
    model_span = float(np.linalg.norm(_POSE_MODEL[3] - _POSE_MODEL[2]))
    rvec0 = np.zeros((3, 1))
    tvec0 = np.array([[0.0], [0.0], [focal * model_span / max(eye_span, 1.0)]])
    ok, rvec, _ = cv2.solvePnP(_POSE_MODEL, pts, camera, np.zeros(4), rvec0, tvec0, useExtrinsicGuess=True,
                               flags=cv2.SOLVEPNP_ITERATIVE)
    if not ok:
        return float("nan"), float("nan"), float("nan")
    rot, _ = cv2.Rodrigues(rvec)
    (pitch, yaw, roll), *_ = cv2.RQDecomp3x3(rot)
    return float(yaw), float(pitch), float(roll)
