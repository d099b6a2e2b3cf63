"""What runs the translator chain on a batch: PyTorch or onnxruntime, behind one call on numpy arrays.

PyTorch runs an exported ``.safetensors`` model, onnxruntime a ``.onnx`` graph of ``pda-train export``.

A backend takes portraits (B, 3, S, S) float32 in [-1, 1] and their HUMAN68 landmarks (B, 68, 2) float32
in [-1, 1] and returns (anime, LDN-warped portrait), both (B, 3, S, S) float32 in [-1, 1]. The ONNX backend
never imports torch; ``settings`` is the model's config (the ``.json`` beside a ``.safetensors`` file, the
metadata of an ``.onnx`` file).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

import numpy as np

if TYPE_CHECKING:
    from torch import nn

BackendName = Literal["torch", "onnx"]
BACKENDS: tuple[str, ...] = ("torch", "onnx")
ONNX_CONFIG_KEY = "pda-translator"  # metadata key of the model config in an exported .onnx file


class Backend(Protocol):
    name: str
    image_size: int
    settings: dict[str, Any]

    def __call__(self, portraits: np.ndarray, landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...


class TorchBackend:
    """A :class:`~pda_train.inference.export.Translator` (or a module with its call) on its device."""

    name = "torch"

    def __init__(self, model: nn.Module, settings: dict[str, Any] | None = None) -> None:
        self.model = model
        self.image_size: int = model.image_size
        cfg = getattr(model, "cfg", None)
        self.settings = settings or ({"model": dataclasses.asdict(cfg)} if cfg is not None else {})

    def __call__(self, portraits: np.ndarray, landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        import torch

        device = next(self.model.parameters()).device
        with torch.no_grad():
            anime, warped, _ = self.model(
                torch.from_numpy(portraits).to(device), torch.from_numpy(landmarks).to(device)
            )
        return anime.float().cpu().numpy(), warped.float().cpu().numpy()


class OnnxBackend:
    """An exported ``.onnx`` translator graph in an onnxruntime CPU session."""

    name = "onnx"

    def __init__(self, path: str | Path, threads: int = 0) -> None:
        from pda_train.inference.export import ExportError

        try:
            import onnxruntime as ort
        except ImportError:
            raise ExportError("the onnx backend needs onnxruntime: pip install 'pda-toolkit[onnx]'") from None
        p = Path(path)
        if not p.is_file():
            raise ExportError(f"{p}: no such model file")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(str(p), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own untyped errors for a bad file
            raise ExportError(f"{p}: not a loadable ONNX model ({str(exc).splitlines()[0]})") from None
        meta = self.session.get_modelmeta().custom_metadata_map
        if ONNX_CONFIG_KEY not in meta:
            raise ExportError(f"{p}: no {ONNX_CONFIG_KEY} config in its metadata (not made by export --onnx)")
        self.settings = json.loads(meta[ONNX_CONFIG_KEY])
        self.image_size = int(self.settings["model"]["image_size"])

    def __call__(self, portraits: np.ndarray, landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        anime, warped = self.session.run(["anime", "warped"], {"portrait": portraits, "landmarks": landmarks})
        return anime, warped


def load_backend(model: str | Path, backend: BackendName = "torch", device: str = "auto",
                 threads: int = 0) -> Backend:
    """The backend for ``model``: a ``.safetensors`` translator on ``device`` (auto, cpu, cuda) for torch,
    an ``.onnx`` graph for onnx. Raises :class:`~pda_train.inference.export.ExportError` for a bad file."""
    if backend == "onnx":
        return OnnxBackend(model, threads)
    from pda_train.inference.export import load_translator, read_translator_config
    from pda_train.training.runtime import select_device

    return TorchBackend(load_translator(model, select_device(device)), read_translator_config(model))


def as_backend(model: Backend | nn.Module) -> Backend:
    """``model`` itself if it is a backend, else a torch module wrapped in :class:`TorchBackend`."""
    return model if hasattr(model, "settings") else TorchBackend(model)  # type: ignore[return-value]
