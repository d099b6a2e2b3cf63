"""The deployable model: the generator chain LDN G_p->a + PSN G_p->a as ``safetensors`` plus a JSON config.

``MODEL.safetensors`` holds the tensors under ``ldn.`` and ``psn.`` prefixes (no pickle, no code);
``MODEL.json`` beside it holds ``{"format": "pda-translator", "version": 1, "model": ModelConfig fields,
"preset": name, "run": {...}}``. :func:`load_translator` rebuilds a :class:`Translator` from the pair; it is
what ``pda-train translate`` and ``pda-train evaluate`` load.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file
from torch import Tensor, nn

from pda_data.io.files import atomic_path, atomic_write_text
from pda_data.io.weights import load_weights
from pda_data.schema import HUMAN68
from pda_train.config import ConfigError, ModelConfig
from pda_train.nets import PDANetworks, warp_portrait
from pda_train.nets.ldn import LandmarkGenerator
from pda_train.nets.psn import StylizationGenerator

FORMAT = "pda-translator"
VERSION = 1


class ExportError(ValueError):
    """A translator file pair that is missing, corrupt or of another format."""


class Translator(nn.Module):
    """Portrait crop + its HUMAN68 landmarks -> anime portrait (the inference half of the PDA model)."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        ldn = {"landmark_set": cfg.landmark_set, "width": cfg.ldn_width, "layers": cfg.ldn_generator_layers}
        self.ldn = LandmarkGenerator(**ldn) if cfg.use_ldn else None
        self.psn = StylizationGenerator(
            channels=cfg.psn_channels, blocks=cfg.psn_blocks, image_size=cfg.image_size, light=cfg.psn_light
        )

    @property
    def image_size(self) -> int:
        return self.cfg.image_size

    def forward(self, portrait: Tensor, landmarks: Tensor) -> tuple[Tensor, Tensor, Tensor | None]:
        """``portrait`` (B, 3, S, S) in [-1, 1], ``landmarks`` (B, 68, 2) in [-1, 1].

        Returns (anime (B, 3, S, S), warped portrait I_w, predicted anime LDN points (B, P, 2) or None).
        """
        if self.ldn is None:
            warped, predicted = portrait, None
        else:
            warped, predicted = warp_portrait(self.ldn, portrait, landmarks, HUMAN68)
        anime, _, _ = self.psn(warped)
        return anime, warped, predicted


def translator_from_networks(nets: PDANetworks) -> Translator:
    """A :class:`Translator` sharing copies of the trained G_p->a weights of ``nets``."""
    model = Translator(nets.cfg)
    if model.ldn is not None and nets.ldn_g_pa is not None:
        model.ldn.load_state_dict(nets.ldn_g_pa.state_dict())
    model.psn.load_state_dict(nets.psn_g_pa.state_dict())
    return model.eval()


def config_path(model_path: str | Path) -> Path:
    return Path(model_path).with_suffix(".json")


def export_translator(nets: PDANetworks, path: str | Path, extra: dict[str, Any] | None = None) -> Path:
    """Write ``path`` (.safetensors) and its ``.json`` config atomically; returns the model path."""
    model = translator_from_networks(nets)
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    out = Path(path)
    with atomic_path(out) as tmp:
        save_file(tensors, str(tmp), metadata={"format": FORMAT, "version": str(VERSION)})
    config = {"format": FORMAT, "version": VERSION, "model": dataclasses.asdict(nets.cfg), **(extra or {})}
    atomic_write_text(config_path(out), json.dumps(config, indent=2))
    return out


def read_translator_config(path: str | Path) -> dict[str, Any]:
    """The JSON config beside a ``.safetensors`` model, checked for format and version."""
    cfg_file = config_path(path)
    try:
        config = json.loads(cfg_file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ExportError(f"{cfg_file}: missing (an exported model has its .json beside it)") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ExportError(f"{cfg_file}: unreadable config ({exc})") from exc
    if not isinstance(config, dict) or config.get("format") != FORMAT or config.get("version") != VERSION:
        raise ExportError(f"{cfg_file}: not a {FORMAT} v{VERSION} config")
    return config


def load_translator(path: str | Path, device: torch.device | str = "cpu") -> Translator:
    """Rebuild the translator from ``path`` (.safetensors) and its JSON config, in eval mode."""
    p = Path(path)
    if not p.is_file():
        raise ExportError(f"{p}: no such model file")
    config = read_translator_config(p)
    try:
        model = Translator(ModelConfig(**config["model"]))
    except (TypeError, ValueError, ConfigError) as exc:
        raise ExportError(f"{config_path(p)}: bad model config ({exc})") from exc
    load_weights(model, p, ExportError)
    return model.to(device).eval()
