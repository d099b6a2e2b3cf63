"""Throughput of the stage-1 stream against the per-file folder baseline and a raw decode loop, in one run.

* ours: ``pda_data.stream.loaders.stage_loader`` with stage 1's mix (coser portraits only) over packed
  256x256 shards (``pda-data pack``'s default PNG members, or JPEG q95 4:4:4 with --image-format jpg): tar
  read, OpenCV decode, random square crop (80-100 % of the area) resized to 256 with the landmarks, flip,
  uint8 batching, one float conversion per batch; a stage-1 batch of B pairs is 2B images (portrait + anime).
* folder: what U-GAT-IT / CycleGAN users run: the curated PNG folder read one file at a time with PIL,
  resized to 286, randomly cropped to 256, flipped, ToTensor + Normalize per sample, batched by a torch
  DataLoader. It always reads the curated PNG files (the format ``crop-cosers`` writes).
* bound: a raw loop that reads the same shards with the same tar reader and decodes every image with
  OpenCV, nothing else.

Each is measured with 0 and 2 loader workers (the bound with 1 and 2 processes), as the best of a few timed
windows; without workers also in CPU time, which a busy shared machine does not distort. The last stdout
line is JSON: ``speedup_vs_folder`` (ours / folder) and ``fraction_of_bound`` (ours / bound) from the
CPU-time figures (same process count, 0 workers), every wall-clock images/s figure and ratio per worker count,
and peak memory.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import resource
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
from shard_world import anime_annotations, portrait_folder  # noqa: E402

from pda_data.shards.index import shard_urls  # noqa: E402
from pda_data.shards.pack import pack  # noqa: E402
from pda_data.shards.tar import iter_tar_members  # noqa: E402
from pda_data.stream.loaders import stage_loader  # noqa: E402


class FolderDataset(Dataset):
    """The baseline, as torchvision would run it: Resize(size + 30), RandomCrop, Flip, ToTensor, Normalize."""

    def __init__(self, files: list[Path], size: int, seed: int) -> None:
        self.files, self.size, self.load = files, size, size + 30
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> torch.Tensor:
        img = Image.open(self.files[i]).convert("RGB").resize((self.load, self.load), Image.BILINEAR)
        x0, y0 = self.rng.integers(0, self.load - self.size + 1, 2)
        img = img.crop((int(x0), int(y0), int(x0) + self.size, int(y0) + self.size))
        if self.rng.random() < 0.5:
            img = img.transpose(Image.FLIP_LEFT_RIGHT)
        t = torch.frombuffer(bytearray(img.tobytes()), dtype=torch.uint8).view(self.size, self.size, 3)
        t = t.permute(2, 0, 1).contiguous().float().div(255)
        return (t - 0.5) / 0.5


def _rate(batches: Iterator, images_per_batch: int, n_batches: int, repeats: int) -> tuple[float, float]:
    """Best (wall-clock, this-process CPU-time) images/s over ``repeats`` windows of ``n_batches``."""
    for _ in range(2):  # warm-up: workers starting, shuffle buffers filling
        next(batches)
    wall = cpu = 0.0
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        for _ in range(n_batches):
            next(batches)
        images = n_batches * images_per_batch
        wall = max(wall, images / (time.perf_counter() - start))
        cpu = max(cpu, images / max(time.process_time() - start_cpu, 1e-9))
    return wall, cpu


def _forever(loader: Iterable) -> Iterator:
    while True:
        yield from loader


def _decode_shards(paths: list[str]) -> int:
    n = 0
    for path in paths:
        for name, data in iter_tar_members(path):
            if name.endswith((".png", ".jpg")):
                n += cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR_RGB) is not None
    return n


def _bound_rate(
    paths: list[str], per_pass: int, processes: int, min_images: int, repeats: int
) -> tuple[float, float]:
    """Best (wall-clock, CPU-time) images/s of the raw decode loop over ``processes`` processes."""
    work = [paths[i::processes] * -(-min_images // per_pass) for i in range(processes)]
    wall = cpu = 0.0
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        if processes == 1:
            n = _decode_shards(work[0])
        else:
            with mp.get_context("fork").Pool(processes) as pool:
                n = sum(pool.map(_decode_shards, work))
        wall = max(wall, n / (time.perf_counter() - start))
        cpu = max(cpu, n / max(time.process_time() - start_cpu, 1e-9))
    return wall, cpu


def _peak_mb() -> dict[str, float]:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {"peak_rss_main_mb": round(own, 1), "peak_rss_worker_mb": round(kids, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", type=int, default=256, help="images per domain to pack (coser and anime)")
    ap.add_argument(
        "--batch-size", type=int, default=16, help="pairs per stage-1 batch (baseline: 2x images)"
    )
    ap.add_argument("--batches", type=int, default=16, help="stage-1 batches per timed window")
    ap.add_argument("--repeats", type=int, default=3, help="timed windows per measurement; the best is kept")
    ap.add_argument("--workers", type=int, nargs="+", default=[0, 2], help="loader worker counts to measure")
    ap.add_argument(
        "--image-format",
        default="png",
        choices=["png", "jpg"],
        help="image format inside the shards (the folder baseline always reads the curated PNG files)",
    )
    ap.add_argument(
        "--work-dir", type=Path, default=None, help="where to build the data (default: a temp dir)"
    )
    args = ap.parse_args()
    torch.set_num_threads(1)
    cv2.setNumThreads(1)  # every contender single-threaded per process

    with tempfile.TemporaryDirectory() as tmp:
        root = args.work_dir or Path(tmp)
        samples = REPO.parent / "shared" / "samples"
        cosers = portrait_folder(root / "cosers", args.samples, prefix="coser", size=256)
        anime = anime_annotations(root, samples, args.samples, size=256)
        shards = root / "shards"
        sources = {"coser": cosers, "anime": anime}
        pack(shards, sources, test_fraction=0.0, shard_size=32, seed=0, image_format=args.image_format)
        urls = shard_urls(shards, "coser") + shard_urls(shards, "anime")
        files = sorted((cosers / "images").glob("*.png")) + sorted((root / "anime_images").glob("*.png"))
        per_batch = 2 * args.batch_size
        images = per_batch * args.batches
        result: dict[str, float | int | str] = {
            "images_per_window": images,
            "image_size": 256,
            "shard_format": args.image_format,
            "folder_format": "png",
        }
        for w in args.workers:
            ours_loader = stage_loader(
                shards, {"coser": 1.0}, batch_size=args.batch_size, image_size=256, seed=0, num_workers=w
            )
            ours, ours_cpu = _rate(iter(ours_loader), per_batch, args.batches, args.repeats)
            del ours_loader  # stop its workers before the next measurement
            folder_loader = DataLoader(
                FolderDataset(files, 256, seed=0),
                batch_size=per_batch,
                shuffle=True,
                num_workers=w,
                drop_last=True,
                persistent_workers=w > 0,
            )
            folder, folder_cpu = _rate(_forever(folder_loader), per_batch, args.batches, args.repeats)
            del folder_loader
            bound, bound_cpu = _bound_rate(urls, 2 * args.samples, max(1, w), images, args.repeats)
            result |= {
                f"ours_w{w}_img_s": round(ours, 1),
                f"folder_w{w}_img_s": round(folder, 1),
                f"bound_p{max(1, w)}_img_s": round(bound, 1),
                f"speedup_vs_folder_w{w}": round(ours / folder, 2),
                f"fraction_of_bound_w{w}": round(ours / bound, 3),
            }
            print(
                f"workers={w} wall: ours {ours:.0f} img/s | folder baseline {folder:.0f} img/s "
                f"(x{ours / folder:.2f}) | raw decode bound {bound:.0f} img/s ({100 * ours / bound:.0f}%)",
                flush=True,
            )
            if w == 0:
                result |= {
                    "ours_w0_cpu_img_s": round(ours_cpu, 1),
                    "folder_w0_cpu_img_s": round(folder_cpu, 1),
                    "bound_p1_cpu_img_s": round(bound_cpu, 1),
                    "speedup_vs_folder": round(ours_cpu / folder_cpu, 2),
                    "fraction_of_bound": round(ours_cpu / bound_cpu, 3),
                }
                print(
                    f"workers=0 cpu-time: ours {ours_cpu:.0f} img/s | folder baseline {folder_cpu:.0f} img/s "
                    f"(x{ours_cpu / folder_cpu:.2f}) | raw decode bound {bound_cpu:.0f} img/s "
                    f"({100 * ours_cpu / bound_cpu:.0f}%)",
                    flush=True,
                )
        result |= {
            "reference": "folder = PIL per file + Resize/RandomCrop/Flip/ToTensor/Normalize in a DataLoader; "
            "bound = the same tar reader (pda_data.shards.tar.iter_tar_members) + cv2.imdecode only",
            **_peak_mb(),
        }
        print(json.dumps(result))


if __name__ == "__main__":
    main()
