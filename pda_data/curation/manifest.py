"""Parquet manifests: the contract between commands.

Every command reads and writes a manifest with one row per input or output item, carrying its provenance
(source and sha256), ``status`` and ``reason``. Landmark columns hold flat ``[x0, y0, x1, y1, ...]`` lists
(see :func:`pda_data.schema.flatten_points`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from pda_data.io.files import atomic_path
from pda_data.schema import unflatten_points

MANIFEST_NAME = "manifest.parquet"
IMAGES_DIR = "images"
STATUS_KEPT = "kept"
STATUS_REJECTED = "rejected"


class ManifestError(ValueError):
    """A manifest is missing, unreadable or lacks required columns."""


def write_manifest(df: pd.DataFrame, path: str | Path, schema: pa.Schema | None = None) -> None:
    """Write ``df`` as Parquet atomically (with an explicit Arrow ``schema``, e.g. for list columns)."""
    with atomic_path(path) as tmp:
        df.to_parquet(tmp, index=False, schema=schema)


def read_manifest(path: str | Path, required: tuple[str, ...] = ()) -> pd.DataFrame:
    """Read a Parquet manifest (a file, or a folder holding ``manifest.parquet``) and check its columns."""
    p = Path(path)
    if p.is_dir():
        p = p / MANIFEST_NAME
    if not p.is_file():
        raise ManifestError(f"{p}: no such manifest")
    try:
        df = pd.read_parquet(p)
    except Exception as exc:  # pyarrow raises several unrelated types for a broken file
        raise ManifestError(f"{p}: not a readable Parquet file ({exc})") from exc
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise ManifestError(f"{p}: missing column(s) {', '.join(missing)}")
    return df


def kept_rows(df: pd.DataFrame) -> pd.DataFrame:
    """Rows whose ``status`` is ``kept`` (all rows when the manifest has no status column)."""
    if "status" not in df.columns:
        return df
    return df[df["status"] == STATUS_KEPT].reset_index(drop=True)


def points_column(df: pd.DataFrame, column: str) -> np.ndarray:
    """Stack a flat-list landmark column into an array of shape (rows, K, 2)."""
    if len(df) == 0:
        return np.zeros((0, 0, 2))
    return np.stack([unflatten_points(v) for v in df[column]])
