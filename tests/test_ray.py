"""The Ray engine (one local Ray with 2 CPUs shared by the module): the local engine's results, byte for byte,
through a killed actor and a killed driver; without Ray, ``--engine ray`` says how to install it."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from synth_world import write_anime_annotations
from typer.testing import CliRunner

from pda_data.cli import app
from pda_data.curation import run as curation_run
from pda_data.curation.options import COSER_DEFAULTS, CurateOptions, with_overrides
from pda_data.curation.run import CurateWork, load_progress, run_curation
from pda_data.curation.table import read_portraits
from pda_data.demo.writer import COSERS_DIR, DemoConfig, write_demo
from pda_data.distribute import RAY_INSTALL, Engine
from pda_data.io.sources import SourceItem
from pda_data.synthesis.jobs import run_synth
from pda_data.synthesis.table import read_synth
from pda_data.synthesis.tasks import load_anime_faces, plan_structure

RAY = Engine("ray", 2)
KILL_AFTER, FLUSH_EVERY = 5, 2  # the killed driver has flushed the rows of 4 inputs

_DRIVER = """
import os, signal, sys
from pathlib import Path
from pda_data.curation.options import COSER_DEFAULTS, with_overrides
from pda_data.curation.run import run_curation
from pda_data.distribute import Engine
inputs, out, cascade, address, kill_after, flush_every = sys.argv[1:]
options = with_overrides(COSER_DEFAULTS, cascade=Path(cascade), faces="all")
done = []
def on_item(rows):
    done.append(rows)
    if len(done) == int(kill_after):
        os.kill(os.getpid(), signal.SIGKILL)
run_curation([inputs], out, options, engine=Engine("ray", 2, address), flush_every=int(flush_every),
             sheets=False, on_item=on_item)
"""


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[str]:
    """One local Ray (2 CPUs) for the module: its address. This module's classes travel to the actors by
    value (the workers cannot import a test module)."""
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


@dataclass
class World:
    inputs: Path  # the demo's raw coser photos
    elsewhere: Path  # the same photos under another parent folder
    local: Path  # the local engine's curated folder of ``inputs``
    options: CurateOptions


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, cascade_path: Path) -> World:
    root = tmp_path_factory.mktemp("ray_world")
    write_demo(root / "a" / "demo", DemoConfig(n_cosers=4, n_humans=0, n_anime=0, verify=False), cascade_path)
    inputs = root / "a" / "demo" / COSERS_DIR
    elsewhere = root / "b" / "moved" / COSERS_DIR
    shutil.copytree(inputs, elsewhere)
    options = with_overrides(COSER_DEFAULTS, cascade=cascade_path, faces="all")
    run_curation([inputs], root / "local", options, sheets=False)
    return World(inputs, elsewhere, root / "local", options)


def _assert_same_run(out: Path, reference: Path, moved: tuple[Path, Path] | None = None) -> None:
    """The same manifest and byte-identical crops; ``moved`` (from, to): the inputs were elsewhere, which
    only the paths in the source and detail columns tell."""
    got, want = read_portraits(out), read_portraits(reference)
    if moved is not None:
        for column in ("source", "detail"):
            got[column] = got[column].str.replace(str(moved[0]), str(moved[1]), regex=False)
    pd.testing.assert_frame_equal(got, want)
    crops = sorted(p.name for p in (reference / "images").iterdir())
    assert crops and sorted(p.name for p in (out / "images").iterdir()) == crops
    for name in crops:
        assert (out / "images" / name).read_bytes() == (reference / "images" / name).read_bytes(), name


def test_ray_curation_equals_local_wherever_the_inputs_live(ray_cluster: str, world: World,
                                                            tmp_path: Path) -> None:
    summary = run_curation([world.elsewhere], tmp_path, world.options, engine=RAY, sheets=False)
    assert summary.processed == len(list(world.inputs.iterdir()))
    _assert_same_run(tmp_path, world.local, moved=(world.elsewhere, world.inputs))


@dataclass(frozen=True)
class KillOnce(CurateWork):
    """The curation work, but the actor process that meets input ``victim`` dies first (once: ``marker``)."""

    victim: str = ""
    marker: str = ""

    @contextlib.contextmanager
    def session(self, worker: bool) -> Iterator[Callable[[SourceItem], list[dict[str, Any]]]]:
        with super().session(worker) as work:

            def run(item: SourceItem) -> list[dict[str, Any]]:
                if item.stable_id == self.victim:
                    with contextlib.suppress(FileExistsError):
                        os.close(os.open(self.marker, os.O_CREAT | os.O_EXCL))
                        os._exit(1)
                return work(item)

            yield run


@pytest.mark.slow
def test_killed_actor_is_retried_with_an_identical_result(ray_cluster: str, world: World, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    victim = f"{COSERS_DIR}/{sorted(p.name for p in world.inputs.iterdir())[2]}"
    marker = tmp_path / "killed"
    monkeypatch.setattr(curation_run, "CurateWork",
                        lambda options, out: KillOnce(options, out, victim=victim, marker=str(marker)))
    run_curation([world.inputs], tmp_path / "out", world.options, engine=RAY, sheets=False)
    assert marker.is_file()  # an actor did die on the victim
    _assert_same_run(tmp_path / "out", world.local)


@pytest.mark.slow
def test_killed_driver_resumes_without_redoing(ray_cluster: str, world: World, cascade_path: Path,
                                               tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, "-c", _DRIVER, str(world.inputs), str(out), str(cascade_path), ray_cluster,
         str(KILL_AFTER), str(FLUSH_EVERY)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True)
    try:
        _, err = proc.communicate(timeout=240)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == -signal.SIGKILL, err[-2000:]
    saved = KILL_AFTER // FLUSH_EVERY * FLUSH_EVERY
    assert len(load_progress(out)["source"].unique()) == saved  # flushed chunks, no manifest yet
    summary = run_curation([world.inputs], out, world.options, engine=RAY, sheets=False)
    assert summary.processed == len(list(world.inputs.iterdir())) - saved
    _assert_same_run(out, world.local)


def test_ray_synthesis_equals_local(ray_cluster: str, samples_dir: Path, tmp_path: Path) -> None:
    faces = load_anime_faces(write_anime_annotations(samples_dir, tmp_path / "anime.parquet"))
    tasks = plan_structure(faces, 10, 3, 0.5, ["eye_pasted", "mouth_removed"], {}, 2)
    run_synth("structure", tasks, tmp_path / "local")
    run_synth("structure", tasks, tmp_path / "ray", engine=RAY)
    pd.testing.assert_frame_equal(read_synth("structure", tmp_path / "ray"),
                                  read_synth("structure", tmp_path / "local"))
    for image in (tmp_path / "local" / "images").iterdir():
        assert (tmp_path / "ray" / "images" / image.name).read_bytes() == image.read_bytes(), image.name
    sheet = "contact_sheet.jpg"
    assert (tmp_path / "ray" / sheet).read_bytes() == (tmp_path / "local" / sheet).read_bytes()


def test_engine_ray_without_ray_says_how_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray raises ImportError
    for args in (["crop-cosers", str(tmp_path)], ["synth-structure", "--anime", str(tmp_path / "a.parquet")]):
        result = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "out"), "--engine", "ray"])
        assert result.exit_code == 2, result.output
        assert RAY_INSTALL in result.output and "Traceback" not in result.output
    result = CliRunner().invoke(app, ["crop-cosers", str(tmp_path), "--out", str(tmp_path / "o"),
                                      "--concurrency", "2"])
    assert result.exit_code == 2 and "--concurrency is for --engine ray" in result.output
    assert not (tmp_path / "out").exists()
