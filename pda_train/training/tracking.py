"""Run tracking: JSONL metrics, optional TensorBoard, and sample grids under ``RUN/samples/``.

Only rank 0 tracks; other ranks get a disabled tracker whose methods do nothing. ``RUN/metrics.jsonl`` has one
JSON object per logged step: ``{"stage": "2", "step": 40, "time": ..., "loss/psn_adv": ..., "lr/psn": ...}``;
a record is appended whole or not at all (a full disk leaves no half line). Nothing is written before the
first record or grid, so a run that cannot take its folder's lock leaves no trace in it.
Sample grids are PNGs, one row per sample and one column per named image (input, warped, anime, cycle
reconstruction, structure heatmap).
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pda_data.io.files import atomic_write_text
from pda_data.io.images import save_image
from pda_data.viz.sheet import contact_sheet

METRICS_NAME = "metrics.jsonl"
SAMPLES_DIR = "samples"


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """(B, C, H, W) tensors in [-1, 1] (C = 3, or 1 for heatmaps) to (B, H, W, 3) uint8 RGB."""
    x = images.detach().float().cpu().clamp(-1, 1)
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    return ((x + 1.0) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


def heatmap_tile(heatmaps: torch.Tensor) -> torch.Tensor:
    """(B, K, H, W) heatmaps in [0, 1] to a (B, 1, H, W) image in [-1, 1] (max over channels)."""
    return heatmaps.detach().float().amax(dim=1, keepdim=True).clamp(0, 1) * 2.0 - 1.0


def sample_grid(columns: Mapping[str, torch.Tensor], rows: int = 4, tile_size: int = 96) -> np.ndarray:
    """One RGB grid: a row per sample, a column per entry of ``columns`` ((B, C, H, W) in [-1, 1])."""
    arrays = {name: to_uint8(t[:rows]) for name, t in columns.items()}
    n = min(len(a) for a in arrays.values())
    tiles = [arrays[name][i] for i in range(n) for name in arrays]
    labels = [name for _ in range(n) for name in arrays]
    return contact_sheet(tiles, labels, columns=len(arrays), tile_size=tile_size)


class Tracker:
    """Writes metrics and sample grids of one run (a no-op when ``enabled`` is false)."""

    def __init__(self, run_dir: str | Path, enabled: bool = True, tensorboard: bool = True) -> None:
        self.run_dir = Path(run_dir)
        self.enabled = enabled
        self._tensorboard = enabled and tensorboard
        self._writer = None

    @property
    def metrics_path(self) -> Path:
        return self.run_dir / METRICS_NAME

    def _board(self) -> Any:
        """The TensorBoard writer, opened on first use; None without tensorboard."""
        if self._writer is None and self._tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # tensorboard is optional: JSONL and PNG grids still get written
                self._tensorboard = False
                return None
            self._writer = SummaryWriter(log_dir=str(self.run_dir / "tensorboard"))
        return self._writer

    def log(self, stage: str, step: int, values: Mapping[str, float]) -> None:
        """Append one JSONL record and the matching TensorBoard scalars (tag ``stage<S>/<name>``)."""
        if not self.enabled:
            return
        record = {"stage": stage, "step": step, "time": round(time.time(), 3)}
        record.update({k: float(v) for k, v in values.items()})
        _append_whole(self.metrics_path, json.dumps(record) + "\n")
        board = self._board()
        if board is not None:
            for name, value in values.items():
                board.add_scalar(f"stage{stage}/{name}", float(value), step)

    def rewind(self, keep: Callable[[dict], bool]) -> None:
        """Drop JSONL records that ``keep`` rejects (on resume: those logged after the checkpoint)."""
        if not self.enabled or not self.metrics_path.is_file():
            return
        kept = [json.dumps(r) + "\n" for r in read_metrics(self.run_dir) if keep(r)]
        atomic_write_text(self.metrics_path, "".join(kept))

    def images(self, stage: str, step: int, columns: Mapping[str, torch.Tensor]) -> Path | None:
        """Save a sample grid to ``samples/stage<S>-<step>.png`` (and TensorBoard); returns the path."""
        if not self.enabled or not columns:
            return None
        grid = sample_grid(columns)
        path = self.run_dir / SAMPLES_DIR / f"stage{stage}-{step:07d}.png"
        save_image(path, grid)
        board = self._board()
        if board is not None:
            board.add_image(f"stage{stage}/samples", grid, step, dataformats="HWC")
        return path

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def _append_whole(path: Path, text: str) -> None:
    """Append ``text`` to ``path`` completely or not at all; an OS error names ``path``."""
    data = memoryview(text.encode("utf-8"))
    with open(path, "ab", buffering=0) as fh:
        start = fh.tell()
        try:
            while data:
                data = data[fh.write(data) :]
        except OSError as exc:
            with contextlib.suppress(OSError):
                fh.truncate(start)
            raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from exc


def read_metrics(run_dir: str | Path) -> list[dict]:
    """All JSONL records of a run (for summaries and tests)."""
    path = Path(run_dir) / METRICS_NAME
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
