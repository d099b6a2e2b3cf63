"""labelme JSON: one file per image, landmarks as ``point`` shapes labelled by index."""

from __future__ import annotations

import json
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
    point_labels,
)


def _point(shape: dict, where: str) -> tuple[tuple[float, float] | None, tuple[str, str] | None]:
    """The one (x, y) of a point shape, or the :data:`BAD_FIELD` problem of its ``points``."""
    xy = shape.get("points", MISSING)
    if not (isinstance(xy, list) and len(xy) == 1 and isinstance(xy[0], list) and len(xy[0]) == 2):
        return None, bad_field(f"{where} points", xy, "one [x, y] pair")
    values, problem = numbers(xy[0], f"{where} points[0]")
    return (None, problem) if values is None else ((float(values[0]), float(values[1])), None)


def parse_labelme(data: bytes, source: str) -> ImageAnnotation:
    """One labelme JSON file: ``point`` shapes labelled "0".."55"; other shape types are ignored.

    A field of the wrong type (``shapes`` not a list, a point that is not one [x, y] pair of numbers, a
    width that is not an integer) makes the record a :data:`BAD_FIELD` one.
    """
    doc = load_json(data, source)
    if not isinstance(doc, dict) or "shapes" not in doc or "imagePath" not in doc:
        raise AnnotationFormatError(source, "not a labelme file (needs 'shapes' and 'imagePath')")
    name, shapes = doc["imagePath"], doc["shapes"]
    if not isinstance(name, str) or not name:
        return bad_record(source, source, bad_field("imagePath", name, "an image file name"))
    if not isinstance(shapes, list):
        return bad_record(name, source, bad_field("shapes", shapes, "a list of shapes"))
    width, wrong_width = image_size(doc.get("imageWidth"), "imageWidth")
    height, wrong_height = image_size(doc.get("imageHeight"), "imageHeight")
    points, labels = [], []
    problem = wrong_width or wrong_height
    for i, shape in enumerate(shapes):
        if not isinstance(shape, dict):
            problem = problem or bad_field(f"shapes[{i}]", shape, "an object")
            continue
        if shape.get("shape_type", "point") != "point":
            continue
        xy, wrong = _point(shape, f"point shape {shape.get('label')!r}")
        if xy is None:
            problem = problem or wrong
            continue
        points.append(xy)
        labels.append(str(shape.get("label", "")))
    return ImageAnnotation(
        name,
        np.asarray(points, dtype=np.float64).reshape(-1, 2),
        tuple(labels),
        width,
        height,
        source,
        problem,
    )


def write_labelme(ann: ImageAnnotation) -> str:
    """One labelme 5 JSON document (point shapes labelled by index, no embedded image data)."""
    doc = {
        "version": "5.4.1",
        "flags": {},
        "shapes": [
            {
                "label": lab,
                "points": [[float(x), float(y)]],
                "group_id": None,
                "description": "",
                "shape_type": "point",
                "flags": {},
                "mask": None,
            }
            for lab, (x, y) in zip(point_labels(ann), ann.points, strict=True)
        ],
        "imagePath": ann.name,
        "imageData": None,
        "imageHeight": ann.height,
        "imageWidth": ann.width,
    }
    return json.dumps(doc, indent=1) + "\n"


def labelme_filename(name: str) -> str:
    """File name of the labelme JSON for an image name ("sub/a.png" -> "sub/a.json")."""
    return PurePosixPath(name).with_suffix(".json").as_posix()
