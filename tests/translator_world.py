"""An exported tiny translator (random weights, its LDN nudged off the identity so the TPS warp moves
pixels) for the translation, video, ONNX and web-page tests."""

from __future__ import annotations

from pathlib import Path

import torch

from pda_train.config import get_preset
from pda_train.inference.export import export_translator
from pda_train.nets import PDANetworks

LDN_NUDGE = 30.0  # the LDN's last layer starts at 0.01 scale; this makes its displacements a few pixels


def tiny_model(path: Path, seed: int = 0) -> Path:
    """Write a tiny-preset translator pair (``path`` .safetensors + .json) and return ``path``."""
    torch.manual_seed(seed)
    nets = PDANetworks(get_preset("tiny").model).eval()
    with torch.no_grad():
        nets.ldn_g_pa.body[-1].weight.mul_(LDN_NUDGE)
        nets.ldn_g_pa.body[-1].bias.normal_(0.0, 0.02)
    return export_translator(nets, path, {"preset": "tiny"})

