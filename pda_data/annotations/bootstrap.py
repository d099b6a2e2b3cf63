"""Pre-annotation of unlabelled anime portraits: detected face, 56 points placed in its box, a queue.

The points are the mean shape's, or a trained predictor's with a confidence; the images the detector misses
are listed.

With a predictor the images can be ordered most uncertain first (active learning): correcting the faces the
predictor is least sure of teaches the next predictor the most.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from pda_data.annotations.formats.records import ImageAnnotation
from pda_data.annotations.validate import Problem
from pda_data.faces.detection import Detector
from pda_data.io.images import ImageError, load_image

# (RGB image, detection box) -> (K, 2) points in image pixels and their uncertainty (None: no estimate).
Placer = Callable[[np.ndarray, tuple[float, float, float, float]], tuple[np.ndarray, float | None]]
ORDERS: tuple[str, ...] = ("name", "uncertainty")
QUEUE_COLUMNS: tuple[str, ...] = ("image", "status", "confidence", "uncertainty", "detail")


@dataclass(frozen=True)
class PreAnnotation:
    """One pre-annotated image: its record for the annotation tool and the predictor's uncertainty."""

    record: ImageAnnotation
    uncertainty: float | None


def pre_annotate(files: Iterable[tuple[str, Path]], detector: Detector, place: Placer) -> tuple[
    list[PreAnnotation], list[Problem]
]:
    """Pre-annotate (name, path) images: the largest detected face's points, clipped to the image; images
    that cannot be read or hold no detected face are returned as problems."""
    done, missed = [], []
    for name, path in files:
        try:
            rgb = load_image(path)
        except ImageError as exc:
            missed.append(Problem(name, "image_unreadable", exc.reason))
            continue
        found = detector.detect(rgb)
        if not found:
            missed.append(Problem(name, "no_face", "the anime-lbp detector found no face"))
            continue
        h, w = rgb.shape[:2]
        box = max(found, key=lambda d: d.area).box
        points, uncertainty = place(rgb, box)
        placed = np.clip(points, 0, [w - 1, h - 1])
        done.append(PreAnnotation(ImageAnnotation(name, placed, width=w, height=h), uncertainty))
    return done, missed


def ordered(done: list[PreAnnotation], order: str) -> list[PreAnnotation]:
    """By image name, or most uncertain first (ties and images without an estimate by name)."""
    if order not in ORDERS:
        raise ValueError(f"unknown order {order!r}; one of {', '.join(ORDERS)}")
    if order == "name":
        return sorted(done, key=lambda p: p.record.name)
    return sorted(done, key=lambda p: (-(-1.0 if p.uncertainty is None else p.uncertainty), p.record.name))


def queue_table(
    done: list[PreAnnotation], missed: list[Problem], confidence: Callable[[float], float] | None = None
) -> pd.DataFrame:
    """The labelling queue: the pre-annotated images in order with their confidence (``confidence`` of the
    uncertainty; empty without an estimate), then the missed ones."""
    def score(p: PreAnnotation) -> float | None:
        return None if p.uncertainty is None or confidence is None else float(confidence(p.uncertainty))

    rows = [
        {
            "image": p.record.name,
            "status": "pre-annotated",
            "confidence": score(p),
            "uncertainty": p.uncertainty,
            "detail": "",
        }
        for p in done
    ]
    rows += [{"image": m.name, "status": m.code, "confidence": None, "uncertainty": None, "detail": m.detail}
             for m in missed]
    return pd.DataFrame(rows, columns=list(QUEUE_COLUMNS))
