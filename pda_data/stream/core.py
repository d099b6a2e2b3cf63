"""Training streams over the packed shards: per-role readers, the stage mixer and landmark-aware augmentation.

Every reader (distributed rank x DataLoader worker) takes a disjoint share of a role's shards
(``webdataset.split_by_node`` then ``split_by_worker`` over the shard list), resamples shards from its share
forever, shuffles samples in a buffer, and skips an unreadable shard with a warning. Shards are read with the
lean tar parser :func:`pda_data.shards.tar.iter_tar_samples` and decoded with OpenCV. Augmentation is one
resample per image: a random square crop resized to the output size (``cv2.resize`` on the crop), then a
horizontal flip that applies the schema's flip permutation to the landmarks. There is no colour jitter:
colour is what the translation must preserve.

Batches are assembled inside the loader workers as uint8 (B, 3, S, S) tensors (a quarter of the bytes a
float batch moves between processes) and turned into float [-1, 1] once per batch by the iterable the
loaders return, so the trainer's DataLoader runs with ``batch_size=None``. Randomness comes from ``seed``
and the reader's (rank, worker): a run is reproducible.
"""

from __future__ import annotations

import json
import random
import tarfile
import warnings
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
import webdataset as wds
from torch.utils.data import DataLoader, IterableDataset

from pda_data.schema import STRUCTURE_FLIP, LandmarkSchema, normalize_points, unflatten_points
from pda_data.shards.index import ROLE_SCHEMA, ShardError, read_index, shard_urls
from pda_data.shards.sample import decode_rgb
from pda_data.shards.tar import iter_tar_samples
from pda_data.synthesis.augportrait import fuse
from pda_data.synthesis.structure import render_heatmaps

PORTRAIT_DOMAINS: tuple[str, ...] = ("coser", "aug", "human")
SHUFFLE_BUFFER = 256
SHUFFLE_INITIAL = 64  # samples buffered before the first one is drawn
# Random square crops cover this share of the image area (CycleGAN's 286 -> 256 crop is 0.80), then resize.
CROP_AREA = (0.8, 1.0)
HEATMAP_SIGMA = 1 / 64  # structure heatmap Gaussian sigma, as a fraction of the image size
# uint8 value -> float32 in [-1, 1] (x / 127.5 - 1, exact at both ends), applied with one cv2.LUT pass.
_UNIT_LUT = (np.arange(256) / 127.5 - 1.0).astype(np.float32)


def default_weights(stage: int, aug_prob: float = 0.5) -> dict[str, float]:
    """Portrait-domain weights of a training stage (paper Sec. 3).

    Stage 1: coser only. Stage 2: coser, each sample replaced by an on-the-fly Aug-Portrait with ``aug_prob``.
    Stage 3: human portraits join with a third of the draws; the rest is stage 2's coser/aug mix.
    """
    if stage == 1:
        return {"coser": 1.0}
    if stage == 2:
        return {"coser": 1.0 - aug_prob, "aug": aug_prob}
    if stage == 3:
        return {"coser": (1.0 - aug_prob) * 2 / 3, "aug": aug_prob * 2 / 3, "human": 1 / 3}
    raise ValueError(f"stage must be 1, 2 or 3, got {stage}")


def _check_weights(weights: dict[str, float]) -> dict[str, float]:
    unknown = set(weights) - set(PORTRAIT_DOMAINS)
    if unknown:
        raise ValueError(f"unknown portrait domain(s) {sorted(unknown)}; use {', '.join(PORTRAIT_DOMAINS)}")
    if any(w < 0 for w in weights.values()) or sum(weights.values()) <= 0:
        raise ValueError(f"weights must be non-negative with a positive sum, got {weights}")
    total = sum(weights.values())
    return {k: w / total for k, w in weights.items() if w > 0}


def draw_domains(weights: dict[str, float], rng: np.random.Generator, block: int = 1024) -> Iterator[str]:
    """Infinite i.i.d. draws of domain names with the given (normalized) weights."""
    names = list(weights)
    p = np.array([weights[n] for n in names], dtype=np.float64)
    p /= p.sum()
    while True:
        yield from (names[i] for i in rng.choice(len(names), size=block, p=p))


