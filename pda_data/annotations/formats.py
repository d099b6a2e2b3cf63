"""Landmark annotation exchange formats: CVAT for images 1.1, labelme, COCO keypoints and CSV.

Parsers turn a tool's export into :class:`ImageAnnotation` records without judging them (a record may hold
55 points or an index twice; :mod:`pda_data.annotations.table` validates). Writers produce files the tools and
these parsers read back; coordinates are written with ``repr`` so a round trip is exact. A file that cannot
be parsed at all raises :class:`AnnotationFormatError` with a one-line message naming it. XML is parsed
with ``defusedxml``, so DTDs, entity expansion and external entities are refused.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from xml.etree.ElementTree import Element, ParseError, SubElement, indent, tostring

import defusedxml.ElementTree as SafeET
import numpy as np
from defusedxml import DefusedXmlException

from pda_data.schema import ANIME56, LandmarkSchema

FORMATS: tuple[str, ...] = ("cvat", "labelme", "coco", "csv")
SKELETON_LABEL = "anime_face"
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


def _num(value: float) -> str:
    return repr(float(value))


def _read_bytes(path: Path) -> bytes:
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise AnnotationFormatError(path, f"file too large ({size} bytes > {MAX_FILE_BYTES})")
        return path.read_bytes()
    except OSError as exc:
        raise AnnotationFormatError(path, exc.strerror or str(exc)) from exc


def _load_json(data: bytes, source: str) -> object:
    try:
        return json.loads(data.decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise AnnotationFormatError(source, f"not valid JSON ({exc})") from exc


def _int_or_none(value: object) -> int | None:
    try:
        return int(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


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


# ---------------------------------------------------------------------------------------------- CVAT


def parse_cvat(data: bytes, source: str) -> list[ImageAnnotation]:
    """CVAT for images 1.1: per ``<image>`` one ``<skeleton>`` (child points labelled by index), one
    multi-point
    ``<points>`` element (order gives the index), or single-point ``<points>`` elements labelled by index."""
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
        width, height = _int_or_none(image.get("width")), _int_or_none(image.get("height"))
        skeletons = image.findall("skeleton")
        multi = [p for p in image.findall("points") if ";" in p.get("points", "")]
        singles = [p for p in image.findall("points") if ";" not in p.get("points", "")]
        problem = None
        if len(skeletons) + len(multi) > 1 or (singles and (skeletons or multi)):
            problem = ("wrong_count", "more than one landmark set in one image")
        if skeletons:
            elems = [e for e in skeletons[0].findall("points") if e.get("outside", "0") != "1"]
            points = (
                np.concatenate([_parse_xy(e.get("points", ""), source, where) for e in elems])
                if elems
                else np.zeros((0, 2))
            )
            labels: tuple[str, ...] | None = tuple(e.get("label", "") for e in elems)
            if any(len(_parse_xy(e.get("points", ""), source, where)) != 1 for e in elems):
                problem = problem or ("wrong_count", "a skeleton node holds more than one point")
        elif multi:
            points, labels = _parse_xy(multi[0].get("points", ""), source, where), None
        else:
            points = (
                np.concatenate([_parse_xy(e.get("points", ""), source, where) for e in singles])
                if singles
                else np.zeros((0, 2))
            )
            labels = tuple(e.get("label", "") for e in singles)
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
        names = ann.labels or tuple(str(i) for i in range(len(ann.points)))
        for lab, (x, y) in zip(names, ann.points, strict=True):
            SubElement(
                skel,
                "points",
                {
                    "label": lab,
                    "source": "manual",
                    "outside": "0",
                    "occluded": "0",
                    "points": f"{_num(x)},{_num(y)}",
                },
            )
    indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + tostring(root, encoding="unicode") + "\n"


# --------------------------------------------------------------------------------------------- labelme


def parse_labelme(data: bytes, source: str) -> ImageAnnotation:
    """One labelme JSON file: ``point`` shapes labelled "0".."55"; other shape types are ignored."""
    doc = _load_json(data, source)
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
        _int_or_none(doc.get("imageWidth")),
        _int_or_none(doc.get("imageHeight")),
        source,
        problem,
    )


def write_labelme(ann: ImageAnnotation) -> str:
    """One labelme 5 JSON document (point shapes labelled by index, no embedded image data)."""
    names = ann.labels or tuple(str(i) for i in range(len(ann.points)))
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
            for lab, (x, y) in zip(names, ann.points, strict=True)
        ],
        "imagePath": ann.name,
        "imageData": None,
        "imageHeight": ann.height,
        "imageWidth": ann.width,
    }
    return json.dumps(doc, indent=1) + "\n"


# ------------------------------------------------------------------------------------------------ COCO


def parse_coco(data: bytes, source: str) -> list[ImageAnnotation]:
    """COCO keypoints: per annotation ``keypoints`` = [x, y, v] * 56; v = 0 marks an unlabelled point."""
    doc = _load_json(data, source)
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
            _int_or_none(im.get("width")),
            _int_or_none(im.get("height")),
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


# ------------------------------------------------------------------------------------------------- CSV


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def parse_csv(data: bytes, source: str) -> list[ImageAnnotation]:
    """CSV rows ``image, x0, y0, ..., x55, y55`` (an optional header row is skipped; empty cells are NaN)."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise AnnotationFormatError(source, f"not UTF-8 text ({exc})") from exc
    rows = [r for r in csv.reader(io.StringIO(text)) if any(c.strip() for c in r)]
    if rows and len(rows[0]) > 1 and not _is_number(rows[0][1].strip()):
        rows = rows[1:]
    out = []
    for row in rows:
        name, cells = row[0].strip(), [c.strip() for c in row[1:]]
        problem = None
        if len(cells) % 2:
            problem = ("wrong_count", f"{len(cells)} coordinate values (not x, y pairs)")
            cells = cells[:-1]
        try:
            values = [float(c) if c else float("nan") for c in cells]
        except ValueError as exc:
            raise AnnotationFormatError(source, f"row {name!r}: {exc}") from exc
        out.append(
            ImageAnnotation(
                name, np.asarray(values, dtype=np.float64).reshape(-1, 2), None, None, None, source, problem
            )
        )
    return out


