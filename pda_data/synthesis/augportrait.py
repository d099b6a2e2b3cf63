"""Aug-Portrait fusion (paper Fig. 8): a human face warped into the shape of a coser face and pasted in.

The human portrait is warped by a thin-plate spline on the 68 facial landmarks so that its landmarks land
on the coser's (the spline of :mod:`pda_data.geometry.warp`, evaluated on a coarse grid and applied with
``cv2.remap``), optionally colour-matched to the coser skin (mean/std in Lab inside the face), and pasted
through the feathered coser face mask. The fused image keeps the coser's hair, background and landmarks.
The trainer calls :func:`fuse` on the fly, so it is kept to a few milliseconds at 256 x 256.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch

from pda_data.geometry.masks import face_axes, face_mask
from pda_data.geometry.warp import tps_grid
from pda_data.schema import HUMAN68, normalize_points
from pda_data.synthesis.options import DEFAULT_FUSION, FusionOptions

# Points that steer the warp: the inner lip is left out, its points coincide whenever the mouth is closed.
_WARP_GROUPS = (
    "contour",
    "left_brow",
    "right_brow",
    "nose_bridge",
    "nose_base",
    "left_eye",
    "right_eye",
    "outer_lip",
)
_MIN_SPACING = 1.0  # px: target points closer than this are merged, or the spline system turns singular


@dataclass(frozen=True)
class Fusion:
    """The fused portrait, the paste mask (float32, feathered) and the warped, colour-matched human
    (inside the face's bounding box; the coser elsewhere)."""

    image: np.ndarray
    mask: np.ndarray
    warped: np.ndarray


def landmark_maps(
    points: np.ndarray,
    target: np.ndarray,
    in_shape: tuple[int, int],
    shape: tuple[int, int],
    grid: int = 32,
    window: tuple[slice, slice] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The ``cv2.remap`` maps (float32 (H, W) x and y, input pixels) that move ``points`` onto ``target``.

    ``points`` (K, 2) are pixels of an ``in_shape`` (H, W) input, ``target`` pixels of a ``shape`` output;
    ``window`` (row slice, column slice) keeps only that part of the output. Targets within
    ``_MIN_SPACING`` of an earlier one are merged; a degenerate rest (fewer than 3 distinct points, all
    (nearly) collinear, an ill-conditioned spline) raises ValueError before solving.
    """
    points, target = _distinct(np.asarray(points, np.float64), np.asarray(target, np.float64))
    h_in, w_in = in_shape
    h_out, w_out = shape
    src = torch.from_numpy(normalize_points(points, w_in, h_in))[None]
    dst = torch.from_numpy(normalize_points(target, w_out, h_out))[None]
    sampling = tps_grid(src, dst, shape, grid=grid, anchors=False, dtype=torch.float32, check=True)[0].numpy()
    if window is not None:
        sampling = sampling[window]
    map_x = ((sampling[..., 0] + 1.0) * (0.5 * (w_in - 1))).astype(np.float32)
    map_y = ((sampling[..., 1] + 1.0) * (0.5 * (h_in - 1))).astype(np.float32)
    return map_x, map_y


def warp_to_landmarks(
    image: np.ndarray,
    points: np.ndarray,
    target: np.ndarray,
    shape: tuple[int, int],
    grid: int = 32,
    window: tuple[slice, slice] | None = None,
) -> np.ndarray:
    """Warp ``image`` so its ``points`` (K, 2, pixels) land on ``target`` (pixels of an ``shape`` output).

    ``window`` (row slice, column slice) renders only that part of the output. Degenerate targets raise
    ValueError before solving (see :func:`landmark_maps`).
    """
    map_x, map_y = landmark_maps(points, target, image.shape[:2], shape, grid, window)
    return cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def _distinct(points: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Drop the point pairs whose target lies within ``_MIN_SPACING`` of an earlier target."""
    dist = np.hypot(*(target[:, None, :] - target[None, :, :]).transpose(2, 0, 1))
    close_to_earlier = np.tril(dist < _MIN_SPACING, k=-1).any(1)
    return points[~close_to_earlier], target[~close_to_earlier]


def match_colour(
    source: np.ndarray, reference: np.ndarray, mask: np.ndarray, strength: float = 1.0
) -> np.ndarray:
    """Shift ``source``'s Lab mean/std inside ``mask`` towards ``reference``'s (``strength`` in [0, 1])."""
    inside = (mask > 0.5).astype(np.uint8)
    if strength <= 0 or cv2.countNonZero(inside) < 16:
        return source
    src_lab = cv2.cvtColor(source, cv2.COLOR_RGB2LAB)
    s_mean, s_std = (v[:, 0] for v in cv2.meanStdDev(src_lab, mask=inside))
    r_mean, r_std = (v[:, 0] for v in cv2.meanStdDev(cv2.cvtColor(reference, cv2.COLOR_RGB2LAB), mask=inside))
    s_std, r_std = s_std + 1e-3, r_std + 1e-3
    t_mean = s_mean + strength * (r_mean - s_mean)
    t_std = s_std + strength * (r_std - s_std)
    # Bounded gain: a flat channel (a grey photo's chroma) must not blow noise up into colour.
    gain = np.clip(t_std / s_std, 0.5, 2.0).astype(np.float32)
    out = src_lab.astype(np.float32) * gain + (t_mean - s_mean * gain + 0.5).astype(np.float32)
    return cv2.cvtColor(np.clip(out, 0, 255).astype(np.uint8), cv2.COLOR_LAB2RGB)


def fuse_parts(
    human: np.ndarray,
    human_lm: np.ndarray,
    coser: np.ndarray,
    coser_lm: np.ndarray,
    rng: np.random.Generator,
    options: FusionOptions = DEFAULT_FUSION,
) -> Fusion:
    """:func:`fuse` with its intermediate products. Raises ValueError on degenerate landmarks."""
    h_pts, c_pts = HUMAN68.check_shape(human_lm), HUMAN68.check_shape(coser_lm)
    if not (np.isfinite(h_pts).all() and np.isfinite(c_pts).all()):
        raise ValueError("non-finite landmarks")
    shape = coser.shape[:2]
    _, height = face_axes(c_pts, HUMAN68)
    hard = face_mask(c_pts, HUMAN68, shape)
    sigma = float(rng.uniform(*options.feather)) * height
    strength = float(rng.uniform(*options.colour_strength))
    # All pixel work happens in the face's bounding box (plus the feather), the rest is the coser as is.
    x0, y0, w, h = cv2.boundingRect((hard > 0).astype(np.uint8))
    if w == 0 or h == 0:
        raise ValueError("the coser face mask is empty")
    pad = int(np.ceil(3 * sigma)) + 1
    window = (slice(max(0, y0 - pad), y0 + h + pad), slice(max(0, x0 - pad), x0 + w + pad))
    steer = [i for g in _WARP_GROUPS for i in HUMAN68.groups[g]]
    warped = warp_to_landmarks(human, h_pts[steer], c_pts[steer], shape, options.grid, window)
    warped = match_colour(warped, coser[window], hard[window], strength)
    soft = cv2.GaussianBlur(hard[window], (0, 0), sigma)
    # Keep the seam inside the face: the blurred mask is rescaled to reach 0 at the mask edge.
    alpha = np.clip(soft * 2.0 - 1.0, 0.0, 1.0)
    mask = np.zeros(shape, np.float32)
    mask[window] = alpha
    image = coser.copy()
    a = alpha[..., None]
    image[window] = (coser[window] * (1.0 - a) + warped * a + 0.5).astype(np.uint8)
    full_warp = coser.copy()
    full_warp[window] = warped
    return Fusion(image, mask, full_warp)


def fuse(
    human: np.ndarray,
    human_lm: np.ndarray,
    coser: np.ndarray,
    coser_lm: np.ndarray,
    rng: np.random.Generator,
    options: FusionOptions = DEFAULT_FUSION,
) -> np.ndarray:
    """An Aug-Portrait sample: ``human``'s face in the shape of ``coser``'s, pasted into ``coser``.

    Both landmark sets are HUMAN68 in their own image's pixels; the result has ``coser``'s size and its
    landmarks are ``coser_lm``.
    """
    return fuse_parts(human, human_lm, coser, coser_lm, rng, options).image
