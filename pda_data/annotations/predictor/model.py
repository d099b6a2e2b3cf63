"""A trained landmark predictor: the network, its JSON config, saving and loading, and prediction.

``PREDICTOR.safetensors`` holds the network's tensors (no pickle, no code); ``PREDICTOR.json`` beside it holds
``{"format": "pda-landmark-predictor", "version": 1, "config": PredictorConfig fields, ...}`` (the training
report rides along). Prediction averages the crop and its mirror (unflipped through the schema's
permutation); how far the two disagree, in inter-ocular distances, is the prediction's uncertainty.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import save_file

from pda_data.annotations.predictor import DEFAULT_SIZE, DEFAULT_WIDTH
from pda_data.annotations.predictor.crop import Box, face_crop, from_crop
from pda_data.annotations.predictor.net import HeatmapNet, soft_argmax
from pda_data.io.files import atomic_path, atomic_write_text
from pda_data.io.weights import load_weights
from pda_data.schema import SCHEMAS

FORMAT = "pda-landmark-predictor"
VERSION = 1
# An uncertainty of this many inter-ocular distances gives confidence exp(-1).
UNCERTAINTY_SCALE = 0.05


class PredictorError(ValueError):
    """A predictor file pair that is missing, corrupt or of another format."""


@dataclass(frozen=True)
class PredictorConfig:
    """What rebuilds the network: the crop size in pixels (a multiple of 16), the width, the schema."""

    size: int = DEFAULT_SIZE
    width: int = DEFAULT_WIDTH
    schema: str = "anime56"

    def __post_init__(self) -> None:
        if self.size < 32 or self.size % 16:
            raise ValueError(f"size {self.size}: needs a multiple of 16, at least 32")
        if self.width < 4:
            raise ValueError(f"width {self.width}: needs at least 4")
        if self.schema not in SCHEMAS:
            raise ValueError(f"schema {self.schema!r}: one of {', '.join(SCHEMAS)}")


def to_input(crops: np.ndarray) -> torch.Tensor:
    """uint8 crops (N, S, S, 3) -> float (N, 3, S, S) in [-1, 1]."""
    t = torch.from_numpy(np.ascontiguousarray(crops)).permute(0, 3, 1, 2).float().contiguous()
    return t / 127.5 - 1.0


class LandmarkPredictor:
    """The network with its config; predicts landmarks on crops or on images given a face box."""

    def __init__(self, config: PredictorConfig, net: HeatmapNet | None = None) -> None:
        self.config = config
        self.schema = SCHEMAS[config.schema]
        self.net = net if net is not None else HeatmapNet(self.schema.n_points, config.width)

    @torch.no_grad()
    def predict_crops(self, crops: np.ndarray, batch: int = 32) -> tuple[np.ndarray, np.ndarray]:
        """uint8 crops (N, S, S, 3) -> (points (N, K, 2) in crop pixels, uncertainty (N,) in inter-ocular
        distances: the mean distance between the crop's and its mirror's prediction)."""
        self.net.eval()
        points, uncertainty = [], []
        size = self.config.size
        for i in range(0, len(crops), batch):
            x = to_input(crops[i : i + batch])
            direct, _ = soft_argmax(self.net(x))
            mirrored, _ = soft_argmax(self.net(x.flip(-1)))
            back = self.schema.flip(mirrored.double().numpy(), size)
            a = direct.double().numpy()
            eyes = self.schema.eye_centres((a + back) / 2)
            iod = np.maximum(np.linalg.norm(eyes[:, 1] - eyes[:, 0], axis=-1), 1e-6)
            points.append((a + back) / 2)
            uncertainty.append(np.linalg.norm(a - back, axis=-1).mean(axis=-1) / iod)
        k = self.schema.n_points
        if not points:
            return np.zeros((0, k, 2)), np.zeros(0)
        return np.concatenate(points), np.concatenate(uncertainty)

    def predict(self, rgb: np.ndarray, box: Box) -> tuple[np.ndarray, float]:
        """Landmarks (K, 2) in image pixels of the face in ``box`` (x0, y0, x1, y1), and their uncertainty."""
        crop, matrix = face_crop(rgb, box, self.config.size)
        points, uncertainty = self.predict_crops(crop[None])
        return from_crop(points[0], matrix), float(uncertainty[0])


def confidence(uncertainty: np.ndarray | float) -> np.ndarray:
    """Uncertainty (inter-ocular distances) -> confidence in (0, 1]: exp(-u / UNCERTAINTY_SCALE)."""
    return np.exp(-np.asarray(uncertainty, dtype=np.float64) / UNCERTAINTY_SCALE)


def config_path(path: str | Path) -> Path:
    return Path(path).with_suffix(".json")


def save_predictor(
    predictor: LandmarkPredictor, path: str | Path, extra: dict[str, Any] | None = None
) -> Path:
    """Write ``path`` (.safetensors) and its ``.json`` config atomically; returns ``path``."""
    out = Path(path)
    tensors = {k: v.detach().cpu().contiguous() for k, v in predictor.net.state_dict().items()}
    with atomic_path(out) as tmp:
        save_file(tensors, str(tmp), metadata={"format": FORMAT, "version": str(VERSION)})
    config = dataclasses.asdict(predictor.config)
    doc = {"format": FORMAT, "version": VERSION, "config": config, **(extra or {})}
    atomic_write_text(config_path(out), json.dumps(doc, indent=2) + "\n")
    return out


def load_predictor(path: str | Path) -> LandmarkPredictor:
    """Rebuild a predictor from ``path`` (.safetensors) and its JSON config; every fault is a
    :class:`PredictorError` naming the file."""
    p, cfg_file = Path(path), config_path(path)
    if not p.is_file():
        raise PredictorError(f"{p}: no such predictor file")
    try:
        doc = json.loads(cfg_file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PredictorError(f"{cfg_file}: missing (a predictor has its .json beside it)") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PredictorError(f"{cfg_file}: unreadable config ({exc})") from exc
    if not isinstance(doc, dict) or doc.get("format") != FORMAT or doc.get("version") != VERSION:
        raise PredictorError(f"{cfg_file}: not a {FORMAT} v{VERSION} config")
    try:
        predictor = LandmarkPredictor(PredictorConfig(**doc["config"]))
    except (TypeError, ValueError, KeyError) as exc:
        raise PredictorError(f"{cfg_file}: bad predictor config ({exc})") from exc
    load_weights(predictor.net, p, PredictorError)
    predictor.net.eval()
    return predictor
