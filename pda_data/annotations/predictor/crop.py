"""The predictor's frame: a detection box -> a square face crop of the network's size, points both ways.

Points move between the image and the crop. Training crops the box the annotation implies
(:func:`pda_data.annotations.shapes.landmark_box`), inference the detector's box: the same frame."""

from __future__ import annotations

import numpy as np

from pda_data.geometry.crop import warp_square

Box = tuple[float, float, float, float]


def crop_matrix(box: Box, size: int) -> np.ndarray:
    """2x3 affine image -> crop: the square of side max(box sides) about the box centre onto size x size
    (pixel centres on integers, as :mod:`pda_data.schema`)."""
    x0, y0, x1, y1 = box
    side = max(x1 - x0, y1 - y0, 1.0)
    scale = size / side
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    shift = (size - 1) / 2
    return np.array([[scale, 0.0, shift - scale * cx], [0.0, scale, shift - scale * cy]])


def face_crop(rgb: np.ndarray, box: Box, size: int) -> tuple[np.ndarray, np.ndarray]:
    """(size x size crop of the HxWx3 image, its 2x3 image -> crop affine); outside pixels repeat the
    border."""
    matrix = crop_matrix(box, size)
    return warp_square(rgb, matrix, size), matrix


def to_crop(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Image points (..., K, 2) -> crop pixels."""
    return np.asarray(points, dtype=np.float64) @ matrix[:, :2].T + matrix[:, 2]


def from_crop(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Crop points (..., K, 2) -> image pixels (the inverse of :func:`to_crop`)."""
    linear = matrix[:, :2]
    return (np.asarray(points, dtype=np.float64) - matrix[:, 2]) @ np.linalg.inv(linear).T
