"""What every annotation format shares: the parsed record, the parse error, and safe reading of the input.

Parsers turn a tool's export into :class:`ImageAnnotation` records without judging them (a record may hold
55 points or an index twice; :mod:`pda_data.annotations.table` validates). A file that cannot be parsed at
all raises :class:`AnnotationFormatError` with a one-line message naming it. Writers produce files the tools
and the parsers read back, coordinates written with ``repr`` so a round trip is exact.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SKELETON_LABEL = "anime_face"  # the label of the landmark set in CVAT skeletons and COCO categories
MAX_FILE_BYTES = 64 * 1024 * 1024


class AnnotationFormatError(ValueError):
    """An annotation file that cannot be parsed at all (malformed, hostile or of the wrong kind)."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{path}: {reason}")


@dataclass(frozen=True)
class ImageAnnotation:
    """The landmarks one annotation file gives one image, as found (not yet validated).

    ``labels`` holds the label of each point when the format names points (labelme, CVAT skeletons); ``None``
    means the order gives the index. ``problem`` is a structural fault the parser saw, as (code, message).
    """

    name: str
    points: np.ndarray
    labels: tuple[str, ...] | None = None
    width: int | None = None
    height: int | None = None
    source_file: str = ""
    problem: tuple[str, str] | None = None


def point_labels(ann: ImageAnnotation) -> tuple[str, ...]:
    """The label of each point: the parsed labels, else the index (what the writers name points by)."""
    return ann.labels or tuple(str(i) for i in range(len(ann.points)))


def format_number(value: float) -> str:
    """A coordinate as text that reads back to the same float (``repr``), so a round trip is exact."""
    return repr(float(value))


def read_bytes(path: Path) -> bytes:
    """The bytes of an annotation file, refusing files over :data:`MAX_FILE_BYTES`."""
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise AnnotationFormatError(path, f"file too large ({size} bytes > {MAX_FILE_BYTES})")
        return path.read_bytes()
    except OSError as exc:
        raise AnnotationFormatError(path, exc.strerror or str(exc)) from exc


def load_json(data: bytes, source: str) -> object:
    """Parse JSON (a UTF-8 BOM allowed); malformed input is an :class:`AnnotationFormatError`."""
    try:
        return json.loads(data.decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise AnnotationFormatError(source, f"not valid JSON ({exc})") from exc


def int_or_none(value: object) -> int | None:
    """An image width or height as given, or ``None`` when it is missing or not a number."""
    try:
        return int(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
