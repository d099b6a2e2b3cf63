"""COCO keypoints JSON: one keypoint annotation per image, ``[x, y, v] * 56``."""

from __future__ import annotations

import json

import numpy as np

from pda_data.annotations.formats.records import (
    SKELETON_LABEL,
    AnnotationFormatError,
    ImageAnnotation,
    int_or_none,
    load_json,
)
from pda_data.schema import ANIME56, LandmarkSchema


def parse_coco(data: bytes, source: str) -> list[ImageAnnotation]:
    """COCO keypoints: per annotation ``keypoints`` = [x, y, v] * 56; v = 0 marks an unlabelled point."""
    doc = load_json(data, source)
    if (
        not isinstance(doc, dict)
        or not isinstance(doc.get("images"), list)
        or not isinstance(doc.get("annotations"), list)
    ):
        raise AnnotationFormatError(source, "not a COCO file (needs 'images' and 'annotations' lists)")
    images: dict[object, dict] = {}
    for im in doc["images"]:
        if not isinstance(im, dict) or "id" not in im or "file_name" not in im:
            raise AnnotationFormatError(source, "COCO image entry without 'id' and 'file_name'")
        images[im["id"]] = im
    per_image: dict[object, list[dict]] = {k: [] for k in images}
    for ann in doc["annotations"]:
        if not isinstance(ann, dict) or ann.get("image_id") not in images:
            raise AnnotationFormatError(
                source,
                f"COCO annotation {ann.get('id') if isinstance(ann, dict) else ann!r} "
                "refers to no listed image",
            )
        per_image[ann["image_id"]].append(ann)
    out = []
    for image_id, anns in per_image.items():
        im = images[image_id]
        name, width, height = (
            str(im["file_name"]),
            int_or_none(im.get("width")),
            int_or_none(im.get("height")),
        )
        if len(anns) != 1:
            problem = ("wrong_count", f"{len(anns)} keypoint annotations for one image (expected 1)")
            out.append(ImageAnnotation(name, np.zeros((0, 2)), None, width, height, source, problem))
            continue
        kp = anns[0].get("keypoints")
        try:
            triples = np.asarray(kp, dtype=np.float64).reshape(-1, 3)
        except (TypeError, ValueError):
            problem = (
                "wrong_count",
                f"keypoints are not a flat list of (x, y, v) triples ({len(kp or [])} values)",
            )
            out.append(ImageAnnotation(name, np.zeros((0, 2)), None, width, height, source, problem))
            continue
        labelled = triples[:, 2] > 0
        labels = tuple(str(i) for i in np.flatnonzero(labelled))
        out.append(ImageAnnotation(name, triples[labelled, :2], labels, width, height, source))
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
