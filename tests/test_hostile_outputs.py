"""Hostile outputs: two runs on one folder, stale locks, full disks, unwritable or invalid --out, temp files
of killed writers, and weight files that are pickles. Every failure ends in one line naming the path and the
reason, and nothing already written is lost."""

from __future__ import annotations

import errno
import io
import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import skimage.data
import torch
import yaml
from conftest import REPO, lpips_state_dict
from safetensors.torch import save_file
from shard_world import anime_annotations, portrait_folder
from typer.testing import CliRunner

import pda_data.curation.run as run_mod
from pda_data.cli import app as data_app
from pda_data.curation.options import HUMAN_DEFAULTS
from pda_data.curation.run import ChunkWriter, load_progress, progress_chunks, run_curation
from pda_data.curation.table import read_portraits
from pda_data.io.files import remove_stale_temps
from pda_data.io.images import encode_image, load_image, save_image
from pda_data.io.lock import LOCK_NAME, LockError, folder_lock
from pda_data.shards.pack import pack
from pda_data.synthesis.table import read_synth
from pda_train.cli import app as train_app
from pda_train.inference import metrics
from pda_train.training import checkpoint as ckpt
from pda_train.training import tracking
from pda_train.training.tracking import Tracker, read_metrics

ENOSPC = os.strerror(errno.ENOSPC)  # "No space left on device"
FIXTURES = Path(__file__).parent / "fixtures"
SUBPROCESS_ENV = {**os.environ, "PYTHONPATH": str(REPO)}
# A process that takes a folder's lock and holds it until its stdin closes.
HOLDER = """import sys
from pda_data.io.lock import folder_lock
with folder_lock(sys.argv[1], "pda-data crop-cosers"):
    print("held", flush=True)
    sys.stdin.read()
"""
# A writer that is killed between its temp write and the rename.
WRITER = """import sys
from pda_data.io.files import atomic_path
with atomic_path(sys.argv[1]) as tmp:
    tmp.write_bytes(b"half a file")
    print(tmp, flush=True)
    sys.stdin.read()
"""


def _clean(result: Any) -> str:
    assert "Traceback" not in result.output, result.output
    return result.output


def _error_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("error:")]


def _dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _holding(script: str, *args: str) -> subprocess.Popen:
    """Start ``script``; return once it printed its first line (it then waits for its stdin to close)."""
    proc = subprocess.Popen([sys.executable, "-c", script, *args], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, env=SUBPROCESS_ENV)
    assert proc.stdout is not None and proc.stdout.readline().strip(), "the helper process did not start"
    return proc


