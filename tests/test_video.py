"""translate-video on a short demo clip of a face that moves and grows: frames and size kept, the
paste-back steady with one-euro smoothing and visibly jittery without it; the tracker and the filter."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from translator_world import tiny_model
from typer.testing import CliRunner

from pda_data.demo.group import moving_face_clip
from pda_data.faces.detectors import make_detector
from pda_data.faces.landmarks import Landmarker
from pda_train.cli import app
from pda_train.inference.export import load_translator
from pda_train.inference.faces import face_options
from pda_train.inference.video import (
    FaceTracker,
    OneEuroFilter,
    Smoothing,
    probe_video,
    read_frames,
    translate_frames,
    write_video,
)

SMOOTH_JITTER_PX = 0.5  # bound on the RMS frame-to-frame acceleration of the paste-back centre
FPS = 25.0


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def clip() -> tuple[list[np.ndarray], np.ndarray]:
    return moving_face_clip(np.random.default_rng(1), frames=24)


def _paste_centres(results: list) -> np.ndarray:
    """Per frame, where the centre of the (one) face crop lands in the frame."""
    centres = []
    for r in results:
        ((_, affine),) = r.faces
        inv = cv2.invertAffineTransform(affine)
        centres.append(inv[:, :2] @ np.full(2, 31.5) + inv[:, 2])
    return np.array(centres)


def _jitter(centres: np.ndarray) -> float:
    """RMS second difference (px): the path is straight and even, so anything but 0 is jitter; the first
    frames are left out while the filter settles."""
    d2 = np.diff(centres[3:], 2, axis=0)
    return float(np.sqrt((d2**2).sum(1).mean()))


def test_smoothing_steadies_the_paste_back(clip: tuple, tmp_path_factory: pytest.TempPathFactory) -> None:
    frames, truth = clip
    model = load_translator(tiny_model(tmp_path_factory.mktemp("m") / "m.safetensors"))
    faces = (make_detector("dlib-hog"), Landmarker(), face_options(64))
    raw = list(translate_frames(model, frames, FPS, *faces, smoothing=None, batch_size=8))
    smooth = list(translate_frames(model, frames, FPS, *faces, smoothing=Smoothing(), batch_size=8))
    assert len(raw) == len(smooth) == len(frames)
    assert all(len(r.faces) == 1 for r in raw + smooth)
    assert {r.faces[0][0] for r in smooth} == {0}  # one track throughout
    assert all(r.image.shape == frames[0].shape for r in smooth)
    raw_c, smooth_c = _paste_centres(raw), _paste_centres(smooth)
    assert _jitter(smooth_c) < SMOOTH_JITTER_PX < _jitter(raw_c)
    assert _jitter(raw_c) > 2 * _jitter(smooth_c)
    # Smoothing follows the motion: the crop stays on the face (the crop centre sits above the landmarks').
    assert np.abs(smooth_c[:, 0] - truth[:, 0]).max() < 6.0


def test_translate_video_command_keeps_frames_size_and_fps(clip: tuple, tmp_path) -> None:
    frames = clip[0][:6]
    source = tmp_path / "in.mp4"
    assert write_video(source, frames, FPS, (320, 240)) == 6
    model = tiny_model(tmp_path / "m.safetensors")
    out = tmp_path / "out.mp4"
    res = CliRunner().invoke(app, ["translate-video", str(source), "--model", str(model), "-o", str(out),
                                   "--device", "cpu", "--batch-size", "4"], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    assert "6 frame(s) at 25 fps, 320x240, 6 face(s) translated" in " ".join(res.output.split())
    info = probe_video(out)
    assert (info.fps, info.size) == (FPS, (320, 240))
    written = list(read_frames(out))
    assert len(written) == 6 and written[0].shape == (240, 320, 3)
    # The face is replaced, the far corner is not (up to the codec's loss).
    diff = np.abs(written[3].astype(int) - frames[3].astype(int)).mean(-1)
    assert diff[150:190, 150:200].mean() > 20 and diff[:20, :20].mean() < 8
    bad = CliRunner().invoke(app, ["translate-video", str(tmp_path / "m.json"), "--model", str(model), "-o",
                                   str(tmp_path / "x.mp4"), "--device", "cpu"])
    assert bad.exit_code == 2 and "not a video OpenCV can read" in bad.output


def test_tracker_keeps_identities_by_overlap_and_filter_converges() -> None:
    pts = np.random.default_rng(0).uniform(0, 50, (68, 2))
    tracker = FaceTracker(FPS, smoothing=None)
    a, b = (0.0, 0.0, 50.0, 50.0), (200.0, 0.0, 250.0, 50.0)
    first = tracker.update([(a, pts), (b, pts + 200)])
    second = tracker.update([((205.0, 2.0, 255.0, 52.0), pts + 205), ((3.0, 1.0, 53.0, 51.0), pts + 3)])
    assert [i for i, _ in first] == [0, 1] and [i for i, _ in second] == [1, 0]
    third = tracker.update([((400.0, 0.0, 450.0, 50.0), pts)])  # no overlap: a new track
    assert [i for i, _ in third] == [2]
    f = OneEuroFilter(FPS, Smoothing())
    still = [f(pts + np.random.default_rng(i).normal(0, 1.0, pts.shape), 50.0) for i in range(60)]
    assert np.abs(still[-1] - pts).mean() < 0.5  # noise of std 1 px held to a fraction of it
