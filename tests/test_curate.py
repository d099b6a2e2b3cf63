"""Portrait curation end to end: crops, manifest, rejects, dedup, workers, resume, parts, data sets, CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import datasets
import numpy as np
import pandas as pd
import pytest
from PIL import Image
from skimage import data
from typer.testing import CliRunner

from pda_data.cli import app
from pda_data.curation.dedup import hamming, phash
from pda_data.curation.merge import merge_manifests
from pda_data.curation.options import COSER_DEFAULTS, HUMAN_DEFAULTS, with_overrides
from pda_data.curation.run import count_items, run_curation
from pda_data.curation.table import PORTRAIT_SCHEMA, kept_portraits, read_portraits
from pda_data.demo import writer as demo
from pda_data.faces.detectors import make_detector
from pda_data.faces.landmarks import Landmarker
from pda_data.geometry.crop import crop_face
from pda_data.io.images import encode_image, load_image, save_image
from pda_data.io.sources import HFOptions, SourceError
from pda_data.io.table import kept_rows
from pda_data.schema import HUMAN68

REQUIRED = ("key", "source", "source_sha256", "status", "reason", "detector", "score", "box", "yaw", "pitch",
            "roll", "landmarks", "crop_size", "phash", "image")


def _canvas(face: np.ndarray, x: int, y: int, colour: tuple[int, int, int]) -> np.ndarray:
    canvas = np.full((480, 640, 3), colour, np.uint8)
    canvas[y : y + face.shape[0], x : x + face.shape[1]] = face
    return canvas


@pytest.fixture(scope="module")
def raw(samples_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small messy folder: two selfies in larger photos, an exact re-encoded copy, bad files, a non-face."""
    root = tmp_path_factory.mktemp("raw")
    s1 = load_image(samples_dir / "selfie_female_222.jpg")
    s2 = load_image(samples_dir / "selfie_female_2321.jpg")
    save_image(root / "a_selfie.png", _canvas(s1, 300, 120, (70, 90, 120)))
    save_image(root / "b_selfie.jpg", _canvas(s2, 60, 150, (150, 120, 90)))
    # Same pixels, another file: a near-duplicate.
    (root / "c_copy.png").write_bytes(encode_image(load_image(root / "a_selfie.png")))
    (root / "d_empty.jpg").write_bytes(b"")
    (root / "e_text.jpg").write_text("not a picture")
    sub = root / "nested"
    sub.mkdir()
    save_image(sub / "f_wall.png", np.full((200, 300, 3), 180, np.uint8))
    return root


@pytest.fixture(scope="module")
def humans_run(raw: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame]:
    out = tmp_path_factory.mktemp("humans")
    run_curation([raw], out, HUMAN_DEFAULTS)
    df = read_portraits(out)
    assert set(REQUIRED) <= set(df.columns)
    return out, df


def test_crop_face_geometry_and_alignment() -> None:
    image = data.astronaut()
    h, w = image.shape[:2]
    tilted = cv2.warpAffine(image, cv2.getRotationMatrix2D((w / 2, h / 2), 25, 1.0), (w, h))
    points = Landmarker().refine(tilted, make_detector("dlib-hog").detect(tilted)[0].box)
    crop, crop_points, matrix = crop_face(tilted, points, margin=0.5, size=256, align=True)
    assert crop.shape == (256, 256, 3) and crop.dtype == np.uint8
    assert matrix.shape == (2, 3)
    np.testing.assert_allclose(crop_points, points @ matrix[:, :2].T + matrix[:, 2], atol=1e-9)
    left, right = HUMAN68.eye_centres(crop_points)
    assert abs(left[1] - right[1]) < 1.0  # eyes level
    assert ((crop_points > 0) & (crop_points < 255)).all()
    # The face fills the middle half, with room above for the hair.
    assert 0.4 < np.ptp(crop_points[:, 0]) / 256 < 0.6
    assert crop_points[:, 1].min() > 256 * 0.3
    unaligned, unaligned_points, _ = crop_face(tilted, points, margin=0.5, size=128, align=False)
    assert unaligned.shape == (128, 128, 3)
    left, right = HUMAN68.eye_centres(unaligned_points)
    assert abs(left[1] - right[1]) > 10  # still tilted
    # The crop shows what the landmarks say: the eyes are darker than the cheeks below them.
    eye = crop_points[list(HUMAN68.left_eye)].mean(axis=0).round().astype(int)
    grey = cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY).astype(float)
    assert grey[eye[1], eye[0]] < grey[eye[1] + 25, eye[0]]


