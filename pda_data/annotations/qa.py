"""Annotator QA: where an annotation disagrees with a trained predictor, group by group.

Each annotated portrait is predicted in the crop its own annotation implies; the disagreement of a group is
its NME between the annotation and the prediction (in inter-ocular distances of the annotation). A row is
flagged when any group disagrees by more than the threshold; rows come worst first, and the flagged ones
can be drawn as a sheet of (annotation | prediction) pairs.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from pda_data.annotations.predictor.nme import OVERALL, nme_per_image
from pda_data.annotations.shapes import landmark_box
from pda_data.annotations.table import points_array
from pda_data.io.images import ImageError, load_image, save_image
from pda_data.schema import ANIME56
from pda_data.viz.overlay import landmark_overlay
from pda_data.viz.sheet import contact_sheet, side_by_side

if TYPE_CHECKING:
    from pda_data.annotations.predictor.model import LandmarkPredictor

DEFAULT_THRESHOLD = 0.1
QA_SHEET = "flagged_sheet.png"
MAX_SHEET_TILES = 48


def disagreements(
    df: pd.DataFrame,
    predictor: LandmarkPredictor,
    threshold: float = DEFAULT_THRESHOLD,
    on_image: Callable[[], None] | None = None,
) -> tuple[pd.DataFrame, list[str], dict[str, np.ndarray]]:
    """(table worst first: ``key``, ``path``, one NME column per group and ``all``, ``worst_group``,
    ``worst``, ``flagged``; the unreadable images' messages; the predicted points by key)."""
    groups = list(ANIME56.groups)
    rows, unreadable, predicted = [], [], {}
    for row, pts in zip(df.itertuples(index=False), points_array(df), strict=True):
        try:
            rgb = load_image(row.path)
        except ImageError as exc:
            unreadable.append(str(exc))
        else:
            guess, _ = predictor.predict(rgb, landmark_box(pts))
            predicted[row.key] = guess
            err = {k: float(v[0]) for k, v in nme_per_image(guess[None], pts[None]).items()}
            worst = max(groups, key=lambda g: err[g])
            rows.append({"key": row.key, "path": row.path, **err, "worst_group": worst, "worst": err[worst],
                         "flagged": err[worst] > threshold})
        if on_image is not None:
            on_image()
    columns = ["key", "path", *groups, OVERALL, "worst_group", "worst", "flagged"]
    table = pd.DataFrame(rows, columns=columns).sort_values("worst", ascending=False, kind="stable")
    return table.reset_index(drop=True), unreadable, predicted


def flagged_sheet(
    table: pd.DataFrame, df: pd.DataFrame, predicted: dict[str, np.ndarray], out: Path, tile: int = 192
) -> int:
    """Write ``out`` (PNG): annotation | prediction overlays of the flagged rows, worst first (at most
    :data:`MAX_SHEET_TILES`); returns how many were drawn."""
    by_key = dict(zip(df["key"], points_array(df), strict=True))
    tiles, labels = [], []
    for row in table[table["flagged"]].head(MAX_SHEET_TILES).itertuples(index=False):
        rgb = load_image(row.path)
        pair = [landmark_overlay(rgb, by_key[row.key], min_side=tile),
                landmark_overlay(rgb, predicted[row.key], min_side=tile)]
        tiles.append(side_by_side(pair, tile_size=tile))
        labels.append(f"{row.key} {row.worst_group} {row.worst:.2f}")
    if tiles:
        save_image(out, contact_sheet(tiles, labels, columns=3, tile_size=2 * tile))
    return len(tiles)
