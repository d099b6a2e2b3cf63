"""Which faces of a photo get translated: curation's detect, landmark, size and frontal filters, every face.

:func:`find_faces` runs :func:`pda_data.curation.engine.analyze_faces` with the human-portrait defaults (so a
face is framed exactly as the training crops were) at the model's resolution, and returns the kept faces,
largest first, with the photo->crop affine that paste-back inverts, and the skipped ones with their reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from pda_data.curation.engine import Models, analyze_faces
from pda_data.curation.options import HUMAN_DEFAULTS, CurateOptions, with_overrides
from pda_data.faces.detection import Detector
from pda_data.faces.landmarks import Landmarker
from pda_data.geometry.crop import crop_face

FaceChoice = Literal["all", "largest"]


class NoFaceError(ValueError):
    """No face of a photo passed the filters."""


@dataclass(frozen=True)
class FaceCrop:
    """A face prepared for the translator: the crop, its 68 landmarks (crop px), the photo->crop affine
    (2x3), the detector's box and the 68 landmarks in photo pixels."""

    crop: np.ndarray
    points: np.ndarray
    affine: np.ndarray
    box: tuple[float, float, float, float]
    landmarks: np.ndarray


@dataclass(frozen=True)
class SkippedFace:
    """A detected face left alone: its box, the curation reason (too_small, not_frontal) and the detail."""

    box: tuple[float, float, float, float]
    reason: str
    detail: str

    def message(self) -> str:
        x0, y0, x1, y1 = (round(v) for v in self.box)
        return f"face at ({x0}, {y0})-({x1}, {y1}): {self.reason} ({self.detail})"


def face_options(size: int, faces: FaceChoice = "all", min_face: float | None = None) -> CurateOptions:
    """The human-portrait curation options at the model's crop ``size``."""
    return with_overrides(HUMAN_DEFAULTS, size=size, faces=faces, min_face=min_face)


def crop_at(rgb: np.ndarray, landmarks: np.ndarray, box: tuple[float, float, float, float],
            options: CurateOptions) -> FaceCrop:
    """The curation crop of the face with these 68 photo-pixel ``landmarks``."""
    crop, points, affine = crop_face(rgb, landmarks, margin=options.margin, size=options.size,
                                     align=options.align)
    return FaceCrop(crop, points, affine, box, landmarks)


def find_faces(
    rgb: np.ndarray, detector: Detector, landmarker: Landmarker, options: CurateOptions
) -> tuple[list[FaceCrop], list[SkippedFace]]:
    """Every face of ``rgb`` (``options.faces``: all, or the largest only) that passes the size and pose
    filters, largest first, and the ones that did not."""
    kept: list[FaceCrop] = []
    skipped: list[SkippedFace] = []
    for r in analyze_faces(rgb, Models(detector, None, landmarker), options):
        if r.crop is None:
            skipped.append(SkippedFace(r.detection.box, r.reason, r.detail))
        else:
            kept.append(FaceCrop(r.crop, r.points, r.affine, r.detection.box, r.landmarks))
    return kept, skipped


def faces_or_raise(
    rgb: np.ndarray, detector: Detector, landmarker: Landmarker, options: CurateOptions, name: str
) -> tuple[list[FaceCrop], list[SkippedFace]]:
    """:func:`find_faces`, raising :class:`NoFaceError` (naming ``name``) when no face is kept."""
    kept, skipped = find_faces(rgb, detector, landmarker, options)
    if not kept:
        why = "; ".join(s.message() for s in skipped)
        raise NoFaceError(f"{name}: no face found" + (f" that passes the filters ({why})" if why else ""))
    return kept, skipped
