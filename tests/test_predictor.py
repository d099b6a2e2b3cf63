"""The anime landmark predictor: schema-respecting augmentation, training on a tiny demo set that beats the
mean-shape bootstrap on a held-out seed, bootstrap and check with the predictor end to end."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from pda_data.annotations.anime_draw import draw_anime_face
from pda_data.annotations.formats.registry import read_annotation_source
from pda_data.annotations.predictor.augment import AugmentOptions, flip_sample, make_augment
from pda_data.annotations.predictor.model import PredictorError, load_predictor
from pda_data.annotations.predictor.nme import OVERALL, nme_report
from pda_data.annotations.predictor.train import split
from pda_data.annotations.shapes import landmark_box, place_shape
from pda_data.annotations.table import annotation_frame, read_annotations, write_annotations
from pda_data.cli import app
from pda_data.demo.writer import ANIME_DIR, ANNOTATIONS_NAME, DemoConfig, write_demo
from pda_data.schema import ANIME56, flatten_points, unflatten_points

runner = CliRunner()


def _invoke(*args: object) -> object:
    return runner.invoke(app, ["landmarks", *map(str, args)])


def _truth(truth: dict) -> dict[str, np.ndarray]:
    return {Path(a["file"]).name: unflatten_points(a["points"]) for a in truth["anime"]}



@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, one_thread: None) -> dict:
    """A predictor trained by the CLI on 20 demo portraits (seed 1, 64 px), and a held-out world (seed 2)."""
    root = tmp_path_factory.mktemp("predictor")
    write_demo(root / "train", DemoConfig(seed=1, n_cosers=0, n_humans=0, n_anime=20, verify=False))
    test_world = DemoConfig(seed=2, n_cosers=0, n_humans=0, n_anime=8, verify=False)
    test_truth = write_demo(root / "test", test_world)
    table = root / "anime.parquet"
    result = _invoke("import", root / "train" / ANNOTATIONS_NAME, "--images", root / "train" / ANIME_DIR,
                     "--out", table)
    assert result.exit_code == 0, result.output
    model = root / "predictor.safetensors"
    result = _invoke("train-predictor", table, "--out", model, "--size", 64, "--epochs", 30, "--batch", 8)
    assert result.exit_code == 0, result.output
    assert "held-out NME" in result.output
    return {"root": root, "table": table, "model": model, "test": root / "test", "truth": _truth(test_truth)}


def _bootstrap(trained: dict, out: Path, cascade: Path, *extra: str) -> list:
    result = _invoke("bootstrap", "--images", trained["test"] / ANIME_DIR, "--out", out, "--cascade", cascade,
                     *extra)
    assert result.exit_code == 0, result.output
    _, records = read_annotation_source(out)
    return records


def _nme(records: list, truth: dict[str, np.ndarray]) -> float:
    pred = np.stack([r.points for r in records])
    return nme_report(pred, np.stack([truth[r.name] for r in records]))[OVERALL]


def test_predictor_beats_the_mean_shape_on_a_held_out_seed(trained: dict, tmp_path: Path,
                                                           cascade_path: Path) -> None:
    mean = _bootstrap(trained, tmp_path / "mean.xml", cascade_path)
    learned = _bootstrap(trained, tmp_path / "learned.xml", cascade_path, "--predictor", trained["model"],
                         "--order", "uncertainty")
    assert mean and sorted(r.name for r in learned) == sorted(r.name for r in mean)
    assert _nme(learned, trained["truth"]) < 0.8 * _nme(mean, trained["truth"])
    with open(tmp_path / "learned_queue.csv", newline="") as f:
        queue = list(csv.DictReader(f))
    done = [q for q in queue if q["status"] == "pre-annotated"]
    assert [q["image"] for q in done] == [r.name for r in learned]  # the output follows the queue's order
    confidence = [float(q["confidence"]) for q in done]
    assert confidence == sorted(confidence) and all(0 < c <= 1 for c in confidence)  # least sure first
    missed = {q["image"] for q in queue if q["status"] == "no_face"}
    assert missed == set(trained["truth"]) - {r.name for r in learned}


def test_bootstrap_skips_annotated_images_and_limits(
    trained: dict, tmp_path: Path, cascade_path: Path
) -> None:
    model = ("--predictor", trained["model"], "--format", "labelanylandmarks", "--order", "uncertainty")
    records = _bootstrap(trained, tmp_path / "pre", cascade_path, *model, "--limit", 2)
    assert len(records) == 2 and (tmp_path / "pre" / "queue.csv").is_file()
    # The training world's keys (anime_000 ...) include every test image's: all are already annotated.
    result = _invoke("bootstrap", "--images", trained["test"] / ANIME_DIR, "--out", tmp_path / "none",
                     "--cascade", cascade_path, *model, "--exclude", trained["table"])
    assert result.exit_code == 0 and "0 of 0 image(s) pre-annotated, 8 already annotated" in result.output
    result = _invoke("bootstrap", "--images", trained["test"] / ANIME_DIR, "--out", tmp_path / "x.xml",
                     "--order", "uncertainty", "--cascade", cascade_path)
    assert result.exit_code == 2 and "needs --predictor" in result.output


def test_check_flags_the_moved_mouth_first(trained: dict, tmp_path: Path) -> None:
    df = read_annotations(trained["table"])
    rows = df.to_dict("records")
    pts = unflatten_points(rows[3]["points"]).copy()
    mouth = list(ANIME56.groups["mouth"])
    pts[mouth, 1] += 0.5 * np.ptp(pts[list(ANIME56.left_eye + ANIME56.right_eye), 0]) / 2  # half an IOD down
    rows[3]["points"] = flatten_points(pts)
    write_annotations(annotation_frame(rows), tmp_path / "moved.parquet")
    sheet = tmp_path / "qa.png"
    args = ("check", tmp_path / "moved.parquet", "--predictor", trained["model"], "--threshold", 0.25)
    result = _invoke(*args, "--sheet", sheet)
    assert result.exit_code == 0, result.output
    table = result.output.split("disagree with the predictor")[1]
    first = next(line for line in table.splitlines() if "anime_" in line)  # worst first
    assert rows[3]["key"] in first and "mouth" in first
    assert sheet.is_file()
    strict = _invoke(*args, "--strict")
    assert strict.exit_code == 1


def test_broken_predictor_files_fail_with_one_line(trained: dict, tmp_path: Path) -> None:
    lone = tmp_path / "lone.safetensors"
    lone.write_bytes(Path(trained["model"]).read_bytes())
    with pytest.raises(PredictorError, match="missing"):
        load_predictor(lone)
    lone.with_suffix(".json").write_text('{"format": "other"}')
    result = _invoke("check", trained["table"], "--predictor", lone)
    assert result.exit_code == 2 and "not a pda-landmark-predictor" in result.output
    assert "Traceback" not in result.output


def test_flip_respects_the_schema() -> None:
    face = draw_anime_face(np.random.default_rng(3), 64)
    image, pts = flip_sample(face.image, face.points)
    assert np.array_equal(image, face.image[:, ::-1])
    (left, right), (was_left, _) = ANIME56.eye_centres(pts), ANIME56.eye_centres(face.points)
    assert left[0] < right[0]  # the mirrored image-left eye is the image-right eye now
    assert np.allclose(right, [63 - was_left[0], was_left[1]])
    only_flip = make_augment(0, AugmentOptions(rotate=0, scale=(1, 1), shift=0, colour=0, flip=1.0))
    out_image, out_pts = only_flip(face.image, face.points)
    assert np.array_equal(out_image, image) and np.allclose(out_pts, pts, atol=1e-4)


def test_augmented_points_follow_the_pixels() -> None:
    """Rotated, scaled, shifted: each keypoint stays on the dot drawn under it (albumentations' transform)."""
    image = np.zeros((64, 64, 3), np.uint8)
    dots = np.full((ANIME56.n_points, 2), 32.0)
    dots[:4] = [[16, 20], [44, 18], [30, 40], [20, 50]]
    for x, y in dots[:4].astype(int):
        image[y - 1 : y + 2, x - 1 : x + 2] = 255
    augment = make_augment(7, AugmentOptions(colour=0, flip=0))
    for _ in range(4):
        out, moved = augment(image, dots)
        grey = out[..., 0].astype(float)
        for x, y in moved[:4]:
            y0, x0 = int(round(y)), int(round(x))
            win = grey[y0 - 3 : y0 + 4, x0 - 3 : x0 + 4]
            yy, xx = np.mgrid[y0 - 3 : y0 + 4, x0 - 3 : x0 + 4]
            centre = np.array([(xx * win).sum(), (yy * win).sum()]) / win.sum()
            assert np.linalg.norm(centre - [x, y]) < 0.5


def test_landmark_box_inverts_place_shape_and_split_is_stable() -> None:
    unit = (draw_anime_face(np.random.default_rng(0)).points - 60) / 140
    unit = (unit - unit.min(0)) / np.ptp(unit, axis=0)
    box = (10.0, 20.0, 110.0, 120.0)
    assert np.allclose(landmark_box(place_shape(unit, box)), box)
    train, val = split(20, 0.1, 0)
    assert len(val) == 2 and sorted([*train, *val]) == list(range(20))
    assert np.array_equal(split(20, 0.1, 0)[1], val) and len(split(2, 0.1, 0)[1]) == 1
