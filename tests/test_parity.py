"""The PSN networks against the official U-GAT-IT PyTorch networks, number for number.

``../shared/parity/ugatit_reference.safetensors`` holds the weights, one input batch and the outputs of the
reference ``ResnetGenerator`` (full and light, 6 blocks, ngf 8, 128 px) and ``Discriminator`` (n_layers 7 and
5, ndf 8) of znxlwm/UGATIT-pytorch ``networks.py``, run in eval mode in float32 on the CPU (its README). The
weights load into our networks through the name mapping below; every output must match to 1e-5.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from pda_train.nets.psn import StylizationDiscriminator, StylizationGenerator

TOLERANCE = 1e-5  # float32: the reference's and our kernels sum in different orders

# Reference parameter name -> ours. Sequential indices coincide: both build the same layer lists.
_SN = r"parametrizations.weight"
_GENERATOR_NAMES = [
    (r"^DownBlock\.(\d+)\.conv_block\.(\d+)\.", r"encoder.\1.body.\2."),
    (r"^DownBlock\.(\d+)\.", r"encoder.\1."),
    (r"^(gap_fc|gmp_fc)\.", r"cam.\1."),
    (r"^conv1x1\.", "cam.fuse."),
    (r"^FC\.", "style_mlp."),
    (r"^UpBlock1_(\d+)\.(conv[12])\.", lambda m: f"decoder_blocks.{int(m[1]) - 1}.{m[2]}.1."),
    (r"^UpBlock1_(\d+)\.(norm[12])\.", lambda m: f"decoder_blocks.{int(m[1]) - 1}.{m[2]}."),
    (r"^UpBlock2\.", "upsampler."),
]
_DISCRIMINATOR_NAMES = [
    (r"^model\.", "body."),
    (r"^(gap_fc|gmp_fc)\.", r"cam.\1."),
    (r"^conv1x1\.", "cam.fuse."),
    (r"^conv\.", "classifier.1."),
    (r"\.weight_orig$", f".{_SN}.original"),
    (r"\.weight_u$", f".{_SN}.0._u"),
    (r"\.weight_v$", f".{_SN}.0._v"),
]


def _renamed(weights: dict[str, torch.Tensor], prefix: str, rules: list) -> dict[str, torch.Tensor]:
    out = {}
    for key, value in weights.items():
        if not key.startswith(prefix):
            continue
        name = key[len(prefix) :]
        for pattern, repl in rules:
            name = re.sub(pattern, repl, name)
        out[name] = value
    return out


@pytest.fixture(scope="module")
def reference(shared_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(str(shared_dir / "parity" / "ugatit_reference.safetensors"))


def _check(net: nn.Module, weights: dict[str, torch.Tensor], image: torch.Tensor, expected: dict) -> None:
    net.load_state_dict(weights, strict=True)  # every reference tensor has a home, and nothing is left over
    net.eval()
    with torch.no_grad():
        outputs = net(image)
    for name, got in zip(("image", "cam_logit", "heatmap"), outputs, strict=True):
        want = expected[name]
        assert got.shape == want.shape, name
        diff = (got - want).abs().max().item()
        assert diff <= TOLERANCE, f"{name}: max |ours - reference| = {diff:.3g}"


@pytest.mark.parametrize("key, light", [("G", False), ("Glight", True)])
def test_generator_matches_reference(reference: dict, key: str, light: bool) -> None:
    net = StylizationGenerator(channels=8, blocks=6, image_size=128, light=light)
    expected = {n: reference[f"expected.{key}.{n}"] for n in ("image", "cam_logit", "heatmap")}
    _check(net, _renamed(reference, f"{key}.", _GENERATOR_NAMES), reference["input.image"], expected)


@pytest.mark.parametrize("key, n_layers", [("D7", 7), ("D5", 5)])
def test_discriminator_matches_reference(reference: dict, key: str, n_layers: int) -> None:
    net = StylizationDiscriminator(channels=8, downsamplings=n_layers - 2)
    names = {"image": "logits", "cam_logit": "cam_logit", "heatmap": "heatmap"}
    expected = {ours: reference[f"expected.{key}.{theirs}"] for ours, theirs in names.items()}
    _check(net, _renamed(reference, f"{key}.", _DISCRIMINATOR_NAMES), reference["input.image"], expected)


def test_discriminator_cam_runs_one_power_iteration_per_forward() -> None:
    net = StylizationDiscriminator(channels=8, downsamplings=3).train()
    norm = net.cam.gap_fc.parametrizations.weight[0]
    calls = []
    norm.register_forward_hook(lambda *_: calls.append(1))
    net(torch.randn(2, 3, 64, 64))
    assert len(calls) == 1  # the CAM re-weighting reads the raw weight, not a second normalisation
