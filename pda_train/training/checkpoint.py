"""Training checkpoints: written atomically, read with ``torch.load(weights_only=True)``.

A checkpoint is a plain dictionary of tensors, numbers, strings, lists and dicts (no pickled classes), so
loading never executes code from the file. It holds the stage and step, every model, optimizer, scheduler and
grad-scaler state, the RNG states of torch, CUDA, Python and numpy, and the resolved experiment manifest.
A kill at any moment leaves the previous file intact: the new one is written under a temporary name and
renamed over it.
"""

from __future__ import annotations

import io
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pda_data.io.files import atomic_write_bytes

CHECKPOINT_DIR = "checkpoints"
LAST_NAME = "last.pt"
FORMAT_VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint is missing, truncated or not one of ours."""


def checkpoint_dir(run_dir: str | Path) -> Path:
    return Path(run_dir) / CHECKPOINT_DIR


def last_checkpoint(run_dir: str | Path) -> Path:
    """The rolling checkpoint a ``--resume`` starts from."""
    return checkpoint_dir(run_dir) / LAST_NAME


def stage_checkpoint(run_dir: str | Path, stage: str) -> Path:
    """The checkpoint kept at the end of ``stage``."""
    return checkpoint_dir(run_dir) / f"stage-{stage}.pt"


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """Serialize ``state`` in memory, then write it with a temp-name-and-rename."""
    buf = io.BytesIO()
    torch.save({"format_version": FORMAT_VERSION, **state}, buf)
    atomic_write_bytes(path, buf.getvalue())


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint safely (``weights_only=True``); a bad file raises :class:`CheckpointError`."""
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"{p}: no such checkpoint")
    try:
        state = torch.load(p, map_location=map_location, weights_only=True)
    except Exception as exc:  # zip, pickle and unpickler-allowlist errors have unrelated types
        raise CheckpointError(f"{p}: unreadable checkpoint ({type(exc).__name__}: {exc})") from exc
    if not isinstance(state, dict) or state.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{p}: not a PDA training checkpoint (format {FORMAT_VERSION} expected)")
    return state


def capture_rng(generator: np.random.Generator | None = None) -> dict[str, Any]:
    """Snapshot of every random source a training step draws from."""
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "python": _to_lists(random.getstate()),
        "numpy_global": _to_lists(np.random.get_state(legacy=False)),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    if generator is not None:
        state["numpy"] = generator.bit_generator.state
    return state


def restore_rng(state: dict[str, Any], generator: np.random.Generator | None = None) -> None:
    """Inverse of :func:`capture_rng`."""
    torch.set_rng_state(state["torch"].cpu())
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    np.random.set_state(state["numpy_global"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])
    if generator is not None and "numpy" in state:
        generator.bit_generator.state = state["numpy"]


def _to_lists(value: Any) -> Any:
    """Tuples and numpy arrays to lists, so the RNG states pass the ``weights_only`` unpickler."""
    if isinstance(value, tuple | list):
        return [_to_lists(v) for v in value]
    if isinstance(value, dict):
        return {k: _to_lists(v) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.integer):
        return int(value)
    return value
