"""COCO keypoints JSON: one keypoint annotation per image, ``[x, y, v] * 56``."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np

from pda_data.annotations.formats.records import (
    BAD_FIELD,
    MISSING,
    SKELETON_LABEL,
    AnnotationFormatError,
    ImageAnnotation,
    bad_field,
    bad_record,
    describe,
    image_size,
    load_json,
    numbers,
)
from pda_data.schema import ANIME56, LandmarkSchema


def _image_head(index: int, im: object) -> tuple[object, ImageAnnotation]:
    """An ``images`` entry: its id and its record (no points yet; ``problem`` set for a bad field)."""
    if not isinstance(im, dict):
        return MISSING, bad_record(f"images[{index}]", "", bad_field(f"images[{index}]", im, "an object"))
    image_id, name = im.get("id", MISSING), im.get("file_name", MISSING)
    width, wrong_width = image_size(im.get("width"), "width")
    height, wrong_height = image_size(im.get("height"), "height")
    if not isinstance(name, str) or not name:
        problem = bad_field("file_name", name, "an image file name")
        return image_id, bad_record(f"images[{index}]", "", problem)
    if isinstance(image_id, bool) or not isinstance(image_id, int | str):
        return image_id, bad_record(name, "", bad_field("id", image_id, "an integer or a string"))
    problem = wrong_width or wrong_height
    return image_id, ImageAnnotation(name, np.zeros((0, 2)), None, width, height, "", problem)


def _keypoints(kp: object) -> tuple[np.ndarray | None, tuple[str, str] | None]:
    """An annotation's ``keypoints`` as (K, 3) (x, y, v) rows, or the :data:`BAD_FIELD` problem."""
    if not isinstance(kp, list):
        return None, bad_field("keypoints", kp, "a list of x, y, v numbers")
    if len(kp) % 3:
        return None, (BAD_FIELD, f"keypoints holds {len(kp)} values, expected x, y, v for each point")
    values, problem = numbers(kp, "keypoints")
    return (None, problem) if values is None else (values.reshape(-1, 3), None)


def parse_coco(data: bytes, source: str) -> list[ImageAnnotation]:
    """COCO keypoints: per annotation ``keypoints`` = [x, y, v] * 56; v = 0 marks an unlabelled point.

    An image entry or its one annotation with a field of the wrong type is a :data:`BAD_FIELD` record; an
    annotation that refers to no listed image fails the file.
    """
    doc = load_json(data, source)
    if (
        not isinstance(doc, dict)
        or not isinstance(doc.get("images"), list)
        or not isinstance(doc.get("annotations"), list)
    ):
        raise AnnotationFormatError(source, "not a COCO file (needs 'images' and 'annotations' lists)")
    heads = [_image_head(i, im) for i, im in enumerate(doc["images"])]
    usable: dict[object, list[dict]] = {}  # valid image id -> its annotations
    rejected: list[object] = []  # ids of the images with a bad field (any JSON value: compared, not hashed)
    for n, (image_id, head) in enumerate(heads):
        if head.problem is None and image_id in usable:
            problem = bad_field("id", image_id, "an id no other image has")
            heads[n] = (image_id, replace(head, problem=problem))
        if heads[n][1].problem is None:
            usable[image_id] = []
        else:
            rejected.append(image_id)
    for ann in doc["annotations"]:
        if not isinstance(ann, dict):
            raise AnnotationFormatError(source, f"COCO annotation {describe(ann)} is not an object")
        image_id = ann.get("image_id", MISSING)
        if isinstance(image_id, int | str) and image_id in usable:
            usable[image_id].append(ann)
        elif image_id is MISSING or image_id not in rejected:
            raise AnnotationFormatError(source, f"COCO annotation {ann.get('id', 'without id')} refers to no "
                                                f"listed image (image_id {describe(image_id)})")
    out = []
    for image_id, head in heads:
        problem = head.problem
        anns = usable[image_id] if problem is None else []
        if problem is None and len(anns) != 1:
            problem = ("wrong_count", f"{len(anns)} keypoint annotations for one image (expected 1)")
        triples = None
        if problem is None:
            triples, problem = _keypoints(anns[0].get("keypoints", MISSING))
        if triples is None:
            out.append(replace(head, source_file=source, problem=problem))
            continue
        labelled = triples[:, 2] > 0
        labels = tuple(str(i) for i in np.flatnonzero(labelled))
        out.append(replace(head, points=triples[labelled, :2], labels=labels, source_file=source))
    return out


def write_coco(annotations: list[ImageAnnotation], schema: LandmarkSchema = ANIME56) -> str:
    """COCO keypoints JSON, one category whose keypoints are named by index, every point visible (v = 2)."""
    images, anns = [], []
    for n, ann in enumerate(annotations, start=1):
        images.append({"id": n, "file_name": ann.name, "width": ann.width, "height": ann.height})
        pts = np.asarray(ann.points, dtype=np.float64)
        lo, hi = pts.min(axis=0), pts.max(axis=0)
        anns.append(
            {
                "id": n,
                "image_id": n,
                "category_id": 1,
                "iscrowd": 0,
                "num_keypoints": len(pts),
                "keypoints": [v for x, y in pts for v in (float(x), float(y), 2)],
                "bbox": [float(lo[0]), float(lo[1]), float(hi[0] - lo[0]), float(hi[1] - lo[1])],
                "area": float((hi[0] - lo[0]) * (hi[1] - lo[1])),
            }
        )
    cat = {
        "id": 1,
        "name": SKELETON_LABEL,
        "supercategory": "face",
        "keypoints": [str(i) for i in range(schema.n_points)],
        "skeleton": [],
    }
    return json.dumps({"images": images, "annotations": anns, "categories": [cat]}, indent=1) + "\n"
