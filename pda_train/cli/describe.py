"""``pda-train describe``: every network of a preset with its size and its training-step memory."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from pda_data.cli.options import err_console, fail
from pda_train.cli.run import AmpChoice, DeviceChoice, DeviceOption
from pda_train.config import DEFAULT_PRESET, PRESETS, ConfigError, get_preset

_DESCRIBE_HELP = (
    "Print each network of PRESET: parameters, gradient and Adam state, forward passes in one end-to-end "
    "training step and the activations they keep, and the step's peak memory at --batch-size.\n\n"
    "By default the peak is measured: one real joint training step (stages 2/3: every generator, the "
    "warp, the discriminator and generator updates, the trainer's Adam) runs at batch 1 (and 2, to scale "
    "linearly to larger batches) under --amp and --checkpoint-blocks. On CUDA it reads "
    "torch.cuda.max_memory_allocated; on the CPU the peak of live tensor bytes (a dispatch-mode tracker). "
    "The paper preset at 256 px takes minutes and about 16 GiB of RAM on the CPU. --no-measure traces the "
    "model on PyTorch's meta device instead (seconds, fp32 activations, no peak)."
)


def _mib(n_bytes: float) -> str:
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
    amp: Annotated[AmpChoice, typer.Option("--amp", help="Mixed precision of the measured step.")] = (
        AmpChoice.off
    ),
    checkpoint_blocks: Annotated[
        bool,
        typer.Option("--checkpoint-blocks", help="Measure with activation checkpointing of the PSN blocks."),
    ] = False,
    device: DeviceOption = DeviceChoice.auto,
    measure: Annotated[
        bool, typer.Option("--measure/--no-measure", help="Measure a real step (default) or only trace.")
    ] = True,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON object instead of the table.")
    ] = False,
) -> None:
    from pda_train.manifest import load_experiment
    from pda_train.nets.summary import summarize
    from pda_train.training.memory import describe_memory
    from pda_train.training.runtime import init_runtime

    try:
        config = load_experiment(manifest).preset if manifest else get_preset(preset)
    except ConfigError as err:  # ExperimentError is one
        raise typer.BadParameter(str(err), param_hint="--manifest" if manifest else "--preset") from None
    batch = batch_size or config.schedule.batch_size
    rows = summarize(config, batch)
    rt = None
    if measure:
        try:
            rt = init_runtime(device.value, amp.value, checkpoint_blocks=checkpoint_blocks)
        except (ValueError, RuntimeError) as exc:
            raise fail(str(exc)) from None
        if not as_json:
            err_console.print(f"measuring one training step on {rt.device} ...", highlight=False)
    report = describe_memory(config, rows, batch, rt)
    if as_json:
        print(json.dumps(report))
        return
    m = config.model
    table = Table(
        title=f"preset {config.name}: {m.image_size}x{m.image_size}, batch {batch}, "
        f"PSN {m.psn_channels} ch x {m.psn_blocks}+{m.psn_blocks} blocks "
        f"({'light' if m.psn_light else 'full'}), "
        f"LDN {'off' if not m.use_ldn else m.landmark_set}; memory in MiB"
    )
    for column in ("network", "params", "weights", "grad+Adam", "passes", "activations", "sum"):
        table.add_column(column, justify="left" if column == "network" else "right", no_wrap=True)
    for row in [*report["networks"], report["total"]]:
        table.add_row(
            row["name"],
            f"{row['parameters']:,}",
            _mib(row["weight_bytes"]),
            _mib(row["grad_bytes"] + row["optimizer_bytes"]),
            str(row["calls"]) if row["calls"] else "",
            _mib(row["activation_bytes"]),
            _mib(row["total_bytes"]),
            style="bold" if row is report["total"] else None,
        )
    console = Console()
    console.print(table)
    console.print(report["note"], highlight=False)
    if report["peak_bytes"] is not None:
        console.print(
            f"peak training memory at batch {batch}: {report['peak_gib']:.2f} GiB "
            f"({report['estimate']})",
            highlight=False,
        )


def register(app: typer.Typer) -> None:
    """Add ``describe`` to the ``pda-train`` application."""
    app.command("describe", help=_DESCRIBE_HELP)(describe)
