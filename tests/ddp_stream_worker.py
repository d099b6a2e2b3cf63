"""One rank of the DDP stream test: `torchrun --standalone --nproc-per-node 2 THIS SHARDS OUT N`.

Joins a gloo process group, reads ``N`` coser-only batches through 2 loader workers and writes the portrait
keys of each batch to ``OUT/rank<r>.json`` (batch ``i`` comes from loader worker ``i % 2``).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch.distributed as dist

from pda_data.stream.loaders import stage_loader


def main() -> None:
    shards, out, batches = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    loader = iter(stage_loader(shards, {"coser": 1.0}, batch_size=4, image_size=32, seed=11, num_workers=2))
    keys = [next(loader)["portrait_key"] for _ in range(batches)]
    (out / f"rank{rank}.json").write_text(
        json.dumps({"rank": rank, "world": dist.get_world_size(), "keys": keys})
    )
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
