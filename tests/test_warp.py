"""The TPS and piecewise-affine warps: exactness, agreement with scipy, gradients, fast-path accuracy."""

from __future__ import annotations

import json
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from scipy.interpolate import RBFInterpolator

from pda_data.geometry.warp import (
    MAX_CONDITION,
    border_anchors,
    piecewise_affine_warp,
    tps_eval,
    tps_fit,
    tps_grid,
    tps_warp,
)
from pda_data.schema import normalize_points

SAMPLE_POINTS = Path(__file__).resolve().parent / "fixtures" / "synth_anime56.json"


def _face_contour(n: int = 17) -> np.ndarray:
    """A jaw-like arc of ``n`` normalized points, ear to ear under the chin."""
    t = np.linspace(np.pi * 1.05, -0.05 * np.pi, n)
    return np.stack([0.5 * np.cos(t), 0.6 * np.abs(np.sin(t)) - 0.1], -1)


def _anime_jaw(points: np.ndarray) -> np.ndarray:
    """Narrow and lengthen the lower face, as the LDN does (moves up to ~8 px at 256x256)."""
    out = points.copy()
    below = np.clip(points[:, 1], 0, None)
    out[:, 0] *= 1 - 0.25 * below
    out[:, 1] += 0.12 * below
    return out


def _random_pairs(batch: int, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng(seed)
    src = rng.uniform(-0.7, 0.7, (batch, n, 2))
    dst = src + rng.normal(0, 0.04, src.shape)
    return torch.from_numpy(src), torch.from_numpy(dst)


def _blobs(points_px: np.ndarray, size: int, sigma: float = 2.0) -> torch.Tensor:
    ys, xs = np.mgrid[0:size, 0:size]
    img = np.zeros((size, size))
    for x, y in points_px:
        img = np.maximum(img, np.exp(-((xs - x) ** 2 + (ys - y) ** 2) / (2 * sigma**2)))
    return torch.from_numpy(img)[None, None].float()


def test_control_points_land_on_targets() -> None:
    src, dst = _random_pairs(3, 17, seed=1)
    weights, affine = tps_fit(dst, src)
    assert torch.allclose(tps_eval(dst, weights, affine, dst), src, atol=1e-9)
    # Through the public grid too: the sampling grid at a target pixel reads the source point.
    size = 65
    src_px = np.array([[20.0, 24.0], [44.0, 24.0], [32.0, 44.0], [16.0, 40.0]])
    dst_px = src_px + np.array([[2.0, 1.0], [-2.0, 1.0], [0.0, 4.0], [-1.0, -2.0]])
    s = torch.from_numpy(normalize_points(src_px, size, size))[None]
    d = torch.from_numpy(normalize_points(dst_px, size, size))[None]
    grid = tps_grid(s, d, (size, size), grid=None)
    for (x, y), target in zip(dst_px.astype(int), s[0], strict=True):
        assert torch.abs(grid[0, y, x] - target).max() < 1e-3


def test_content_moves_from_src_to_dst() -> None:
    size = 96
    src_px = np.array([[30.0, 40.0], [66.0, 40.0], [48.0, 70.0]])
    dst_px = src_px + np.array([[-4.0, 3.0], [5.0, 2.0], [0.0, 6.0]])
    image = _blobs(src_px, size)
    s = torch.from_numpy(normalize_points(src_px, size, size))[None]
    d = torch.from_numpy(normalize_points(dst_px, size, size))[None]
    for grid in (None, 32):
        out = tps_warp(image, s, d, grid=grid)[0, 0].numpy()
        for x, y in dst_px:
            window = out[int(y) - 6 : int(y) + 7, int(x) - 6 : int(x) + 7]
            peak = np.unravel_index(np.argmax(window), window.shape)
            assert abs(peak[0] - 6) <= 1 and abs(peak[1] - 6) <= 1
            assert window.max() > 0.9


@pytest.mark.parametrize("anchors", [False, True])
def test_matches_scipy_thin_plate_rbf(anchors: bool) -> None:
    src, dst = _random_pairs(2, 17, seed=2)
    rng = np.random.default_rng(3)
    query = rng.uniform(-0.95, 0.95, (2, 300, 2))
    centres, values = dst, src
    if anchors:
        a = border_anchors(5).expand(2, -1, -1)
        centres, values = torch.cat([dst, a], 1), torch.cat([src, a], 1)
    weights, affine = tps_fit(centres, values)
    ours = tps_eval(centres, weights, affine, torch.from_numpy(query)).numpy()
    for b in range(2):
        ref = RBFInterpolator(centres[b].numpy(), values[b].numpy(), kernel="thin_plate_spline")(query[b])
        assert np.abs(ours[b] - ref).max() < 1e-4
    # The exact full-resolution grid is that same spline at the pixel lattice.
    size = 33
    grid = tps_grid(src, dst, (size, size), grid=None, anchors=anchors).numpy()
    lattice = np.stack(np.meshgrid(np.linspace(-1, 1, size), np.linspace(-1, 1, size)), -1).reshape(-1, 2)
    ref = RBFInterpolator(centres[0].numpy(), values[0].numpy(), kernel="thin_plate_spline")(lattice)
    assert np.abs(grid[0].reshape(-1, 2) - ref).max() < 1e-4


def test_identity_warp_returns_image(samples_dir) -> None:
    rgb = cv2.cvtColor(cv2.imread(str(samples_dir / "anime_0006.png")), cv2.COLOR_BGR2RGB)
    image = torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255.0
    pts = torch.from_numpy(_face_contour())[None]
    out = tps_warp(image, pts, pts.clone(), grid=None)
    assert out.shape == image.shape and out.dtype == image.dtype
    assert (out - image).abs().max() < 1e-5


def test_gradients_reach_image_and_points() -> None:
    src, dst = _random_pairs(1, 4, seed=4)
    image = torch.rand(1, 2, 6, 7, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    image.requires_grad_(True)
    src.requires_grad_(True)
    dst.requires_grad_(True)
    for grid in (None, 4):

        def warp(img: torch.Tensor, s: torch.Tensor, d: torch.Tensor, g: int | None = grid) -> torch.Tensor:
            return tps_warp(img, s, d, grid=g, anchors_per_side=3)

        assert torch.autograd.gradcheck(warp, (image, src, dst), eps=1e-6, atol=1e-5)
    loss = tps_warp(image.float(), src, dst).sum()
    loss.backward()
    assert src.grad is not None and src.grad.abs().sum() > 0
    assert dst.grad is not None and dst.grad.abs().sum() > 0


def test_fast_path_within_half_a_pixel_and_batched() -> None:
    one = torch.from_numpy(_face_contour())[None]
    src = torch.cat([one, one * 0.9])
    dst = torch.cat([torch.from_numpy(_anime_jaw(one[0].numpy()))[None], one * 0.85])
    exact = tps_grid(src, dst, (256, 256), grid=None)
    fast = tps_grid(src, dst, (256, 256), grid=64)
    assert (exact - fast).abs().max() * 127.5 < 0.5
    # Per-sample point sets: batch results equal the single-item ones.
    for b in range(2):
        alone = tps_grid(src[b : b + 1], dst[b : b + 1], (256, 256), grid=64)
        assert torch.allclose(alone[0], fast[b], atol=1e-12)


def test_anchors_keep_background_still() -> None:
    size = 128
    src = torch.from_numpy(_face_contour() * 0.8)[None]
    dst = torch.from_numpy(_anime_jaw(src[0].numpy()))[None]
    lattice = np.stack(np.meshgrid(np.linspace(-1, 1, size), np.linspace(-1, 1, size)), -1)
    moved_px = (tps_grid(src, dst, (size, size))[0] - torch.from_numpy(lattice)).norm(dim=-1) * (size - 1) / 2
    border = torch.cat([moved_px[0], moved_px[-1], moved_px[:, 0], moved_px[:, -1]])
    assert border.max() < 0.25
    assert moved_px[size // 2 :, size // 4 : 3 * size // 4].max() > 2.0  # the jaw region does move
    image = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(1))
    out = tps_warp(image, src, dst)
    assert torch.equal(out[..., 0, 0], image[..., 0, 0])  # corners are anchors


def test_piecewise_affine_reproduces_a_global_affine(samples_dir) -> None:
    rgb = cv2.cvtColor(cv2.imread(str(samples_dir / "selfie_female_222.jpg")), cv2.COLOR_BGR2RGB)
    rng = np.random.default_rng(5)
    dst = rng.uniform(40, 216, (20, 2))
    a = np.array([[0.9, 0.1], [-0.05, 1.1]])
    t = np.array([12.0, -8.0])
    src = dst @ a.T + t
    out = piecewise_affine_warp(rgb, src, dst, (256, 256))
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    ref = cv2.warpAffine(rgb, np.hstack([a, t[:, None]]), (256, 256), flags=flags)
    hull = np.zeros((256, 256), np.uint8)
    cv2.fillConvexPoly(hull, cv2.convexHull(dst.astype(np.int32)), 1)
    inner = cv2.erode(hull, np.ones((5, 5), np.uint8)).astype(bool)
    assert np.abs(out[inner].astype(int) - ref[inner].astype(int)).max() <= 2
    outside = ~cv2.dilate(hull, np.ones((5, 5), np.uint8)).astype(bool)
    assert out[outside].max() == 0


def test_piecewise_affine_rejects_degenerate_points() -> None:
    img = np.zeros((32, 32), np.float32)
    line = np.stack([np.arange(5.0), np.arange(5.0)], -1)
    with pytest.raises(ValueError, match="degenerate"):
        piecewise_affine_warp(img, line, line, (32, 32))
    dup = np.array([[1.0, 1.0], [20.0, 2.0], [5.0, 25.0], [1.0, 1.0]])
    with pytest.raises(ValueError, match="degenerate"):
        piecewise_affine_warp(img, dup, dup, (32, 32))


def test_smoothing_matches_scipy_and_tames_duplicate_points() -> None:
    src, dst = _random_pairs(1, 12, seed=6)
    query = torch.from_numpy(np.random.default_rng(7).uniform(-0.9, 0.9, (1, 100, 2)))
    weights, affine = tps_fit(dst, src, smoothing=1e-3)
    ref = RBFInterpolator(dst[0].numpy(), src[0].numpy(), kernel="thin_plate_spline", smoothing=1e-3)
    assert np.abs(tps_eval(dst, weights, affine, query)[0].numpy() - ref(query[0].numpy())).max() < 1e-6
    dup_src, dup_dst = torch.cat([src, src[:, :1] + 0.01], 1), torch.cat([dst, dst[:, :1]], 1)
    grid = tps_grid(dup_src, dup_dst, (32, 32), smoothing=1e-6)
    assert torch.isfinite(grid).all() and grid.abs().max() < 1.5


def _unsolvable(*args: object, **kwargs: object) -> None:
    raise AssertionError("the spline was solved: degenerate points must be caught before")


ILL_CONDITIONED = r"the spline system is ill-conditioned, condition number \S+ > " + re.escape(
    f"{MAX_CONDITION:.0e}"
)


def _line(n: int = 17) -> np.ndarray:
    t = np.linspace(-0.8, 0.8, n)
    return np.stack([t, 0.5 * t], -1)


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("collinear", r"all 17 points lie \(nearly\) on one line"),
        ("near_collinear", r"all 17 points lie \(nearly\) on one line"),
        ("duplicated", r"only 2 distinct point\(s\) of 17"),
        ("too_few", r"only 2 distinct point\(s\) of 2"),
        ("coincident_pair", ILL_CONDITIONED),
        ("near_coincident_pair", ILL_CONDITIONED),
    ],
)
def test_check_names_why_points_are_degenerate(
    monkeypatch: pytest.MonkeyPatch, case: str, reason: str
) -> None:
    contour = _face_contour()
    centres = {
        "collinear": _line(),
        "near_collinear": _line() + np.random.default_rng(0).normal(0.0, 1e-9, (17, 2)),
        "duplicated": np.where(np.arange(17)[:, None] % 2 == 0, contour[0], contour[8]),
        "too_few": contour[[0, 8]],
        "coincident_pair": np.concatenate([contour, contour[:1]]),
        "near_coincident_pair": np.concatenate([contour, contour[:1] + 1e-6]),  # 1e-4 px at 256 px
    }[case]
    centres = torch.from_numpy(centres)[None]
    monkeypatch.setattr(torch.linalg, "solve", _unsolvable)  # the check must not rely on the solver
    with pytest.raises(ValueError, match=f"^degenerate control points: {reason}"):
        tps_fit(centres, centres.clone(), check=True)


