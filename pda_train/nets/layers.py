"""Building blocks shared by the PDA networks: U-GAT-IT's normalisations and attention, and MLPs."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import spectral_norm


def _instance_and_layer_norm(x: Tensor, eps: float) -> tuple[Tensor, Tensor]:
    """x normalised per (sample, channel) and per sample, the two statistics that ILN mixes.

    Variances are unbiased (1/(N-1)), as ``torch.var`` gives them in the reference U-GAT-IT code; the
    residual blocks' ``nn.InstanceNorm2d`` keeps PyTorch's biased one there and here alike. Statistics and
    normalisation run in float32 whatever ``x``'s dtype: under fp16 autocast the sums of squares overflow
    (and NaN) otherwise. Both results come back in ``x``'s dtype.
    """
    xf = x.float()
    in_var, in_mean = torch.var_mean(xf, dim=(2, 3), keepdim=True)
    ln_var, ln_mean = torch.var_mean(xf, dim=(1, 2, 3), keepdim=True)
    x_in = (xf - in_mean) * torch.rsqrt(in_var + eps)
    x_ln = (xf - ln_mean) * torch.rsqrt(ln_var + eps)
    return x_in.to(x.dtype), x_ln.to(x.dtype)


class ILN(nn.Module):
    """Layer-Instance Normalisation with learned mix ``rho`` and affine gamma/beta (U-GAT-IT upsampler)."""

    def __init__(self, channels: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.rho = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.gamma = nn.Parameter(torch.ones(1, channels, 1, 1))
        self.beta = nn.Parameter(torch.zeros(1, channels, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        x_in, x_ln = _instance_and_layer_norm(x, self.eps)
        return (self.rho * x_in + (1 - self.rho) * x_ln) * self.gamma + self.beta


class AdaILN(nn.Module):
    """Adaptive Layer-Instance Normalisation: gamma/beta come from the attention features per sample."""

    def __init__(self, channels: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.rho = nn.Parameter(torch.full((1, channels, 1, 1), 0.9))

    def forward(self, x: Tensor, gamma: Tensor, beta: Tensor) -> Tensor:
        x_in, x_ln = _instance_and_layer_norm(x, self.eps)
        mixed = self.rho * x_in + (1 - self.rho) * x_ln
        return mixed * gamma[:, :, None, None] + beta[:, :, None, None]

    def clip_rho(self) -> None:
        """Keep the mix in [0, 1] after an optimiser step, as U-GAT-IT's RhoClipper does."""
        with torch.no_grad():
            self.rho.clamp_(0.0, 1.0)


class ClassActivation(nn.Module):
    """U-GAT-IT's domain attention (CAM) module.

    Global average- and max-pooled features feed two one-logit linear classifiers; their weights
    re-weight the feature channels (the class activation map), and a 1x1 convolution fuses both
    re-weighted maps back to ``channels``. Returns (features, cam logits (B, 2), heatmap (B, 1, H, W)).
    """

    def __init__(self, channels: int, *, spectral: bool, negative_slope: float) -> None:
        super().__init__()
        wrap = spectral_norm if spectral else (lambda m: m)
        self.gap_fc = wrap(nn.Linear(channels, 1, bias=False))
        self.gmp_fc = wrap(nn.Linear(channels, 1, bias=False))
        self.fuse = nn.Conv2d(2 * channels, channels, kernel_size=1)
        self.negative_slope = negative_slope

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        gap_logit = self.gap_fc(x.mean(dim=(2, 3)))
        gmp_logit = self.gmp_fc(x.amax(dim=(2, 3)))
        gap = x * _raw_weight(self.gap_fc)[0][None, :, None, None]
        gmp = x * _raw_weight(self.gmp_fc)[0][None, :, None, None]
        out = F.leaky_relu(self.fuse(torch.cat([gap, gmp], dim=1)), self.negative_slope)
        return out, torch.cat([gap_logit, gmp_logit], dim=1), out.sum(dim=1, keepdim=True)


def _raw_weight(linear: nn.Linear) -> Tensor:
    """The layer's weight before spectral normalisation, as U-GAT-IT's CAM re-weighting reads it.

    The reference takes ``list(fc.parameters())[0]``, which under spectral norm is ``weight_orig``. Reading
    the stored original also keeps the normalisation (and its power iteration) to the one in ``forward``.
    """
    if parametrize.is_parametrized(linear, "weight"):
        return linear.parametrizations.weight.original
    return linear.weight


def mlp(sizes: list[int], negative_slope: float = 0.2) -> nn.Sequential:
    """Linear layers ``sizes[0] -> ... -> sizes[-1]`` with LeakyReLU between them (none after the last)."""
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(nn.Linear(n_in, n_out))
        if i < len(sizes) - 2:
            layers.append(nn.LeakyReLU(negative_slope))
    return nn.Sequential(*layers)


def count_parameters(module: nn.Module) -> int:
    """Number of learnable values of ``module``."""
    return sum(p.numel() for p in module.parameters())
