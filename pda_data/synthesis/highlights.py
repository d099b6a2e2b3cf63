"""Anime faces with human highlight artifacts (paper Fig. 7), for the highlight classifier.

The bright regions of a human portrait are isolated with a levels adjustment (input black point, white
point, gamma) and a threshold, the forehead is dropped, the result is carried onto an anime face by a
piecewise-affine warp through the HUMAN68 -> ANIME56 correspondence, and blended with a pixel-wise maximum
inside the anime face mask (minus its forehead) only. The output is therefore never darker than the anime
image and differs from it only inside that region.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from pda_data.geometry.masks import face_mask, forehead_mask
from pda_data.geometry.warp import piecewise_affine_warp
from pda_data.schema import ANIME56, HUMAN68, HUMAN_TO_ANIME
from pda_data.synthesis.options import DEFAULT_LEVELS, Levels
from pda_data.synthesis.structure import SynthesisError

_LUMA = np.array([0.299, 0.587, 0.114], np.float32)


@dataclass(frozen=True)
class HighlightSample:
    """The anime image with highlights, the warped highlight mask, and the region allowed to change."""

    image: np.ndarray
    mask: np.ndarray  # float32 (H, W) in [0, 1], the blend weight actually used
    region: np.ndarray  # bool (H, W): anime face mask minus forehead


def adjust_levels(rgb: np.ndarray, levels: Levels) -> np.ndarray:
    """``rgb`` (uint8) through the levels adjustment: float32 in [0, 1], same shape."""
    x = (rgb.astype(np.float32) / 255.0 - levels.black) / (levels.white - levels.black)
    return np.clip(x, 0.0, 1.0) ** np.float32(1.0 / levels.gamma)


def extract_highlights(
    rgb: np.ndarray, points68: np.ndarray, levels: Levels = DEFAULT_LEVELS, min_area: int = 9
) -> tuple[np.ndarray, np.ndarray]:
    """The highlight layer (uint8 RGB, black elsewhere) and its mask (float32, 0/1) of a human portrait.

    Only the face below the brows counts; specks smaller than ``min_area`` pixels are dropped.
    """
    shape = rgb.shape[:2]
    adjusted = adjust_levels(rgb, levels)
    bright = (adjusted @ _LUMA) >= levels.threshold
    allowed = (face_mask(points68, HUMAN68, shape) > 0.5) & (forehead_mask(points68, HUMAN68, shape) < 0.5)
    mask = (bright & allowed).astype(np.uint8)
    if min_area > 1 and mask.any():
        n, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
        small = np.nonzero(stats[:, cv2.CC_STAT_AREA] < min_area)[0]
        mask[np.isin(labels, small[small > 0])] = 0
    layer = (adjusted * 255.0 + 0.5).astype(np.uint8) * mask[..., None]
    return layer, mask.astype(np.float32)


def synthesize_highlights(
    human: np.ndarray,
    human_lm: np.ndarray,
    anime: np.ndarray,
    anime_lm: np.ndarray,
    *,
    levels: Levels = DEFAULT_LEVELS,
    feather: float = 1.0,
    min_coverage: float = 0.01,
) -> HighlightSample:
    """Carry the highlights of ``human`` (HUMAN68 points, pixels) onto ``anime`` (ANIME56 points, pixels).

    Raises ValueError when the landmarks are degenerate (no triangulation), SynthesisError("no_highlight")
    when the highlights cover less than ``min_coverage`` of the anime face region (a sample without
    visible artifacts would be mislabelled).
    """
    h_pts, a_pts = HUMAN68.check_shape(human_lm), ANIME56.check_shape(anime_lm)
    layer, mask = extract_highlights(human, h_pts, levels)
    src, dst = HUMAN_TO_ANIME.apply(h_pts, a_pts)
    shape = anime.shape[:2]
    warped_layer = piecewise_affine_warp(layer, src, dst, shape)
    warped_mask = piecewise_affine_warp(mask, src, dst, shape)
    if feather > 0:
        warped_mask = cv2.GaussianBlur(warped_mask, (0, 0), feather)
    region = (face_mask(a_pts, ANIME56, shape) > 0.5) & (forehead_mask(a_pts, ANIME56, shape) < 0.5)
    weight = np.clip(warped_mask, 0.0, 1.0) * region
    coverage = float((weight > 0.5).sum()) / max(1, int(region.sum()))
    if coverage < min_coverage:
        raise SynthesisError(
            "no_highlight", f"highlights cover {coverage:.1%} of the anime face, below {min_coverage:.1%}"
        )
    lighter = np.maximum(anime, warped_layer).astype(np.float32)
    base = anime.astype(np.float32)
    out = anime + np.floor((lighter - base) * weight[..., None] + 0.5).astype(np.uint8)
    return HighlightSample(out, weight.astype(np.float32), region)
