"""Photo -> anime portrait with an exported translator: detect, landmark, crop, LDN warp, PSN, paste back.

The face crop is exactly the curation crop (:func:`pda_data.curation.engine.crop_face` with the human-portrait
defaults: margin, eye alignment), taken directly at the model's resolution, so inference sees faces framed as
in training. Paste-back maps the anime crop into the photo through the inverse of the crop's affine, blended
with a mask that fades out near the crop border.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from pda_data.curation.engine import HUMAN_DEFAULTS, crop_face
from pda_data.faces.detectors import Detector, Landmarker
from pda_data.schema import normalize_points
from pda_data.stream.augment import images_to_tensor
from pda_train.inference.export import Translator
from pda_train.training.tracking import to_uint8

PASTE_FEATHER = 0.08  # fraction of the crop side over which the pasted crop fades into the photo


class NoFaceError(ValueError):
    """No face was found in a photo."""


@dataclass(frozen=True)
class FaceCrop:
    """A face prepared for the translator: the crop, its 68 landmarks (crop px) and the image->crop affine."""

    crop: np.ndarray
    points: np.ndarray
    affine: np.ndarray
    box: tuple[float, float, float, float]


@dataclass(frozen=True)
class Translation:
    """Translator outputs for one face, as H x W x 3 uint8 images (anime, the LDN-warped input)."""

    anime: np.ndarray
    warped: np.ndarray


def find_face(
    rgb: np.ndarray,
    detector: Detector,
    landmarker: Landmarker,
    size: int,
    *,
    margin: float = HUMAN_DEFAULTS.margin,
    align: bool = HUMAN_DEFAULTS.align,
    name: str = "image",
) -> FaceCrop:
    """Crop the largest face of ``rgb`` as curation does; :class:`NoFaceError` when there is none."""
    detections = detector.detect(rgb)
    if not detections:
        raise NoFaceError(f"{name}: no face found")
    box = detections[0].box
    points = landmarker.refine(rgb, box)
    crop, crop_points, affine = crop_face(rgb, points, margin=margin, size=size, align=align)
    return FaceCrop(crop, crop_points, affine, box)


@torch.no_grad()
def translate_crops(
    model: Translator,
    crops: Sequence[np.ndarray],
    points: Sequence[np.ndarray],
    *,
    batch_size: int = 8,
) -> list[Translation]:
    """Translate RGB uint8 face crops with their HUMAN68 landmarks (crop pixels), in batches on the model's
    device. Crops of another size than the model's are resized (landmarks follow)."""
    size = model.image_size
    device = next(model.parameters()).device
    out: list[Translation] = []
    for start in range(0, len(crops), batch_size):
        imgs, pts = [], []
        for crop, p in zip(
            crops[start : start + batch_size], points[start : start + batch_size], strict=True
        ):
            h, w = crop.shape[:2]
            imgs.append(
                crop
                if (h, w) == (size, size)
                else cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA)
            )
            pts.append(normalize_points(p, w, h))
        x = images_to_tensor(imgs).to(device)
        lm = torch.as_tensor(np.stack(pts), dtype=torch.float32, device=device)
        anime, warped, _ = model(x, lm)
        out += [Translation(a, w) for a, w in zip(to_uint8(anime), to_uint8(warped), strict=True)]
    return out


def paste_back(
    photo: np.ndarray, crop: np.ndarray, affine: np.ndarray, feather: float = PASTE_FEATHER
) -> np.ndarray:
    """Blend ``crop`` (placed by the image->crop ``affine``) into a copy of ``photo``."""
    h, w = photo.shape[:2]
    size = crop.shape[0]
    ramp = max(1, round(feather * size))
    edge = np.minimum(np.arange(size), np.arange(size)[::-1]).astype(np.float32)
    fade = np.clip(edge / ramp, 0.0, 1.0)
    mask = np.outer(fade, fade)
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    warped = cv2.warpAffine(crop, affine, (w, h), flags=flags, borderMode=cv2.BORDER_REPLICATE)
    alpha = cv2.warpAffine(mask, affine, (w, h), flags=flags, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    blend = photo.astype(np.float32) * (1 - alpha[..., None]) + warped.astype(np.float32) * alpha[..., None]
    return np.clip(blend + 0.5, 0, 255).astype(np.uint8)
