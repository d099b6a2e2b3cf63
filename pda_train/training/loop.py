"""The streaming trainer: runs the stages of an experiment's plan into a run folder.

The stage plan (stages, data weights, phases) is :mod:`pda_train.training.plan`, one training step each is
:mod:`pda_train.training.steps`, and what differs between the aux and the GAN stages is a strategy object of
:mod:`pda_train.training.stages`; this module is the loop around them: resume, checkpoints, logging,
progress, samples and export. Checkpoints are written every ``checkpoint_every`` steps and at each stage
end; SIGINT/SIGTERM checkpoint and stop; a NaN/inf loss stops before any update is applied, so the last
checkpoint stays good. Loss sums stay on the device and reach the host once per ``log_every`` steps. Rank 0
holds the run folder's lock for the whole call (:mod:`pda_data.io.lock`): a second run on it fails at once.
An OS error writing the folder (full disk, permission) stops the run with every earlier checkpoint whole.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from torch import Tensor

from pda_data.io.lock import folder_lock
from pda_train.inference.export import export_translator
from pda_train.manifest import Experiment, write_resolved
from pda_train.nets import build_networks
from pda_train.training import checkpoint as ckpt
from pda_train.training.plan import STAGES, StagePlan, plan_stages
from pda_train.training.runtime import (
    InterruptGuard,
    Runtime,
    all_reduce_mean,
    any_rank,
    make_grad_scaler,
    maybe_compile,
    prepare_module,
)
from pda_train.training.stages import AuxStage, GanStage, StageContext, check_stage_data
from pda_train.training.tracking import Tracker

FINAL_MODEL = "final.safetensors"
RESOLVED_MANIFEST = "experiment.yaml"
Stage = AuxStage | GanStage


class TrainingError(RuntimeError):
    """A run that cannot start or continue (missing previous stage, incompatible checkpoint, bad data)."""


@dataclass
class RunResult:
    """How a call to :meth:`Trainer.run` ended."""

    status: str  # "done", "interrupted" (signal) or "paused" (--max-steps reached)
    stage: str
    step: int
    checkpoint: Path | None = None
    model: Path | None = None
    aux_metrics: dict[str, float] = dataclasses.field(default_factory=dict)


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
        self.tracker = Tracker(self.run_dir, enabled=rt.is_main, tensorboard=tensorboard)
        self.ctx = StageContext(exp, self.nets, rt, self.tracker, self.console)
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
        lock = folder_lock(self.run_dir) if self.rt.is_main else contextlib.nullcontext()
        with lock:
            try:
                return self._run(names, wanted, resume)
            finally:
                self.tracker.close()

    def _run(self, names: list[str], wanted: list[str], resume: bool) -> RunResult:
        """:meth:`run` with the run folder's lock held."""
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
            write_resolved(self.exp, self.run_dir / RESOLVED_MANIFEST)
        result = RunResult("done", wanted[-1] if wanted else names[-1], 0, aux_metrics=self.aux_metrics)
        with self.guard:
            for name in wanted:
                plan = self.plan[names.index(name)]
                stage_state = state if state is not None and state["stage"] == name else None
                result = self._run_stage(plan, stage_state)
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
        saved = state["manifest"]["model"]
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
        """Fail before any training when a stage's roles are missing from the shards (ShardError)."""
        for plan in stages:
            check_stage_data(self.ctx, plan)

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

    def _log(
        self,
        plan: StagePlan,
        step: int,
        sums: dict[str, Tensor],
        count: int,
        extra: dict[str, float],
        progress: Progress,
        task: Any,
        rate: float,
        phase: str,
    ) -> None:
        """Means of the interval's device sums (one host sync), over ranks, to the tracker and the bar."""
        values = torch.stack(list(sums.values())).tolist() if sums else []
        host = {k: v / max(count, 1) for k, v in zip(sums, values, strict=True)}
        means = all_reduce_mean(host, self.rt)
        shown = " ".join(f"{k.split('/')[-1][:-6]}={v:.3g}" for k, v in means.items() if k.endswith("_total"))
        progress.update(task, completed=step, losses=shown, rate=f"{rate:.2f} it/s", phase=phase)
        self.tracker.log(plan.name, step, {**means, **extra})

    # --- the loop skeleton, shared by every stage ---------------------------------------------------

    def _run_stage(self, plan: StagePlan, state: dict[str, Any] | None) -> RunResult:
        stage: Stage = AuxStage(self.ctx, plan) if plan.name == "aux" else GanStage(self.ctx, plan)
        optimizers, schedulers = stage.optimizers, stage.schedulers
        scaler = make_grad_scaler(self.rt)
        step = self._restore(state, optimizers, schedulers, scaler) if state is not None else 0
        key, loader = None, None
        sums: dict[str, Tensor] = {}
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
                phase = stage.phase(step)
                if stage.stream_key(phase) != key:
                    key, loader = stage.stream_key(phase), stage.open_stream(phase, step)
                assert loader is not None
                where = f"stage {plan.name} step {step} ({phase})"
                metrics, payload = stage.step(next(loader), phase, scaler, where)
                with warnings.catch_warnings():
                    # Stage 1's single-network phases leave the other optimizers idle; their schedules
                    # still advance with the stage step, which PyTorch warns about.
                    warnings.filterwarnings(
                        "ignore", message="Detected call of `lr_scheduler.step", category=UserWarning
                    )
                    for sched in schedulers.values():
                        sched.step()
                for k, v in metrics.items():
                    v = v.double()
                    sums[k] = sums[k] + v if k in sums else v
                count += 1
                step += 1
                self._steps_this_call += 1
                if step % self.exp.log_every == 0 or step == plan.steps:
                    rate = (step - logged) / max(time.perf_counter() - t0, 1e-9)
                    lrs = {f"lr/{k}": o.param_groups[0]["lr"] for k, o in optimizers.items()}
                    extra = lrs if stage.log_lr else {}
                    self._log(plan, step, sums, count, extra, progress, task, rate, phase)
                    sums, count, t0, logged = {}, 0, time.perf_counter(), step
                stage.samples(step, phase, payload)  # type: ignore[arg-type]
                if self.exp.checkpoint_every and step % self.exp.checkpoint_every == 0 and step < plan.steps:
                    state = self._state(plan, step, False, optimizers, schedulers, scaler)
                    self._save(state, stage_end=False)
        metrics_end = stage.finish(step)
        if metrics_end is not None:
            self.aux_metrics = metrics_end
        return self._finish(plan, step, "done", self._state(plan, step, True, optimizers, schedulers, scaler))
