"""The streaming trainer: auxiliary pretraining and the three progressive stages of Sec. 3 and 4.2.

Stages of the ``full`` plan (see :func:`plan_stages` for the Table 4 data ablations):

* ``aux``: the face structure detector (heatmap regression on legit and abnormal anime faces), then the
  structure classifier (legit vs abnormal, on the frozen detector's heatmaps) and the highlight classifier
  (clean anime vs anime with highlights); held-out accuracy on the test split; all three are then frozen.
* ``1`` (coser + anime): LDN alone on landmark sets, PSN alone on LDN-warped cosers with the LDN fixed, then
  both end to end; learning rates fixed (``Schedule.lr_stage1``).
* ``2`` (coser + on-the-fly Aug-Portrait with probability ``data.aug_prob``, + anime): end to end, LDN and PSN
  learning rates decayed linearly to 0; Eq. 3 and Eq. 6.
* ``3`` (coser + Aug-Portrait + human, + anime): the same, but human portraits take only L_structure and
  L_highlight (``adapt = 0`` in :class:`pda_train.nets.GeneratorPass`), as Sec. 3.3 specifies.

Each step updates the discriminators on detached fakes, then the generators (discriminators frozen for that
backward pass). Checkpoints are written every ``checkpoint_every`` steps and at each stage end; SIGINT/SIGTERM
checkpoint and stop; a NaN/inf loss stops before any update is applied, so the last checkpoint stays good.
"""

from __future__ import annotations

import dataclasses
import time
import warnings
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from torch import Tensor, nn

from pda_data.schema import ANIME56, HUMAN68
from pda_data.shards.index import ShardError
from pda_data.stream import core as stream
from pda_train.config import LossWeights
from pda_train.inference.export import export_translator
from pda_train.losses import (
    discriminator_loss,
    generator_loss,
    identity_mode,
    ldn_generator_loss,
    psn_generator_loss,
)
from pda_train.manifest import Experiment, write_resolved
from pda_train.nets import GeneratorPass, PDANetworks, build_networks, ldn_points
from pda_train.training import checkpoint as ckpt
from pda_train.training.runtime import (
    InterruptGuard,
    NonFiniteLossError,
    Runtime,
    all_reduce_mean,
    any_rank,
    autocast,
    check_finite,
    eval_mode,
    make_grad_scaler,
    maybe_compile,
    prepare_module,
    sync_gradients,
)
from pda_train.training.tracking import Tracker, heatmap_tile

STAGES: tuple[str, ...] = ("aux", "1", "2", "3")
FINAL_MODEL = "final.safetensors"
RESOLVED_MANIFEST = "experiment.yaml"


class TrainingError(RuntimeError):
    """A run that cannot start or continue (missing previous stage, incompatible checkpoint, bad data)."""


@dataclass(frozen=True)
class StagePlan:
    """One stage of a plan: what the stream serves, which schedule entry applies, how long it runs."""

    name: str  # "aux", "1", "2" or "3": checkpoint names and --stage values
    data_stage: int  # the ``stage`` passed to pda_data.stream.core.stage_loader (0 for aux)
    schedule_stage: int  # the Schedule entry for iterations and learning rates (1 = individual + joint)
    steps: int
    aug_prob: float = 0.5
    weights: dict[str, float] | None = None
    human_full_losses: bool = False  # the "baseline" ablation trains on humans with every loss


@dataclass
class RunResult:
    """How a call to :meth:`Trainer.run` ended."""

    status: str  # "done", "interrupted" (signal) or "paused" (--max-steps reached)
    stage: str
    step: int
    checkpoint: Path | None = None
    model: Path | None = None
    aux_metrics: dict[str, float] = dataclasses.field(default_factory=dict)


