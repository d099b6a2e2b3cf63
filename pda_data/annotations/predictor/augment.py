"""Training augmentation that respects the landmark schema (albumentations, and the schema's flip).

albumentations moves the points through small rotations, scales and shifts and jitters the colours; the
horizontal flip is applied here, through the schema's flip permutation, because albumentations mirrors
coordinates without swapping the semantic left and right points (a flipped image-left eye must become the
image-right eye)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from pda_data.schema import ANIME56, LandmarkSchema

Augment = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


class MissingExtra(RuntimeError):
    """albumentations is not installed (it comes with the ``landmarks`` extra)."""


@dataclass(frozen=True)
class AugmentOptions:
    """How far training samples vary: degrees, scale range, shift as a fraction of the crop, flip chance."""

    rotate: float = 12.0
    scale: tuple[float, float] = (0.88, 1.12)
    shift: float = 0.06
    colour: float = 0.25
    flip: float = 0.5


def flip_sample(crop: np.ndarray, points: np.ndarray, schema: LandmarkSchema = ANIME56) -> tuple[
    np.ndarray, np.ndarray
]:
    """The mirrored crop (H, W, 3) and its points (K, 2) in the schema's semantic order."""
    return np.ascontiguousarray(crop[:, ::-1]), schema.flip(points, crop.shape[1])


def make_augment(
    seed: int, options: AugmentOptions = AugmentOptions(), schema: LandmarkSchema = ANIME56
) -> Augment:
    """A deterministic (seeded) augmentation: (crop uint8 (S, S, 3), points (K, 2)) -> the same, varied."""
    try:
        import albumentations as A  # noqa: N812 (the library's own convention)
    except ImportError as exc:
        raise MissingExtra(
            "training a landmark predictor needs albumentations: pip install 'pda-toolkit[landmarks]'"
        ) from exc
    import cv2

    c = options.colour
    pipeline = A.Compose(
        [
            A.Affine(
                scale=options.scale,
                translate_percent=(-options.shift, options.shift),
                rotate=(-options.rotate, options.rotate),
                border_mode=cv2.BORDER_REPLICATE,
                p=0.9,
            ),
            A.ColorJitter(brightness=c, contrast=c, saturation=c, hue=c / 3, p=0.8),
        ],
        keypoint_params=A.KeypointParams(format="xy", remove_invisible=False),
        seed=seed,
    )
    rng = np.random.default_rng(seed)

    def augment(crop: np.ndarray, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        out = pipeline(image=crop, keypoints=np.asarray(points, dtype=np.float32))
        image, pts = out["image"], np.asarray(out["keypoints"], dtype=np.float64)[:, :2]
        if rng.random() < options.flip:
            image, pts = flip_sample(image, pts, schema)
        return image, pts

    return augment
