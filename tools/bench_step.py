"""Seconds per full PDA training step against a plain U-GAT-IT step, per image size.

Ours: the trainer's own step, :func:`pda_train.training.steps.gan_step` in its ``joint`` phase (stages 2/3)
on a batch of the stream's layout -- LDN and PSN generators in both directions, the TPS warp,
discriminator update (LDN + PSN, Eq. 2), generator update with every loss of Eq. 3 and Eq. 6 (frozen
structure detector/classifier and highlight classifier included), the NaN guard, the grad scaler and the
trainer's optimizer per parameter group.

Reference, measured in the same run on the same inputs: a plain U-GAT-IT step with the same generator
(channels, residual blocks, full gamma/beta MLP), its four discriminators (global with 5
downsamplings and local with 3, per domain), its losses (adversarial with CAM logits, cycle 10,
identity 10, CAM 1000), no LDN, no warp, no auxiliary losses. Both steps run one generator forward
per step (fakes are detached for the discriminator update), the same Adam and the same precision
and memory-format settings, and are timed interleaved so machine load hits both alike.

Where ours saves: the paper's two CAM discriminators instead of U-GAT-IT's four, and no identity
images -- the CAM loss needs only the other domain's attention logits, so that pass skips the
decoder. On CUDA both models run channels_last with bf16 autocast and fused Adam; on CPU fp32 with
foreach Adam and denormals flushed to zero, as the trainer's runtime sets on the CPU.

Clock: on CUDA wall time (synchronised). On CPU the default is one torch thread and process CPU time,
which counts the work of this process only and so stays meaningful on a machine shared with other jobs
(on an idle machine it equals wall time); ``--clock wall`` and ``--threads 0`` give wall time with
torch's default threads. Both clocks are always reported.

The last line of stdout is one JSON object: ``ours`` (the timed step function), ``ours_s_<size>`` and
``ugatit_s_<size>`` (also as ``seconds_<size>`` and ``baseline_seconds_<size>``) and ``ratio_<size>`` =
ours / baseline on the chosen clock, ``wall_seconds_<size>`` /
``baseline_wall_seconds_<size>`` and ``cpu_seconds_<size>`` / ``baseline_cpu_seconds_<size>``,
``peak_mem_gb_<size>`` / ``baseline_peak_mem_gb_<size>`` (peak memory of one more, untimed step, in GiB
of 2**30 bytes: ``torch.cuda.max_memory_allocated`` on CUDA, peak live tensor bytes on the CPU, see
:mod:`pda_train.training.memory`), plus the settings used. ``--compile``, ``--checkpoint-blocks`` and
``--amp`` apply to both models.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from pda_train.config import ModelConfig, Schedule
from pda_train.losses import cam_loss, l1_loss, lsgan_discriminator_loss, lsgan_generator_loss
from pda_train.nets import psn_generator
from pda_train.nets.psn import StylizationDiscriminator
from pda_train.training import steps
from pda_train.training.memory import GIB, adam, joint_step, peak_bytes, state_tensors, synthetic_stage_batch
from pda_train.training.runtime import Runtime, autocast, init_runtime, maybe_compile, prepare_module

OURS = f"{steps.gan_step.__module__}.{steps.gan_step.__qualname__}"  # what make_pda_step times


class Bench(NamedTuple):
    """A step closure and what its peak-memory measurement counts as alive before it (weights, optimizer
    state, inputs)."""

    step: Callable[[], None]
    state: Callable[[], list[Tensor]]


def make_pda_step(cfg: ModelConfig, batch: dict[str, Any], rt: Runtime) -> Bench:
    """The trainer's :func:`~pda_train.training.steps.gan_step` (joint phase) on ``batch``.

    The optimizers are the trainer's (one Adam per parameter group at the stage-2 start rates), with the
    same Adam implementation as the reference step (:func:`pda_train.training.memory.joint_step`).
    """
    js = joint_step(cfg, rt, fused=rt.device.type == "cuda")
    maybe_compile([m for name, m in js.nets.named_networks() if name.startswith(("ldn_", "psn_"))], rt)
    inputs = [v for v in batch.values() if isinstance(v, Tensor)]
    return Bench(lambda: js.run(batch), lambda: state_tensors(js.nets, js.optimizers.values()) + inputs)


class UGATIT(nn.Module):
    """U-GAT-IT's six networks: two generators, global and local discriminators per domain."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.gen_ab, self.gen_ba = psn_generator(cfg), psn_generator(cfg)
        self.dis_ga = StylizationDiscriminator(channels=cfg.disc_channels, downsamplings=5)
        self.dis_gb = StylizationDiscriminator(channels=cfg.disc_channels, downsamplings=5)
        self.dis_la = StylizationDiscriminator(channels=cfg.disc_channels, downsamplings=3)
        self.dis_lb = StylizationDiscriminator(channels=cfg.disc_channels, downsamplings=3)


