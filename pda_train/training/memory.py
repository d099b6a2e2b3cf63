"""Peak memory of one real training step, measured, per network and in total, and scaled to a batch size.

The step is the trainer's own :func:`~pda_train.training.steps.gan_step` in its ``joint`` phase (stages 2/3:
every generator, the warp, the discriminator update, the generator update with every loss) with the
trainer's Adam per parameter group, on a synthetic batch in the stream's layout. One warm-up step creates
the optimizer state, then each measured step runs at a small batch size.

What is measured:

* on CUDA, ``torch.cuda.max_memory_allocated``: the caching allocator's peak of live tensor bytes (its
  reserved memory, also reported, is what ``nvidia-smi`` shows);
* on the CPU, the peak of live tensor storage bytes over the step, tracked by a dispatch mode that sees
  every tensor an operator returns and every storage freed (weights, gradients, optimizer state, batch
  and activations; not the scratch buffers an operator allocates and frees inside itself, nor Python's or
  the framework's own memory).

Per network, the activations its forward passes keep for backward are the growth of live bytes over each
of its calls (outputs and saved tensors, summed over the step). Peaks at two batch sizes give the
per-sample slope, and :meth:`StepMemory.at` extrapolates linearly to the requested batch size.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from pda_data.shards.index import ROLE_SCHEMA
from pda_train.config import LossWeights, ModelConfig, Preset, Schedule
from pda_train.nets import PDANetworks, build_networks
from pda_train.nets.summary import NetworkSummary
from pda_train.training import steps
from pda_train.training.runtime import Runtime, make_grad_scaler, prepare_module

GIB = 2**30
ADAM_STATES = ("exp_avg", "exp_avg_sq")


def face_points(batch: int, n_points: int, contour: tuple[int, ...], gen: torch.Generator) -> Tensor:
    """Plausible normalized landmarks (B, N, 2): contour on a lower ellipse, other points inside the face."""
    pts = (torch.rand(batch, n_points, 2, generator=gen) - 0.5) * 0.7
    angles = torch.linspace(torch.pi, 0, len(contour))
    pts[:, list(contour), 0] = 0.6 * torch.cos(angles)
    pts[:, list(contour), 1] = 0.1 + 0.6 * torch.sin(angles)
    return pts


def synthetic_stage_batch(size: int, batch: int, rt: Runtime, seed: int = 0) -> dict[str, Any]:
    """A stage batch in :func:`pda_data.stream.loaders.stage_loader`'s layout, on ``rt``'s device:
    ``portrait``/``anime`` (B, 3, S, S) in [-1, 1], their landmarks (B, N, 2), ``portrait_domain``."""
    gen = torch.Generator().manual_seed(seed)
    portrait_schema, anime_schema = ROLE_SCHEMA["coser"], ROLE_SCHEMA["anime"]
    tensors = {
        "portrait": torch.rand(batch, 3, size, size, generator=gen) * 2 - 1,
        "anime": torch.rand(batch, 3, size, size, generator=gen) * 2 - 1,
        "portrait_landmarks": face_points(batch, portrait_schema.n_points, portrait_schema.contour, gen),
        "anime_landmarks": face_points(batch, anime_schema.n_points, anime_schema.contour, gen),
    }
    tensors = {k: v.to(rt.device) for k, v in tensors.items()}
    if rt.channels_last:
        tensors = {
            k: v.contiguous(memory_format=torch.channels_last) if v.dim() == 4 else v
            for k, v in tensors.items()
        }
    return {**tensors, "portrait_domain": ["coser"] * batch}


def adam(params: list[nn.Parameter], lr: float, schedule: Schedule, fused: bool = False) -> torch.optim.Adam:
    """The trainer's Adam of ``schedule``, in its multi-tensor (foreach) form, the trainer's default on CUDA
    (so a CPU measurement holds the temporaries a CUDA step holds), or fused (CUDA only)."""
    kind = {"fused": True} if fused else {"foreach": True}
    return torch.optim.Adam(params, lr=lr, betas=schedule.betas, weight_decay=schedule.weight_decay, **kind)


@dataclass
class JointStep:
    """The stage-2/3 training state of one model and its step function (``run(batch)``)."""

    nets: PDANetworks
    optimizers: dict[str, torch.optim.Optimizer]
    scaler: torch.amp.GradScaler
    rt: Runtime
    weights: LossWeights = field(default_factory=LossWeights)

    def run(self, batch: dict[str, Any]) -> dict[str, Tensor]:
        metrics, _ = steps.gan_step(
            self.nets, batch, self.optimizers, self.scaler, self.rt, self.weights, "joint", where="measure"
        )
        return metrics


def joint_step(cfg: ModelConfig, rt: Runtime, fused: bool = False) -> JointStep:
    """Networks (frozen auxiliaries, train mode) and one :func:`adam` per parameter group at stage 2's start
    rates, as the trainer builds them."""
    schedule = Schedule()
    nets: PDANetworks = prepare_module(build_networks(cfg), rt)
    nets.freeze_auxiliary()
    nets.train()
    lr_ldn, lr_psn = schedule.learning_rates(2, 0)
    optimizers = {
        name: adam(params, lr_ldn if name.startswith("ldn") else lr_psn, schedule, fused)
        for name, params in nets.parameter_groups().items()
        if params
    }
    return JointStep(nets, optimizers, make_grad_scaler(rt), rt)


class LiveTensorBytes(TorchDispatchMode):
    """Live tensor storage bytes while active (CPU or any device): ``live`` now, ``peak`` since reset.

    Storages that existed before are counted once :meth:`track` names them; storages an operator returns
    are added, and removed when Python frees them.
    """

    def __init__(self) -> None:
        super().__init__()
        self.live = 0
        self.peak = 0
        self._sizes: dict[int, int] = {}

    def track(self, tensor: Tensor) -> None:
        storage = tensor.untyped_storage()
        key, n = storage.data_ptr(), storage.nbytes()
        if n == 0 or key in self._sizes or tensor.device.type == "meta":
            return
        self._sizes[key] = n
        self.live += n
        self.peak = max(self.peak, self.live)
        weakref.finalize(storage, self._free, key)

    def _free(self, key: int) -> None:
        self.live -= self._sizes.pop(key, 0)

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        out = func(*args, **(kwargs or {}))
        for value in tree_flatten(out)[0]:
            if isinstance(value, Tensor):
                self.track(value)
        return out


class _Meter:
    """Live and peak bytes on ``device``: the CUDA allocator's statistics, else a :class:`LiveTensorBytes`."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.mode = None if device.type == "cuda" else LiveTensorBytes()

    @property
    def method(self) -> str:
        if self.mode is None:
            return "torch.cuda.max_memory_allocated"
        return "peak live tensor bytes (dispatch-mode tracker, CPU)"

    def live(self) -> int:
        return torch.cuda.memory_allocated(self.device) if self.mode is None else self.mode.live

    @contextmanager
    def measuring(self, existing: list[Tensor]) -> Iterator[Callable[[], int]]:
        """Yield a function giving the peak since entering; ``existing`` tensors count from the start."""
        if self.mode is None:
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            yield lambda: torch.cuda.max_memory_allocated(self.device)
            torch.cuda.synchronize(self.device)
            return
        mode = self.mode
        with mode:
            for t in existing:
                mode.track(t)
            mode.peak = mode.live
            yield lambda: mode.peak


