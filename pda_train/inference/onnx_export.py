"""The translator chain (LDN -> TPS warp -> PSN) as one ONNX graph, and its check against PyTorch.

The graph takes ``portrait`` (B, 3, S, S) and ``landmarks`` (B, 68, 2), both float32 in [-1, 1], and
returns ``anime`` and ``warped`` (B, 3, S, S); the batch is dynamic. It is traced from the very
:class:`~pda_train.inference.export.Translator` PyTorch runs (TorchScript exporter, opset
:data:`OPSET`: GridSample needs >= 16). ONNX has no linear solve: while exporting, the thin-plate spline's
system is solved by :func:`pda_data.geometry.warp.gauss_jordan_solve` (Gauss-Jordan with partial
pivoting, unrolled over its columns, in float64 like ``torch.linalg.solve`` in PyTorch), the only change.
The model config (the ``.json`` of the ``.safetensors`` file) is stored in the graph's metadata under
:data:`~pda_train.inference.backends.ONNX_CONFIG_KEY`, which the ONNX backend reads.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from pda_data.io.files import atomic_path
from pda_train.inference.backends import ONNX_CONFIG_KEY, OnnxBackend
from pda_train.inference.export import ExportError, Translator

OPSET = 17


class _Chain(nn.Module):
    """The translator with the two image outputs only (the predicted points are not part of the graph)."""

    def __init__(self, model: Translator) -> None:
        super().__init__()
        self.model = model

    def forward(self, portrait: Tensor, landmarks: Tensor) -> tuple[Tensor, Tensor]:
        anime, warped, _ = self.model(portrait, landmarks)
        return anime, warped


def export_onnx(model: Translator, path: str | Path, config: dict[str, Any]) -> Path:
    """Write ``model`` (on the CPU, eval mode) as an ONNX graph to ``path`` atomically, with ``config``
    (the translator's JSON config) in its metadata. Needs the ``onnx`` package."""
    try:
        import onnx
    except ImportError:
        raise ExportError("export --onnx needs onnx: pip install 'pda-toolkit[onnx]'") from None
    model = model.cpu().eval()
    size = model.image_size
    example = (torch.zeros(2, 3, size, size), torch.zeros(2, 68, 2))
    out = Path(path)
    with atomic_path(out) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer notes
        torch.onnx.export(
            _Chain(model), example, str(tmp), dynamo=False, opset_version=OPSET,
            input_names=["portrait", "landmarks"], output_names=["anime", "warped"],
            dynamic_axes={name: {0: "batch"} for name in ("portrait", "landmarks", "anime", "warped")},
        )
        graph = onnx.load(str(tmp))
        entry = graph.metadata_props.add()
        entry.key, entry.value = ONNX_CONFIG_KEY, json.dumps(config)
        onnx.save(graph, str(tmp))
    return out


def demo_inputs(n: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` demo-world human portraits as translator inputs: (n, 3, S, S) and (n, 68, 2) float32 in
    [-1, 1] (what :func:`max_difference` is checked on)."""
    from pda_data.demo.faces import human_portrait
    from pda_train.inference.translate import to_model_input

    crops, points = zip(*(human_portrait(np.random.default_rng(i), size) for i in range(n)), strict=True)
    return to_model_input(crops, points, size)


def max_difference(model: Translator, path: str | Path, portraits: np.ndarray, landmarks: np.ndarray
                   ) -> float:
    """Largest absolute difference between the PyTorch ``model`` and the ONNX graph at ``path`` over both
    outputs for these inputs ((B, 3, S, S) and (B, 68, 2) float32 in [-1, 1])."""
    onnx_out = OnnxBackend(path)(portraits, landmarks)
    with torch.no_grad():
        torch_out = model.cpu().eval()(torch.from_numpy(portraits), torch.from_numpy(landmarks))[:2]
    return max(float(np.abs(o - t.numpy()).max()) for o, t in zip(onnx_out, torch_out, strict=True))
