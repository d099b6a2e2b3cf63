"""The canonical anime landmark annotation file: its columns, writer and reader.

Annotators' exports (see :mod:`pda_data.annotations.formats`) become one Parquet file with a row per valid
image: ``key``, ``path`` (absolute), ``sha256``, ``width``, ``height``, ``points`` (112 floats, ANIME56 in
image pixels), ``source_format``, ``source_file``, ``schema_version``. Everything downstream trusts that
file (:func:`read_annotations` is its only reader), so an image gets in only if its 56 points are complete,
finite, inside the image and geometrically sane (:mod:`pda_data.annotations.validate`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from pda_data.io.table import TableError, points_of, read_table, table_frame, write_table
from pda_data.schema import ANIME56, SCHEMA_VERSION

ANNOTATION_SCHEMA = pa.schema([
    ("key", pa.string()),
    ("path", pa.string()),
    ("sha256", pa.string()),
    ("width", pa.int64()),
    ("height", pa.int64()),
    ("points", pa.list_(pa.float64())),
    ("source_format", pa.string()),
    ("source_file", pa.string()),
    ("schema_version", pa.int64()),
])
COLUMNS: tuple[str, ...] = tuple(ANNOTATION_SCHEMA.names)
_DEFAULTS: dict[str, Any] = {"source_format": "", "source_file": "", "schema_version": SCHEMA_VERSION}


class AnnotationError(TableError):
    """An annotation file that is missing, unreadable, not of this schema version or not of its columns."""


def annotation_frame(rows: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """A table with exactly :data:`COLUMNS` (typed even when empty)."""
    return table_frame(rows, ANNOTATION_SCHEMA, _DEFAULTS)


def write_annotations(df: pd.DataFrame, path: str | Path) -> None:
    """Write the canonical annotation Parquet file atomically."""
    try:
        write_table(df.reset_index(drop=True), path, ANNOTATION_SCHEMA)
    except TableError as exc:
        raise AnnotationError(str(exc)) from exc


def read_annotations(path: str | Path) -> pd.DataFrame:
    """Read and check an annotation file: columns and their types, schema version, and 56 finite points per
    row; every problem raises :class:`AnnotationError` naming the file."""
    try:
        df = read_table(path, ANNOTATION_SCHEMA, what="annotation file")
    except TableError as exc:
        raise AnnotationError(str(exc)) from exc
    versions = set(df["schema_version"].tolist())
    if versions - {SCHEMA_VERSION}:
        raise AnnotationError(
            f"{path}: schema version {sorted(versions)} (this toolkit reads {SCHEMA_VERSION})"
        )
    try:
        points_of(df, "points", ANIME56, path)
    except TableError as exc:
        raise AnnotationError(str(exc)) from exc
    return df


def points_array(df: pd.DataFrame) -> np.ndarray:
    """All rows' points of a table from :func:`read_annotations` as (N, 56, 2)."""
    return points_of(df, "points", ANIME56, "annotation table")
