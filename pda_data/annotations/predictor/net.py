"""A small encoder-decoder that turns a face crop into one heatmap per landmark, read out by soft-argmax.

Heatmaps sit at stride 4; the soft-argmax (the expectation of each softmax-normalised heatmap over its grid)
gives sub-pixel coordinates and trains end to end on a coordinate loss.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

STRIDE = 4


def _norm(channels: int) -> nn.GroupNorm:
    """Group norm: no running statistics, so a few hundred steps on tiny batches predict as they trained."""
    return nn.GroupNorm(math.gcd(8, channels), channels)


def _conv(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), _norm(cout), nn.ReLU(inplace=True))


class _Residual(nn.Module):
    """Two 3x3 convolutions with a (strided 1x1) shortcut."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            _conv(cin, cout, stride), nn.Conv2d(cout, cout, 3, 1, 1, bias=False), _norm(cout)
        )
        self.skip = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), _norm(cout))

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.body(x) + self.skip(x))


class _Fuse(nn.Module):
    """Upsample the coarse map to the fine one's size, concatenate, mix by 1x1 then 3x3 convolutions."""

    def __init__(self, fine: int, coarse: int, cout: int) -> None:
        super().__init__()
        self.mix = nn.Sequential(
            nn.Conv2d(fine + coarse, cout, 1, bias=False), _norm(cout), nn.ReLU(inplace=True),
            _conv(cout, cout),
        )

    def forward(self, fine: Tensor, coarse: Tensor) -> Tensor:
        up = F.interpolate(coarse, size=fine.shape[-2:], mode="bilinear", align_corners=False)
        return self.mix(torch.cat([fine, up], 1))


class HeatmapNet(nn.Module):
    """(B, 3, S, S) crop in [-1, 1] -> (B, K, S/4, S/4) heatmap logits; ``width`` sets the channel counts.

    Two strided convolutions bring the crop to stride 4, residual blocks go down to stride 16 for context,
    and two fusions come back up to stride 4: about 0.1 GMAC per 128 px crop, so the CPU trains it.
    """

    def __init__(self, n_points: int, width: int = 16) -> None:
        super().__init__()
        w = width
        self.stem = nn.Sequential(_conv(3, w, 2), _conv(w, 2 * w, 2), _Residual(2 * w, 2 * w, 1))
        self.down8 = _Residual(2 * w, 4 * w, 2)
        self.down16 = nn.Sequential(_Residual(4 * w, 8 * w, 2), _Residual(8 * w, 8 * w, 1))
        self.up8 = _Fuse(4 * w, 8 * w, 4 * w)
        self.up4 = _Fuse(2 * w, 4 * w, 2 * w)
        self.head = nn.Conv2d(2 * w, n_points, 1)

    def forward(self, x: Tensor) -> Tensor:
        s4 = self.stem(x)
        s8 = self.down8(s4)
        s16 = self.down16(s8)
        return self.head(self.up4(s4, self.up8(s8, s16)))


def soft_argmax(logits: Tensor) -> tuple[Tensor, Tensor]:
    """Heatmap logits (B, K, h, w) -> (points (B, K, 2) in input pixels (x, y), spread (B, K) in pixels).

    Cell j of a stride-4 map covers input pixels [4j - 0.5, 4j + 3.5], so its centre is input pixel 4j + 1.5;
    ``spread`` is the root of the distribution's total variance.
    """
    b, k, h, w = logits.shape
    prob = logits.flatten(2).softmax(-1).view(b, k, h, w)
    xs = torch.arange(w, dtype=prob.dtype, device=prob.device) * STRIDE + (STRIDE - 1) / 2
    ys = torch.arange(h, dtype=prob.dtype, device=prob.device) * STRIDE + (STRIDE - 1) / 2
    px, py = prob.sum(2), prob.sum(3)  # (B, K, w), (B, K, h)
    x, y = (px * xs).sum(-1), (py * ys).sum(-1)
    var = (px * xs**2).sum(-1) - x**2 + (py * ys**2).sum(-1) - y**2
    return torch.stack([x, y], -1), var.clamp_min(0).sqrt()
