"""The ``pda-train`` command line: thin commands over the training library."""

from __future__ import annotations

import importlib

import typer

from pda_data.cli.options import guard_commands

app = typer.Typer(
    name="pda-train",
    help="Train, export, translate with and evaluate the PDA portrait-to-anime model.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)

# Each module registers its commands on ``app``.
_COMMAND_MODULES: tuple[str, ...] = ("describe", "run", "translate")

for _name in _COMMAND_MODULES:
    importlib.import_module(f"pda_train.cli.{_name}").register(app)
guard_commands(app)


def main() -> None:
    """Console-script entry point."""
    app()
