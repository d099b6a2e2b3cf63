"""Experiment manifests: one YAML file that fully describes a training run.

A manifest names the shard sets, a model preset (:mod:`pda_train.config`) with field overrides, the auxiliary
pretraining, the per-stage split of stage 1, the training plan (the full three-stage scheme or one of the
data ablations of Table 4), and the logging and checkpoint intervals. Every key is checked on load against
the dataclasses below (:func:`pda_train.config.from_mapping`); an error names the file, the dotted key and
the problem. Every default is the dataclass field's.

Top-level keys (all optional except ``data.shards``)::

    name: demo                   # run name (logs)
    preset: tiny                 # a name from pda_train.config.PRESETS (default DEFAULT_PRESET)
    model: {...}                 # ModelConfig overrides  (use_ldn: false = "w/o LDN", landmark_set: full)
    losses: {...}                # LossWeights overrides  (structure: 0 = "w/o L_structure", ...)
    schedule: {...}              # Schedule overrides     (iterations: [s1, s2, s3], lr_*, batch_size, ...)
    data: {shards, aug_prob, num_workers, weights, fusion}
    aux: {detector_steps, classifier_steps, lr, batch_size, eval_batches}
    stage1: {ldn_only, psn_only}  # fractions of stage 1 spent training LDN alone, then PSN alone
    plan: full                   # full | baseline | coser | coser_aug | coser_human | single_stage
    seed, log_every, sample_every, checkpoint_every

``data.fusion`` is how Aug-Portraits are fused (:class:`pda_data.synthesis.options.FusionOptions`, the
options of ``pda-data synth-aug``): ``{grid: 32, colour_strength: [0.5, 1.0], feather: [0.03, 0.06]}``.

The saved form: every run folder holds ``experiment.yaml`` (and every checkpoint the same dict,
:meth:`Experiment.to_dict`): this format with every key written out, ``preset`` as a name followed by its
fully resolved ``model``, ``losses`` and ``schedule`` sections, and ``data.shards`` absolute. It is itself a
manifest: ``pda-train run --manifest RUN/experiment.yaml --out RUN2`` starts the same experiment.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from pda_data.io.files import atomic_write_text
from pda_data.stream.domains import PORTRAIT_DOMAINS
from pda_data.synthesis.options import FusionOptions
from pda_train.config import (
    DEFAULT_PRESET,
    ConfigError,
    Preset,
    check_value,
    from_mapping,
    get_preset,
    reject_unknown,
)

Plan = Literal["full", "baseline", "coser", "coser_aug", "coser_human", "single_stage"]
PortraitDomain = Literal[PORTRAIT_DOMAINS]  # type: ignore[valid-type]
GanStage = Literal["1", "2", "3"]
PRESET_KEYS: tuple[str, ...] = ("model", "losses", "schedule")  # a preset's sections, top-level in a manifest


class ExperimentError(ConfigError):
    """A manifest file that cannot be read or does not validate; the message starts with the file."""


@dataclass(frozen=True)
class DataSpec:
    """Where the packed shards are and how stage batches are drawn."""

    shards: str = ""  # the folder `pda-data pack` wrote (role folders + index.json); relative to the manifest
    aug_prob: float = 0.5  # Aug-Portrait probability in stages 2 and 3 (Sec. 4.1): the one default
    num_workers: int = 0
    # Optional portrait-domain mixing weights per stage: {"2": {"coser": 1, "aug": 1}, ...}.
    weights: dict[GanStage, dict[PortraitDomain, float]] = field(default_factory=dict)
    fusion: FusionOptions = FusionOptions()


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
    """A validated manifest. ``preset`` is resolved to a full :class:`pda_train.config.Preset`; ``source``
    (the file it was read from) is provenance, not part of the experiment: neither compared nor saved."""

    name: str = "pda"
    preset: Preset = field(default_factory=lambda: get_preset(DEFAULT_PRESET))
    data: DataSpec = field(default_factory=DataSpec)
    aux: AuxSpec = field(default_factory=AuxSpec)
    stage1: Stage1Spec = field(default_factory=Stage1Spec)
    plan: Plan = "full"
    seed: int = 0
    log_every: int = 10
    sample_every: int = 100
    checkpoint_every: int = 100
    source: str = field(default="", compare=False)

    @property
    def shards(self) -> Path:
        return Path(self.data.shards)

    def to_dict(self) -> dict[str, Any]:
        """The saved form (module docstring): a plain dict that :func:`experiment_from_dict` reads back."""
        out = dataclasses.asdict(self)
        del out["source"]
        preset = out.pop("preset")
        sections = {k: preset[k] for k in PRESET_KEYS}
        return {"name": out.pop("name"), "preset": preset["name"], **sections, **out}


MANIFEST_KEYS: tuple[str, ...] = tuple(Experiment().to_dict())


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
    except ConfigError as exc:
        raise ExperimentError(f"{p}: {exc}") from None
    return dataclasses.replace(exp, source=str(p))


def experiment_from_dict(raw: Any, base_dir: Path | None = None) -> Experiment:
    """Validate a parsed manifest (module docstring); a relative ``data.shards`` resolves against
    ``base_dir`` (default: the working directory). Raises ConfigError naming the dotted key."""
    if not isinstance(raw, dict):
        raise ConfigError(f"expected a mapping at the top level, got {type(raw).__name__}")
    reject_unknown(raw, list(MANIFEST_KEYS))
    preset = Preset.from_dict(
        {"name": check_value("preset", raw.get("preset", DEFAULT_PRESET), str)}
        | {k: raw[k] for k in PRESET_KEYS if k in raw}
    )
    rest = {k: v for k, v in raw.items() if k != "preset" and k not in PRESET_KEYS}
    exp = from_mapping(Experiment, rest, base=Experiment(preset=preset))
    if not exp.data.shards:
        raise ConfigError("data.shards: required (the folder written by `pda-data pack`)")
    if not Path(exp.data.shards).is_absolute():
        shards = str((Path(base_dir or ".") / exp.data.shards).resolve())
        exp = dataclasses.replace(exp, data=dataclasses.replace(exp.data, shards=shards))
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
    for stage, weights in exp.data.weights.items():
        rules += [(f"data.weights.{stage}.{k}", v >= 0, "must be >= 0") for k, v in weights.items()]
    for key, ok, problem in rules:
        if not ok:
            raise ConfigError(f"{key}: {problem}")


class _SavedFormDumper(yaml.SafeDumper):
    """Tuples (iterations, betas, ranges) as one-line lists, as a hand-written manifest has them."""


_SavedFormDumper.add_representer(
    tuple, lambda dumper, value: dumper.represent_sequence("tag:yaml.org,2002:seq", value, flow_style=True)
)


def write_resolved(exp: Experiment, path: str | Path) -> None:
    """Write the saved form of ``exp`` as YAML (atomic), with a comment naming where it came from."""
    origin = f" (from {exp.source})" if exp.source else ""
    header = (
        f"# The resolved manifest of run {exp.name!r}{origin}: every value written out.\n"
        "# `pda-train run --manifest <this file> --out <folder>` starts the same experiment.\n"
    )
    atomic_write_text(path, header + yaml.dump(exp.to_dict(), Dumper=_SavedFormDumper, sort_keys=False))
