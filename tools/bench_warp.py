"""Benchmark the TPS warp against kornia's, and Aug-Portrait fusion throughput, on one CPU thread.

TPS: a 3 x 256 x 256 image, 17 contour points plus the border anchors, an anime-like jaw deformation, at
batch 1 and 16. Ours (fast coarse-grid path and exact path) and the reference,
``kornia.geometry.transform.get_tps_transform`` + ``warp_image_tps``, run on the same inputs in the same
invocation; times are the best of several rounds. ``speedup_vs_kornia`` = kornia time / our fast-path time
at batch 1. ``fast_max_err_px`` = the largest distance, in pixels, between the fast and the exact sampling
grids (batch 16). Aug-Portrait: ``augportrait.fuse`` on the two shared selfies (dlib landmarks found here;
``skimage.data.astronaut()`` and its mirror image when the samples are missing), fusions per second of
process CPU time with one thread (``aug_fusions_per_s_per_core``, an absolute figure that depends on the
machine). Its machine-independent figure is ``aug_fusion_vs_floor`` = fuse time / floor time (lower is
better, >= 1): the floor is the irreducible part of the same fusion, timed in the same run on the same
images, the ``cv2.remap`` of the human face window through maps precomputed once (no spline solve or
evaluation) and the alpha blend into the coser through a precomputed mask (no colour matching or feather).

    python tools/bench_warp.py [--samples DIR] [--rounds 5] [--fusions 200]

The last line of stdout is one JSON object: speedup_vs_kornia, speedup_vs_kornia_b16, exact_speedup_vs_kornia,
fast_max_err_px, aug_fusions_per_s_per_core, aug_fusion_vs_floor (lower is better), aug_floor_per_s_per_core,
and the times in ms.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import cv2
import numpy as np
import torch
from kornia.geometry.transform import get_tps_transform, warp_image_tps

from pda_data.faces.detectors import make_detector
from pda_data.faces.landmarks import Landmarker
from pda_data.geometry.warp import border_anchors, tps_grid, tps_warp
from pda_data.io.images import load_image
from pda_data.synthesis.augportrait import FusionOptions, fuse, fuse_parts, landmark_maps

SIZE = 256


def _points(batch: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Jaw-like contours (17 points, normalized) and their narrowed, lengthened anime targets."""
    rng = np.random.default_rng(seed)
    t = np.linspace(np.pi * 1.05, -0.05 * np.pi, 17)
    base = np.stack([0.5 * np.cos(t), 0.6 * np.abs(np.sin(t)) - 0.1], -1)
    src = base[None] * rng.uniform(0.85, 1.1, (batch, 1, 1)) + rng.normal(0, 0.01, (batch, 17, 2))
    below = np.clip(src[..., 1:], 0, None)
    dst = src * np.concatenate([1 - 0.25 * below, np.ones_like(below)], -1)
    dst[..., 1:] += 0.12 * below
    return torch.from_numpy(src).float(), torch.from_numpy(dst).float()


def _best_ms(fn: Callable[[], object], rounds: int, repeat: int) -> float:
    fn()
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(repeat):
            fn()
        best = min(best, (time.perf_counter() - start) / repeat)
    return best * 1e3


def _kornia(image: torch.Tensor, src: torch.Tensor, dst: torch.Tensor) -> torch.Tensor:
    """kornia's warp with the same anchors; its convention fits output (dst) -> input (src)."""
    anchors = border_anchors(5, src.dtype).expand(src.shape[0], -1, -1)
    s, d = torch.cat([src, anchors], 1), torch.cat([dst, anchors], 1)
    kernel, affine = get_tps_transform(d, s)
    return warp_image_tps(image, s, kernel, affine, align_corners=True)


def bench_tps(rounds: int) -> dict[str, float]:
    result: dict[str, float] = {}
    for batch, repeat in ((1, 10), (16, 2)):
        image = torch.rand(batch, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(0))
        src, dst = _points(batch, seed=batch)
        with torch.no_grad():
            kornia, fast = partial(_kornia, image, src, dst), partial(tps_warp, image, src, dst)
            result[f"kornia_ms_b{batch}"] = _best_ms(kornia, rounds, repeat)
            result[f"fast_ms_b{batch}"] = _best_ms(fast, rounds, repeat)
            result[f"exact_ms_b{batch}"] = _best_ms(partial(tps_warp, image, src, dst, grid=None), rounds, 1)
        if batch == 16:
            exact = tps_grid(src, dst, (SIZE, SIZE), grid=None)
            fast = tps_grid(src, dst, (SIZE, SIZE), grid=64)
            result["fast_max_err_px"] = float((exact - fast).norm(dim=-1).max()) * (SIZE - 1) / 2
    return result


