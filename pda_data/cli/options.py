"""Option types and the error exit shared by every command of ``pda-data`` and ``pda-train``.

The same concept has one option name, unit and range everywhere; choices come from light modules, so the
help of any command renders without importing torch, cv2, dlib or datasets.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from pda_data.faces.detection import DETECTORS
from pda_data.shards.names import IMAGE_FORMATS, ROLES, SPLITS

# Errors and progress go to stderr, one soft-wrapped line per message whatever the terminal width.
err_console = Console(stderr=True, soft_wrap=True)

USAGE, FAILED = 2, 1  # exit statuses: bad arguments or inputs; a run that did not succeed


def choice(name: str, values: tuple[str, ...]) -> type[Enum]:
    """A str Enum of ``values`` for a Typer option (its members are the values themselves)."""
    return Enum(name, {v: v for v in values}, type=str)  # type: ignore[return-value]


DetectorChoice = choice("DetectorChoice", DETECTORS)
ImageFormatChoice = choice("ImageFormatChoice", IMAGE_FORMATS)
RoleChoice = choice("RoleChoice", ROLES)
SplitChoice = choice("SplitChoice", SPLITS)


def fail(message: str, code: int = USAGE) -> typer.Exit:
    """Print ``error: message`` on one soft-wrapped stderr line; return the Exit to raise."""
    err_console.print(f"[red]error:[/red] {message}", highlight=False)
    return typer.Exit(code)


Out = Annotated[Path, typer.Option("--out", "-o", help="Output folder (created if missing).")]
Seed = Annotated[int, typer.Option(help="Random seed; the same seed and inputs give the same result.")]
Workers = Annotated[int, typer.Option(min=1, help="Worker processes (results identical for any number).")]
