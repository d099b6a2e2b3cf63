"""Face-structure samples (paper Fig. 5) and the structure heatmaps that supervise the structure detector.

A legit sample is an anime face as drawn. Abnormal samples paste a copy of one eye somewhere else inside
the face (three eyes), remove an eye or the mouth (filled with the face's skin colour), or move one of them.
Every sample carries the structure points actually visible in it (eye centres, mouth corners) and the
heatmap channel of each (``schema.STRUCTURE_CHANNELS`` order); a pasted or moved eye takes the channel of
the side of the face centre line it lands on.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from pda_data.geometry.masks import face_axes, face_mask, part_mask
from pda_data.schema import ANIME56, STRUCTURE_CHANNELS, LandmarkSchema
from pda_data.synthesis.options import KINDS, LEGIT

_LEFT_EYE = STRUCTURE_CHANNELS.index("left_eye_centre")
_RIGHT_EYE = STRUCTURE_CHANNELS.index("right_eye_centre")
_MOUTH = (STRUCTURE_CHANNELS.index("left_mouth_corner"), STRUCTURE_CHANNELS.index("right_mouth_corner"))
_EYE_GROUPS = {_LEFT_EYE: "left_eye", _RIGHT_EYE: "right_eye"}


class SynthesisError(ValueError):
    """A sample cannot be made from this input; ``reason`` is the manifest's short code for it."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class StructureSample:
    """One synthesized face: image, label (1 legit, 0 abnormal), kind and its visible structure points."""

    image: np.ndarray
    label: int
    kind: str
    points: np.ndarray  # (K, 2) pixels
    channels: np.ndarray  # (K,) ints into STRUCTURE_CHANNELS
    region: np.ndarray  # float32 (H, W): where the image was changed (zeros for legit)


def render_heatmaps(
    points: np.ndarray, channels: np.ndarray, shape: tuple[int, int], sigma: float
) -> np.ndarray:
    """Gaussian heatmaps (4, H, W) float32: channel c is the max of the Gaussians of its points."""
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    chans = np.asarray(channels, dtype=np.int64).reshape(-1)
    if len(pts) != len(chans):
        raise ValueError(f"{len(pts)} points but {len(chans)} channels")
    if len(chans) and (chans.min() < 0 or chans.max() >= len(STRUCTURE_CHANNELS)):
        raise ValueError(f"channels must be in 0..{len(STRUCTURE_CHANNELS) - 1}, got {chans.tolist()}")
    height, width = shape
    out = np.zeros((len(STRUCTURE_CHANNELS), height, width), np.float32)
    ys = np.arange(height, dtype=np.float32)[:, None]
    xs = np.arange(width, dtype=np.float32)[None, :]
    inv = np.float32(-0.5 / sigma**2)
    for (x, y), c in zip(pts, chans, strict=True):
        gy = np.exp((ys - np.float32(y)) ** 2 * inv)
        gx = np.exp((xs - np.float32(x)) ** 2 * inv)
        np.maximum(out[c], gy * gx, out=out[c])
    return out


def _skin_colour(rgb: np.ndarray, points: np.ndarray, schema: LandmarkSchema) -> np.ndarray:
    """Median colour of the face without eyes, brows and mouth."""
    shape = rgb.shape[:2]
    parts = part_mask(
        points, schema, shape, ("left_eye", "right_eye", "left_brow", "right_brow", "mouth"), grow=4
    )
    skin = (face_mask(points, schema, shape) > 0.5) & (parts < 0.5)
    if skin.sum() < 16:
        raise SynthesisError("degenerate", "face region too small to estimate the skin colour")
    return np.median(rgb[skin], axis=0)