def plan_stages(exp: Experiment) -> list[StagePlan]:
    """The stages of ``exp.plan`` (Table 4 rows), each with its data mix and step count.

    ``full``: aux, 1, 2, 3. ``coser``: aux, 1. ``coser_aug``: aux, 1, 2. ``coser_human``: aux, 1, then stage 3
    without Aug-Portrait. ``baseline``: aux, then stage 1's procedure on human portraits only, every loss
    applied to them. ``single_stage``: aux, then one stage-1 run (fixed rate, individual then joint) over
    coser + Aug-Portrait + human for the total iterations of all three stages.
    """
    it = [int(n) for n in exp.preset.schedule.iterations]
    aux_steps = exp.aux.detector_steps + 2 * exp.aux.classifier_steps
    p = exp.data.aug_prob
    aux = StagePlan("aux", 0, 0, aux_steps)
    s1 = StagePlan("1", 1, 1, it[0], p)
    s2 = StagePlan("2", 2, 2, it[1], p)
    plans = {
        "full": [aux, s1, s2, StagePlan("3", 3, 3, it[2], p)],
        "coser": [aux, s1],
        "coser_aug": [aux, s1, s2],
        "coser_human": [aux, s1, StagePlan("3", 3, 3, it[2], 0.0, {"coser": 1.0, "human": 1.0})],
        "baseline": [aux, StagePlan("1", 3, 1, it[0], 0.0, {"human": 1.0}, human_full_losses=True)],
        "single_stage": [aux, StagePlan("1", 3, 1, sum(it), p)],
    }
    out = []
    for stage in plans[exp.plan]:
        override = exp.data.weights.get(stage.name)
        out.append(dataclasses.replace(stage, weights=override) if override else stage)
    return out


def stage1_phase(step: int, total: int, exp: Experiment, has_ldn: bool) -> str:
    """Stage-1 phase at ``step``: ``ldn`` (LDN alone), ``psn`` (PSN alone, LDN fixed) or ``joint``."""
    ldn_end = round(total * exp.stage1.ldn_only) if has_ldn else 0
    psn_end = ldn_end + round(total * exp.stage1.psn_only)
    if step < ldn_end:
        return "ldn"
    return "psn" if step < psn_end else "joint"


def aux_phase(step: int, exp: Experiment) -> str:
    """Aux phase at ``step``: ``detector``, ``structure`` (classifier) or ``highlight`` (classifier)."""
    if step < exp.aux.detector_steps:
        return "detector"
    return "structure" if step < exp.aux.detector_steps + exp.aux.classifier_steps else "highlight"


def stream_seed(seed: int, stage: str, step: int, rank: int) -> int:
    """Data seed of a stream (re)opened at ``step``: reproducible, and different per rank and stage."""
    return int(np.random.SeedSequence([seed, STAGES.index(stage), step, rank]).generate_state(1)[0])


def _set_requires_grad(modules: list[nn.Module], flag: bool) -> None:
    for m in modules:
        m.requires_grad_(flag)


def landmark_pass(
    nets: PDANetworks, portrait_landmarks: Tensor, anime_landmarks: Tensor, adapt: Tensor | None = None
) -> GeneratorPass:
    """The LDN half of a generator pass, for stage 1's LDN-alone phase (no image is generated).

    Image fields hold an empty tensor; only :func:`ldn_generator_loss` and the LDN side of
    :func:`discriminator_loss` (with ``psn_adv = 0``) may read this pass.
    """
    assert nets.ldn_g_pa is not None and nets.ldn_g_ap is not None
    lp = ldn_points(portrait_landmarks, HUMAN68, nets.cfg.landmark_set)
    la = ldn_points(anime_landmarks, ANIME56, nets.cfg.landmark_set)
    fake_la, fake_lp = nets.ldn_g_pa(lp), nets.ldn_g_ap(la)
    empty = lp.new_zeros((len(lp), 0))
    return GeneratorPass(
        portrait=empty,
        anime=empty,
        warped=empty,
        fake_anime=empty,
        fake_portrait=empty,
        cycle_portrait=empty,
        cycle_anime=empty,
        cam_pa=empty,
        cam_ap=empty,
        identity_anime=None,
        identity_portrait=None,
        identity_cam_pa=None,
        identity_cam_ap=None,
        adapt=lp.new_ones(len(lp)) if adapt is None else adapt,
        ldn_portrait=lp,
        ldn_anime=la,
        ldn_fake_anime=fake_la,
        ldn_fake_portrait=fake_lp,
        ldn_cycle_portrait=nets.ldn_g_ap(fake_la),
        ldn_cycle_anime=nets.ldn_g_pa(fake_lp),
    )


