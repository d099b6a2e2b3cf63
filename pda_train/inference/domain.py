"""The domain score: the share of translations that a small anime-vs-human classifier calls anime.

Hue-HistD and LPIPS reward a translation for keeping the photo; something must also say that the result
left the photo domain, by a measure an unchanged photo fails. :func:`train_domain_classifier` fits the
auxiliary :class:`~pda_train.nets.auxiliary.FaceClassifier` (5 conv blocks, one logit) on the train split's
anime and human images, holding out a share of each to report its accuracy on images it never saw;
:func:`anime_share` is then the fraction of translations with ``P(anime) > 0.5``. Untranslated test photos
are scored too, as the reference that should sit near 0.

The classifier is seeded and trained on balanced batches with flips and small shifts; it judges whole
64 px-scale images, so it keys on whatever separates the two domains in the data at hand (for the demo:
flat colour regions and ink outlines against photo texture, since both domains share one colour range).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch
from torch.nn import functional as F

from pda_data.stream.augment import images_to_tensor
from pda_train.nets.auxiliary import FaceClassifier

HOLDOUT = 0.25  # share of each domain's train images kept out of the classifier's training
STEPS = 300
BATCH = 16
CHANNELS = 8
MAX_SHIFT = 0.0625  # random shifts up to this fraction of the side


@dataclass
class DomainClassifier:
    """The fitted classifier, the side its inputs are resized to, and its held-out figures."""

    net: FaceClassifier
    size: int
    heldout_accuracy: float
    counts: dict[str, int]  # train / held-out images per domain


def _batch_tensor(images: list[np.ndarray], size: int) -> torch.Tensor:
    """RGB uint8 images resized to ``size`` as a (N, 3, size, size) batch in [-1, 1]."""
    resized = [
        im if im.shape[:2] == (size, size) else cv2.resize(im, (size, size), interpolation=cv2.INTER_AREA)
        for im in images
    ]
    return images_to_tensor(resized)


def _augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Random horizontal flips and shifts (reflect-padded) of a (B, 3, S, S) batch."""
    flip = torch.rand(len(x), generator=gen) < 0.5
    x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    pad = max(1, round(x.shape[-1] * MAX_SHIFT))
    padded = F.pad(x, (pad, pad, pad, pad), mode="reflect")
    dx, dy = (int(v) for v in torch.randint(0, 2 * pad + 1, (2,), generator=gen))
    return padded[..., dy : dy + x.shape[-2], dx : dx + x.shape[-1]]


def _split(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    order = rng.permutation(n)
    held = max(1, round(n * HOLDOUT))
    return order[held:], order[:held]


def train_domain_classifier(
    anime: list[np.ndarray], human: list[np.ndarray], size: int, *, seed: int = 0, steps: int = STEPS
) -> DomainClassifier:
    """Fit anime (label 1) vs human (label 0) on RGB uint8 images; needs at least 2 of each."""
    if len(anime) < 2 or len(human) < 2:
        raise ValueError(f"the domain classifier needs 2+ anime and 2+ human train images, got "
                         f"{len(anime)} and {len(human)}")
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(seed)
    xa, xh = _batch_tensor(anime, size), _batch_tensor(human, size)
    (ta, va), (th, vh) = _split(len(xa), rng), _split(len(xh), rng)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = FaceClassifier(in_channels=3, channels=CHANNELS)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    half = BATCH // 2
    labels = torch.cat([torch.ones(half), torch.zeros(half)])
    net.train()
    for _ in range(steps):
        ia = torch.as_tensor(ta[torch.randint(0, len(ta), (half,), generator=gen).numpy()])
        ih = torch.as_tensor(th[torch.randint(0, len(th), (half,), generator=gen).numpy()])
        x = _augment(torch.cat([xa[ia], xh[ih]]), gen)
        loss = F.binary_cross_entropy_with_logits(net(x), labels)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    net.eval()
    heldout = torch.cat([xa[torch.as_tensor(va)], xh[torch.as_tensor(vh)]])
    truth = torch.cat([torch.ones(len(va)), torch.zeros(len(vh))])
    with torch.no_grad():
        accuracy = float(((net(heldout) > 0).float() == truth).float().mean())
    counts = {"anime_train": len(ta), "anime_heldout": len(va),
              "human_train": len(th), "human_heldout": len(vh)}
    return DomainClassifier(net, size, accuracy, counts)


def anime_probabilities(classifier: DomainClassifier, images: list[np.ndarray]) -> np.ndarray:
    """P(anime) per RGB uint8 image, (N,) float64."""
    with torch.no_grad():
        logits = classifier.net(_batch_tensor(images, classifier.size))
    return torch.sigmoid(logits).double().numpy()


def anime_share(classifier: DomainClassifier, images: list[np.ndarray]) -> float:
    """Fraction of ``images`` the classifier calls anime (P > 0.5)."""
    return float((anime_probabilities(classifier, images) > 0.5).mean())