def test_crop_of_a_larger_photo_matches() -> None:
    """Shrinking crops are area-averaged: a 4x larger photo gives the same crop and landmarks."""
    image = data.astronaut()
    points = Landmarker().refine(image, make_detector("dlib-hog").detect(image)[0].box)
    big = cv2.resize(image, None, fx=4, fy=4, interpolation=cv2.INTER_CUBIC)
    small_crop, small_points, _ = crop_face(image, points, margin=0.5, size=128, align=True)
    big_crop, big_points, _ = crop_face(big, (points + 0.5) * 4 - 0.5, margin=0.5, size=128, align=True)
    np.testing.assert_allclose(big_points, small_points, atol=1e-6)
    assert np.abs(big_crop.astype(float) - small_crop).mean() < 3


def test_phash_is_stable_under_reencoding_and_tells_faces_apart(samples_dir: Path) -> None:
    a = load_image(samples_dir / "selfie_female_222.jpg")
    b = load_image(samples_dir / "selfie_female_2321.jpg")
    again = load_image(encode_image(cv2.resize(a, (200, 200), interpolation=cv2.INTER_AREA), "jpg", 80))
    assert len(phash(a)) == 16
    assert hamming(phash(a), phash(again)) <= 2
    assert hamming(phash(a), phash(b)) > 10


def test_humans_manifest(humans_run: tuple[Path, pd.DataFrame], raw: Path) -> None:
    out, df = humans_run
    by_file = {Path(s).name: r for s, r in zip(df["source"], df.to_dict("records"), strict=True)}
    names = {"a_selfie.png", "b_selfie.jpg", "c_copy.png", "d_empty.jpg", "e_text.jpg", "f_wall.png"}
    assert set(by_file) == names
    assert by_file["a_selfie.png"]["status"] == "kept"
    assert by_file["b_selfie.jpg"]["status"] == "kept"
    assert (by_file["c_copy.png"]["status"], by_file["c_copy.png"]["reason"]) == ("rejected", "duplicate")
    assert by_file["d_empty.jpg"]["reason"] == "empty"
    assert by_file["e_text.jpg"]["reason"] == "not_image"
    assert by_file["f_wall.png"]["reason"] == "no_face"
    assert df["key"].is_unique
    kept = kept_rows(df)
    assert len(kept) == 2 and set(kept["detector"]) == {"dlib-hog"}
    _, points, unusable = kept_portraits(out)
    assert unusable == []
    assert points.shape == (2, 68, 2)
    assert ((points > 0) & (points < 256)).all()
    for row in kept.to_dict("records"):
        crop = load_image(out / row["image"])
        assert crop.shape == (256, 256, 3) and row["crop_size"] == 256
        assert row["image"] == f"images/{row['key']}.png"
        assert abs(row["yaw"]) < 20 and len(row["box"]) == 4 and len(row["phash"]) == 16
        assert row["source_sha256"] and Path(row["source"]).is_absolute()
    # Only kept crops are on disk, plus the two sheets.
    assert sorted(p.name for p in (out / "images").iterdir()) == sorted(Path(i).name for i in kept["image"])
    assert (out / "contact_sheet.jpg").is_file() and (out / "rejects_sheet.jpg").is_file()
    assert not list((out / ".partial").glob("*.parquet"))
    # The face of the first photo sits where it was pasted (x 300..556, y 120..376 on the canvas).
    box = by_file["a_selfie.png"]["box"]
    assert box[0] >= 300 and box[2] <= 556 and box[1] >= 120 and box[3] <= 376


def test_rerun_resumes_without_redoing(humans_run: tuple[Path, pd.DataFrame], raw: Path) -> None:
    out, df = humans_run
    summary = run_curation([raw], out, HUMAN_DEFAULTS)
    assert summary.processed == 0
    pd.testing.assert_frame_equal(read_portraits(out), df)


