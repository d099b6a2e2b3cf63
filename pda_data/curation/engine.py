"""Portrait curation: raw photos in, aligned square head crops with 68 landmarks and a manifest out.

One engine serves ``crop-cosers`` (anime face detector, as in the paper) and ``crop-humans`` (dlib HOG).
For every input: decode safely, detect faces, fit dlib's 68 landmarks, estimate head pose, reject faces that
are too small or not frontal, crop a square head portrait with a margin (hair included), optionally level
the eyes, resize, and drop near-duplicates by perceptual hash. The manifest records every face and every
rejected input with its reason.

Runs are reproducible and independent of the worker count: items are processed in input order (workers
only compute; duplicates are decided in the main process, in input order), keys derive from the source id,
and ``--part i/N`` splits inputs by a hash of that id. Finished rows are flushed to ``.partial/`` chunks
every few inputs, so an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd
import pyarrow as pa

from pda_data.curation.dedup import NearDuplicateIndex, phash
from pda_data.curation.manifest import (
    IMAGES_DIR,
    MANIFEST_NAME,
    STATUS_KEPT,
    STATUS_REJECTED,
    kept_rows,
    read_manifest,
    write_manifest,
)
from pda_data.curation.options import CurateOptions
from pda_data.faces.detectors import Detection, Detector, Landmarker, head_pose, make_detector, predictor_box
from pda_data.geometry.crop import crop_face
from pda_data.io.files import atomic_write_bytes
from pda_data.io.images import ImageError, load_image, save_image
from pda_data.io.sources import HFOptions, SourceItem, iter_sources, read_item
from pda_data.schema import HUMAN68, flatten_points, unflatten_points
from pda_data.viz.sheet import contact_sheet, draw_landmarks

PARTIAL_DIR = ".partial"
CONTACT_SHEET = "contact_sheet.jpg"
REJECTS_SHEET = "rejects_sheet.jpg"

# Reasons a face or input is rejected (ImageError reasons are added for undecodable inputs).
NO_FACE, TOO_SMALL, NOT_FRONTAL = "no_face", "too_small", "not_frontal"
DUPLICATE, ERROR = "duplicate", "error"
FACE_REASONS = (NO_FACE, TOO_SMALL, NOT_FRONTAL, DUPLICATE)  # the rest are errors: the input was unusable

# An anime-lbp box spans the whole head; dlib's predictor expects a box about this fraction of it,
# a little lower (measured against dlib-hog boxes on real portraits).
_LBP_FACE_FRACTION = 0.7
_LBP_FACE_DROP = 0.03

MANIFEST_SCHEMA = pa.schema([
    ("key", pa.string()),
    ("source", pa.string()),
    ("source_sha256", pa.string()),
    ("face_index", pa.int64()),
    ("status", pa.string()),
    ("reason", pa.string()),
    ("detail", pa.string()),
    ("detector", pa.string()),
    ("score", pa.float64()),
    ("box", pa.list_(pa.float64())),
    ("face_size", pa.float64()),
    ("yaw", pa.float64()),
    ("pitch", pa.float64()),
    ("roll", pa.float64()),
    ("landmarks", pa.list_(pa.float64())),
    ("crop_size", pa.int64()),
    ("phash", pa.string()),
    ("image", pa.string()),
])
COLUMNS: tuple[str, ...] = tuple(MANIFEST_SCHEMA.names)


# ----------------------------------------------------------------------------------------------- geometry


def _lbp_predictor_box(box: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
    x0, y0, x1, y1 = box
    side = max(x1 - x0, y1 - y0) * _LBP_FACE_FRACTION
    cx, cy = (x0 + x1) / 2.0, (y0 + y1) / 2.0 + _LBP_FACE_DROP * side
    return (cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2)


# ----------------------------------------------------------------------------------------------- analysis


@dataclass
class Models:
    """The detectors and landmarker one process uses (built once per worker)."""

    detector: Detector
    fallback: Detector | None
    landmarker: Landmarker

    @classmethod
    def load(cls, options: CurateOptions) -> Models:
        fallback = None
        if options.fallback_detector and options.fallback_detector != options.detector:
            fallback = make_detector(options.fallback_detector, options.cascade)  # type: ignore[arg-type]
        return cls(make_detector(options.detector, options.cascade), fallback, Landmarker())  # type: ignore[arg-type]


@dataclass
class FaceResult:
    """One analysed face; ``crop`` and ``points`` (crop pixels) are set only for kept faces."""

    status: str
    reason: str
    detector: str
    detection: Detection
    face_size: float = float("nan")
    pose: tuple[float, float, float] = (float("nan"),) * 3
    crop: np.ndarray | None = None
    points: np.ndarray | None = None
    phash: str = ""
    detail: str = ""


def _overlap(a: Detection, b: Detection) -> float:
    """Intersection over the smaller box: 1 when one box holds the other."""
    ix = max(0.0, min(a.box[2], b.box[2]) - max(a.box[0], b.box[0]))
    iy = max(0.0, min(a.box[3], b.box[3]) - max(a.box[1], b.box[1]))
    smaller = min(a.area, b.area)
    return ix * iy / smaller if smaller > 0 else 0.0


def _merge_detections(
    found: list[tuple[Detection, str]], name: str, extra: list[Detection]
) -> list[tuple[Detection, str]]:
    """Add the second detector's faces: new faces join; for a face both found, a dlib box wins.

    dlib's landmark predictor is trained on dlib boxes; anime-lbp boxes on real faces vary from the eye
    region to the whole head, so a dlib box gives better landmarks for the same face.
    """
    merged = list(found)
    for det in extra:
        hits = [i for i, (other, _) in enumerate(merged) if _overlap(det, other) > 0.5]
        if not hits:
            merged.append((det, name))
        elif name.startswith("dlib") and not any(merged[i][1].startswith("dlib") for i in hits):
            merged = [pair for i, pair in enumerate(merged) if i not in hits] + [(det, name)]
    return sorted(merged, key=lambda pair: (-pair[0].area, pair[0].box))


def analyze_faces(rgb: np.ndarray, models: Models, options: CurateOptions) -> list[FaceResult]:
    """Detect, landmark, pose-filter and crop every face of ``rgb`` (largest first); [] when there is none."""
    found = [(det, models.detector.name) for det in models.detector.detect(rgb)]
    if models.fallback is not None:
        found = _merge_detections(found, models.fallback.name, models.fallback.detect(rgb))
    if options.faces == "largest":
        found = found[:1]
    h, w = rgb.shape[:2]
    results = []
    for det, detector_name in found:
        box = _lbp_predictor_box(det.box) if detector_name == "anime-lbp" else det.box
        points = models.landmarker.refine(rgb, box)
        x0, y0, x1, y1 = predictor_box(points)
        result = FaceResult(STATUS_REJECTED, "", detector_name, det, face_size=float(x1 - x0))
        if result.face_size < options.min_face:
            result.reason = TOO_SMALL
            result.detail = f"face {result.face_size:.0f} px < {options.min_face:g} px"
            results.append(result)
            continue
        result.pose = head_pose(points, w, h)
        limits = (options.max_yaw, options.max_pitch, options.max_roll)
        names = ("yaw", "pitch", "roll")
        over = [f"{n} {v:+.0f}" for n, v, lim in zip(names, result.pose, limits, strict=True)
                if not abs(v) <= lim]
        if over:
            result.reason = NOT_FRONTAL
            result.detail = ", ".join(over) + " deg"
            results.append(result)
            continue
        result.crop, result.points, _ = crop_face(rgb, points, margin=options.margin, size=options.size,
                                                  align=options.align)
        result.phash = phash(result.crop)
        result.status = STATUS_KEPT
        results.append(result)
    return results


# ----------------------------------------------------------------------------------------------- rows


def source_digest(source: str) -> str:
    """Stable hex digest of a source id: the stem of its keys and the basis of ``--part``."""
    return hashlib.sha1(source.encode("utf-8")).hexdigest()


def make_key(source: str, face_index: int) -> str:
    return f"{source_digest(source)[:16]}-{face_index:02d}"


def in_part(source: str, part: tuple[int, int] | None) -> bool:
    """Whether ``source`` is in part ``i`` of ``n`` (1-based): a fixed hash split, equal on every machine."""
    if part is None:
        return True
    index, count = part
    return int(source_digest(source)[:8], 16) % count == index - 1


def _row(item: SourceItem, sha: str, face_index: int, **values: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "key": make_key(item.source, face_index), "source": item.source, "source_sha256": sha,
        "face_index": face_index, "status": STATUS_REJECTED, "reason": "", "detail": "", "detector": "",
        "score": math.nan, "box": [], "face_size": math.nan, "yaw": math.nan, "pitch": math.nan,
        "roll": math.nan, "landmarks": [], "crop_size": 0, "phash": "", "image": "",
    }
    row.update(values)
    return row


def image_name(key: str, options: CurateOptions) -> str:
    return f"{IMAGES_DIR}/{key}.{options.image_format}"


@dataclass
class _WorkerState:
    options: CurateOptions
    out: Path
    models: Models


_STATE: _WorkerState | None = None


def _init_worker(options: CurateOptions, out: Path) -> None:
    """Load the models once per process; OpenCV single-threaded so N workers use N cores."""
    global _STATE
    cv2.setNumThreads(1)
    _STATE = _WorkerState(options, out, Models.load(options))


def process_item(item: SourceItem) -> list[dict[str, Any]]:
    """Manifest rows for one input; kept crops are written to ``images/`` here (atomically)."""
    assert _STATE is not None, "process_item needs _init_worker first"
    options, out = _STATE.options, _STATE.out
    sha = ""
    try:
        data, sha = read_item(item)
        rgb = load_image(data, name=item.source)
        faces = analyze_faces(rgb, _STATE.models, options)
    except ImageError as err:
        return [_row(item, sha, 0, reason=err.reason, detail=str(err))]
    except Exception as exc:  # one bad input must never stop a long run
        return [_row(item, sha, 0, reason=ERROR, detail=f"{item.source}: {type(exc).__name__}: {exc}")]
    if not faces:
        return [_row(item, sha, 0, reason=NO_FACE, detector=_STATE.models.detector.name)]
    rows = []
    for i, face in enumerate(faces):
        values: dict[str, Any] = {
            "status": face.status, "reason": face.reason, "detail": face.detail, "detector": face.detector,
            "score": face.detection.score, "box": [float(v) for v in face.detection.box],
            "face_size": face.face_size, "yaw": face.pose[0], "pitch": face.pose[1], "roll": face.pose[2],
            "phash": face.phash,
        }
        if face.crop is not None and face.points is not None:
            name = image_name(make_key(item.source, i), options)
            save_image(out / name, face.crop, quality=options.quality)
            values.update(landmarks=flatten_points(face.points), crop_size=options.size, image=name)
        rows.append(_row(item, sha, i, **values))
    return rows


def _ordered_results(
    items: Iterable[SourceItem], options: CurateOptions, out: Path, workers: int
) -> Iterator[list[dict[str, Any]]]:
    """Rows per item in input order; with workers > 1 a bounded window of items is in flight at once."""
    global _STATE
    if workers <= 1:
        threads = cv2.getNumThreads()
        _init_worker(options, out)
        try:
            for item in items:
                yield process_item(item)
        finally:  # leave the calling process as it was: OpenCV threads, no models held
            cv2.setNumThreads(threads)
            _STATE = None
        return
    window = 4 * workers
    with ProcessPoolExecutor(workers, initializer=_init_worker, initargs=(options, out)) as pool:
        pending: deque = deque()
        for item in items:
            pending.append(pool.submit(process_item, item))
            if len(pending) >= window:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


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


def _frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    table = pa.Table.from_pylist(rows, schema=MANIFEST_SCHEMA)
    return table.to_pandas()


def _read_rows(path: Path) -> pd.DataFrame:
    return pa.Table.from_pandas(read_manifest(path, COLUMNS)[list(COLUMNS)], schema=MANIFEST_SCHEMA,
                                preserve_index=False).to_pandas()


def load_progress(out: Path) -> pd.DataFrame:
    """Every row finished so far in ``out``: the manifest plus unconsolidated chunks, one row per key."""
    frames = []
    if (out / MANIFEST_NAME).is_file():
        frames.append(_read_rows(out / MANIFEST_NAME))
    frames += [_read_rows(p) for p in sorted((out / PARTIAL_DIR).glob("chunk-*.parquet"))]
    if not frames:
        return _frame([])
    df = pd.concat(frames, ignore_index=True)
    return df.drop_duplicates("key", keep="last").reset_index(drop=True)


def _consolidate(out: Path) -> pd.DataFrame:
    """Fold the chunks into ``manifest.parquet`` (atomically), then delete them."""
    df = load_progress(out)
    write_manifest(df, out / MANIFEST_NAME, MANIFEST_SCHEMA)
    for chunk in (out / PARTIAL_DIR).glob("chunk-*.parquet"):
        chunk.unlink()
    return df


def summarize(df: pd.DataFrame, out: Path) -> RunSummary:
    summary = RunSummary(out=out)
    summary.faces = int((df["face_size"].notna()).sum()) if len(df) else 0
    summary.kept = int((df["status"] == STATUS_KEPT).sum()) if len(df) else 0
    if len(df):
        summary.reasons = Counter(df.loc[df["status"] == STATUS_REJECTED, "reason"].tolist())
    return summary


def count_items(inputs: Iterable[str | Path], hf: HFOptions | None = None,
                part: tuple[int, int] | None = None, out: str | Path | None = None) -> int:
    """How many inputs a run will process (for progress bars), less those already done in ``out``.

    Walks the inputs without decoding anything.
    """
    done = set(load_progress(Path(out))["source"]) if out is not None else set()
    return len({item.source for item in iter_sources(inputs, hf)
                if in_part(item.source, part) and item.source not in done})


def run_curation(
    inputs: Iterable[str | Path],
    out: str | Path,
    options: CurateOptions,
    *,
    workers: int = 1,
    part: tuple[int, int] | None = None,
    hf: HFOptions | None = None,
    flush_every: int = 64,
    sheets: bool = True,
    sheet_max: int = 96,
    on_item: Callable[[list[dict[str, Any]]], None] | None = None,
) -> RunSummary:
    """Curate ``inputs`` into ``out`` (resuming a previous run there) and return the summary.

    ``on_item`` is called with each input's rows, in input order (progress bars, warnings).
    """
    out = Path(out)
    (out / IMAGES_DIR).mkdir(parents=True, exist_ok=True)
    (out / PARTIAL_DIR).mkdir(exist_ok=True)
    done = load_progress(out)
    done_sources = set(done["source"])
    index = NearDuplicateIndex(options.hamming)
    for key, value in zip(kept_rows(done)["key"], kept_rows(done)["phash"], strict=True):
        index.add(key, value)
    chunk_no = len(list((out / PARTIAL_DIR).glob("chunk-*.parquet")))
    del done

    summary = RunSummary(out=out)
    todo = (it for it in iter_sources(inputs, hf)
            if in_part(it.source, part) and it.source not in done_sources)
    pending: list[dict[str, Any]] = []
    seen: set[str] = set()

    def flush() -> None:
        nonlocal chunk_no, pending
        if pending:
            chunk = out / PARTIAL_DIR / f"chunk-{chunk_no:06d}.parquet"
            write_manifest(_frame(pending), chunk, MANIFEST_SCHEMA)
            chunk_no += 1
            pending = []

    def unique(items: Iterable[SourceItem]) -> Iterator[SourceItem]:
        for item in items:  # the same file named twice (e.g. a folder and a list) is done once
            if item.source not in seen:
                seen.add(item.source)
                yield item
            else:
                summary.skipped += 1

    start = time.perf_counter()
    try:
        for rows in _ordered_results(unique(todo), options, out, workers):
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
                flush()
    finally:
        summary.seconds = time.perf_counter() - start
        flush()
        df = _consolidate(out)
    totals = summarize(df, out)
    summary.faces, summary.kept, summary.reasons = totals.faces, totals.kept, totals.reasons
    if sheets:
        write_sheets(df, out, hf=hf, limit=sheet_max)
    return summary


# ----------------------------------------------------------------------------------------------- sheets


_GREY = 128


def _reject_tile(row: pd.Series, hf: HFOptions | None) -> np.ndarray:
    """The rejected face (its box outlined) or whole input; a grey tile when the input cannot be decoded."""
    try:
        item = item_for_source(row["source"], hf)
        data, _ = read_item(item)
        rgb = load_image(data, name=row["source"])
    except (ImageError, ValueError, OSError):
        return np.full((96, 96, 3), _GREY, np.uint8)
    box = list(row["box"]) if row["box"] is not None else []
    if len(box) != 4:
        return rgb
    x0, y0, x1, y1 = box
    pad = 0.5 * max(x1 - x0, y1 - y0)
    h, w = rgb.shape[:2]
    cx0, cy0 = max(0, int(x0 - pad)), max(0, int(y0 - pad))
    cx1, cy1 = min(w, int(x1 + pad) + 1), min(h, int(y1 + pad) + 1)
    tile = np.ascontiguousarray(rgb[cy0:cy1, cx0:cx1])
    thick = max(1, round(max(tile.shape[:2]) / 96))
    cv2.rectangle(tile, (round(x0 - cx0), round(y0 - cy0)), (round(x1 - cx0), round(y1 - cy0)), (255, 64, 64),
                  thick)
    return tile


def item_for_source(source: str, hf: HFOptions | None = None) -> SourceItem:
    """Rebuild the item of a manifest ``source`` (a path, or ``<data set>#<index>``)."""
    hf = hf or HFOptions()
    if "#" in source and not Path(source).exists():
        dataset, _, index = source.rpartition("#")
        return SourceItem(source=source, dataset=dataset, split=hf.split, column=hf.image_column,
                          index=int(index))
    return SourceItem(source=source, path=source)


def write_sheets(df: pd.DataFrame, out: Path, *, hf: HFOptions | None = None, limit: int = 96) -> None:
    """``contact_sheet.jpg`` (kept crops, landmarks drawn), ``rejects_sheet.jpg`` (rejects with reasons)."""
    kept = kept_rows(df).head(limit)
    tiles = []
    for _, row in kept.iterrows():
        try:
            crop = load_image(out / row["image"])
        except ImageError:
            continue
        tiles.append(draw_landmarks(crop, unflatten_points(row["landmarks"]), HUMAN68))
    if tiles:
        save_image(out / CONTACT_SHEET, contact_sheet(tiles, columns=10), quality=90)
    rejected = df[df["status"] == STATUS_REJECTED].head(limit)
    if len(rejected):
        tiles = [_reject_tile(row, hf) for _, row in rejected.iterrows()]
        sheet = contact_sheet(tiles, labels=list(rejected["reason"]), columns=10)
        save_image(out / REJECTS_SHEET, sheet, quality=90)


# ----------------------------------------------------------------------------------------------- merge


def merge_manifests(parts: Iterable[str | Path], out: str | Path, *, dedup: bool = True, hamming: int = 4,
                    sheets: bool = True) -> RunSummary:
    """Join part folders into ``out``: rows concatenated (one per key), kept crops hard-linked or copied.

    Near-duplicates across parts are resolved in key order (the first key wins); the later ones become
    ``duplicate`` rejects and their crops are not carried over.
    """
    out = Path(out)
    frames = []
    for part in parts:
        part = Path(part)
        df = load_progress(part)
        df["_dir"] = str(part)
        frames.append(df)
    df = pd.concat(frames, ignore_index=True) if frames else _frame([]).assign(_dir="")
    df = df.drop_duplicates("key", keep="first").sort_values("key", kind="stable").reset_index(drop=True)
    index = NearDuplicateIndex(hamming)
    (out / IMAGES_DIR).mkdir(parents=True, exist_ok=True)
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
    write_manifest(df, out / MANIFEST_NAME, MANIFEST_SCHEMA)
    if sheets:
        write_sheets(df, out)
    return summarize(df, out)