def test_check_names_the_degenerate_batch_item() -> None:
    batch = torch.from_numpy(np.stack([_face_contour(), _line()]))
    with pytest.raises(ValueError, match=r"^degenerate control points \(batch item 1\): all 17 points lie"):
        tps_fit(batch, batch.clone(), check=True)


def test_check_passes_real_landmarks_and_anchored_lines() -> None:
    doc = json.loads(SAMPLE_POINTS.read_text())["images"]
    points = np.stack([normalize_points(np.asarray(p, float), 256, 256) for p in doc.values()])
    points = torch.from_numpy(points)
    values = points + 0.01
    checked = tps_fit(points, values, check=True)
    for ours, plain in zip(checked, tps_fit(points, values), strict=True):
        assert torch.equal(ours, plain)  # the check only reads
    # The anchors are control points too: points on one line warp fine with the border pinned.
    line = torch.from_numpy(_line())[None]
    with pytest.raises(ValueError, match="on one line"):
        tps_grid(line, line + 0.02, (32, 32), anchors=False, check=True)
    assert torch.isfinite(tps_grid(line, line + 0.02, (32, 32), anchors=True, check=True)).all()


def test_check_keeps_gradients() -> None:
    src, dst = _random_pairs(1, 6, seed=8)
    image = torch.rand(1, 1, 9, 9, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    grads = []
    for check in (False, True):
        s, d = src.clone().requires_grad_(True), dst.clone().requires_grad_(True)
        tps_warp(image, s, d, grid=None, check=check).square().sum().backward()
        grads.append((s.grad, d.grad))
    assert all(torch.equal(a, b) for a, b in zip(*grads, strict=True))
