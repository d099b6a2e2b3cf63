"""Model, loss and schedule configuration: the paper's numbers and a tiny CPU variant in one place.

Every network size, every loss weight and every optimisation number of the PDA model lives in the
three dataclasses below, so the paper's configuration and the CPU test configuration are the same
code with different numbers, and each ablation of the paper's Table 4 is a field:

* "w/o LDN": ``ModelConfig.use_ldn = False``;
* "Full Landmarks": ``ModelConfig.landmark_set = "full"``;
* "w/o L_structure", "w/o L_highlight", "w/o L_cam": the matching ``LossWeights`` field set to 0.

:func:`from_mapping` builds any configuration dataclass (these and the manifest's sections) from a parsed
YAML mapping, checked against the type hints; its errors name the dotted key (``model.psn_channels``).
Manifests override a preset's fields by name (:meth:`Preset.from_dict`).
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

LandmarkSet = Literal["contour", "full"]
LANDMARK_SETS: tuple[str, ...] = typing.get_args(LandmarkSet)
DEFAULT_PRESET = "tiny"  # the preset of a manifest without ``preset:`` and of ``pda-train describe``

T = TypeVar("T")


class ConfigError(ValueError):
    """A configuration key or value that does not fit its dataclass; the message names the dotted key."""


def from_mapping(cls: type[T], value: Any, where: str = "", base: T | None = None) -> T:
    """Dataclass ``cls`` from the parsed YAML/JSON mapping ``value``, laid over ``base`` (default ``cls()``).

    Every key must be a field of ``cls``; each value is checked against the field's type hint by
    :func:`check_value` (nested dataclasses recursively, over the matching field of ``base``). Errors,
    including the ones ``__post_init__`` raises, are a ConfigError naming the dotted key under ``where``.
    """
    if value is None:
        value = {}
    if not isinstance(value, dict):
        raise ConfigError(f"{_at(where)}expected a mapping, got {type(value).__name__}")
    reject_unknown(value, [f.name for f in dataclasses.fields(cls) if f.init], where)  # type: ignore[arg-type]
    hints = typing.get_type_hints(cls)
    base = cls() if base is None else base
    values = {k: check_value(_join(where, k), v, hints[k], getattr(base, k)) for k, v in value.items()}
    try:
        return dataclasses.replace(base, **values)  # type: ignore[type-var]
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{_at(where)}{err}") from None


def reject_unknown(value: dict[str, Any], known: list[str], where: str = "") -> None:
    """Raise ConfigError naming the first key of ``value`` that is not in ``known``."""
    unknown = sorted(set(value) - set(known), key=str)
    if unknown:
        raise ConfigError(f"{_join(where, unknown[0])}: unknown key (known: {', '.join(known)})")


def check_value(key: str, value: Any, expected: Any, base: Any = None) -> Any:
    """``value`` converted to the type hint ``expected``, or a ConfigError naming ``key``.

    Ints pass for floats, bools only as bools; YAML lists become tuples; ``base`` is what a nested
    dataclass mapping overrides.
    """
    origin, args = typing.get_origin(expected), typing.get_args(expected)
    if dataclasses.is_dataclass(expected):
        return from_mapping(expected, value, key, base)  # type: ignore[arg-type]
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{key}: {value!r} is not one of {', '.join(map(str, args))}")
        return value
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {type(value).__name__}")
        # YAML reads `2:` as an int key: keys are names, so they are checked as strings.
        return {
            check_value(_join(key, str(k)), str(k), args[0]): check_value(_join(key, str(k)), v, args[1])
            for k, v in value.items()
        }
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{key}: expected a list, got {type(value).__name__} ({value!r})")
        types = (args[0],) * len(value) if args[-1] is Ellipsis else args
        if len(value) != len(types):
            raise ConfigError(f"{key}: expected {len(types)} values, got {len(value)} ({list(value)})")
        pairs = enumerate(zip(value, types, strict=True))
        return tuple(check_value(f"{key}.{i}", v, t) for i, (v, t) in pairs)
    if expected is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if expected is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if expected is str and isinstance(value, str | Path):
        return str(value)
    if expected is bool and isinstance(value, bool):
        return value
    name = getattr(expected, "__name__", str(expected))
    raise ConfigError(f"{key}: expected {name}, got {type(value).__name__} ({value!r})")


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _at(where: str) -> str:
    return f"{where}: " if where else ""


@dataclass(frozen=True)
class ModelConfig:
    """Sizes of every network (Sec. 3.1.2); the defaults are the paper's 256x256 configuration."""

    image_size: int = 256
    # Landmark Deformation Network: 12-layer MLP generators, 7-layer MLP discriminators.
    use_ldn: bool = True
    landmark_set: LandmarkSet = "contour"
    ldn_width: int = 256
    ldn_generator_layers: int = 12
    ldn_discriminator_layers: int = 7
    # Portrait Stylization Network (U-GAT-IT): residual blocks per side, so 6 + 6 = the paper's twelve.
    psn_channels: int = 64
    psn_blocks: int = 6
    # False = U-GAT-IT's full model (gamma/beta MLP over the flattened feature map), True = its light model.
    psn_light: bool = False
    disc_channels: int = 64
    disc_downsamplings: int = 5
    # Auxiliary networks (frozen during PSN training).
    detector_channels: int = 32
    detector_depth: int = 4
    classifier_channels: int = 32

    def __post_init__(self) -> None:
        if self.landmark_set not in LANDMARK_SETS:
            raise ValueError(f"landmark_set must be one of {LANDMARK_SETS}, got {self.landmark_set!r}")
        if self.image_size % (2**self.disc_downsamplings) or self.image_size % (2**self.detector_depth):
            raise ValueError(
                f"image_size {self.image_size} must be divisible by "
                "2**disc_downsamplings and 2**detector_depth"
            )
        if self.image_size // 2**self.disc_downsamplings < 4:
            raise ValueError(
                f"{self.disc_downsamplings} discriminator downsamplings leave "
                f"less than 4x4 at {self.image_size}px"
            )
        if self.ldn_generator_layers < 2 or self.ldn_discriminator_layers < 2:
            raise ValueError("LDN MLPs need at least 2 layers")


