"""The annotation format registry: sniffing a file's format, reading and rendering by format name.

The names themselves (:data:`pda_data.annotations.formats.FORMATS`) live in the package, which imports
nothing, so ``--help`` builds its ``--format`` choices cheaply. Each format lives in its own module:
:mod:`~pda_data.annotations.formats.cvat`, :mod:`~pda_data.annotations.formats.labelme`,
:mod:`~pda_data.annotations.formats.coco`, :mod:`~pda_data.annotations.formats.csv`,
:mod:`~pda_data.annotations.formats.labelanylandmarks`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from pda_data.annotations.formats import FORMATS
from pda_data.annotations.formats.coco import parse_coco, write_coco
from pda_data.annotations.formats.csv import parse_csv, write_csv
from pda_data.annotations.formats.cvat import parse_cvat, write_cvat
from pda_data.annotations.formats.labelanylandmarks import (
    FILE_PATTERN,
    labelanylandmarks_filename,
    parse_labelanylandmarks,
    write_labelanylandmarks,
)
from pda_data.annotations.formats.labelme import labelme_filename, parse_labelme, write_labelme
from pda_data.annotations.formats.records import AnnotationFormatError, ImageAnnotation, load_json, read_bytes

# Formats that hold every image in one file: their parser and the file name they are rendered to.
_SINGLE_FILE: dict[str, tuple[Callable[[bytes, str], list[ImageAnnotation]], Callable[..., str], str]] = {
    "cvat": (parse_cvat, write_cvat, "annotations.xml"),
    "coco": (parse_coco, write_coco, "annotations.json"),
    "csv": (parse_csv, write_csv, "annotations.csv"),
}


def _labelanylandmarks_files(folder: Path) -> list[Path]:
    return sorted(f for f in folder.rglob("*.txt") if FILE_PATTERN.match(f.name))


def _subfolder(file: Path, root: Path) -> str:
    """The folder of ``file`` relative to ``root``, "" for ``root`` itself."""
    rel = file.parent.relative_to(root).as_posix()
    return "" if rel == "." else rel


def sniff_format(path: Path) -> str:
    """Guess the format of a file or folder (a folder of labelme JSON files, or of LabelAnyLandmarks
    ``<name>-<k>.txt`` files when it holds those and no JSON)."""
    if path.is_dir():
        if _labelanylandmarks_files(path) and not any(path.rglob("*.json")):
            return "labelanylandmarks"
        return "labelme"
    suffix = path.suffix.lower()
    if suffix == ".xml":
        return "cvat"
    if suffix in (".csv", ".tsv", ".txt"):
        return "csv"
    if suffix == ".json":
        doc = load_json(read_bytes(path), str(path))
        if isinstance(doc, dict) and "shapes" in doc:
            return "labelme"
        if isinstance(doc, dict) and "annotations" in doc:
            return "coco"
    raise AnnotationFormatError(
        path, f"cannot tell the annotation format; pass --format {'|'.join(FORMATS)}"
    )


def read_annotation_source(path: str | Path, fmt: str | None = None) -> tuple[str, list[ImageAnnotation]]:
    """Parse an annotation file (or a folder of labelme files); returns the format used and the records."""
    p = Path(path)
    if not p.exists():
        raise AnnotationFormatError(p, "no such file or folder")
    fmt = fmt or sniff_format(p)
    if fmt not in FORMATS:
        raise AnnotationFormatError(p, f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if p.is_dir():
        if fmt == "labelanylandmarks":
            return fmt, [
                parse_labelanylandmarks(read_bytes(f), str(f), _subfolder(f, p))
                for f in _labelanylandmarks_files(p)
            ]
        if fmt != "labelme":
            raise AnnotationFormatError(p, f"a folder holds labelme or labelanylandmarks files, not {fmt}")
        return fmt, [parse_labelme(read_bytes(f), str(f)) for f in sorted(p.rglob("*.json"))]
    data = read_bytes(p)
    if fmt == "labelme":
        return fmt, [parse_labelme(data, str(p))]
    if fmt == "labelanylandmarks":
        return fmt, [parse_labelanylandmarks(data, str(p))]
    parse, _, _ = _SINGLE_FILE[fmt]
    return fmt, parse(data, str(p))


def render_format(annotations: list[ImageAnnotation], fmt: str) -> dict[str, str]:
    """Serialize records: {relative file name: text}; one file, or one per image for labelme and
    LabelAnyLandmarks."""
    if fmt == "labelme":
        return {labelme_filename(a.name): write_labelme(a) for a in annotations}
    if fmt == "labelanylandmarks":
        return {labelanylandmarks_filename(a.name): write_labelanylandmarks(a) for a in annotations}
    if fmt not in _SINGLE_FILE:
        raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    _, write, name = _SINGLE_FILE[fmt]
    return {name: write(annotations)}