@dataclass(frozen=True)
class NetworkMemory:
    """One network's bytes: weights, gradients + Adam state of its trainable part, activations per step."""

    name: str
    parameters: int
    weight_bytes: int
    grad_bytes: int
    optimizer_bytes: int
    activation_bytes: int

    @property
    def total_bytes(self) -> int:
        return self.weight_bytes + self.grad_bytes + self.optimizer_bytes + self.activation_bytes


@dataclass(frozen=True)
class StepMemory:
    """Measured peaks of one step (``peaks[i]`` at ``batch_sizes[i]``) and the per-network split of the
    first, with how they were measured."""

    device: str
    method: str
    amp: str
    checkpoint_blocks: bool
    batch_sizes: tuple[int, ...]
    peaks: tuple[int, ...]
    networks: tuple[NetworkMemory, ...]
    reserved: int | None = None  # CUDA allocator reserved bytes at the peak (None on the CPU)

    def at(self, batch: int) -> int:
        """Peak bytes at ``batch``: measured if it was, else linear in the batch through the measurements."""
        if batch in self.batch_sizes:
            return self.peaks[self.batch_sizes.index(batch)]
        (b0, b1), (p0, p1) = self.batch_sizes[:2], self.peaks[:2]
        per_sample = max(p1 - p0, 0) / (b1 - b0)
        return round(p0 + per_sample * (batch - b0))

    def per_sample(self) -> int | None:
        """Bytes one more sample adds (None with a single measurement)."""
        if len(self.batch_sizes) < 2:
            return None
        (b0, b1), (p0, p1) = self.batch_sizes[:2], self.peaks[:2]
        return round(max(p1 - p0, 0) / (b1 - b0))


