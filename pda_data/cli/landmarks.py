"""``pda-data landmarks import|check|render|export|bootstrap``: anime 56-point annotation files.

Thin commands over :mod:`pda_data.annotations.table` (validation, the canonical Parquet file) and
:mod:`pda_data.annotations.formats` (CVAT, labelme, COCO, CSV).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from pda_data.annotations.formats import FORMATS, TOOL_FORMATS
from pda_data.cli.options import FAILED, choice, esc, fail, os_error_line
from pda_data.cli.options import err_console as console
from pda_data.cli.progress import progress_bar

if TYPE_CHECKING:
    from pda_data.annotations.validate import Problem

landmarks_app = typer.Typer(
    name="landmarks",
    help="Import, check, render, export and bootstrap anime 56-point landmark annotations.",
    no_args_is_help=True,
)

FormatChoice = choice("FormatChoice", FORMATS)
ToolChoice = choice("ToolChoice", TOOL_FORMATS)


def _problem_table(problems: list[Problem], title: str) -> Table:
    table = Table(title=esc(title))
    table.add_column("image")
    table.add_column("reason")
    table.add_column("detail")
    for p in problems:
        table.add_row(esc(p.name), esc(p.code), esc(p.detail))
    return table


def _write_outputs(files: dict[str, str], out: Path, many: bool) -> list[Path]:
    """Write serialized annotation files: into folder ``out`` when ``many``, else the only one as ``out``."""
    from pda_data.io.files import atomic_write_text

    written = []
    for rel, text in files.items():
        target = out / rel if many else out
        atomic_write_text(target, text)
        written.append(target)
    return written


@landmarks_app.command("import")
def import_cmd(
    annotations: Annotated[
        Path,
        typer.Argument(
            help="Annotation export: a CVAT XML, COCO JSON or CSV file, a labelme JSON, or a folder of "
            "labelme files."
        ),
    ],
    images: Annotated[Path, typer.Option(help="Folder the image names in the annotations resolve against.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Canonical annotation file to write (Parquet).")],
    fmt: Annotated[
        FormatChoice | None,
        typer.Option("--format", help="Annotation format; sniffed from the file when omitted."),
    ] = None,
    size: Annotated[
        int | None,
        typer.Option(
            help="Resize every image to SIZE x SIZE (copies go to OUT_STEM_images/ beside OUT), scaling "
            "the points exactly.",
            min=8,
        ),
    ] = None,
    strict: Annotated[
        bool, typer.Option(help="Fail (exit 1, write nothing) if any image is invalid.")
    ] = False,
) -> None:
    """Validate an annotation export against its images and write the canonical annotation file.

    Invalid images are listed with their reason and skipped; a file that cannot be parsed fails the command.
    """
    from pda_data.annotations.formats.records import AnnotationFormatError
    from pda_data.annotations.formats.registry import read_annotation_source
    from pda_data.annotations.ingest import import_annotations
    from pda_data.annotations.table import write_annotations

    if not images.is_dir():
        raise fail(f"{images}: --images is not a folder")
    try:
        used, records = read_annotation_source(annotations, fmt.value if fmt else None)
    except AnnotationFormatError as exc:
        raise fail(str(exc)) from exc
    resized = out.parent / f"{out.stem}_images" if size else None
    try:
        with progress_bar(console, unit="image") as bar:
            df, problems = import_annotations(
                bar.track(records, description="import"), images, used, size=size, resized_dir=resized
            )
    except OSError as exc:  # writing a resized copy (--size); unreadable images are listed, not raised
        raise fail(os_error_line(exc), FAILED) from exc
    if problems:
        console.print(_problem_table(problems, f"{len(problems)} invalid image(s) skipped"))
    if strict and problems:
        raise fail(f"{len(problems)} invalid image(s) and --strict: nothing written", FAILED)
    try:
        write_annotations(df, out)
    except OSError as exc:  # a full or read-only disk, a folder or a file in the way: nothing half-written
        raise fail(os_error_line(exc), FAILED) from exc
    console.print(
        esc(f"{used}: {len(records)} annotated image(s), {len(df)} valid, {len(problems)} invalid -> {out}"),
        highlight=False,
    )


@landmarks_app.command("check")
def check_cmd(
    file: Annotated[Path, typer.Argument(help="Canonical annotation file (Parquet).")],
    images: Annotated[bool, typer.Option(help="Also check that each image exists and is unchanged.")] = True,
    strict: Annotated[bool, typer.Option(help="Exit 1 if any problem is found.")] = False,
) -> None:
    """Re-validate an annotation file; print its problems and per-group landmark statistics."""
    from pda_data.annotations.shapes import group_statistics
    from pda_data.annotations.table import AnnotationError, read_annotations
    from pda_data.annotations.validate import recheck

    try:
        df = read_annotations(file)
    except AnnotationError as exc:
        raise fail(str(exc)) from exc
    problems = recheck(df, verify_images=images)
    if problems:
        console.print(_problem_table(problems, f"{len(problems)} problem(s)"))
    stats = group_statistics(df)
    table = Table(title=esc(f"{file}: {len(df)} image(s); centres and extents as fractions of the image"))
    for col in ("group", "points", "centre x", "centre y", "width", "height", "centre spread"):
        table.add_column(col, justify="left" if col == "group" else "right")
    for row in stats.itertuples(index=False):
        table.add_row(
            row.group,
            str(row.points),
            f"{row.centre_x:.3f}",
            f"{row.centre_y:.3f}",
            f"{row.width:.3f}",
            f"{row.height:.3f}",
            f"{row.centre_std:.3f}",
        )
    console.print(table)
    console.print(f"{len(problems)} problem(s) in {len(df)} image(s)", highlight=False)
    if strict and problems:
        raise typer.Exit(FAILED)


@landmarks_app.command("render")
def render_cmd(
    file: Annotated[Path, typer.Argument(help="Canonical annotation file (Parquet).")],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Folder for <key>.png overlays and contact_sheet.png.")
    ],
    indices: Annotated[bool, typer.Option(help="Number every point.")] = False,
    limit: Annotated[int | None, typer.Option(help="Render at most this many images.", min=1)] = None,
    columns: Annotated[int, typer.Option(help="Contact sheet columns.", min=1)] = 6,
    tile: Annotated[int, typer.Option(help="Contact sheet tile size in pixels.", min=32)] = 256,
) -> None:
    """Draw the landmarks (coloured by group, outlines joined) over every image, plus a contact sheet."""
    from pda_data.annotations.render import SHEET_NAME, render_overlays
    from pda_data.annotations.table import AnnotationError, read_annotations

    try:
        df = read_annotations(file)
    except AnnotationError as exc:
        raise fail(str(exc)) from exc
    df = df.head(limit) if limit else df
    with progress_bar(console, unit="image") as bar:
        task = bar.add_task("render", total=len(df))
        result = render_overlays(
            df, out, indices=indices, columns=columns, tile=tile, on_image=lambda: bar.advance(task)
        )
    for message in result.unreadable:
        console.print(f"[yellow]skipped[/yellow] {esc(message)}", highlight=False)
    console.print(
        esc(f"{len(result.drawn)} overlay(s) and {SHEET_NAME} in {out}; {len(result.unreadable)} unreadable "
            "image(s)"),
        highlight=False,
    )


@landmarks_app.command("export")
def export_cmd(
    file: Annotated[Path, typer.Argument(help="Canonical annotation file (Parquet).")],
    fmt: Annotated[FormatChoice, typer.Option("--format", help="Format to write.")],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Output file (a folder for labelme: one JSON per image).")
    ],
) -> None:
    """Write an annotation file in a tool's format; importing it back gives the same points."""
    from pda_data.annotations.formats.registry import render_format
    from pda_data.annotations.ingest import to_image_annotations
    from pda_data.annotations.table import AnnotationError, read_annotations

    try:
        df = read_annotations(file)
    except AnnotationError as exc:
        raise fail(str(exc)) from exc
    root, records = to_image_annotations(df)
    written = _write_outputs(render_format(records, fmt.value), out, fmt.value == "labelme")
    console.print(
        esc(f"{len(records)} image(s) -> {len(written)} {fmt.value} file(s) at {out}; image names are "
            f"relative to {root} (import with --images {root})"),
        highlight=False,
    )


