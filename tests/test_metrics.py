"""Metrics against independently computed values: Hue-HistD, Gaussian MMD, Frechet distance, LPIPS, FID."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import lpips_state_dict
from scipy.spatial import distance
from skimage.color import rgb2hsv

from pda_data.io.images import load_image
from pda_train.inference import metrics


def _skimage_hue_hist(rgb: np.ndarray) -> np.ndarray:
    """Hue histogram computed without OpenCV: skimage hue in [0, 1) -> 180 bins of 2 degrees."""
    hue = rgb2hsv(rgb)[..., 0].reshape(-1)
    return np.bincount(np.minimum((hue * 180.0 + 0.5).astype(int) % 180, 179), minlength=180).astype(float)


def test_hue_histogram_of_pure_colours_lands_in_known_bins() -> None:
    # OpenCV hue: red 0, yellow 30, green 60, cyan 90, blue 120, magenta 150 (2 degrees per step).
    colours = {0: (255, 0, 0), 30: (255, 255, 0), 60: (0, 255, 0), 90: (0, 255, 255), 120: (0, 0, 255),
               150: (255, 0, 255)}
    img = np.zeros((6, 10, 3), np.uint8)
    for row, rgb in enumerate(colours.values()):
        img[row, : row + 1] = rgb
        img[row, row + 1 :] = (128, 128, 128)  # grey: hue 0
    hist = metrics.hue_histogram(img)
    assert hist.sum() == img.shape[0] * img.shape[1]
    for row, h in enumerate(colours):
        expected = row + 1 + (sum(10 - r - 1 for r in range(6)) if h == 0 else 0)
        assert hist[h] == expected
    masked = metrics.hue_histogram(img, min_saturation=1)  # grey pixels have saturation 0
    assert masked.sum() == sum(range(1, 7))


def test_hue_hist_distance_matches_scipy_cosine_on_real_photos(samples_dir: Path) -> None:
    selfie = load_image(samples_dir / "selfie_female_222.jpg")
    anime = load_image(samples_dir / "anime_0006.png")
    expected = distance.cosine(_skimage_hue_hist(selfie), _skimage_hue_hist(anime))
    got = metrics.hue_hist_distance(selfie, anime)
    assert 0.0 < got < 1.0
    assert got == pytest.approx(expected, abs=0.02)  # rounding of the two RGB->HSV codes differs by one bin
    assert metrics.hue_hist_distance(selfie, selfie) == pytest.approx(0.0, abs=1e-12)


def test_hue_hist_distance_exact_against_numpy_histograms() -> None:
    a = np.zeros((4, 4, 3), np.uint8)
    b = np.zeros((4, 4, 3), np.uint8)
    a[:2], a[2:] = (255, 0, 0), (0, 255, 0)  # half red (bin 0), half green (bin 60)
    b[:1], b[1:] = (0, 255, 0), (0, 0, 255)  # a quarter green, three quarters blue (bin 120)
    ha, hb = np.zeros(180), np.zeros(180)
    ha[0], ha[60] = 8, 8
    hb[60], hb[120] = 4, 12
    assert metrics.hue_hist_distance(a, b) == pytest.approx(distance.cosine(ha, hb), abs=1e-12)


def test_gaussian_mmd2_matches_double_loop() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(7, 34))
    y = rng.normal(0.5, 1.2, size=(5, 34))
    sigma = 2.0

    def k(p: np.ndarray, q: np.ndarray) -> float:
        return math.exp(-sum((pi - qi) ** 2 for pi, qi in zip(p, q, strict=True)) / (2 * sigma**2))

    kxx = sum(k(a, b) for a in x for b in x) / len(x) ** 2
    kyy = sum(k(a, b) for a in y for b in y) / len(y) ** 2
    kxy = sum(k(a, b) for a in x for b in y) / (len(x) * len(y))
    assert metrics.gaussian_mmd2(x, y, sigma) == pytest.approx(kxx + kyy - 2 * kxy, rel=1e-10)
    # Point sets (N, 17, 2) are flattened per sample.
    assert metrics.gaussian_mmd2(x.reshape(7, 17, 2), y.reshape(5, 17, 2), sigma) == pytest.approx(
        kxx + kyy - 2 * kxy, rel=1e-10)
    assert metrics.gaussian_mmd2(x, x, sigma) == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError, match="equal dimension"):
        metrics.gaussian_mmd2(x, y[:, :10])


def test_frechet_distance_of_diagonal_gaussians_has_closed_form() -> None:
    mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    s1, s2 = np.array([1.0, 4.0, 0.25]), np.array([9.0, 1.0, 0.25])
    expected = np.sum((mu1 - mu2) ** 2) + np.sum(s1 + s2 - 2 * np.sqrt(s1 * s2))
    got = metrics.frechet_distance(mu1, np.diag(s1), mu2, np.diag(s2))
    assert got == pytest.approx(expected, rel=1e-9)
    feats = np.random.default_rng(1).normal(size=(50, 3))
    mu, cov = metrics.feature_statistics(feats)
    assert metrics.frechet_distance(mu, cov, mu, cov) == pytest.approx(0.0, abs=1e-6)


def test_inception_loader_runs_an_exported_program(tmp_path: Path) -> None:
    class Pool(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x.mean(dim=(2, 3))

    path = tmp_path / "inception.pt2"
    torch.export.save(torch.export.export(Pool(), (torch.rand(2, 3, 299, 299),)), str(path))
    features = metrics.load_inception(path)
    out = features(torch.full((2, 3, 32, 32), -1.0))
    assert out.shape == (2, 3)
    # -1 maps to the 0 of the 0..255 input range; float32 resizing and scaling of 0..255 values leave
    # rounding of order 1e-5 (255 * float32 eps), where allclose against zero would allow only 1e-8.
    assert torch.allclose(out, torch.zeros(2, 3), rtol=0.0, atol=1e-4)
    with pytest.raises(metrics.MetricUnavailable, match="no such Inception"):
        metrics.load_inception(tmp_path / "missing.pt")


def test_lpips_alexnet_from_a_reference_state_dict(tmp_path: Path) -> None:
    torch.manual_seed(0)
    path = tmp_path / "alex_lpips.pth"
    torch.save(lpips_state_dict(metrics.AlexLPIPS()), path)
    model = metrics.load_lpips(path)
    a = torch.rand(2, 3, 64, 64) * 2 - 1
    b = a.flip(-1)
    with torch.no_grad():
        same, diff = model(a, a), model(a, b)
    assert same.shape == (2,) and torch.allclose(same, torch.zeros(2), atol=1e-7)
    assert (diff > 0).all()
    torch.save({"features.0.weight": torch.zeros(1)}, tmp_path / "bad.pth")
    with pytest.raises(metrics.MetricUnavailable, match="not an AlexNet"):
        metrics.load_lpips(tmp_path / "bad.pth")


def test_lpips_without_package_or_weights_names_what_to_install() -> None:
    try:
        import lpips  # noqa: F401
    except ImportError:
        with pytest.raises(metrics.MetricUnavailable, match="lpips"):
            metrics.load_lpips()
    else:
        pytest.skip("the lpips package is installed here")
