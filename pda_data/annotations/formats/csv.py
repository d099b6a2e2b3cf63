"""CSV rows ``image, x0, y0, ..., x55, y55``, one per image."""

from __future__ import annotations

import csv
import io

import numpy as np

from pda_data.annotations.formats.records import (
    AnnotationFormatError,
    ImageAnnotation,
    bad_field,
    bad_record,
    format_number,
)
from pda_data.schema import ANIME56, LandmarkSchema


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def parse_csv(data: bytes, source: str) -> list[ImageAnnotation]:
    """CSV rows ``image, x0, y0, ..., x55, y55`` (an optional header row is skipped; empty cells are NaN; a
    row without an image name or with a cell that is not a number is a ``bad_field`` record)."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise AnnotationFormatError(source, f"not UTF-8 text ({exc})") from exc
    reader = csv.reader(io.StringIO(text))
    try:
        rows = [(reader.line_num, r) for r in reader if any(c.strip() for c in r)]
    except csv.Error as exc:  # a NUL byte, a field over the csv module's size limit
        raise AnnotationFormatError(source, f"unreadable CSV (line {reader.line_num}: {exc})") from exc
    if rows and len(rows[0][1]) > 1 and not _is_number(rows[0][1][1].strip()):
        rows = rows[1:]
    out = []
    for line, row in rows:
        name, cells = row[0].strip(), [c.strip() for c in row[1:]]
        if not name:
            out.append(bad_record(f"line {line}", source, bad_field("image", row[0], "an image file name")))
            continue
        problem = None
        if len(cells) % 2:
            problem = ("wrong_count", f"{len(cells)} coordinate values (not x, y pairs)")
            cells = cells[:-1]
        wrong = next((i for i, c in enumerate(cells) if c and not _is_number(c)), None)
        if wrong is not None:
            field = f"{'xy'[wrong % 2]}{wrong // 2}"
            out.append(bad_record(name, source, bad_field(field, cells[wrong], "a number")))
            continue
        values = [float(c) if c else float("nan") for c in cells]
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
