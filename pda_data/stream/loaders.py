"""The training streams: stage batches (portraits of weighted domains paired with anime) and aux batches.

Batches are assembled inside the loader workers as uint8 (B, 3, S, S) tensors and turned into float
[-1, 1] once per batch by the iterable the loaders return, so the DataLoader runs with ``batch_size=None``.
Randomness comes from ``seed`` and the reader's (rank, worker): a run is reproducible. The stream knows
portrait domains and their weights (:mod:`pda_data.stream.domains`), not training stages.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset

from pda_data.shards.index import CLASSIFIER_ROLES, ShardError
from pda_data.stream.augment import Augmenter, ImageBatch, points_to_tensor, unit_range
from pda_data.stream.domains import check_weights, draw_domains, needed_roles
from pda_data.stream.readers import RoleSource, decoded_role, reader_seed, role_source
from pda_data.synthesis.augportrait import FusionOptions, fuse
from pda_data.synthesis.structure import render_heatmaps

HEATMAP_SIGMA = 1 / 64  # structure heatmap Gaussian sigma, as a fraction of the image size
_ERROR = "__shard_error__"  # the key of the one "batch" by which a worker hands its ShardError over


def role_samples(
    shards: str | Path,
    role: str,
    *,
    split: str,
    image_size: int,
    seed: int,
    infinite: bool = True,
    augment: bool | None = None,
    salt: int = 0,
) -> Iterator[dict[str, Any]]:
    """Decoded, augmented samples of one role for the current reader: image (S, S, 3), points, meta...

    ``augment`` defaults to train-split augmentation; ``salt`` separates independent streams of one role.
    """
    source = role_source(shards, role, split)
    train = (split == "train") if augment is None else augment
    aug = Augmenter(image_size, train=train, seed=reader_seed(seed, 1, salt))
    for s in decoded_role(source, seed=seed + salt, infinite=infinite):
        meta = s["meta"]
        extra = meta.get("structure_points")
        channels = meta.get("structure_channels")
        image, pts, ext, ch = aug(s["image"], s["points"], source.schema, extra, channels)
        yield {**s, "image": image, "points": pts, "structure_points": ext, "structure_channels": ch}


class _StageStream(IterableDataset):
    """Infinite batches of mixed portraits paired with independent anime portraits (:func:`stage_loader`)."""

    def __init__(
        self,
        sources: dict[str, RoleSource],
        weights: dict[str, float],
        fusion: FusionOptions,
        *,
        batch_size: int,
        image_size: int,
        seed: int,
        train: bool,
    ) -> None:
        super().__init__()
        self.sources, self.weights, self.fusion, self.train = sources, weights, fusion, train
        self.batch_size, self.image_size, self.seed = batch_size, image_size, seed

    def _decoded(self, role: str, salt: int) -> Iterator[dict[str, Any]]:
        if role not in self.sources:
            return iter(())
        return decoded_role(self.sources[role], seed=self.seed + salt)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        rng = np.random.default_rng(reader_seed(self.seed, 2))
        aug = Augmenter(self.image_size, train=self.train, seed=reader_seed(self.seed, 3))
        anime_aug = Augmenter(self.image_size, train=self.train, seed=reader_seed(self.seed, 4))
        coser, human, anime = self._decoded("coser", 0), self._decoded("human", 1), self._decoded("anime", 2)
        fusion = self.fusion
        producers: dict[str, Callable[[], dict[str, Any]]] = {
            "coser": lambda: next(coser),
            "human": lambda: next(human),
            "aug": lambda: _aug_portrait(next(human), next(coser), rng, fusion),
        }
        domains = draw_domains(self.weights, rng)
        anime_schema = self.sources["anime"].schema
        portrait_schema = next(self.sources[r].schema for r in ("coser", "human") if r in self.sources)
        size, scratch = self.image_size, np.empty((self.image_size, self.image_size, 3), np.uint8)

        def batch() -> dict[str, Any]:
            # A function, so no buffer of a handed-out batch stays referenced while the next one is built.
            portraits, animes = ImageBatch(self.batch_size, size), ImageBatch(self.batch_size, size)
            p_pts, p_dom, p_keys, a_pts, a_keys = [], [], [], [], []
            for i in range(self.batch_size):
                dom = next(domains)
                s = producers[dom]()
                image, pts, _, _ = aug(s["image"], s["points"], portrait_schema, out=scratch)
                portraits.put(i, image)
                p_pts.append(pts)
                p_dom.append(dom)
                p_keys.append(s["key"])
                a = next(anime)
                image, pts, _, _ = anime_aug(a["image"], a["points"], anime_schema, out=scratch)
                animes.put(i, image)
                a_pts.append(pts)
                a_keys.append(a["key"])
            return {
                "portrait": portraits.tensor(),
                "portrait_landmarks": points_to_tensor(p_pts, size),
                "portrait_domain": p_dom,
                "portrait_key": p_keys,
                "anime": animes.tensor(),
                "anime_landmarks": points_to_tensor(a_pts, size),
                "anime_key": a_keys,
            }

        while True:
            yield batch()


def _aug_portrait(
    human: dict[str, Any], coser: dict[str, Any], rng: np.random.Generator, options: FusionOptions
) -> dict[str, Any]:
    """An Aug-Portrait: a human face texture fused into a coser's face shape; landmarks are the coser's."""
    image = fuse(human["image"], human["points"], coser["image"], coser["points"], rng, options)
    return {**coser, "image": image, "key": f"{coser['key']}+{human['key']}"}


class _FloatImages:
    """Iterable over a batch source (dataset or DataLoader) that turns its uint8 image tensors into float
    [-1, 1] (:func:`unit_range`) as each batch is handed out: workers ship 1 byte per pixel, not 4."""

    def __init__(self, source: Iterable[dict[str, Any]], keys: tuple[str, ...]) -> None:
        self.source, self.keys = source, keys

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for batch in self.source:
            if _ERROR in batch:
                raise batch[_ERROR]
            yield self._convert(batch)

    def _convert(self, batch: dict[str, Any]) -> dict[str, Any]:
        # One allocation for all image tensors of the batch: a large block that the C allocator keeps and
        # reuses, rather than several that it hands back to the OS (page faults) every batch.
        floats = torch.empty((len(self.keys), *batch[self.keys[0]].shape), dtype=torch.float32)
        return batch | {k: unit_range(batch[k], out=f) for k, f in zip(self.keys, floats, strict=True)}


class _WorkerErrors(IterableDataset):
    """``dataset`` as run in a loader worker: a ShardError that stops it is handed over as a batch, so the
    main process raises it with its one-line message (the DataLoader would re-raise it wrapped in the
    worker's traceback text)."""

    def __init__(self, dataset: IterableDataset) -> None:
        super().__init__()
        self.dataset = dataset

    def __iter__(self) -> Iterator[dict[str, Any]]:
        try:
            yield from self.dataset
        except ShardError as exc:
            yield {_ERROR: exc}


def _worker_init(_: int) -> None:
    cv2.setNumThreads(1)  # one process per core already; OpenCV's own threads would only contend


def _loader(dataset: IterableDataset, num_workers: int, image_keys: tuple[str, ...]) -> _FloatImages:
    if num_workers <= 0:
        return _FloatImages(dataset, image_keys)
    loader = DataLoader(
        _WorkerErrors(dataset),
        batch_size=None,
        num_workers=num_workers,
        persistent_workers=True,
        prefetch_factor=4,
        worker_init_fn=_worker_init,
        # Not fork: a forked child of a process whose OpenCV (or OpenMP) thread pool is running can hang on
        # its first parallel call. Workers start once (persistent), so the clean start costs little.
        multiprocessing_context="forkserver",
    )
    return _FloatImages(loader, image_keys)


def stage_loader(
    shards: str | Path,
    weights: Mapping[str, float],
    *,
    batch_size: int,
    image_size: int,
    seed: int,
    num_workers: int = 0,
    fusion: FusionOptions | None = None,
    split: str = "train",
) -> Iterable[dict[str, Any]]:
    """Infinite batches of portraits drawn from the domains of ``weights``, each paired with an anime one.

    ``weights``: portrait domain (:data:`~pda_data.stream.domains.PORTRAIT_DOMAINS`) -> non-negative weight,
    normalized here. Each batch: ``portrait`` (B, 3, S, S) in [-1, 1], ``portrait_landmarks`` (B, 68, 2) in
    [-1, 1], ``portrait_domain`` (list of "coser" | "aug" | "human"), ``anime`` (B, 3, S, S),
    ``anime_landmarks`` (B, 56, 2), plus ``portrait_key`` / ``anime_key`` for provenance. Aug-Portraits
    are fused on the fly by ``pda_data.synthesis.augportrait.fuse`` with ``fusion`` (default options).
    Every role read is checked here (ShardError: missing, or packed with another landmark schema), not
    later in a worker.
    """
    mix = check_weights(weights)
    sources = {role: role_source(shards, role, split) for role in sorted(needed_roles(mix) | {"anime"})}
    ds = _StageStream(
        sources,
        mix,
        fusion or FusionOptions(),
        batch_size=batch_size,
        image_size=image_size,
        seed=seed,
        train=split == "train",
    )
    return _loader(ds, num_workers, ("portrait", "anime"))


class _AuxStream(IterableDataset):
    """Batches of one classifier role (see :func:`aux_loader`)."""

    def __init__(
        self,
        shards: str | Path,
        role: str,
        *,
        split: str,
        batch_size: int,
        image_size: int,
        seed: int,
        infinite: bool,
    ) -> None:
        super().__init__()
        self.shards, self.role, self.split, self.infinite = shards, role, split, infinite
        self.batch_size, self.image_size, self.seed = batch_size, image_size, seed

    def __iter__(self) -> Iterator[dict[str, Any]]:
        train = self.infinite and self.split == "train"
        samples = role_samples(
            self.shards,
            self.role,
            split=self.split,
            image_size=self.image_size,
            seed=self.seed,
            infinite=self.infinite,
            augment=train,
        )
        batch: list[dict[str, Any]] = []
        for s in samples:
            batch.append(s)
            if len(batch) == self.batch_size:
                yield self._collate(batch)
                batch = []
        if batch:
            yield self._collate(batch)

    def _collate(self, batch: list[dict[str, Any]]) -> dict[str, Any]:
        images = ImageBatch(len(batch), self.image_size)
        for i, s in enumerate(batch):
            images.put(i, s["image"])
        out: dict[str, Any] = {
            "image": images.tensor(),
            "label": torch.tensor([float(s["meta"]["label"]) for s in batch]),
            "key": [s["key"] for s in batch],
        }
        if self.role == "structure":
            shape = (self.image_size, self.image_size)
            sigma = HEATMAP_SIGMA * self.image_size
            maps = [
                render_heatmaps(s["structure_points"], s["structure_channels"], shape, sigma) for s in batch
            ]
            out["heatmaps"] = torch.from_numpy(np.stack(maps).astype(np.float32))
        return out


def aux_loader(
    shards: str | Path,
    role: str,
    *,
    split: str,
    batch_size: int,
    image_size: int,
    seed: int,
    num_workers: int = 0,
    infinite: bool = True,
) -> Iterable[dict[str, Any]]:
    """Batches for the structure or highlight classifier: ``image`` (B, 3, S, S) in [-1, 1], ``label`` (B,)
    float (1 = legit / clean), and for ``structure`` the ``heatmaps`` (B, 4, S, S) of its structure points.

    ``infinite=False`` reads every shard of the split once, unaugmented (held-out accuracy).
    """
    if role not in CLASSIFIER_ROLES:
        raise ValueError(f"aux role must be 'structure' or 'highlight', got {role!r}")
    role_source(shards, role, split)  # fail here with a clear error, not later in a worker
    ds = _AuxStream(
        shards, role, split=split, batch_size=batch_size, image_size=image_size, seed=seed, infinite=infinite
    )
    return _loader(ds, num_workers, ("image",))
