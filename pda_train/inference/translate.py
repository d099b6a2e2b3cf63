"""Photo -> anime portrait with an exported translator: detect, landmark, crop, LDN warp, PSN, paste back.

The face crop is exactly the curation crop (:func:`pda_data.geometry.crop.crop_face` with the human-portrait
defaults: margin, eye alignment), taken directly at the model's resolution, so inference sees faces framed as
in training; crops of another size go through :func:`pda_data.geometry.crop.resize_to_model`, the stream's
resize. :func:`translate_photos` is the whole ``pda-train translate`` run over files. Paste-back maps the
anime crop into the photo through the inverse of the crop's affine, blended with a mask that fades out near
the crop border.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from pda_data.curation.options import HUMAN_DEFAULTS
from pda_data.faces.detection import Detector
from pda_data.faces.landmarks import Landmarker
from pda_data.geometry.crop import crop_face, resize_to_model
from pda_data.io.images import ImageError, load_image, save_image
from pda_data.io.sources import IMAGE_SUFFIXES
from pda_data.schema import normalize_points
from pda_data.stream.augment import images_to_tensor
from pda_data.viz.sheet import contact_sheet
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
    device. Crops of another size than the model's are resized as the training stream resizes (landmarks
    follow, :func:`pda_data.geometry.crop.resize_to_model`)."""
    size = model.image_size
    device = next(model.parameters()).device
    out: list[Translation] = []
    for start in range(0, len(crops), batch_size):
        imgs, pts = [], []
        for crop, p in zip(
            crops[start : start + batch_size], points[start : start + batch_size], strict=True
        ):
            image, model_points = resize_to_model(crop, p, size)
            imgs.append(image)
            pts.append(normalize_points(model_points, size, size))
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


@dataclass(frozen=True)
class PhotoResult:
    """One input photo of :func:`translate_photos`: the files written (names in the output folder), or
    why it was skipped (``error``, with the exception's class name in ``kind``)."""

    source: Path
    outputs: tuple[str, ...] = ()
    kind: str = ""
    error: str = ""


def list_photos(paths: Sequence[Path]) -> list[Path]:
    """Files as given, and the image files of each folder (sorted, not recursive)."""
    files: list[Path] = []
    for p in paths:
        if p.is_dir():
            files += sorted(f for f in p.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
        else:
            files.append(p)
    return files


def translate_photos(
    model: Translator,
    files: Sequence[Path],
    out: Path,
    detector: Detector,
    landmarker: Landmarker,
    *,
    paste: bool = False,
    batch_size: int = 8,
    on_photo: Callable[[PhotoResult], None] | None = None,
) -> list[PhotoResult]:
    """Translate each photo's largest face into ``out``: <stem>.png, with ``paste`` <stem>_pasted.png, and a
    sheet.png of input | warped | anime rows. Unreadable photos and photos without a face are skipped."""
    results: list[PhotoResult] = []
    tiles: list[np.ndarray] = []
    used: set[str] = set()

    def report(result: PhotoResult) -> None:
        results.append(result)
        if on_photo is not None:
            on_photo(result)

    for start in range(0, len(files), batch_size):
        chunk, photos, faces = [], [], []
        for f in files[start : start + batch_size]:
            try:
                photo = load_image(f)
                faces.append(find_face(photo, detector, landmarker, model.image_size, name=str(f)))
            except (ImageError, NoFaceError) as exc:
                report(PhotoResult(f, kind=type(exc).__name__, error=str(exc)))
                continue
            chunk.append(f)
            photos.append(photo)
        translated = translate_crops(
            model, [c.crop for c in faces], [c.points for c in faces], batch_size=batch_size
        )
        for f, photo, face, res in zip(chunk, photos, faces, translated, strict=True):
            name = f.stem if f.stem not in used else f"{f.stem}-{len(used)}"  # same name in two folders
            used.add(name)
            save_image(out / f"{name}.png", res.anime)
            written = [f"{name}.png"]
            if paste:
                save_image(out / f"{name}_pasted.png", paste_back(photo, res.anime, face.affine))
                written.append(f"{name}_pasted.png")
            tiles += [face.crop, res.warped, res.anime]
            report(PhotoResult(f, tuple(written)))
    if tiles:
        labels = ["input", "warped", "anime"] * (len(tiles) // 3)
        save_image(out / "sheet.png", contact_sheet(tiles, labels, columns=3))
    return results
