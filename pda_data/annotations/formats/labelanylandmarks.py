"""LabelAnyLandmarks (the PDA authors' labeller): a folder of ``<image stem>-<k>.txt`` JSON files.

NeverGiveU/LabelAnyLandmarks writes one file per face, ``k`` numbering the faces of one image from 0, each one
line of JSON:
``{"1": [x, y], ..., "56": [x, y], "SIZE": [height, width], "IMAGE": "<image stem>"}``.

The keys are 1-based: key ``n`` is ANIME56 index ``n - 1``. ``IMAGE`` holds the image's name without its
suffix (the tool's ``basename.split('.')[0]``); the importer resolves it to the one image file of that stem.
"""

from __future__ import annotations

import json
import re
from pathlib import PurePosixPath

import numpy as np

from pda_data.annotations.formats.records import (
    MISSING,
    AnnotationFormatError,
    ImageAnnotation,
    bad_field,
    bad_record,
    image_size,
    load_json,
    numbers,
)
from pda_data.schema import ANIME56

FILE_PATTERN = re.compile(r"^(?P<stem>.+)-(?P<k>\d+)\.txt$")
_META = ("SIZE", "IMAGE")


def parse_labelanylandmarks(data: bytes, source: str, folder: str = "") -> ImageAnnotation:
    """One LabelAnyLandmarks file; ``folder`` (its folder relative to the annotation root, "" at the top) is
    put before the ``IMAGE`` name. A key that is not a landmark number is labelled so validation reports it
    (``bad_label``); a point or ``SIZE`` of the wrong type makes the record a ``bad_field`` one."""
    doc = load_json(data, source)
    if not isinstance(doc, dict):
        raise AnnotationFormatError(source, "not a LabelAnyLandmarks file (needs a JSON object)")
    match = FILE_PATTERN.match(PurePosixPath(source).name)
    image = doc.get("IMAGE", match["stem"] if match else MISSING)
    if not isinstance(image, str) or not image:
        return bad_record(source, source, bad_field("IMAGE", image, "an image name"))
    name = f"{folder}/{image}" if folder else image
    width = height = None
    problem = None
    size = doc.get("SIZE", MISSING)
    if size is not MISSING:
        if not (isinstance(size, list) and len(size) == 2):
            return bad_record(name, source, bad_field("SIZE", size, "[height, width]"))
        height, wrong_h = image_size(size[0], "SIZE height")
        width, wrong_w = image_size(size[1], "SIZE width")
        problem = wrong_h or wrong_w
    points, labels = [], []
    for key, xy in doc.items():
        if key in _META:
            continue
        if not (isinstance(xy, list) and len(xy) == 2):
            return bad_record(name, source, bad_field(f"point {key!r}", xy, "an [x, y] pair"))
        values, wrong = numbers(xy, f"point {key!r}")
        if values is None:
            return bad_record(name, source, wrong)
        text = key.strip()
        number = int(text) if text.isdigit() else 0
        labels.append(str(number - 1) if 1 <= number <= ANIME56.n_points else f"key {key}")
        points.append(values)
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    return ImageAnnotation(name, pts, tuple(labels), width, height, source, problem)


def write_labelanylandmarks(ann: ImageAnnotation) -> str:
    """One LabelAnyLandmarks file (one line of JSON, keys "1".."56", as the tool writes it)."""
    doc: dict[str, object] = {str(i + 1): [float(x), float(y)] for i, (x, y) in enumerate(ann.points)}
    doc["SIZE"] = [ann.height, ann.width]
    doc["IMAGE"] = PurePosixPath(ann.name).stem
    return json.dumps(doc)


def labelanylandmarks_filename(name: str, k: int = 0) -> str:
    """File name of face ``k`` of an image ("sub/a.png" -> "sub/a-0.txt")."""
    p = PurePosixPath(name)
    return (p.parent / f"{p.stem}-{k}.txt").as_posix()
