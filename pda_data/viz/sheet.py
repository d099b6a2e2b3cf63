"""Contact sheets and their tiles, so a person can eyeball a data set in seconds (arrays in, arrays out)."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from pda_data.schema import LandmarkSchema
from pda_data.viz.overlay import draw_landmarks

GREY = 128  # the tile of an input that cannot be shown
BOX_COLOR = (255, 64, 64)


def _fit_tile(tile: np.ndarray, size: int) -> np.ndarray:
    if tile.ndim == 2:
        tile = np.repeat(tile[:, :, None], 3, axis=2)
    h, w = tile.shape[:2]
    scale = size / max(h, w)
    new_size = (max(1, round(w * scale)), max(1, round(h * scale)))
    resized = cv2.resize(tile, new_size, interpolation=cv2.INTER_AREA)
    canvas = np.full((size, size, 3), 32, np.uint8)
    y0 = (size - resized.shape[0]) // 2
    x0 = (size - resized.shape[1]) // 2
    canvas[y0 : y0 + resized.shape[0], x0 : x0 + resized.shape[1]] = resized
    return canvas


def contact_sheet(
    tiles: Sequence[np.ndarray],
    labels: Sequence[str] | None = None,
    columns: int = 8,
    tile_size: int = 128,
) -> np.ndarray:
    """Lay RGB ``tiles`` out in a grid, each fitted into ``tile_size``, with optional captions."""
    columns = max(1, min(columns, len(tiles) or 1))
    rows = max(1, -(-len(tiles) // columns))
    caption = 14 if labels is not None else 0
    cell_h = tile_size + caption
    sheet = np.full((rows * cell_h, columns * tile_size, 3), 16, np.uint8)
    for n, tile in enumerate(tiles):
        r, c = divmod(n, columns)
        y, x = r * cell_h, c * tile_size
        sheet[y : y + tile_size, x : x + tile_size] = _fit_tile(tile, tile_size)
        if labels is not None:
            text = str(labels[n])[: max(4, tile_size // 7)]
            cv2.putText(sheet, text, (x + 2, y + tile_size + 11), cv2.FONT_HERSHEY_PLAIN, 0.8,
                        (230, 230, 230), 1, cv2.LINE_AA)
    return sheet


def side_by_side(images: Sequence[np.ndarray], tile_size: int = 128) -> np.ndarray:
    """One row of images fitted to ``tile_size`` (e.g. input, mask, result)."""
    return np.concatenate([_fit_tile(im, tile_size) for im in images], axis=1)


def blank_tile(size: int = 96) -> np.ndarray:
    """A grey ``size`` x ``size`` tile, standing in for an image that cannot be decoded."""
    return np.full((size, size, 3), GREY, np.uint8)


def box_tile(rgb: np.ndarray, box: Sequence[float]) -> np.ndarray:
    """The region of ``rgb`` around ``box`` (x0, y0, x1, y1; half its size added on every side), the box
    outlined; the whole image when ``box`` is not four numbers."""
    if len(box) != 4:
        return rgb
    x0, y0, x1, y1 = box
    pad = 0.5 * max(x1 - x0, y1 - y0)
    h, w = rgb.shape[:2]
    cx0, cy0 = max(0, int(x0 - pad)), max(0, int(y0 - pad))
    cx1, cy1 = min(w, int(x1 + pad) + 1), min(h, int(y1 + pad) + 1)
    tile = np.ascontiguousarray(rgb[cy0:cy1, cx0:cx1])
    thick = max(1, round(max(tile.shape[:2]) / 96))
    cv2.rectangle(tile, (round(x0 - cx0), round(y0 - cy0)), (round(x1 - cx0), round(y1 - cy0)), BOX_COLOR,
                  thick)
    return tile


def landmark_sheet(
    images: Sequence[np.ndarray],
    points: Sequence[np.ndarray],
    schemas: Sequence[LandmarkSchema],
    labels: Sequence[str] | None = None,
    columns: int = 10,
    tile_size: int = 128,
) -> np.ndarray:
    """A contact sheet of images with their (K, 2) landmarks drawn, coloured by each one's schema."""
    tiles = [draw_landmarks(im, pts, schema) for im, pts, schema in zip(images, points, schemas, strict=True)]
    return contact_sheet(tiles, labels, columns=columns, tile_size=tile_size)
