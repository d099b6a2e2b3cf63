"""tools/gpu_check.sh --dry-run end to end on the CPU (tiny sizes), so a broken device script shows here."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from shard_world import anime_annotations, portrait_folder, synth_folder

from pda_data.shards.pack import pack

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_gpu_check_dry_run(tmp_path: Path, samples_dir: Path) -> None:
    sources = {
        "coser": portrait_folder(tmp_path / "cosers", 4, prefix="coser", size=64, seed=0),
        "human": portrait_folder(tmp_path / "humans", 4, prefix="human", size=64, seed=1),
        "anime": anime_annotations(tmp_path / "anime", samples_dir, 4, size=64),
        "structure": synth_folder(tmp_path / "structure", samples_dir, 4, size=64),
        "highlight": synth_folder(tmp_path / "highlight", samples_dir, 4, size=64, seed=3, job="highlight"),
    }
    pack(tmp_path / "shards", sources, test_fraction=0.0, shard_size=4)
    out = tmp_path / "out"
    env = {**os.environ, "OUT": str(out), "PY": str(Path(os.sys.executable)), "OMP_NUM_THREADS": "1"}
    res = subprocess.run(["bash", "tools/gpu_check.sh", "--dry-run", "--shards", str(tmp_path / "shards")],
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    steps = [json.loads(line) for line in (out / "steps.jsonl").read_text().splitlines()]
    expected = {"project", "gpu_tests", "bench_off", "bench_bf16", "bench_bf16compile", "train", "resume"}
    assert {s["step"] for s in steps} >= expected | {"describe"}
    assert all(s["rc"] == 0 for s in steps)
    bench = json.loads((out / "bench_bf16compile.json").read_text())
    assert bench["amp"] == "bf16" and bench["compile"] == "eager" and bench["peak_mem_gb_128"] > 0
    assert json.loads((out / "summary.json").read_text()) == {"dry_run": 1, "failed_steps": 0}