def test_interrupted_run_resumes(raw: Path, humans_run: tuple[Path, pd.DataFrame], tmp_path: Path) -> None:
    _, full = humans_run
    calls = []

    def stop_after_two(rows: list[dict]) -> None:
        calls.append(rows)
        if len(calls) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_curation([raw], tmp_path, HUMAN_DEFAULTS, flush_every=1, on_item=stop_after_two)
    partial = read_portraits(tmp_path)
    assert len(partial["source"].unique()) == 2
    summary = run_curation([raw], tmp_path, HUMAN_DEFAULTS)
    assert summary.processed == 4
    pd.testing.assert_frame_equal(read_portraits(tmp_path), full)


@pytest.mark.slow
def test_two_workers_match_one(raw: Path, humans_run: tuple[Path, pd.DataFrame], tmp_path: Path) -> None:
    _, full = humans_run
    run_curation([raw], tmp_path, HUMAN_DEFAULTS, workers=2)
    pd.testing.assert_frame_equal(read_portraits(tmp_path), full)


def test_parts_merge_to_the_whole(raw: Path, humans_run: tuple[Path, pd.DataFrame], tmp_path: Path) -> None:
    out, full = humans_run
    parts = [tmp_path / "p1", tmp_path / "p2"]
    sizes = []
    for i, part in enumerate(parts, start=1):
        run_curation([raw], part, HUMAN_DEFAULTS, part=(i, 2), sheets=False)
        sizes.append(len(read_portraits(part)))
    assert sum(sizes) == len(full)
    assert not set(read_portraits(parts[0])["key"]) & set(read_portraits(parts[1])["key"])
    summary = merge_manifests(parts, tmp_path / "merged", sheets=False)
    merged = read_portraits(tmp_path / "merged")
    assert set(merged["key"]) == set(full["key"])
    assert summary.kept == 2
    for image in kept_rows(merged)["image"]:
        assert (tmp_path / "merged" / image).is_file()


def test_keys_and_parts_do_not_depend_on_where_the_inputs_live(raw: Path, tmp_path: Path) -> None:
    """Keys and --part hash the path inside the input folder: machines that mount it elsewhere agree, and so
    does the test split that pack derives from the keys (:func:`pda_data.shards.index.split_of`)."""
    moved = tmp_path / "mounted" / "elsewhere" / raw.name
    shutil.copytree(raw, moved)
    parts = {}
    for name, folder in (("here", raw), ("there", moved)):
        run_curation([folder], tmp_path / name, HUMAN_DEFAULTS, part=(1, 2), sheets=False)
        parts[name] = read_portraits(tmp_path / name)
    assert 0 < len(parts["here"]) < 6
    assert list(parts["here"]["key"]) == list(parts["there"]["key"])
    assert (parts["there"]["source"].str.startswith(str(moved))).all()  # the source column is still the path


def test_two_inputs_with_one_stable_id_are_refused(raw: Path, tmp_path: Path) -> None:
    twin = tmp_path / "other" / raw.name
    shutil.copytree(raw, twin)
    with pytest.raises(SourceError, match="same id"):
        count_items([raw, twin])
    assert count_items([raw, raw / "a_selfie.png"]) == 6  # the same file named twice is one input


def test_coser_defaults_on_anime_and_all_faces(samples_dir: Path, cascade_path: Path, tmp_path: Path) -> None:
    anime = load_image(samples_dir / "anime_0006.png")
    selfie = load_image(samples_dir / "selfie_female_222.jpg")
    selfie = cv2.resize(selfie, (180, 180), interpolation=cv2.INTER_AREA)
    photo = np.full((480, 720, 3), (60, 60, 60), np.uint8)
    photo[100:356, 20:276] = anime
    photo[150:330, 480:660] = selfie
    save_image(tmp_path / "raw" / "group.png", photo)
    options = with_overrides(COSER_DEFAULTS, cascade=cascade_path, faces="all", image_format="jpg")
    run_curation([tmp_path / "raw"], tmp_path / "out", options)
    df = read_portraits(tmp_path / "out")
    kept = kept_rows(df)
    assert len(kept) == 2 and list(kept["face_index"]) == [0, 1]
    assert "anime-lbp" in set(kept["detector"])
    assert all(name.endswith(".jpg") for name in kept["image"])
    centres = [((b[0] + b[2]) / 2) for b in kept["box"]]
    assert any(c < 276 for c in centres) and any(c > 480 for c in centres)


