"""Video -> video with every face translated: OpenCV I/O, IoU tracks, one-euro landmark smoothing.

Frames are batched through the translator.

Per frame the faces are found as for photos (:func:`pda_train.inference.faces.find_faces`). A face is
matched to the track of the previous frames whose last box overlaps it most (intersection over union at
least ``iou``, greedy, best pair first); a track unseen for ``max_missed`` frames ends. Each track smooths
its 68 landmarks with a one-euro filter (Casiez, Roussel and Vogel, CHI 2012): an exponential low-pass whose
cutoff rises with the landmarks' speed, ``cutoff = min_cutoff + beta * speed``, so a still face is held
steady (detector jitter filtered at ``min_cutoff`` Hz) while a moving one is followed with little lag. The
speed is measured in face widths per second, so one setting serves small and large faces. The crop, and so
the paste-back, come from the smoothed landmarks.

The output keeps the input's frame rate and size (``mp4v`` in an .mp4, ``MJPG`` in an .avi); audio is not
carried over (OpenCV reads and writes frames only).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from pda_data.curation.options import CurateOptions
from pda_data.faces.detection import Detector
from pda_data.faces.landmarks import Landmarker
from pda_data.io.files import atomic_path
from pda_data.schema import HUMAN68
from pda_train.inference.backends import Backend
from pda_train.inference.faces import crop_at, find_faces
from pda_train.inference.paste import paste_faces
from pda_train.inference.translate import translate_crops

FOURCC = {".mp4": "mp4v", ".avi": "MJPG", ".mov": "mp4v", ".mkv": "mp4v"}


class VideoError(ValueError):
    """A video that cannot be opened, read or written."""


@dataclass(frozen=True)
class Smoothing:
    """One-euro filter settings: ``min_cutoff`` (Hz) for a still face, ``beta`` (Hz per face width per
    second) for how fast the cutoff follows motion, ``d_cutoff`` (Hz) for the speed estimate itself."""

    min_cutoff: float = 1.0
    beta: float = 2.0
    d_cutoff: float = 1.0


class OneEuroFilter:
    """A one-euro filter over (N, 2) landmark arrays at ``fps`` frames per second; speed per point."""

    def __init__(self, fps: float, settings: Smoothing) -> None:
        self.fps, self.settings = fps, settings
        self.value: np.ndarray | None = None
        self.speed: np.ndarray | None = None

    def _alpha(self, cutoff: np.ndarray | float) -> np.ndarray | float:
        tau = 1.0 / (2.0 * math.pi * np.asarray(cutoff))
        return 1.0 / (1.0 + tau * self.fps)

    def __call__(self, points: np.ndarray, scale: float) -> np.ndarray:
        """The smoothed ``points`` (N, 2); ``scale`` is the face width the speed is measured in."""
        if self.value is None:
            self.value, self.speed = points.astype(np.float64), np.zeros(len(points))
            return self.value.copy()
        raw_speed = np.linalg.norm(points - self.value, axis=1) * self.fps / max(scale, 1e-6)
        a_d = self._alpha(self.settings.d_cutoff)
        self.speed = a_d * raw_speed + (1 - a_d) * self.speed
        a = self._alpha(self.settings.min_cutoff + self.settings.beta * self.speed)[:, None]
        self.value = a * points + (1 - a) * self.value
        return self.value.copy()


def iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    """Intersection over union of two (x0, y0, x1, y1) boxes."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - ix * iy
    return ix * iy / union if union > 0 else 0.0


@dataclass
class _Track:
    ident: int
    box: tuple[float, float, float, float]
    filter: OneEuroFilter | None
    missed: int = 0


@dataclass
class FaceTracker:
    """Face tracks across frames (IoU of boxes) with their landmarks smoothed (``smoothing=None``: raw)."""

    fps: float
    smoothing: Smoothing | None = field(default_factory=Smoothing)
    iou: float = 0.3
    max_missed: int = 5
    tracks: list[_Track] = field(default_factory=list)
    _next: int = 0

    def update(self, faces: list[tuple[tuple[float, float, float, float], np.ndarray]]
               ) -> list[tuple[int, np.ndarray]]:
        """This frame's faces as (box, 68 photo-pixel landmarks) -> (track id, landmarks to crop with)."""
        pairs = sorted(((iou(t.box, box), ti, fi) for ti, t in enumerate(self.tracks)
                        for fi, (box, _) in enumerate(faces)), reverse=True)
        owner: dict[int, _Track] = {}
        taken: set[int] = set()
        for overlap, ti, fi in pairs:
            if overlap >= self.iou and ti not in taken and fi not in owner:
                owner[fi] = self.tracks[ti]
                taken.add(ti)
        for i, t in enumerate(self.tracks):
            t.missed = 0 if i in taken else t.missed + 1
        self.tracks = [t for t in self.tracks if t.missed <= self.max_missed]
        out = []
        for fi, (box, points) in enumerate(faces):
            track = owner.get(fi)
            if track is None:
                f = OneEuroFilter(self.fps, self.smoothing) if self.smoothing is not None else None
                track = _Track(self._next, box, f)
                self._next += 1
                self.tracks.append(track)
            track.box = box
            width = float(np.ptp(points[list(HUMAN68.contour), 0]))
            out.append((track.ident, points if track.filter is None else track.filter(points, width)))
        return out


