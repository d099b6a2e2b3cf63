"""CSV rows ``image, x0, y0, ..., x55, y55``, one per image."""

from __future__ import annotations

import csv
import io

import numpy as np

from pda_data.annotations.formats.records import AnnotationFormatError, ImageAnnotation, format_number
from pda_data.schema import ANIME56, LandmarkSchema


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
        writer.writerow([ann.name] + [format_number(v) for v in np.asarray(ann.points).reshape(-1)])
    return buf.getvalue()