@landmarks_app.command("bootstrap")
def bootstrap_cmd(
    images: Annotated[Path, typer.Option(help="Folder of anime portraits to pre-annotate.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output file (cvat) or folder (labelme).")],
    fmt: Annotated[ToolChoice, typer.Option("--format", help="Annotation tool format.")] = ToolChoice.cvat,
    shape: Annotated[
        Path | None,
        typer.Option(
            help="Annotation file whose mean shape to place; the built-in default shape when omitted."
        ),
    ] = None,
    cascade: Annotated[
        Path | None,
        typer.Option(help="Anime-face LBP cascade (default: $PDA_ANIME_CASCADE, the cache, or a download)."),
    ] = None,
) -> None:
    """Pre-annotate: detect each anime face and place a mean 56-point shape in its box, to be corrected."""
    import numpy as np

    from pda_data.annotations.formats.records import ImageAnnotation
    from pda_data.annotations.formats.registry import render_format
    from pda_data.annotations.shapes import default_shape, mean_shape, place_shape
    from pda_data.annotations.table import AnnotationError, points_array, read_annotations
    from pda_data.annotations.validate import Problem
    from pda_data.faces.detectors import make_detector
    from pda_data.faces.models import ModelError
    from pda_data.io.images import ImageError, load_image
    from pda_data.io.sources import IMAGE_SUFFIXES

    if not images.is_dir():
        raise fail(f"{images}: --images is not a folder")
    try:
        unit = mean_shape(points_array(read_annotations(shape))) if shape else default_shape()
        detector = make_detector("anime-lbp", cascade)
    except (AnnotationError, ModelError) as exc:
        raise fail(str(exc)) from exc
    files = sorted(p for p in images.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    records, skipped = [], []
    with progress_bar(console, unit="image") as bar:
        for path in bar.track(files, description="bootstrap"):
            name = path.relative_to(images).as_posix()
            try:
                rgb = load_image(path)
            except ImageError as exc:
                skipped.append(Problem(name, "image_unreadable", exc.reason))
                continue
            found = detector.detect(rgb)
            if not found:
                skipped.append(Problem(name, "no_face", "the anime-lbp detector found no face"))
                continue
            h, w = rgb.shape[:2]
            placed = np.clip(place_shape(unit, found[0].box), 0, [w - 1, h - 1])
            records.append(ImageAnnotation(name, placed, width=w, height=h))
    if skipped:
        console.print(_problem_table(skipped, f"{len(skipped)} image(s) not pre-annotated"))
    written = _write_outputs(render_format(records, fmt.value), out, fmt.value == "labelme")
    console.print(
        esc(f"{len(records)} of {len(files)} image(s) pre-annotated -> {len(written)} {fmt.value} file(s) "
            f"at {out}"),
        highlight=False,
    )


def register(app: typer.Typer) -> None:
    """Add the ``landmarks`` command group to the ``pda-data`` app."""
    app.add_typer(landmarks_app, name="landmarks")
