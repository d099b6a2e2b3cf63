"""Loading a safetensors weight file into a module, with one-line errors that name the file (shared by the
exported translator and the anime landmark predictor). Import only where torch is already needed."""

from __future__ import annotations

from pathlib import Path

from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn


def load_weights(module: nn.Module, path: Path, error: type[Exception]) -> None:
    """Load the tensors of ``path`` into ``module`` (strict); ``error`` says why a file cannot be used."""
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError) as exc:
        raise error(f"{path}: unreadable safetensors file ({exc})") from exc
    try:
        module.load_state_dict(tensors)
    except RuntimeError as exc:
        raise error(f"{path}: weights do not match the config ({str(exc).splitlines()[0]})") from exc