@dataclass(frozen=True)
class LossWeights:
    """Weights of Eq. 3 (LDN) and Eq. 6 (PSN); 0 disables a term (the paper's loss ablations)."""

    ldn_cycle: float = 100.0
    ldn_adv: float = 1.0
    psn_cycle: float = 10.0
    psn_adv: float = 1.0
    cam: float = 1000.0
    structure: float = 1.0
    highlight: float = 1.0
    # U-GAT-IT's identity loss; not among the paper's five PSN losses, so off by default.
    identity: float = 0.0

    def __post_init__(self) -> None:
        negative = [f.name for f in dataclasses.fields(self) if getattr(self, f.name) < 0]
        if negative:
            raise ValueError(f"loss weight {negative[0]} must be >= 0")


@dataclass(frozen=True)
class Schedule:
    """Iterations and learning rates of the three adaptation stages (Sec. 4.2)."""

    iterations: tuple[int, int, int] = (500_000, 250_000, 250_000)
    batch_size: int = 1
    # Stage 1: both networks at a fixed rate; stages 2 and 3 start at these and decay linearly to 0.
    lr_stage1: float = 1e-4
    lr_ldn: float = 1e-5
    lr_psn: float = 1e-4
    decay: Literal["linear", "none"] = "linear"
    # Adam betas and weight decay of U-GAT-IT's training script (the paper names Adam only).
    betas: tuple[float, float] = (0.5, 0.999)
    weight_decay: float = 1e-4

    def __post_init__(self) -> None:
        if len(self.iterations) != 3 or any(int(n) < 0 for n in self.iterations):
            raise ValueError(f"iterations must be three non-negative counts, got {self.iterations}")
        if self.decay not in ("linear", "none"):
            raise ValueError(f"decay must be 'linear' or 'none', got {self.decay!r}")

    def learning_rates(self, stage: int, step: int) -> tuple[float, float]:
        """(LDN, PSN) learning rates at ``step`` (0-based) of ``stage`` (1, 2 or 3)."""
        if stage not in (1, 2, 3):
            raise ValueError(f"stage must be 1, 2 or 3, got {stage}")
        if stage == 1:
            return self.lr_stage1, self.lr_stage1
        total = max(int(self.iterations[stage - 1]), 1)
        factor = 1.0 if self.decay == "none" else max(0.0, 1.0 - step / total)
        return self.lr_ldn * factor, self.lr_psn * factor


@dataclass(frozen=True)
class Preset:
    """A complete configuration: networks, loss weights and schedule."""

    name: str
    model: ModelConfig = field(default_factory=ModelConfig)
    losses: LossWeights = field(default_factory=LossWeights)
    schedule: Schedule = field(default_factory=Schedule)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Preset:
        """The preset named ``data["name"]`` (default :data:`DEFAULT_PRESET`) with the ``model``, ``losses``
        and ``schedule`` mappings of ``data`` overriding its fields; ConfigError names a bad key."""
        name = data.get("name", DEFAULT_PRESET) if isinstance(data, dict) else DEFAULT_PRESET
        return from_mapping(cls, data, base=get_preset(check_value("name", name, str)))

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (for checkpoints and logs); inverse of :meth:`from_dict`."""
        return dataclasses.asdict(self)


PRESETS: dict[str, Preset] = {
    "paper": Preset(name="paper"),
    "tiny": Preset(
        name="tiny",
        model=ModelConfig(
            image_size=64,
            ldn_width=64,
            psn_channels=8,
            psn_blocks=2,
            psn_light=True,
            disc_channels=8,
            disc_downsamplings=3,
            detector_channels=8,
            detector_depth=3,
            classifier_channels=8,
        ),
        schedule=Schedule(iterations=(200, 100, 100), batch_size=2, lr_stage1=2e-4, lr_ldn=2e-5, lr_psn=2e-4),
    ),
}


def get_preset(name: str) -> Preset:
    """The preset called ``name``; a clear error lists the known ones."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ConfigError(f"unknown preset {name!r} (known: {', '.join(sorted(PRESETS))})") from None
