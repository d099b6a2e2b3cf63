"""What a face detector is: the backend names, one detection, and the interface every backend implements.

Light on purpose (no OpenCV or dlib): the CLIs build their ``--detector`` choices from :data:`DETECTORS`.
The backends live in :mod:`pda_data.faces.detectors`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol

if TYPE_CHECKING:
    import numpy as np

DetectorName = Literal["anime-lbp", "dlib-hog", "dlib-cnn"]
DETECTORS: tuple[str, ...] = ("anime-lbp", "dlib-hog", "dlib-cnn")


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
