"""Portrait Stylization Network: U-GAT-IT generators and CAM discriminators (Sec. 3.1.2).

The layer structure follows the official U-GAT-IT PyTorch code (znxlwm/UGATIT-pytorch, networks.py):
at ``channels=64, blocks=n, image_size=256, light=False`` the generator has exactly the parameters of
its ``ResnetGenerator(ngf=64, n_blocks=n, img_size=256, light=False)`` and the discriminator those of
its ``Discriminator(ndf=64, n_layers=downsamplings + 2)``, and the outputs are those of that code number for
number (``tests/test_parity.py``, against reference outputs of its ``networks.py``): (Ada)ILN statistics with
the unbiased variance ``torch.var`` gives, and the discriminator's CAM re-weighting with the raw weight
(``weight_orig``) that ``list(fc.parameters())[0]`` is under spectral norm.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm
from torch.utils.checkpoint import checkpoint

from pda_train.nets.layers import ILN, AdaILN, ClassActivation

N_DOWNSAMPLING = 2  # the generator's stride-2 layers (and upsampling layers), fixed by the paper


class ResnetBlock(nn.Module):
    """Encoder residual block: two reflection-padded 3x3 convolutions with instance norm."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1),
            nn.Conv2d(channels, channels, 3, bias=False),
            nn.InstanceNorm2d(channels),
            nn.ReLU(inplace=True),
            nn.ReflectionPad2d(1),
            nn.Conv2d(channels, channels, 3, bias=False),
            nn.InstanceNorm2d(channels),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


class AdaILNBlock(nn.Module):
    """Decoder residual block whose normalisations take gamma/beta from the attention features."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Sequential(nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3, bias=False))
        self.norm1 = AdaILN(channels)
        self.conv2 = nn.Sequential(nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3, bias=False))
        self.norm2 = AdaILN(channels)

    def forward(self, x: Tensor, gamma: Tensor, beta: Tensor) -> Tensor:
        out = self.norm1(self.conv1(x), gamma, beta).relu()
        return x + self.norm2(self.conv2(out), gamma, beta)


class StylizationGenerator(nn.Module):
    """G^PSN: 2 downsamplings, ``blocks`` residual blocks, CAM, ``blocks`` AdaILN blocks, 2 upsamplings, tanh.

    ``forward`` returns (image in [-1, 1], CAM logits (B, 2), attention heatmap (B, 1, h, w)).
    """

    def __init__(
        self, *, channels: int, blocks: int, image_size: int, light: bool, in_channels: int = 3
    ) -> None:
        super().__init__()
        self.light = light
        encoder: list[nn.Module] = [
            nn.ReflectionPad2d(3),
            nn.Conv2d(in_channels, channels, 7, bias=False),
            nn.InstanceNorm2d(channels),
            nn.ReLU(inplace=True),
        ]
        for i in range(N_DOWNSAMPLING):
            c = channels * 2**i
            encoder += [
                nn.ReflectionPad2d(1),
                nn.Conv2d(c, 2 * c, 3, stride=2, bias=False),
                nn.InstanceNorm2d(2 * c),
                nn.ReLU(inplace=True),
            ]
        width = channels * 2**N_DOWNSAMPLING
        encoder += [ResnetBlock(width) for _ in range(blocks)]
        self.encoder = nn.Sequential(*encoder)
        self.cam = ClassActivation(width, spectral=False, negative_slope=0.0)
        # The full model's MLP reads the whole flattened attention map: most of its parameters live here.
        fc_in = width if light else (image_size // 2**N_DOWNSAMPLING) ** 2 * width
        self.style_mlp = nn.Sequential(
            nn.Linear(fc_in, width, bias=False),
            nn.ReLU(inplace=True),
            nn.Linear(width, width, bias=False),
            nn.ReLU(inplace=True),
        )
        self.gamma = nn.Linear(width, width, bias=False)
        self.beta = nn.Linear(width, width, bias=False)
        self.decoder_blocks = nn.ModuleList(AdaILNBlock(width) for _ in range(blocks))
        upsampler: list[nn.Module] = []
        for i in range(N_DOWNSAMPLING):
            c = width // 2**i
            upsampler += [
                nn.Upsample(scale_factor=2, mode="nearest"),
                nn.ReflectionPad2d(1),
                nn.Conv2d(c, c // 2, 3, bias=False),
                ILN(c // 2),
                nn.ReLU(inplace=True),
            ]
        upsampler += [nn.ReflectionPad2d(3), nn.Conv2d(channels, in_channels, 7, bias=False), nn.Tanh()]
        self.upsampler = nn.Sequential(*upsampler)
        # Activation checkpointing of the residual blocks (set_block_checkpointing): a training pass keeps
        # only each block's input and recomputes its inside during backward.
        self.checkpoint_blocks = False

    def _block(self, block: nn.Module, *args: Tensor) -> Tensor:
        if self.checkpoint_blocks and torch.is_grad_enabled():
            return checkpoint(block, *args, use_reentrant=False)
        return block(*args)

    def attention(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Encoder and CAM only: (attention features, CAM logits, heatmap).

        The CAM loss needs only the logits of the other domain's images, so that pass can skip the
        decoder, about half of the generator's work.
        """
        for layer in self.encoder:
            x = self._block(layer, x) if isinstance(layer, ResnetBlock) else layer(x)
        return self.cam(x)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        features, cam_logits, heatmap = self.attention(x)
        pooled = features.mean(dim=(2, 3)) if self.light else features.flatten(1)
        style = self.style_mlp(pooled)
        gamma, beta = self.gamma(style), self.beta(style)
        for block in self.decoder_blocks:
            features = self._block(block, features, gamma, beta)
        return self.upsampler(features), cam_logits, heatmap

    def clip_rho(self) -> None:
        """Clamp every AdaILN/ILN mix to [0, 1]; call after each optimiser step."""
        for module in self.modules():
            if isinstance(module, AdaILN):
                module.clip_rho()
            elif isinstance(module, ILN):
                module.rho.data.clamp_(0.0, 1.0)


