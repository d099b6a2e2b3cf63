"""dlib's 68-point landmarks (schema HUMAN68) and the face box its shape predictor expects."""

from __future__ import annotations

import functools
from pathlib import Path

import dlib
import numpy as np

from pda_data.faces.models import dlib_model_path
from pda_data.schema import HUMAN68


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


@functools.cache
def _default_predictor() -> dlib.shape_predictor:
    """The 68-point model (a 100 MB file, seconds to parse), read once per process; it is immutable."""
    return dlib.shape_predictor(str(dlib_model_path("shape_predictor_68_face_landmarks.dat")))


class Landmarker:
    """dlib's 68-point shape predictor (schema HUMAN68); ``model`` defaults to face-recognition-models'."""

    def __init__(self, model: Path | None = None) -> None:
        self._predictor = _default_predictor() if model is None else dlib.shape_predictor(str(model))

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
