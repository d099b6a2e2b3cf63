"""What differs between the loop's stages: the aux stage and the GAN stages as small strategy objects.

A stage strategy owns its optimizers and schedulers and says, per step, which phase applies, which stream
feeds it, which step function runs (:func:`~pda_train.training.steps.aux_step` or
:func:`~pda_train.training.steps.gan_step`), which sample grids to write and what to do at the stage end.
The loop (:class:`pda_train.training.loop.Trainer`) runs them through one skeleton.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from rich.console import Console
from torch import Tensor

from pda_data.shards.index import CLASSIFIER_ROLES, ShardError
from pda_data.stream.loaders import aux_loader, stage_loader
from pda_train.manifest import Experiment
from pda_train.nets import GeneratorPass, PDANetworks
from pda_train.training.plan import StagePlan, aux_phase, gan_phase, learning_rates, stream_seed
from pda_train.training.runtime import Runtime, all_reduce_mean, eval_mode
from pda_train.training.steps import aux_step, gan_step
from pda_train.training.tracking import Tracker, heatmap_tile

SAMPLE_COUNT = 4  # images per sample grid


@dataclass
class StageContext:
    """What every stage strategy reads: the experiment, the networks, the runtime and the loggers."""

    exp: Experiment
    nets: PDANetworks
    rt: Runtime
    tracker: Tracker
    console: Console


def aux_stream(
    ctx: StageContext, role: str, split: str, step: int, infinite: bool = True
) -> Iterator[dict[str, Any]]:
    """The batches of one classifier role, seeded for a stream (re)opened at ``step`` of the aux stage."""
    exp = ctx.exp
    return iter(
        aux_loader(
            exp.shards,
            role,
            split=split,
            batch_size=exp.aux.batch_size,
            image_size=exp.preset.model.image_size,
            seed=stream_seed(exp.seed, "aux", step, ctx.rt.rank),
            num_workers=exp.data.num_workers,
            infinite=infinite,
        )
    )


def gan_stream(ctx: StageContext, plan: StagePlan, step: int) -> Iterator[dict[str, Any]]:
    """The stage batches of ``plan`` (its portrait-domain weights), seeded for a stream opened at ``step``."""
    exp = ctx.exp
    return iter(
        stage_loader(
            exp.shards,
            plan.weights,
            batch_size=exp.preset.schedule.batch_size,
            image_size=exp.preset.model.image_size,
            seed=stream_seed(exp.seed, plan.name, step, ctx.rt.rank),
            num_workers=exp.data.num_workers,
            fusion=exp.data.fusion,
        )
    )


def check_stage_data(ctx: StageContext, plan: StagePlan) -> None:
    """Build the stage's loaders (cheap: they check their roles and read nothing until iterated)."""
    if not plan.steps:
        return
    if plan.name == "aux":
        for role in CLASSIFIER_ROLES:
            aux_stream(ctx, role, "train", 0)
    else:
        gan_stream(ctx, plan, 0)


class AuxStage:
    """The structure detector, then the structure and highlight classifiers; held-out metrics at the end."""

    log_lr = False  # the aux learning rate is constant: not logged

    def __init__(self, ctx: StageContext, plan: StagePlan) -> None:
        self.ctx, self.plan, nets = ctx, plan, ctx.nets
        modules = {
            "detector": nets.structure_detector,
            "structure": nets.structure_classifier,
            "highlight": nets.highlight_classifier,
        }
        for m in modules.values():
            m.requires_grad_(True).train()
        self.optimizers: dict[str, torch.optim.Optimizer] = {
            k: torch.optim.Adam(m.parameters(), lr=ctx.exp.aux.lr, betas=(0.5, 0.999))
            for k, m in modules.items()
        }
        self.schedulers: dict[str, Any] = {}

    def phase(self, step: int) -> str:
        return aux_phase(step, self.ctx.exp)

    def stream_key(self, phase: str) -> str:
        return phase  # each phase reopens its role's stream

    def open_stream(self, phase: str, step: int) -> Iterator[dict[str, Any]]:
        self.ctx.nets.structure_detector.requires_grad_(phase == "detector").train(phase == "detector")
        return aux_stream(self.ctx, "highlight" if phase == "highlight" else "structure", "train", step)

    def step(
        self, batch: dict[str, Any], phase: str, scaler: torch.amp.GradScaler, where: str
    ) -> tuple[dict[str, Tensor], Tensor]:
        ctx = self.ctx
        metrics = aux_step(ctx.nets, batch, self.optimizers[phase], scaler, ctx.rt, phase, where=where)
        return metrics, batch["image"]

    def samples(self, step: int, phase: str, image: Tensor) -> None:
        ctx = self.ctx
        every = ctx.exp.sample_every
        if phase != "detector" or not every or step % every or not ctx.rt.is_main:
            return
        image = image[:SAMPLE_COUNT].to(ctx.rt.device)
        with torch.no_grad(), eval_mode(ctx.nets.structure_detector):
            heat = ctx.nets.structure_detector(image)
        ctx.tracker.images("aux", step, {"anime": image, "heatmaps": heatmap_tile(heat)})

    def finish(self, step: int) -> dict[str, float] | None:
        """Held-out metrics (logged and printed), then the auxiliary networks are frozen for good."""
        ctx, metrics = self.ctx, None
        if self.plan.steps:
            metrics = evaluate_aux(ctx)
            if ctx.rt.is_main:
                ctx.tracker.log("aux", step, metrics)
                ctx.console.print("aux held-out: " + ", ".join(f"{k}={v:.3f}" for k, v in metrics.items()))
        ctx.nets.freeze_auxiliary()
        return metrics


