"""Reading one shard role for one reader: the reader's share of the shards, buffer shuffling, decoding.

Every reader (distributed rank x DataLoader worker) takes a disjoint share of a role's shards
(``webdataset.split_by_node`` then ``split_by_worker`` over the shard list), resamples shards from its share
forever, shuffles samples in a buffer, and skips an unreadable shard with a warning (a role with no readable
shard left stops the stream: :class:`NoReadableShard`). Shards are read with the validating tar parser
:func:`pda_data.shards.tar.iter_tar_samples` and decoded with OpenCV. The landmark schema
that ``pda-data pack`` records for the role (``index.json``) and for each sample (its JSON) is checked
against the role's schema (:data:`pda_data.shards.index.ROLE_SCHEMA`): a mismatch is a :class:`ShardError`.
"""

from __future__ import annotations

import json
import random
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import webdataset as wds

from pda_data.schema import LandmarkSchema, unflatten_points
from pda_data.shards.index import INDEX_NAME, ROLE_SCHEMA, ShardError, read_index, role_entries
from pda_data.shards.sample import decode_rgb
from pda_data.shards.tar import TarDamage, iter_tar_samples

SHUFFLE_BUFFER = 256
SHUFFLE_INITIAL = 64  # samples buffered before the first one is drawn
_END = object()
SHOWN_SHARDS = 5  # shards named in the message of a role with none readable


class NoReadableShard(ShardError):
    """Every shard of a reader's share of a role failed to read: the stream cannot go on."""


@dataclass(frozen=True)
class RoleSource:
    """One role's split as the index describes it: shard paths, image format and landmark schema."""

    role: str
    urls: list[str]
    image_format: str
    schema: LandmarkSchema


def role_source(shards: str | Path, role: str, split: str) -> RoleSource:
    """The shards of ``role``'s ``split``, checked: ShardError when missing or packed with another schema."""
    index = read_index(shards)
    urls = [str(Path(shards) / e["name"]) for e in role_entries(index, shards, role, split)]
    entry = index["roles"][role]
    schema = ROLE_SCHEMA[role]
    if entry.get("schema") != schema.name:
        raise ShardError(
            f"{Path(shards) / INDEX_NAME}: role {role!r} was packed with landmark schema "
            f"{entry.get('schema')!r}, the stream reads {role} as {schema.name}"
        )
    return RoleSource(role, urls, entry["image_format"], schema)


def reader_seed(seed: int, *salt: int) -> int:
    """A seed for this reader (rank, DataLoader worker) of a stream seeded with ``seed``."""
    rank, _, worker, _ = wds.utils.pytorch_worker_info()
    return int(np.random.SeedSequence([seed, rank, worker, *salt]).generate_state(1)[0])


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
    urls: list[str], *, role: str, seed: int, infinite: bool = True, shuffle_buffer: int = SHUFFLE_BUFFER
) -> Iterator[dict[str, Any]]:
    """Raw samples (``__key__``, ``__url__``, one entry per member) of this reader's share of ``urls``.

    Infinite: shards resampled from the share, samples shuffled in a buffer. One pass: each shard once, in
    order. A shard that fails to open or read (:class:`TarDamage`) is reported with a warning naming it and
    the damage, and never drawn again (the samples before the damage are kept); when no shard of the share
    is left, an infinite stream raises :class:`NoReadableShard` naming ``role`` and the shards.
    """
    mine = reader_shards(urls, allow_shared=infinite)
    rng = random.Random(reader_seed(seed))
    bad: set[str] = set()
    # Bound here, not looked up in ``except``: a generator closed at interpreter exit outlives the modules.
    damage = TarDamage

    def read(url: str) -> Iterator[dict[str, Any]]:
        try:
            for key, members in iter_tar_samples(url):
                members["__key__"], members["__url__"] = key, url
                yield members
        except damage as exc:
            if url not in bad:
                bad.add(url)
                message = f"{url}: skipping unreadable shard ({exc.reason})"
                warnings.warn(message, RuntimeWarning, stacklevel=2)

    def resampled() -> Iterator[dict[str, Any]]:
        while True:
            live = [u for u in mine if u not in bad]
            if not live:
                more = len(mine) - SHOWN_SHARDS
                shown = ", ".join(mine[:SHOWN_SHARDS]) + (f" and {more} more" if more > 0 else "")
                raise NoReadableShard(f"role {role!r}: no readable shard left ({len(mine)} unreadable: "
                                      f"{shown})")
            yield from read(rng.choice(live))

    if not infinite:
        return (s for url in mine for s in read(url))
    if shuffle_buffer > 1:
        return shuffled(resampled(), shuffle_buffer, rng)
    return resampled()


def decoded_samples(
    samples: Iterable[dict[str, Any]], image_format: str, schema: LandmarkSchema
) -> Iterator[dict[str, Any]]:
    """Decode raw samples to ``{"image": RGB uint8, "points": (K, 2), "meta": dict, "key", "url"}``.

    An incomplete or undecodable sample (e.g. the tail of a truncated shard) is skipped with a warning; a
    sample whose JSON names another landmark schema than ``schema`` raises ShardError naming its shard.
    """
    for s in samples:
        where = f"{s.get('__url__', '?')} [{s.get('__key__', '?')}]"
        try:
            meta = json.loads(s["json"])
            image = decode_rgb(s[image_format])
            points = unflatten_points(meta["landmarks"])
            if meta.get("schema") == schema.name:  # another schema is the error below, not a skip
                schema.check_shape(points)
        except (KeyError, ValueError, TypeError) as exc:
            warnings.warn(f"{where}: skipping sample ({exc!r})", RuntimeWarning, stacklevel=2)
            continue
        if meta.get("schema") != schema.name:
            raise ShardError(
                f"{where}: landmark schema {meta.get('schema')!r}, "
                f"the stream reads this role as {schema.name}"
            )
        yield {"image": image, "points": points, "meta": meta, "key": s["__key__"], "url": s["__url__"]}


def decoded_role(source: RoleSource, *, seed: int, infinite: bool = True) -> Iterator[dict[str, Any]]:
    """Decoded (unaugmented) samples of one role's split for the current reader (see :func:`raw_samples`)."""
    return decoded_samples(
        raw_samples(source.urls, role=source.role, seed=seed, infinite=infinite),
        source.image_format,
        source.schema,
    )
