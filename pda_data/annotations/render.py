"""Overlay images of an annotation table: each image with its landmarks drawn, and one contact sheet."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from pda_data.annotations.table import points_array
from pda_data.io.images import ImageError, load_image, save_image
from pda_data.viz.overlay import landmark_overlay
from pda_data.viz.sheet import contact_sheet

SHEET_NAME = "contact_sheet.png"


@dataclass
class RenderResult:
    """Keys drawn (one ``<key>.png`` each in the output folder) and the images that could not be read."""

    drawn: list[str] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)


def render_overlays(
    df: pd.DataFrame,
    out: Path,
    *,
    indices: bool = False,
    columns: int = 6,
    tile: int = 256,
    on_image: Callable[[], None] | None = None,
) -> RenderResult:
    """Write ``out/<key>.png`` (landmarks coloured by group over the image) per row of an annotation table,
    and ``out/contact_sheet.png`` of them all (``columns`` tiles of ``tile`` px per row)."""
    result = RenderResult()
    tiles: list[np.ndarray] = []
    for row, pts in zip(df.itertuples(index=False), points_array(df), strict=True):
        try:
            rgb = load_image(row.path)
        except ImageError as exc:
            result.unreadable.append(str(exc))
        else:
            overlay = landmark_overlay(rgb, pts, indices=indices)
            save_image(out / f"{row.key}.png", overlay)
            tiles.append(overlay)
            result.drawn.append(row.key)
        if on_image is not None:
            on_image()
    if tiles:
        save_image(out / SHEET_NAME, contact_sheet(tiles, result.drawn, columns=columns, tile_size=tile))
    return result
