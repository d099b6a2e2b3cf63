"""Portrait analysis: one photo in, its faces detected, landmarked, pose-filtered and cropped.

One analysis serves ``crop-cosers`` (anime face detector, as in the paper) and ``crop-humans`` (dlib HOG):
detect faces, fit dlib's 68 landmarks, estimate head pose, reject faces that are too small or not frontal,
and crop a square head portrait with a margin (hair included), optionally with the eyes levelled. The run
over many inputs (workers, resume, parts, duplicates) is :mod:`pda_data.curation.run`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pda_data.curation.dedup import phash
from pda_data.curation.options import CurateOptions
from pda_data.curation.table import NOT_FRONTAL, TOO_SMALL
from pda_data.faces.detection import Detection, Detector
from pda_data.faces.detectors import make_detector
from pda_data.faces.landmarks import Landmarker, predictor_box
from pda_data.faces.pose import head_pose
from pda_data.geometry.crop import crop_face
from pda_data.io.table import STATUS_KEPT, STATUS_REJECTED

# An anime-lbp box spans the whole head; dlib's predictor expects a box about this fraction of it,
# a little lower (measured against dlib-hog boxes on real portraits).
_LBP_FACE_FRACTION = 0.7
_LBP_FACE_DROP = 0.03


# ----------------------------------------------------------------------------------------------- geometry


def _lbp_predictor_box(box: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
    x0, y0, x1, y1 = box
    side = max(x1 - x0, y1 - y0) * _LBP_FACE_FRACTION
    cx, cy = (x0 + x1) / 2.0, (y0 + y1) / 2.0 + _LBP_FACE_DROP * side
    return (cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2)


# ----------------------------------------------------------------------------------------------- analysis


@dataclass
class Models:
    """The detectors and landmarker one process uses (built once per worker)."""

    detector: Detector
    fallback: Detector | None
    landmarker: Landmarker

    @classmethod
    def load(cls, options: CurateOptions) -> Models:
        fallback = None
        if options.fallback_detector and options.fallback_detector != options.detector:
            fallback = make_detector(options.fallback_detector, options.cascade)  # type: ignore[arg-type]
        return cls(make_detector(options.detector, options.cascade), fallback, Landmarker())  # type: ignore[arg-type]


@dataclass
class FaceResult:
    """One analysed face: its 68 ``landmarks`` (photo pixels); ``crop``, ``points`` (crop pixels) and
    ``affine`` (2x3, photo -> crop) are set only for kept faces."""

    status: str
    reason: str
    detector: str
    detection: Detection
    face_size: float = float("nan")
    pose: tuple[float, float, float] = (float("nan"),) * 3
    landmarks: np.ndarray | None = None
    crop: np.ndarray | None = None
    points: np.ndarray | None = None
    affine: np.ndarray | None = None
    phash: str = ""
    detail: str = ""


def _overlap(a: Detection, b: Detection) -> float:
    """Intersection over the smaller box: 1 when one box holds the other."""
    ix = max(0.0, min(a.box[2], b.box[2]) - max(a.box[0], b.box[0]))
    iy = max(0.0, min(a.box[3], b.box[3]) - max(a.box[1], b.box[1]))
    smaller = min(a.area, b.area)
    return ix * iy / smaller if smaller > 0 else 0.0


def _merge_detections(
    found: list[tuple[Detection, str]], name: str, extra: list[Detection]
) -> list[tuple[Detection, str]]:
    """Add the second detector's faces: new faces join; for a face both found, a dlib box wins.

    dlib's landmark predictor is trained on dlib boxes; anime-lbp boxes on real faces vary from the eye
    region to the whole head, so a dlib box gives better landmarks for the same face.
    """
    merged = list(found)
    for det in extra:
        hits = [i for i, (other, _) in enumerate(merged) if _overlap(det, other) > 0.5]
        if not hits:
            merged.append((det, name))
        elif name.startswith("dlib") and not any(merged[i][1].startswith("dlib") for i in hits):
            merged = [pair for i, pair in enumerate(merged) if i not in hits] + [(det, name)]
    return sorted(merged, key=lambda pair: (-pair[0].area, pair[0].box))


def analyze_faces(rgb: np.ndarray, models: Models, options: CurateOptions) -> list[FaceResult]:
    """Detect, landmark, pose-filter and crop every face of ``rgb`` (largest first); [] when there is none."""
    found = [(det, models.detector.name) for det in models.detector.detect(rgb)]
    if models.fallback is not None:
        found = _merge_detections(found, models.fallback.name, models.fallback.detect(rgb))
    if options.faces == "largest":
        found = found[:1]
    h, w = rgb.shape[:2]
    results = []
    for det, detector_name in found:
        box = _lbp_predictor_box(det.box) if detector_name == "anime-lbp" else det.box
        points = models.landmarker.refine(rgb, box)
        x0, y0, x1, y1 = predictor_box(points)
        result = FaceResult(
            STATUS_REJECTED, "", detector_name, det, face_size=float(x1 - x0), landmarks=points
        )
        if result.face_size < options.min_face:
            result.reason = TOO_SMALL
            result.detail = f"face {result.face_size:.0f} px < {options.min_face:g} px"
            results.append(result)
            continue
        result.pose = head_pose(points, w, h)
        limits = (options.max_yaw, options.max_pitch, options.max_roll)
        names = ("yaw", "pitch", "roll")
        over = [f"{n} {v:+.0f}" for n, v, lim in zip(names, result.pose, limits, strict=True)
                if not abs(v) <= lim]
        if over:
            result.reason = NOT_FRONTAL
            result.detail = ", ".join(over) + " deg"
            results.append(result)
            continue
        result.crop, result.points, result.affine = crop_face(
            rgb, points, margin=options.margin, size=options.size, align=options.align
        )
        result.phash = phash(result.crop)
        result.status = STATUS_KEPT
        results.append(result)
    return results