@dataclass(frozen=True)
class FrameResult:
    """One output frame (H, W, 3) uint8 and its faces: (track id, photo->crop affine) each."""

    image: np.ndarray
    faces: tuple[tuple[int, np.ndarray], ...]


def translate_frames(
    backend: Backend,
    frames: Iterable[np.ndarray],
    fps: float,
    detector: Detector,
    landmarker: Landmarker,
    options: CurateOptions,
    *,
    smoothing: Smoothing | None = Smoothing(),  # noqa: B008 (frozen)
    batch_size: int = 8,
) -> Iterator[FrameResult]:
    """Translate every face of each RGB frame, ``batch_size`` frames per translator call, in order.
    ``smoothing`` None keeps the raw landmarks (for comparison)."""
    tracker = FaceTracker(fps, smoothing)

    def flush(batch: list[tuple[np.ndarray, list]]) -> Iterator[FrameResult]:
        crops = [c for _, faces in batch for _, c in faces]
        translated = iter(translate_crops(backend, [c.crop for c in crops], [c.points for c in crops],
                                          batch_size=batch_size))
        for frame, faces in batch:
            animes = [next(translated).anime for _ in faces]
            pasted = paste_faces(frame, animes, [c.affine for _, c in faces]).image
            yield FrameResult(pasted, tuple((ident, c.affine) for ident, c in faces))

    batch: list[tuple[np.ndarray, list]] = []
    for frame in frames:
        kept, _ = find_faces(frame, detector, landmarker, options)
        tracked = tracker.update([(f.box, f.landmarks) for f in kept])
        batch.append((frame, [(ident, crop_at(frame, pts, f.box, options))
                              for (ident, pts), f in zip(tracked, kept, strict=True)]))
        if len(batch) == batch_size:
            yield from flush(batch)
            batch = []
    yield from flush(batch)


@dataclass(frozen=True)
class VideoInfo:
    """Frame rate, (width, height) and the frame count the container reports (0 when unknown)."""

    fps: float
    size: tuple[int, int]
    frames: int


def probe_video(path: Path) -> VideoInfo:
    """The input's frame rate, size and frame count; :class:`VideoError` when OpenCV cannot open it."""
    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            raise VideoError(f"{path}: not a video OpenCV can read")
        fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
        size = (int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)))
        return VideoInfo(float(fps), size, max(int(cap.get(cv2.CAP_PROP_FRAME_COUNT)), 0))
    finally:
        cap.release()


def read_frames(path: Path) -> Iterator[np.ndarray]:
    """The RGB uint8 frames of a video file."""
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise VideoError(f"{path}: not a video OpenCV can read")
    try:
        while True:
            ok, bgr = cap.read()
            if not ok:
                return
            yield cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    finally:
        cap.release()


def write_video(path: Path, frames: Iterable[np.ndarray], fps: float, size: tuple[int, int]) -> int:
    """Write RGB frames of ``size`` (width, height) to ``path`` atomically; returns the frame count."""
    fourcc = FOURCC.get(path.suffix.lower())
    if fourcc is None:
        raise VideoError(f"{path}: unknown video type (use one of {', '.join(sorted(FOURCC))})")
    count = 0
    with atomic_path(path) as tmp:
        staging = tmp.with_name(tmp.name + path.suffix)  # OpenCV picks the container by the suffix
        try:
            writer = cv2.VideoWriter(str(staging), cv2.VideoWriter_fourcc(*fourcc), fps, size)
            if not writer.isOpened():
                raise VideoError(f"{path}: OpenCV cannot write {fourcc} video here")
            try:
                for frame in frames:
                    writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
                    count += 1
            finally:
                writer.release()
            os.replace(staging, tmp)
        finally:
            staging.unlink(missing_ok=True)
    return count


def translate_video(
    backend: Backend,
    source: Path,
    out: Path,
    detector: Detector,
    landmarker: Landmarker,
    options: CurateOptions,
    *,
    smoothing: Smoothing | None = Smoothing(),  # noqa: B008 (frozen)
    batch_size: int = 8,
    on_frame: Callable[[FrameResult], None] | None = None,
) -> tuple[VideoInfo, int]:
    """``source`` -> ``out`` with every face translated (see :func:`translate_frames`), the input's fps
    and size kept; returns the input's info and the number of frames written."""
    info = probe_video(source)

    def frames() -> Iterator[np.ndarray]:
        for result in translate_frames(backend, read_frames(source), info.fps, detector, landmarker,
                                       options, smoothing=smoothing, batch_size=batch_size):
            if on_frame is not None:
                on_frame(result)
            yield result.image

    return info, write_video(out, frames(), info.fps, info.size)
