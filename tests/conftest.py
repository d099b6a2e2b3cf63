"""Shared test fixtures: the real sample images and models that ../shared holds."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("PDA_SHARED", REPO.parent / "shared"))
TERMINAL_COLUMNS = "200"


def pytest_configure(config: pytest.Config) -> None:
    """A 200-column terminal for every test, whatever the caller's: CLI text is never wrapped.

    Set before any test module imports a CLI, because rich consoles made at import time read COLUMNS once
    (typer's read TERMINAL_WIDTH); subprocesses inherit it.
    """
    os.environ["COLUMNS"] = TERMINAL_COLUMNS
    os.environ["TERMINAL_WIDTH"] = TERMINAL_COLUMNS


@pytest.fixture(scope="module")
def one_thread() -> Any:
    """One torch thread for a module's tests: on a shared 2-core machine, thread pools fighting other
    processes make training crawl. The previous count is restored after the module."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.skip(f"{SHARED} is missing (set PDA_SHARED)")
    return SHARED


@pytest.fixture(scope="session")
def samples_dir(shared_dir: Path) -> Path:
    return shared_dir / "samples"


@pytest.fixture(scope="session")
def cascade_path(shared_dir: Path) -> Path:
    return shared_dir / "models" / "lbpcascade_animeface.xml"


def run_torchrun(
    script: Path, *args: str, nproc: int = 2, timeout: float = 240
) -> subprocess.CompletedProcess:
    """Run ``script`` under ``torchrun --standalone`` (gloo, CPU); a timeout kills every worker it started."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(nproc),
           str(script), *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"{script.name} under torchrun timed out after {timeout} s:\n{err[-3000:]}")
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def lpips_state_dict(ref: Any) -> dict[str, Any]:
    """``ref``'s (a ``metrics.AlexLPIPS``) weights in the layout ``--lpips-weights`` files have: torchvision
    AlexNet ``features.{0,3,6,8,10}.*`` plus the lpips package's ``lin{k}.model.1.weight`` (non-negative)."""
    state = {}
    for k, idx in enumerate((0, 3, 6, 8, 10)):
        state[f"features.{idx}.weight"] = ref.convs[k].weight.detach().clone()
        state[f"features.{idx}.bias"] = ref.convs[k].bias.detach().clone()
        state[f"lin{k}.model.1.weight"] = ref.lins[k].weight.detach().abs().clone()
    return state
