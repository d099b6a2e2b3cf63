"""Photo -> anime portraits: every face detected, landmarked, cropped, LDN warp, PSN, pasted back.

The faces and their crops are curation's (:mod:`pda_train.inference.faces`: the human-portrait defaults,
taken directly at the model's resolution), so inference sees faces framed as in training; crops of another
size go through :func:`pda_data.geometry.crop.resize_to_model`, the stream's resize. The translator is a
:mod:`pda_train.inference.backends` backend (PyTorch or onnxruntime); :func:`translate_photos` is the whole
``pda-train translate`` run over files, paste-back is :mod:`pda_train.inference.paste`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from pda_data.curation.options import CurateOptions
from pda_data.faces.detection import Detector
from pda_data.faces.landmarks import Landmarker
from pda_data.geometry.crop import resize_to_model
from pda_data.io.images import ImageError, load_image, save_image
from pda_data.io.sources import IMAGE_SUFFIXES
from pda_data.schema import normalize_points
from pda_data.viz.sheet import contact_sheet
from pda_train.inference.backends import Backend, as_backend
from pda_train.inference.faces import FaceCrop, NoFaceError, face_options, faces_or_raise
from pda_train.inference.paste import paste_faces

if TYPE_CHECKING:
    from torch import nn


@dataclass(frozen=True)
class Translation:
    """Translator outputs for one face, as H x W x 3 uint8 images (anime, the LDN-warped input)."""

    anime: np.ndarray
    warped: np.ndarray


def to_model_input(crops: Sequence[np.ndarray], points: Sequence[np.ndarray], size: int
                   ) -> tuple[np.ndarray, np.ndarray]:
    """RGB uint8 crops and their HUMAN68 landmarks (crop pixels) -> the translator's inputs: portraits
    (B, 3, S, S) float32 and landmarks (B, 68, 2) float32, both in [-1, 1]. Crops of another size than
    ``size`` are resized as the training stream resizes (landmarks follow)."""
    images, pts = [], []
    for crop, p in zip(crops, points, strict=True):
        image, model_points = resize_to_model(crop, p, size)
        images.append(image)
        pts.append(normalize_points(model_points, size, size))
    x = np.stack(images).transpose(0, 3, 1, 2).astype(np.float32) / np.float32(127.5) - np.float32(1.0)
    return np.ascontiguousarray(x), np.stack(pts).astype(np.float32)


def to_uint8_images(x: np.ndarray) -> np.ndarray:
    """(B, 3, H, W) float in [-1, 1] -> (B, H, W, 3) uint8."""
    return ((np.clip(x, -1.0, 1.0) + 1.0) * 127.5).round().astype(np.uint8).transpose(0, 2, 3, 1)


def translate_crops(
    model: Backend | nn.Module,
    crops: Sequence[np.ndarray],
    points: Sequence[np.ndarray],
    *,
    batch_size: int = 8,
) -> list[Translation]:
    """Translate RGB uint8 face crops with their HUMAN68 landmarks (crop pixels), ``batch_size`` at a time,
    with a backend or a torch translator (on its device)."""
    backend = as_backend(model)
    out: list[Translation] = []
    for start in range(0, len(crops), batch_size):
        x, lm = to_model_input(
            crops[start : start + batch_size], points[start : start + batch_size], backend.image_size
        )
        anime, warped = backend(x, lm)
        pairs = zip(to_uint8_images(anime), to_uint8_images(warped), strict=True)
        out += [Translation(a, w) for a, w in pairs]
    return out


@dataclass(frozen=True)
class PhotoResult:
    """One input photo of :func:`translate_photos`: the files written (names in the output folder), the
    faces left out (one message each), or why the photo was skipped (``error``, with the exception's class
    name in ``kind``)."""

    source: Path
    outputs: tuple[str, ...] = ()
    faces: int = 0
    skipped: tuple[str, ...] = ()
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
    model: Backend | nn.Module,
    files: Sequence[Path],
    out: Path,
    detector: Detector,
    landmarker: Landmarker,
    *,
    options: CurateOptions | None = None,
    paste: bool = True,
    batch_size: int = 8,
    on_photo: Callable[[PhotoResult], None] | None = None,
) -> list[PhotoResult]:
    """Translate the faces of each photo (``options``: :func:`face_options` at the model size, every face
    by default) into ``out``: <stem>_face<k>.png per face, largest first; with ``paste`` the composite
    <stem>_pasted.png; and a sheet.png of input | warped | anime rows. Unreadable photos and photos
    without a face that passes the filters are skipped."""
    backend = as_backend(model)
    options = options or face_options(backend.image_size)
    results: list[PhotoResult] = []
    tiles: list[np.ndarray] = []
    used: set[str] = set()

    def report(result: PhotoResult) -> None:
        results.append(result)
        if on_photo is not None:
            on_photo(result)

    for start in range(0, len(files), batch_size):
        chunk: list[tuple[Path, np.ndarray, list[FaceCrop], list[str]]] = []
        for f in files[start : start + batch_size]:
            try:
                photo = load_image(f)
                kept, skipped = faces_or_raise(photo, detector, landmarker, options, str(f))
            except (ImageError, NoFaceError) as exc:
                report(PhotoResult(f, kind=type(exc).__name__, error=str(exc)))
                continue
            chunk.append((f, photo, kept, [s.message() for s in skipped]))
        faces = [face for _, _, kept, _ in chunk for face in kept]
        translated = iter(translate_crops(backend, [c.crop for c in faces], [c.points for c in faces],
                                          batch_size=batch_size))
        for f, photo, kept, skipped in chunk:
            name = f.stem if f.stem not in used else f"{f.stem}-{len(used)}"  # same name in two folders
            used.add(name)
            written, animes = [], []
            for k, face in enumerate(kept):
                res = next(translated)
                save_image(out / f"{name}_face{k}.png", res.anime)
                written.append(f"{name}_face{k}.png")
                animes.append(res.anime)
                tiles += [face.crop, res.warped, res.anime]
            if paste:
                composite = paste_faces(photo, animes, [face.affine for face in kept]).image
                save_image(out / f"{name}_pasted.png", composite)
                written.append(f"{name}_pasted.png")
            report(PhotoResult(f, tuple(written), len(kept), tuple(skipped)))
    if tiles:
        labels = ["input", "warped", "anime"] * (len(tiles) // 3)
        save_image(out / "sheet.png", contact_sheet(tiles, labels, columns=3))
    return results