def _blend(base: np.ndarray, top: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Alpha-blend ``top`` over ``base`` and round to uint8."""
    a = alpha[..., None]
    return np.clip(base * (1.0 - a) + top * a + 0.5, 0, 255).astype(np.uint8)


def _shift(image: np.ndarray, offset: np.ndarray) -> np.ndarray:
    """Translate by ``offset`` (x, y) pixels; what comes in from outside is 0."""
    matrix = np.float32([[1, 0, offset[0]], [0, 1, offset[1]]])
    h, w = image.shape[:2]
    return cv2.warpAffine(image, matrix, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)


@dataclass
class _Face:
    """Per-face geometry shared by the abnormal kinds."""

    points: np.ndarray
    schema: LandmarkSchema
    shape: tuple[int, int]
    margin: float

    def __post_init__(self) -> None:
        self.up, _ = face_axes(self.points, self.schema)
        self.right = np.array([-self.up[1], self.up[0]])
        self.centre = self.schema.structure_points(self.points).mean(0)
        self.face = face_mask(self.points, self.schema, self.shape)

    def part(self, group: str, feather: float = 0.0) -> tuple[np.ndarray, float]:
        """The part's hull grown by ``margin`` times its size, and that size (px)."""
        tight = part_mask(self.points, self.schema, self.shape, (group,))
        ys, xs = np.nonzero(tight > 0.5)
        if not len(xs):
            raise SynthesisError("degenerate", f"{group} region is empty (degenerate landmarks)")
        size = float(max(np.ptp(xs), np.ptp(ys)) + 1)
        grown = part_mask(
            self.points, self.schema, self.shape, (group,), grow=self.margin * size, feather=feather
        )
        return grown, size

    def side_channel(self, point: np.ndarray) -> int:
        """The eye channel of ``point``: image-left or image-right of the face centre line."""
        return _LEFT_EYE if float((point - self.centre) @ self.right) < 0 else _RIGHT_EYE

    def place(
        self,
        patch: np.ndarray,
        others: list[np.ndarray],
        rng: np.random.Generator,
        min_move: float,
        min_inside: float = 0.9,
        max_cover: float = 0.15,
    ) -> np.ndarray:
        """A random offset moving ``patch`` at least ``min_move`` px, mostly inside the face, covering at
        most ``max_cover`` of each of the ``others`` part masks (anime eyes are large: some overlap is
        needed to find room, but no part may disappear under the patch)."""
        ys, xs = np.nonzero(patch > 0.05)
        inside = cv2.erode((self.face > 0.5).astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
        parts = [(m > 0.5, max(1.0, float((m > 0.5).sum()))) for m in others]
        cand_y, cand_x = np.nonzero(inside)
        if not len(xs) or not len(cand_x):
            raise SynthesisError("degenerate", "empty face or part region (degenerate landmarks)")
        centre = np.array([xs.mean(), ys.mean()])
        h, w = self.shape
        for _ in range(200):
            k = rng.integers(len(cand_x))
            offset = np.round(np.array([cand_x[k], cand_y[k]], float) - centre)  # whole pixels: an exact copy
            if np.hypot(*offset) < min_move:
                continue
            nx, ny = np.round(xs + offset[0]).astype(int), np.round(ys + offset[1]).astype(int)
            if nx.min() < 0 or ny.min() < 0 or nx.max() >= w or ny.max() >= h:
                continue
            if inside[ny, nx].mean() < min_inside:
                continue
            if all(part[ny, nx].sum() / area <= max_cover for part, area in parts):
                return offset
        raise SynthesisError("no_room", "no room inside the face to place the part")


def synthesize_structure(
    rgb: np.ndarray,
    points: np.ndarray,
    kind: str,
    rng: np.random.Generator,
    *,
    schema: LandmarkSchema = ANIME56,
    margin: float = 0.15,
    feather: float = 1.5,
) -> StructureSample:
    """Make one structure sample of ``kind`` (see ``KINDS``) from an anime face and its landmarks (pixels).

    ``margin`` grows the cut eye/mouth regions by that fraction of the part's size; ``feather`` (px) softens
    the pasted and filled regions so that the classifier cannot key on hard seams. Raises SynthesisError
    when the face leaves no room for the change or its landmarks are degenerate.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown structure kind {kind!r}; expected one of {', '.join(KINDS)}")
    pts = schema.check_shape(points)
    if not np.isfinite(pts).all():
        raise SynthesisError("bad_landmarks", "non-finite landmarks")
    shape = rgb.shape[:2]
    structure = schema.structure_points(pts)
    channels = np.arange(len(STRUCTURE_CHANNELS))
    if kind == LEGIT:
        return StructureSample(rgb.copy(), 1, kind, structure, channels, np.zeros(shape, np.float32))

    face = _Face(pts, schema, shape, margin)
    eye = int(rng.choice([_LEFT_EYE, _RIGHT_EYE]))
    group = "mouth" if kind.startswith("mouth") else _EYE_GROUPS[eye]
    idx = list(_MOUTH) if group == "mouth" else [eye]
    region, size = face.part(group, feather)
    base = rgb.astype(np.float32)
    out, changed = base, np.zeros(shape, np.float32)
    visible = [i for i in channels if i not in idx or kind == "eye_pasted"]
    new_points, new_channels = [structure[visible]], [channels[visible]]

    if kind in ("eye_removed", "mouth_removed", "eye_moved", "mouth_moved"):
        skin = np.broadcast_to(_skin_colour(rgb, pts, schema).astype(np.float32), base.shape)
        out = _blend(out, skin, region)
        changed = region
    if kind in ("eye_pasted", "eye_moved", "mouth_moved"):
        others = [g for g in ("left_eye", "right_eye", "mouth") if g != group or kind == "eye_pasted"]
        offset = face.place(region, [face.part(g)[0] for g in others], rng, min_move=size)
        moved_region = _shift(region, offset)
        out = _blend(out, _shift(base, offset), moved_region)
        changed = np.maximum(changed, moved_region)
        moved = structure[idx] + offset
        new_points.append(moved)
        new_channels.append(np.array(idx if group == "mouth" else [face.side_channel(moved[0])]))

    all_points, all_channels = np.concatenate(new_points), np.concatenate(new_channels)
    order = np.argsort(all_channels, kind="stable")
    return StructureSample(out, 0, kind, all_points[order], all_channels[order].astype(np.int64), changed)
