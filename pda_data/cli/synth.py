"""``pda-data synth-structure``, ``synth-highlights``, ``synth-aug``: over :mod:`pda_data.synthesis.jobs`."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from pda_data.cli.options import (
    FAILED,
    RAY_LOCAL,
    Concurrency,
    EngineChoice,
    EngineOption,
    RayAddress,
    Seed,
    Workers,
    esc,
    fail,
    make_engine,
    os_error_line,
)
from pda_data.cli.options import err_console as console
from pda_data.cli.progress import progress_bar
from pda_data.synthesis.options import ABNORMAL_KINDS, DEFAULT_FUSION, DEFAULT_LEVELS, FusionOptions, Levels

if TYPE_CHECKING:
    from pda_data.distribute import Engine
    from pda_data.synthesis.jobs import SynthSummary
    from pda_data.synthesis.tasks import Face, Task

_SHOWN_PROBLEMS = 10

FUSION = DEFAULT_FUSION
Out = Annotated[
    Path,
    typer.Option(
        "--out",
        "-o",
        help="Output folder: images/, manifest.parquet, contact_sheet.jpg. Rerunning the same command "
        "resumes.",
    ),
]
Count = Annotated[int, typer.Option("--n", min=1, help="Number of samples to make.")]
SheetRows = Annotated[
    int, typer.Option(min=0, help="Samples shown in contact_sheet.jpg (input | mask | result).")
]
AnimeFile = Annotated[
    Path,
    typer.Option(help="Anime annotation file (Parquet from `pda-data landmarks import`, ANIME56 points)."),
]
HumansDir = Annotated[
    Path, typer.Option(help="Curated human portrait folder (`pda-data crop-humans` output).")
]
Legit = Annotated[
    float, typer.Option(min=0.0, max=1.0, help="Fraction of legit (label 1, unchanged) samples.")
]


def _anime_faces(path: Path) -> list[Face]:
    """The faces of an anime annotation file; a bad file ends the run with one line."""
    from pda_data.io.table import TableError
    from pda_data.synthesis.tasks import load_anime_faces

    try:
        faces = load_anime_faces(path)
    except TableError as err:
        raise fail(str(err)) from err
    return _some(faces, path, "anime")


def _portrait_faces(path: Path, what: str) -> list[Face]:
    """The usable kept faces of a curated folder; unusable rows are listed and left out."""
    from pda_data.io.table import TableError
    from pda_data.synthesis.tasks import load_portrait_faces

    try:
        faces, problems = load_portrait_faces(path)
    except TableError as err:
        raise fail(str(err)) from err
    for line in problems[:_SHOWN_PROBLEMS]:
        console.print(f"[yellow]skipped {what}:[/] {esc(f'{path}: {line}')}", highlight=False)
    if len(problems) > _SHOWN_PROBLEMS:
        console.print(f"[yellow]... and {len(problems) - _SHOWN_PROBLEMS} more unusable {what} rows")
    return _some(faces, path, what)


def _some(faces: list[Face], path: Path, what: str) -> list[Face]:
    if not faces:
        raise fail(f"{path}: no usable {what} faces")
    return faces


def _execute(job: str, title: str, tasks: Sequence[Task], out: Path, engine: Engine) -> None:
    from pda_data.distribute import EngineError
    from pda_data.io.lock import LockError
    from pda_data.synthesis.jobs import run_synth

    try:
        with progress_bar(console, unit="sample") as progress:
            bar = progress.add_task(title, total=len(tasks))
            summary = run_synth(job, tasks, out, on_progress=lambda n: progress.advance(bar, n),
                                engine=engine)
    except (LockError, EngineError) as err:
        raise fail(str(err)) from err
    except OSError as exc:  # a full, read-only or invalid output: the samples made so far are kept
        raise fail(os_error_line(exc), FAILED) from exc
    except KeyboardInterrupt as exc:
        console.print(f"interrupted: rerun the same command to resume from the last checkpoint in {esc(out)}",
                      highlight=False)
        raise typer.Exit(130) from exc
    _print_summary(summary, title, out)


def _print_summary(summary: SynthSummary, title: str, out: Path) -> None:
    from pda_data.io.table import MANIFEST_NAME
    from pda_data.synthesis.jobs import SHEET_NAME

    table = Table(title=title)
    table.add_column("")
    table.add_column("count", justify="right")
    table.add_row("samples", str(summary.total))
    table.add_row("[green]kept", f"[green]{summary.kept}")
    table.add_row("  reused from an earlier run", str(summary.reused))
    for kind, n in sorted(summary.by_kind.items()):
        table.add_row(f"  kind: {kind}", str(n))
    for reason, n in sorted(summary.rejected.items()):
        table.add_row(f"[yellow]bad pair: {esc(reason)}", f"[yellow]{n}")
    console.print(table)
    for line in summary.problems[:_SHOWN_PROBLEMS]:
        console.print(f"[yellow]warning:[/] {esc(line)}", soft_wrap=True, highlight=False)
    sheet = f"   contact sheet: {out / SHEET_NAME}" if (out / SHEET_NAME).is_file() else ""
    console.print(esc(f"manifest: {out / MANIFEST_NAME}{sheet}"), highlight=False)


def synth_structure(
    anime: AnimeFile,
    out: Out,
    n: Count = 1000,
    seed: Seed = 0,
    workers: Workers = 1,
    engine: EngineOption = EngineChoice.local,
    concurrency: Concurrency = None,
    ray_address: RayAddress = RAY_LOCAL,
    legit_fraction: Legit = 0.5,
    kinds: Annotated[
        str, typer.Option(help=f"Comma-separated abnormal kinds to draw from ({', '.join(ABNORMAL_KINDS)}).")
    ] = ",".join(ABNORMAL_KINDS),
    margin: Annotated[
        float, typer.Option(min=0.0, help="Grow a cut eye/mouth region by this fraction of its size.")
    ] = 0.15,
    feather: Annotated[
        float, typer.Option(min=0.0, help="Soft edge of pasted/filled regions: Gaussian sigma in pixels.")
    ] = 1.5,
    sheet_rows: SheetRows = 8,
) -> None:
    """Legit and abnormal anime faces (Fig. 5) for the face structure classifier.

    Abnormal kinds: eye_pasted (a third eye), eye_removed, mouth_removed, eye_moved, mouth_moved. Each row
    records the visible eye centres and mouth corners (structure_points) and their heatmap channel.
    """
    runner = make_engine(engine, workers, concurrency, ray_address)
    chosen = [k.strip() for k in kinds.split(",") if k.strip()]
    unknown = sorted(set(chosen) - set(ABNORMAL_KINDS))
    if unknown or not chosen:
        raise typer.BadParameter(f"unknown kind(s) {unknown}; choose from {', '.join(ABNORMAL_KINDS)}")
    from pda_data.synthesis.tasks import plan_structure

    faces = _anime_faces(anime)
    options = {"margin": margin, "feather": feather}
    tasks = plan_structure(faces, n, seed, legit_fraction, chosen, options, sheet_rows)
    _execute("structure", "synth-structure", tasks, out, runner)


def synth_highlights(
    humans: HumansDir,
    anime: AnimeFile,
    out: Out,
    n: Count = 1000,
    seed: Seed = 0,
    workers: Workers = 1,
    engine: EngineOption = EngineChoice.local,
    concurrency: Concurrency = None,
    ray_address: RayAddress = RAY_LOCAL,
    legit_fraction: Legit = 0.5,
    black: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Levels input black point (0-1): darker values become 0.")
    ] = DEFAULT_LEVELS.black,
    white: Annotated[
        float,
        typer.Option(min=0.0, max=1.0, help="Levels input white point (0-1): brighter values become 1.")
    ] = DEFAULT_LEVELS.white,
    gamma: Annotated[
        float, typer.Option(min=0.001, help="Levels midtone gamma (>1 brightens the midtones).")
    ] = DEFAULT_LEVELS.gamma,
    threshold: Annotated[
        float,
        typer.Option(min=0.0, max=1.0, help="Luminance (0-1, after levels) from which a pixel is lit."),
    ] = DEFAULT_LEVELS.threshold,
    min_coverage: Annotated[
        float,
        typer.Option(
            min=0.0, max=1.0, help="Reject pairs whose highlights cover less than this share of the face."
        ),
    ] = 0.01,
    feather: Annotated[
        float, typer.Option(min=0.0, help="Soft edge of the warped highlight mask: Gaussian sigma in pixels.")
    ] = 1.0,
    sheet_rows: SheetRows = 8,
) -> None:
    """Anime faces with human highlight artifacts (Fig. 7) for the highlight classifier.

    Highlights of a human crop (levels + threshold, forehead excluded) are warped onto a random anime face
    through the human-68 to anime-56 triangulation and max-blended inside the anime face mask. Writes the
    warped highlight mask of each sample to masks/.
    """
    runner = make_engine(engine, workers, concurrency, ray_address)
    try:
        levels = Levels(black=black, white=white, gamma=gamma, threshold=threshold)
    except ValueError as err:
        raise typer.BadParameter(str(err)) from err
    from pda_data.synthesis.tasks import plan_highlights

    human_faces = _portrait_faces(humans, "human")
    anime_faces = _anime_faces(anime)
    options = {"levels": levels, "feather": feather, "min_coverage": min_coverage}
    tasks = plan_highlights(human_faces, anime_faces, n, seed, legit_fraction, options, sheet_rows)
    _execute("highlight", "synth-highlights", tasks, out, runner)


def synth_aug(
    humans: HumansDir,
    cosers: Annotated[
        Path, typer.Option(help="Curated coser portrait folder (`pda-data crop-cosers` output).")
    ],
    out: Out,
    n: Count = 200,
    seed: Seed = 0,
    workers: Workers = 1,
    engine: EngineOption = EngineChoice.local,
    concurrency: Concurrency = None,
    ray_address: RayAddress = RAY_LOCAL,
    grid: Annotated[
        int, typer.Option(min=2, help="TPS evaluation grid (fast path); larger is more exact.")
    ] = FUSION.grid,
    colour_match: Annotated[
        bool, typer.Option(help="Match the human skin colour to the coser face (Lab mean/std).")
    ] = True,
    colour_min: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Lowest random colour-match strength.")
    ] = FUSION.colour_strength[0],
    colour_max: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Highest random colour-match strength.")
    ] = FUSION.colour_strength[1],
    feather_min: Annotated[
        float,
        typer.Option(min=0.0, help="Lowest seam feather: Gaussian sigma / brow-to-chin distance."),
    ] = FUSION.feather[0],
    feather_max: Annotated[
        float, typer.Option(min=0.0, help="Highest seam feather (same unit).")
    ] = FUSION.feather[1],
    sheet_rows: SheetRows = 8,
) -> None:
    """Offline Aug-Portrait samples (Fig. 8) for inspection: human faces TPS-warped into coser faces.

    The trainer makes these on the fly with the same function (pda_data.synthesis.augportrait.fuse); the fused
    image's landmarks are the coser's (manifest column landmarks, HUMAN68).
    """
    runner = make_engine(engine, workers, concurrency, ray_address)
    if colour_min > colour_max or feather_min > feather_max:
        raise typer.BadParameter("each --*-min must not exceed its --*-max")
    from pda_data.synthesis.tasks import plan_aug

    human_faces = _portrait_faces(humans, "human")
    coser_faces = _portrait_faces(cosers, "coser")
    strength = (colour_min, colour_max) if colour_match else (0.0, 0.0)
    fusion = FusionOptions(grid=grid, colour_strength=strength, feather=(feather_min, feather_max))
    tasks = plan_aug(human_faces, coser_faces, n, seed, dataclasses.asdict(fusion), sheet_rows)
    _execute("aug", "synth-aug", tasks, out, runner)


def register(app: typer.Typer) -> None:
    """Add the three synthesis commands to ``app``."""
    app.command("synth-structure")(synth_structure)
    app.command("synth-highlights")(synth_highlights)
    app.command("synth-aug")(synth_aug)
