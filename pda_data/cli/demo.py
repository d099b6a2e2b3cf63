"""``pda-data demo --out OUT``: generate the embedded smoke-test world (over :mod:`pda_data.demo.writer`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from pda_data.cli.options import Seed, esc, fail
from pda_data.cli.options import err_console as console
from pda_data.cli.progress import progress_bar
from pda_data.demo.config import DemoConfig

DEFAULTS = DemoConfig()


def demo(
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Folder to create the demo world in (created if missing).")
    ],
    seed: Seed = 0,
    n_cosers: Annotated[
        int, typer.Option(help="Raw coser photos (640x480, 1-3 faces each).", min=0)
    ] = DEFAULTS.n_cosers,
    n_humans: Annotated[
        int, typer.Option(help="Human portrait crops (256x256).", min=0)
    ] = DEFAULTS.n_humans,
    n_anime: Annotated[
        int, typer.Option(help="Procedural anime portraits (256x256) with 56 landmarks.", min=0)
    ] = DEFAULTS.n_anime,
    verify: Annotated[
        bool,
        typer.Option(
            help="Re-detect every face with dlib and retry a photo until the recorded outcome holds."
        ),
    ] = DEFAULTS.verify,
    cascade: Annotated[
        Path | None,
        typer.Option(
            help="Anime-face LBP cascade; when given, demo_truth.json records whether it finds each face."
        ),
    ] = None,
) -> None:
    """Generate the small offline demo world (a smoke-test data set, not training data).

    Raw coser photos (with turned, tiny and corrupt inputs), human portraits, procedural anime portraits with
    a CVAT landmark file, and demo_truth.json. Faces derive from skimage's astronaut portrait.
    """
    from pda_data.demo.writer import ANNOTATIONS_NAME, TRUTH_NAME, write_demo
    from pda_data.faces.models import ModelError

    config = DemoConfig(seed=seed, n_cosers=n_cosers, n_humans=n_humans, n_anime=n_anime, verify=verify)
    total = n_cosers + n_humans + n_anime
    try:
        with progress_bar(console, unit="file") as bar:
            task = bar.add_task("demo world", total=total)
            truth = write_demo(out, config, cascade=cascade, progress=lambda _name: bar.advance(task))
    except ModelError as exc:
        raise fail(str(exc)) from exc
    faces = [f for photo in truth["cosers"] for f in photo["faces"]]
    table = Table(title=f"demo world in {esc(out)}")
    table.add_column("part")
    table.add_column("files", justify="right")
    table.add_column("notes")
    kinds = {k: sum(f["kind"] == k for f in faces) for k in ("frontal", "turned", "small")}
    table.add_row(
        "raw_cosers",
        str(len(truth["cosers"])),
        f"{len(faces)} faces: {kinds['frontal']} frontal, {kinds['turned']} turned, "
        f"{kinds['small']} too small",
    )
    table.add_row(
        "raw_cosers (corrupt)",
        str(len(truth["corrupt"])),
        ", ".join(c["expected_reason"] for c in truth["corrupt"]),
    )
    table.add_row("humans", str(len(truth["humans"])), "256x256 crops")
    table.add_row("anime", str(len(truth["anime"])), f"256x256, landmarks in {ANNOTATIONS_NAME}")
    if verify:
        unverified = sum(not f["verified"] for f in faces) + sum(not h["verified"] for h in truth["humans"])
        table.add_row(
            "verified", "", f"{unverified} face(s) where dlib disagrees with the plan (see {TRUTH_NAME})"
        )
    console.print(table)


def register(app: typer.Typer) -> None:
    """Add ``demo`` to the ``pda-data`` app."""
    app.command("demo")(demo)
