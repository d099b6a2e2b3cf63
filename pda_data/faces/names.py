"""Names of the face detectors, apart from the models: command-line help lists them without cv2 or dlib."""

from __future__ import annotations

from typing import Literal

DetectorName = Literal["anime-lbp", "dlib-hog", "dlib-cnn"]
DETECTORS: tuple[str, ...] = ("anime-lbp", "dlib-hog", "dlib-cnn")
