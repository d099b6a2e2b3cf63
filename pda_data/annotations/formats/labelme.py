"""labelme JSON: one file per image, landmarks as ``point`` shapes labelled by index."""

from __future__ import annotations

import json
from pathlib import PurePosixPath

import numpy as np

from pda_data.annotations.formats.records import (
    AnnotationFormatError,
    ImageAnnotation,
    int_or_none,
    load_json,
    point_labels,
)


def parse_labelme(data: bytes, source: str) -> ImageAnnotation:
    """One labelme JSON file: ``point`` shapes labelled "0".."55"; other shape types are ignored."""
    doc = load_json(data, source)
    if not isinstance(doc, dict) or not isinstance(doc.get("shapes"), list) or "imagePath" not in doc:
        raise AnnotationFormatError(source, "not a labelme file (needs 'shapes' and 'imagePath')")
    points, labels = [], []
    problem = None
    for shape in doc["shapes"]:
        if not isinstance(shape, dict) or shape.get("shape_type", "point") != "point":
            continue
        xy = shape.get("points")
        try:
            ((x, y),) = xy  # a point shape holds exactly one (x, y)
            points.append((float(x), float(y)))
        except (TypeError, ValueError):
            problem = problem or (
                "wrong_count",
                f"point shape {shape.get('label')!r} does not hold one (x, y)",
            )
            continue
        labels.append(str(shape.get("label", "")))
    return ImageAnnotation(
        str(doc["imagePath"]),
        np.asarray(points, dtype=np.float64).reshape(-1, 2),
        tuple(labels),
        int_or_none(doc.get("imageWidth")),
        int_or_none(doc.get("imageHeight")),
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
