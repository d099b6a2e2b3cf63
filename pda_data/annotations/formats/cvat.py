"""CVAT for images 1.1 XML; parsed with ``defusedxml``, so DTDs, entity expansion and external entities
are refused."""

from __future__ import annotations

from xml.etree.ElementTree import Element, ParseError, SubElement, indent, tostring

import defusedxml.ElementTree as SafeET
import numpy as np
from defusedxml import DefusedXmlException

from pda_data.annotations.formats.records import (
    SKELETON_LABEL,
    AnnotationFormatError,
    ImageAnnotation,
    format_number,
    int_or_none,
    point_labels,
)
from pda_data.schema import ANIME56, LandmarkSchema


def _parse_xy(text: str, source: str, where: str) -> np.ndarray:
    """CVAT ``points`` attribute "x0,y0;x1,y1" to (K, 2)."""
    out = []
    for pair in filter(None, (p.strip() for p in text.split(";"))):
        parts = pair.split(",")
        if len(parts) != 2:
            raise AnnotationFormatError(source, f"{where}: bad point {pair!r}")
        try:
            out.append((float(parts[0]), float(parts[1])))
        except ValueError as exc:
            raise AnnotationFormatError(source, f"{where}: bad point {pair!r}") from exc
    return np.asarray(out, dtype=np.float64).reshape(-1, 2)


def _labelled_points(
    elems: list[Element], source: str, where: str
) -> tuple[np.ndarray, tuple[str, ...], bool]:
    """Points elements labelled by index: their points (K, 2), labels, and whether each held one point."""
    parsed = [_parse_xy(e.get("points", ""), source, where) for e in elems]
    points = np.concatenate(parsed) if parsed else np.zeros((0, 2))
    return points, tuple(e.get("label", "") for e in elems), all(len(p) == 1 for p in parsed)


def parse_cvat(data: bytes, source: str) -> list[ImageAnnotation]:
    """CVAT for images 1.1: per ``<image>`` one ``<skeleton>`` (child points labelled by index), one
    multi-point ``<points>`` element (order gives the index), or single-point ``<points>`` elements labelled
    by index."""
    try:
        root = SafeET.fromstring(data, forbid_dtd=True)
    except (DefusedXmlException, ParseError) as exc:
        raise AnnotationFormatError(
            source, f"not safe, well-formed XML ({type(exc).__name__}: {exc})"
        ) from exc
    if root.tag != "annotations":
        raise AnnotationFormatError(source, f"not a CVAT for images file (root element <{root.tag}>)")
    out = []
    for image in root.iter("image"):
        name = image.get("name", "")
        where = f"image {name!r}"
        width, height = int_or_none(image.get("width")), int_or_none(image.get("height"))
        skeletons = image.findall("skeleton")
        multi = [p for p in image.findall("points") if ";" in p.get("points", "")]
        singles = [p for p in image.findall("points") if ";" not in p.get("points", "")]
        problem = None
        if len(skeletons) + len(multi) > 1 or (singles and (skeletons or multi)):
            problem = ("wrong_count", "more than one landmark set in one image")
        if skeletons:
            elems = [e for e in skeletons[0].findall("points") if e.get("outside", "0") != "1"]
            points, labels, single = _labelled_points(elems, source, where)
            if not single:
                problem = problem or ("wrong_count", "a skeleton node holds more than one point")
        elif multi:
            points, labels = _parse_xy(multi[0].get("points", ""), source, where), None
        else:
            points, labels, _ = _labelled_points(singles, source, where)
        out.append(ImageAnnotation(name, points, labels, width, height, source, problem))
    return out


def write_cvat(annotations: list[ImageAnnotation], schema: LandmarkSchema = ANIME56) -> str:
    """CVAT for images 1.1 XML with one skeleton per image whose nodes are labelled by landmark index."""
    root = Element("annotations")
    SubElement(root, "version").text = "1.1"
    meta = SubElement(SubElement(root, "meta"), "task")
    labels = SubElement(meta, "labels")
    label = SubElement(labels, "label")
    SubElement(label, "name").text = SKELETON_LABEL
    SubElement(label, "type").text = "skeleton"
    for i in range(schema.n_points):
        sub = SubElement(labels, "label")
        SubElement(sub, "name").text = str(i)
        SubElement(sub, "type").text = "points"
        SubElement(sub, "parent").text = SKELETON_LABEL
    for n, ann in enumerate(annotations):
        attrs = {"id": str(n), "name": ann.name}
        if ann.width is not None and ann.height is not None:
            attrs.update(width=str(ann.width), height=str(ann.height))
        image = SubElement(root, "image", attrs)
        skel = SubElement(image, "skeleton", {"label": SKELETON_LABEL, "source": "manual", "z_order": "0"})
        for lab, (x, y) in zip(point_labels(ann), ann.points, strict=True):
            SubElement(
                skel,
                "points",
                {
                    "label": lab,
                    "source": "manual",
                    "outside": "0",
                    "occluded": "0",
                    "points": f"{format_number(x)},{format_number(y)}",
                },
            )
    indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + tostring(root, encoding="unicode") + "\n"
