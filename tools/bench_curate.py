"""Benchmark ``crop-cosers`` on demo coser photos: throughput with 1 and 2 workers, peak memory at two sizes.

The reference is the 1-worker run measured in the same invocation: ``scaling`` = images/s with 2 workers
divided by images/s with 1. Peak RSS is measured in a fresh subprocess per input count (ru_maxrss of that
process), so the two numbers show whether memory grows with the number of inputs.

    python tools/bench_curate.py [--photos 12] [--small 24] [--large 96] [--cascade PATH]

The last line of stdout is one JSON object: images_per_s_w1, images_per_s_w2, scaling, peak_rss_mb_small,
peak_rss_mb_large.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from pda_data.curation.options import COSER_DEFAULTS, with_overrides
from pda_data.curation.run import run_curation
from pda_data.demo.writer import COSERS_DIR, DemoConfig, write_demo

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=12, help="demo coser photos to generate")
    parser.add_argument("--small", type=int, default=72,
                        help="inputs of the throughput and small RSS runs (amortizes worker start-up)")
    parser.add_argument("--large", type=int, default=216, help="inputs for the large RSS run")
    parser.add_argument("--cascade", type=Path, default=None, help="lbpcascade_animeface.xml (else resolved)")
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
    }))


if __name__ == "__main__":
    main()
