"""The demo world: layout, determinism, real detectability of its faces, exact anime landmarks."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from pda_data.annotations.anime_draw import draw_anime_face
from pda_data.annotations.validate import geometry_problems
from pda_data.cli import app
from pda_data.demo.writer import ANNOTATIONS_NAME, TRUTH_NAME, DemoConfig, write_demo
from pda_data.faces.detectors import make_detector
from pda_data.faces.landmarks import Landmarker
from pda_data.faces.pose import head_pose
from pda_data.io.files import sha256_file
from pda_data.io.images import ImageError, load_image
from pda_data.schema import ANIME56, HUMAN68, unflatten_points


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, cascade_path: Path) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("demo")
    truth = write_demo(out, DemoConfig(seed=3, n_cosers=3, n_humans=2, n_anime=3), cascade=cascade_path)
    return out, truth


def _box_of(points: np.ndarray) -> np.ndarray:
    return np.concatenate([points.min(axis=0), points.max(axis=0)])


def _found(points: np.ndarray, boxes: list[tuple[float, float, float, float]]) -> bool:
    """A detection whose centre lies inside the face's landmark box and whose size is comparable."""
    lo, hi = points.min(axis=0), points.max(axis=0)
    for x0, y0, x1, y1 in boxes:
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        if lo[0] < cx < hi[0] and lo[1] < cy < hi[1] and 0.5 < (x1 - x0) / (hi[0] - lo[0]) < 2.0:
            return True
    return False


def test_layout_and_truth_file(world: tuple[Path, dict]) -> None:
    out, truth = world
    assert json.loads((out / TRUTH_NAME).read_text()) == truth
    assert len(truth["cosers"]) == 3 and len(truth["humans"]) == 2 and len(truth["anime"]) == 3
    for photo in truth["cosers"]:
        rgb = load_image(out / photo["file"])
        assert rgb.shape == (480, 640, 3)
        assert 1 <= len(photo["faces"]) <= 3
    kinds = [f["kind"] for photo in truth["cosers"] for f in photo["faces"]]
    assert "turned" in kinds and "small" in kinds and "frontal" in kinds
    for item in truth["humans"] + truth["anime"]:
        assert load_image(out / item["file"]).shape == (256, 256, 3)
    assert (out / ANNOTATIONS_NAME).read_text().startswith("<?xml")


def test_corrupt_files_fail_with_the_recorded_reason(world: tuple[Path, dict]) -> None:
    out, truth = world
    assert {c["expected_reason"] for c in truth["corrupt"]} == {"empty", "truncated", "not_image"}
    for bad in truth["corrupt"]:
        with pytest.raises(ImageError) as err:
            load_image(out / bad["file"])
        assert err.value.reason == bad["expected_reason"]


def test_dlib_finds_every_human_and_frontal_coser(world: tuple[Path, dict]) -> None:
    """Independent of the generator's own check: dlib-hog finds them and the pose matches the plan."""
    out, truth = world
    hog, landmarker = make_detector("dlib-hog"), Landmarker()
    faces = [(out / p["file"], f) for p in truth["cosers"] for f in p["faces"]]
    faces += [(out / h["file"], h) for h in truth["humans"]]
    checked = 0
    for path, face in faces:
        if face["kind"] not in ("frontal", "turned"):
            continue
        rgb = load_image(path)
        points = unflatten_points(face["landmarks"])
        boxes = [d.box for d in hog.detect(rgb)]
        assert _found(points, boxes), f"{path.name}: dlib-hog misses a {face['kind']} face"
        box = next(b for b in boxes if _found(points, [b]))
        found = landmarker.refine(rgb, box)
        yaw = head_pose(found, rgb.shape[1], rgb.shape[0])[0]
        if face["kind"] == "frontal":
            assert abs(yaw) < 25
            # The recorded landmarks are where dlib sees the face (a few pixels of predictor noise).
            err = np.linalg.norm(found - points, axis=1).mean() / np.ptp(points[:, 0])
            assert err < 0.08, f"{path.name}: truth landmarks off by {err:.3f} face widths"
        else:
            assert abs(yaw) > 30
        checked += 1
    assert checked >= 4


