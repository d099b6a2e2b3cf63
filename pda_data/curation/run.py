"""The curation run: many inputs in, a curated folder out (crops, ``manifest.parquet``, sheets).

For every input: decode safely, analyse its faces (:func:`pda_data.curation.engine.analyze_faces`), write the
kept crops, and drop near-duplicates by perceptual hash. The manifest records every face and every rejected
input with its reason (:mod:`pda_data.curation.table`).

Runs are reproducible and independent of the engine and worker count (:mod:`pda_data.distribute`: local
processes or Ray actors): items are processed in input order (workers only compute; duplicates are decided
in the driver, in input order), keys derive from the input's stable id (not its absolute path:
:mod:`pda_data.io.sources`), and ``--part i/N`` splits inputs by a hash of that id. Finished rows are
flushed to ``.partial/`` chunks every few inputs, so an interrupted run resumes where it stopped; chunk
names carry a per-run id, and a consolidation deletes only the chunks it folded into a manifest it wrote.
The output folder is locked for the run (:mod:`pda_data.io.lock`); a full or unwritable disk stops it with
every finished row kept.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import pandas as pd

from pda_data.curation.dedup import NearDuplicateIndex
from pda_data.curation.engine import Models, analyze_faces
from pda_data.curation.options import CurateOptions
from pda_data.curation.sheets import write_sheets
from pda_data.curation.table import (
    DEFAULTS,
    DUPLICATE,
    ERROR,
    FACE_REASONS,
    NO_FACE,
    portrait_frame,
    read_portraits,
    write_portraits,
)
from pda_data.distribute import Engine, distribute
from pda_data.io.files import ensure_folder
from pda_data.io.images import ImageError, load_image, save_image
from pda_data.io.lock import folder_lock
from pda_data.io.sources import HFOptions, OnFolderError, SourceItem, iter_sources, read_item, unique_items
from pda_data.io.table import IMAGES_DIR, MANIFEST_NAME, STATUS_KEPT, STATUS_REJECTED, kept_rows
from pda_data.schema import flatten_points

PARTIAL_DIR = ".partial"
CHUNK_GLOB = "chunk-*.parquet"


def source_digest(stable_id: str) -> str:
    """Stable hex digest of an input's stable id: the stem of its keys and the basis of ``--part``."""
    return hashlib.sha1(stable_id.encode("utf-8")).hexdigest()


def key_stem(stable_id: str) -> str:
    """The part of an input's keys before the face index (``<stem>-<face>``): what resume matches."""
    return source_digest(stable_id)[:16]


def make_key(stable_id: str, face_index: int) -> str:
    return f"{key_stem(stable_id)}-{face_index:02d}"


def in_part(stable_id: str, part: tuple[int, int] | None) -> bool:
    """Whether an input is in part ``i`` of ``n`` (1-based): a fixed hash split, equal on every machine."""
    if part is None:
        return True
    index, count = part
    return int(source_digest(stable_id)[:8], 16) % count == index - 1


def _row(item: SourceItem, sha: str, face_index: int, **values: Any) -> dict[str, Any]:
    """A full manifest row: the given values over :data:`~pda_data.curation.table.DEFAULTS`."""
    key = make_key(item.stable_id, face_index)
    return {**DEFAULTS, "key": key, "source": item.source, "source_sha256": sha, "face_index": face_index,
            **values}


def image_name(key: str, options: CurateOptions) -> str:
    return f"{IMAGES_DIR}/{key}.{options.image_format}"


def process_item(item: SourceItem, options: CurateOptions, out: Path, models: Models) -> list[dict[str, Any]]:
    """Manifest rows for one input; kept crops are written to ``images/`` here (atomically)."""
    sha = ""
    try:
        data, sha = read_item(item)
        rgb = load_image(data, name=item.source)
        faces = analyze_faces(rgb, models, options)
    except ImageError as err:
        return [_row(item, sha, 0, reason=err.reason, detail=str(err))]
    except Exception as exc:  # one bad input must never stop a long run
        return [_row(item, sha, 0, reason=ERROR, detail=f"{item.source}: {type(exc).__name__}: {exc}")]
    if not faces:
        return [_row(item, sha, 0, reason=NO_FACE, detector=models.detector.name)]
    rows = []
    for i, face in enumerate(faces):
        values: dict[str, Any] = {
            "status": face.status, "reason": face.reason, "detail": face.detail, "detector": face.detector,
            "score": face.detection.score, "box": [float(v) for v in face.detection.box],
            "face_size": face.face_size, "yaw": face.pose[0], "pitch": face.pose[1], "roll": face.pose[2],
            "phash": face.phash,
        }
        if face.crop is not None and face.points is not None:
            name = image_name(make_key(item.stable_id, i), options)
            save_image(out / name, face.crop, quality=options.quality)
            values.update(landmarks=flatten_points(face.points), crop_size=options.size, image=name)
        rows.append(_row(item, sha, i, **values))
    return rows


