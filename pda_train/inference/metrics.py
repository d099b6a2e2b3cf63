"""The paper's appearance-preservation and landmark metrics (Tables 1, 3 and 4), as array functions.

* Hue-HistD (colour consistency, Sec. 4.3): cosine distance ``1 - <h1, h2> / (|h1| |h2|)`` between the hue
  histograms of the input portrait and its translation. Hue comes from OpenCV's 8-bit RGB->HSV conversion,
  whose H channel spans 0..179 (2 degrees per step); the histogram has one bin per value, ``HUE_BINS = 180``,
  over every pixel (``min_saturation`` can exclude near-grey pixels, whose hue is arbitrary; the default 0
  keeps them, as the paper does not mention a mask).
* Landmark MMD (Table 3): the biased (V-statistic) squared Maximum Mean Discrepancy with a Gaussian kernel
  ``k(x, y) = exp(-|x - y|^2 / (2 sigma^2))`` between two sets of flattened landmark vectors, normalized to
  [-1, 1] (``schema.normalize_points``); ``MMD_SIGMA = 1.0`` by default.
* LPIPS (structure consistency): through the ``lpips`` package when importable, otherwise AlexNet-LPIPS
  computed here from a local weight file (see :func:`load_lpips`); never downloaded.
* FID: Frechet distance between Inception features, with a user-supplied TorchScript Inception (see
  :func:`load_inception`).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from scipy import linalg
from torch import nn
from torch.nn import functional as F

HUE_BINS = 180
MMD_SIGMA = 1.0


class MetricUnavailable(RuntimeError):
    """A metric needs weights or a package that is not present; the message says what to provide."""


def hue_histogram(rgb: np.ndarray, bins: int = HUE_BINS, min_saturation: int = 0) -> np.ndarray:
    """Hue histogram (counts, float64) of an RGB uint8 image over OpenCV's H range 0..179."""
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected an H x W x 3 uint8 RGB image, got {rgb.dtype} {rgb.shape}")
    hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)
    hue = hsv[..., 0][hsv[..., 1] >= min_saturation]
    hist, _ = np.histogram(hue, bins=bins, range=(0, 180))
    return hist.astype(np.float64)


def hue_hist_distance(a: np.ndarray, b: np.ndarray, bins: int = HUE_BINS, min_saturation: int = 0) -> float:
    """Hue-HistD of two RGB uint8 images: cosine distance of their hue histograms (0 = same hue mix)."""
    ha = hue_histogram(a, bins, min_saturation)
    hb = hue_histogram(b, bins, min_saturation)
    na, nb = np.linalg.norm(ha), np.linalg.norm(hb)
    if na == 0 or nb == 0:  # no pixel passed the saturation mask: distance is undefined, call it maximal
        return 1.0
    return float(1.0 - ha @ hb / (na * nb))


def gaussian_mmd2(x: np.ndarray, y: np.ndarray, sigma: float = MMD_SIGMA) -> float:
    """Biased squared MMD between samples ``x`` (N, D) and ``y`` (M, D) under a Gaussian kernel."""
    x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    y = np.asarray(y, dtype=np.float64).reshape(len(y), -1)
    if len(x) == 0 or len(y) == 0 or x.shape[1] != y.shape[1]:
        raise ValueError(f"MMD needs two non-empty sets of equal dimension, got {x.shape} and {y.shape}")

    def kernel_mean(p: np.ndarray, q: np.ndarray) -> float:
        d2 = (p * p).sum(1)[:, None] + (q * q).sum(1)[None, :] - 2.0 * p @ q.T
        return float(np.exp(-np.maximum(d2, 0.0) / (2.0 * sigma**2)).mean())

    return max(0.0, kernel_mean(x, x) + kernel_mean(y, y) - 2.0 * kernel_mean(x, y))


