"""``export-hf``: a role's shards as a Hugging Face ``datasets.Dataset`` saved to disk.

Every shard is checked with the toolkit's own reader before ``datasets`` sees it (sha256 against the
index, every member readable, each sample an image plus a JSON object), so a damaged shard is skipped and
named rather than failing the whole export halfway; ``datasets`` then runs offline (local files need no
Hub lookup, and must not wait for one) unless the dataset is to be pushed.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pda_data.io.files import sha256_file
from pda_data.shards.index import Problem, ShardError, read_index, role_entries
from pda_data.shards.tar import TarDamage, iter_tar_samples

OFFLINE_ENV: tuple[str, ...] = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")


def shard_problem(path: Path, entry: dict[str, Any], image_format: str) -> str | None:
    """Why ``datasets`` cannot be given this shard, or None: a damaged tar, a sample that is not one
    ``image_format`` member plus one JSON object (what ``pack`` writes), a sha256 other than the index's."""
    try:
        for key, members in iter_tar_samples(path):
            if set(members) != {image_format, "json"}:
                return f"sample {key!r} has members {sorted(members)}, expected {image_format} and json"
            try:
                meta = json.loads(members["json"])
            except ValueError as exc:
                return f"sample {key!r}: json does not parse ({exc})"
            if not isinstance(meta, dict):
                return f"sample {key!r}: json is not an object"
        if sha256_file(path) != entry["sha256"]:
            return "sha256 differs from the index (corrupt or modified shard)"
    except TarDamage as exc:
        return f"unreadable tar: {exc.reason}"
    except OSError as exc:
        return f"unreadable shard file ({exc.strerror or exc})"
    return None


class ExportFailed(ShardError):
    """``datasets`` could not load shards that the toolkit's reader accepted."""


@contextmanager
def hf_datasets(offline: bool) -> Iterator[Any]:
    """The ``datasets`` module; with ``offline``, Hub access off (environment before its import, its
    config after) for the duration, then restored."""
    saved_env = {k: os.environ.get(k) for k in OFFLINE_ENV}
    if offline:
        os.environ.update(dict.fromkeys(OFFLINE_ENV, "1"))
    import datasets

    saved = datasets.config.HF_HUB_OFFLINE, datasets.config.HF_DATASETS_OFFLINE
    if offline:
        datasets.config.HF_HUB_OFFLINE = datasets.config.HF_DATASETS_OFFLINE = True
    try:
        yield datasets
    finally:
        datasets.config.HF_HUB_OFFLINE, datasets.config.HF_DATASETS_OFFLINE = saved
        for k, v in saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def readable_shards(root: str | Path, role: str, split: str) -> tuple[list[str], list[Problem]]:
    """The paths of a role's split that ``datasets`` can be given, and a problem for each other shard
    (:func:`shard_problem`). ShardError for an unusable index or a role without shards."""
    root = Path(root)
    index = read_index(root)
    entries = role_entries(index, root, role, split)
    image_format = index["roles"][role]["image_format"]
    urls, problems = [], []
    for entry in entries:
        path = root / entry["name"]
        why = shard_problem(path, entry, image_format)
        if why is None:
            urls.append(str(path))
        else:
            problems.append(Problem(entry["name"], "", why))
    return urls, problems


def export_hf(
    urls: list[str],
    out: str | Path,
    *,
    split: str = "train",
    cache_dir: str | Path | None = None,
    offline: bool = True,
) -> Any:
    """Load shards (:func:`readable_shards`) with the Hugging Face ``webdataset`` builder, ``save_to_disk``.

    Returns the ``datasets.Dataset`` (columns ``__key__``, ``__url__``, the image, ``json``). ShardError for
    an ``out`` that is not a saved dataset; :class:`ExportFailed` when ``datasets`` fails on the shards.
    """
    out = Path(out)
    if out.exists() and not (out / "dataset_info.json").is_file():
        raise ShardError(f"{out}: exists and is not a saved dataset; refusing to overwrite")
    with hf_datasets(offline) as datasets:
        try:
            ds = datasets.load_dataset(
                "webdataset",
                data_files={split: urls},
                split=split,
                cache_dir=str(cache_dir) if cache_dir is not None else None,
            )
        except (ValueError, TypeError, datasets.exceptions.DatasetGenerationError) as exc:
            reason = str(exc.__cause__ or exc).splitlines()[0]
            raise ExportFailed(f"{Path(urls[0]).parent}: datasets could not load the {len(urls)} shard(s) "
                               f"({type(exc).__name__}: {reason})") from exc
        ds.save_to_disk(str(out))
    return ds