def _deny_writes(monkeypatch: pytest.MonkeyPatch, folder: Path) -> None:
    """``folder`` behaves as read-only even for root (who ignores chmod): nothing can be created in it."""
    real_open, real_mkdir, real_replace = os.open, os.mkdir, os.replace

    def inside(path: Any) -> bool:
        return Path(os.path.abspath(os.fsdecode(path))).parent == folder

    def denied(path: Any) -> PermissionError:
        return PermissionError(errno.EACCES, os.strerror(errno.EACCES), os.fsdecode(path))

    def fake_open(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        if flags & os.O_CREAT and inside(path) and not os.path.exists(path):
            raise denied(path)
        return real_open(path, flags, *args, **kwargs)

    def fake_mkdir(path: Any, *args: Any, **kwargs: Any) -> None:
        if inside(path) and not os.path.exists(path):
            raise denied(path)
        real_mkdir(path, *args, **kwargs)

    def fake_replace(src: Any, dst: Any, *args: Any, **kwargs: Any) -> None:
        if inside(dst):
            raise denied(src)
        real_replace(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "open", fake_open)
    monkeypatch.setattr(os, "mkdir", fake_mkdir)
    monkeypatch.setattr(os, "replace", fake_replace)


def _full_after(monkeypatch: pytest.MonkeyPatch, folder: Path, renames: int) -> None:
    """The disk of ``folder`` fills up after ``renames`` more files were committed there: every later write
    (crop, chunk, manifest, checkpoint) fails with ENOSPC."""
    real_replace = os.replace
    done = {"n": 0}

    def fake_replace(src: Any, dst: Any, *args: Any, **kwargs: Any) -> None:
        if Path(os.fsdecode(dst)).is_relative_to(folder):
            if done["n"] >= renames:
                raise OSError(errno.ENOSPC, ENOSPC, os.fsdecode(src))
            done["n"] += 1
        real_replace(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", fake_replace)


def _temps(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob(".*.tmp"))


# --- inputs -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def raw(samples_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three photos with a face each, an empty file and a text file named .jpg."""
    root = tmp_path_factory.mktemp("raw")
    for name, sample, (x, y) in (("a_selfie.png", "selfie_female_222.jpg", (300, 120)),
                                 ("b_selfie.png", "selfie_female_2321.jpg", (60, 150))):
        canvas = np.full((480, 640, 3), (90, 100, 110), np.uint8)
        face = load_image(samples_dir / sample)
        canvas[y : y + face.shape[0], x : x + face.shape[1]] = face
        save_image(root / name, canvas)
    (root / "c_astronaut.png").write_bytes(encode_image(skimage.data.astronaut()))
    (root / "d_empty.jpg").write_bytes(b"")
    (root / "e_text.jpg").write_text("not a picture")
    return root


@pytest.fixture(scope="module")
def full_run(raw: Path, tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    """The manifest of one undisturbed run over ``raw``: what every disturbed run must end with."""
    out = tmp_path_factory.mktemp("full")
    run_curation([raw], out, HUMAN_DEFAULTS, sheets=False)
    df = read_portraits(out)
    assert (df["status"] == "kept").sum() == 3 and len(df) == 5
    return df


def _crop(raw: Path, out: Path, *extra: str) -> Any:
    return CliRunner().invoke(data_app, ["crop-humans", str(raw), "--out", str(out), "--no-sheets", *extra])


# --- one run per folder -------------------------------------------------------------------------------


def test_a_second_crop_run_on_a_held_folder_exits_2_at_once_naming_the_holder(
    raw: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    with folder_lock(out, "pda-data crop-cosers"):
        result = _crop(raw, out)
        assert result.exit_code == 2, result.output
        (line,) = _error_lines(_clean(result))
        assert line.startswith(f"error: {out} is in use by pda-data crop-cosers (pid {os.getpid()} on host "
                               f"{socket.gethostname()} since ")
        assert line.endswith(f"); wait for it or remove {out / LOCK_NAME} if that process is gone")
        assert sorted(p.name for p in out.iterdir()) == [LOCK_NAME]  # the second run wrote nothing
    assert not (out / LOCK_NAME).exists()  # released when the holder's block ends


def test_a_lock_held_by_another_process_stops_the_library_too(raw: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    with _holding(HOLDER, str(out)) as holder:  # leaving the block closes its stdin: it lets go and exits
        with pytest.raises(LockError, match=rf"in use by pda-data crop-cosers \(pid {holder.pid} on host"):
            run_curation([raw], out, HUMAN_DEFAULTS)
        assert json.loads((out / LOCK_NAME).read_text())["pid"] == holder.pid
    assert holder.returncode == 0 and not (out / LOCK_NAME).exists()


def test_a_stale_lock_of_a_dead_process_is_taken_over_with_a_warning(
    raw: Path, full_run: pd.DataFrame, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    dead = _dead_pid()
    host = socket.gethostname()
    (out / LOCK_NAME).write_text(json.dumps(
        {"pid": dead, "host": host, "command": "pda-data crop-humans", "started": "2020-01-01 00:00:00"}))
    result = _crop(raw, out)
    assert result.exit_code == 0, result.output
    assert (f"warning: {out}: taking over the lock of pda-data crop-humans (pid {dead} on host {host} since "
            "2020-01-01 00:00:00): that process is gone") in _clean(result)
    pd.testing.assert_frame_equal(read_portraits(out), full_run)  # the whole manifest, as an undisturbed run
    assert not (out / LOCK_NAME).exists()


def test_a_lock_of_another_host_is_never_taken_over(tmp_path: Path) -> None:
    (tmp_path / LOCK_NAME).write_text(json.dumps(
        {"pid": _dead_pid(), "host": "elsewhere", "command": "pda-train run", "started": "then"}))
    holder = r"in use by pda-train run \(pid \d+ on host elsewhere since then\)"
    with pytest.raises(LockError, match=holder), folder_lock(tmp_path):
        pass
    (tmp_path / LOCK_NAME).write_text("{half")  # unreadable: someone holds it, or it is left over
    with pytest.raises(LockError, match="is unreadable"), folder_lock(tmp_path):
        pass


def test_a_lock_naming_this_pid_without_its_flock_is_a_reused_pid(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """E.g. every container run is pid 1: the killed run's lock names the pid of the run now starting."""
    record = {"pid": os.getpid(), "host": socket.gethostname(), "command": "pda-data pack", "started": "then"}
    (tmp_path / LOCK_NAME).write_text(json.dumps(record))
    with folder_lock(tmp_path, "pda-data pack --out x"):
        assert json.loads((tmp_path / LOCK_NAME).read_text())["command"] == "pda-data pack --out x"
    warning = f"warning: {tmp_path}: taking over the lock of pda-data pack (pid {os.getpid()} on host "
    assert warning in capsys.readouterr().err
    assert not (tmp_path / LOCK_NAME).exists()


# --- chunks -------------------------------------------------------------------------------------------


def _row(key: str) -> dict[str, Any]:
    return {"key": key, "source": f"/in/{key}.png", "status": "rejected", "reason": "no_face"}


def test_chunk_writers_never_collide_and_consolidation_deletes_only_what_it_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = ChunkWriter(tmp_path), ChunkWriter(tmp_path)
    written = [a.write([_row("a0")]), b.write([_row("b0")]), a.write([_row("a1")]), b.write([_row("b1")])]
    assert len({p.name for p in written if p is not None}) == 4 and a.write([]) is None
    names = [p.name for p in progress_chunks(tmp_path)]
    assert names.index(written[0].name) < names.index(written[2].name)  # a run's chunks sort in its order
    assert set(load_progress(tmp_path)["key"]) == {"a0", "a1", "b0", "b1"}

    real = run_mod.write_portraits
    late: list[Path | None] = []

    def manifest_then_a_late_chunk(df: pd.DataFrame, path: Path) -> None:
        real(df, path)
        if path.name == "manifest.parquet":  # another writer's chunk lands after the chunks were read
            late.append(b.write([_row("b2")]))

    monkeypatch.setattr(run_mod, "write_portraits", manifest_then_a_late_chunk)
    run_mod._consolidate(tmp_path)
    monkeypatch.undo()
    assert [p.name for p in progress_chunks(tmp_path)] == [late[0].name]  # not deleted: it was not read
    assert set(read_portraits(tmp_path)["key"]) == {"a0", "a1", "b0", "b1"}
    assert set(load_progress(tmp_path)["key"]) == {"a0", "a1", "b0", "b1", "b2"}


# --- full disk ----------------------------------------------------------------------------------------


def test_disk_full_on_a_crop_keeps_the_finished_rows_and_the_rerun_completes(
    raw: Path, full_run: pd.DataFrame, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out"
    real = Path.write_bytes
    crops = {"n": 0}

    def one_crop_fits(self: Path, data: bytes) -> int:
        if self.parent == out / "images":
            crops["n"] += 1
            if crops["n"] > 1:
                raise OSError(errno.ENOSPC, ENOSPC)  # as a real write: no file name in the error
        return real(self, data)

    monkeypatch.setattr(Path, "write_bytes", one_crop_fits)
    result = _crop(raw, out)
    monkeypatch.undo()
    assert result.exit_code == 1, result.output
    (line,) = _error_lines(_clean(result))
    assert re.fullmatch(rf"error: {re.escape(str(out / 'images'))}/[0-9a-f]{{16}}-00\.png: {ENOSPC}", line)
    saved = read_portraits(out)
    assert list(saved["source"]) == [str(raw / "a_selfie.png")] and saved["status"][0] == "kept"
    assert not _temps(out) and not (out / LOCK_NAME).exists()
    summary = run_curation([raw], out, HUMAN_DEFAULTS, sheets=False)
    assert summary.processed == 4
    pd.testing.assert_frame_equal(read_portraits(out), full_run)


def test_disk_full_for_every_write_keeps_the_flushed_chunks_for_the_rerun(
    raw: Path, full_run: pd.DataFrame, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out"
    _full_after(monkeypatch, out, renames=2)  # the first crop and its chunk; then nothing fits
    with pytest.raises(OSError, match=ENOSPC) as caught:
        run_curation([raw], out, HUMAN_DEFAULTS, flush_every=1, sheets=False)
    monkeypatch.undo()
    assert Path(caught.value.filename).parent == out / "images"  # the crop that did not fit, by name
    assert not (out / "manifest.parquet").exists()  # no manifest could be written: the chunk is kept
    (chunk,) = progress_chunks(out)
    assert list(read_portraits(chunk)["source"]) == [str(raw / "a_selfie.png")]
    assert not _temps(out)
    assert run_curation([raw], out, HUMAN_DEFAULTS, sheets=False).processed == 4
    pd.testing.assert_frame_equal(read_portraits(out), full_run)
    assert progress_chunks(out) == []


def test_disk_full_in_synthesis_keeps_the_samples_made_for_the_rerun(
    anime_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "synth"
    args = ["synth-structure", "--anime", str(anime_file), "--out", str(out), "--n", "4", "--sheet-rows", "0"]
    real = Path.write_bytes
    images = {"n": 0}

    def two_images_fit(self: Path, data: bytes) -> int:
        if self.parent == out / "images":
            images["n"] += 1
            if images["n"] > 2:
                raise OSError(errno.ENOSPC, ENOSPC)
        return real(self, data)

    monkeypatch.setattr(Path, "write_bytes", two_images_fit)
    result = CliRunner().invoke(data_app, args)
    monkeypatch.undo()
    assert result.exit_code == 1, result.output
    (line,) = _error_lines(_clean(result))
    assert re.fullmatch(rf"error: {re.escape(str(out / 'images'))}/\S+\.png: {ENOSPC}", line)
    saved = read_synth("structure", out)  # written when the error stopped the run
    kept = int((saved["status"] == "kept").sum())
    assert kept == 2 and all((out / image).is_file() for image in saved["image"][saved["status"] == "kept"])
    result = CliRunner().invoke(data_app, args)
    assert result.exit_code == 0, result.output
    assert re.search(r"reused from an earlier run\D+2\b", _clean(result))
    assert len(read_synth("structure", out)) == 4 and not _temps(out)


# --- unwritable or invalid --out ----------------------------------------------------------------------

KINDS = ("file", "under_file", "read_only", "read_only_as_root")


def _bad_out(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str | None
) -> tuple[Path, str]:
    """An --out of ``kind`` (``name``: the file to write inside a folder, None when --out is the folder)
    and the one error line the command must print."""
    blocker = tmp_path / "a_file"
    blocker.write_text("in the way")
    if kind == "file":  # a file given where the folder goes (for a file output: a folder where it goes)
        if name is None:
            return blocker, f"error: {blocker}: Not a directory (a file is in the way)"
        (tmp_path / name).mkdir()
        return tmp_path / name, f"error: {tmp_path / name}: Is a directory"
    if kind == "under_file":
        if name is None:
            return blocker / "out", f"error: {blocker / 'out'}: Not a directory ({blocker} is a file)"
        return blocker / name, f"error: {blocker}: Not a directory (a file is in the way)"
    folder = tmp_path / "read_only"
    folder.mkdir()
    if kind == "read_only":
        folder.chmod(0o555)
        try:
            (folder / "probe").touch()
        except PermissionError:
            pass
        else:
            pytest.skip("root ignores folder permissions (the read_only_as_root case covers it)")
    else:
        _deny_writes(monkeypatch, folder)
    target = folder if name is None else folder / name
    return target, f"error: {target}: {os.strerror(errno.EACCES)}"


@pytest.fixture
def humans(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return portrait_folder(tmp_path_factory.mktemp("humans") / "h", 2, prefix="human", size=64)


@pytest.fixture(scope="module")
def anime_images(samples_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The image folder of the hand-annotated CSV fixture."""
    root = tmp_path_factory.mktemp("anime_images")
    (root / "anime_0006.png").write_bytes((samples_dir / "anime_0006.png").read_bytes())
    return root


def _tiny_manifest(path: Path, shards: Path, **overrides: Any) -> Path:
    data = {"name": "hostile", "preset": "tiny", "seed": 1, "plan": "coser", "data": {"shards": str(shards)},
            "schedule": {"iterations": [5, 1, 1], "batch_size": 2},
            "aux": {"detector_steps": 0, "classifier_steps": 0},
            "stage1": {"ldn_only": 0, "psn_only": 0}, "log_every": 1, "sample_every": 0,
            "checkpoint_every": 1, **overrides}
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture(scope="module")
def anime_file(samples_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small anime annotation file (what synth-structure reads)."""
    return anime_annotations(tmp_path_factory.mktemp("anime"), samples_dir, 2, size=64)


def _command_line(command: str, out: Path, inputs: dict[str, Path]) -> tuple[Any, list[str]]:
    """The app and arguments of ``command`` writing to ``out``, with small valid inputs."""
    if command == "crop":
        return data_app, ["crop-humans", str(inputs["raw"] / "e_text.jpg"), "--out", str(out)]
    if command == "merge":
        return data_app, ["merge-manifests", str(inputs["humans"]), "--out", str(out)]
    if command == "synth":
        return data_app, ["synth-structure", "--anime", str(inputs["anime_file"]), "--out", str(out)]
    if command == "pack":
        return data_app, ["pack", "--out", str(out), "--humans", str(inputs["humans"])]
    if command == "landmarks import":
        return data_app, ["landmarks", "import", str(FIXTURES / "anime_0006_landmarks.csv"), "--images",
                          str(inputs["anime"]), "--out", str(out)]
    manifest = _tiny_manifest(inputs["tmp"] / "m.yaml", inputs["tmp"] / "shards")
    return train_app, ["run", "-m", str(manifest), "-o", str(out), "--device", "cpu", "--no-tensorboard"]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("command", ["crop", "merge", "synth", "pack", "landmarks import", "pda-train run"])
def test_an_unwritable_or_invalid_out_ends_in_one_line_naming_it(
    command: str, kind: str, raw: Path, humans: Path, anime_images: Path, anime_file: Path, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    out, expected = _bad_out(kind, tmp_path, monkeypatch, "anime.parquet" if command == "landmarks import"
                             else None)
    app, args = _command_line(command, out, {"raw": raw, "humans": humans, "anime": anime_images,
                                             "anime_file": anime_file, "tmp": tmp_path})
    result = CliRunner().invoke(app, args)
    monkeypatch.undo()
    assert result.exit_code == 1, result.output
    assert _error_lines(_clean(result)) == [expected]


# --- temp files of killed writers ---------------------------------------------------------------------


def test_temp_files_of_killed_writers_are_removed_by_the_next_run(
    raw: Path, humans: Path, tmp_path: Path
) -> None:
    crop_out, shards = tmp_path / "crop", tmp_path / "shards"
    left = []
    for target in (crop_out / "images" / "0123456789abcdef-00.png", shards / "human" / "train" / "x.tar"):
        with _holding(WRITER, str(target)) as writer:
            writer.kill()
        (temp,) = _temps(target.parent)
        assert temp.name.startswith(f".{target.name}.{writer.pid}.") and temp.read_bytes() == b"half a file"
        left.append(temp)
    run_curation([raw / "e_text.jpg"], crop_out, HUMAN_DEFAULTS, sheets=False)
    pack(shards, {"human": humans})
    assert not any(p.exists() for p in left)
    assert _temps(crop_out) == [] and _temps(shards) == []


def test_remove_stale_temps_keeps_the_files_of_live_writers(tmp_path: Path) -> None:
    waiting = [sys.executable, "-c", "import sys; sys.stdin.read()"]
    with subprocess.Popen(waiting, stdin=subprocess.PIPE) as live:
        names = {
            "dead": f".a.png.{_dead_pid()}.k3j2h1g0.tmp",
            "old style": ".coser-train-000000.tar.x1.tmp",
            "this process": f".b.png.{os.getpid()}.abcdefgh.tmp",  # none in flight while the lock is held
            "live": f".c.png.{live.pid}.abcdefgh.tmp",  # e.g. a command writing a subfolder of this one
        }
        for name in names.values():
            (tmp_path / "sub" / name).parent.mkdir(exist_ok=True)
            (tmp_path / "sub" / name).write_bytes(b"")
        others = [tmp_path / "not-hidden.png.123.abcdefgh.tmp", tmp_path / ".notes.tmp"]  # not atomic_path's
        for path in others:
            path.write_bytes(b"")
        assert remove_stale_temps(tmp_path) == 3
        assert sorted(p.name for p in (tmp_path / "sub").iterdir()) == [names["live"]]
        assert all(path.exists() for path in others)


# --- training outputs ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def coser_shards(tmp_path_factory: pytest.TempPathFactory, samples_dir: Path) -> Path:
    root = tmp_path_factory.mktemp("world")
    sources = {"coser": portrait_folder(root / "cosers", 6, prefix="coser", size=64),
               "anime": anime_annotations(root / "anime", samples_dir, 6, size=64)}
    pack(root / "shards", sources, test_fraction=0.3, shard_size=3)
    return root / "shards"


def test_disk_full_on_a_checkpoint_stops_the_run_and_keeps_the_last_one(
    coser_shards: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    threads = torch.get_num_threads()
    run = tmp_path / "run"
    manifest = _tiny_manifest(tmp_path / "m.yaml", coser_shards)
    args = ["run", "-m", str(manifest), "-o", str(run), "--device", "cpu", "--threads", "1",
            "--no-tensorboard"]
    real_save = ckpt.save_checkpoint

    def disk_full_at_step_3(path: Path, state: dict[str, Any]) -> None:
        if (state["stage"], state["step"]) == ("1", 3):
            _full_after(monkeypatch, run, renames=0)
        real_save(path, state)

    monkeypatch.setattr(ckpt, "save_checkpoint", disk_full_at_step_3)
    try:
        result = CliRunner().invoke(train_app, args)
        monkeypatch.undo()
        assert result.exit_code == 1, result.output
        assert _error_lines(_clean(result)) == [f"error: {run / 'checkpoints' / 'last.pt'}: {ENOSPC}"]
        assert ckpt.load_checkpoint(ckpt.last_checkpoint(run))["step"] == 2  # the last good one, whole
        assert not _temps(run) and not (run / LOCK_NAME).exists()
        result = CliRunner().invoke(train_app, [*args, "--resume"])
    finally:
        torch.set_num_threads(threads)
    assert result.exit_code == 0, result.output
    assert (run / "final.safetensors").is_file()
    steps = [(r["stage"], r["step"]) for r in read_metrics(run)]
    assert steps == [("1", k) for k in range(1, 6)] + [("2", 1), ("3", 1)]  # each step logged once


def test_a_metrics_record_is_appended_whole_or_not_at_all(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tracker = Tracker(tmp_path, tensorboard=False)
    tracker.log("1", 1, {"loss/x": 1.0})

    class AlmostFull(io.FileIO):
        def write(self, data: Any) -> int:  # a few bytes fit, then the disk is full
            if len(data) > 8:
                return super().write(bytes(data[:8]))
            raise OSError(errno.ENOSPC, ENOSPC)

    monkeypatch.setattr(tracking, "open", lambda path, mode, buffering=-1: AlmostFull(path, mode),
                        raising=False)
    with pytest.raises(OSError, match=ENOSPC) as caught:
        tracker.log("1", 2, {"loss/x": 2.0})
    monkeypatch.undo()
    assert caught.value.filename == str(tracker.metrics_path)
    assert [r["step"] for r in read_metrics(tmp_path)] == [1]  # no half line left behind


# --- LPIPS weights ------------------------------------------------------------------------------------


class _Payload:
    """A pickle that runs code when loaded without ``weights_only``: it would create a file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (self.marker,))


def test_lpips_weights_that_are_a_pickle_or_garbage_are_refused_in_one_line(tmp_path: Path) -> None:
    marker = tmp_path / "code-ran"
    files = {"pickle": tmp_path / "evil.pt", "garbage": tmp_path / "junk.bin"}
    torch.save({"features.0.weight": _Payload(marker)}, files["pickle"])
    files["garbage"].write_bytes(b"\x00\x01 not weights at all" * 10)
    for path in files.values():
        result = CliRunner().invoke(train_app, [
            "evaluate", "--model", str(tmp_path / "none.safetensors"), "--portraits", str(tmp_path),
            "--out", str(tmp_path / "eval"), "--lpips-weights", str(path), "--device", "cpu"])
        assert result.exit_code == 2, result.output
        (line,) = _error_lines(_clean(result))
        assert line.startswith(f"error: {path}: not a safetensors weight file (")
    assert not marker.exists() and not (tmp_path / "eval").exists()
    save_file(lpips_state_dict(metrics.AlexLPIPS()), tmp_path / "alex.safetensors")  # the accepted forms load
    torch.save(lpips_state_dict(metrics.AlexLPIPS()), tmp_path / "alex.pt")
    for name in ("alex.safetensors", "alex.pt"):
        model = metrics.load_lpips(tmp_path / name)
        x = torch.rand(1, 3, 64, 64) * 2 - 1
        with torch.no_grad():
            assert float(model(x, x)[0]) == pytest.approx(0.0, abs=1e-6)