def write_csv(annotations: list[ImageAnnotation], schema: LandmarkSchema = ANIME56) -> str:
    """CSV with a header ``image, x0, y0, ...`` and one row per image."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["image"] + [f"{a}{i}" for i in range(schema.n_points) for a in "xy"])
    for ann in annotations:
        writer.writerow([ann.name] + [_num(v) for v in np.asarray(ann.points).reshape(-1)])
    return buf.getvalue()


# ------------------------------------------------------------------------------------- sniffing, I/O


def sniff_format(path: Path) -> str:
    """Guess the format of a file or folder (a folder is a set of labelme files)."""
    if path.is_dir():
        return "labelme"
    suffix = path.suffix.lower()
    if suffix == ".xml":
        return "cvat"
    if suffix in (".csv", ".tsv", ".txt"):
        return "csv"
    if suffix == ".json":
        doc = _load_json(_read_bytes(path), str(path))
        if isinstance(doc, dict) and "shapes" in doc:
            return "labelme"
        if isinstance(doc, dict) and "annotations" in doc:
            return "coco"
    raise AnnotationFormatError(
        path, "cannot tell the annotation format; pass --format cvat|labelme|coco|csv"
    )


def read_annotation_source(path: str | Path, fmt: str | None = None) -> tuple[str, list[ImageAnnotation]]:
    """Parse an annotation file (or a folder of labelme files); returns the format used and the records."""
    p = Path(path)
    if not p.exists():
        raise AnnotationFormatError(p, "no such file or folder")
    fmt = fmt or sniff_format(p)
    if fmt not in FORMATS:
        raise AnnotationFormatError(p, f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if p.is_dir():
        if fmt != "labelme":
            raise AnnotationFormatError(p, f"a folder holds per-image labelme files, not {fmt}")
        return fmt, [parse_labelme(_read_bytes(f), str(f)) for f in sorted(p.rglob("*.json"))]
    data = _read_bytes(p)
    if fmt == "cvat":
        return fmt, parse_cvat(data, str(p))
    if fmt == "labelme":
        return fmt, [parse_labelme(data, str(p))]
    if fmt == "coco":
        return fmt, parse_coco(data, str(p))
    return fmt, parse_csv(data, str(p))


def labelme_filename(name: str) -> str:
    """File name of the labelme JSON for an image name ("sub/a.png" -> "sub/a.json")."""
    return PurePosixPath(name).with_suffix(".json").as_posix()


def render_format(annotations: list[ImageAnnotation], fmt: str) -> dict[str, str]:
    """Serialize records: {relative file name: text}; one file, or one per image for labelme."""
    if fmt == "labelme":
        return {labelme_filename(a.name): write_labelme(a) for a in annotations}
    writers = {
        "cvat": (write_cvat, "annotations.xml"),
        "coco": (write_coco, "annotations.json"),
        "csv": (write_csv, "annotations.csv"),
    }
    if fmt not in writers:
        raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    writer, name = writers[fmt]
    return {name: writer(annotations)}