def state_tensors(module: nn.Module, optimizers: Iterable[torch.optim.Optimizer]) -> list[Tensor]:
    """Every tensor a training state holds between steps: weights, buffers, gradients, optimizer state."""
    out = [*module.parameters(), *module.buffers()]
    out += [p.grad for p in module.parameters() if p.grad is not None]
    for opt in optimizers:
        out += [v for state in opt.state.values() for v in state.values() if isinstance(v, Tensor)]
    return out


def peak_bytes(fn: Callable[[], object], device: torch.device, existing: list[Tensor]) -> int:
    """Peak memory of one call of ``fn`` on ``device`` (see the module docstring for what is counted);
    ``existing``: the tensors alive before the call that count (:func:`state_tensors`, the inputs)."""
    with _Meter(device).measuring(existing) as peak:
        fn()
        return peak()


def _network_state(step: JointStep) -> dict[str, tuple[int, int, int, int]]:
    """Per network: parameters, weight bytes, gradient bytes and Adam state bytes (trainable part)."""
    states = {id(p): s for opt in step.optimizers.values() for p, s in opt.state.items()}
    out = {}
    for name, network in step.nets.named_networks():
        params = list(network.parameters())
        trainable = [p for p in params if p.requires_grad and id(p) in states]
        opt_bytes = sum(
            states[id(p)][k].numel() * states[id(p)][k].element_size()
            for p in trainable
            for k in ADAM_STATES
            if k in states[id(p)]
        )
        out[name] = (
            sum(p.numel() for p in params),
            sum(p.numel() * p.element_size() for p in params),
            sum(p.numel() * p.element_size() for p in trainable),
            opt_bytes,
        )
    return out


@contextmanager
def _activation_hooks(nets: PDANetworks, meter: _Meter, kept: dict[str, int]) -> Iterator[None]:
    """Add to ``kept[name]`` the live-byte growth over every forward call of each network."""
    handles, entry = [], {}
    for name, network in nets.named_networks():
        kept[name] = 0

        def pre(_m: nn.Module, _args: object, name: str = name) -> None:
            entry.setdefault(name, []).append(meter.live())

        def post(_m: nn.Module, _args: object, _out: object, name: str = name) -> None:
            kept[name] += meter.live() - entry[name].pop()

        handles += [network.register_forward_pre_hook(pre), network.register_forward_hook(post)]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def measure_step_memory(
    cfg: ModelConfig, rt: Runtime, batch_sizes: tuple[int, ...] = (1, 2), seed: int = 0
) -> StepMemory:
    """Measure the peak memory of a real joint training step of ``cfg`` under ``rt`` at each batch size.

    One unmeasured warm-up step at ``batch_sizes[0]`` creates the optimizer state; each measured step then
    starts from the trainer's state between steps (weights, gradients, Adam moments).
    """
    torch.manual_seed(seed)
    step = joint_step(cfg, rt)
    meter = _Meter(rt.device)
    step.run(synthetic_stage_batch(cfg.image_size, batch_sizes[0], rt, seed))
    peaks, kept, reserved = [], {}, None
    for i, b in enumerate(batch_sizes):
        batch = synthetic_stage_batch(cfg.image_size, b, rt, seed)
        inputs = [v for v in batch.values() if isinstance(v, Tensor)]
        existing = state_tensors(step.nets, step.optimizers.values()) + inputs
        hooks = _activation_hooks(step.nets, meter, kept) if i == 0 else nullcontext()
        with meter.measuring(existing) as peak, hooks:
            step.run(batch)
            peaks.append(peak())
        if rt.device.type == "cuda" and i == 0:
            reserved = torch.cuda.max_memory_reserved(rt.device)
        del batch, inputs, existing
    state = _network_state(step)
    networks = tuple(
        NetworkMemory(name, *state[name], activation_bytes=max(kept.get(name, 0), 0))
        for name, _ in step.nets.named_networks()
    )
    return StepMemory(
        device=str(rt.device),
        method=meter.method,
        amp=rt.amp,
        checkpoint_blocks=rt.checkpoint_blocks,
        batch_sizes=tuple(batch_sizes),
        peaks=tuple(peaks),
        networks=networks,
        reserved=reserved,
    )


