"""``pda-data landmarks train-predictor``, and the predictor loading that ``bootstrap`` and ``check`` share.

Thin: options in, :mod:`pda_data.annotations.predictor.train` called, the held-out NME table out.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from pda_data.annotations.predictor import (
    DEFAULT_BATCH,
    DEFAULT_EPOCHS,
    DEFAULT_SIZE,
    DEFAULT_VAL_FRACTION,
    DEFAULT_WIDTH,
)
from pda_data.cli.options import FAILED, Seed, esc, fail
from pda_data.cli.options import err_console as console
from pda_data.cli.progress import progress_bar

if TYPE_CHECKING:
    from pda_data.annotations.predictor.model import LandmarkPredictor

PredictorOption = Annotated[
    Path | None,
    typer.Option(help="Trained landmark predictor (PREDICTOR.safetensors + its .json, by train-predictor)."),
]


def load_or_fail(path: Path) -> LandmarkPredictor:
    """The predictor at ``path``, or a one-line error (exit 2)."""
    from pda_data.annotations.predictor.model import PredictorError, load_predictor

    try:
        return load_predictor(path)
    except PredictorError as exc:
        raise fail(str(exc)) from exc


def train_predictor_cmd(
    annotations: Annotated[Path, typer.Argument(help="Canonical annotation file (Parquet) to learn from.")],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Predictor to write: OUT (.safetensors) and OUT's .json.")
    ],
    epochs: Annotated[int, typer.Option(help="Passes over the training portraits.", min=1)] = DEFAULT_EPOCHS,
    size: Annotated[
        int, typer.Option(help="Face crop side in pixels (a multiple of 16).", min=32)
    ] = DEFAULT_SIZE,
    width: Annotated[
        int, typer.Option(help="Network width (channels of its first layer).", min=4)
    ] = DEFAULT_WIDTH,
    batch: Annotated[int, typer.Option(help="Portraits per step.", min=2)] = DEFAULT_BATCH,
    val_fraction: Annotated[
        float, typer.Option(help="Share of the portraits held out for the NME report.", min=0.0, max=0.5)
    ] = DEFAULT_VAL_FRACTION,
    seed: Seed = 0,
) -> None:
    """Train a 56-point heatmap predictor on annotated portraits; report its NME on a held-out split.

    NME is the mean point error divided by the inter-ocular distance, per landmark group and overall.
    """
    import numpy as np

    from pda_data.annotations.predictor.augment import MissingExtra
    from pda_data.annotations.predictor.model import PredictorConfig, save_predictor
    from pda_data.annotations.predictor.train import TrainOptions, train_predictor
    from pda_data.annotations.table import AnnotationError, points_array, read_annotations
    from pda_data.io.images import ImageError, load_image

    if size % 16:
        raise fail(f"--size {size}: needs a multiple of 16")
    try:
        df = read_annotations(annotations)
    except AnnotationError as exc:
        raise fail(str(exc)) from exc
    images, keep = [], []
    for i, path in enumerate(df["path"]):
        try:
            images.append(load_image(path))
            keep.append(i)
        except ImageError as exc:
            console.print(f"[yellow]skipped[/yellow] {esc(exc)}", highlight=False)
    if len(images) < 2:
        raise fail(f"{annotations}: {len(images)} readable portrait(s); training needs at least 2", FAILED)
    options = TrainOptions(epochs=epochs, batch=batch, val_fraction=val_fraction, seed=seed)
    config = PredictorConfig(size=size, width=width)
    try:
        with progress_bar(console, unit="epoch") as bar:
            task = bar.add_task("train", total=epochs)
            result = train_predictor(
                images, points_array(df)[np.asarray(keep)], config, options,
                on_epoch=lambda e, loss: bar.update(task, advance=1, description=f"train (loss {loss:.4f})"),
            )
    except MissingExtra as exc:
        raise fail(str(exc)) from exc
    held_out = [str(df["key"].iloc[keep[i]]) for i in result.val_index]
    save_predictor(result.predictor, out, {
        "train": {"annotations": str(annotations.resolve()), "portraits": len(images), "epochs": epochs,
                  "batch": batch, "seed": seed, "held_out": held_out, "final_loss": result.losses[-1]},
        "held_out_nme": result.report,
    })
    if result.report:
        table = Table(title=esc(f"held-out NME ({len(held_out)} portrait(s)), inter-ocular distances"))
        table.add_column("group")
        table.add_column("NME", justify="right")
        for group, value in result.report.items():
            table.add_row(group, f"{value:.4f}")
        console.print(table)
    console.print(
        esc(f"{len(images) - len(held_out)} portrait(s) trained, {len(held_out)} held out -> {out}"),
        highlight=False,
    )
