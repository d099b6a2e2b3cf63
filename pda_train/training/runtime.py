"""Where and how training runs: device, mixed precision, data parallelism, finite-loss guard, interrupts.

Data parallelism follows ``torchrun``: when ``WORLD_SIZE > 1`` the process group starts (NCCL on CUDA, gloo
on CPU), parameters are broadcast from rank 0, and after every backward pass :func:`sync_gradients` averages
the gradients over ranks, which is the update ``DistributedDataParallel`` computes. The GAN steps call each
network several times before one backward (cycle terms, discriminators on real and fake) and train
discriminators and generators with separate backward passes, a pattern DDP's reducer rejects; the explicit
all-reduce keeps its semantics (identical parameters on every rank after each step) without those limits, as
StyleGAN2-ADA's training loop does for the same reason.
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Literal

import torch
import torch.distributed as dist
from torch import nn

from pda_train.nets.psn import set_block_checkpointing

AmpMode = Literal["off", "bf16", "fp16"]
DeviceName = Literal["auto", "cpu", "cuda"]


class NonFiniteLossError(RuntimeError):
    """A loss became NaN or infinite; training stops and the last good checkpoint stays in place."""


@dataclass(frozen=True)
class Runtime:
    """The resolved execution settings of one process."""

    device: torch.device
    amp: AmpMode = "off"
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    channels_last: bool = False
    compile: bool = False
    compile_backend: str = "inductor"
    checkpoint_blocks: bool = False

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Only rank 0 logs, samples and writes checkpoints."""
        return self.rank == 0

    @property
    def amp_dtype(self) -> torch.dtype | None:
        return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.amp)


def select_device(name: DeviceName = "auto", local_rank: int = 0) -> torch.device:
    """``auto`` picks CUDA when available; ``cuda`` without a GPU is an error, not a silent fallback."""
    if name not in ("auto", "cpu", "cuda"):
        raise ValueError(f"unknown device {name!r} (choose auto, cpu or cuda)")
    if name == "cpu" or (name == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise RuntimeError("--device cuda was requested but no CUDA device is available")
    return torch.device("cuda", local_rank % torch.cuda.device_count())


def init_runtime(
    device: DeviceName = "auto",
    amp: AmpMode = "off",
    channels_last: bool = False,
    compile: bool = False,
    threads: int = 0,
    *,
    compile_backend: str = "inductor",
    checkpoint_blocks: bool = False,
) -> Runtime:
    """Resolve the device and, under ``torchrun`` (``WORLD_SIZE`` > 1), join the process group.

    ``threads`` > 0 caps torch's intra-op CPU threads; on a busy or shared CPU one thread per process is
    often several times faster than oversubscribed thread pools. Every setting works on the CPU too
    (bf16 and fp16 autocast, the fp16 grad scaler, channels_last, ``torch.compile``), so the GPU code paths
    are tested without a GPU.
    """
    if threads > 0:
        torch.set_num_threads(threads)
    if amp not in ("off", "bf16", "fp16"):
        raise ValueError(f"unknown amp mode {amp!r} (choose off, bf16 or fp16)")
    if compile:
        from torch import _dynamo  # only compiled runs pay for it

        known = _dynamo.list_backends(exclude_tags=())
        if compile_backend not in known:
            raise ValueError(f"unknown compile backend {compile_backend!r} (choose from {', '.join(known)})")
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dev = select_device(device, local_rank)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    else:
        # Adam's second moments and late gradients of small models go denormal, and x86 float units
        # handle denormals many times slower: flushed to zero, a CPU step is about a tenth faster.
        torch.set_flush_denormal(True)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo")
    return Runtime(
        dev,
        amp,
        rank,
        world,
        local_rank,
        channels_last,
        compile,
        compile_backend=compile_backend,
        checkpoint_blocks=checkpoint_blocks,
    )


def shutdown(rt: Runtime) -> None:
    """Leave the process group (a no-op outside ``torchrun``)."""
    if rt.distributed and dist.is_initialized():
        dist.destroy_process_group()


def autocast(rt: Runtime) -> contextlib.AbstractContextManager:
    """Mixed-precision context for forward passes (a null context when ``amp`` is off)."""
    if rt.amp_dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=rt.device.type, dtype=rt.amp_dtype)


