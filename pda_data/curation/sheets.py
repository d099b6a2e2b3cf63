"""The pictures of a curated folder: ``contact_sheet.jpg`` (kept crops with their landmarks) and
``rejects_sheet.jpg`` (each rejected face or input, captioned with its reason). The pictures are made by
:mod:`pda_data.viz.sheet`; this module reads their inputs and writes the files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from pda_data.io.images import ImageError, load_image, save_image
from pda_data.io.sources import HFOptions, SourceItem, read_item
from pda_data.io.table import STATUS_REJECTED, kept_rows
from pda_data.schema import HUMAN68, unflatten_points
from pda_data.viz.sheet import blank_tile, box_tile, contact_sheet, landmark_sheet

CONTACT_SHEET = "contact_sheet.jpg"
REJECTS_SHEET = "rejects_sheet.jpg"


def item_for_source(source: str, hf: HFOptions | None = None) -> SourceItem:
    """Rebuild the item of a manifest ``source`` (a path, or ``<data set>#<index>``), to read it again."""
    hf = hf or HFOptions()
    if "#" in source and not Path(source).exists():
        dataset, _, index = source.rpartition("#")
        return SourceItem(source=source, stable_id=source, dataset=dataset, split=hf.split,
                          column=hf.image_column, index=int(index))
    return SourceItem(source=source, stable_id=source, path=source)


def _reject_tile(row: pd.Series, hf: HFOptions | None) -> np.ndarray:
    """The rejected face (its box outlined) or whole input; a grey tile when the input cannot be decoded."""
    try:
        data, _ = read_item(item_for_source(row["source"], hf))
        rgb = load_image(data, name=row["source"])
    except (ImageError, ValueError, OSError):
        return blank_tile()
    return box_tile(rgb, list(row["box"]) if row["box"] is not None else [])


def write_sheets(df: pd.DataFrame, out: Path, *, hf: HFOptions | None = None, limit: int = 96) -> None:
    """``contact_sheet.jpg`` (kept crops, landmarks drawn), ``rejects_sheet.jpg`` (rejects with reasons)."""
    crops, points = [], []
    for _, row in kept_rows(df).head(limit).iterrows():
        try:
            crops.append(load_image(out / row["image"]))
        except ImageError:
            continue
        points.append(unflatten_points(row["landmarks"]))
    if crops:
        save_image(out / CONTACT_SHEET, landmark_sheet(crops, points, [HUMAN68] * len(crops)), quality=90)
    rejected = df[df["status"] == STATUS_REJECTED].head(limit)
    if len(rejected):
        tiles = [_reject_tile(row, hf) for _, row in rejected.iterrows()]
        sheet = contact_sheet(tiles, labels=list(rejected["reason"]), columns=10)
        save_image(out / REJECTS_SHEET, sheet, quality=90)
