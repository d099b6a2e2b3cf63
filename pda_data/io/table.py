"""Parquet tables, the contract between commands: typed writing and validated reading.

Every table of the toolkit (the curated-folder manifest, the anime annotation file, the synth manifests) is
one Arrow schema in the module that owns it; this module writes a frame with that schema (atomically) and
reads one back with every problem reported as one line naming the file: missing file, unreadable Parquet,
missing column, a column of the wrong type, a landmark column that is not ``K`` finite points. Folder
manifests share a layout: ``<folder>/manifest.parquet`` with ``status`` (kept / rejected) and ``images/``.
Landmark columns hold flat ``[x0, y0, x1, y1, ...]`` lists (see :func:`pda_data.schema.flatten_points`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from pda_data.io.files import atomic_path
from pda_data.schema import LandmarkSchema

MANIFEST_NAME = "manifest.parquet"
IMAGES_DIR = "images"
STATUS_KEPT = "kept"
STATUS_REJECTED = "rejected"


class TableError(ValueError):
    """A table file that is missing, unreadable, or not of its schema (the message names the file)."""


def manifest_path(path: str | Path) -> Path:
    """The manifest of a folder (``<folder>/manifest.parquet``), or ``path`` itself when it is a file."""
    p = Path(path)
    return p / MANIFEST_NAME if p.is_dir() else p


def table_frame(
    rows: Sequence[Mapping[str, Any]], schema: pa.Schema, defaults: Mapping[str, Any]
) -> pd.DataFrame:
    """Rows (dicts; unset columns from ``defaults``) as a frame typed by ``schema``, even when empty."""
    full = [{**defaults, **row} for row in rows]
    return pa.Table.from_pylist(full, schema=schema).to_pandas()


def write_table(df: pd.DataFrame, path: str | Path, schema: pa.Schema) -> None:
    """Write the ``schema`` columns of ``df`` as Parquet, atomically; a value of the wrong type raises."""
    missing = [c for c in schema.names if c not in df.columns]
    if missing:
        raise TableError(f"{path}: table lacks column(s) {', '.join(missing)}")
    table = pa.Table.from_pandas(df[list(schema.names)], schema=schema, preserve_index=False)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


def _compatible(actual: pa.DataType, expected: pa.DataType) -> bool:
    """Whether values of ``actual`` convert to ``expected`` without changing meaning (int -> float, say)."""
    if actual == expected:
        return True
    if pa.types.is_string(expected):
        return pa.types.is_string(actual) or pa.types.is_large_string(actual)
    if pa.types.is_integer(expected):
        return pa.types.is_integer(actual)
    if pa.types.is_floating(expected):
        return pa.types.is_floating(actual) or pa.types.is_integer(actual)
    if pa.types.is_list(expected):
        return (pa.types.is_list(actual) or pa.types.is_large_list(actual)) and (
            pa.types.is_null(actual.value_type) or _compatible(actual.value_type, expected.value_type)
        )
    return False


def read_table(path: str | Path, schema: pa.Schema, what: str = "manifest") -> pd.DataFrame:
    """Read ``path`` (a file, or a folder's ``manifest.parquet``) as exactly the ``schema`` columns, typed.

    Raises :class:`TableError` naming the file when it is missing or unreadable, lacks a column, or holds a
    column of another type; other columns of the file are left out.
    """
    p = manifest_path(path)
    if not p.is_file():
        raise TableError(f"{p}: no such {what}")
    try:
        table = pq.read_table(p)
    except Exception as exc:  # pyarrow raises several unrelated types for a broken file
        raise TableError(f"{p}: not a readable Parquet file ({exc})") from exc
    missing = [c for c in schema.names if c not in table.column_names]
    if missing:
        raise TableError(f"{p}: missing column(s) {', '.join(missing)}")
    for field in schema:
        actual = table.schema.field(field.name).type
        if not _compatible(actual, field.type):
            raise TableError(f"{p}: column {field.name!r} is {actual}, expected {field.type}")
    try:
        table = table.select(schema.names).cast(schema)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise TableError(f"{p}: values that do not fit the schema ({exc})") from exc
    return table.to_pandas()


def valid_points(
    df: pd.DataFrame, column: str, schema: LandmarkSchema
) -> tuple[np.ndarray, np.ndarray, list[tuple[str, str]]]:
    """Which rows' ``column`` holds the K finite points of ``schema``: (mask (N,), their points (M, K, 2),
    (key, problem) for every other row)."""
    size = 2 * schema.n_points
    ok = np.zeros(len(df), dtype=bool)
    points, problems = [], []
    for i, (key, values) in enumerate(zip(df["key"], df[column], strict=True)):
        flat = np.asarray(values, dtype=np.float64)
        if flat.shape != (size,):
            problems.append((str(key), f"{column} has {flat.size} values, expected {size}"))
        elif not np.isfinite(flat).all():
            problems.append((str(key), f"{column} has non-finite values"))
        else:
            ok[i] = True
            points.append(flat.reshape(-1, 2))
    return ok, np.array(points).reshape(-1, schema.n_points, 2), problems


def points_of(df: pd.DataFrame, column: str, schema: LandmarkSchema, path: str | Path) -> np.ndarray:
    """Every row's ``column`` as (N, K, 2) points of ``schema``; a wrong length or a non-finite value raises
    :class:`TableError` naming the file, the column and the row's key."""
    _, points, problems = valid_points(df, column, schema)
    if problems:
        raise row_error(path, *problems[0])
    return points


def row_error(path: str | Path, key: str, problem: str) -> TableError:
    """The one-line error of an unusable row: the file, the row's key, the problem."""
    return TableError(f"{path}: row {key!r}: {problem}")


def kept_rows(df: pd.DataFrame) -> pd.DataFrame:
    """Rows whose ``status`` is ``kept``, re-indexed from 0."""
    return df[df["status"] == STATUS_KEPT].reset_index(drop=True)
