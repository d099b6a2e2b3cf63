"""Experiment manifests: one YAML file that fully describes a training run.

A manifest names the shard sets, a model preset (:mod:`pda_train.config`) with field overrides, the auxiliary
pretraining, the per-stage split of stage 1, the training plan (the full three-stage scheme or one of the
data ablations of Table 4), and the logging and checkpoint intervals. Every key is checked on load; an error
names the file, the dotted key and the problem. The resolved manifest (all defaults filled in) is written into
every run folder and checkpoint, so a result can be traced to its settings.

Top-level keys (all optional except ``data.shards``)::

    name: demo                   # run name (logs)
    preset: tiny                 # a name from pda_train.config.PRESETS
    model: {...}                 # ModelConfig overrides  (use_ldn: false = "w/o LDN", landmark_set: full)
    losses: {...}                # LossWeights overrides  (structure: 0 = "w/o L_structure", ...)
    schedule: {...}              # Schedule overrides     (iterations: [s1, s2, s3], lr_*, batch_size, ...)
    data: {shards, aug_prob, num_workers, weights}
    aux: {detector_steps, classifier_steps, lr, batch_size, eval_batches}
    stage1: {ldn_only, psn_only}  # fractions of stage 1 spent training LDN alone, then PSN alone
    plan: full                   # full | baseline | coser | coser_aug | coser_human | single_stage
    seed, log_every, sample_every, checkpoint_every
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from pda_data.io.files import atomic_write_text
from pda_train.config import ConfigError, Preset, get_preset

Plan = Literal["full", "baseline", "coser", "coser_aug", "coser_human", "single_stage"]
PORTRAIT_DOMAINS: tuple[str, ...] = ("coser", "aug", "human")


class ExperimentError(ValueError):
    """A manifest that cannot be read or does not validate; the message names the file and key."""


@dataclass(frozen=True)
class DataSpec:
    """Where the packed shards are and how stage batches are drawn."""

    shards: str = ""  # the folder `pda-data pack` wrote (role folders + index.json); relative to the manifest
    aug_prob: float = 0.5  # Aug-Portrait probability in stages 2 and 3 (Sec. 4.1)
    num_workers: int = 0
    # Optional portrait-domain mixing weights per stage: {"2": {"coser": 1, "aug": 1}, ...}.
    weights: dict[str, dict[str, float]] = field(default_factory=dict)


@dataclass(frozen=True)
class AuxSpec:
    """Pretraining of the structure detector, structure classifier and highlight classifier."""

    detector_steps: int = 200
    classifier_steps: int = 200  # for each of the two classifiers
    lr: float = 2e-4
    batch_size: int = 8
    eval_batches: int = 0  # held-out batches for accuracy; 0 = one full pass over the test split


@dataclass(frozen=True)
class Stage1Spec:
    """Stage 1 trains LDN alone, then PSN alone on LDN-warped cosers (LDN fixed), then both jointly."""

    ldn_only: float = 0.2
    psn_only: float = 0.2


@dataclass(frozen=True)
class Experiment:
    """A validated manifest. ``preset`` is resolved to a full :class:`pda_train.config.Preset`."""

    name: str
    preset: Preset
    data: DataSpec
    aux: AuxSpec = field(default_factory=AuxSpec)
    stage1: Stage1Spec = field(default_factory=Stage1Spec)
    plan: Plan = "full"
    seed: int = 0
    log_every: int = 10
    sample_every: int = 100
    checkpoint_every: int = 100
    source: str = ""

    @property
    def shards(self) -> Path:
        return Path(self.data.shards)

    def to_dict(self) -> dict[str, Any]:
        """Plain, fully resolved dict: what checkpoints and the run folder record."""
        out = dataclasses.asdict(self)
        out["preset"] = self.preset.to_dict()
        return out


_TOP_KEYS = ("name", "preset", "model", "losses", "schedule", "data", "aux", "stage1", "plan", "seed",
             "log_every", "sample_every", "checkpoint_every")


def load_experiment(path: str | Path) -> Experiment:
    """Read and validate a YAML manifest; relative shard paths resolve against the manifest's folder."""
    p = Path(path)
    try:
        raw = yaml.safe_load(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ExperimentError(f"{p}: no such manifest") from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ExperimentError(f"{p}: not a readable YAML file ({exc})".replace("\n", " ")) from exc
    try:
        exp = experiment_from_dict(raw if raw is not None else {}, base_dir=p.parent)
    except ExperimentError as exc:
        raise ExperimentError(f"{p}: {exc}") from None
    return dataclasses.replace(exp, source=str(p))


def experiment_from_dict(raw: Any, base_dir: Path | None = None) -> Experiment:
    """Validate a parsed manifest (see the module docstring for the keys)."""
    if not isinstance(raw, dict):
        raise ExperimentError(f"expected a mapping at the top level, got {type(raw).__name__}")
    unknown = sorted(set(raw) - set(_TOP_KEYS))
    if unknown:
        raise ExperimentError(f"unknown key {unknown[0]!r} (known: {', '.join(_TOP_KEYS)})")
    preset_name = _check("preset", raw.get("preset", "tiny"), str)
    try:
        preset = Preset.from_dict(
            {k: raw[k] for k in ("model", "losses", "schedule") if k in raw}, base=get_preset(preset_name)
        )
    except ConfigError as exc:
        raise ExperimentError(str(exc)) from None
    data = _build(DataSpec, raw.get("data"), "data")
    if not data.shards:
        raise ExperimentError("data.shards: required (the folder written by `pda-data pack`)")
    if base_dir is not None and not Path(data.shards).is_absolute():
        data = dataclasses.replace(data, shards=str((base_dir / data.shards).resolve()))
    for stage, weights in data.weights.items():
        if stage not in ("1", "2", "3"):
            raise ExperimentError(f"data.weights.{stage}: stage must be 1, 2 or 3")
        bad = sorted(set(weights) - set(PORTRAIT_DOMAINS))
        if bad:
            raise ExperimentError(f"data.weights.{stage}.{bad[0]}: not one of {PORTRAIT_DOMAINS}")
    exp = Experiment(
        name=_check("name", raw.get("name", "pda"), str),
        preset=preset,
        data=data,
        aux=_build(AuxSpec, raw.get("aux"), "aux"),
        stage1=_build(Stage1Spec, raw.get("stage1"), "stage1"),
        plan=_check("plan", raw.get("plan", "full"), Plan),
        seed=_check("seed", raw.get("seed", 0), int),
        log_every=_check("log_every", raw.get("log_every", 10), int),
        sample_every=_check("sample_every", raw.get("sample_every", 100), int),
        checkpoint_every=_check("checkpoint_every", raw.get("checkpoint_every", 100), int),
    )
    _check_ranges(exp)
    return exp


def _check_ranges(exp: Experiment) -> None:
    rules = [
        ("data.aug_prob", 0.0 <= exp.data.aug_prob <= 1.0, "must be between 0 and 1"),
        ("data.num_workers", exp.data.num_workers >= 0, "must be >= 0"),
        ("aux.detector_steps", exp.aux.detector_steps >= 0, "must be >= 0"),
        ("aux.classifier_steps", exp.aux.classifier_steps >= 0, "must be >= 0"),
        ("aux.lr", exp.aux.lr > 0, "must be > 0"),
        ("aux.batch_size", exp.aux.batch_size >= 1, "must be >= 1"),
        ("aux.eval_batches", exp.aux.eval_batches >= 0, "must be >= 0"),
        ("stage1.ldn_only", 0.0 <= exp.stage1.ldn_only <= 1.0, "must be between 0 and 1"),
        ("stage1.psn_only", 0.0 <= exp.stage1.psn_only <= 1.0, "must be between 0 and 1"),
        ("stage1", exp.stage1.ldn_only + exp.stage1.psn_only <= 1.0, "ldn_only + psn_only must be <= 1"),
        ("schedule.batch_size", exp.preset.schedule.batch_size >= 1, "must be >= 1"),
        ("log_every", exp.log_every >= 1, "must be >= 1"),
        ("sample_every", exp.sample_every >= 0, "must be >= 0 (0 = only at stage end)"),
        ("checkpoint_every", exp.checkpoint_every >= 0, "must be >= 0 (0 = only at stage end)"),
    ]
    for weights in exp.data.weights.values():
        rules += [(f"data.weights: {k}", v >= 0, "must be >= 0") for k, v in weights.items()]
    for key, ok, problem in rules:
        if not ok:
            raise ExperimentError(f"{key}: {problem}")


def _build(cls: type, value: Any, where: str) -> Any:
    """Dataclass ``cls`` from a mapping, checking unknown keys and every field's type."""
    if value is None:
        return cls()
    if not isinstance(value, dict):
        raise ExperimentError(f"{where}: expected a mapping, got {type(value).__name__}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(value) - set(names))
    if unknown:
        raise ExperimentError(f"{where}.{unknown[0]}: unknown key (known: {', '.join(names)})")
    return cls(**{k: _check(f"{where}.{k}", v, hints[k]) for k, v in value.items()})


def _check(key: str, value: Any, expected: Any) -> Any:
    """Return ``value`` converted to ``expected`` (int -> float allowed), or raise naming ``key``."""
    origin = typing.get_origin(expected)
    if origin is Literal:
        choices = typing.get_args(expected)
        if value not in choices:
            raise ExperimentError(f"{key}: {value!r} is not one of {', '.join(map(str, choices))}")
        return value
    if origin is dict:
        key_type, value_type = typing.get_args(expected)
        if not isinstance(value, dict):
            raise ExperimentError(f"{key}: expected a mapping, got {type(value).__name__}")
        return {str(k): _check(f"{key}.{k}", v, value_type) for k, v in value.items()}
    if expected is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if expected is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if expected is str and isinstance(value, str | Path):
        return str(value)
    if expected is bool and isinstance(value, bool):
        return value
    raise ExperimentError(f"{key}: expected {expected.__name__}, got {type(value).__name__} ({value!r})")


def write_resolved(exp: Experiment, path: str | Path) -> None:
    """Write the fully resolved manifest as YAML (atomic)."""
    atomic_write_text(path, yaml.safe_dump(exp.to_dict(), sort_keys=False))
