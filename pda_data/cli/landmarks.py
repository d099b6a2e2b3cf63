"""``pda-data landmarks import|check|render|export|bootstrap|train-predictor``: anime 56-point annotations.

Thin commands over :mod:`pda_data.annotations.table` (validation, the canonical Parquet file),
:mod:`pda_data.annotations.formats` (CVAT, labelme, COCO, CSV, LabelAnyLandmarks),
:mod:`pda_data.annotations.bootstrap`, :mod:`pda_data.annotations.qa` and the predictor
(:mod:`pda_data.cli.predictor`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from pda_data.annotations.formats import FOLDER_FORMATS, FORMATS, TOOL_FORMATS
from pda_data.cli.options import FAILED, choice, esc, fail, os_error_line
from pda_data.cli.options import err_console as console
from pda_data.cli.predictor import PredictorOption, load_or_fail, train_predictor_cmd
from pda_data.cli.progress import progress_bar

if TYPE_CHECKING:
    import pandas as pd

    from pda_data.annotations.predictor.model import LandmarkPredictor
    from pda_data.annotations.validate import Problem

landmarks_app = typer.Typer(
    name="landmarks",
    help="Import, check, render, export and bootstrap anime 56-point landmark annotations; train a "
    "predictor.",
    no_args_is_help=True,
)

FormatChoice = choice("FormatChoice", FORMATS)
ToolChoice = choice("ToolChoice", TOOL_FORMATS)
OrderChoice = choice("OrderChoice", ("name", "uncertainty"))  # pda_data.annotations.bootstrap.ORDERS


def _problem_table(problems: list[Problem], title: str) -> Table:
    table = Table(title=esc(title))
    table.add_column("image")
    table.add_column("reason")
    table.add_column("detail")
    for p in problems:
        table.add_row(esc(p.name), esc(p.code), esc(p.detail))
    return table


def _write_outputs(files: dict[str, str], out: Path, fmt: str) -> list[Path]:
    """Write serialized annotation files: into folder ``out`` for a folder format, else the only one as
    ``out``."""
    from pda_data.io.files import atomic_write_text

    written = []
    for rel, text in files.items():
        target = out / rel if fmt in FOLDER_FORMATS else out
        atomic_write_text(target, text)
        written.append(target)
    return written


@landmarks_app.command("import")
def import_cmd(
    annotations: Annotated[
        Path,
        typer.Argument(
            help="Annotation export: a CVAT XML, COCO JSON or CSV file, a labelme JSON, or a folder of "
            "labelme files or of LabelAnyLandmarks <name>-<k>.txt files."
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
    strict: Annotated[
        bool, typer.Option(help="Exit 1 if any problem is found (or, with --predictor, any row is flagged).")
    ] = False,
    predictor: PredictorOption = None,
    threshold: Annotated[
        float,
        typer.Option(
            help="With --predictor: flag a row when a group's NME against the prediction exceeds this.",
            min=0.0,
        ),
    ] = 0.1,
    sheet: Annotated[
        Path | None, typer.Option(help="With --predictor: write the flagged rows' overlay sheet here (PNG).")
    ] = None,
) -> None:
    """Re-validate an annotation file; print its problems and per-group landmark statistics.

    With --predictor, also flag the annotations that disagree with the predictor (annotator QA), worst first.
    """
    from pda_data.annotations.shapes import group_statistics
    from pda_data.annotations.table import AnnotationError, read_annotations
    from pda_data.annotations.validate import recheck

    try:
        df = read_annotations(file)
    except AnnotationError as exc:
        raise fail(str(exc)) from exc
    model = load_or_fail(predictor) if predictor else None
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
    flagged = 0 if model is None else _predictor_check(df, model, threshold, sheet)
    console.print(f"{len(problems)} problem(s) in {len(df)} image(s)", highlight=False)
    if strict and (problems or flagged):
        raise typer.Exit(FAILED)


def _predictor_check(df: pd.DataFrame, model: LandmarkPredictor, threshold: float, sheet: Path | None) -> int:
    """Print the annotations that disagree with ``model`` worst first, draw their sheet; returns how many."""
    from pda_data.annotations.qa import disagreements, flagged_sheet

    with progress_bar(console, unit="image") as bar:
        task = bar.add_task("predict", total=len(df))
        result, unreadable, predicted = disagreements(
            df, model, threshold, on_image=lambda: bar.advance(task)
        )
    for message in unreadable:
        console.print(f"[yellow]skipped[/yellow] {esc(message)}", highlight=False)
    flagged = result[result["flagged"]]
    table = Table(title=esc(f"{len(flagged)} annotation(s) disagree with the predictor by more than "
                            f"{threshold:g} inter-ocular distances in a group (worst first)"))
    for col in ("image", "worst group", "group NME", "all NME"):
        table.add_column(col, justify="left" if col in ("image", "worst group") else "right")
    for row in flagged.itertuples(index=False):
        table.add_row(esc(row.key), row.worst_group, f"{row.worst:.3f}", f"{row.all:.3f}")
    console.print(table)
    if sheet is not None and len(flagged):
        drawn = flagged_sheet(result, df, predicted, sheet)
        console.print(esc(f"{drawn} flagged annotation(s) drawn (annotation | prediction) -> {sheet}"),
                      highlight=False)
    return len(flagged)


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
        Path,
        typer.Option(
            "--out", "-o", help="Output file (a folder for labelme and labelanylandmarks: a file per image)."
        ),
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
    written = _write_outputs(render_format(records, fmt.value), out, fmt.value)
    console.print(
        esc(f"{len(records)} image(s) -> {len(written)} {fmt.value} file(s) at {out}; image names are "
            f"relative to {root} (import with --images {root})"),
        highlight=False,
    )


@landmarks_app.command("bootstrap")
def bootstrap_cmd(
    images: Annotated[Path, typer.Option(help="Folder of anime portraits to pre-annotate.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output file (cvat) or folder (labelme, "
                                      "labelanylandmarks).")],
    fmt: Annotated[ToolChoice, typer.Option("--format", help="Annotation tool format.")] = ToolChoice.cvat,
    shape: Annotated[
        Path | None,
        typer.Option(
            help="Annotation file whose mean shape to place; the built-in default shape when omitted."
        ),
    ] = None,
    predictor: PredictorOption = None,
    order: Annotated[
        OrderChoice,
        typer.Option(help="Image order in the output and the queue: by name, or most uncertain first "
                     "(needs --predictor: label those next)."),
    ] = OrderChoice.name,
    limit: Annotated[
        int | None, typer.Option(help="Write only the first LIMIT images of that order.", min=1)
    ] = None,
    exclude: Annotated[
        Path | None, typer.Option(help="Annotation file (Parquet) of the images already labelled: skipped.")
    ] = None,
    cascade: Annotated[
        Path | None,
        typer.Option(help="Anime-face LBP cascade (default: $PDA_ANIME_CASCADE, the cache, or a download)."),
    ] = None,
) -> None:
    """Pre-annotate: detect each anime face and place 56 points in its box (mean shape or predictor).

    With --predictor the points are the predictor's, each image gets a confidence, and --order uncertainty
    puts the images it is least sure of first (label those next).

    Writes the labelling queue beside the output (OUT_queue.csv, or queue.csv in an output folder): each image
    in order with its confidence, then the images the detector missed.
    """
    from pda_data.annotations.bootstrap import ordered, pre_annotate, queue_table
    from pda_data.annotations.formats.registry import render_format
    from pda_data.annotations.ingest import image_key
    from pda_data.annotations.shapes import default_shape, mean_shape, place_shape
    from pda_data.annotations.table import AnnotationError, points_array, read_annotations
    from pda_data.faces.detectors import make_detector
    from pda_data.faces.models import ModelError
    from pda_data.io.files import atomic_write_text
    from pda_data.io.sources import IMAGE_SUFFIXES

    if not images.is_dir():
        raise fail(f"{images}: --images is not a folder")
    if order.value == "uncertainty" and predictor is None:
        raise fail("--order uncertainty needs --predictor")
    try:
        unit = mean_shape(points_array(read_annotations(shape))) if shape else default_shape()
        done_keys = set(read_annotations(exclude)["key"]) if exclude else set()
        detector = make_detector("anime-lbp", cascade)
    except (AnnotationError, ModelError) as exc:
        raise fail(str(exc)) from exc
    model = load_or_fail(predictor) if predictor else None
    files = sorted(p for p in images.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    named = [(p.relative_to(images).as_posix(), p) for p in files]
    named = [(n, p) for n, p in named if image_key(n) not in done_keys]
    place = model.predict if model is not None else lambda _rgb, box: (place_shape(unit, box), None)
    with progress_bar(console, unit="image") as bar:
        done, missed = pre_annotate(bar.track(named, description="bootstrap"), detector, place)
    done = ordered(done, order.value)[:limit]
    if missed:
        console.print(_problem_table(missed, f"{len(missed)} image(s) not pre-annotated"))
    records = [p.record for p in done]
    written = _write_outputs(render_format(records, fmt.value), out, fmt.value)
    queue = out / "queue.csv" if fmt.value in FOLDER_FORMATS else out.with_name(f"{out.stem}_queue.csv")
    scale = None
    if model is not None:
        from pda_data.annotations.predictor.model import confidence as scale
    atomic_write_text(queue, queue_table(done, missed, scale).to_csv(index=False))
    skipped = f", {len(files) - len(named)} already annotated" if exclude else ""
    console.print(
        esc(f"{len(records)} of {len(named)} image(s) pre-annotated{skipped} -> {len(written)} {fmt.value} "
            f"file(s) at {out}; queue {queue}"),
        highlight=False,
    )


landmarks_app.command("train-predictor")(train_predictor_cmd)


def register(app: typer.Typer) -> None:
    """Add the ``landmarks`` command group to the ``pda-data`` app."""
    app.add_typer(landmarks_app, name="landmarks")
