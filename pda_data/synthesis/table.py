"""The manifests of the synth folders (``synth-structure``, ``synth-highlights``, ``synth-aug`` output).

``<folder>/manifest.parquet`` has one row per sample, including bad pairs. Every job shares the columns of
:data:`COMMON`: ``key``, ``image`` (empty when rejected), ``status``, ``reason``, ``detail``, ``label`` (1
legit or clean, 0 abnormal or with highlight artifacts, -1 rejected; aug rows are 1), ``kind``,
``landmarks`` (the flat points of the base face: ANIME56, or the coser's HUMAN68 for aug) and
``fingerprint`` (used to resume). Each job adds its provenance keys; structure rows add
``structure_points`` (flat pixels) and ``structure_channels`` (ints 0..3), highlight rows ``mask``.
This module is their only writer and reader.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from pda_data.io.table import (
    STATUS_REJECTED,
    TableError,
    kept_rows,
    manifest_path,
    points_of,
    read_table,
    table_frame,
    write_table,
)
from pda_data.schema import ANIME56, HUMAN68, STRUCTURE_CHANNELS, LandmarkSchema

JOBS: tuple[str, ...] = ("structure", "highlight", "aug")
# The input roles of each job; each gives a ``<role>_key`` provenance column.
JOB_ROLES: dict[str, tuple[str, ...]] = {
    "structure": ("anime",),
    "highlight": ("anime", "human"),
    "aug": ("human", "coser"),
}
JOB_LANDMARKS: dict[str, LandmarkSchema] = {"structure": ANIME56, "highlight": ANIME56, "aug": HUMAN68}

COMMON: tuple[pa.Field, ...] = (
    pa.field("key", pa.string()),
    pa.field("image", pa.string()),
    pa.field("status", pa.string()),
    pa.field("reason", pa.string()),
    pa.field("detail", pa.string()),
    pa.field("label", pa.int64()),
    pa.field("kind", pa.string()),
    pa.field("landmarks", pa.list_(pa.float64())),
    pa.field("fingerprint", pa.string()),
)
_EXTRA: dict[str, tuple[pa.Field, ...]] = {
    "structure": (
        pa.field("structure_points", pa.list_(pa.float64())),
        pa.field("structure_channels", pa.list_(pa.int64())),
    ),
    "highlight": (pa.field("mask", pa.string()),),
    "aug": (),
}
SCHEMAS: dict[str, pa.Schema] = {
    job: pa.schema([*COMMON, *_EXTRA[job], *(pa.field(f"{r}_key", pa.string()) for r in JOB_ROLES[job])])
    for job in JOBS
}
DEFAULTS: dict[str, Any] = {
    "image": "", "status": STATUS_REJECTED, "reason": "", "detail": "", "label": -1, "kind": "",
    "landmarks": [], "fingerprint": "", "structure_points": [], "structure_channels": [], "mask": "",
    **{f"{role}_key": "" for roles in JOB_ROLES.values() for role in roles},
}


def structure_problem(points: Sequence[float], channels: Sequence[int]) -> str | None:
    """What is wrong with flat structure points and their channel numbers, or None when they agree."""
    if len(points) != 2 * len(channels):
        return f"{len(points)} structure point values for {len(channels)} channels"
    if any(c not in range(len(STRUCTURE_CHANNELS)) for c in channels):
        return f"structure channels {list(channels)} outside 0..{len(STRUCTURE_CHANNELS) - 1}"
    if not np.isfinite(np.asarray(points, dtype=np.float64)).all():
        return "structure points have non-finite values"
    return None


def synth_frame(job: str, rows: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """A job's manifest rows (dicts; unset columns take :data:`DEFAULTS`), typed and sorted by key."""
    schema = SCHEMAS[job]
    typed = table_frame([{c: row[c] for c in schema.names if c in row} for row in rows], schema, DEFAULTS)
    return typed.sort_values("key", kind="stable").reset_index(drop=True)


def write_synth(job: str, df: pd.DataFrame, path: str | Path) -> None:
    """Write a job's manifest atomically."""
    write_table(df, path, SCHEMAS[job])


def read_synth(job: str, path: str | Path) -> pd.DataFrame:
    """Read a ``job`` folder's manifest (the folder or the file), every column typed.

    Raises :class:`~pda_data.io.table.TableError` naming the file for a missing column, a column of another
    type, or a kept row without an image, with landmarks that are not finite points of the job's schema,
    with a label other than 0 or 1, or (structure) with structure points that do not match their channels.
    """
    where = manifest_path(path)
    df = read_table(path, SCHEMAS[job])
    kept = kept_rows(df)
    points_of(kept, "landmarks", JOB_LANDMARKS[job], where)
    for row in kept.itertuples(index=False):
        if not row.image:
            raise TableError(f"{where}: kept row {row.key!r} has no image")
        if row.label not in (0, 1):
            raise TableError(f"{where}: kept row {row.key!r}: label {row.label} is not 0 or 1")
        if job == "structure":
            problem = structure_problem(list(row.structure_points), list(row.structure_channels))
            if problem is not None:
                raise TableError(f"{where}: kept row {row.key!r}: {problem}")
    return df