def test_small_faces_are_small(world: tuple[Path, dict]) -> None:
    _, truth = world
    small = [f for p in truth["cosers"] for f in p["faces"] if f["kind"] == "small"]
    assert small and all(f["expected"] == "too_small" for f in small)
    assert all(f["landmark_box"][2] - f["landmark_box"][0] < 40 for f in small)


def test_cosers_wear_vivid_wigs(world: tuple[Path, dict]) -> None:
    """The hair band above each frontal coser face is far more saturated than the astronaut's own hair."""
    out, truth = world
    for photo in truth["cosers"]:
        hsv = cv2.cvtColor(load_image(out / photo["file"]), cv2.COLOR_RGB2HSV)
        for face in photo["faces"]:
            if face["kind"] != "frontal":
                continue
            pts = unflatten_points(face["landmarks"])
            x0, y0, x1, _ = _box_of(pts)
            w = x1 - x0
            band = hsv[int(y0 - 0.55 * w) : int(y0 - 0.25 * w), int(x0 + 0.2 * w) : int(x1 - 0.2 * w)]
            assert np.percentile(band[..., 1], 75) > 120


def test_anime_points_are_exact_and_sane(world: tuple[Path, dict]) -> None:
    """Anime truth is on the CVAT 1/100 px grid and every face passes the validation rules."""
    _, truth = world
    for item in truth["anime"]:
        pts = unflatten_points(item["points"])
        assert pts.shape == (ANIME56.n_points, 2)
        assert geometry_problems(pts) == []
        assert np.array_equal(pts, np.round(pts, 2))


def test_anime_drawing_passes_through_its_landmarks() -> None:
    """Drawn features sit on their landmarks: dark lash pixels at the upper lids, lip colour at the mouth."""
    face = draw_anime_face(np.random.default_rng(11))
    img = face.image.astype(int)
    for eye in (ANIME56.left_eye, ANIME56.right_eye):
        x, y = np.round(face.points[eye[2]]).astype(int)  # middle of the upper lid
        assert img[y, x].sum() < 300
    mx, my = np.round(face.points[list(ANIME56.groups["mouth"])].mean(axis=0)).astype(int)
    r, g, b = img[my, mx]
    assert r > g + 40 and r > b + 40


def test_same_seed_same_world(tmp_path: Path) -> None:
    config = DemoConfig(seed=5, n_cosers=1, n_humans=1, n_anime=2, verify=False)
    a = write_demo(tmp_path / "a", config)
    b = write_demo(tmp_path / "b", config)
    assert a == b
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(tmp_path / "b") for p in (tmp_path / "b").rglob("*") if p.is_file())
    assert all(sha256_file(tmp_path / "a" / f) == sha256_file(tmp_path / "b" / f) for f in files)
    c = write_demo(tmp_path / "c", DemoConfig(seed=6, n_cosers=1, n_humans=1, n_anime=2, verify=False))
    assert c["anime"] != a["anime"]


def test_human_truth_exposes_the_contour(world: tuple[Path, dict]) -> None:
    """68-point landmarks give the same 17-point contour vocabulary as ANIME56."""
    _, truth = world
    pts = np.stack([unflatten_points(h["landmarks"]) for h in truth["humans"]])
    contour = HUMAN68.group_points(pts, "contour")
    assert contour.shape == (2, 17, 2) == ANIME56.group_points(np.zeros((2, 56, 2)), "contour").shape
    assert (np.diff(contour[:, :9, 1], axis=1) > -2).all()  # down the image-left jaw to the chin


def test_cli_demo(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        ["demo", "--out", str(tmp_path / "w"), "--n-cosers", "0", "--n-humans", "0", "--n-anime", "2",
         "--no-verify"],
    )
    assert result.exit_code == 0, result.output
    assert len(list((tmp_path / "w" / "anime").glob("*.png"))) == 2
    assert (tmp_path / "w" / ANNOTATIONS_NAME).is_file()