def frechet_distance(mu1: np.ndarray, cov1: np.ndarray, mu2: np.ndarray, cov2: np.ndarray) -> float:
    """``|mu1 - mu2|^2 + tr(C1 + C2 - 2 sqrt(C1 C2))``, the FID between two Gaussians."""
    covmean = linalg.sqrtm(cov1 @ cov2)
    if not np.isfinite(covmean).all():  # near-singular product: regularize as the FID reference code does
        eps = np.eye(len(cov1)) * 1e-6
        covmean = linalg.sqrtm((cov1 + eps) @ (cov2 + eps))
    covmean = np.real(covmean)
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(cov1) + np.trace(cov2) - 2.0 * np.trace(covmean))


def feature_statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance of (N, D) features (N >= 2)."""
    f = np.asarray(features, dtype=np.float64)
    if f.ndim != 2 or len(f) < 2:
        raise ValueError(f"need at least 2 feature vectors for FID statistics, got shape {f.shape}")
    return f.mean(axis=0), np.cov(f, rowvar=False)


def load_inception(
    path: str | Path, device: torch.device | str = "cpu"
) -> Callable[[torch.Tensor], torch.Tensor]:
    """A user-supplied Inception feature extractor: a ``torch.export`` program (``.pt2``) or a TorchScript
    file (e.g. clean-fid's ``inception-2015-12-05.pt``).

    The returned callable maps RGB images in [-1, 1], (B, 3, H, W), to (B, D) features: images are resized to
    299 x 299 and passed as uint8-range floats (0..255), the input convention of that TorchScript export,
    with ``return_features=True`` (its pool-3 features instead of logits) when the model accepts it.
    """
    p = Path(path)
    if not p.is_file():
        raise MetricUnavailable(f"{p}: no such Inception model file (--inception takes .pt2 or TorchScript)")
    try:
        if p.suffix == ".pt2":
            net = torch.export.load(str(p)).module().to(device)
        else:
            with warnings.catch_warnings():  # torch.jit.load is deprecated but is how these files ship
                warnings.simplefilter("ignore", DeprecationWarning)
                net = torch.jit.load(str(p), map_location=device).eval()
    except Exception as exc:  # the loaders raise RuntimeError, pickle or zip errors for a wrong file
        raise MetricUnavailable(f"{p}: not an exported Inception model ({exc})") from exc

    schema = str(getattr(getattr(net, "forward", None), "schema", ""))  # TorchScript signature, if any
    keywords = {"return_features": True} if "return_features" in schema else {}

    @torch.no_grad()
    def features(images: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(images.to(device).float(), size=(299, 299), mode="bilinear", align_corners=False)
        out = net((x.clamp(-1, 1) + 1.0) * 127.5, **keywords)
        return out.reshape(len(images), -1).float().cpu()

    return features


# --- LPIPS -----------------------------------------------------------------------------------------------

_LPIPS_SHIFT = (-0.030, -0.088, -0.188)
_LPIPS_SCALE = (0.458, 0.448, 0.450)
# (in, out, kernel, stride, padding, max-pool before) of AlexNet's five conv layers, as LPIPS taps them.
_ALEX = ((3, 64, 11, 4, 2, False), (64, 192, 5, 1, 2, True), (192, 384, 3, 1, 1, True),
         (384, 256, 3, 1, 1, False), (256, 256, 3, 1, 1, False))
# torchvision's ``alexnet().features`` indices of those conv layers: the key names of the weight file.
_ALEX_INDEX = (0, 3, 6, 8, 10)


class AlexLPIPS(nn.Module):
    """LPIPS v0.1 with the AlexNet backbone: unit-normalized relu1..relu5 features, squared differences,
    per-channel linear weights, spatial mean, summed over layers."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("shift", torch.tensor(_LPIPS_SHIFT).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor(_LPIPS_SCALE).view(1, 3, 1, 1))
        self.convs = nn.ModuleList(nn.Conv2d(i, o, k, s, p) for i, o, k, s, p, _ in _ALEX)
        self.lins = nn.ModuleList(nn.Conv2d(o, 1, 1, bias=False) for _, o, *_ in _ALEX)

    def _features(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = (x - self.shift) / self.scale
        feats = []
        for conv, (*_, pool) in zip(self.convs, _ALEX, strict=True):
            if pool:
                x = F.max_pool2d(x, 3, 2)
            x = F.relu(conv(x))
            feats.append(x)
        return feats

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Distance per image pair, (B,), for images in [-1, 1]."""
        total = a.new_zeros(len(a))
        for fa, fb, lin in zip(self._features(a), self._features(b), self.lins, strict=True):
            na = fa / (fa.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
            nb = fb / (fb.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
            total = total + lin((na - nb) ** 2).mean(dim=(1, 2, 3))
        return total

    def load_reference_weights(self, state: dict[str, torch.Tensor]) -> None:
        """Load torchvision AlexNet ``features.{0,3,6,8,10}.*`` plus lpips ``lin{k}.model.1.weight``."""
        mapped = {}
        for k, idx in enumerate(_ALEX_INDEX):
            mapped[f"convs.{k}.weight"] = state[f"features.{idx}.weight"]
            mapped[f"convs.{k}.bias"] = state[f"features.{idx}.bias"]
            mapped[f"lins.{k}.weight"] = state[f"lin{k}.model.1.weight"]
        mapped["shift"], mapped["scale"] = self.shift, self.scale
        self.load_state_dict(mapped)


def load_lpips(weights: str | Path | None = None, device: torch.device | str = "cpu") -> nn.Module:
    """An LPIPS(alex) module taking two (B, 3, H, W) batches in [-1, 1] and returning (B,) distances.

    With ``weights``: a local weight file merging torchvision's AlexNet state dict (``features.*`` keys) with
    the lpips package's ``weights/v0.1/alex.pth`` (``lin0.model.1.weight`` ... ``lin4``), as safetensors or
    as a torch file of plain tensors (loaded with ``weights_only=True``: a pickle that needs code to load is
    refused, never run). Without: the ``lpips`` package if it is installed with its weights. Otherwise, or
    for a bad file, :class:`MetricUnavailable` naming the file and why.
    """
    if weights is not None:
        p = Path(weights)
        state = _weight_file(p)
        model = AlexLPIPS()
        try:
            model.load_reference_weights(state)
        except (KeyError, RuntimeError, ValueError, TypeError) as exc:
            raise MetricUnavailable(
                f"{p}: not an AlexNet+LPIPS state dict ({type(exc).__name__}: {exc})"
            ) from exc
        return model.to(device).eval()
    try:
        import lpips
    except ImportError as exc:
        raise MetricUnavailable(
            "LPIPS unavailable: install the 'lpips' package (needs torchvision), or pass --lpips-weights "
            "with a state dict merging torchvision AlexNet 'features.*' and lpips v0.1 alex.pth 'lin*'"
        ) from exc
    net = lpips.LPIPS(net="alex", verbose=False).to(device).eval()
    return _LpipsPackage(net)


def _weight_file(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file, or of a torch file of plain tensors; anything else is refused."""
    if not path.is_file():
        raise MetricUnavailable(f"{path}: LPIPS weight file not found")
    try:
        return load_file(path)
    except (SafetensorError, OSError, ValueError):
        pass  # not safetensors: a weights-only torch file is the one other accepted form
    try:
        with warnings.catch_warnings():  # torch warns about the pickle protocol of files it then refuses
            warnings.simplefilter("ignore", UserWarning)
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle, zip and allowlist errors have unrelated types (and pages of text)
        raise MetricUnavailable(f"{path}: not a safetensors weight file (nor a torch file of plain tensors: "
                                f"{type(exc).__name__})") from exc
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise MetricUnavailable(f"{path}: not a safetensors weight file (a torch file, but not a dict of "
                                "tensors)")
    return state


class _LpipsPackage(nn.Module):
    """Adapter giving the ``lpips`` package the same (B,) output as :class:`AlexLPIPS`."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return self.net(a, b).reshape(len(a))