def describe_memory(
    preset: Preset, rows: list[NetworkSummary], batch: int, rt: Runtime | None
) -> dict[str, Any]:
    """The report of ``pda-train describe``: per network and in total, weights, gradients + Adam state,
    activations per step and their sum, and the step's peak at ``batch``.

    ``rows``: :func:`pda_train.nets.summary.summarize` of ``preset`` at ``batch`` (passes per step, and the
    meta-traced fp32 activations used when ``rt`` is None). With a runtime, the step is measured on its
    device at batch 1 (and 2 when ``batch`` > 1; larger batches scale linearly) and the activations are the
    measured ones scaled to ``batch``.
    """
    measured = None
    if rt is not None:
        measured = measure_step_memory(preset.model, rt, (1,) if batch == 1 else (1, 2))
    by_name = {n.name: n for n in measured.networks} if measured else {}
    networks = []
    for row in rows:
        if measured is not None:
            net = by_name[row.name]
            sizes = (net.weight_bytes, net.grad_bytes, net.optimizer_bytes, net.activation_bytes * batch)
        else:  # fp32 weights and gradients, two fp32 Adam moments per trainable value
            sizes = (4 * row.parameters, 4 * row.trainable, 8 * row.trainable, row.activation_bytes)
        keys = ("weight_bytes", "grad_bytes", "optimizer_bytes", "activation_bytes")
        entry: dict[str, Any] = {"name": row.name, "parameters": row.parameters, "calls": row.calls}
        entry.update(zip(keys, sizes, strict=True))
        entry["total_bytes"] = sum(sizes)
        networks.append(entry)
    total: dict[str, Any] = {"name": "total", "calls": 0}
    for key in ("parameters", "weight_bytes", "grad_bytes", "optimizer_bytes", "activation_bytes"):
        total[key] = sum(n[key] for n in networks)
    total["total_bytes"] = sum(n["total_bytes"] for n in networks)
    report: dict[str, Any] = {
        "preset": preset.name,
        "image_size": preset.model.image_size,
        "batch_size": batch,
        "networks": networks,
        "total": total,
        "peak_bytes": None,
        "peak_gib": None,
    }
    if measured is None:
        report["note"] = (
            "not measured (--no-measure): activations are the fp32 outputs of every leaf module in one "
            "step, traced on the meta device; the peak also holds temporaries, so it is higher"
        )
        return report
    peak = measured.at(batch)
    sizes = " and ".join(str(b) for b in measured.batch_sizes)
    report.update(
        device=measured.device,
        amp=measured.amp,
        checkpoint_blocks=measured.checkpoint_blocks,
        method=measured.method,
        measured_batch_sizes=list(measured.batch_sizes),
        measured_peak_bytes=list(measured.peaks),
        per_sample_bytes=measured.per_sample(),
        reserved_bytes=measured.reserved,
        peak_bytes=peak,
        peak_gib=round(peak / GIB, 3),
        estimate=(
            f"measured at batch {batch}"
            if batch in measured.batch_sizes
            else f"measured at batch {sizes}, linear in the batch"
        ),
        note=(
            f"measured: one joint training step (stages 2/3) on {measured.device} at batch {sizes}, amp "
            f"{measured.amp}, checkpoint-blocks {'on' if measured.checkpoint_blocks else 'off'}; "
            f"{measured.method}; activations per network = growth of live bytes over its forward passes "
            f"(measured at batch 1, times {batch})"
        ),
    )
    return report
