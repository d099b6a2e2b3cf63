"""What a curation run keeps and how its crops look: one options dataclass and the two commands' defaults.

Apart from the engine (no cv2, dlib or pandas) so that the command-line help reads the defaults cheaply.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal


@dataclass(frozen=True)
class CurateOptions:
    """Everything that decides what a run keeps and how crops look (see the CLI help for each)."""

    detector: str = "dlib-hog"
    fallback_detector: str | None = None
    cascade: Path | None = None
    faces: Literal["largest", "all"] = "largest"
    min_face: float = 64.0
    max_yaw: float = 30.0
    max_pitch: float = 25.0
    max_roll: float = 30.0
    margin: float = 0.5
    size: int = 256
    align: bool = True
    image_format: Literal["png", "jpg"] = "png"
    quality: int = 95
    dedup: bool = True
    hamming: int = 2


COSER_DEFAULTS = CurateOptions(detector="anime-lbp", fallback_detector="dlib-hog")
HUMAN_DEFAULTS = CurateOptions(detector="dlib-hog")


def with_overrides(base: CurateOptions, **overrides: Any) -> CurateOptions:
    """``base`` with the given fields replaced (None values keep the default)."""
    return replace(base, **{k: v for k, v in overrides.items() if v is not None})
