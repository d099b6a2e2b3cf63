"""One rank of the DDP training test: ``torchrun --nproc-per-node 2 ddp_train_worker.py SHARDS OUT``.

Trains the auxiliary networks and stage 1 (every phase) for a few steps with gloo on CPU, then saves this
rank's flattened parameters to ``OUT/rank<r>.pt`` so the test can compare the ranks.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from pda_train.manifest import experiment_from_dict
from pda_train.training.loop import Trainer
from pda_train.training.runtime import init_runtime, shutdown


def main(shards: str, out: str) -> None:
    exp = experiment_from_dict(
        {
            "name": "ddp",
            "preset": "tiny",
            "plan": "coser",
            "seed": 3,
            "schedule": {"iterations": [4, 1, 1], "batch_size": 2},
            "data": {"shards": shards},
            "aux": {"detector_steps": 2, "classifier_steps": 1, "batch_size": 2, "eval_batches": 1},
            "stage1": {"ldn_only": 0.34, "psn_only": 0.34},
            "log_every": 2,
            "sample_every": 0,
            "checkpoint_every": 0,
        }
    )
    rt = init_runtime("cpu", threads=1)
    assert rt.distributed and rt.world_size == 2, "run me under torchrun --nproc-per-node 2"
    trainer = Trainer(exp, Path(out) / "run", rt, tensorboard=False)
    initial = torch.cat([p.detach().flatten().clone() for p in trainer.nets.parameters()])
    result = trainer.run("all")
    final = torch.cat([p.detach().flatten() for p in trainer.nets.parameters()])
    torch.save(
        {"initial": initial, "final": final, "status": result.status, "stage": result.stage,
         "step": result.step},
        Path(out) / f"rank{rt.rank}.pt",
    )
    shutdown(rt)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