def _portraits(samples: Path) -> list[tuple[np.ndarray, np.ndarray]]:
    names = ("selfie_female_222.jpg", "selfie_female_2321.jpg")
    if all((samples / n).is_file() for n in names):
        images = [load_image(samples / n) for n in names]
    else:
        import skimage.data

        face = cv2.resize(
            skimage.data.astronaut()[0:300, 100:400], (SIZE, SIZE), interpolation=cv2.INTER_AREA
        )
        images = [face, np.ascontiguousarray(face[:, ::-1])]
    detector, landmarker = make_detector("dlib-hog"), Landmarker()
    return [(rgb, landmarker.predict(rgb, detector.detect(rgb)[0].box)) for rgb in images]


def _fusions_per_s(fusions: int, one: Callable[[int], object]) -> float:
    """``one(i)`` for i < ``fusions`` (after 5 warm-up calls), per second of process CPU time."""
    for i in range(5):
        one(i)
    start = time.process_time()
    for i in range(fusions):
        one(i)
    return fusions / (time.process_time() - start)


def _floor(
    human: np.ndarray, h_pts: np.ndarray, coser: np.ndarray, c_pts: np.ndarray
) -> Callable[[], object]:
    """The fusion's irreducible work: remap through precomputed maps and blend through a precomputed mask,
    both over the box where the paste mask is non-zero (fuse's output is the coser elsewhere)."""
    mask = fuse_parts(human, h_pts, coser, c_pts, np.random.default_rng(0)).mask
    x0, y0, w, h = cv2.boundingRect((mask > 0).astype(np.uint8))
    window = (slice(y0, y0 + h), slice(x0, x0 + w))
    maps = landmark_maps(h_pts, c_pts, human.shape[:2], coser.shape[:2], FusionOptions().grid, window)
    alpha = mask[window][..., None]

    def blend() -> np.ndarray:
        warped = cv2.remap(human, *maps, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        image = coser.copy()
        image[window] = (coser[window] * (1.0 - alpha) + warped * alpha + 0.5).astype(np.uint8)
        return image

    return blend


def bench_aug(samples: Path, fusions: int) -> tuple[float, float]:
    """Fusions per CPU second through ``fuse`` and through the floor, alternating the two pairings."""
    (human, h_pts), (coser, c_pts) = _portraits(samples)
    pairs = ((human, h_pts, coser, c_pts), (coser, c_pts, human, h_pts))
    rng = np.random.default_rng(0)
    ours = _fusions_per_s(fusions, lambda i: fuse(*pairs[i % 2], rng))
    floors = [_floor(*pair) for pair in pairs]
    floor = _fusions_per_s(fusions, lambda i: floors[i % 2]())
    return ours, floor


def main() -> None:
    repo = Path(__file__).resolve().parents[1]
    default_samples = Path(os.environ.get("PDA_SHARED", repo.parent / "shared")) / "samples"
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--samples", type=Path, default=default_samples, help="folder with the shared selfies"
    )
    parser.add_argument("--rounds", type=int, default=5, help="timing rounds (best is kept)")
    parser.add_argument("--fusions", type=int, default=200, help="Aug-Portrait fusions to time")
    args = parser.parse_args()
    torch.set_num_threads(1)
    cv2.setNumThreads(1)

    tps = bench_tps(args.rounds)
    for b in (1, 16):
        times = (tps[f"kornia_ms_b{b}"], tps[f"fast_ms_b{b}"], tps[f"exact_ms_b{b}"])
        print(
            "batch {:2d}: kornia {:8.2f} ms   ours fast {:7.2f} ms   ours exact {:8.2f} ms".format(b, *times)
        )
    print(f"fast path vs exact: max {tps['fast_max_err_px']:.4f} px")
    aug, floor = bench_aug(args.samples, args.fusions)
    print(f"Aug-Portrait: {aug:.1f} fusions/s per core (256x256)")
    print(
        f"  floor (remap through precomputed maps + blend, no spline): {floor:.1f}/s per core; "
        f"fuse / floor time = {floor / aug:.2f} (lower is better)"
    )
    summary = {
        "speedup_vs_kornia": round(tps["kornia_ms_b1"] / tps["fast_ms_b1"], 2),
        "speedup_vs_kornia_b16": round(tps["kornia_ms_b16"] / tps["fast_ms_b16"], 2),
        "exact_speedup_vs_kornia": round(tps["kornia_ms_b1"] / tps["exact_ms_b1"], 2),
        "fast_max_err_px": round(tps["fast_max_err_px"], 4),
        "aug_fusions_per_s_per_core": round(aug, 1),
        "aug_fusion_vs_floor": round(floor / aug, 2),
        "aug_floor_per_s_per_core": round(floor, 1),
        **{k: round(v, 3) for k, v in tps.items() if k.endswith(tuple(f"ms_b{b}" for b in (1, 16)))},
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
