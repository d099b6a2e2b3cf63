"""Auxiliary networks, pretrained and then frozen while the PSN trains (Sec. 3.1.2, Fig. 6).

* :class:`StructureDetector`: a U-Net from an anime-like RGB image to the 4 structure heatmaps
  (channels in the order of ``schema.STRUCTURE_CHANNELS``: eye centres, mouth corners), values in [0, 1]
  like the targets of ``pda_data.synthesis.structure.render_heatmaps``.
* :class:`FaceClassifier`: 5 convolutional blocks, global average pooling and two fully connected
  layers, one logit (positive = legit face). On the 4 heatmaps it is the face structure classifier,
  on RGB the highlight classifier.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from pda_data.schema import STRUCTURE_CHANNELS

CLASSIFIER_BLOCKS = 5


def _conv_block(c_in: int, c_out: int, stride: int = 1) -> nn.Sequential:
    """3x3 convolution, group norm (same in train and eval, so frozen nets behave), LeakyReLU."""
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False),
        nn.GroupNorm(min(8, c_out), c_out),
        nn.LeakyReLU(0.2, inplace=True),
    )


class StructureDetector(nn.Module):
    """U-Net with ``depth`` poolings; ``channels`` at the top level, doubling per level."""

    def __init__(self, *, channels: int, depth: int, in_channels: int = 3) -> None:
        super().__init__()
        widths = [channels * 2**i for i in range(depth + 1)]
        self.down = nn.ModuleList()
        c_prev = in_channels
        for w in widths[:-1]:
            self.down.append(nn.Sequential(_conv_block(c_prev, w), _conv_block(w, w)))
            c_prev = w
        self.pool = nn.MaxPool2d(2)
        self.bottom = nn.Sequential(_conv_block(widths[-2], widths[-1]), _conv_block(widths[-1], widths[-1]))
        self.up = nn.ModuleList()
        self.merge = nn.ModuleList()
        for w_low, w in zip(widths[:0:-1], widths[-2::-1], strict=True):
            self.up.append(nn.ConvTranspose2d(w_low, w, 2, stride=2))
            self.merge.append(nn.Sequential(_conv_block(2 * w, w), _conv_block(w, w)))
        self.head = nn.Conv2d(channels, len(STRUCTURE_CHANNELS), 1)

    def logits(self, x: Tensor) -> Tensor:
        """Heatmap logits (B, 4, H, W); train on these with a logit loss for numerical stability."""
        skips = []
        for block in self.down:
            x = block(x)
            skips.append(x)
            x = self.pool(x)
        x = self.bottom(x)
        for up, merge, skip in zip(self.up, self.merge, reversed(skips), strict=True):
            x = merge(torch.cat([up(x), skip], dim=1))
        return self.head(x)

    def forward(self, x: Tensor) -> Tensor:
        """Heatmaps (B, 4, H, W) in [0, 1]."""
        return torch.sigmoid(self.logits(x))


class FaceClassifier(nn.Module):
    """Binary classifier: 5 stride-2 conv blocks, global average pooling, 2 FC layers; logits (B,)."""

    def __init__(self, *, in_channels: int, channels: int) -> None:
        super().__init__()
        blocks = []
        c_prev = in_channels
        for i in range(CLASSIFIER_BLOCKS):
            c = channels * 2 ** min(i, 3)
            blocks.append(_conv_block(c_prev, c, stride=2))
            c_prev = c
        self.features = nn.Sequential(*blocks)
        self.head = nn.Sequential(
            nn.Linear(c_prev, c_prev), nn.LeakyReLU(0.2, inplace=True), nn.Linear(c_prev, 1)
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x).mean(dim=(2, 3))).squeeze(1)