def _adversarial_d(d: nn.Module, real: Tensor, fake: Tensor) -> Tensor:
    real_patch, real_cam, _ = d(real)
    fake_patch, fake_cam, _ = d(fake.detach())
    return lsgan_discriminator_loss(real_patch, fake_patch) + lsgan_discriminator_loss(real_cam, fake_cam)


def _adversarial_g(d: nn.Module, fake: Tensor) -> Tensor:
    patch, cam, _ = d(fake)
    return lsgan_generator_loss(patch) + lsgan_generator_loss(cam)


def make_ugatit_step(cfg: ModelConfig, batch: dict[str, Any], rt: Runtime) -> Bench:
    """One plain U-GAT-IT step (A = portrait, B = anime) with its default weights."""
    schedule = Schedule()
    m = prepare_module(UGATIT(cfg), rt)
    fused = rt.device.type == "cuda"
    maybe_compile([m.gen_ab, m.gen_ba, m.dis_ga, m.dis_gb, m.dis_la, m.dis_lb], rt)
    g_opt = adam([*m.gen_ab.parameters(), *m.gen_ba.parameters()], schedule.lr_psn, schedule, fused)
    d_params = [p for d in (m.dis_ga, m.dis_gb, m.dis_la, m.dis_lb) for p in d.parameters()]
    d_opt = adam(d_params, schedule.lr_psn, schedule, fused)
    real_a, real_b = batch["portrait"], batch["anime"]

    def step() -> None:
        with autocast(rt):
            fake_ab, cam_ab, _ = m.gen_ab(real_a)
            fake_ba, cam_ba, _ = m.gen_ba(real_b)
            fake_aba, fake_bab = m.gen_ba(fake_ab)[0], m.gen_ab(fake_ba)[0]
            fake_aa, cam_aa, _ = m.gen_ba(real_a)
            fake_bb, cam_bb, _ = m.gen_ab(real_b)
            d_total = (
                _adversarial_d(m.dis_ga, real_a, fake_ba)
                + _adversarial_d(m.dis_la, real_a, fake_ba)
                + _adversarial_d(m.dis_gb, real_b, fake_ab)
                + _adversarial_d(m.dis_lb, real_b, fake_ab)
            )
        d_opt.zero_grad(set_to_none=True)
        d_total.backward()
        d_opt.step()
        with autocast(rt):
            adv = sum(_adversarial_g(d, fake_ba) for d in (m.dis_ga, m.dis_la)) + sum(
                _adversarial_g(d, fake_ab) for d in (m.dis_gb, m.dis_lb)
            )
            cycle = l1_loss(fake_aba, real_a) + l1_loss(fake_bab, real_b)
            identity = l1_loss(fake_aa, real_a) + l1_loss(fake_bb, real_b)
            cam = cam_loss(cam_ab, cam_bb) + cam_loss(cam_ba, cam_aa)
            g_total = adv + 10 * cycle + 10 * identity + 1000 * cam
        g_opt.zero_grad(set_to_none=True)
        g_total.backward()
        g_opt.step()
        m.gen_ab.clip_rho()
        m.gen_ba.clip_rho()

    return Bench(step, lambda: state_tensors(m, (g_opt, d_opt)) + [real_a, real_b])


def _timed(step: Callable[[], None], rt: Runtime) -> tuple[float, float]:
    """(wall seconds, process CPU seconds) of one step."""
    if rt.device.type == "cuda":
        torch.cuda.synchronize(rt.device)
    wall, cpu = time.perf_counter(), time.process_time()
    step()
    if rt.device.type == "cuda":
        torch.cuda.synchronize(rt.device)
    return time.perf_counter() - wall, time.process_time() - cpu


