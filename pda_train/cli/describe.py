"""``pda-train describe``: every network of a preset with its size and one step's activation memory."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from pda_train.config import DEFAULT_PRESET, PRESETS, ConfigError, get_preset


def _mib(n_bytes: int) -> str:
    return f"{n_bytes / 2**20:,.1f}"


def describe(
    preset: Annotated[
        str, typer.Option("--preset", "-p", help=f"Configuration to describe: {', '.join(sorted(PRESETS))}.")
    ] = DEFAULT_PRESET,
    manifest: Annotated[
        Path | None,
        typer.Option("--manifest", "-m", help="Describe this run manifest's preset with its overrides."),
    ] = None,
    batch_size: Annotated[
        int, typer.Option("--batch-size", "-b", min=0, help="Batch size; 0 = the preset's (paper: 1).")
    ] = 0,
) -> None:
    """Print each network of PRESET: parameters, their fp32 size, forward passes in one end-to-end
    training step (generators, Eq. 3 + Eq. 6 generator losses, discriminator losses) and the
    activations those passes keep for the backward pass (fp32, summed leaf-module outputs).

    Nothing is computed: the model is traced on PyTorch's meta device, so the paper's 256x256
    configuration takes a few seconds.
    """
    from pda_train.manifest import load_experiment
    from pda_train.nets.summary import summarize

    try:
        config = load_experiment(manifest).preset if manifest else get_preset(preset)
    except ConfigError as err:  # ExperimentError is one
        raise typer.BadParameter(str(err), param_hint="--manifest" if manifest else "--preset") from None
    rows = summarize(config, batch_size or None)
    batch = batch_size or config.schedule.batch_size
    m = config.model
    table = Table(
        title=f"preset {config.name}: {m.image_size}x{m.image_size}, batch {batch}, "
        f"PSN {m.psn_channels} ch x {m.psn_blocks}+{m.psn_blocks} blocks "
        f"({'light' if m.psn_light else 'full'}), "
        f"LDN {'off' if not m.use_ldn else m.landmark_set}"
    )
    table.add_column("network", no_wrap=True)
    table.add_column("parameters", justify="right")
    table.add_column("weights MiB", justify="right")
    table.add_column("passes/step", justify="right")
    table.add_column("activations MiB/step", justify="right")
    for row in rows:
        table.add_row(
            row.name,
            f"{row.parameters:,}",
            _mib(4 * row.parameters),
            str(row.calls),
            _mib(row.activation_bytes),
        )
    total_params = sum(r.parameters for r in rows)
    total_act = sum(r.activation_bytes for r in rows)
    table.add_row("total", f"{total_params:,}", _mib(4 * total_params), "", _mib(total_act), style="bold")
    Console().print(table)


def register(app: typer.Typer) -> None:
    """Add ``describe`` to the ``pda-train`` application."""
    app.command("describe")(describe)
