"""Contact sheets and landmark overlays, so a person can eyeball a data set in seconds."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from pda_data.schema import LandmarkSchema


def draw_landmarks(
    image: np.ndarray,
    points: np.ndarray,
    schema: LandmarkSchema | None = None,
    radius: int | None = None,
    indices: bool = False,
    color: tuple[int, int, int] = (255, 0, 0),
) -> np.ndarray:
    """Return a copy of RGB ``image`` with ``points`` (K, 2) drawn, coloured by schema group when given."""
    out = np.ascontiguousarray(image.copy())
    pts = np.asarray(points, dtype=np.float64)
    r = radius if radius is not None else max(1, round(min(out.shape[:2]) / 128))
    groups = schema.group_of() if schema is not None else None
    for i, (x, y) in enumerate(pts):
        if not (np.isfinite(x) and np.isfinite(y)):
            continue
        c = schema.group_colors.get(groups[i], color) if schema is not None and groups else color
        centre = (round(float(x)), round(float(y)))
        cv2.circle(out, centre, r, c, -1, lineType=cv2.LINE_AA)
        if indices:
            cv2.putText(out, str(i), (centre[0] + r + 1, centre[1]), cv2.FONT_HERSHEY_PLAIN,
                        max(0.5, min(out.shape[:2]) / 512), c, 1, cv2.LINE_AA)
    return out


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
