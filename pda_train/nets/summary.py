"""Parameter counts and the activation memory of one training step, per network, without computing.

The whole model is built on PyTorch's ``meta`` device, where tensors have shapes but no storage, and
one full training step (every generator, then the generator and discriminator losses) is traced with
forward hooks: each leaf module's output is an activation kept for the backward pass. That gives the
paper's 256x256 numbers in a second or two on any machine.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from pda_data.schema import ANIME56, HUMAN68
from pda_train.config import Preset
from pda_train.nets import build_networks
from pda_train.nets.layers import count_parameters


@dataclass(frozen=True)
class NetworkSummary:
    """One network's size and its share of a training step (``calls``: forward passes, full or partial;
    ``trainable``: the parameters the end-to-end step updates, none for the frozen auxiliary networks)."""

    name: str
    parameters: int
    calls: int
    activation_bytes: int
    trainable: int = 0


def _tensor_bytes(value: object) -> int:
    if isinstance(value, Tensor):
        return value.numel() * value.element_size()
    if isinstance(value, tuple | list):
        return sum(_tensor_bytes(v) for v in value)
    return 0


def _leaves(network: nn.Module) -> list[nn.Module]:
    """Modules without sub-modules, counting a spectrally normalised layer (whose only child holds its
    weight parametrization) as a leaf and not the parametrization itself."""
    return [
        module
        for name, module in network.named_modules()
        if "parametrizations" not in name.split(".")
        and all(child == "parametrizations" for child, _ in module.named_children())
    ]


def summarize(preset: Preset, batch_size: int | None = None) -> list[NetworkSummary]:
    """Per network of ``preset``: parameters, forward passes and activation bytes (fp32) of one step.

    The step is the end-to-end one of stages 2 and 3: ``translate_step`` with the identity pass the
    weights need (``identity_mode``), the
    generator losses of Eq. 3 and 6 and the discriminator losses, at ``batch_size`` (default: the
    preset's) and the preset's image size.
    """
    # Imported here: losses imports this package.
    from pda_train.losses import discriminator_loss, generator_loss, identity_mode

    batch = batch_size or preset.schedule.batch_size
    size = preset.model.image_size
    with torch.device("meta"):
        nets = build_networks(preset.model)
        portrait, anime = torch.empty(batch, 3, size, size), torch.empty(batch, 3, size, size)
        portrait_lm, anime_lm = (
            torch.empty(batch, HUMAN68.n_points, 2),
            torch.empty(batch, ANIME56.n_points, 2),
        )
    nets.freeze_auxiliary()
    calls: dict[str, int] = {}
    activations: dict[str, int] = {}
    handles = []
    for name, network in nets.named_networks():
        calls[name], activations[name] = 0, 0

        def count_call(_module: nn.Module, _args: object, _output: object, name: str = name) -> None:
            calls[name] += 1

        def count_output(_module: nn.Module, _args: object, output: object, name: str = name) -> None:
            activations[name] += _tensor_bytes(output)

        leaves = _leaves(network)
        # Every pass, full or partial (the encoder-only CAM pass), starts at the first leaf.
        handles.append(leaves[0].register_forward_hook(count_call))
        handles += [leaf.register_forward_hook(count_output) for leaf in leaves]
    try:
        step = nets.translate_step(
            portrait, portrait_lm, anime, anime_lm, identity=identity_mode(preset.losses)
        )
        generator_loss(nets, step, preset.losses)
        discriminator_loss(nets, step, preset.losses)
    finally:
        for handle in handles:
            handle.remove()
    return [
        NetworkSummary(
            name,
            count_parameters(network),
            calls[name],
            activations[name],
            sum(p.numel() for p in network.parameters() if p.requires_grad),
        )
        for name, network in nets.named_networks()
    ]
