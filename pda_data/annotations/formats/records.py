"""What every annotation format shares: the parsed record, the parse error, and safe reading of the input.

Parsers turn a tool's export into :class:`ImageAnnotation` records without judging them (a record may hold
55 points or an index twice; :mod:`pda_data.annotations.validate` validates). A field of one image that has
the wrong type (a width that is text, keypoints that are not numbers) makes that record's ``problem`` a
:data:`BAD_FIELD` naming the field and what was found; a file that cannot be parsed at all (no images to
speak of) raises :class:`AnnotationFormatError` with a one-line message naming it. Writers produce files
the tools and the parsers read back, coordinates written with ``repr`` so a round trip is exact.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pda_data.io.files import RefusedFile, read_regular_file

SKELETON_LABEL = "anime_face"  # the label of the landmark set in CVAT skeletons and COCO categories
MAX_FILE_BYTES = 64 * 1024 * 1024
BAD_FIELD = "bad_field"
MISSING = object()  # a field the file does not have (``dict.get(field, MISSING)``), as messages name it
_KINDS = {bool: "a boolean", int: "a number", float: "a number", str: "a string", list: "a list",
          dict: "an object"}


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


def bad_record(name: str, source: str, problem: tuple[str, str]) -> ImageAnnotation:
    """A record that holds no points, only why: ``problem`` is reported against image ``name``."""
    return ImageAnnotation(name, np.zeros((0, 2)), None, None, None, source, problem)


def describe(value: object) -> str:
    """A parsed value as a message shows it: its kind and a short repr (``a string ('640')``)."""
    if value is MISSING or value is None:
        return "missing" if value is MISSING else "null"
    text = repr(value)
    shown = text if len(text) <= 40 else text[:37] + "..."
    return f"{_KINDS.get(type(value), type(value).__name__)} ({shown})"


def bad_field(field: str, value: object, expected: str) -> tuple[str, str]:
    """The :data:`BAD_FIELD` problem of ``field``: what it holds and what it should."""
    return BAD_FIELD, f"{field} is {describe(value)}, expected {expected}"


def numbers(values: list, field: str) -> tuple[np.ndarray | None, tuple[str, str] | None]:
    """JSON ``values`` as floats, or a :data:`BAD_FIELD` problem naming the first that is not a number."""
    for i, value in enumerate(values):
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None, bad_field(f"{field}[{i}]", value, "a number")
    try:
        return np.asarray(values, dtype=np.float64), None
    except OverflowError:
        return None, (BAD_FIELD, f"{field} holds an integer too large for a coordinate")


def image_size(value: object, field: str, text: bool = False) -> tuple[int | None, tuple[str, str] | None]:
    """An image width or height: ``None`` when absent, else a positive integer (a JSON number; with ``text``,
    digits such as XML attributes hold) or a :data:`BAD_FIELD` problem."""
    if value is None:
        return None, None
    number = value
    digits = text and isinstance(value, str) and value.strip().isdecimal()
    if digits or (isinstance(value, float) and value.is_integer()):
        number = int(value)  # type: ignore[call-overload]
    if isinstance(number, int) and not isinstance(number, bool) and number > 0:
        return number, None
    return None, bad_field(field, value, "a positive integer")


def point_labels(ann: ImageAnnotation) -> tuple[str, ...]:
    """The label of each point: the parsed labels, else the index (what the writers name points by)."""
    return ann.labels or tuple(str(i) for i in range(len(ann.points)))


def format_number(value: float) -> str:
    """A coordinate as text that reads back to the same float (``repr``), so a round trip is exact."""
    return repr(float(value))


def read_bytes(path: Path) -> bytes:
    """The bytes of an annotation file (opened once; a FIFO, device or file over :data:`MAX_FILE_BYTES` is
    refused before reading)."""
    try:
        return read_regular_file(path, MAX_FILE_BYTES)
    except RefusedFile as exc:
        raise AnnotationFormatError(path, f"{exc.reason} ({exc.detail})") from exc


def load_json(data: bytes, source: str) -> object:
    """Parse JSON (a UTF-8 BOM allowed); malformed input is an :class:`AnnotationFormatError`."""
    try:
        return json.loads(data.decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise AnnotationFormatError(source, f"not valid JSON ({exc})") from exc
