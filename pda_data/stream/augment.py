"""Landmark-aware geometric augmentation and the uint8 -> float conversions of stream batches.

Augmentation is one resample per image: a random square crop resized to the output size (``cv2.resize`` on
the crop), then a horizontal flip that applies the schema's flip permutation to the landmarks. There is no
colour jitter: colour is what the translation must preserve. Batches travel as uint8 (B, 3, S, S) tensors
(a quarter of the bytes of a float batch) and become float [-1, 1] once per batch (:func:`unit_range`).
"""

from __future__ import annotations

import random

import cv2
import numpy as np
import torch

from pda_data.geometry.crop import resize_to_model
from pda_data.schema import STRUCTURE_FLIP, LandmarkSchema, normalize_points

# Random square crops cover this share of the image area (CycleGAN's 286 -> 256 crop is 0.80), then resize.
CROP_AREA = (0.8, 1.0)
# uint8 value -> float32 in [-1, 1] (x / 127.5 - 1, exact at both ends), applied with one cv2.LUT pass.
_UNIT_LUT = (np.arange(256) / 127.5 - 1.0).astype(np.float32)


class Augmenter:
    """Landmark-aware geometric augmentation to ``image_size`` squares, one resample per image.

    Train: a random square crop covering ``crop_area`` of the image (at most its shorter side), resized to
    ``image_size`` (no aspect distortion), then a horizontal flip with ``flip_prob`` (landmarks mirrored and
    re-indexed with the schema's flip permutation; structure channels swap left/right). Eval: resize the
    whole image. Pixels and landmarks go through one map, :func:`pda_data.geometry.crop.resize_to_model`
    (pixel-centre convention of :mod:`pda_data.schema`; area averaging down, bilinear up).
    """

    def __init__(
        self,
        image_size: int,
        *,
        train: bool,
        seed: int,
        flip_prob: float = 0.5,
        crop_area: tuple[float, float] = CROP_AREA,
    ) -> None:
        self.size, self.train, self.crop_area = image_size, train, crop_area
        self.flip_prob = flip_prob if train else 0.0
        self.rng = random.Random(seed)  # per-sample scalar draws: far cheaper than numpy's Generator
        self._unflipped = np.empty((image_size, image_size, 3), np.uint8)

    def crop_box(self, width: int, height: int) -> tuple[int, int, int, int]:
        """(x0, y0, crop width, crop height) of the next sample: a random square in train, all in eval."""
        if not self.train:
            return 0, 0, width, height
        area = self.rng.uniform(*self.crop_area) * width * height
        side = min(max(round(area**0.5), 1), width, height)
        return self.rng.randrange(width - side + 1), self.rng.randrange(height - side + 1), side, side

    def __call__(
        self,
        image: np.ndarray,
        points: np.ndarray,
        schema: LandmarkSchema,
        extra: np.ndarray | None = None,
        channels: np.ndarray | None = None,
        out: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Return (image, landmarks, extra points, their channels); ``extra`` are structure points (M, 2).

        ``out``, an (S, S, 3) uint8 array, receives the image (batch assembly reuses one buffer).
        """
        extra = np.empty((0, 2)) if extra is None else np.asarray(extra, dtype=np.float64).reshape(-1, 2)
        channels = np.empty(0, np.int64) if channels is None else np.asarray(channels, dtype=np.int64)
        x0, y0, w, h = self.crop_box(image.shape[1], image.shape[0])
        flip = self.rng.random() < self.flip_prob
        s = self.size
        if out is None:
            out = np.empty((s, s, 3), np.uint8)
        resized = self._unflipped if flip else out
        # One map for pixels and points: the model-input resize that translation uses too.
        both = np.vstack([points, extra])
        resized, mapped = resize_to_model(image, both, s, box=(x0, y0, w, h), out=resized)
        pts, ext = mapped[: len(points)], mapped[len(points) :]
        if flip:
            cv2.flip(resized, 1, dst=out)
            pts = schema.flip(pts, s)
            ext[:, 0] = (s - 1) - ext[:, 0]
            channels = np.asarray(STRUCTURE_FLIP, dtype=np.int64)[channels]
        return out, pts, ext, channels


def unit_range(images: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    """uint8 images (B, 3, H, W) to float32 in [-1, 1] in one vectorized pass (x / 127.5 - 1).

    ``out``: a contiguous float32 tensor of the same shape to write into.
    """
    src = np.ascontiguousarray(images.numpy())
    flat = src.reshape(-1, src.shape[-2] * src.shape[-1])
    out = torch.empty(src.shape, dtype=torch.float32) if out is None else out
    cv2.LUT(flat, _UNIT_LUT, dst=out.numpy().reshape(flat.shape))
    return out


def _deinterleave(image: np.ndarray, planes: np.ndarray) -> None:
    """Copy an H x W x 3 uint8 image into ``planes`` (3, H, W) with one SIMD pass."""
    if image.shape != (*planes.shape[1:], 3) or image.dtype != np.uint8:
        raise ValueError(f"image {image.shape} {image.dtype} does not fit a {planes.shape} uint8 batch slot")
    cv2.split(np.ascontiguousarray(image), list(planes))


class ImageBatch:
    """A uint8 (B, 3, S, S) batch filled one H x W x 3 image at a time (de-interleaved into planes)."""

    def __init__(self, batch_size: int, size: int) -> None:
        self.array = np.empty((batch_size, 3, size, size), np.uint8)

    def put(self, i: int, image: np.ndarray) -> None:
        """Store image ``i`` (S x S x 3 uint8)."""
        _deinterleave(image, self.array[i])

    def tensor(self) -> torch.Tensor:
        return torch.from_numpy(self.array)


def images_to_tensor(images: list[np.ndarray]) -> torch.Tensor:
    """Stack H x W x 3 uint8 RGB images into a float tensor (B, 3, H, W) in [-1, 1]."""
    batch = np.empty((len(images), 3, *images[0].shape[:2]), np.uint8)
    for planes, image in zip(batch, images, strict=True):
        _deinterleave(image, planes)
    return unit_range(torch.from_numpy(batch))


def points_to_tensor(points: list[np.ndarray], size: int) -> torch.Tensor:
    """Stack (K, 2) pixel landmarks of ``size`` squares into (B, K, 2) float in [-1, 1]."""
    return torch.from_numpy(normalize_points(np.stack(points), size, size).astype(np.float32))
