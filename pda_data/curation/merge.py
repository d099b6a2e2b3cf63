"""``merge-manifests``: curated part folders (``--part i/N`` runs) joined into one folder."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from pda_data.curation.dedup import NearDuplicateIndex
from pda_data.curation.options import CurateOptions
from pda_data.curation.run import RunSummary, load_progress, summarize
from pda_data.curation.sheets import write_sheets
from pda_data.curation.table import DUPLICATE, portrait_frame, write_portraits
from pda_data.io.files import atomic_write_bytes, ensure_folder
from pda_data.io.lock import folder_lock
from pda_data.io.table import IMAGES_DIR, MANIFEST_NAME, STATUS_KEPT, STATUS_REJECTED


def merge_manifests(parts: Iterable[str | Path], out: str | Path, *, dedup: bool = True,
                    hamming: int = CurateOptions.hamming, sheets: bool = True) -> RunSummary:
    """Join part folders into ``out``: rows concatenated (one per key), kept crops hard-linked or copied.

    Near-duplicates across parts are resolved in key order (the first key wins); the later ones become
    ``duplicate`` rejects and their crops are not carried over. ``hamming`` is the curation run's own
    near-duplicate threshold unless given. ``out`` is locked for the merge (:mod:`pda_data.io.lock`).
    """
    with folder_lock(out) as folder:
        return _merge(parts, folder, dedup, hamming, sheets)


def _merge(parts: Iterable[str | Path], out: Path, dedup: bool, hamming: int, sheets: bool) -> RunSummary:
    """:func:`merge_manifests` with the lock of ``out`` held."""
    frames = []
    for part in parts:
        part = Path(part)
        df = load_progress(part)
        df["_dir"] = str(part)
        frames.append(df)
    df = pd.concat(frames, ignore_index=True) if frames else portrait_frame([]).assign(_dir="")
    df = df.drop_duplicates("key", keep="first").sort_values("key", kind="stable").reset_index(drop=True)
    index = NearDuplicateIndex(hamming)
    ensure_folder(out / IMAGES_DIR)
    for i in df.index[df["status"] == STATUS_KEPT]:
        original = index.match(df.at[i, "phash"]) if dedup else None
        if original is not None:
            df.loc[i, ["status", "reason", "image", "detail"]] = [STATUS_REJECTED, DUPLICATE, "",
                                                                  f"near-duplicate of {original}"]
            df.at[i, "landmarks"] = []
            df.at[i, "crop_size"] = 0
            continue
        index.add(df.at[i, "key"], df.at[i, "phash"])
        src, dst = Path(df.at[i, "_dir"]) / df.at[i, "image"], out / df.at[i, "image"]
        if src.resolve() != dst.resolve():
            dst.unlink(missing_ok=True)
            try:
                dst.hardlink_to(src)
            except OSError:
                atomic_write_bytes(dst, src.read_bytes())
    df = df.drop(columns="_dir")
    write_portraits(df, out / MANIFEST_NAME)
    if sheets:
        write_sheets(df, out)
    return summarize(df, out)