def test_exif_rotated_photo_is_found_upright(tmp_path: Path) -> None:
    upright = data.astronaut()
    exif = Image.Exif()
    exif[0x0112] = 6
    (tmp_path / "raw").mkdir()
    Image.fromarray(np.ascontiguousarray(np.rot90(upright, 1))).save(tmp_path / "raw" / "p.jpg", exif=exif)
    run_curation([tmp_path / "raw"], tmp_path / "out", HUMAN_DEFAULTS)
    row = kept_rows(read_portraits(tmp_path / "out")).iloc[0]
    assert abs(row["roll"]) < 10


def test_list_file_and_hf_dataset(raw: Path, tmp_path: Path) -> None:
    listing = tmp_path / "inputs.txt"
    listing.write_text(f"# two photos\n{raw / 'a_selfie.png'}\n\nb_selfie.jpg\n")
    shutil.copy(raw / "b_selfie.jpg", tmp_path / "b_selfie.jpg")
    images = [Image.open(raw / "a_selfie.png"), Image.open(raw / "b_selfie.jpg")]
    features = datasets.Features({"photo": datasets.Image()})
    ds = datasets.Dataset.from_dict({"photo": images}, features=features)
    ds.save_to_disk(str(tmp_path / "ds"))
    run_curation([listing, tmp_path / "ds"], tmp_path / "out", HUMAN_DEFAULTS,
                 hf=HFOptions(image_column="photo"), sheets=True)
    df = read_portraits(tmp_path / "out")
    assert len(df) == 4
    ds_rows = df[df["source"].str.contains("#")]
    assert sorted(s.rsplit("#", 1)[1] for s in ds_rows["source"]) == ["0", "1"]
    # The data set holds the same pixels as the listed files, so its crops are duplicates of theirs.
    assert list(ds_rows["reason"]) == ["duplicate", "duplicate"]
    assert (df["status"] == "kept").sum() == 2


def test_cli_crop_humans_and_errors(raw: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["crop-humans", str(raw / "a_selfie.png"), str(raw / "d_empty.jpg"),
                                 "--out", str(tmp_path / "out"), "--size", "128", "--no-align",
                                 "--max-yaw", "10"])
    assert result.exit_code == 0, result.output
    assert "kept" in result.output and "empty" in result.output
    df = read_portraits(tmp_path / "out")
    assert list(df["crop_size"][df["status"] == "kept"]) == [128]
    result = runner.invoke(app, ["crop-humans", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o2")])
    assert result.exit_code == 2 and "no such file" in result.output
    result = runner.invoke(app, ["crop-humans", str(raw), "--out", str(tmp_path / "o3"), "--part", "3/2"])
    assert result.exit_code != 0
    result = runner.invoke(app, ["merge-manifests", str(tmp_path / "out"), "--out", str(tmp_path / "m")])
    assert result.exit_code == 0, result.output
    assert len(read_portraits(tmp_path / "m")) == 2


def test_manifest_schema_is_the_contract() -> None:
    assert set(REQUIRED) <= set(PORTRAIT_SCHEMA.names)


def test_demo_world_counts(cascade_path: Path, tmp_path: Path) -> None:
    """crop-cosers on the demo world keeps every frontal face and rejects the others with the right reason."""
    config = demo.DemoConfig(n_cosers=4, n_humans=1, n_anime=1)
    truth = demo.write_demo(tmp_path / "demo", config, cascade_path)
    options = with_overrides(COSER_DEFAULTS, cascade=cascade_path, faces="all", dedup=False)
    summary = run_curation([tmp_path / "demo" / demo.COSERS_DIR], tmp_path / "out", options)
    faces = [f for photo in truth["cosers"] for f in photo["faces"]]
    expected = {reason: sum(f["expected"] == reason for f in faces) for reason in ("kept", "too_small")}
    turned_found = sum(f["expected"] == "not_frontal" and any(f["detected"].values()) for f in faces)
    df = read_portraits(tmp_path / "out")
    seen = df[["source", "face_index", "reason", "detector", "face_size", "yaw"]].to_string()
    assert summary.kept == expected["kept"], seen
    assert summary.reasons["too_small"] == expected["too_small"], seen
    assert summary.reasons["not_frontal"] == turned_found, seen
    for bad in truth["corrupt"]:
        row = df[df["source"].str.endswith(Path(bad["file"]).name)]
        assert list(row["reason"]) == [bad["expected_reason"]]
    assert summary.errors == len(truth["corrupt"])
    json.dumps(truth)  # the truth record stays serializable next to the manifest
