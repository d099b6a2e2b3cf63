"""``export-hf``: a role's shards as a Hugging Face ``datasets.Dataset`` saved to disk."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pda_data.shards.index import ShardError, shard_urls


def export_hf(
    root: str | Path, role: str, out: str | Path, *, split: str = "train", cache_dir: str | Path | None = None
) -> Any:
    """Load a role's shards with the Hugging Face ``webdataset`` builder and save them with ``save_to_disk``.

    Returns the ``datasets.Dataset`` (columns ``__key__``, ``__url__``, the image, ``json``).
    """
    import datasets

    urls = shard_urls(root, role, split)
    ds = datasets.load_dataset(
        "webdataset",
        data_files={split: urls},
        split=split,
        cache_dir=str(cache_dir) if cache_dir is not None else None,
    )
    out = Path(out)
    if out.exists() and not (out / "dataset_info.json").is_file():
        raise ShardError(f"{out}: exists and is not a saved dataset; refusing to overwrite")
    ds.save_to_disk(str(out))
    return ds

