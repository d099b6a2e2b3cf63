"""The streaming trainer end to end on tiny shards: every stage, resume, export, translate, evaluate,
checkpoints under SIGINT/SIGKILL, the NaN guard, DDP over 2 gloo processes, and the runtime helpers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import skimage.data
import torch
import yaml
from conftest import run_torchrun
from shard_world import anime_annotations, portrait_folder, synth_folder
from typer.testing import CliRunner

import pda_train.training.steps as steps_mod
from pda_data.faces.detectors import make_detector
from pda_data.faces.landmarks import Landmarker
from pda_data.io.images import save_image
from pda_data.shards.index import ShardError, read_index
from pda_data.shards.pack import pack
from pda_train.cli import app
from pda_train.cli import run as cli_run
from pda_train.cli import translate as cli_translate
from pda_train.inference.evaluate import EvalOptions, evaluate
from pda_train.inference.export import ExportError, load_translator
from pda_train.inference.faces import NoFaceError, face_options, faces_or_raise
from pda_train.inference.paste import paste_faces
from pda_train.inference.summary import SUMMARY_ROWS, TILE, summary_sheet
from pda_train.inference.testset import folder_faces, shard_faces
from pda_train.inference.translate import translate_crops
from pda_train.manifest import Experiment, experiment_from_dict
from pda_train.training import checkpoint as ckpt
from pda_train.training.loop import Trainer, TrainingError
from pda_train.training.runtime import (
    InterruptGuard,
    NonFiniteLossError,
    check_finite,
    init_runtime,
    select_device,
)
from pda_train.training.tracking import read_metrics

TESTS = Path(__file__).parent
PDA_TRAIN = [sys.executable, "-c", "from pda_train.cli import main; main()"]
SIZE = 64  # the tiny preset's resolution: the world is written at it, so decoding stays cheap


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI's consoles at 200 columns, so assertions on its text do not depend on the terminal width."""
    for console in (cli_run.console, cli_translate.console, cli_run.err_console):
        monkeypatch.setattr(console, "width", 200)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, samples_dir: Path) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("world")
    sources = {
        "coser": portrait_folder(root / "cosers", 10, prefix="coser", size=SIZE, seed=0),
        "human": portrait_folder(root / "humans", 10, prefix="human", size=SIZE, seed=1),
        "anime": anime_annotations(root / "anime", samples_dir, 10, size=SIZE),
        "structure": synth_folder(root / "structure", samples_dir, 12, size=SIZE),
        "highlight": synth_folder(root / "highlight", samples_dir, 12, size=SIZE, seed=3, job="highlight"),
    }
    pack(root / "shards", sources, test_fraction=0.3, shard_size=3)
    return {"shards": root / "shards", "humans": sources["human"], "anime": sources["anime"], **sources}


def _manifest(shards: Path, **overrides: Any) -> dict[str, Any]:
    data = {
        "name": "it",
        "preset": "tiny",
        "seed": 1,
        "schedule": {"iterations": [6, 4, 4], "batch_size": 2},
        "data": {"shards": str(shards)},
        "aux": {"detector_steps": 4, "classifier_steps": 2, "batch_size": 4},
        "stage1": {"ldn_only": 0.34, "psn_only": 0.34},
        "log_every": 1,
        "sample_every": 3,
        "checkpoint_every": 2,
    }
    data.update(overrides)
    return data


