"""The face detector backends; all return boxes in original-image pixels, largest face first.

* ``anime-lbp``: OpenCV's LBP cascade for anime faces (nagadomi/lbpcascade_animeface), the paper's detector.
* ``dlib-hog``: dlib's frontal HOG + linear SVM detector.
* ``dlib-cnn``: dlib's MMOD CNN detector from ``face_recognition_models`` (slower, more robust).

Names, :class:`~pda_data.faces.detection.Detection` and the interface are in :mod:`pda_data.faces.detection`.
"""

from __future__ import annotations

import functools
from pathlib import Path

import cv2
import dlib
import numpy as np

from pda_data.faces.detection import DETECTORS, Detection, Detector, DetectorName
from pda_data.faces.models import ModelError, dlib_model_path, resolve_cascade

# Detection runs on a copy whose longer side is at most this; boxes are scaled back to original pixels.
DETECT_MAX_SIDE = 1024

Box = tuple[float, float, float, float]


def _downscaled(rgb: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    """``rgb`` shrunk so its longer side is at most ``max_side``, and the factor back to original pixels."""
    h, w = rgb.shape[:2]
    scale = min(1.0, max_side / max(h, w))
    if scale >= 1.0:
        return rgb, 1.0
    new_size = (max(1, round(w * scale)), max(1, round(h * scale)))
    small = cv2.resize(rgb, new_size, interpolation=cv2.INTER_AREA)
    return small, w / small.shape[1]


def _dlib_box(rect: dlib.rectangle) -> Box:
    """A dlib rectangle (inclusive corners) as an (x0, y0, x1, y1) box."""
    return (rect.left(), rect.top(), rect.right() + 1, rect.bottom() + 1)


def _scaled(box: Box, factor: float) -> Box:
    x0, y0, x1, y1 = box
    return (float(x0) * factor, float(y0) * factor, float(x1) * factor, float(y1) * factor)


class _Downscaling:
    """The frame every backend shares: detect on a copy at most ``max_side`` pixels long, scale the boxes
    back to original pixels and sort them largest first (ties by position, so the order is deterministic)."""

    name: str
    max_side: int

    def detect(self, rgb: np.ndarray) -> list[Detection]:
        small, back = _downscaled(rgb, self.max_side)
        found = [Detection(_scaled(box, back), float(score)) for box, score in self._detect(small)]
        return sorted(found, key=lambda d: (-d.area, d.box))

    def _detect(self, rgb: np.ndarray) -> list[tuple[Box, float]]:
        """(box, score) pairs in the pixels of ``rgb``."""
        raise NotImplementedError


class AnimeLbpDetector(_Downscaling):
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

    def _detect(self, rgb: np.ndarray) -> list[tuple[Box, float]]:
        gray = cv2.equalizeHist(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY))
        boxes, _, weights = self._cascade.detectMultiScale3(
            gray, scaleFactor=1.1, minNeighbors=self.min_neighbors, minSize=(self.min_size, self.min_size),
            outputRejectLevels=True,
        )
        return [
            ((x, y, x + w, y + h), s)
            for (x, y, w, h), s in zip(np.asarray(boxes).reshape(-1, 4), np.asarray(weights).reshape(-1),
                                       strict=True)
        ]


@functools.cache
def _frontal_face_detector() -> dlib.fhog_object_detector:
    """dlib's HOG detector, built once per process (seconds to build; immutable once built)."""
    return dlib.get_frontal_face_detector()


class DlibHogDetector(_Downscaling):
    """dlib's frontal HOG detector; the score is the SVM margin. ``upsample`` finds faces down to ~40 px."""

    name = "dlib-hog"

    def __init__(self, upsample: int = 1, max_side: int = DETECT_MAX_SIDE) -> None:
        self._detector = _frontal_face_detector()
        self.upsample = upsample
        self.max_side = max_side

    def _detect(self, rgb: np.ndarray) -> list[tuple[Box, float]]:
        rects, scores, _ = self._detector.run(np.ascontiguousarray(rgb), self.upsample, 0.0)
        return [(_dlib_box(r), s) for r, s in zip(rects, scores, strict=True)]


class DlibCnnDetector(_Downscaling):
    """dlib's MMOD CNN detector (``mmod_human_face_detector.dat``); the score is its confidence."""

    name = "dlib-cnn"

    def __init__(self, upsample: int = 0, max_side: int = DETECT_MAX_SIDE) -> None:
        model = dlib_model_path("mmod_human_face_detector.dat")
        self._detector = dlib.cnn_face_detection_model_v1(str(model))
        self.upsample = upsample
        self.max_side = max_side

    def _detect(self, rgb: np.ndarray) -> list[tuple[Box, float]]:
        found = self._detector(np.ascontiguousarray(rgb), self.upsample)
        return [(_dlib_box(d.rect), d.confidence) for d in found]


def make_detector(name: DetectorName, cascade: Path | None = None) -> Detector:
    """Build a detector backend by name; ``cascade`` is only used by ``anime-lbp``."""
    if name == "anime-lbp":
        return AnimeLbpDetector(cascade)
    if name == "dlib-hog":
        return DlibHogDetector()
    if name == "dlib-cnn":
        return DlibCnnDetector()
    raise ValueError(f"unknown detector {name!r}; choose one of {', '.join(DETECTORS)}")
