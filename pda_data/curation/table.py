"""The curated-folder manifest (``crop-cosers`` / ``crop-humans`` / ``merge-manifests`` output).

``<folder>/manifest.parquet`` has one row per face found and per rejected input: provenance (``source``,
``source_sha256``), ``status`` and ``reason`` (one of :data:`FACE_REASONS`, :data:`ERROR`, or an input reason
of :data:`pda_data.io.images.REASONS`: the file was refused before reading (``not_regular_file``,
``too_large``, ``unreadable``) or could not be decoded), the detection, the head pose, and for kept faces
the crop (``images/<key>.<fmt>``) with its 68 landmarks (HUMAN68, crop pixels, flat). This module is its
only writer and reader.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from pda_data.io.table import (
    STATUS_REJECTED,
    kept_rows,
    manifest_path,
    read_table,
    row_error,
    table_frame,
    valid_points,
    write_table,
)
from pda_data.schema import HUMAN68

PORTRAIT_SCHEMA = pa.schema([
    ("key", pa.string()),
    ("source", pa.string()),
    ("source_sha256", pa.string()),
    ("face_index", pa.int64()),
    ("status", pa.string()),
    ("reason", pa.string()),
    ("detail", pa.string()),
    ("detector", pa.string()),
    ("score", pa.float64()),
    ("box", pa.list_(pa.float64())),
    ("face_size", pa.float64()),
    ("yaw", pa.float64()),
    ("pitch", pa.float64()),
    ("roll", pa.float64()),
    ("landmarks", pa.list_(pa.float64())),
    ("crop_size", pa.int64()),
    ("phash", pa.string()),
    ("image", pa.string()),
])
# The value of every column a row does not set: a rejected input with nothing measured.
DEFAULTS: dict[str, Any] = {
    "source": "", "source_sha256": "", "face_index": 0, "status": STATUS_REJECTED, "reason": "", "detail": "",
    "detector": "", "score": math.nan, "box": [], "face_size": math.nan, "yaw": math.nan, "pitch": math.nan,
    "roll": math.nan, "landmarks": [], "crop_size": 0, "phash": "", "image": "",
}

# Reasons a face or input is rejected; an unusable input has an ImageError reason (pda_data.io.images.REASONS:
# refused files and undecodable images) or ERROR.
NO_FACE, TOO_SMALL, NOT_FRONTAL = "no_face", "too_small", "not_frontal"
DUPLICATE, ERROR = "duplicate", "error"
FACE_REASONS = (NO_FACE, TOO_SMALL, NOT_FRONTAL, DUPLICATE)  # the rest are errors: the input was unusable


def portrait_frame(rows: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """Manifest rows (dicts; unset columns take :data:`DEFAULTS`) as a typed frame, even when empty."""
    return table_frame(rows, PORTRAIT_SCHEMA, DEFAULTS)


def write_portraits(df: pd.DataFrame, path: str | Path) -> None:
    """Write a curated-folder manifest (or a resume chunk) atomically."""
    write_table(df, path, PORTRAIT_SCHEMA)


def read_portraits(path: str | Path) -> pd.DataFrame:
    """Read a curated-folder manifest (the folder or the file) with every column typed.

    Raises :class:`~pda_data.io.table.TableError` naming the file for a missing column, a column of another
    type, or a kept row without an image or without 68 finite landmarks (curation and merge read their own
    manifests with it, where such a row means a broken file).
    """
    df = read_table(path, PORTRAIT_SCHEMA)
    _, _, problems = _usable(kept_rows(df))
    if problems:
        raise row_error(manifest_path(path), *problems[0])
    return df


def kept_portraits(path: str | Path) -> tuple[pd.DataFrame, np.ndarray, list[tuple[str, str]]]:
    """The usable kept rows of a curated folder, their landmarks (N, 68, 2) in crop pixels, and (key,
    problem) for every kept row that cannot be used (no image, landmarks not 68 finite points): those are
    left out, so a job goes on with the rest and reports them.

    Image paths in the rows are relative to the folder; column and type problems raise as in
    :func:`read_portraits`.
    """
    kept = kept_rows(read_table(path, PORTRAIT_SCHEMA))
    usable, points, problems = _usable(kept)
    return kept[usable].reset_index(drop=True), points, problems


def _usable(kept: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, list[tuple[str, str]]]:
    """Kept rows with an image and 68 finite landmarks: (mask, their points, (key, problem) of the others)."""
    ok, points, problems = valid_points(kept, "landmarks", HUMAN68)
    has_image = (kept["image"] != "").to_numpy()
    problems += [(str(key), "kept without an image") for key in kept["key"][ok & ~has_image]]
    return ok & has_image, points[has_image[ok]], problems