def reader_shards(urls: list[str], *, allow_shared: bool) -> list[str]:
    """This reader's disjoint share of ``urls`` (split by distributed rank, then by DataLoader worker).

    With fewer shards than readers, a reader with no share gets one shard to share when ``allow_shared``
    (infinite streams: better repeated data than an idle rank) and nothing otherwise (one-pass evaluation).
    """
    mine = list(wds.split_by_worker(wds.split_by_node(list(urls))))
    if mine or not allow_shared:
        return mine
    rank, world, worker, workers = wds.utils.pytorch_worker_info()
    reader = rank * workers + worker
    warnings.warn(
        f"{len(urls)} shard(s) for {world * workers} readers: reader {reader} re-reads "
        f"{urls[reader % len(urls)]}; pack with a smaller --shard-size",
        RuntimeWarning,
        stacklevel=2,
    )
    return [urls[reader % len(urls)]]


def _reader_seed(seed: int, *salt: int) -> int:
    rank, _, worker, _ = wds.utils.pytorch_worker_info()
    return int(np.random.SeedSequence([seed, rank, worker, *salt]).generate_state(1)[0])


_END = object()


def _draw(buf: list[Any], rng: random.Random) -> Any:
    i = rng.randrange(len(buf))
    buf[i], buf[-1] = buf[-1], buf[i]
    return buf.pop()


def shuffled(
    samples: Iterable[Any], size: int, rng: random.Random, initial: int = SHUFFLE_INITIAL
) -> Iterator[Any]:
    """``samples`` in buffer-shuffled order (webdataset's ``shuffle`` semantics).

    The buffer fills to ``initial`` before the first draw, then grows towards ``size`` by reading two
    samples per draw; each draw takes a uniformly random buffered sample; the rest drains at the end.
    """
    buf: list[Any] = []
    it = iter(samples)
    for sample in it:
        buf.append(sample)
        if len(buf) < size:
            more = next(it, _END)
            if more is not _END:
                buf.append(more)
        if len(buf) >= min(initial, size):
            yield _draw(buf, rng)
    while buf:
        yield _draw(buf, rng)


def raw_samples(
    urls: list[str], *, seed: int, infinite: bool = True, shuffle_buffer: int = SHUFFLE_BUFFER
) -> Iterator[dict[str, Any]]:
    """Raw samples (``__key__``, ``__url__``, one entry per member) of this reader's share of ``urls``.

    Infinite: shards resampled from the share, samples shuffled in a buffer. One pass: each shard once, in
    order. A shard that fails to open or read is reported with a warning and never drawn again (the samples
    before the damage are kept).
    """
    mine = reader_shards(urls, allow_shared=infinite)
    rng = random.Random(_reader_seed(seed))
    bad: set[str] = set()
    # Bound here, not looked up in ``except``: a generator closed at interpreter exit outlives the modules.
    damage = (tarfile.TarError, OSError, EOFError, UnicodeDecodeError, ValueError)

    def read(url: str) -> Iterator[dict[str, Any]]:
        try:
            for key, members in iter_tar_samples(url):
                members["__key__"], members["__url__"] = key, url
                yield members
        except damage as exc:
            if url not in bad:
                bad.add(url)
                warnings.warn(f"{url}: skipping unreadable shard ({exc})", RuntimeWarning, stacklevel=2)

    def resampled() -> Iterator[dict[str, Any]]:
        while True:
            live = [u for u in mine if u not in bad]
            if not live:
                raise ShardError(f"every shard of this reader is unreadable: {', '.join(mine)}")
            yield from read(rng.choice(live))

    if not infinite:
        return (s for url in mine for s in read(url))
    if shuffle_buffer > 1:
        return shuffled(resampled(), shuffle_buffer, rng)
    return resampled()


def decoded_samples(samples: Iterable[dict[str, Any]], image_format: str) -> Iterator[dict[str, Any]]:
    """Decode raw samples to ``{"image": RGB uint8, "points": (K, 2), "meta": dict, "key", "url"}``.

    An incomplete or undecodable sample (e.g. the tail of a truncated shard) is skipped with a warning.
    """
    for s in samples:
        try:
            meta = json.loads(s["json"])
            image = decode_rgb(s[image_format])
            points = unflatten_points(meta["landmarks"])
        except (KeyError, ValueError, TypeError) as exc:
            where = f"{s.get('__url__', '?')} [{s.get('__key__', '?')}]"
            warnings.warn(f"{where}: skipping sample ({exc!r})", RuntimeWarning, stacklevel=2)
            continue
        yield {"image": image, "points": points, "meta": meta, "key": s["__key__"], "url": s["__url__"]}


