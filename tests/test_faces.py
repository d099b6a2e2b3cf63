"""Face detectors, landmarks and head pose on real portraits."""

from __future__ import annotations

import urllib.error
from pathlib import Path

import cv2
import numpy as np
import pytest
from skimage import data

from pda_data.faces import models
from pda_data.faces.detectors import make_detector
from pda_data.faces.landmarks import Landmarker
from pda_data.faces.models import ModelError, resolve_cascade
from pda_data.faces.pose import head_pose
from pda_data.io.images import load_image
from pda_data.schema import HUMAN68

CANVAS = (480, 640)
OFFSET = (260, 150)  # where a 256x256 sample is pasted (x, y)


def paste(sample: np.ndarray) -> np.ndarray:
    canvas = np.full((*CANVAS, 3), (90, 110, 140), np.uint8)
    x, y = OFFSET
    canvas[y : y + sample.shape[0], x : x + sample.shape[1]] = sample
    return canvas


@pytest.fixture(scope="module")
def landmarker() -> Landmarker:
    return Landmarker()


@pytest.mark.parametrize("name", ["anime_0006.png", "anime_3414.png"])
def test_anime_lbp_finds_anime_faces(samples_dir: Path, cascade_path: Path, name: str) -> None:
    found = make_detector("anime-lbp", cascade_path).detect(paste(load_image(samples_dir / name)))
    assert found, "no anime face found"
    x0, y0, x1, y1 = found[0].box
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    assert OFFSET[0] < cx < OFFSET[0] + 256 and OFFSET[1] < cy < OFFSET[1] + 256  # original-canvas pixels
    assert 80 < x1 - x0 <= 256


@pytest.mark.parametrize("name", ["selfie_female_222.jpg", "selfie_female_2321.jpg"])
def test_dlib_hog_finds_selfies_and_landmarks_land_in_the_box(
    samples_dir: Path, landmarker: Landmarker, name: str
) -> None:
    canvas = paste(load_image(samples_dir / name))
    found = make_detector("dlib-hog").detect(canvas)
    assert len(found) == 1
    det = found[0]
    assert det.score > 0
    points = landmarker.refine(canvas, det.box)
    assert points.shape == (68, 2)
    x0, y0, x1, y1 = det.box
    pad = 0.1 * (x1 - x0)
    inside = (points[:, 0] > x0 - pad) & (points[:, 0] < x1 + pad) & (points[:, 1] > y0 - pad) & (
        points[:, 1] < y1 + pad)
    assert inside.all()
    yaw, pitch, roll = head_pose(points, canvas.shape[1], canvas.shape[0])
    assert abs(yaw) < 15 and abs(pitch) < 15 and abs(roll) < 10


def test_dlib_cnn_finds_a_selfie(samples_dir: Path) -> None:
    found = make_detector("dlib-cnn").detect(load_image(samples_dir / "selfie_female_222.jpg"))
    assert found
    x0, y0, x1, y1 = found[0].box
    assert 60 < (x0 + x1) / 2 < 196 and 60 < (y0 + y1) / 2 < 196


def test_detections_are_sorted_largest_first(samples_dir: Path) -> None:
    selfie = load_image(samples_dir / "selfie_female_222.jpg")
    canvas = np.full((400, 700, 3), 128, np.uint8)
    canvas[20:276, 20:276] = selfie
    small = cv2.resize(selfie, (160, 160), interpolation=cv2.INTER_AREA)
    canvas[200:360, 450:610] = small
    found = make_detector("dlib-hog").detect(canvas)
    assert len(found) == 2
    assert found[0].area > found[1].area and found[0].box[0] < 300


def test_head_pose_follows_rotation_and_mirroring(landmarker: Landmarker) -> None:
    image = data.astronaut()
    h, w = image.shape[:2]
    detector = make_detector("dlib-hog")
    points = landmarker.refine(image, detector.detect(image)[0].box)
    yaw, pitch, roll = head_pose(points, w, h)
    assert abs(yaw) < 15 and abs(pitch) < 15 and abs(roll) < 5
    turned = cv2.warpAffine(image, cv2.getRotationMatrix2D((w / 2, h / 2), 20, 1.0), (w, h))
    turned_points = landmarker.refine(turned, detector.detect(turned)[0].box)
    # A counter-clockwise image rotation gives negative roll.
    assert head_pose(turned_points, w, h)[2] == pytest.approx(roll - 20, abs=4)
    mirrored = HUMAN68.flip(points, w)
    assert head_pose(mirrored, w, h)[0] == pytest.approx(-yaw, abs=2)


def test_resolve_cascade_explicit_env_and_cache(
    cascade_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert resolve_cascade(cascade_path) == cascade_path
    with pytest.raises(ModelError, match="not found"):
        resolve_cascade(tmp_path / "missing.xml")
    monkeypatch.setenv(models.CASCADE_ENV, str(cascade_path))
    assert resolve_cascade() == cascade_path
    monkeypatch.delenv(models.CASCADE_ENV)
    monkeypatch.setenv(models.CACHE_ENV, str(tmp_path))
    (tmp_path / "lbpcascade_animeface.xml").write_bytes(cascade_path.read_bytes())
    assert resolve_cascade() == tmp_path / "lbpcascade_animeface.xml"


def test_resolve_cascade_download_failures(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(models.CASCADE_ENV, raising=False)
    monkeypatch.setenv(models.CACHE_ENV, str(tmp_path))

    def offline(*_args: object, **_kwargs: object) -> None:
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(models.urllib.request, "urlopen", offline)
    with pytest.raises(ModelError) as info:
        resolve_cascade()
    assert models.CASCADE_URL in str(info.value) and "--cascade" in str(info.value)

    class Tampered:
        def __enter__(self) -> Tampered:
            return self

        def __exit__(self, *_exc: object) -> None:
            return None

        def read(self) -> bytes:
            return b"<opencv_storage/>"

    monkeypatch.setattr(models.urllib.request, "urlopen", lambda *_a, **_k: Tampered())
    with pytest.raises(ModelError, match="sha256"):
        resolve_cascade()
    assert not (tmp_path / "lbpcascade_animeface.xml").exists()


def test_unknown_detector() -> None:
    with pytest.raises(ValueError, match="unknown detector"):
        make_detector("yolo")  # type: ignore[arg-type]