class StylizationDiscriminator(nn.Module):
    """D^PSN: ``downsamplings`` spectrally normalised stride-2 4x4 convolutions, one stride-1 convolution,
    the CAM module on the last downscaling layer, then a 4x4 patch classifier.

    The paper's discriminator has five downsamplings (U-GAT-IT's global ``n_layers=7`` discriminator);
    U-GAT-IT's local one has three. ``forward`` returns (patch logits (B, 1, h, w), CAM logits (B, 2),
    heatmap).
    """

    def __init__(self, *, channels: int, downsamplings: int, in_channels: int = 3) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c_in, c_out = in_channels, channels
        for _ in range(downsamplings):
            layers += [
                nn.ReflectionPad2d(1),
                spectral_norm(nn.Conv2d(c_in, c_out, 4, stride=2)),
                nn.LeakyReLU(0.2, inplace=True),
            ]
            c_in, c_out = c_out, 2 * c_out
        layers += [
            nn.ReflectionPad2d(1),
            spectral_norm(nn.Conv2d(c_in, 2 * c_in, 4)),
            nn.LeakyReLU(0.2, inplace=True),
        ]
        self.body = nn.Sequential(*layers)
        self.cam = ClassActivation(2 * c_in, spectral=True, negative_slope=0.2)
        self.classifier = nn.Sequential(
            nn.ReflectionPad2d(1), spectral_norm(nn.Conv2d(2 * c_in, 1, 4, bias=False))
        )

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        features, cam_logits, heatmap = self.cam(self.body(x))
        return self.classifier(features), cam_logits, heatmap


def set_block_checkpointing(module: nn.Module, enabled: bool) -> int:
    """Turn activation checkpointing of the residual blocks of every PSN generator in ``module`` on or off.

    Trades one recomputation of the blocks' forward in backward for their activations (the 64x64x256
    feature maps at 256 px, most of a generator's training memory). Returns the generators changed.
    """
    generators = [m for m in module.modules() if isinstance(m, StylizationGenerator)]
    for generator in generators:
        generator.checkpoint_blocks = enabled
    return len(generators)
