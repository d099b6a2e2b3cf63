"""Training the landmark predictor on annotated portraits, with a held-out split and its NME report.

Every portrait is cropped once in the box its annotation implies (:func:`~pda_data.annotations.shapes.
landmark_box`, the frame the anime-lbp detector gives); each epoch then varies every crop
(:mod:`~pda_data.annotations.predictor.augment`) and fits the soft-argmax points with an L1 loss in crop
fractions. The held-out portraits are predicted in their unvaried crops.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from pda_data.annotations.predictor import DEFAULT_BATCH, DEFAULT_EPOCHS, DEFAULT_VAL_FRACTION
from pda_data.annotations.predictor.augment import AugmentOptions, make_augment
from pda_data.annotations.predictor.crop import face_crop, from_crop, to_crop
from pda_data.annotations.predictor.model import LandmarkPredictor, PredictorConfig, to_input
from pda_data.annotations.predictor.net import soft_argmax
from pda_data.annotations.predictor.nme import nme_report
from pda_data.annotations.shapes import landmark_box


@dataclass(frozen=True)
class TrainOptions:
    """Epochs (passes over the training portraits), batch size, peak learning rate, held-out share, seed."""

    epochs: int = DEFAULT_EPOCHS
    batch: int = DEFAULT_BATCH
    lr: float = 3e-3
    val_fraction: float = DEFAULT_VAL_FRACTION
    seed: int = 0
    augment: AugmentOptions = field(default_factory=AugmentOptions)


@dataclass
class TrainResult:
    """The trained predictor, the held-out indices, their NME report (empty without held-out portraits) and
    the mean training loss of each epoch."""

    predictor: LandmarkPredictor
    val_index: np.ndarray
    report: dict[str, float]
    losses: list[float]


def split(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, held-out) indices of ``n`` portraits: at least one of each when ``n >= 2`` and
    ``fraction > 0``."""
    order = np.random.default_rng(seed).permutation(n)
    n_val = min(max(1, round(fraction * n)), n - 1) if n >= 2 and fraction > 0 else 0
    return np.sort(order[n_val:]), np.sort(order[:n_val])


def canonical_crops(
    images: Sequence[np.ndarray], points: np.ndarray, size: int
) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """(crops (N, S, S, 3), their points (N, K, 2) in crop pixels, each crop's 2x3 image -> crop affine)."""
    crops, pts, matrices = [], [], []
    for rgb, p in zip(images, points, strict=True):
        crop, matrix = face_crop(rgb, landmark_box(p), size)
        crops.append(crop)
        pts.append(to_crop(p, matrix))
        matrices.append(matrix)
    return np.stack(crops), np.stack(pts), matrices


def _lr(step: int, total: int, peak: float) -> float:
    """Linear warm-up over the first 5% of the steps, then a cosine decay to zero."""
    warm = max(1, total // 20)
    if step < warm:
        return peak * (step + 1) / warm
    return peak * 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, total - warm)))


def train_predictor(
    images: Sequence[np.ndarray],
    points: np.ndarray,
    config: PredictorConfig | None = None,
    options: TrainOptions = TrainOptions(),
    on_epoch: Callable[[int, float], None] | None = None,
) -> TrainResult:
    """Train on HxWx3 uint8 portraits and their (N, K, 2) landmarks in image pixels; ``on_epoch(epoch, loss)``
    is called after each epoch."""
    torch.manual_seed(options.seed)
    config = config or PredictorConfig()
    predictor = LandmarkPredictor(config)
    pts = predictor.schema.check_shape(points)
    train_idx, val_idx = split(len(images), options.val_fraction, options.seed)
    if len(train_idx) == 0:
        raise ValueError("no portraits to train on")
    crops, crop_pts, matrices = canonical_crops(images, pts, config.size)
    augment = make_augment(options.seed, options.augment, predictor.schema)
    rng = np.random.default_rng(options.seed)
    net = predictor.net
    opt = torch.optim.AdamW(net.parameters(), lr=options.lr, weight_decay=1e-4)
    per_epoch = max(1, math.ceil(len(train_idx) / options.batch))
    total, step, losses = options.epochs * per_epoch, 0, []
    for epoch in range(options.epochs):
        net.train()
        order = rng.permutation(train_idx)
        running = 0.0
        for b in range(per_epoch):
            chosen = order[b * options.batch : (b + 1) * options.batch]
            samples = [augment(crops[i], crop_pts[i]) for i in chosen]
            x = to_input(np.stack([s[0] for s in samples]))
            target = torch.from_numpy(np.stack([s[1] for s in samples])).float() / config.size
            for group in opt.param_groups:
                group["lr"] = _lr(step, total, options.lr)
            predicted, _ = soft_argmax(net(x))
            loss = (predicted / config.size - target).abs().mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            running += float(loss.detach())
            step += 1
        losses.append(running / per_epoch)
        if on_epoch is not None:
            on_epoch(epoch, losses[-1])
    report: dict[str, float] = {}
    if len(val_idx):
        predicted, _ = predictor.predict_crops(crops[val_idx])
        back = np.stack([from_crop(p, matrices[i]) for p, i in zip(predicted, val_idx, strict=True)])
        report = nme_report(back, pts[val_idx], predictor.schema)
    return TrainResult(predictor, val_idx, report, losses)