@pytest.fixture(scope="module")
def trained(world: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """aux + stages 1-3, paused mid stage 2 by --max-steps, resumed for one step, then to the end."""
    threads = torch.get_num_threads()
    rt = init_runtime("cpu", threads=1)
    exp = experiment_from_dict(_manifest(world["shards"]))
    run = tmp_path_factory.mktemp("run")
    try:
        paused = Trainer(exp, run, rt, max_steps=8 + 6 + 3).run("all")
        saved = ckpt.load_checkpoint(ckpt.last_checkpoint(run))
        one = Trainer(exp, run, rt, max_steps=1).run("all", resume=True)
        done = Trainer(exp, run, rt).run("all", resume=True)
    finally:
        torch.set_num_threads(threads)
    return {"exp": exp, "run": run, "paused": paused, "saved": saved, "one": one, "done": done}


def test_max_steps_pauses_mid_stage_with_a_checkpoint(trained: dict[str, Any]) -> None:
    paused, saved, exp = trained["paused"], trained["saved"], trained["exp"]
    assert (paused.status, paused.stage, paused.step) == ("paused", "2", 3)
    assert (saved["stage"], saved["step"], saved["complete"]) == ("2", 3, False)
    lr_ldn, lr_psn = exp.preset.schedule.learning_rates(2, 3)
    assert saved["optimizers"]["psn_g"]["param_groups"][0]["lr"] == pytest.approx(lr_psn)
    assert saved["optimizers"]["ldn_g"]["param_groups"][0]["lr"] == pytest.approx(lr_ldn)
    assert saved["manifest"]["preset"] == "tiny" and saved["manifest"] == exp.to_dict()
    assert set(saved["rng"]) >= {"torch", "python", "numpy_global"}


def test_resume_continues_at_the_same_step_and_learning_rate(trained: dict[str, Any]) -> None:
    one, exp = trained["one"], trained["exp"]
    # The one step finished stage 2 (4 steps); the pause then lands at the start of stage 3.
    assert (one.status, one.stage, one.step) == ("paused", "3", 0)
    records = [r for r in read_metrics(trained["run"]) if r["stage"] == "2" and "lr/psn_g" in r]
    assert [r["step"] for r in records] == [1, 2, 3, 4, 5, 6, 7, 8][: len(records)]
    assert len(records) == 4  # stage 2 has 4 steps: 3 before the pause, 1 after resuming, none repeated
    for r in records:
        lr_ldn, lr_psn = exp.preset.schedule.learning_rates(2, r["step"])
        assert r["lr/psn_g"] == pytest.approx(lr_psn) and r["lr/ldn_g"] == pytest.approx(lr_ldn)


def test_a_full_run_writes_every_stage_model_and_log(trained: dict[str, Any]) -> None:
    run, done = trained["run"], trained["done"]
    assert (done.status, done.stage, done.step) == ("done", "3", 4)
    assert done.model == run / "final.safetensors" and done.model.is_file()
    for stage in ("aux", "1", "2", "3"):
        state = ckpt.load_checkpoint(ckpt.stage_checkpoint(run, stage))
        assert state["complete"] and state["stage"] == stage
    for stage in ("1", "2", "3"):
        assert (run / f"stage-{stage}.safetensors").is_file() and (run / f"stage-{stage}.json").is_file()
    assert set(done.aux_metrics) == {
        "test/detector_bce",
        "test/structure_accuracy",
        "test/highlight_accuracy",
    }
    assert all(0.0 <= v <= 1.0 for k, v in done.aux_metrics.items() if "accuracy" in k)
    records = read_metrics(run)
    stage1 = [r for r in records if r["stage"] == "1"]
    assert [r["step"] for r in stage1] == list(range(1, 7))
    assert "loss/ldn_total" in stage1[0] and "loss/psn_total" not in stage1[0]  # LDN alone first
    assert "loss/psn_total" in stage1[2] and "loss/ldn_total" not in stage1[2]  # then PSN alone
    assert {"loss/ldn_total", "loss/psn_total", "loss/structure", "loss/highlight"} <= set(stage1[5])
    assert all(np.isfinite(v) for r in records for k, v in r.items() if k.startswith("loss/"))
    grids = sorted(p.name for p in (run / "samples").glob("*.png"))
    assert "stage1-0000006.png" in grids and any(g.startswith("stageaux") for g in grids)
    assert (run / "experiment.yaml").is_file() and any((run / "tensorboard").iterdir())
    # The exported chain reproduces the trained networks' translation.
    model = load_translator(done.model)
    nets = Trainer(trained["exp"], run / "x", init_runtime("cpu")).nets
    nets.load_state_dict(ckpt.load_checkpoint(ckpt.stage_checkpoint(run, "3"))["networks"])
    x, lm = torch.rand(2, 3, SIZE, SIZE) * 2 - 1, torch.rand(2, 68, 2) * 1.2 - 0.6
    with torch.no_grad():
        warped, _ = nets.eval().warp(x, lm)
        assert torch.allclose(model(x, lm)[0], nets.psn_g_pa(warped)[0], atol=1e-5)


def test_a_finished_or_started_run_is_not_silently_restarted(trained: dict[str, Any], tmp_path: Path) -> None:
    rt = init_runtime("cpu")
    with pytest.raises(TrainingError, match="already holds a run"):
        Trainer(trained["exp"], trained["run"], rt).run("all")
    with pytest.raises(TrainingError, match="stage-1.pt is missing: run --stage 1 first"):
        Trainer(trained["exp"], tmp_path, rt).run("2")
    with pytest.raises(TrainingError, match="nothing to resume"):
        Trainer(trained["exp"], tmp_path, rt).run("all", resume=True)
    result = Trainer(trained["exp"], trained["run"], rt).run("all", resume=True)
    assert result.status == "done"  # a complete run resumes to nothing


def test_translate_any_photo_with_paste_back(trained: dict[str, Any]) -> None:
    model = load_translator(trained["done"].model)
    photo = skimage.data.astronaut()
    detector, landmarker, options = make_detector("dlib-hog"), Landmarker(), face_options(SIZE, "largest")
    face = faces_or_raise(photo, detector, landmarker, options, "photo")[0][0]
    assert face.crop.shape == (SIZE, SIZE, 3)
    assert ((face.points >= 0) & (face.points < SIZE)).all()
    (res,) = translate_crops(model, [face.crop], [face.points])
    assert res.anime.shape == res.warped.shape == (SIZE, SIZE, 3) and res.anime.dtype == np.uint8
    pasted = paste_faces(photo, [res.anime], [face.affine]).image
    assert pasted.shape == photo.shape
    # Far from the face the photo is untouched; at the face centre the anime crop is pasted.
    assert np.array_equal(pasted[-20:, :20], photo[-20:, :20])
    centre = np.linalg.solve(face.affine[:, :2], np.array([(SIZE - 1) / 2] * 2) - face.affine[:, 2])
    cx, cy = (int(round(v)) for v in centre)
    assert np.abs(pasted[cy, cx].astype(int) - res.anime[SIZE // 2, SIZE // 2].astype(int)).max() <= 12
    with pytest.raises(NoFaceError, match="flat: no face found"):
        faces_or_raise(np.full((120, 120, 3), 128, np.uint8), detector, landmarker, options, "flat")


def test_evaluate_writes_the_paper_metrics(
    trained: dict[str, Any], world: dict[str, Path], tmp_path: Path
) -> None:
    model = load_translator(trained["done"].model)
    report = evaluate(model, folder_faces(world["humans"]), tmp_path, EvalOptions(anime=world["anime"]))
    assert report["count"] == 10 and report["faces"]["source"] == "external"  # no shards: every face
    assert json.loads((tmp_path / "report.json").read_text())["count"] == 10
    assert len(list((tmp_path / "images").glob("*.png"))) == 10 and (tmp_path / "sheet.png").is_file()
    assert 0.0 <= report["hue_histd"]["mean"] <= 1.0 and report["hue_histd"]["bins"] == 180
    mmd = report["mmd"]
    assert mmd["points"] == 17 and mmd["anime_count"] == 10
    assert mmd["human_vs_anime"] >= 0 and mmd["warped_vs_anime"] >= 0
    assert "unavailable" in report["fid"]
    # By default the faces are the human test split the shards hold; the packed folder gives the same keys.
    shards = world["shards"]
    n_test = read_index(shards)["roles"]["human"]["splits"]["test"]["samples"]
    options = EvalOptions(shards=shards, domain_steps=20)
    held_out = evaluate(model, shard_faces(shards), tmp_path / "t", options)
    assert held_out["count"] == n_test > 0 and held_out["faces"]["per_split"] == {"test": n_test}
    # The domain classifier trains on the train split only: its four counts add up to those splits.
    score, splits = held_out["domain_score"], read_index(shards)["roles"]
    clf = score["classifier"]
    assert clf["anime_train"] + clf["anime_heldout"] == splits["anime"]["splits"]["train"]["samples"]
    assert clf["human_train"] + clf["human_heldout"] == splits["human"]["splits"]["train"]["samples"]
    assert clf["steps"] == 20 and 0.0 <= clf["heldout_accuracy"] <= 1.0
    assert score["translated"] * n_test in range(n_test + 1) and 0.0 <= score["untranslated"] <= 1.0
    assert "needs --shards" in report["domain_score"]["unavailable"]
    assert held_out["mmd"]["anime"].endswith("(anime test split)")
    assert held_out["mmd"]["anime_count"] == read_index(shards)["roles"]["anime"]["splits"]["test"]["samples"]
    from_folder = folder_faces(world["humans"], "test", shards)
    assert from_folder.source == "folder" and sorted(from_folder.keys) == sorted(shard_faces(shards).keys)
    both = folder_faces(world["humans"], "all", shards)
    assert both.counts == {"train": 10 - n_test, "test": n_test}
    assert "lpips" in report["lpips"].get("unavailable", "lpips") or "mean" in report["lpips"]


def test_summary_sheet_shows_four_rows_per_face(trained: dict[str, Any], tmp_path: Path) -> None:
    model = load_translator(trained["done"].model)
    photo = skimage.data.astronaut()
    save_image(tmp_path / "astronaut.png", photo)
    det, marker = make_detector("dlib-hog"), Landmarker()
    paths = [tmp_path / "gone.png", tmp_path / "astronaut.png", tmp_path / "astronaut.png"]
    sheet, problems = summary_sheet(model, paths, det, marker, columns=2)
    assert len(problems) == 1 and "gone.png" in problems[0]
    cell = TILE + 14  # each tile has a caption line
    assert sheet is not None and sheet.shape == (len(SUMMARY_ROWS) * cell, 2 * TILE, 3)
    face = faces_or_raise(photo, det, marker, face_options(SIZE, "largest"), "photo")[0][0]
    res = translate_crops(model, [face.crop], [face.points])[0]
    expected = [face.crop, res.warped, res.anime, paste_faces(photo, [res.anime], [face.affine]).image]
    for row, image in enumerate(expected):  # square tiles are plain INTER_AREA resizes (+-1 for rounding)
        tile = sheet[row * cell : row * cell + TILE, :TILE].astype(int)
        want = cv2.resize(image, (TILE, TILE), interpolation=cv2.INTER_AREA).astype(int)
        assert np.abs(tile - want).max() <= 1, SUMMARY_ROWS[row]
    assert summary_sheet(model, paths[:1], det, marker)[0] is None


def test_export_errors_name_the_file(trained: dict[str, Any], tmp_path: Path) -> None:
    model = trained["done"].model
    with pytest.raises(ExportError, match="no such model file"):
        load_translator(tmp_path / "none.safetensors")
    copy = tmp_path / "m.safetensors"
    copy.write_bytes(model.read_bytes()[:1000])
    with pytest.raises(ExportError, match=".json: missing"):
        load_translator(copy)
    (tmp_path / "m.json").write_text(model.with_suffix(".json").read_text())
    with pytest.raises(ExportError, match="unreadable safetensors"):
        load_translator(copy)
    config = json.loads(model.with_suffix(".json").read_text())
    config["model"]["psn_channels"] = 16
    copy.write_bytes(model.read_bytes())
    (tmp_path / "m.json").write_text(json.dumps(config))
    with pytest.raises(ExportError, match="weights do not match the config"):
        load_translator(copy)


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(
    world: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    exp = experiment_from_dict(
        _manifest(
            world["shards"],
            plan="coser",
            aux={"detector_steps": 0, "classifier_steps": 0},
            stage1={"ldn_only": 0, "psn_only": 0},
            checkpoint_every=1,
            sample_every=0,
        )
    )
    real = steps_mod.generator_loss
    calls = {"n": 0}

    def poisoned(*args: Any) -> Any:
        total, terms = real(*args)
        calls["n"] += 1
        if calls["n"] == 3:
            terms = {**terms, "psn_total": total * float("nan")}
        return total, terms

    monkeypatch.setattr(steps_mod, "generator_loss", poisoned)
    with pytest.raises(
        NonFiniteLossError, match=r"stage 1 step 2 \(joint\): non-finite loss \(psn_total=nan\)"
    ):
        Trainer(exp, tmp_path, init_runtime("cpu")).run("all")
    state = ckpt.load_checkpoint(ckpt.last_checkpoint(tmp_path))
    assert (state["stage"], state["step"]) == ("1", 2)
    assert all(torch.isfinite(v).all() for v in state["networks"].values() if v.is_floating_point())


def _write_yaml(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(data))
    return path


def _wait_for_step(path: Path, above: int, proc: subprocess.Popen, timeout: float = 120.0) -> int:
    """Poll a checkpoint until its step exceeds ``above`` (atomic renames make every read consistent)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()[1]
        if path.is_file():
            step = ckpt.load_checkpoint(path)["step"]
            if step > above:
                return step
        time.sleep(0.2)
    raise AssertionError(f"{path} did not pass step {above} in {timeout} s")


@pytest.mark.slow
def test_sigkill_leaves_a_loadable_checkpoint_and_sigint_checkpoints_and_exits(
    world: dict[str, Path], tmp_path: Path
) -> None:
    manifest = _write_yaml(
        tmp_path / "m.yaml",
        _manifest(
            world["shards"],
            plan="coser",
            aux={"detector_steps": 0, "classifier_steps": 0},
            schedule={"iterations": [10_000, 0, 0], "batch_size": 1},
            checkpoint_every=1,
            sample_every=0,
            stage1={"ldn_only": 0.5, "psn_only": 0},
        ),
    )
    run = tmp_path / "run"
    last = ckpt.last_checkpoint(run)
    cmd = [
        *PDA_TRAIN,
        "run",
        "-m",
        str(manifest),
        "-o",
        str(run),
        "--device",
        "cpu",
        "--threads",
        "1",
        "--no-tensorboard",
    ]
    env = {**os.environ, "COLUMNS": "200"}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        killed_after = _wait_for_step(last, 2, proc)
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        proc.kill()
    state = ckpt.load_checkpoint(last)  # whatever instant the kill hit, the last rename is a whole file
    assert state["stage"] == "1" and state["step"] >= killed_after
    proc = subprocess.Popen(
        [*cmd, "--resume"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    try:
        _wait_for_step(last, state["step"] + 1, proc)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert "resuming from" in err and "stopped by signal SIGINT" in err and "Traceback" not in err
    assert "interrupted" in out
    final = ckpt.load_checkpoint(last)
    assert final["step"] > state["step"] and not final["complete"]
    steps = [r["step"] for r in read_metrics(run)]
    assert steps == sorted(set(steps))  # records logged after the killed run's checkpoint were dropped


@pytest.mark.slow
def test_ddp_two_gloo_ranks_end_with_identical_parameters(world: dict[str, Path], tmp_path: Path) -> None:
    proc = run_torchrun(TESTS / "ddp_train_worker.py", str(world["shards"]), str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    assert r0["status"] == r1["status"] == "done"
    assert (r0["stage"], r0["step"]) == (r1["stage"], r1["step"]) == ("3", 1)  # the coser plan's last stage
    assert torch.equal(r0["initial"], r1["initial"])
    assert not torch.equal(r0["initial"], r0["final"])  # training moved the weights
    assert torch.equal(r0["final"], r1["final"])  # ... identically on both ranks
    assert ckpt.load_checkpoint(ckpt.stage_checkpoint(tmp_path / "run", "1"))["world_size"] == 2


# --- units ---------------------------------------------------------------------------------------------


def test_checkpoints_are_atomic_and_loaded_safely(tmp_path: Path) -> None:
    path = tmp_path / "c.pt"
    ckpt.save_checkpoint(path, {"step": 1, "w": torch.ones(3)})
    with pytest.raises(Exception):  # noqa: B017  (pickling a lambda fails inside torch.save)
        ckpt.save_checkpoint(path, {"step": 2, "bad": lambda: 0})
    assert ckpt.load_checkpoint(path)["step"] == 1  # the failed save left the good file in place
    assert list(tmp_path.iterdir()) == [path]  # and no temporary file behind
    path.write_bytes(path.read_bytes()[:50])
    with pytest.raises(ckpt.CheckpointError, match="c.pt: unreadable checkpoint"):
        ckpt.load_checkpoint(path)

    class Evil:
        def __reduce__(self) -> tuple:
            return (os.system, ("echo pwned",))

    torch.save({"format_version": 1, "x": Evil()}, path)
    with pytest.raises(ckpt.CheckpointError, match="unreadable checkpoint"):
        ckpt.load_checkpoint(path)  # weights_only refuses to build arbitrary objects
    torch.save({"step": 1}, path)
    with pytest.raises(ckpt.CheckpointError, match="not a PDA training checkpoint"):
        ckpt.load_checkpoint(path)


def test_rng_states_round_trip_through_a_checkpoint(tmp_path: Path) -> None:
    gen = np.random.default_rng(5)
    state = ckpt.capture_rng(gen)
    expected = (torch.rand(3), np.random.rand(), gen.random())
    ckpt.save_checkpoint(tmp_path / "r.pt", {"rng": state})
    other = np.random.default_rng(99)
    ckpt.restore_rng(ckpt.load_checkpoint(tmp_path / "r.pt")["rng"], other)
    got = (torch.rand(3), np.random.rand(), other.random())
    assert torch.equal(expected[0], got[0]) and expected[1:] == got[1:]


def test_runtime_guards() -> None:
    assert select_device("cpu").type == "cpu"
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="no CUDA device"):
            select_device("cuda")
    with pytest.raises(ValueError, match="unknown amp mode"):
        init_runtime("cpu", "fp8")
    with pytest.raises(ValueError, match="unknown compile backend 'nope'"):
        init_runtime("cpu", compile=True, compile_backend="nope")
    check_finite({"a": torch.tensor(1.0)}, "here")
    with pytest.raises(NonFiniteLossError, match=r"here: non-finite loss \(b=inf\)"):
        check_finite({"a": torch.tensor(1.0), "b": torch.tensor(float("inf"))}, "here")
    before = signal.getsignal(signal.SIGINT)  # Python's default, or SIG_IGN when started in the background
    with InterruptGuard() as guard:
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.05)
        assert guard.requested and guard.signal_name == "SIGINT"
    assert signal.getsignal(signal.SIGINT) is before  # the guard restores what it found


def test_bf16_autocast_step_on_cpu(world: dict[str, Path], tmp_path: Path) -> None:
    exp: Experiment = experiment_from_dict(
        _manifest(
            world["shards"],
            plan="coser",
            aux={"detector_steps": 0, "classifier_steps": 0},
            schedule={"iterations": [2, 0, 0], "batch_size": 2},
            stage1={"ldn_only": 0, "psn_only": 0},
            sample_every=0,
            checkpoint_every=0,
        )
    )
    result = Trainer(exp, tmp_path, init_runtime("cpu", "bf16"), tensorboard=False).run("all")
    assert result.status == "done"
    losses = [
        v for r in read_metrics(tmp_path) if r["stage"] == "1" for k, v in r.items() if k.startswith("loss/")
    ]
    assert losses and all(np.isfinite(losses))


def test_translate_and_evaluate_commands(
    trained: dict[str, Any], world: dict[str, Path], tmp_path: Path, wide_console: None
) -> None:
    runner = CliRunner(env={"COLUMNS": "200"})  # consoles created during a command read it
    model = str(trained["done"].model)
    save_image(tmp_path / "in" / "astronaut.png", skimage.data.astronaut())
    (tmp_path / "in" / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    out = tmp_path / "out"
    res = runner.invoke(
        app,
        [
            "translate",
            str(tmp_path / "in"),
            "--model",
            model,
            "--out",
            str(out),
            "--paste-back",
            "--device",
            "cpu",
        ],
    )
    assert res.exit_code == 0, res.output
    assert "1 of 2 photo(s) translated" in res.output
    # Her face and, with the default --faces all, the face-like patch dlib finds on her suit (it passes the
    # frontal filter: yaw -29, pitch -24 degrees).
    assert {p.name for p in out.iterdir()} == {
        "astronaut_face0.png", "astronaut_face1.png", "astronaut_pasted.png", "sheet.png"
    }
    res = runner.invoke(
        app,
        [
            "translate",
            str(tmp_path / "in" / "broken.jpg"),
            "--model",
            model,
            "--out",
            str(out),
            "--device",
            "cpu",
        ],
    )
    assert res.exit_code == 1  # nothing translated
    n_test = read_index(world["shards"])["roles"]["human"]["splits"]["test"]["samples"]
    # No --portraits: the run's shards (experiment.yaml beside the model), human test split.
    res = runner.invoke(app, ["evaluate", "--model", model, "--out", str(tmp_path / "eval"), "--device",
                              "cpu"])
    assert res.exit_code == 0, res.output
    assert "Hue-HistD" in res.output and "Human vs Anime" in res.output and "domain score: " in res.output
    # The test world's portraits name no real source photo: no summary, and the reason.
    assert "summary: no source photo with a face: astronaut#" in res.output
    assert f"scoring {n_test} face(s) of {world['shards']} (shards, split test: {n_test} test)" in res.output
    assert json.loads((tmp_path / "eval" / "report.json").read_text())["count"] == n_test
    # The packed folder with --split all mixes train faces in, and says so.
    res = runner.invoke(app, ["evaluate", "--model", model, "--portraits", str(world["humans"]), "--split",
                              "all", "--out", str(tmp_path / "eval2"), "--device", "cpu"])
    assert res.exit_code == 0, res.output
    assert f"warning: {10 - n_test} of these faces are in the train split" in res.output
    bad = tmp_path / "bad.yaml"
    bad.write_text("data: {shards: x}\nplan: sideways\n")
    res = runner.invoke(app, ["run", "-m", str(bad), "-o", str(tmp_path / "r")])
    assert res.exit_code == 2 and "plan: 'sideways' is not one of" in res.output


def test_missing_roles_fail_before_any_training(world: dict[str, Path], tmp_path: Path) -> None:
    roles = {r: world[r] for r in ("coser", "anime", "structure", "highlight")}  # no human portraits
    pack(tmp_path / "shards", roles, test_fraction=0.3, shard_size=3)
    exp = experiment_from_dict(_manifest(tmp_path / "shards"))
    with pytest.raises(ShardError, match="no 'human' shards"):
        Trainer(exp, tmp_path / "run", init_runtime("cpu")).run("all")  # stage 2 needs them: fail at once
    assert not (tmp_path / "run" / "checkpoints").exists()
