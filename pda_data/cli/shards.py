"""`pda-data pack | verify | inspect | export-hf`: WebDataset shards of the curated and synthetic data."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from pda_data.cli.options import (
    FAILED,
    ImageFormatChoice,
    RoleChoice,
    Seed,
    SplitChoice,
    esc,
    fail,
    os_error_line,
)
from pda_data.cli.options import err_console as err
from pda_data.cli.progress import progress_bar
from pda_data.shards.names import PACK_FLAGS

console = Console()


def pack(
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Shard set folder (created; index.json is rewritten).")
    ],
    cosers: Annotated[Path | None, typer.Option(help="Curated coser folder (crop-cosers output).")] = None,
    humans: Annotated[Path | None, typer.Option(help="Curated human folder (crop-humans output).")] = None,
    anime: Annotated[
        Path | None, typer.Option(help="Anime annotation Parquet (landmarks import output).")
    ] = None,
    structure: Annotated[Path | None, typer.Option(help="Structure-classifier synthesis folder.")] = None,
    highlights: Annotated[Path | None, typer.Option(help="Highlight-classifier synthesis folder.")] = None,
    test_fraction: Annotated[
        float,
        typer.Option(
            min=0.0,
            max=1.0,
            help="Share of keys in the test split, chosen by key hash (stable as data grows); below 1.",
        ),
    ] = 0.1,
    shard_size: Annotated[int, typer.Option(min=1, help="Most samples per shard.")] = 1000,
    max_shard_bytes: Annotated[
        int, typer.Option(min=1, help="Most bytes per shard (default 1 GiB).")
    ] = 1 << 30,
    image_format: Annotated[
        ImageFormatChoice,
        typer.Option(
            help="Image member format: png (lossless; zlib 6 with the fast-decoding 'up' filter) or jpg "
            "(q95 4:4:4: ~3x smaller shards and ~2x faster streams, not lossless)."
        ),
    ] = ImageFormatChoice["png"],
    seed: Annotated[int, typer.Option(help="Seed of the sample shuffle across shards.")] = 0,
) -> None:
    """Pack each given input into train/test WebDataset shards per role and write SHARDS/index.json.

    Roles not given keep their shards and index entries from an earlier pack. Shards are written under a
    temporary name and renamed, so an interrupted pack leaves no partial shard; rerunning is safe. Inputs
    that cannot be used (missing or corrupt image, bad landmarks, duplicate key) are listed and skipped.
    """
    from pda_data.io.lock import LockError
    from pda_data.io.table import TableError
    from pda_data.shards.index import ShardError
    from pda_data.shards.pack import pack as pack_shards

    given = {
        "coser": cosers,
        "human": humans,
        "anime": anime,
        "structure": structure,
        "highlight": highlights,
    }
    sources = {role: path for role, path in given.items() if path is not None}
    if not sources:
        raise fail(
            f"nothing to pack: give at least one of {', '.join(PACK_FLAGS.values())}"
        )
    try:
        with progress_bar(err, transient=True) as progress:
            tasks: dict[str, int] = {}

            def tick(role: str) -> None:
                if role not in tasks:
                    tasks[role] = progress.add_task(f"pack {role}", total=None)
                progress.advance(tasks[role])

            result = pack_shards(
                out,
                sources,
                test_fraction=test_fraction,
                shard_size=shard_size,
                max_shard_bytes=max_shard_bytes,
                image_format=image_format.value,
                seed=seed,
                on_sample=tick,
            )
    except (TableError, ShardError, ValueError, LockError) as exc:
        raise fail(str(exc)) from exc
    except OSError as exc:  # a full, read-only or invalid output: finished shards stay whole
        raise fail(os_error_line(exc), FAILED) from exc
    for problem in result.problems:
        err.print(f"[yellow]skipped[/yellow] {esc(problem)}", highlight=False)
    table = Table(title=f"packed {esc(out)}")
    for col in ("role", "train samples", "train shards", "test samples", "test shards", "skipped"):
        table.add_column(col, justify="left" if col == "role" else "right")
    for role in sources:
        info = result.index["roles"][role]
        sp = info["splits"]
        table.add_row(
            role,
            str(sp["train"]["samples"]),
            str(len(sp["train"]["shards"])),
            str(sp["test"]["samples"]),
            str(len(sp["test"]["shards"])),
            str(info["skipped"]),
        )
    console.print(table)


def verify(
    shards: Annotated[Path, typer.Argument(help="Shard set folder holding index.json.")],
    deep: Annotated[
        bool,
        typer.Option("--deep", help="Also decode every sample and validate its metadata against the schema."),
    ] = False,
) -> None:
    """Check every shard against the index (present, byte size, sha256, sample count); exit 1 on problems."""
    from pda_data.shards.index import ShardError, read_index, shard_entries
    from pda_data.shards.verify import verify as verify_shards

    try:
        with progress_bar(err, transient=True) as progress:
            index = read_index(shards)
            task = progress.add_task("verify", total=len(shard_entries(index)))
            problems, checked = verify_shards(shards, deep=deep, on_shard=lambda _: progress.advance(task))
    except ShardError as exc:
        raise fail(str(exc)) from exc
    for problem in problems:
        err.print(f"[red]problem[/red] {esc(problem)}", highlight=False)
    bad = len({p.where for p in problems})
    mode = "deep" if deep else "index"
    console.print(f"verified ({mode}) {checked} shard(s): {len(problems)} problem(s) in {bad} file(s)")
    if problems:
        raise typer.Exit(FAILED)


def inspect(
    shards: Annotated[Path, typer.Argument(help="Shard set folder holding index.json.")],
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Folder for the contact sheets (default SHARDS/inspect)."),
    ] = None,
    split: Annotated[
        SplitChoice, typer.Option(help="Split to sample for the sheets.")
    ] = SplitChoice["train"],
    count: Annotated[int, typer.Option(min=1, help="Random samples per role sheet.")] = 16,
    seed: Seed = 0,
) -> None:
    """Print the index as a table and write a contact sheet per role (random samples, landmarks drawn)."""
    from pda_data.io.images import save_image
    from pda_data.shards.index import ShardError, read_index
    from pda_data.shards.sampling import random_samples, sample_sheet

    try:
        index = read_index(shards)
    except ShardError as exc:
        raise fail(str(exc)) from exc
    table = Table(title=esc(f"{shards} (schema v{index.get('schema_version')})"))
    for col in ("role", "schema", "format", "split", "shards", "samples", "MiB"):
        table.add_column(col, justify="right" if col in ("shards", "samples", "MiB") else "left")
    for role, info in index["roles"].items():
        for split_name, sp in info["splits"].items():
            mib = sum(e["bytes"] for e in sp["shards"]) / 2**20
            table.add_row(
                role,
                esc(info["schema"]),
                info["image_format"],
                split_name,
                str(len(sp["shards"])),
                str(sp["samples"]),
                f"{mib:.1f}",
            )
    console.print(table)
    folder = out if out is not None else Path(shards) / "inspect"
    written = 0
    for role in index["roles"]:
        try:
            samples, problems = random_samples(shards, role, split=split.value, count=count, seed=seed)
        except ShardError as exc:
            err.print(f"[yellow]no sheet[/yellow] {esc(exc)}", highlight=False)
            continue
        for problem in problems:
            err.print(f"[yellow]skipped[/yellow] {esc(problem)}", highlight=False)
        if not samples:
            err.print(f"[yellow]no sheet[/yellow] {role}: no readable {split.value} sample", highlight=False)
            continue
        save_image(folder / f"{role}.png", sample_sheet(samples))
        console.print(f"wrote {esc(folder / f'{role}.png')}", highlight=False)
        written += 1
    if index["roles"] and not written:
        raise fail(f"{shards}: no sheet written (no readable {split.value} sample in any role)", FAILED)


def export_hf(
    shards: Annotated[Path, typer.Argument(help="Shard set folder holding index.json.")],
    role: Annotated[RoleChoice, typer.Option(help="Role to export.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for datasets.Dataset.save_to_disk.")],
    split: Annotated[SplitChoice, typer.Option(help="Split to export.")] = SplitChoice["train"],
    cache_dir: Annotated[Path | None, typer.Option(help="Hugging Face datasets cache folder.")] = None,
    push_to_hub: Annotated[
        str | None, typer.Option(help="Also push to this Hub repo id (needs network and a token).")
    ] = None,
    token: Annotated[
        str | None, typer.Option(envvar="HF_TOKEN", help="Hub token (default: $HF_TOKEN).")
    ] = None,
) -> None:
    """Save one role's split as a Hugging Face `datasets` dataset on disk (read with load_from_disk)."""
    from pda_data.shards.export import ExportFailed, readable_shards
    from pda_data.shards.export import export_hf as export_dataset
    from pda_data.shards.index import ShardError

    role_name, split_name = role.value, split.value
    try:
        urls, problems = readable_shards(shards, role_name, split_name)
        for problem in problems:
            err.print(f"[yellow]skipped[/yellow] {esc(problem)}", highlight=False)
        if not urls:
            raise fail(f"{shards}: no readable {role_name}/{split_name} shard, nothing exported", FAILED)
        ds = export_dataset(urls, out, split=split_name, cache_dir=cache_dir, offline=push_to_hub is None)
    except ExportFailed as exc:
        raise fail(str(exc), FAILED) from exc
    except ShardError as exc:
        raise fail(str(exc)) from exc
    columns = ", ".join(ds.column_names)
    console.print(esc(f"saved {len(ds)} {role_name}/{split_name} samples to {out} (columns: {columns})"),
                  highlight=False)
    if push_to_hub:
        ds.push_to_hub(push_to_hub, split=split_name, token=token)
        console.print(f"pushed to https://huggingface.co/datasets/{esc(push_to_hub)}")


def register(app: typer.Typer) -> None:
    """Add the shard commands to ``pda-data``."""
    app.command("pack")(pack)
    app.command("verify")(verify)
    app.command("inspect")(inspect)
    app.command("export-hf")(export_hf)