def bench_size(size: int, args: argparse.Namespace, rt: Runtime) -> dict[str, float]:
    """Median wall and CPU seconds per step of ours and the baseline at ``size`` px, measured interleaved."""
    channels = args.channels or (64 if rt.device.type == "cuda" else 16)
    # Auxiliary networks keep the paper preset's ratio to the PSN width (32 : 64).
    cfg = ModelConfig(
        image_size=size,
        psn_channels=channels,
        psn_blocks=args.blocks,
        disc_channels=channels,
        detector_channels=max(channels // 2, 4),
        classifier_channels=max(channels // 2, 4),
    )
    torch.manual_seed(args.seed)
    # The stage stream's batch layout (pda_data.stream.loaders.stage_loader), already on the device.
    batch = synthetic_stage_batch(size, args.batch, rt, args.seed)
    ours, baseline = make_pda_step(cfg, batch, rt), make_ugatit_step(cfg, batch, rt)
    for _ in range(args.warmup):
        ours.step()
        baseline.step()
    ours_t, base_t = [], []
    for _ in range(args.steps):
        ours_t.append(_timed(ours.step, rt))
        base_t.append(_timed(baseline.step, rt))
    # Peak memory in one more step each, untimed: the CPU tracker slows every operator down.
    peaks = {
        f"{prefix}peak_mem_gb_{size}": peak_bytes(bench.step, rt.device, bench.state()) / GIB
        for prefix, bench in (("", ours), ("baseline_", baseline))
    }
    return {
        f"wall_seconds_{size}": statistics.median(t[0] for t in ours_t),
        f"baseline_wall_seconds_{size}": statistics.median(t[0] for t in base_t),
        f"cpu_seconds_{size}": statistics.median(t[1] for t in ours_t),
        f"baseline_cpu_seconds_{size}": statistics.median(t[1] for t in base_t),
        **peaks,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sizes", type=int, nargs="+", default=[128, 256], help="image sizes (default 128 256)"
    )
    parser.add_argument(
        "--channels", type=int, default=0, help="PSN base channels for both models; 0 = 64 on CUDA, 16 on CPU"
    )
    parser.add_argument("--blocks", type=int, default=6, help="residual blocks per side (paper: 6 + 6)")
    parser.add_argument("--batch", type=int, default=1, help="batch size (paper: 1)")
    parser.add_argument(
        "--steps", type=int, default=3, help="timed steps per model and size (median reported)"
    )
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps per model and size first")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument(
        "--amp",
        choices=["auto", "off", "bf16", "fp16"],
        default="auto",
        help="autocast; auto = bf16 on CUDA, off on CPU",
    )
    parser.add_argument("--compile", action="store_true", help="torch.compile both models' networks")
    parser.add_argument("--compile-backend", default="inductor", help="torch.compile backend")
    parser.add_argument(
        "--checkpoint-blocks", action="store_true", help="activation checkpointing of the PSN blocks (both)"
    )
    parser.add_argument(
        "--threads", type=int, default=-1, help="torch CPU threads; 0 = torch's default; default 1 on CPU"
    )
    parser.add_argument(
        "--clock",
        choices=["auto", "wall", "cpu"],
        default="auto",
        help="clock of the ratio; auto = cpu on CPU",
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    probe = init_runtime(args.device)
    threads = (1 if probe.device.type == "cpu" else 0) if args.threads < 0 else args.threads
    if threads:
        torch.set_num_threads(threads)
    clock = ("cpu" if probe.device.type == "cpu" else "wall") if args.clock == "auto" else args.clock
    amp = ("bf16" if probe.device.type == "cuda" else "off") if args.amp == "auto" else args.amp
    rt = init_runtime(
        args.device,
        amp=amp,
        channels_last=probe.device.type == "cuda",
        compile=args.compile,
        compile_backend=args.compile_backend,
        checkpoint_blocks=args.checkpoint_blocks,
    )
    result: dict[str, object] = {
        "device": torch.cuda.get_device_name(rt.device) if rt.device.type == "cuda" else "cpu",
        "threads": torch.get_num_threads(),
        "channels": args.channels or (64 if rt.device.type == "cuda" else 16),
        "blocks": args.blocks,
        "batch": args.batch,
        "amp": rt.amp,
        "channels_last": rt.channels_last,
        "compile": rt.compile_backend if rt.compile else "off",
        "checkpoint_blocks": rt.checkpoint_blocks,
        "steps": args.steps,
        "clock": clock,
        "ours": OURS,
        "reference": "plain U-GAT-IT step (4 discriminators, identity loss, no LDN/aux), same run",
    }
    for size in args.sizes:
        times = bench_size(size, args, rt)
        ours, baseline = times[f"{clock}_seconds_{size}"], times[f"baseline_{clock}_seconds_{size}"]
        print(
            f"{size}x{size}: {OURS} {ours:.3f} s, U-GAT-IT step {baseline:.3f} s ({clock} clock), "
            f"ratio {ours / baseline:.3f} (ours / U-GAT-IT)",
            flush=True,
        )
        result[f"ours_s_{size}"] = result[f"seconds_{size}"] = round(ours, 4)
        result[f"ugatit_s_{size}"] = result[f"baseline_seconds_{size}"] = round(baseline, 4)
        result[f"ratio_{size}"] = round(ours / baseline, 4)
        result.update({k: round(v, 4) for k, v in times.items()})
    print(json.dumps(result))


if __name__ == "__main__":
    main()