def make_grad_scaler(rt: Runtime) -> torch.amp.GradScaler:
    """A loss scaler, enabled only for fp16 (bf16 has fp32's exponent range and needs none)."""
    return torch.amp.GradScaler(rt.device.type, enabled=rt.amp == "fp16")


def prepare_module(module: nn.Module, rt: Runtime) -> nn.Module:
    """Move to the device, apply channels_last and block checkpointing, start every rank from rank 0's
    weights."""
    module = module.to(rt.device)
    set_block_checkpointing(module, rt.checkpoint_blocks)
    if rt.channels_last:
        module = module.to(memory_format=torch.channels_last)
    if rt.distributed:
        broadcast_module(module)
    return module


def maybe_compile(modules: Iterable[nn.Module], rt: Runtime) -> None:
    """Compile each module's forward in place (``nn.Module.compile``) when requested; state dict keys stay."""
    if rt.compile:
        for module in modules:
            module.compile(backend=rt.compile_backend)


def broadcast_module(module: nn.Module, src: int = 0) -> None:
    """Copy parameters and buffers of rank ``src`` to every rank."""
    with torch.no_grad():
        for tensor in list(module.parameters()) + list(module.buffers()):
            dist.broadcast(tensor.data, src)


def sync_gradients(params: Iterable[nn.Parameter], rt: Runtime) -> None:
    """Average gradients over ranks in one coalesced all-reduce (no-op on a single process).

    A parameter without a gradient takes part with zeros, so every rank reduces the same layout.
    """
    if not rt.distributed:
        return
    params = list(params)
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    grads = [p.grad for p in params]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    flat /= rt.world_size
    offset = 0
    for g in grads:
        g.copy_(flat[offset : offset + g.numel()].view_as(g))
        offset += g.numel()


def all_reduce_mean(values: Mapping[str, float], rt: Runtime) -> dict[str, float]:
    """Mean of scalar metrics over ranks, for logging on rank 0."""
    if not rt.distributed or not values:
        return dict(values)
    keys = sorted(values)
    t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64, device=rt.device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return {k: float(v) / rt.world_size for k, v in zip(keys, t.tolist(), strict=True)}


def any_rank(flag: bool, rt: Runtime) -> bool:
    """True on every rank when ``flag`` is true on at least one (used for stop requests)."""
    if not rt.distributed:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=rt.device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def check_finite(losses: Mapping[str, torch.Tensor | float], where: str) -> None:
    """Raise :class:`NonFiniteLossError` naming every loss that is NaN or infinite."""
    bad = []
    for name, value in losses.items():
        v = float(value.detach().float().item()) if isinstance(value, torch.Tensor) else float(value)
        if not math.isfinite(v):
            bad.append(f"{name}={v}")
    if bad:
        raise NonFiniteLossError(
            f"{where}: non-finite loss ({', '.join(bad)}); stopping, the last good "
            "checkpoint is kept (try a lower learning rate or --amp off)"
        )


class InterruptGuard:
    """Turn SIGINT/SIGTERM into a stop request the training loop polls, so it can checkpoint and exit.

    A second SIGINT while the request is pending raises ``KeyboardInterrupt`` as usual.
    """

    def __init__(self) -> None:
        self.requested = False
        self.signal_name = ""
        self._previous: dict[int, object] = {}

    def _handle(self, signum: int, frame: object) -> None:
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = True
        self.signal_name = signal.Signals(signum).name

    def __enter__(self) -> InterruptGuard:
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(ValueError):  # not the main thread: signals stay as they are
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)  # type: ignore[arg-type]
        self._previous.clear()


@contextlib.contextmanager
def eval_mode(*modules: nn.Module) -> Iterator[None]:
    """Put modules in eval mode for a block and restore their previous modes."""
    modes = [m.training for m in modules]
    for m in modules:
        m.eval()
    try:
        yield
    finally:
        for m, mode in zip(modules, modes, strict=True):
            m.train(mode)
