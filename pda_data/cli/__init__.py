"""The ``pda-data`` command line: thin commands over the library modules."""

from __future__ import annotations

import importlib

import typer

from pda_data.cli.options import guard_commands

app = typer.Typer(
    name="pda-data",
    help="Curate, annotate, synthesize and shard portrait/anime data for PDA training.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)

# Each module registers its commands on ``app``.
_COMMAND_MODULES: tuple[str, ...] = ("curate", "shards", "demo", "landmarks", "synth")

for _name in _COMMAND_MODULES:
    importlib.import_module(f"pda_data.cli.{_name}").register(app)
guard_commands(app)


def main() -> None:
    """Console-script entry point."""
    app()
