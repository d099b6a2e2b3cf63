"""``pda-data crop-cosers``, ``crop-humans`` and ``merge-manifests``: over :mod:`pda_data.curation.run`."""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from pda_data.cli.options import (
    FAILED,
    RAY_LOCAL,
    Concurrency,
    DetectorChoice,
    EngineChoice,
    EngineOption,
    ImageFormatChoice,
    RayAddress,
    Workers,
    esc,
    fail,
    make_engine,
    os_error_line,
)
from pda_data.cli.progress import progress_bar
from pda_data.curation.options import COSER_DEFAULTS, HUMAN_DEFAULTS, CurateOptions, with_overrides

if TYPE_CHECKING:
    from pda_data.curation.run import RunSummary
    from pda_data.distribute import Engine
    from pda_data.io.sources import HFOptions

console = Console(stderr=True)


class FacesChoice(str, Enum):
    largest = "largest"
    all = "all"


def parse_part(text: str | None) -> tuple[int, int] | None:
    """``"i/N"`` (1-based) to (i, N)."""
    if not text:
        return None
    try:
        index, count = (int(v) for v in text.split("/"))
    except ValueError as exc:
        raise typer.BadParameter(f"{text!r}: expected i/N, e.g. 2/4") from exc
    if not 1 <= index <= count:
        raise typer.BadParameter(f"{text!r}: i must be between 1 and N")
    return index, count


def print_summary(summary: RunSummary, title: str, unreadable_folders: int | None = None) -> None:
    """The closing table: counts per reason; ``unreadable_folders`` (crop commands) adds their row."""
    from pda_data.curation.table import FACE_REASONS

    table = Table(title=title)
    table.add_column("")
    table.add_column("count", justify="right")
    table.add_row("inputs processed this run", str(summary.processed))
    table.add_row("faces analysed (all runs)", str(summary.faces))
    table.add_row("[green]kept", f"[green]{summary.kept}")
    for reason in FACE_REASONS:
        table.add_row(f"rejected: {reason}", str(summary.reasons.get(reason, 0)))
    for reason, n in sorted(summary.reasons.items()):
        if reason not in FACE_REASONS:
            table.add_row(f"[red]error: {esc(reason)}", f"[red]{n}")
    table.add_row("errors (total)", str(summary.errors))
    if unreadable_folders is not None:
        style = "[red]" if unreadable_folders else ""
        table.add_row(f"{style}unreadable folders", f"{style}{unreadable_folders}")
    table.add_row("images/s", f"{summary.images_per_s:.2f}")
    console.print(table)
    console.print(f"manifest: {esc(summary.out / 'manifest.parquet')}", highlight=False)


def _run(defaults: CurateOptions, title: str, inputs: list[str], out: Path, engine: Engine, part: str | None,
         hf: HFOptions, sheets: bool, **overrides: Any) -> None:
    from pda_data.curation.run import count_items, run_curation
    from pda_data.curation.table import FACE_REASONS
    from pda_data.distribute import EngineError
    from pda_data.faces.models import ModelError
    from pda_data.io.lock import LockError
    from pda_data.io.sources import FolderError, SourceError
    from pda_data.io.table import STATUS_REJECTED, TableError

    options = with_overrides(defaults, **overrides)
    part_t = parse_part(part)
    unreadable: list[str] = []

    def warn(message: object) -> None:  # the console prints above a running progress bar
        console.print(f"[yellow]warning:[/] {esc(message)}", soft_wrap=True, highlight=False)

    def on_folder_error(err: FolderError) -> None:  # reported by the counting walk, so once per folder
        unreadable.append(err.folder)
        warn(err)

    try:
        total = count_items(inputs, hf, part_t, out=out, on_folder_error=on_folder_error)
        with progress_bar(console, unit="img") as progress:
            task = progress.add_task(title, total=total)

            def on_item(rows: list[dict]) -> None:
                progress.advance(task)
                for row in rows:
                    if row["status"] == STATUS_REJECTED and row["reason"] not in FACE_REASONS:
                        warn(row["detail"] or row["source"])

            summary = run_curation(inputs, out, options, engine=engine, part=part_t, hf=hf, sheets=sheets,
                                   on_item=on_item)
    except (SourceError, ModelError, TableError, LockError, EngineError) as err:
        raise fail(str(err)) from err
    except OSError as exc:  # a full, read-only or invalid output: every finished input is kept for a rerun
        raise fail(os_error_line(exc), FAILED) from exc
    except KeyboardInterrupt as exc:
        console.print(f"interrupted: finished inputs are saved in {esc(out)}; rerun the same command to "
                      "resume", highlight=False)
        raise typer.Exit(130) from exc
    print_summary(summary, title, len(unreadable))


