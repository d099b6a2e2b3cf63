"""The stage plan of an experiment as pure functions: stages, their data mix, step counts and phases.

Stages of the ``full`` plan (see :func:`plan_stages` for the Table 4 data ablations):

* ``aux``: the face structure detector, then the structure and highlight classifiers (phases
  :func:`aux_phase`).
* ``1`` (coser + anime): LDN alone, PSN alone on LDN-warped cosers with the LDN fixed, then both end to end
  (phases :func:`stage1_phase`); learning rates fixed (``Schedule.lr_stage1``).
* ``2`` (coser + on-the-fly Aug-Portrait with probability ``data.aug_prob``, + anime): end to end, learning
  rates decayed linearly to 0.
* ``3`` (coser + Aug-Portrait + human, + anime): the same; human portraits take only L_structure and
  L_highlight (Sec. 3.3).

The portrait-domain weights of each stage live here (:func:`stage_weights`): the data layer is told which
domains to mix with which weights, never a stage number.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from pda_train.manifest import Experiment

STAGES: tuple[str, ...] = ("aux", "1", "2", "3")


@dataclass(frozen=True)
class StagePlan:
    """One stage of a plan: what the stream serves, which schedule entry applies, how long it runs."""

    name: str  # "aux", "1", "2" or "3": checkpoint names and --stage values
    data_stage: int  # the paper stage whose portrait mix ``weights`` follows (0 for aux: no portraits)
    schedule_stage: int  # the Schedule entry for iterations and learning rates (1 = individual + joint)
    steps: int
    weights: dict[str, float]  # portrait domain -> weight, handed to pda_data.stream.loaders.stage_loader
    aug_prob: float  # the Aug-Portrait probability ``weights`` was built with (0: none)
    human_full_losses: bool = False  # the "baseline" ablation trains on humans with every loss


def stage_weights(data_stage: int, aug_prob: float) -> dict[str, float]:
    """Portrait-domain weights of a paper stage (Sec. 3); ``{}`` for the aux stage (no portraits).

    Stage 1: coser only. Stage 2: coser, each sample replaced by an on-the-fly Aug-Portrait with ``aug_prob``.
    Stage 3: human portraits join with a third of the draws; the rest is stage 2's coser/aug mix.
    """
    if data_stage == 0:
        return {}
    if data_stage == 1:
        return {"coser": 1.0}
    if data_stage == 2:
        return {"coser": 1.0 - aug_prob, "aug": aug_prob}
    if data_stage == 3:
        return {"coser": (1.0 - aug_prob) * 2 / 3, "aug": aug_prob * 2 / 3, "human": 1 / 3}
    raise ValueError(f"data stage must be 0, 1, 2 or 3, got {data_stage}")


def _stage(
    name: str,
    data_stage: int,
    schedule_stage: int,
    steps: int,
    aug_prob: float = 0.0,
    weights: dict[str, float] | None = None,
    human_full_losses: bool = False,
) -> StagePlan:
    """A StagePlan whose weights default to the paper mix of ``data_stage`` with ``aug_prob``."""
    mix = stage_weights(data_stage, aug_prob) if weights is None else weights
    return StagePlan(name, data_stage, schedule_stage, steps, mix, aug_prob, human_full_losses)


def plan_stages(exp: Experiment) -> list[StagePlan]:
    """The stages of ``exp.plan`` (Table 4 rows), each with its data mix and step count.

    ``full``: aux, 1, 2, 3. ``coser``: aux, 1. ``coser_aug``: aux, 1, 2. ``coser_human``: aux, 1, then stage 3
    without Aug-Portrait. ``baseline``: aux, then stage 1's procedure on human portraits only, every loss
    applied to them. ``single_stage``: aux, then one stage-1 run (fixed rate, individual then joint) over
    coser + Aug-Portrait + human for the total iterations of all three stages. ``data.weights`` in the
    manifest replaces a stage's weights.
    """
    it = [int(n) for n in exp.preset.schedule.iterations]
    p = exp.data.aug_prob
    aux = _stage("aux", 0, 0, exp.aux.detector_steps + 2 * exp.aux.classifier_steps)
    s1 = _stage("1", 1, 1, it[0], p)
    s2 = _stage("2", 2, 2, it[1], p)
    plans = {
        "full": [aux, s1, s2, _stage("3", 3, 3, it[2], p)],
        "coser": [aux, s1],
        "coser_aug": [aux, s1, s2],
        "coser_human": [aux, s1, _stage("3", 3, 3, it[2], weights={"coser": 1.0, "human": 1.0})],
        "baseline": [aux, _stage("1", 3, 1, it[0], weights={"human": 1.0}, human_full_losses=True)],
        "single_stage": [aux, _stage("1", 3, 1, sum(it), p)],
    }
    out = []
    for stage in plans[exp.plan]:
        override = exp.data.weights.get(stage.name)
        out.append(dataclasses.replace(stage, weights=dict(override)) if override else stage)
    return out


def stage1_phase(step: int, total: int, exp: Experiment, has_ldn: bool) -> str:
    """Stage-1 phase at ``step``: ``ldn`` (LDN alone), ``psn`` (PSN alone, LDN fixed) or ``joint``."""
    ldn_end = round(total * exp.stage1.ldn_only) if has_ldn else 0
    psn_end = ldn_end + round(total * exp.stage1.psn_only)
    if step < ldn_end:
        return "ldn"
    return "psn" if step < psn_end else "joint"


def gan_phase(plan: StagePlan, step: int, exp: Experiment, has_ldn: bool) -> str:
    """Phase of a GAN stage at ``step``: stage 1's schedule (:func:`stage1_phase`), else ``joint``."""
    return stage1_phase(step, plan.steps, exp, has_ldn) if plan.schedule_stage == 1 else "joint"


def aux_phase(step: int, exp: Experiment) -> str:
    """Aux phase at ``step``: ``detector``, ``structure`` (classifier) or ``highlight`` (classifier)."""
    if step < exp.aux.detector_steps:
        return "detector"
    return "structure" if step < exp.aux.detector_steps + exp.aux.classifier_steps else "highlight"


def stream_seed(seed: int, stage: str, step: int, rank: int) -> int:
    """Data seed of a stream (re)opened at ``step``: reproducible, and different per rank and stage."""
    return int(np.random.SeedSequence([seed, STAGES.index(stage), step, rank]).generate_state(1)[0])
