"""CVAT for images 1.1 XML; parsed with ``defusedxml``, so DTDs, entity expansion and external entities
are refused."""

from __future__ import annotations

from xml.etree.ElementTree import Element, ParseError, SubElement, indent, tostring

import defusedxml.ElementTree as SafeET
import numpy as np
from defusedxml import DefusedXmlException

from pda_data.annotations.formats.records import (
    MISSING,
    SKELETON_LABEL,
    AnnotationFormatError,
    ImageAnnotation,
    bad_field,
    bad_record,
    format_number,
    image_size,
    point_labels,
)
from pda_data.schema import ANIME56, LandmarkSchema


def _parse_xy(text: str) -> tuple[np.ndarray, tuple[str, str] | None]:
    """CVAT ``points`` attribute "x0,y0;x1,y1" to (K, 2), or no points and the :data:`BAD_FIELD` problem."""
    out = []
    for pair in filter(None, (p.strip() for p in text.split(";"))):
        try:
            x, y = (float(v) for v in pair.split(","))
        except ValueError:
            return np.zeros((0, 2)), bad_field("points pair", pair, "x,y numbers")
        out.append((x, y))
    return np.asarray(out, dtype=np.float64).reshape(-1, 2), None


def _labelled_points(
    elems: list[Element],
) -> tuple[np.ndarray, tuple[str, ...], bool, tuple[str, str] | None]:
    """Points elements labelled by index: their points (K, 2), labels, whether each held one point, and the
    first attribute problem."""
    parsed = [_parse_xy(e.get("points", "")) for e in elems]
    points = np.concatenate([p for p, _ in parsed]) if parsed else np.zeros((0, 2))
    problem = next((bad for _, bad in parsed if bad is not None), None)
    single = all(len(p) == 1 for p, _ in parsed)
    return points, tuple(e.get("label", "") for e in elems), single, problem


def parse_cvat(data: bytes, source: str) -> list[ImageAnnotation]:
    """CVAT for images 1.1: per ``<image>`` one ``<skeleton>`` (child points labelled by index), one
    multi-point ``<points>`` element (order gives the index), or single-point ``<points>`` elements labelled
    by index. An image without a name, with a width or height that is not a positive integer, or with a
    ``points`` attribute that is not "x,y;x,y" numbers is a :data:`BAD_FIELD` record."""
    try:
        root = SafeET.fromstring(data, forbid_dtd=True)
    except (DefusedXmlException, ParseError) as exc:
        raise AnnotationFormatError(
            source, f"not safe, well-formed XML ({type(exc).__name__}: {exc})"
        ) from exc
    if root.tag != "annotations":
        raise AnnotationFormatError(source, f"not a CVAT for images file (root element <{root.tag}>)")
    out = []
    for n, image in enumerate(root.iter("image")):
        name = image.get("name", "")
        if not name.strip():
            problem = bad_field("name", image.get("name", MISSING), "an image file name")
            out.append(bad_record(f"<image> {n}", source, problem))
            continue
        width, wrong_width = image_size(image.get("width"), "width", text=True)
        height, wrong_height = image_size(image.get("height"), "height", text=True)
        skeletons = image.findall("skeleton")
        multi = [p for p in image.findall("points") if ";" in p.get("points", "")]
        singles = [p for p in image.findall("points") if ";" not in p.get("points", "")]
        problem = wrong_width or wrong_height
        if len(skeletons) + len(multi) > 1 or (singles and (skeletons or multi)):
            problem = problem or ("wrong_count", "more than one landmark set in one image")
        if skeletons:
            elems = [e for e in skeletons[0].findall("points") if e.get("outside", "0") != "1"]
            points, labels, single, bad = _labelled_points(elems)
            if not single:
                bad = bad or ("wrong_count", "a skeleton node holds more than one point")
        elif multi:
            (points, bad), labels = _parse_xy(multi[0].get("points", "")), None
        else:
            points, labels, _, bad = _labelled_points(singles)
        out.append(ImageAnnotation(name, points, labels, width, height, source, problem or bad))
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