@dataclass(frozen=True)
class CurateWork:
    """The per-input work of a curation run, as every engine's workers run it (:mod:`pda_data.distribute`)."""

    options: CurateOptions
    out: Path
    start_method: str | None = None

    @contextlib.contextmanager
    def session(self, worker: bool) -> Iterator[Callable[[SourceItem], list[dict[str, Any]]]]:
        """Load the models once; OpenCV single-threaded (N workers use N cores), as it was afterwards."""
        threads = cv2.getNumThreads()
        cv2.setNumThreads(1)
        try:
            models = Models.load(self.options)
            yield functools.partial(process_item, options=self.options, out=self.out, models=models)
        finally:
            cv2.setNumThreads(threads)


# ----------------------------------------------------------------------------------------------- run


@dataclass
class RunSummary:
    """Counts over the whole manifest, plus this run's throughput."""

    out: Path
    processed: int = 0
    skipped: int = 0
    seconds: float = 0.0
    faces: int = 0
    kept: int = 0
    reasons: Counter = field(default_factory=Counter)

    @property
    def images_per_s(self) -> float:
        return self.processed / self.seconds if self.seconds > 0 else 0.0

    @property
    def errors(self) -> int:
        """Inputs that could not be decoded or processed at all."""
        return sum(n for r, n in self.reasons.items() if r not in FACE_REASONS)


class ChunkWriter:
    """Writes one run's finished rows as ``.partial/chunk-<run id>-<n>.parquet``.

    The run id (start time, pid, random) makes names unique across runs and processes, and sorts a folder's
    chunks by run, then by order within the run: no writer overwrites another's chunk.
    """

    def __init__(self, out: Path) -> None:
        self.folder = ensure_folder(out / PARTIAL_DIR)
        self.run_id = f"{time.time_ns():020d}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.count = 0

    def write(self, rows: list[dict[str, Any]]) -> Path | None:
        """Write ``rows`` (atomically) as the next chunk; nothing for no rows."""
        if not rows:
            return None
        path = self.folder / f"chunk-{self.run_id}-{self.count:06d}.parquet"
        write_portraits(portrait_frame(rows), path)
        self.count += 1
        return path


def progress_chunks(out: Path) -> list[Path]:
    """The unconsolidated chunks of ``out``, in the order they were written."""
    return sorted((out / PARTIAL_DIR).glob(CHUNK_GLOB))


def load_progress(out: Path, chunks: list[Path] | None = None) -> pd.DataFrame:
    """Every row finished so far in ``out``: the manifest plus the chunks (default: all), one row per key."""
    frames = []
    if (out / MANIFEST_NAME).is_file():
        frames.append(read_portraits(out / MANIFEST_NAME))
    frames += [read_portraits(p) for p in (progress_chunks(out) if chunks is None else chunks)]
    if not frames:
        return portrait_frame([])
    df = pd.concat(frames, ignore_index=True)
    return df.drop_duplicates("key", keep="last").reset_index(drop=True)


def _consolidate(out: Path) -> pd.DataFrame:
    """Fold the chunks into ``manifest.parquet`` (atomically); only then delete exactly the chunks read."""
    chunks = progress_chunks(out)
    df = load_progress(out, chunks)
    write_portraits(df, out / MANIFEST_NAME)
    for chunk in chunks:
        chunk.unlink(missing_ok=True)
    return df


def _save_after_error(out: Path, chunks: ChunkWriter, pending: list[dict[str, Any]]) -> None:
    """After a failed or interrupted run, keep what can be kept: flush the pending rows, consolidate.

    On a full disk either step may fail too; the run's own error is the one to report, so these failures
    are dropped, and the chunks written so far stay for the next run (they are deleted only once a manifest
    holding them is written).
    """
    with contextlib.suppress(OSError, ValueError):
        chunks.write(pending)
    with contextlib.suppress(OSError, ValueError):
        _consolidate(out)


def summarize(df: pd.DataFrame, out: Path) -> RunSummary:
    summary = RunSummary(out=out)
    summary.faces = int((df["face_size"].notna()).sum()) if len(df) else 0
    summary.kept = int((df["status"] == STATUS_KEPT).sum()) if len(df) else 0
    if len(df):
        summary.reasons = Counter(df.loc[df["status"] == STATUS_REJECTED, "reason"].tolist())
    return summary