def _command(defaults: CurateOptions, title: str, help_text: str) -> Callable[..., None]:
    d = defaults
    detector_default = DetectorChoice[d.detector]
    fallback_default = DetectorChoice[d.fallback_detector] if d.fallback_detector else None
    faces_default = FacesChoice(d.faces)
    format_default = ImageFormatChoice[d.image_format]

    def command(
        inputs: Annotated[list[str], typer.Argument(
            help="Image files, folders (recursive), .txt/.lst path lists, saved Hugging Face data sets, "
                 "or hf://owner/name (needs network).", show_default=False)],
        out: Annotated[Path, typer.Option(
            "--out", "-o", help="Output folder (images/, manifest.parquet, sheets). Rerunning with the same "
                                "folder resumes.")],
        detector: Annotated[DetectorChoice, typer.Option(help="Face detector.")] = detector_default,
        fallback_detector: Annotated[DetectorChoice | None, typer.Option(
            help="Second detector; its faces that no first-detector face overlaps are added.")] = (
            fallback_default),
        no_fallback: Annotated[bool, typer.Option(
            "--no-fallback", help="Use the first detector only.")] = False,
        cascade: Annotated[Path | None, typer.Option(
            help="lbpcascade_animeface.xml for anime-lbp (default: $PDA_ANIME_CASCADE, the cache, or a "
                 "sha256-checked download).")] = None,
        faces: Annotated[FacesChoice, typer.Option(help="Faces per photo: the largest only, or all.")] = (
            faces_default),
        min_face: Annotated[float, typer.Option(
            min=1.0,
            help="Minimum face size in pixels (side of the landmarks' bounding square, brows to chin).")] = (
            d.min_face),
        max_yaw: Annotated[float, typer.Option(
            min=0.0, max=180.0, help="Largest |yaw| (left-right turn) kept, degrees.")] = (
            d.max_yaw),
        max_pitch: Annotated[float, typer.Option(
            min=0.0, max=180.0, help="Largest |pitch| (up-down tilt) kept, degrees.")] = (
            d.max_pitch),
        max_roll: Annotated[float, typer.Option(
            min=0.0, max=180.0, help="Largest |roll| (in-plane tilt) kept, degrees.")] = (
            d.max_roll),
        margin: Annotated[float, typer.Option(
            min=0.0,
            help="Crop margin on each side, as a fraction of the face size (0.5 holds the hair).")] = (
            d.margin),
        size: Annotated[int, typer.Option(min=8, help="Output crop side in pixels.")] = d.size,
        align: Annotated[bool, typer.Option(help="Rotate crops so the eyes are level.")] = d.align,
        image_format: Annotated[ImageFormatChoice, typer.Option(help="Crop file format.")] = format_default,
        quality: Annotated[int, typer.Option(
            min=1, max=100, help="JPEG quality (with --image-format jpg).")] = d.quality,
        dedup: Annotated[bool, typer.Option(help="Drop near-duplicate crops (perceptual hash).")] = d.dedup,
        hamming: Annotated[int, typer.Option(
            min=0, max=64,
            help="Near-duplicate threshold: whose 64-bit pHashes differ in at most this many bits.")] = (
            d.hamming),
        workers: Workers = 1,
        engine: EngineOption = EngineChoice.local,
        concurrency: Concurrency = None,
        ray_address: RayAddress = RAY_LOCAL,
        part: Annotated[str | None, typer.Option(
            help="Process only part i of N (1-based, e.g. 2/4): a fixed split by each input's stable id "
                 "(its path inside the input folder), equal on every machine; join the part folders with "
                 "merge-manifests.")] = None,
        hf_split: Annotated[str, typer.Option(help="Split of a Hugging Face data set input.")] = "train",
        hf_image_column: Annotated[str, typer.Option(
            help="Image column of a Hugging Face data set input.")] = "image",
        sheets: Annotated[bool, typer.Option(
            help="Write contact_sheet.jpg (kept, with landmarks) and rejects_sheet.jpg.")] = True,
    ) -> None:
        from pda_data.io.sources import HFOptions  # reads images: cv2, not needed for --help

        chosen = make_engine(engine, workers, concurrency, ray_address)
        _run(defaults, title, inputs, out, chosen, part, HFOptions(hf_split, hf_image_column), sheets,
             detector=detector.value,
             fallback_detector="" if no_fallback or fallback_detector is None else fallback_detector.value,
             cascade=cascade, faces=faces.value, min_face=min_face, max_yaw=max_yaw, max_pitch=max_pitch,
             max_roll=max_roll, margin=margin, size=size, align=align, image_format=image_format.value,
             quality=quality, dedup=dedup, hamming=hamming)

    command.__doc__ = help_text
    return command


def merge_command(
    parts: Annotated[list[Path], typer.Argument(help="Part output folders (from --part i/N runs).",
                                                show_default=False)],
    out: Annotated[Path, typer.Option("--out", "-o", help="Merged output folder.")],
    dedup: Annotated[bool, typer.Option(help="Drop near-duplicates across parts (first key wins).")] = True,
    hamming: Annotated[int, typer.Option(
        min=0, max=64, help="Near-duplicate threshold in bits.")] = HUMAN_DEFAULTS.hamming,
    sheets: Annotated[bool, typer.Option(help="Write the contact sheets of the merged folder.")] = True,
) -> None:
    """Join the output folders of several --part runs into one manifest and image folder."""
    from pda_data.curation.merge import merge_manifests
    from pda_data.io.lock import LockError
    from pda_data.io.table import TableError

    try:
        summary = merge_manifests(parts, out, dedup=dedup, hamming=hamming, sheets=sheets)
    except (TableError, LockError) as err:
        raise fail(str(err)) from err
    except OSError as exc:
        raise fail(os_error_line(exc), FAILED) from exc
    print_summary(summary, "merge-manifests")


def register(app: typer.Typer) -> None:
    app.command("crop-cosers")(_command(
        COSER_DEFAULTS, "crop-cosers",
        "Crop coser head portraits from raw photos (anime-lbp detector as in the paper; dlib-hog fallback)."))
    app.command("crop-humans")(_command(
        HUMAN_DEFAULTS, "crop-humans", "Crop human head portraits from raw photos (dlib-hog detector)."))
    app.command("merge-manifests")(merge_command)
