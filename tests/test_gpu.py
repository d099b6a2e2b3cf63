"""CUDA-only paths (marker ``gpu``; skipped without a GPU): run by tools/gpu_check.sh on a lent machine."""

from __future__ import annotations

import dataclasses
import os

import pytest
import torch

from pda_train.config import get_preset
from pda_train.training.memory import joint_step, measure_step_memory, synthetic_stage_batch
from pda_train.training.runtime import init_runtime, select_device

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]
SMALL = dataclasses.replace(get_preset("tiny").model, image_size=32)


def test_auto_selects_cuda() -> None:
    assert select_device("auto").type == "cuda" and select_device("cuda", local_rank=0).index == 0


@pytest.mark.parametrize(
    "settings",
    [{"amp": "bf16"}, {"amp": "fp16"}, {"channels_last": True}, {"amp": "bf16", "checkpoint_blocks": True},
     {"amp": "bf16", "compile": True}],
    ids=["bf16", "fp16", "channels_last", "bf16+ckpt", "bf16+compile"],
)
def test_cuda_steps_are_finite_and_update(settings: dict) -> None:
    rt = init_runtime("cuda", **settings)
    torch.manual_seed(0)
    step = joint_step(SMALL, rt)
    before = step.nets.psn_g_pa.gamma.weight.detach().clone()
    batch = synthetic_stage_batch(SMALL.image_size, 2, rt)
    for _ in range(4):
        metrics = step.run(batch)
    assert all(torch.isfinite(v).all() for v in metrics.values())
    assert not torch.equal(before, step.nets.psn_g_pa.gamma.weight)


def test_cuda_peak_memory_is_measured() -> None:
    m = measure_step_memory(SMALL, init_runtime("cuda"), (1, 2))
    assert m.method == "torch.cuda.max_memory_allocated" and 0 < m.peaks[0] < m.peaks[1]


def test_nccl_process_group_of_one() -> None:
    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT="29533")
    dist.init_process_group("nccl", rank=0, world_size=1)
    try:
        t = torch.ones(3, device="cuda")
        dist.all_reduce(t)
        assert t.tolist() == [1.0, 1.0, 1.0]
    finally:
        dist.destroy_process_group()


def test_pinned_batch_feeds_a_cuda_step() -> None:
    rt = init_runtime("cuda", "bf16")
    cpu = synthetic_stage_batch(SMALL.image_size, 2, init_runtime("cpu"))
    pinned = {k: v.pin_memory() if isinstance(v, torch.Tensor) else v for k, v in cpu.items()}
    assert pinned["portrait"].is_pinned()
    metrics = joint_step(SMALL, rt).run(pinned)  # gan_step moves the batch to the device
    assert all(torch.isfinite(v).all() for v in metrics.values())
