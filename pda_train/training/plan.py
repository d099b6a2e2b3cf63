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

The Table 4 data ablations differ from ``full`` in their portrait mix only: each runs the same stages for
the same iterations with the same learning-rate policy (``Single Stage``: one stage whose steps and rates
follow the three stages' schedule back to back), so a row's difference is its named factor.
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
    segments: tuple[int, ...]  # Schedule stages run back to back: their iterations and rates (see below)
    steps: int
    weights: dict[str, float]  # portrait domain -> weight, handed to pda_data.stream.loaders.stage_loader
    aug_prob: float  # the Aug-Portrait probability ``weights`` was built with (0: none)
    human_full_losses: bool = False  # the "baseline" ablation trains on humans with every loss


def stage_weights(data_stage: int, aug_prob: float) -> dict[str, float]:
    """Portrait-domain weights of a paper stage (Sec. 3); ``{}`` for the aux stage (no portraits).

    Stage 1: coser only. Stage 2: coser, each sample replaced by an on-the-fly Aug-Portrait with ``aug_prob``.
    Stage 3: human portraits join with a third of the draws; the rest is stage 2's coser/aug mix.
    """
    mixes = {
        0: {},
        1: {"coser": 1.0},
        2: {"coser": 1.0 - aug_prob, "aug": aug_prob},
        3: {"coser": (1.0 - aug_prob) * 2 / 3, "aug": aug_prob * 2 / 3, "human": 1 / 3},
    }
    if data_stage not in mixes:
        raise ValueError(f"data stage must be 0, 1, 2 or 3, got {data_stage}")
    return {domain: w for domain, w in mixes[data_stage].items() if w > 0}


def _stage(
    name: str,
    data_stage: int,
    segments: tuple[int, ...],
    iterations: list[int],
    aug_prob: float = 0.0,
    weights: dict[str, float] | None = None,
    human_full_losses: bool = False,
) -> StagePlan:
    """A StagePlan running the Schedule ``segments`` (their ``iterations`` summed); weights default to the
    paper mix of ``data_stage`` with ``aug_prob``."""
    mix = stage_weights(data_stage, aug_prob) if weights is None else weights
    steps = sum(iterations[k - 1] for k in segments)
    return StagePlan(name, data_stage, segments, steps, mix, aug_prob, human_full_losses)


def plan_stages(exp: Experiment) -> list[StagePlan]:
    """The stages of ``exp.plan`` (Table 4 rows), each with its data mix and step count.

    Every GAN plan runs the schedule's three stages for the same iterations and rates; only the portrait
    mix differs from ``full`` (aux; 1 coser; 2 coser + Aug-Portrait; 3 coser + Aug-Portrait + 1/3 human):

    * ``coser``: coser only in all three stages.
    * ``coser_aug``: stage 3 keeps stage 2's coser + Aug-Portrait mix (no human).
    * ``coser_human``: stage 2 stays on coser (no Aug-Portrait); stage 3 is full's with Aug-Portrait's share
      given to coser (coser 2/3, human 1/3).
    * ``baseline``: human portraits only in all three stages, every loss applied to them.
    * ``single_stage``: one stage over coser + Aug-Portrait + human (stage 3's mix) whose steps and rates
      are the three stages' back to back (individual then joint training at the stage-1 rate, then the
      decaying stage-2 and stage-3 rates).

    ``data.weights`` in the manifest replaces a stage's weights.
    """
    it = [int(n) for n in exp.preset.schedule.iterations]
    p = exp.data.aug_prob
    aux = StagePlan("aux", 0, (), exp.aux.detector_steps + 2 * exp.aux.classifier_steps, {}, 0.0)
    s1 = _stage("1", 1, (1,), it, p)
    s2 = _stage("2", 2, (2,), it, p)
    human = {"human": 1.0}
    plans = {
        "full": [aux, s1, s2, _stage("3", 3, (3,), it, p)],
        "coser": [aux, s1, _stage("2", 1, (2,), it), _stage("3", 1, (3,), it)],
        "coser_aug": [aux, s1, s2, _stage("3", 2, (3,), it, p)],
        "coser_human": [aux, s1, _stage("2", 1, (2,), it), _stage("3", 3, (3,), it)],
        "baseline": [aux] + [_stage(name, 3, (k,), it, weights=human, human_full_losses=True)
                             for k, name in ((1, "1"), (2, "2"), (3, "3"))],
        "single_stage": [aux, _stage("1", 3, (1, 2, 3), it, p)],
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


def segment_at(plan: StagePlan, step: int, exp: Experiment) -> tuple[int, int]:
    """(Schedule stage, step within it) of ``plan``'s ``step``: its segments run back to back."""
    iterations = exp.preset.schedule.iterations
    for k in plan.segments:
        n = int(iterations[k - 1])
        if step < n or k == plan.segments[-1]:
            return k, step
        step -= n
    raise ValueError(f"stage {plan.name} has no schedule segments")


def learning_rates(plan: StagePlan, step: int, exp: Experiment) -> tuple[float, float]:
    """(LDN, PSN) learning rates at ``step`` of a GAN stage (:meth:`Schedule.learning_rates` per segment)."""
    return exp.preset.schedule.learning_rates(*segment_at(plan, step, exp))


def gan_phase(plan: StagePlan, step: int, exp: Experiment, has_ldn: bool) -> str:
    """Phase of a GAN stage at ``step``: stage 1's schedule (:func:`stage1_phase`), else ``joint``."""
    stage, local = segment_at(plan, step, exp)
    if stage != 1:
        return "joint"
    return stage1_phase(local, int(exp.preset.schedule.iterations[0]), exp, has_ldn)


def aux_phase(step: int, exp: Experiment) -> str:
    """Aux phase at ``step``: ``detector``, ``structure`` (classifier) or ``highlight`` (classifier)."""
    if step < exp.aux.detector_steps:
        return "detector"
    return "structure" if step < exp.aux.detector_steps + exp.aux.classifier_steps else "highlight"


def stream_seed(seed: int, stage: str, step: int, rank: int) -> int:
    """Data seed of a stream (re)opened at ``step``: reproducible, and different per rank and stage."""
    return int(np.random.SeedSequence([seed, STAGES.index(stage), step, rank]).generate_state(1)[0])