@torch.no_grad()
def evaluate_aux(ctx: StageContext) -> dict[str, float]:
    """Held-out test-split metrics: detector heatmap BCE and classifier accuracies (over all ranks).

    A metric is left out when its role has no test split.
    """
    nets, dev = ctx.nets, ctx.rt.device
    totals = {name: [0.0, 0.0] for name in ("detector_bce", "structure_accuracy", "highlight_accuracy")}
    limit = ctx.exp.aux.eval_batches or None
    with eval_mode(nets.structure_detector, nets.structure_classifier, nets.highlight_classifier):
        for role in CLASSIFIER_ROLES:
            try:
                batches = aux_stream(ctx, role, "test", 0, infinite=False)
            except ShardError as exc:  # a small set may have packed no test split for a role
                if ctx.rt.is_main:
                    ctx.console.print(f"aux held-out {role}: skipped ({exc})", highlight=False)
                continue
            for n, batch in enumerate(batches):
                if limit is not None and n >= limit:
                    break
                image = batch["image"].to(dev)
                label = batch["label"].to(dev).float()
                if role == "structure":
                    logits = nets.structure_detector.logits(image)
                    bce = F.binary_cross_entropy_with_logits(logits, batch["heatmaps"].to(dev))
                    totals["detector_bce"][0] += float(bce) * len(image)
                    totals["detector_bce"][1] += len(image)
                    out = nets.structure_classifier(torch.sigmoid(logits))
                else:
                    out = nets.highlight_classifier(image)
                totals[f"{role}_accuracy"][0] += float(((out > 0).float() == label).sum())
                totals[f"{role}_accuracy"][1] += len(image)
    flat = {f"{k}/{i}": v[i] for k, v in totals.items() for i in (0, 1)}
    summed = {k: v * ctx.rt.world_size for k, v in all_reduce_mean(flat, ctx.rt).items()}
    return {f"test/{k}": summed[f"{k}/0"] / summed[f"{k}/1"] for k in totals if summed[f"{k}/1"] > 0}


class GanStage:
    """Stages 1-3: LDN and PSN adversarial training on the plan's portrait mix, scheduled learning rates."""

    log_lr = True

    def __init__(self, ctx: StageContext, plan: StagePlan) -> None:
        self.ctx, self.plan = ctx, plan
        ctx.nets.freeze_auxiliary()
        ctx.nets.train()
        self.has_ldn = ctx.nets.ldn_g_pa is not None
        self.optimizers, self.schedulers = _gan_optimizers(ctx, plan)

    def phase(self, step: int) -> str:
        return gan_phase(self.plan, step, self.ctx.exp, self.has_ldn)

    def stream_key(self, phase: str) -> str:
        return ""  # one stream for the whole stage, across stage 1's phases

    def open_stream(self, phase: str, step: int) -> Iterator[dict[str, Any]]:
        return gan_stream(self.ctx, self.plan, step)

    def step(
        self, batch: dict[str, Any], phase: str, scaler: torch.amp.GradScaler, where: str
    ) -> tuple[dict[str, Tensor], GeneratorPass | None]:
        ctx = self.ctx
        return gan_step(
            ctx.nets,
            batch,
            self.optimizers,
            scaler,
            ctx.rt,
            ctx.exp.preset.losses,
            phase,
            human_full_losses=self.plan.human_full_losses,
            where=where,
        )

    def samples(self, step: int, phase: str, p: GeneratorPass | None) -> None:
        ctx, every = self.ctx, self.ctx.exp.sample_every
        if p is None or not every or (step % every and step != self.plan.steps) or not ctx.rt.is_main:
            return
        n = SAMPLE_COUNT
        with torch.no_grad():
            heat = ctx.nets.structure_detector(p.fake_anime[:n].float())
        grid = {
            "input": p.portrait[:n],
            "warped": p.warped[:n],
            "anime": p.fake_anime[:n],
            "cycle": p.cycle_portrait[:n],
            "structure": heatmap_tile(heat),
            "real anime": p.anime[:n],
        }
        ctx.tracker.images(self.plan.name, step, grid)

    def finish(self, step: int) -> dict[str, float] | None:
        return None


def _gan_optimizers(
    ctx: StageContext, plan: StagePlan
) -> tuple[dict[str, torch.optim.Optimizer], dict[str, Any]]:
    """Adam per parameter group, with a LambdaLR following the schedule's rate of ``plan``'s stage."""
    sched = ctx.exp.preset.schedule
    lr0 = learning_rates(plan, 0, ctx.exp)
    optimizers, schedulers = {}, {}
    for name, params in ctx.nets.parameter_groups().items():
        if not params:
            continue
        which = 0 if name.startswith("ldn") else 1
        base = lr0[which]
        optimizers[name] = torch.optim.Adam(
            params, lr=base, betas=sched.betas, weight_decay=sched.weight_decay
        )

        def factor(s: int, which: int = which, base: float = base) -> float:
            return learning_rates(plan, s, ctx.exp)[which] / base if base else 0.0

        schedulers[name] = torch.optim.lr_scheduler.LambdaLR(optimizers[name], factor)
    return optimizers, schedulers
