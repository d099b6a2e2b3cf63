"""Option types and the error exit shared by every command of ``pda-data`` and ``pda-train``.

The same concept has one option name, unit and range everywhere; choices come from light modules, so the
help of any command renders without importing torch, cv2, dlib or datasets.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from pda_data.distribute import ENGINES, RAY_LOCAL, Engine, EngineError, check_engine
from pda_data.faces.detection import DETECTORS
from pda_data.shards.names import IMAGE_FORMATS, ROLES, SPLITS

# Errors and progress go to stderr, one soft-wrapped line per message whatever the terminal width.
err_console = Console(stderr=True, soft_wrap=True)

USAGE, FAILED = 2, 1  # exit statuses: bad arguments or inputs; a run that did not succeed


def choice(name: str, values: tuple[str, ...]) -> type[Enum]:
    """A str Enum of ``values`` for a Typer option (its members are the values themselves)."""
    return Enum(name, {v: v for v in values}, type=str)  # type: ignore[return-value]


DetectorChoice = choice("DetectorChoice", DETECTORS)
EngineChoice = choice("EngineChoice", ENGINES)
ImageFormatChoice = choice("ImageFormatChoice", IMAGE_FORMATS)
RoleChoice = choice("RoleChoice", ROLES)
SplitChoice = choice("SplitChoice", SPLITS)


# Usage errors (typer.BadParameter and kin) end with click's usage message. Typer 0.29 and newer carry their
# own copy of click, so the base class is taken from typer's exception, not from an installed click.
_CLICK_ERROR = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")
_PASS_THROUGH = (typer.Exit, typer.Abort, _CLICK_ERROR, KeyboardInterrupt)

DEBUG_ENV = "PDA_DEBUG"  # set to 1 to let unexpected exceptions through with their traceback


def esc(value: object) -> str:
    """``value`` as text Rich prints verbatim: file names may hold markup such as ``[red]`` or ``[/]``."""
    return escape(str(value))


def fail(message: str, code: int = USAGE) -> typer.Exit:
    """Print ``error: message`` (escaped) on one soft-wrapped stderr line; return the Exit to raise."""
    err_console.print(f"[red]error:[/red] {esc(message)}", highlight=False)
    return typer.Exit(code)


def os_error_line(exc: OSError) -> str:
    """One line naming the path and the reason of an OS error (``PATH: No space left on device``)."""
    reason = exc.strerror or str(exc)
    where = exc.filename if exc.filename is not None else ""
    return f"{os.fsdecode(where)}: {reason}" if where != "" else reason


def guarded(command: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a command so no traceback reaches the user: an OS error (disk full, permission, not a
    directory) ends it with one line naming the path, exit 1; anything unexpected with one line too
    (``PDA_DEBUG=1`` re-raises it). Exits, usage errors and Ctrl-C pass through unchanged."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except _PASS_THROUGH:
            raise
        except OSError as exc:
            if os.environ.get(DEBUG_ENV):
                raise
            raise fail(os_error_line(exc), FAILED) from exc
        except Exception as exc:  # the last line of defence: a bug must still end in one line
            if os.environ.get(DEBUG_ENV):
                raise
            raise fail(f"internal error: {type(exc).__name__}: {exc} (rerun with {DEBUG_ENV}=1 for the "
                       "traceback and please report it)", FAILED) from exc

    return wrapper


def guard_commands(app: typer.Typer) -> None:
    """Apply :func:`guarded` to every command of ``app`` and of its sub-apps (call after registering)."""
    for info in app.registered_commands:
        if info.callback is not None and not getattr(info.callback, "__wrapped__", None):
            info.callback = guarded(info.callback)
    for group in app.registered_groups:
        if group.typer_instance is not None:
            guard_commands(group.typer_instance)


Out = Annotated[Path, typer.Option("--out", "-o", help="Output folder (created if missing).")]
Seed = Annotated[int, typer.Option(help="Random seed; the same seed and inputs give the same result.")]
Workers = Annotated[int, typer.Option(min=1, help="Worker processes (results identical for any number).")]
EngineOption = Annotated[EngineChoice, typer.Option(  # type: ignore[valid-type]
    "--engine", help="Who does the per-item work: local processes (--workers), or Ray Data actors on this "
                     "machine or a Ray cluster (--concurrency, --ray-address). Results are identical.")]
RayAddress = Annotated[str, typer.Option(
    help=f"With --engine ray: {RAY_LOCAL!r} starts Ray on this machine, 'auto' joins the running cluster "
         "(`ray start --head`), or HOST:PORT. Inputs and --out must be paths every node sees.")]
Concurrency = Annotated[int | None, typer.Option(
    min=1, help="With --engine ray: Ray actors, each loading the models once (default: one per CPU of the "
                "cluster).", show_default=False)]


def make_engine(engine: Enum, workers: int, concurrency: int | None, ray_address: str) -> Engine:
    """The :class:`~pda_data.distribute.Engine` of the engine options, checked now: a wrong combination or
    a missing Ray ends the command with one line (exit 2) before any work."""
    if engine.value == "local" and concurrency is not None:
        raise fail("--concurrency is for --engine ray; the local engine takes --workers")
    if engine.value == "ray" and workers != 1:
        raise fail("--workers is for --engine local; Ray takes --concurrency")
    chosen = Engine(engine.value, (concurrency or 0) if engine.value == "ray" else workers, ray_address)
    try:
        check_engine(chosen)
    except EngineError as err:
        raise fail(str(err)) from err
    return chosen