def done_stems(progress: pd.DataFrame) -> set[str]:
    """The key stems of the inputs finished so far (the rows of :func:`load_progress`): a rerun skips them."""
    return {key.rsplit("-", 1)[0] for key in progress["key"]}


def _todo(inputs: Iterable[str | Path], hf: HFOptions | None, part: tuple[int, int] | None, done: set[str],
          on_folder_error: OnFolderError | None = None,
          on_repeat: Callable[[SourceItem], None] | None = None) -> Iterator[SourceItem]:
    """The inputs of a run, in order: each file once, in ``part``, not finished yet (by stable id)."""
    for item in unique_items(iter_sources(inputs, hf, on_folder_error), on_repeat):
        if in_part(item.stable_id, part) and key_stem(item.stable_id) not in done:
            yield item


def count_items(inputs: Iterable[str | Path], hf: HFOptions | None = None,
                part: tuple[int, int] | None = None, out: str | Path | None = None,
                on_folder_error: OnFolderError | None = None) -> int:
    """How many inputs a run will process (for progress bars), less those already done in ``out``.

    Walks the inputs without decoding anything; folders it cannot list go to ``on_folder_error`` (the run's
    own walk does not report them again). Two inputs with one stable id raise the run's SourceError now.
    """
    done = done_stems(load_progress(Path(out))) if out is not None else set()
    return sum(1 for _ in _todo(inputs, hf, part, done, on_folder_error))


def run_curation(
    inputs: Iterable[str | Path],
    out: str | Path,
    options: CurateOptions,
    *,
    workers: int = 1,
    engine: Engine | None = None,
    part: tuple[int, int] | None = None,
    hf: HFOptions | None = None,
    flush_every: int = 64,
    sheets: bool = True,
    sheet_max: int = 96,
    on_item: Callable[[list[dict[str, Any]]], None] | None = None,
) -> RunSummary:
    """Curate ``inputs`` into ``out`` (resuming a previous run there) and return the summary.

    ``engine`` runs the per-input work (default: the local one with ``workers`` processes); the result is
    the same whichever. ``on_item`` is called with each input's rows, in input order (progress bars,
    warnings).
    """
    out = Path(out)
    with folder_lock(out):
        return _curate(inputs, out, options, engine or Engine("local", workers), part, hf, flush_every,
                       sheets, sheet_max, on_item)


def _curate(inputs: Iterable[str | Path], out: Path, options: CurateOptions, engine: Engine,
            part: tuple[int, int] | None, hf: HFOptions | None, flush_every: int, sheets: bool,
            sheet_max: int, on_item: Callable[[list[dict[str, Any]]], None] | None) -> RunSummary:
    """:func:`run_curation` with the folder's lock held."""
    ensure_folder(out / IMAGES_DIR)
    chunks = ChunkWriter(out)
    done = load_progress(out)
    stems = done_stems(done)
    index = NearDuplicateIndex(options.hamming)
    kept = kept_rows(done)
    for key, value in zip(kept["key"], kept["phash"], strict=True):
        index.add(key, value)
    del done, kept

    summary = RunSummary(out=out)

    def repeat(_: SourceItem) -> None:  # the same file named twice (e.g. a folder and a list) is done once
        summary.skipped += 1

    todo = _todo(inputs, hf, part, stems, on_repeat=repeat)
    pending: list[dict[str, Any]] = []
    start = time.perf_counter()
    try:
        for rows in distribute(CurateWork(options, out), todo, engine):
            for row in rows:
                if options.dedup and row["status"] == STATUS_KEPT:
                    original = index.match(row["phash"])
                    if original is not None:
                        (out / row["image"]).unlink(missing_ok=True)
                        row.update(status=STATUS_REJECTED, reason=DUPLICATE, image="", landmarks=[],
                                   crop_size=0, detail=f"near-duplicate of {original}")
                    else:
                        index.add(row["key"], row["phash"])
            pending.extend(rows)
            summary.processed += 1
            if on_item is not None:
                on_item(rows)
            if summary.processed % flush_every == 0:
                chunks.write(pending)
                pending = []
        chunks.write(pending)
        pending = []
    except BaseException:  # Ctrl-C, a full disk, a bug: keep every finished row, then report the error
        _save_after_error(out, chunks, pending)
        raise
    finally:
        summary.seconds = time.perf_counter() - start
    df = _consolidate(out)
    totals = summarize(df, out)
    summary.faces, summary.kept, summary.reasons = totals.faces, totals.kept, totals.reasons
    if sheets:
        write_sheets(df, out, hf=hf, limit=sheet_max)
    return summary

