"""The demo truth: re-detect generated faces with the toolkit's own detectors, and record what holds."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pda_data.faces.detectors import make_detector
from pda_data.faces.landmarks import Landmarker
from pda_data.faces.pose import head_pose
from pda_data.schema import flatten_points


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


class Verifier:
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


def face_record(face: dict) -> dict:
    out = {k: v for k, v in face.items() if k != "points"}
    lo, hi = face["points"].min(axis=0), face["points"].max(axis=0)
    out["landmark_box"] = [round(float(v), 2) for v in (*lo, *hi)]
    out["landmarks"] = [round(v, 3) for v in flatten_points(face["points"])]
    return out
