"""Landmark-driven image warps: a batched, differentiable thin-plate spline and a piecewise-affine warp.

The TPS moves the content found at ``src`` points to ``dst`` points. It is a backward warp: the spline is
fitted from ``dst`` to ``src`` and evaluated at every output pixel to find where to sample the input, then
``grid_sample`` (align_corners=True) reads the image there. Points are (x, y) in [-1, 1] with the
align_corners=True convention (see :func:`pda_data.schema.normalize_points`).

The kernel is U(r) = r^2 log r with a degree-1 polynomial, the same spline as
``scipy.interpolate.RBFInterpolator(kernel="thin_plate_spline")``. The spline is solved in float64 so that
gradients through ``torch.linalg.solve`` stay accurate (while a graph is exported to ONNX, which has no
linear solve, :func:`gauss_jordan_solve` solves it in plain tensor ops instead); both the torch warp and
the numpy/cv2 Aug-Portrait path go through :func:`tps_grid`, so there is one spline implementation.

Control points from user data (detected or annotated landmarks) are checked before solving with
``check=True`` (:func:`check_spline_system`): too few distinct points, all points (nearly) on one line, or a
condition number above :data:`MAX_CONDITION` raise a ValueError that says which. The check costs an SVD
and a host sync, so the trainer's warp of generated points leaves it off.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from scipy.spatial import Delaunay, QhullError
from torch import Tensor

_EPS = 1e-20
MAX_CONDITION = 1e10  # 2-norm condition number of the spline system; float64 keeps >= 6 digits below it
MIN_SPREAD = 1e-3  # points whose spread across their main line is below this fraction of it are collinear
_COINCIDENT = 1e-9  # points closer than this fraction of the point set's extent are one point


def _kernel(sq_dist: Tensor) -> Tensor:
    """U(r) = r^2 log r = 0.5 r^2 log r^2, from squared distances, with U(0) = 0 and finite gradients."""
    positive = sq_dist > _EPS
    safe = torch.where(positive, sq_dist, torch.ones_like(sq_dist))
    return torch.where(positive, 0.5 * sq_dist * torch.log(safe), torch.zeros_like(sq_dist))


def _sq_dist(a: Tensor, b: Tensor) -> Tensor:
    """Pairwise squared distances (B, M, 2) x (B, N, 2) -> (B, M, N).

    Expanded as |a|^2 + |b|^2 - 2 a.b (a matmul: no (B, M, N, 2) temporary) and without a sqrt, so it
    stays differentiable at coincident points.
    """
    sq = (a * a).sum(-1)[:, :, None] + (b * b).sum(-1)[:, None, :] - 2.0 * (a @ b.transpose(1, 2))
    return sq.clamp_min(0.0)


def border_anchors(
    per_side: int = 5, dtype: torch.dtype = torch.float64, device: torch.device | None = None
) -> Tensor:
    """Evenly spaced points on the [-1, 1] square border, ``4 * (per_side - 1)`` of them, shape (K, 2)."""
    if per_side < 2:
        raise ValueError(f"per_side must be >= 2, got {per_side}")
    t = torch.linspace(-1.0, 1.0, per_side, dtype=dtype, device=device)[:-1]
    one = torch.ones_like(t)
    top = torch.stack([t, -one], -1)
    right = torch.stack([one, t], -1)
    bottom = torch.stack([-t, one], -1)
    left = torch.stack([-one, -t], -1)
    return torch.cat([top, right, bottom, left], 0)


def tps_fit(
    centres: Tensor, values: Tensor, smoothing: float = 0.0, *, check: bool = False
) -> tuple[Tensor, Tensor]:
    """Fit the spline f with f(centres) = values, per batch item.

    ``centres`` and ``values`` are (B, N, 2). Returns the kernel weights (B, N, 2) and the affine part
    (B, 3, 2) (rows: constant, x, y). ``smoothing`` is added to the kernel diagonal, as in scipy's
    RBFInterpolator. With ``check``, degenerate centres raise ValueError before solving
    (:func:`check_spline_system`); without it they give ``torch.linalg.LinAlgError`` or huge values.
    """
    b, n, _ = centres.shape
    k = _kernel(_sq_dist(centres, centres))
    if smoothing:
        k = k + smoothing * torch.eye(n, dtype=k.dtype, device=k.device)
    p = torch.cat([torch.ones(b, n, 1, dtype=centres.dtype, device=centres.device), centres], -1)
    top = torch.cat([k, p], -1)
    bottom = torch.cat([p.transpose(1, 2), torch.zeros(b, 3, 3, dtype=k.dtype, device=k.device)], -1)
    system = torch.cat([top, bottom], 1)
    if check:
        check_spline_system(centres, system)
    rhs = torch.cat([values, torch.zeros(b, 3, 2, dtype=values.dtype, device=values.device)], 1)
    solve = gauss_jordan_solve if torch.onnx.is_in_onnx_export() else torch.linalg.solve
    solution = solve(system, rhs)
    return solution[:, :n], solution[:, n:]


def gauss_jordan_solve(a: Tensor, b: Tensor) -> Tensor:
    """Solve ``a x = b`` for ``a`` (B, n, n) and ``b`` (B, n, k): Gauss-Jordan elimination with partial
    pivoting, unrolled over the n columns in elementwise ops and gathers (no LAPACK call), so that graph
    exporters can trace it. Matches ``torch.linalg.solve`` to rounding for well-conditioned systems."""
    n = a.shape[-1]
    m = torch.cat([a, b], -1)
    rows = torch.arange(n, device=a.device)
    for k in range(n):
        pivot = (m[:, k:, k].abs().argmax(-1) + k)[:, None]  # (B, 1): the row to swap into row k
        order = torch.where(rows == k, pivot, torch.where(rows == pivot, k, rows))
        m = torch.gather(m, 1, order[:, :, None].expand_as(m))
        row = m[:, k : k + 1] / m[:, k : k + 1, k : k + 1]
        m = torch.where((rows == k)[None, :, None], row, m - m[:, :, k : k + 1] * row)
    return m[:, :, n:]


def _degenerate_reason(points: np.ndarray) -> str | None:
    """Why a thin-plate spline through ``points`` (N, 2) has no well-defined solution, or None.

    Its affine part needs three distinct points that are not on one line: fewer distinct points (closer
    than ``_COINCIDENT`` of the extent count as one) or a minor/major spread ratio of the centred points
    below ``MIN_SPREAD`` are degenerate.
    """
    pts = np.asarray(points, np.float64).reshape(-1, 2)
    extent = float(np.ptp(pts, axis=0).max()) if len(pts) else 0.0
    dist = np.hypot(*(pts[:, None, :] - pts[None, :, :]).transpose(2, 0, 1))
    distinct = len(pts) - int(np.tril(dist <= _COINCIDENT * extent, k=-1).any(1).sum())
    if distinct < 3:
        return f"only {distinct} distinct point(s) of {len(pts)}, a spline needs 3 that are not on one line"
    spread = np.linalg.svd(pts - pts.mean(0), compute_uv=False)
    if spread[1] < MIN_SPREAD * spread[0]:
        return (
            f"all {len(pts)} points lie (nearly) on one line: their spread across it is "
            f"{spread[1] / spread[0]:.1e} of their spread along it (minimum {MIN_SPREAD:.0e})"
        )
    return None


def check_spline_system(centres: Tensor, system: Tensor) -> None:
    """Raise ValueError ("degenerate ...", with the reason) unless every batch item's spline is solvable.

    ``centres`` (B, N, 2) are the control points and ``system`` (B, N+3, N+3) the matrix :func:`tps_fit`
    solves; beyond :func:`_degenerate_reason`, its condition number must not exceed ``MAX_CONDITION``
    (coincident or nearly coincident points drive it up).
    """
    points = centres.detach().to("cpu", torch.float64).numpy()
    # numpy's SVD: torch's batched one costs milliseconds per call under thread contention.
    condition = np.linalg.cond(system.detach().to("cpu", torch.float64).numpy())
    for i, (pts, cond) in enumerate(zip(points, condition, strict=True)):
        where = f" (batch item {i})" if len(points) > 1 else ""
        reason = _degenerate_reason(pts)
        if reason is None and not cond <= MAX_CONDITION:
            reason = (
                f"the spline system is ill-conditioned, condition number {cond:.1e} > {MAX_CONDITION:.0e} "
                "(nearly coincident points?)"
            )
        if reason is not None:
            raise ValueError(f"degenerate control points{where}: {reason}")


def tps_eval(centres: Tensor, weights: Tensor, affine: Tensor, query: Tensor) -> Tensor:
    """Evaluate a fitted spline at ``query`` points (B, M, 2) -> (B, M, 2)."""
    k = _kernel(_sq_dist(query, centres))
    return k @ weights + affine[:, :1] + query @ affine[:, 1:]


def _with_anchors(src: Tensor, dst: Tensor, per_side: int) -> tuple[Tensor, Tensor]:
    anchors = border_anchors(per_side, src.dtype, src.device).expand(src.shape[0], -1, -1)
    return torch.cat([src, anchors], 1), torch.cat([dst, anchors], 1)


def _mesh(height: int, width: int, batch: int, dtype: torch.dtype, device: torch.device) -> Tensor:
    """(B, H*W, 2) normalized (x, y) coordinates of a height x width lattice spanning [-1, 1]."""
    ys = torch.linspace(-1.0, 1.0, height, dtype=dtype, device=device)
    xs = torch.linspace(-1.0, 1.0, width, dtype=dtype, device=device)
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([gx, gy], -1).reshape(1, -1, 2).expand(batch, -1, -1)


def tps_grid(
    src: Tensor,
    dst: Tensor,
    size: tuple[int, int],
    *,
    grid: int | None = 64,
    anchors: bool = True,
    anchors_per_side: int = 5,
    smoothing: float = 0.0,
    dtype: torch.dtype = torch.float64,
    check: bool = False,
) -> Tensor:
    """The sampling grid (B, H, W, 2) that moves ``src`` content to ``dst`` in an H x W output.

    ``grid=None`` evaluates the spline at every output pixel; an int evaluates it on a ``grid`` x ``grid``
    lattice and upsamples the coordinates bilinearly (align_corners=True), which is much faster and, the
    spline being smooth, within a small fraction of a pixel for face-sized deformations. The spline is
    solved and evaluated in float64; the upsampling and the result use ``dtype``. ``check`` rejects
    degenerate ``dst`` points (with the anchors) before solving, see :func:`check_spline_system`.
    """
    if src.shape != dst.shape or src.ndim != 3 or src.shape[-1] != 2:
        raise ValueError(f"src and dst must both be (B, N, 2), got {tuple(src.shape)} and {tuple(dst.shape)}")
    if grid is not None and grid < 2:
        raise ValueError(f"grid must be None or >= 2, got {grid}")
    height, width = size
    src64, dst64 = src.to(torch.float64), dst.to(torch.float64)
    if anchors:
        src64, dst64 = _with_anchors(src64, dst64, anchors_per_side)
    weights, affine = tps_fit(dst64, src64, smoothing, check=check)
    batch = src.shape[0]
    gh, gw = (height, width) if grid is None else (min(grid, height), min(grid, width))
    coarse = tps_eval(dst64, weights, affine, _mesh(gh, gw, batch, torch.float64, src.device))
    coarse = coarse.reshape(batch, gh, gw, 2).to(dtype)
    if (gh, gw) == (height, width):
        return coarse
    fine = F.interpolate(coarse.permute(0, 3, 1, 2), (height, width), mode="bilinear", align_corners=True)
    return fine.permute(0, 2, 3, 1)


def tps_warp(
    image: Tensor,
    src: Tensor,
    dst: Tensor,
    *,
    grid: int | None = 64,
    anchors: bool = True,
    anchors_per_side: int = 5,
    smoothing: float = 0.0,
    mode: str = "bilinear",
    padding_mode: str = "border",
    check: bool = False,
) -> Tensor:
    """Warp ``image`` (B, C, H, W) so that the content at ``src`` (B, N, 2) lands on ``dst`` (B, N, 2).

    Points are normalized (x, y) in [-1, 1]. With ``anchors`` the border points are pinned, so the
    background stays put. Differentiable in the image and in both point sets. Coincident control points
    make the spline system singular (``torch.linalg.LinAlgError`` or huge values): drop duplicates or pass a
    small ``smoothing``; ``check`` (for user data) raises a ValueError that says why before solving.
    """
    if image.ndim != 4:
        raise ValueError(f"image must be (B, C, H, W), got {tuple(image.shape)}")
    if src.shape[0] != image.shape[0]:
        raise ValueError(f"batch mismatch: image {image.shape[0]}, points {src.shape[0]}")
    # The exact path samples in float64 so that an identity map reproduces the pixels to float precision.
    dtype = torch.float64 if grid is None else image.dtype
    sampling = tps_grid(
        src,
        dst,
        (image.shape[2], image.shape[3]),
        grid=grid,
        anchors=anchors,
        anchors_per_side=anchors_per_side,
        smoothing=smoothing,
        dtype=dtype,
        check=check,
    )
    out = F.grid_sample(image.to(dtype), sampling, mode=mode, padding_mode=padding_mode, align_corners=True)
    return out.to(image.dtype)


def piecewise_affine_warp(
    image: np.ndarray, src: np.ndarray, dst: np.ndarray, out_shape: tuple[int, int]
) -> np.ndarray:
    """Warp ``image`` so each Delaunay triangle of ``dst`` (P, 2, pixels) receives its ``src`` triangle.

    Triangulates ``dst``; every output pixel inside a triangle samples ``image`` through that triangle's
    affine map (bilinear), pixels outside the triangulation are 0. Output has ``out_shape`` (H, W) and
    ``image``'s dtype and channels. Raises ValueError for degenerate point sets.
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 2 or len(src) < 3:
        raise ValueError(f"src and dst must both be (P>=3, 2), got {src.shape} and {dst.shape}")
    if not (np.isfinite(src).all() and np.isfinite(dst).all()):
        raise ValueError("non-finite landmark coordinates")
    try:
        tri = Delaunay(dst)
    except QhullError as exc:
        raise ValueError(f"degenerate target points, no triangulation ({str(exc).splitlines()[0]})") from exc
    if len(tri.coplanar):
        raise ValueError(f"degenerate target points: {len(tri.coplanar)} duplicate or coplanar point(s)")
    height, width = out_shape
    ys, xs = np.mgrid[0:height, 0:width]
    pix = np.stack([xs.ravel(), ys.ravel()], -1).astype(np.float64)
    simplex = tri.find_simplex(pix)
    inside = simplex >= 0
    s = simplex[inside]
    t = tri.transform[s]
    bary2 = np.einsum("kij,kj->ki", t[:, :2], pix[inside] - t[:, 2])
    bary = np.concatenate([bary2, 1.0 - bary2.sum(1, keepdims=True)], 1)
    mapped = np.einsum("ki,kij->kj", bary, src[tri.simplices[s]])
    map_xy = np.full((height * width, 2), -1e4, np.float32)
    map_xy[inside] = mapped
    map_xy = map_xy.reshape(height, width, 2)
    return cv2.remap(
        image, map_xy[..., 0], map_xy[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0
    )
