"""Benchmark ``crop-cosers`` on demo coser photos: throughput with 1 and 2 workers, peak memory at two sizes.

The reference is the 1-worker run measured in the same invocation: ``scaling`` = images/s with 2 workers
divided by images/s with 1. Peak RSS is measured in a fresh subprocess per input count (ru_maxrss of that
process), so the two numbers show whether memory grows with the number of inputs. ``--engine ray`` also
runs the same inputs on a local Ray with 2 actors: ``ray_vs_local`` = its images/s (actor start-up and
model loading included, Ray's own start excluded) divided by the local engine's with 2 workers, and
``ray_startup_s`` = the seconds ``ray.init`` took.

    python tools/bench_curate.py [--photos 12] [--small 72] [--large 216] [--cascade PATH] [--engine ray]

The last line of stdout is one JSON object: images_per_s_w1, images_per_s_w2, scaling, peak_rss_mb_small,
peak_rss_mb_large; with ``--engine ray`` also images_per_s_local, images_per_s_ray, ray_vs_local,
ray_startup_s.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from pda_data.curation.options import COSER_DEFAULTS, CurateOptions, with_overrides
from pda_data.curation.run import run_curation
from pda_data.demo.writer import COSERS_DIR, DemoConfig, write_demo
from pda_data.distribute import RAY_LOCAL, Engine

_RSS_CHILD = """
import resource, sys
from pathlib import Path
from pda_data.curation.options import COSER_DEFAULTS, with_overrides
from pda_data.curation.run import run_curation
cascade = Path(sys.argv[3]) if sys.argv[3] else None
options = with_overrides(COSER_DEFAULTS, cascade=cascade, faces="all")
run_curation([sys.argv[1]], sys.argv[2], options, workers=1, sheets=False)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0)
"""


def _inputs(photos: Path, count: int, into: Path) -> Path:
    """A folder of ``count`` photos cycling through the generated ones (copies, so every path is distinct)."""
    files = sorted(p for p in photos.iterdir() if p.name.startswith("coser_"))
    into.mkdir(parents=True)
    for i in range(count):
        src = files[i % len(files)]
        shutil.copyfile(src, into / f"{i:05d}_{src.name}")
    return into


def _peak_rss_mb(inputs: Path, out: Path, cascade: Path | None) -> float:
    result = subprocess.run([sys.executable, "-c", _RSS_CHILD, str(inputs), str(out), str(cascade or "")],
                            check=True, capture_output=True, text=True)
    return float(result.stdout.strip().splitlines()[-1])


def _ray_figures(inputs: Path, out: Path, options: CurateOptions, local_rate: float) -> dict[str, Any]:
    """Ray's start-up time and images/s with 2 actors on this machine, against the local 2-worker rate."""
    from pda_data.distribute.ray_data import ray_session

    start = time.perf_counter()
    with ray_session(RAY_LOCAL, 2):
        startup = time.perf_counter() - start
        summary = run_curation([inputs], out, options, engine=Engine("ray", 2), sheets=False)
    ratio = summary.images_per_s / local_rate if local_rate > 0 else 0.0
    print(f"ray, 2 actors: {summary.processed} photos, {summary.kept} faces kept, {summary.images_per_s:.2f} "
          f"images/s ({ratio:.2f}x the local engine with 2 workers); ray.init {startup:.1f} s")
    return {"images_per_s_local": round(local_rate, 3), "images_per_s_ray": round(summary.images_per_s, 3),
            "ray_vs_local": round(ratio, 3), "ray_startup_s": round(startup, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=12, help="demo coser photos to generate")
    parser.add_argument("--small", type=int, default=72,
                        help="inputs of the throughput and small RSS runs (amortizes worker start-up)")
    parser.add_argument("--large", type=int, default=216, help="inputs for the large RSS run")
    parser.add_argument("--cascade", type=Path, default=None, help="lbpcascade_animeface.xml (else resolved)")
    parser.add_argument("--engine", choices=("local", "ray"), default="local",
                        help="ray: also measure the Ray engine against the local one (2 actors, 2 workers)")
    args = parser.parse_args()

    # Throughput scaling needs idle cores; say how busy the machine was.
    print(f"{os.cpu_count()} CPU cores, load average {os.getloadavg()[0]:.1f} at start")
    with tempfile.TemporaryDirectory(prefix="bench_curate_") as tmp:
        root = Path(tmp)
        write_demo(root / "demo", DemoConfig(n_cosers=args.photos, n_humans=0, n_anime=0, verify=False),
                   args.cascade)
        photos = root / "demo" / COSERS_DIR
        small = _inputs(photos, args.small, root / "small")
        large = _inputs(photos, args.large, root / "large")
        options = with_overrides(COSER_DEFAULTS, cascade=args.cascade, faces="all")

        rates = {}
        for workers in (1, 2):
            summary = run_curation([small], root / f"out_w{workers}", options, workers=workers, sheets=False)
            rates[workers] = summary.images_per_s
            print(f"workers={workers}: {summary.processed} photos, {summary.kept} faces kept, "
                  f"{summary.images_per_s:.2f} images/s")
        ray = _ray_figures(small, root / "out_ray", options, rates[2]) if args.engine == "ray" else {}
        rss_small = _peak_rss_mb(small, root / "rss_small", args.cascade)
        rss_large = _peak_rss_mb(large, root / "rss_large", args.cascade)
        print(f"peak RSS, 1 worker: {rss_small:.0f} MB at {args.small} inputs, "
              f"{rss_large:.0f} MB at {args.large}")
        scaling = rates[2] / rates[1] if rates[1] > 0 else 0.0
        print(f"scaling (2 workers vs the 1-worker reference): {scaling:.2f}x")
    print(json.dumps({
        "images_per_s_w1": round(rates[1], 3),
        "images_per_s_w2": round(rates[2], 3),
        "scaling": round(scaling, 3),
        "peak_rss_mb_small": round(rss_small, 1),
        "peak_rss_mb_large": round(rss_large, 1),
        **ray,
    }))


if __name__ == "__main__":
    main()