class Augmenter:
    """Landmark-aware geometric augmentation to ``image_size`` squares, one resample per image.

    Train: a random square crop covering ``crop_area`` of the image (at most its shorter side), resized to
    ``image_size`` (no aspect distortion), then a horizontal flip with ``flip_prob`` (landmarks mirrored and
    re-indexed with the schema's flip permutation; structure channels swap left/right). Eval: resize the
    whole image. Pixels and landmarks go through the same affine map (pixel-centre convention of
    :mod:`pda_data.schema`); downscaling uses area averaging, upscaling bilinear interpolation.
    """

    def __init__(
        self,
        image_size: int,
        *,
        train: bool,
        seed: int,
        flip_prob: float = 0.5,
        crop_area: tuple[float, float] = CROP_AREA,
    ) -> None:
        self.size, self.train, self.crop_area = image_size, train, crop_area
        self.flip_prob = flip_prob if train else 0.0
        self.rng = random.Random(seed)  # per-sample scalar draws: far cheaper than numpy's Generator
        self._unflipped = np.empty((image_size, image_size, 3), np.uint8)

    def crop_box(self, width: int, height: int) -> tuple[int, int, int, int]:
        """(x0, y0, crop width, crop height) of the next sample: a random square in train, all in eval."""
        if not self.train:
            return 0, 0, width, height
        area = self.rng.uniform(*self.crop_area) * width * height
        side = min(max(round(area**0.5), 1), width, height)
        return self.rng.randrange(width - side + 1), self.rng.randrange(height - side + 1), side, side

    def __call__(
        self,
        image: np.ndarray,
        points: np.ndarray,
        schema: LandmarkSchema,
        extra: np.ndarray | None = None,
        channels: np.ndarray | None = None,
        out: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Return (image, landmarks, extra points, their channels); ``extra`` are structure points (M, 2).

        ``out``, an (S, S, 3) uint8 array, receives the image (batch assembly reuses one buffer).
        """
        extra = np.empty((0, 2)) if extra is None else np.asarray(extra, dtype=np.float64).reshape(-1, 2)
        channels = np.empty(0, np.int64) if channels is None else np.asarray(channels, dtype=np.int64)
        x0, y0, w, h = self.crop_box(image.shape[1], image.shape[0])
        flip = self.rng.random() < self.flip_prob
        s = self.size
        # Output pixel u samples the crop at (u + 0.5) * w / s - 0.5: the map cv2.resize implements, so
        # landmarks take p * scale + shift (the 2x3 affine of the crop-resize; the flip mirrors both).
        sx, sy = s / w, s / h
        scale, shift = np.array([sx, sy]), np.array([(0.5 - x0) * sx - 0.5, (0.5 - y0) * sy - 0.5])
        if out is None:
            out = np.empty((s, s, 3), np.uint8)
        resized = self._unflipped if flip else out
        interp = cv2.INTER_AREA if w > s and h > s else cv2.INTER_LINEAR
        cv2.resize(image[y0 : y0 + h, x0 : x0 + w], (s, s), dst=resized, interpolation=interp)
        pts = points * scale + shift
        ext = extra * scale + shift
        if flip:
            cv2.flip(resized, 1, dst=out)
            pts = schema.flip(pts, s)
            ext[:, 0] = (s - 1) - ext[:, 0]
            channels = np.asarray(STRUCTURE_FLIP, dtype=np.int64)[channels]
        return out, pts, ext, channels


def unit_range(images: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    """uint8 images (B, 3, H, W) to float32 in [-1, 1] in one vectorized pass (x / 127.5 - 1).

    ``out``: a contiguous float32 tensor of the same shape to write into.
    """
    src = np.ascontiguousarray(images.numpy())
    flat = src.reshape(-1, src.shape[-2] * src.shape[-1])
    out = torch.empty(src.shape, dtype=torch.float32) if out is None else out
    cv2.LUT(flat, _UNIT_LUT, dst=out.numpy().reshape(flat.shape))
    return out


def _deinterleave(image: np.ndarray, planes: np.ndarray) -> None:
    """Copy an H x W x 3 uint8 image into ``planes`` (3, H, W) with one SIMD pass."""
    if image.shape != (*planes.shape[1:], 3) or image.dtype != np.uint8:
        raise ValueError(f"image {image.shape} {image.dtype} does not fit a {planes.shape} uint8 batch slot")
    cv2.split(np.ascontiguousarray(image), list(planes))


class ImageBatch:
    """A uint8 (B, 3, S, S) batch filled one H x W x 3 image at a time (de-interleaved into planes)."""

    def __init__(self, batch_size: int, size: int) -> None:
        self.array = np.empty((batch_size, 3, size, size), np.uint8)

    def put(self, i: int, image: np.ndarray) -> None:
        """Store image ``i`` (S x S x 3 uint8)."""
        _deinterleave(image, self.array[i])

    def tensor(self) -> torch.Tensor:
        return torch.from_numpy(self.array)


def images_to_tensor(images: list[np.ndarray]) -> torch.Tensor:
    """Stack H x W x 3 uint8 RGB images into a float tensor (B, 3, H, W) in [-1, 1]."""
    batch = np.empty((len(images), 3, *images[0].shape[:2]), np.uint8)
    for planes, image in zip(batch, images, strict=True):
        _deinterleave(image, planes)
    return unit_range(torch.from_numpy(batch))


def points_to_tensor(points: list[np.ndarray], size: int) -> torch.Tensor:
    """Stack (K, 2) pixel landmarks of ``size`` squares into (B, K, 2) float in [-1, 1]."""
    return torch.from_numpy(normalize_points(np.stack(points), size, size).astype(np.float32))


def decoded_role(
    shards: str | Path, role: str, *, split: str, seed: int, infinite: bool = True
) -> Iterator[dict[str, Any]]:
    """Decoded (unaugmented) samples of one role's split for the current reader (see :func:`raw_samples`)."""
    urls = shard_urls(shards, role, split)
    fmt = read_index(shards)["roles"][role].get("image_format", "png")
    return decoded_samples(raw_samples(urls, seed=seed, infinite=infinite), fmt)


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
    train = (split == "train") if augment is None else augment
    aug = Augmenter(image_size, train=train, seed=_reader_seed(seed, 1, salt))
    schema = ROLE_SCHEMA[role]
    for s in decoded_role(shards, role, split=split, seed=seed + salt, infinite=infinite):
        meta = s["meta"]
        extra = meta.get("structure_points")
        image, pts, ext, ch = aug(s["image"], s["points"], schema, extra, meta.get("structure_channels"))
        yield {**s, "image": image, "points": pts, "structure_points": ext, "structure_channels": ch}


class _StageStream(IterableDataset):
    """Infinite batches of mixed portraits paired with independent anime portraits (:func:`stage_loader`)."""

    def __init__(
        self,
        shards: str | Path,
        weights: dict[str, float],
        *,
        batch_size: int,
        image_size: int,
        seed: int,
        split: str,
    ) -> None:
        super().__init__()
        self.shards, self.weights, self.split = shards, weights, split
        self.batch_size, self.image_size, self.seed = batch_size, image_size, seed

    def _decoded(self, role: str, salt: int) -> Iterator[dict[str, Any]]:
        return decoded_role(self.shards, role, split=self.split, seed=self.seed + salt)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        rng = np.random.default_rng(_reader_seed(self.seed, 2))
        aug = Augmenter(self.image_size, train=self.split == "train", seed=_reader_seed(self.seed, 3))
        anime_aug = Augmenter(self.image_size, train=self.split == "train", seed=_reader_seed(self.seed, 4))
        need_coser = {"coser", "aug"} & set(self.weights)
        need_human = {"human", "aug"} & set(self.weights)
        coser = self._decoded("coser", 0) if need_coser else iter(())
        human = self._decoded("human", 1) if need_human else iter(())
        anime = self._decoded("anime", 2)
        producers: dict[str, Callable[[], dict[str, Any]]] = {
            "coser": lambda: next(coser),
            "human": lambda: next(human),
        }
        if "aug" in self.weights:
            producers["aug"] = lambda: _aug_portrait(next(human), next(coser), rng)
        domains = draw_domains(self.weights, rng)
        schema, anime_schema = ROLE_SCHEMA["coser"], ROLE_SCHEMA["anime"]
        size, scratch = self.image_size, np.empty((self.image_size, self.image_size, 3), np.uint8)

        def batch() -> dict[str, Any]:
            # A function, so no buffer of a handed-out batch stays referenced while the next one is built.
            portraits, animes = ImageBatch(self.batch_size, size), ImageBatch(self.batch_size, size)
            p_pts, p_dom, p_keys, a_pts, a_keys = [], [], [], [], []
            for i in range(self.batch_size):
                dom = next(domains)
                s = producers[dom]()
                image, pts, _, _ = aug(s["image"], s["points"], schema, out=scratch)
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


def _aug_portrait(human: dict[str, Any], coser: dict[str, Any], rng: np.random.Generator) -> dict[str, Any]:
    """An Aug-Portrait: a human face texture fused into a coser's face shape; landmarks are the coser's."""
    image = fuse(human["image"], human["points"], coser["image"], coser["points"], rng)
    return {**coser, "image": image, "key": f"{coser['key']}+{human['key']}"}


class _FloatImages:
    """Iterable over a batch source (dataset or DataLoader) that turns its uint8 image tensors into float
    [-1, 1] (:func:`unit_range`) as each batch is handed out: workers ship 1 byte per pixel, not 4."""

    def __init__(self, source: Iterable[dict[str, Any]], keys: tuple[str, ...]) -> None:
        self.source, self.keys = source, keys

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for batch in self.source:
            yield self._convert(batch)

    def _convert(self, batch: dict[str, Any]) -> dict[str, Any]:
        # One allocation for all image tensors of the batch: a large block that the C allocator keeps and
        # reuses, rather than several that it hands back to the OS (page faults) every batch.
        floats = torch.empty((len(self.keys), *batch[self.keys[0]].shape), dtype=torch.float32)
        return batch | {k: unit_range(batch[k], out=f) for k, f in zip(self.keys, floats, strict=True)}


def _worker_init(_: int) -> None:
    cv2.setNumThreads(1)  # one process per core already; OpenCV's own threads would only contend


def _loader(dataset: IterableDataset, num_workers: int, image_keys: tuple[str, ...]) -> _FloatImages:
    if num_workers <= 0:
        return _FloatImages(dataset, image_keys)
    loader = DataLoader(
        dataset,
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
    stage: int,
    *,
    batch_size: int,
    image_size: int,
    seed: int,
    num_workers: int = 0,
    aug_prob: float = 0.5,
    weights: dict[str, float] | None = None,
    split: str = "train",
) -> Iterable[dict[str, Any]]:
    """Infinite batches for a PDA training stage.

    Each batch: ``portrait`` (B, 3, S, S) in [-1, 1], ``portrait_landmarks`` (B, 68, 2) in [-1, 1],
    ``portrait_domain`` (list of "coser" | "aug" | "human"), ``anime`` (B, 3, S, S), ``anime_landmarks``
    (B, 56, 2), plus ``portrait_key`` / ``anime_key`` for provenance. ``weights`` (over coser, aug, human)
    override :func:`default_weights`; Aug-Portraits are fused on the fly by
    ``pda_data.synthesis.augportrait.fuse``.
    """
    mix = _check_weights(weights if weights is not None else default_weights(stage, aug_prob))
    needed = {"anime"} | {"human" for d in mix if d != "coser"} | {"coser" for d in mix if d != "human"}
    for role in sorted(needed):
        shard_urls(shards, role, split)  # fail here with a clear error, not later in a worker
    ds = _StageStream(shards, mix, batch_size=batch_size, image_size=image_size, seed=seed, split=split)
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
    if role not in ("structure", "highlight"):
        raise ValueError(f"aux role must be 'structure' or 'highlight', got {role!r}")
    shard_urls(shards, role, split)
    ds = _AuxStream(
        shards, role, split=split, batch_size=batch_size, image_size=image_size, seed=seed, infinite=infinite
    )
    return _loader(ds, num_workers, ("image",))