class Trainer:
    """Runs the stages of one experiment into a run folder (see the module docstring)."""

    def __init__(
        self,
        exp: Experiment,
        run_dir: str | Path,
        rt: Runtime,
        *,
        max_steps: int | None = None,
        tensorboard: bool = True,
        console: Console | None = None,
    ) -> None:
        self.exp = exp
        self.run_dir = Path(run_dir)
        self.rt = rt
        self.max_steps = max_steps
        self.console = console or Console(stderr=True)
        self.plan = plan_stages(exp)
        torch.manual_seed(exp.seed)  # same initial weights on every rank and every run of this manifest
        self.nets = prepare_module(build_networks(exp.preset.model), rt)
        self.weights: LossWeights = exp.preset.losses
        self.tracker = Tracker(self.run_dir, enabled=rt.is_main, tensorboard=tensorboard)
        self.aux_metrics: dict[str, float] = {}
        self.guard = InterruptGuard()
        self._steps_this_call = 0
        maybe_compile([m for name, m in self.nets.named_networks() if name.startswith(("ldn_", "psn_"))], rt)

    # --- entry point --------------------------------------------------------------------------------

    def run(self, stage: str = "all", resume: bool = False) -> RunResult:
        """Run ``stage`` (a plan stage name or ``all``); ``resume`` continues from RUN/checkpoints/last.pt."""
        names = [s.name for s in self.plan]
        if stage != "all" and stage not in names:
            raise TrainingError(
                f"stage {stage!r} is not part of plan {self.exp.plan!r} (stages: {', '.join(names)})"
            )
        wanted = names if stage == "all" else [stage]
        state = self._resume_state() if resume else None
        if state is not None:
            if not state["complete"] and state["stage"] not in wanted:
                raise TrainingError(
                    f"the run stopped inside stage {state['stage']}: resume it with --stage {state['stage']} "
                    "or --stage all"
                )
            start = names.index(state["stage"]) + (1 if state["complete"] else 0)
            resumed = (STAGES.index(state["stage"]), int(state["step"]))
            self.tracker.rewind(lambda r: (STAGES.index(str(r["stage"])), int(r["step"])) <= resumed)
            wanted = [n for n in wanted if names.index(n) >= start]
            self.nets.load_state_dict(state["networks"])
            self.aux_metrics = dict(state.get("aux_metrics", {}))
            if state["complete"]:
                if (
                    state["stage"] == names[-1]
                    and self.rt.is_main
                    and not (self.run_dir / FINAL_MODEL).is_file()
                ):
                    # The run was killed between its last checkpoint and the export.
                    export_translator(self.nets, self.run_dir / FINAL_MODEL, self._export_extra(names[-1]))
                state = None
        else:
            self._check_fresh(names.index(wanted[0]))
            self._load_previous_stage(names.index(wanted[0]))
        self._check_shards([self.plan[names.index(n)] for n in wanted])
        if self.rt.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            write_resolved(self.exp, self.run_dir / RESOLVED_MANIFEST)
        result = RunResult("done", wanted[-1] if wanted else names[-1], 0, aux_metrics=self.aux_metrics)
        with self.guard:
            for name in wanted:
                plan = self.plan[names.index(name)]
                stage_state = state if state is not None and state["stage"] == name else None
                result = (self._run_aux if name == "aux" else self._run_gan)(plan, stage_state)
                state = None
                if result.status != "done":
                    break
                if name != "aux" and self.rt.is_main:
                    result.model = export_translator(
                        self.nets, self.run_dir / f"stage-{name}.safetensors", self._export_extra(name)
                    )
                    if name == names[-1]:
                        result.model = export_translator(
                            self.nets, self.run_dir / FINAL_MODEL, self._export_extra(name)
                        )
        self.tracker.close()
        result.aux_metrics = self.aux_metrics
        return result

    def _export_extra(self, stage: str) -> dict[str, Any]:
        return {
            "preset": self.exp.preset.name,
            "run": {
                "name": self.exp.name,
                "stage": stage,
                "plan": self.exp.plan,
                "manifest": self.exp.source,
            },
        }

    def _resume_state(self) -> dict[str, Any] | None:
        path = ckpt.last_checkpoint(self.run_dir)
        if not path.is_file():
            raise TrainingError(f"--resume: {path} does not exist (nothing to resume; drop --resume)")
        state = ckpt.load_checkpoint(path, map_location=self.rt.device)
        saved = state["manifest"]["preset"]["model"]
        if saved != dataclasses.asdict(self.exp.preset.model):
            raise TrainingError(
                f"{path}: the checkpoint's model config differs from the manifest's; "
                "resume with the manifest the run started with"
            )
        if self.rt.is_main:
            self.console.print(
                f"resuming from {path}: stage {state['stage']} step {state['step']}"
                + (" (complete)" if state["complete"] else "")
            )
        return state

    def _check_fresh(self, first: int) -> None:
        """Refuse to silently restart over a run folder whose checkpoints cover the requested stage."""
        path = ckpt.last_checkpoint(self.run_dir)
        if not path.is_file():
            return
        last = ckpt.load_checkpoint(path)
        names = [s.name for s in self.plan]
        done = names.index(last["stage"]) if last["stage"] in names else len(names)
        if first <= done:
            raise TrainingError(
                f"{self.run_dir} already holds a run at stage {last['stage']} step {last['step']}: "
                "pass --resume to continue it, or choose another --out"
            )

    def _check_shards(self, stages: list[StagePlan]) -> None:
        """Fail before any training when a stage's roles are missing from the shards (ShardError).

        The loaders check their roles when built and read nothing until iterated, so building them is cheap.
        """
        for plan in stages:
            if plan.name == "aux":
                if plan.steps:
                    for role in ("structure", "highlight"):
                        self._aux_loader(role, "train", 0)
            elif plan.steps:
                self._stage_loader(plan, 0)

    def _load_previous_stage(self, first: int) -> None:
        """A run starting at a later stage begins from the previous plan stage's final weights."""
        if first == 0:
            return
        prev = self.plan[first - 1].name
        path = ckpt.stage_checkpoint(self.run_dir, prev)
        if not path.is_file():
            raise TrainingError(
                f"stage {self.plan[first].name} starts from stage {prev}'s weights, but {path} "
                f"is missing: run --stage {prev} first (or --stage all)"
            )
        state = ckpt.load_checkpoint(path, map_location=self.rt.device)
        self.nets.load_state_dict(state["networks"])
        self.aux_metrics = dict(state.get("aux_metrics", {}))

    # --- shared loop machinery ----------------------------------------------------------------------

    def _progress(self, plan: StagePlan) -> Progress:
        return Progress(
            TextColumn("[bold]stage {task.fields[stage]}[/] {task.fields[phase]}"),
            BarColumn(bar_width=12),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[losses]}"),
            console=self.console,
            disable=not self.rt.is_main,
            transient=False,
        )

    def _state(
        self,
        plan: StagePlan,
        step: int,
        complete: bool,
        optimizers: dict[str, torch.optim.Optimizer],
        schedulers: dict[str, Any],
        scaler: torch.amp.GradScaler,
    ) -> dict[str, Any]:
        return {
            "stage": plan.name,
            "step": step,
            "complete": complete,
            "networks": self.nets.state_dict(),
            "optimizers": {k: o.state_dict() for k, o in optimizers.items()},
            "schedulers": {k: s.state_dict() for k, s in schedulers.items()},
            "scaler": scaler.state_dict(),
            "rng": ckpt.capture_rng(),
            "manifest": self.exp.to_dict(),
            "aux_metrics": self.aux_metrics,
            "world_size": self.rt.world_size,
        }

    def _save(self, state: dict[str, Any], stage_end: bool) -> Path | None:
        if not self.rt.is_main:
            return None
        last = ckpt.last_checkpoint(self.run_dir)
        if stage_end:  # the stage file first: a kill in between leaves last.pt mid-stage, still consistent
            final = ckpt.stage_checkpoint(self.run_dir, state["stage"])
            ckpt.save_checkpoint(final, state)
            ckpt.save_checkpoint(last, state)
            return final
        ckpt.save_checkpoint(last, state)
        return last

    def _restore(
        self,
        state: dict[str, Any],
        optimizers: dict[str, torch.optim.Optimizer],
        schedulers: dict[str, Any],
        scaler: torch.amp.GradScaler,
    ) -> int:
        for k, opt in optimizers.items():
            opt.load_state_dict(state["optimizers"][k])
        for k, sched in schedulers.items():
            sched.load_state_dict(state["schedulers"][k])
        scaler.load_state_dict(state["scaler"])
        ckpt.restore_rng(state["rng"])
        return int(state["step"])

    def _should_stop(self) -> str | None:
        """``interrupted`` on a signal, ``paused`` when --max-steps is used up (agreed over ranks)."""
        if any_rank(self.guard.requested, self.rt):
            return "interrupted"
        if self.max_steps is not None and self._steps_this_call >= self.max_steps:
            return "paused"
        return None

    def _finish(self, plan: StagePlan, step: int, status: str, state: dict[str, Any]) -> RunResult:
        path = self._save(state, stage_end=status == "done")
        if self.rt.is_main and status != "done":
            why = (
                f"signal {self.guard.signal_name}"
                if status == "interrupted"
                else f"--max-steps {self.max_steps}"
            )
            self.console.print(
                f"stopped by {why} at stage {plan.name} step {step}; checkpoint {path}; "
                "continue with --resume"
            )
        return RunResult(status, plan.name, step, path)

    def _backward(
        self, loss: Tensor, scaler: torch.amp.GradScaler, optimizers: list[torch.optim.Optimizer]
    ) -> None:
        for opt in optimizers:
            opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        params = [p for opt in optimizers for g in opt.param_groups for p in g["params"]]
        sync_gradients(params, self.rt)
        for opt in optimizers:
            scaler.step(opt)

    def _log(
        self,
        plan: StagePlan,
        step: int,
        sums: dict[str, float],
        count: int,
        extra: dict[str, float],
        progress: Progress,
        task: Any,
        rate: float,
        phase: str,
    ) -> None:
        means = all_reduce_mean({k: v / max(count, 1) for k, v in sums.items()}, self.rt)
        shown = " ".join(f"{k.split('/')[-1][:-6]}={v:.3g}" for k, v in means.items() if k.endswith("_total"))
        progress.update(task, completed=step, losses=shown, rate=f"{rate:.2f} it/s", phase=phase)
        self.tracker.log(plan.name, step, {**means, **extra})

    # --- auxiliary networks -------------------------------------------------------------------------

    def _aux_loader(
        self, role: str, split: str, step: int, infinite: bool = True
    ) -> Iterator[dict[str, Any]]:
        return iter(
            stream.aux_loader(
                self.exp.shards,
                role,
                split=split,
                batch_size=self.exp.aux.batch_size,
                image_size=self.exp.preset.model.image_size,
                seed=stream_seed(self.exp.seed, "aux", step, self.rt.rank),
                num_workers=self.exp.data.num_workers,
                infinite=infinite,
            )
        )

    def _run_aux(self, plan: StagePlan, state: dict[str, Any] | None) -> RunResult:
        nets = self.nets
        modules = {
            "detector": nets.structure_detector,
            "structure": nets.structure_classifier,
            "highlight": nets.highlight_classifier,
        }
        for m in modules.values():
            m.requires_grad_(True).train()
        optimizers = {
            k: torch.optim.Adam(m.parameters(), lr=self.exp.aux.lr, betas=(0.5, 0.999))
            for k, m in modules.items()
        }
        scaler = make_grad_scaler(self.rt)
        step = self._restore(state, optimizers, {}, scaler) if state is not None else 0
        phase, loader = "", None
        sums: dict[str, float] = defaultdict(float)
        count, t0, logged = 0, time.perf_counter(), step
        with self._progress(plan) as progress:
            task = progress.add_task(
                "aux", total=plan.steps, completed=step, stage="aux", phase="", losses="", rate=""
            )
            while step < plan.steps:
                stop = self._should_stop()
                if stop:
                    return self._finish(
                        plan, step, stop, self._state(plan, step, False, optimizers, {}, scaler)
                    )
                if aux_phase(step, self.exp) != phase:
                    phase = aux_phase(step, self.exp)
                    role = "highlight" if phase == "highlight" else "structure"
                    loader = self._aux_loader(role, "train", step)
                    self._freeze_detector(phase != "detector")
                assert loader is not None
                batch = next(loader)
                image = batch["image"].to(self.rt.device)
                label = batch["label"].to(self.rt.device).float()
                with autocast(self.rt):
                    if phase == "detector":
                        logits = nets.structure_detector.logits(image)
                        loss = F.binary_cross_entropy_with_logits(
                            logits.float(), batch["heatmaps"].to(logits.device)
                        )
                    else:
                        x = nets.structure_detector(image).detach() if phase == "structure" else image
                        out = modules[phase](x).float()
                        loss = F.binary_cross_entropy_with_logits(out, label)
                        sums[f"acc/{phase}"] += float(((out > 0).float() == label).float().mean())
                self._guard_finite({f"aux/{phase}": loss}, f"stage aux step {step} ({phase})")
                self._backward(loss, scaler, [optimizers[phase]])
                scaler.update()
                sums[f"loss/{phase}_total"] += float(loss.detach())
                count += 1
                step += 1
                self._steps_this_call += 1
                if step % self.exp.log_every == 0 or step == plan.steps:
                    rate = (step - logged) / max(time.perf_counter() - t0, 1e-9)
                    self._log(plan, step, sums, count, {}, progress, task, rate, phase)
                    sums, count, t0, logged = defaultdict(float), 0, time.perf_counter(), step
                if phase == "detector" and self.exp.sample_every and step % self.exp.sample_every == 0:
                    self._aux_samples(step, image)
                if self.exp.checkpoint_every and step % self.exp.checkpoint_every == 0 and step < plan.steps:
                    self._save(self._state(plan, step, False, optimizers, {}, scaler), stage_end=False)
        if plan.steps:
            self.aux_metrics = self.evaluate_aux()
            if self.rt.is_main:
                self.tracker.log("aux", step, self.aux_metrics)
                self.console.print(
                    "aux held-out: " + ", ".join(f"{k}={v:.3f}" for k, v in self.aux_metrics.items())
                )
        nets.freeze_auxiliary()
        return self._finish(plan, step, "done", self._state(plan, step, True, optimizers, {}, scaler))

    def _freeze_detector(self, frozen: bool) -> None:
        self.nets.structure_detector.requires_grad_(not frozen).train(not frozen)

    def _aux_samples(self, step: int, image: Tensor) -> None:
        if not self.rt.is_main:
            return
        with torch.no_grad(), eval_mode(self.nets.structure_detector):
            heat = self.nets.structure_detector(image[:4])
        self.tracker.images("aux", step, {"anime": image[:4], "heatmaps": heatmap_tile(heat)})

    @torch.no_grad()
    def evaluate_aux(self) -> dict[str, float]:
        """Held-out test-split metrics: detector heatmap BCE and classifier accuracies (over all ranks).

        A metric is left out when its role has no test split.
        """
        nets = self.nets
        totals = {
            "detector_bce": [0.0, 0.0],
            "structure_accuracy": [0.0, 0.0],
            "highlight_accuracy": [0.0, 0.0],
        }
        limit = self.exp.aux.eval_batches or None
        with eval_mode(nets.structure_detector, nets.structure_classifier, nets.highlight_classifier):
            for role in ("structure", "highlight"):
                try:
                    batches = self._aux_loader(role, "test", 0, infinite=False)
                except ShardError as exc:  # a small set may have packed no test split for a role
                    if self.rt.is_main:
                        self.console.print(f"aux held-out {role}: skipped ({exc})", highlight=False)
                    continue
                for n, batch in enumerate(batches):
                    if limit is not None and n >= limit:
                        break
                    image = batch["image"].to(self.rt.device)
                    label = batch["label"].to(self.rt.device).float()
                    if role == "structure":
                        logits = nets.structure_detector.logits(image)
                        bce = F.binary_cross_entropy_with_logits(logits, batch["heatmaps"].to(image.device))
                        totals["detector_bce"][0] += float(bce) * len(image)
                        totals["detector_bce"][1] += len(image)
                        out = nets.structure_classifier(torch.sigmoid(logits))
                    else:
                        out = nets.highlight_classifier(image)
                    totals[f"{role}_accuracy"][0] += float(((out > 0).float() == label).sum())
                    totals[f"{role}_accuracy"][1] += len(image)
        flat = {f"{k}/{i}": v[i] for k, v in totals.items() for i in (0, 1)}
        summed = {k: v * self.rt.world_size for k, v in all_reduce_mean(flat, self.rt).items()}
        return {f"test/{k}": summed[f"{k}/0"] / summed[f"{k}/1"] for k in totals if summed[f"{k}/1"] > 0}

    # --- the GAN stages -----------------------------------------------------------------------------

    def _optimizers(self, plan: StagePlan) -> tuple[dict[str, torch.optim.Optimizer], dict[str, Any]]:
        sched = self.exp.preset.schedule
        lr0 = sched.learning_rates(plan.schedule_stage, 0)
        optimizers, schedulers = {}, {}
        for name, params in self.nets.parameter_groups().items():
            if not params:
                continue
            which = 0 if name.startswith("ldn") else 1
            base = lr0[which]
            optimizers[name] = torch.optim.Adam(
                params, lr=base, betas=sched.betas, weight_decay=sched.weight_decay
            )

            def factor(s: int, which: int = which, base: float = base) -> float:
                return sched.learning_rates(plan.schedule_stage, s)[which] / base if base else 0.0

            schedulers[name] = torch.optim.lr_scheduler.LambdaLR(optimizers[name], factor)
        return optimizers, schedulers

    def _stage_loader(self, plan: StagePlan, step: int) -> Iterator[dict[str, Any]]:
        return iter(
            stream.stage_loader(
                self.exp.shards,
                plan.data_stage,
                batch_size=self.exp.preset.schedule.batch_size,
                image_size=self.exp.preset.model.image_size,
                seed=stream_seed(self.exp.seed, plan.name, step, self.rt.rank),
                num_workers=self.exp.data.num_workers,
                aug_prob=plan.aug_prob,
                weights=plan.weights,
            )
        )

    def _run_gan(self, plan: StagePlan, state: dict[str, Any] | None) -> RunResult:
        nets = self.nets
        nets.freeze_auxiliary()
        nets.train()
        optimizers, schedulers = self._optimizers(plan)
        scaler = make_grad_scaler(self.rt)
        step = self._restore(state, optimizers, schedulers, scaler) if state is not None else 0
        loader = self._stage_loader(plan, step)
        has_ldn = nets.ldn_g_pa is not None
        sums: dict[str, float] = defaultdict(float)
        count, t0, logged = 0, time.perf_counter(), step
        with self._progress(plan) as progress:
            task = progress.add_task(
                plan.name, total=plan.steps, completed=step, stage=plan.name, phase="", losses="", rate=""
            )
            while step < plan.steps:
                stop = self._should_stop()
                if stop:
                    return self._finish(
                        plan, step, stop, self._state(plan, step, False, optimizers, schedulers, scaler)
                    )
                phase = (
                    stage1_phase(step, plan.steps, self.exp, has_ldn) if plan.schedule_stage == 1 else "joint"
                )
                batch = next(loader)
                terms, pass_ = self._gan_step(plan, phase, batch, optimizers, scaler, step)
                with warnings.catch_warnings():
                    # Stage 1's single-network phases leave the other optimizers idle; their schedules
                    # still advance with the stage step, which PyTorch warns about.
                    warnings.filterwarnings(
                        "ignore", message="Detected call of `lr_scheduler.step", category=UserWarning
                    )
                    for sched in schedulers.values():
                        sched.step()
                for k, v in terms.items():
                    sums[f"loss/{k}"] += v
                count += 1
                step += 1
                self._steps_this_call += 1
                if step % self.exp.log_every == 0 or step == plan.steps:
                    rate = (step - logged) / max(time.perf_counter() - t0, 1e-9)
                    lrs = {f"lr/{k}": o.param_groups[0]["lr"] for k, o in optimizers.items()}
                    self._log(plan, step, sums, count, lrs, progress, task, rate, phase)
                    sums, count, t0, logged = defaultdict(float), 0, time.perf_counter(), step
                if (
                    pass_ is not None
                    and self.exp.sample_every
                    and (step % self.exp.sample_every == 0 or step == plan.steps)
                ):
                    self._gan_samples(plan, step, pass_)
                if self.exp.checkpoint_every and step % self.exp.checkpoint_every == 0 and step < plan.steps:
                    self._save(
                        self._state(plan, step, False, optimizers, schedulers, scaler), stage_end=False
                    )
        return self._finish(plan, step, "done", self._state(plan, step, True, optimizers, schedulers, scaler))

    def _gan_step(
        self,
        plan: StagePlan,
        phase: str,
        batch: dict[str, Any],
        optimizers: dict[str, torch.optim.Optimizer],
        scaler: torch.amp.GradScaler,
        step: int,
    ) -> tuple[dict[str, float], GeneratorPass | None]:
        """One discriminator and one generator update; returns the loss terms and the pass (for samples)."""
        nets, w, dev = self.nets, self.weights, self.rt.device
        portrait = batch["portrait"].to(dev)
        anime = batch["anime"].to(dev)
        plm = batch["portrait_landmarks"].to(dev).float()
        alm = batch["anime_landmarks"].to(dev).float()
        if self.rt.channels_last:
            portrait = portrait.contiguous(memory_format=torch.channels_last)
            anime = anime.contiguous(memory_format=torch.channels_last)
        adapt = None
        if not plan.human_full_losses:
            adapt = torch.tensor(
                [d != "human" for d in batch["portrait_domain"]], dtype=torch.float32, device=dev
            )
        where = f"stage {plan.name} step {step} ({phase})"
        if phase == "ldn":
            w_d = dataclasses.replace(w, psn_adv=0.0)
            with autocast(self.rt):
                p = landmark_pass(nets, plm, alm, adapt)
            g_fn, d_groups, g_groups = ldn_generator_loss, ["ldn_d"], ["ldn_g"]
        else:
            w_d = dataclasses.replace(w, ldn_adv=0.0) if phase == "psn" else w
            with autocast(self.rt):
                p = nets.translate_step(
                    portrait,
                    plm,
                    anime,
                    alm,
                    adapt=adapt,
                    identity=identity_mode(w),
                    end_to_end=phase != "psn",
                )
            if phase == "psn":
                g_fn, d_groups, g_groups = psn_generator_loss, ["psn_d"], ["psn_g"]
            else:
                g_fn, d_groups, g_groups = generator_loss, ["ldn_d", "psn_d"], ["ldn_g", "psn_g"]
        d_opts = [optimizers[k] for k in d_groups if k in optimizers]
        g_opts = [optimizers[k] for k in g_groups if k in optimizers]
        discriminators = [
            m for m in (nets.ldn_d_a, nets.ldn_d_p, nets.psn_d_a, nets.psn_d_p) if m is not None
        ]
        terms: dict[str, Tensor] = {}
        if d_opts:
            with autocast(self.rt):
                d_loss, d_terms = discriminator_loss(nets, p, w_d)
            terms.update(d_terms)
            self._guard_finite(d_terms, where)
            if d_loss.requires_grad:
                self._backward(d_loss, scaler, d_opts)
        _set_requires_grad(discriminators, False)
        try:
            with autocast(self.rt):
                g_loss, g_terms = g_fn(nets, p, w)
            terms.update(g_terms)
            self._guard_finite(g_terms, where)
            if g_loss.requires_grad:
                self._backward(g_loss, scaler, g_opts)
        finally:
            _set_requires_grad(discriminators, True)
        scaler.update()
        nets.clip_rho()
        return {k: float(v.detach()) for k, v in terms.items()}, (None if phase == "ldn" else p)

    def _guard_finite(self, terms: dict[str, Tensor], where: str) -> None:
        """Stop every rank together when any rank sees a non-finite loss."""
        finite = all(bool(torch.isfinite(v.detach()).all()) for v in terms.values())
        if any_rank(not finite, self.rt):
            check_finite(terms, where)
            raise NonFiniteLossError(
                f"{where}: non-finite loss on another rank; stopping, the last good checkpoint is kept"
            )

    def _gan_samples(self, plan: StagePlan, step: int, p: GeneratorPass) -> None:
        if not self.rt.is_main:
            return
        n = 4
        with torch.no_grad():
            heat = self.nets.structure_detector(p.fake_anime[:n].float())
        self.tracker.images(
            plan.name,
            step,
            {
                "input": p.portrait[:n],
                "warped": p.warped[:n],
                "anime": p.fake_anime[:n],
                "cycle": p.cycle_portrait[:n],
                "structure": heatmap_tile(heat),
                "real anime": p.anime[:n],
            },
        )
