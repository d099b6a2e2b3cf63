"""Import of annotators' records into the annotation table (and back out, for export).

Each record is validated against its image (:mod:`pda_data.annotations.validate`); valid images may be
resized on the way in, their points scaled exactly. An image must resolve inside the images folder (symlinks
and ``..`` resolved: else ``outside_images``, and it is not read) and is opened once: refused there if it is
not a regular file or too large, then decoded and hashed from the same bytes.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path, PurePosixPath

import cv2
import numpy as np
import pandas as pd

from pda_data.annotations.formats.records import ImageAnnotation
from pda_data.annotations.table import annotation_frame
from pda_data.annotations.validate import REFUSED, Problem, ordered_points, point_problem
from pda_data.io.files import atomic_write_bytes, sha256_bytes
from pda_data.io.images import REASONS as IMAGE_REASONS
from pda_data.io.images import ImageError, encode_image, load_image, read_image_file
from pda_data.io.sources import IMAGE_SUFFIXES
from pda_data.schema import SCHEMA_VERSION, flatten_points, unflatten_points


def image_key(name: str) -> str:
    """Row key of an annotated image name: its relative path without suffix, "/" as "__"."""
    parts = [
        p for p in PurePosixPath(name.replace("\\", "/")).with_suffix("").parts if p not in ("", ".", "/")
    ]
    return "__".join(parts)


def resolve_image(name: str, images: Path) -> tuple[Path | None, str]:
    """The image an annotation names, inside the (resolved) folder ``images``: ``images/name``, else the
    name itself when absolute, else ``images/<basename>``, each also with an image suffix appended when
    there is no file of that exact name; symlinks and ``..`` are resolved first.

    Returns (path, "") or (None, code): ``outside_images`` when the only file named lies outside ``images``
    (it is not read), ``image_missing`` when there is none.
    """
    rel = name.replace("\\", "/")
    if "\0" in rel:  # no file has such a name (and the OS calls would raise)
        return None, "image_missing"
    candidates = [images / rel.lstrip("/"), images / PurePosixPath(rel).name]
    if PurePosixPath(rel).is_absolute():
        candidates.insert(1, Path(rel))
    outside = False
    for candidate in candidates:
        # A name without its suffix (LabelAnyLandmarks' IMAGE) is the image of that name plus a suffix.
        for named in (candidate, *(Path(f"{candidate}{s}") for s in sorted(IMAGE_SUFFIXES))):
            path = Path(os.path.realpath(named))
            if os.path.lexists(path):
                if path.is_relative_to(images):
                    return path, ""
                outside = True
                break
    return None, "outside_images" if outside else "image_missing"


def scale_points(points: np.ndarray, old: tuple[int, int], new: tuple[int, int]) -> np.ndarray:
    """Points of a (width, height) ``old`` image in its copy resized to ``new`` (pixel centres: integers)."""
    factor = np.array([new[0] / old[0], new[1] / old[1]])
    return (np.asarray(points, dtype=np.float64) + 0.5) * factor - 0.5


def import_annotations(
    annotations: Iterable[ImageAnnotation],
    images: str | Path,
    source_format: str,
    *,
    size: int | None = None,
    resized_dir: str | Path | None = None,
) -> tuple[pd.DataFrame, list[Problem]]:
    """Validate parsed records against their images; return the table of valid rows and the rejected ones.

    With ``size`` every valid image is resized to ``size`` x ``size`` (written as PNG under ``resized_dir``),
    its points scaled exactly, and the row's path, sha256 and size describe the resized copy.
    """
    root = Path(images).resolve()
    rows: list[dict] = []
    problems: list[Problem] = []
    seen: set[str] = set()
    for ann in annotations:
        name = ann.name
        points, (code, detail) = ordered_points(ann)
        if points is None:
            problems.append(Problem(name, code, detail))
            continue
        key = image_key(name)
        if key in seen:
            problems.append(Problem(name, "duplicate_image", f"key {key!r} already imported"))
            continue
        path, code = resolve_image(name, root)
        if path is None:
            outside = code == "outside_images"
            problems.append(Problem(name, code, "resolves outside --images; not read" if outside else
                                    f"not found under {root}"))
            continue
        try:
            data = read_image_file(path)  # opened once: decoded and hashed from these bytes
            rgb = load_image(data, str(path))
        except ImageError as exc:
            if exc.reason in REFUSED:
                problems.append(Problem(name, exc.reason, str(exc)))
            else:
                problems.append(Problem(name, "image_unreadable", IMAGE_REASONS.get(exc.reason, exc.reason)))
            continue
        height, width = rgb.shape[:2]
        if (ann.width, ann.height) != (None, None) and (ann.width, ann.height) != (width, height):
            problems.append(
                Problem(name, "size_mismatch", f"annotated {ann.width}x{ann.height}, file {width}x{height}")
            )
            continue
        bad = point_problem(points, width, height)
        if bad is not None:
            problems.append(Problem(name, *bad))
            continue
        seen.add(key)
        sha = sha256_bytes(data)
        if size is not None:
            if resized_dir is None:
                raise ValueError("resizing needs resized_dir")
            points = scale_points(points, (width, height), (size, size))
            interp = cv2.INTER_AREA if size < min(width, height) else cv2.INTER_CUBIC
            encoded = encode_image(cv2.resize(rgb, (size, size), interpolation=interp), "png")
            path = Path(resized_dir).resolve() / f"{key}.png"
            atomic_write_bytes(path, encoded)
            sha, width, height = sha256_bytes(encoded), size, size
        rows.append(
            {
                "key": key,
                "path": str(path),
                "sha256": sha,
                "width": int(width),
                "height": int(height),
                "points": flatten_points(points),
                "source_format": source_format,
                "source_file": str(Path(ann.source_file).resolve()) if ann.source_file else "",
                "schema_version": SCHEMA_VERSION,
            }
        )
    return annotation_frame(rows), problems



def to_image_annotations(df: pd.DataFrame) -> tuple[Path, list[ImageAnnotation]]:
    """Records for export: image names relative to the deepest folder holding every image (returned too)."""
    paths = [Path(p) for p in df["path"]]
    root = Path(os.path.commonpath([str(p.parent) for p in paths])) if paths else Path(".")
    anns = [
        ImageAnnotation(
            name=p.relative_to(root).as_posix(), points=unflatten_points(v), width=int(w), height=int(h)
        )
        for p, v, w, h in zip(paths, df["points"], df["width"], df["height"], strict=True)
    ]
    return root, anns

