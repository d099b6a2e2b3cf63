"""Structure, highlight and Aug-Portrait synthesis on the real samples, and the three synth commands."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import torch
from synth_world import (
    SELFIES,
    anime_points,
    selfie_points,
    write_anime_annotations,
    write_portrait_folder,
)
from typer.testing import CliRunner

from pda_data.cli import app
from pda_data.geometry.masks import face_mask, forehead_mask
from pda_data.io.images import load_image
from pda_data.schema import ANIME56, HUMAN68, STRUCTURE_CHANNELS, unflatten_points
from pda_data.shards.items import items_from_synth
from pda_data.synthesis.augportrait import fuse, fuse_parts, warp_to_landmarks
from pda_data.synthesis.highlights import extract_highlights, synthesize_highlights
from pda_data.synthesis.jobs import run_synth
from pda_data.synthesis.options import KINDS, FusionOptions, Levels
from pda_data.synthesis.structure import SynthesisError, render_heatmaps, synthesize_structure
from pda_data.synthesis.table import read_synth
from pda_data.synthesis.tasks import load_anime_faces, plan_structure

LEFT_EYE, RIGHT_EYE = (
    STRUCTURE_CHANNELS.index("left_eye_centre"),
    STRUCTURE_CHANNELS.index("right_eye_centre"),
)
EYES = (LEFT_EYE, RIGHT_EYE)


@pytest.fixture(scope="module")
def anime(samples_dir: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    return {name: (load_image(samples_dir / name), pts) for name, pts in anime_points().items()}


@pytest.fixture(scope="module")
def humans(samples_dir: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    return {name: (load_image(samples_dir / name), pts) for name, pts in selfie_points().items()}


def test_selfie_fixture_is_what_dlib_finds(humans: dict) -> None:
    from pda_data.faces.detectors import make_detector
    from pda_data.faces.landmarks import Landmarker

    detector, landmarker = make_detector("dlib-hog"), Landmarker()
    for rgb, pts in humans.values():
        found = landmarker.predict(rgb, detector.detect(rgb)[0].box)
        assert np.abs(found - pts).max() < 1.0


# --- heatmaps -------------------------------------------------------------------------------------------


def test_heatmaps_peak_at_points_per_channel() -> None:
    points = np.array([[40.0, 50.0], [90.0, 50.0], [120.0, 60.0], [50.0, 100.0], [80.0, 100.0]])
    channels = np.array([0, 1, 1, 2, 3])
    maps = render_heatmaps(points, channels, (128, 160), sigma=3.0)
    assert maps.shape == (4, 128, 160) and maps.dtype == np.float32
    for (x, y), c in zip(points, channels, strict=True):
        assert maps[c, int(y), int(x)] == pytest.approx(1.0)
        assert maps[[k for k in range(4) if k != c], int(y), int(x)].max() < 1e-3
    # Two points share channel 1; one sigma away the value is exp(-1/2).
    assert maps[1, 50, 93] == pytest.approx(np.exp(-0.5), abs=1e-5)
    assert render_heatmaps(np.zeros((0, 2)), np.zeros(0), (8, 8), 2.0).max() == 0.0
    with pytest.raises(ValueError, match="channels"):
        render_heatmaps(points[:1], np.array([4]), (8, 8), 2.0)


# --- structure ------------------------------------------------------------------------------------------


def _sample(anime: dict, name: str, kind: str, seed: int = 0):
    rgb, pts = anime[name]
    return rgb, pts, synthesize_structure(rgb, pts, kind, np.random.default_rng(seed))


@pytest.mark.parametrize("name", ["anime_0006.png", "anime_3414.png"])
def test_structure_kinds_carry_their_visible_points(anime: dict, name: str) -> None:
    for kind in KINDS:
        rgb, pts, s = _sample(anime, name, kind)
        channels = s.channels.tolist()
        assert s.image.shape == rgb.shape and s.image.dtype == np.uint8
        assert s.label == (1 if kind == "legit" else 0) and s.kind == kind
        assert len(s.points) == len(channels) and channels == sorted(channels)
        eyes = sum(c in EYES for c in channels)
        mouth = len(channels) - eyes
        expected = {
            "legit": (2, 2),
            "eye_pasted": (3, 2),
            "eye_removed": (1, 2),
            "mouth_removed": (2, 0),
            "eye_moved": (2, 2),
            "mouth_moved": (2, 2),
        }[kind]
        assert (eyes, mouth) == expected, kind
        changed = np.abs(s.image.astype(int) - rgb).max(2) > 0
        if kind == "legit":
            assert not changed.any()
            assert np.allclose(s.points, ANIME56.structure_points(pts))
        else:
            assert changed.any() and not changed[s.region < 1e-3].any()  # changes stay in the recorded region
            assert changed.mean() < 0.15
            near_face = cv2.dilate(face_mask(pts, ANIME56, (256, 256)), np.ones((41, 41), np.uint8))
            assert not changed[near_face == 0].any()


def test_pasted_eye_is_a_copy_placed_on_its_side(anime: dict) -> None:
    rgb, pts, s = _sample(anime, "anime_3414.png", "eye_pasted", seed=3)
    originals = ANIME56.structure_points(pts)[:2]
    new = [p for p in s.points[:3] if np.hypot(*(originals - p).T).min() > 1.0]
    assert len(new) == 1
    ((x, y),) = new
    # The patch around the new eye centre is a copy of one of the original eyes.
    window = s.image[int(y) - 5 : int(y) + 6, int(x) - 5 : int(x) + 6].astype(int)
    best = min(
        np.abs(window - rgb[int(oy) - 5 : int(oy) + 6, int(ox) - 5 : int(ox) + 6]).mean()
        for ox, oy in originals
    )
    assert best < 6.0
    centre_x = ANIME56.structure_points(pts).mean(0)[0]
    channel = s.channels[[i for i, p in enumerate(s.points) if np.allclose(p, (x, y))][0]]
    assert channel == (LEFT_EYE if x < centre_x else RIGHT_EYE)


def test_removed_eye_is_skin_and_runs_are_reproducible(anime: dict) -> None:
    rgb, pts, s = _sample(anime, "anime_3414.png", "eye_removed", seed=1)
    gone = LEFT_EYE if LEFT_EYE not in s.channels else RIGHT_EYE
    x, y = ANIME56.structure_points(pts)[gone].astype(int)
    patch = s.image[y - 4 : y + 5, x - 4 : x + 5].reshape(-1, 3)
    assert patch.std(0).max() < 3.0 and patch.mean() > 180  # flat, light skin where the dark eye was
    again = synthesize_structure(rgb, pts, "eye_removed", np.random.default_rng(1))
    assert np.array_equal(again.image, s.image) and np.array_equal(again.points, s.points)


def test_structure_rejects_bad_input(anime: dict) -> None:
    rgb, pts = anime["anime_3414.png"]
    with pytest.raises(ValueError, match="unknown structure kind"):
        synthesize_structure(rgb, pts, "nose_moved", np.random.default_rng(0))
    bad = pts.copy()
    bad[3] = np.nan
    with pytest.raises(SynthesisError) as err:
        synthesize_structure(rgb, bad, "eye_pasted", np.random.default_rng(0))
    assert err.value.reason == "bad_landmarks"


# --- highlights -----------------------------------------------------------------------------------------


def test_highlights_only_brighten_the_face_below_the_forehead(anime: dict, humans: dict) -> None:
    human, h_pts = humans["selfie_female_222.jpg"]
    for rgb, a_pts in anime.values():
        s = synthesize_highlights(human, h_pts, rgb, a_pts)
        diff = s.image.astype(int) - rgb
        allowed = (face_mask(a_pts, ANIME56, (256, 256)) > 0.5) & (
            forehead_mask(a_pts, ANIME56, (256, 256)) < 0.5
        )
        assert (diff >= 0).all()  # pixel-wise maximum
        assert not diff[~allowed].any()  # only inside the face mask minus the forehead
        assert (diff.max(2) > 20).sum() > 100  # visible artifacts
        assert s.mask.max() > 0.5 and not s.mask[~allowed].any()


def test_highlight_extraction_drops_forehead_and_dim_skin(humans: dict) -> None:
    human, h_pts = humans["selfie_female_222.jpg"]
    layer, mask = extract_highlights(human, h_pts)
    assert mask.sum() > 200
    assert not mask[forehead_mask(h_pts, HUMAN68, (256, 256)) > 0.5].any()
    lum = cv2.cvtColor(human, cv2.COLOR_RGB2GRAY)
    assert lum[mask > 0].min() > lum[face_mask(h_pts, HUMAN68, (256, 256)) > 0.5].mean()
    assert not layer[mask == 0].any()
    stricter = extract_highlights(human, h_pts, Levels(threshold=0.9))[1]
    assert 0 < stricter.sum() < mask.sum()
    with pytest.raises(ValueError, match="black < white"):
        Levels(black=0.9, white=0.5)


def test_flat_grey_selfie_has_no_highlights_to_give(anime: dict, humans: dict) -> None:
    human, h_pts = humans["selfie_female_2321.jpg"]
    rgb, a_pts = anime["anime_3414.png"]
    with pytest.raises(SynthesisError) as err:
        synthesize_highlights(human, h_pts, rgb, a_pts)
    assert err.value.reason == "no_highlight"


# --- Aug-Portrait ---------------------------------------------------------------------------------------


def test_warp_puts_landmarks_on_target(humans: dict) -> None:
    (_, src), (_, dst) = (humans[n] for n in SELFIES)
    dots = np.zeros((256, 256, 3), np.uint8)
    probe = [HUMAN68.nose_tip, *HUMAN68.mouth_corners, HUMAN68.contour[8]]
    for i in probe:
        cv2.circle(dots, tuple(int(round(v)) for v in src[i]), 2, (255, 255, 255), -1)
    warped = warp_to_landmarks(dots, src, dst, (256, 256))
    for i in probe:
        x, y = np.round(dst[i]).astype(int)
        window = warped[y - 6 : y + 7, x - 6 : x + 7, 0].astype(float)
        assert window.max() > 100
        cy, cx = np.array(np.nonzero(window > 100)).mean(1)
        assert abs(cx - 6) < 2.0 and abs(cy - 6) < 2.0  # within rounding of the drawn dot


def test_fuse_pastes_the_human_face_into_the_coser_only(humans: dict) -> None:
    (human, h_pts), (coser, c_pts) = humans["selfie_female_222.jpg"], humans["selfie_female_2321.jpg"]
    f = fuse_parts(human, h_pts, coser, c_pts, np.random.default_rng(0))
    assert f.image.shape == coser.shape and f.image.dtype == np.uint8
    assert np.array_equal(f.image[f.mask == 0], coser[f.mask == 0])
    assert not f.mask[face_mask(c_pts, HUMAN68, (256, 256)) == 0].any()
    # The grey coser gets the human's red lips where its own mouth is.
    mouth = f.image[tuple(np.round(c_pts[list(HUMAN68.groups["outer_lip"])].mean(0)[::-1]).astype(int))]
    assert int(mouth[0]) - int(mouth[1]) > 40
    assert np.abs(coser.astype(int)[..., 0] - coser[..., 1]).max() < 12  # the coser itself is grey
    same = fuse(human, h_pts, coser, c_pts, np.random.default_rng(0))
    assert np.array_equal(same, f.image)
    no_colour = fuse(
        human, h_pts, coser, c_pts, np.random.default_rng(0), FusionOptions(colour_strength=(0.0, 0.0))
    )
    assert not np.array_equal(no_colour, f.image)


def _diagonal(n: int = 68) -> np.ndarray:
    return np.stack([np.linspace(10, 200, n), np.linspace(10, 200, n)], 1)


def _unsolvable(*args: object, **kwargs: object) -> None:
    raise AssertionError("the spline was solved: degenerate points must be caught before")


def test_fuse_rejects_degenerate_landmarks(humans: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    (human, h_pts), (coser, c_pts) = (humans[n] for n in SELFIES)
    monkeypatch.setattr(torch.linalg, "solve", _unsolvable)  # whatever the solver would do with them
    with pytest.raises(ValueError, match="degenerate control points: all 60 points lie .*on one line"):
        fuse(human, h_pts, coser, _diagonal(), np.random.default_rng(0))  # collinear targets: no spline


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("collinear", "on one line"),
        ("near_collinear", "on one line"),  # a line plus 1e-9 px of noise
        ("duplicated", "only 2 distinct point"),  # every target on one of two points
        ("too_few", "only 2 distinct point"),  # two landmark pairs
        ("collapsed", "only 1 distinct point"),
    ],
)
def test_warp_rejects_degenerate_targets_before_solving(
    humans: dict, monkeypatch: pytest.MonkeyPatch, case: str, reason: str
) -> None:
    (human, h_pts), (_, c_pts) = (humans[n] for n in SELFIES)
    line = _diagonal()
    targets = {
        "collinear": line,
        "near_collinear": line + np.random.default_rng(1).normal(0.0, 1e-9, line.shape),
        "duplicated": np.where(np.arange(68)[:, None] % 2 == 0, c_pts[0], c_pts[8]),
        "too_few": c_pts[[0, 8]],
        "collapsed": np.full((68, 2), 100.0),
    }[case]
    monkeypatch.setattr(torch.linalg, "solve", _unsolvable)
    with pytest.raises(ValueError, match=f"degenerate control points: .*{reason}"):
        warp_to_landmarks(human, h_pts[: len(targets)], targets, (256, 256))


def test_real_landmarks_are_not_degenerate(humans: dict) -> None:
    """Both selfies' 68 points (the closed mouth's coinciding inner lips merged) warp onto each other."""
    (a, a_pts), (b, b_pts) = (humans[n] for n in SELFIES)
    for image, src, dst in ((a, a_pts, b_pts), (b, b_pts, a_pts)):
        out = warp_to_landmarks(image, src, dst, (256, 256))
        assert out.shape == image.shape and out.dtype == np.uint8


# --- commands -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, samples_dir: Path) -> Path:
    root = tmp_path_factory.mktemp("synth_world")
    write_anime_annotations(samples_dir, root / "anime.parquet")
    write_portrait_folder(samples_dir, root / "humans")
    # A broken annotation file: one face whose image is not an image, one with collapsed landmarks.
    points = anime_points()
    (root / "fake.png").write_text("<html>not an image</html>")
    bad = write_anime_annotations(
        samples_dir, root / "bad.parquet", {"anime_3414.png": points["anime_3414.png"]}
    )
    df = pd.read_parquet(bad)
    broken = df.iloc[[0, 0]].copy()
    broken["key"] = ["fake", "collapsed"]
    broken["path"] = [str(root / "fake.png"), df["path"].iloc[0]]
    broken["points"] = [broken["points"].iloc[0], [10.0] * 112]
    pd.concat([df, broken]).to_parquet(bad, index=False)
    return root


def _invoke(*args: str) -> None:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output


def _images(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((folder / "images").glob("*.png"))}


@pytest.mark.slow
def test_synth_structure_command(world: Path, tmp_path: Path) -> None:
    out = tmp_path / "st"
    _invoke(
        "synth-structure",
        "--anime",
        str(world / "anime.parquet"),
        "--out",
        str(out),
        "--n",
        "12",
        "--seed",
        "4",
    )
    df = read_synth("structure", out)
    assert {"key", "image", "status", "reason", "label", "kind", "landmarks", "structure_points",
            "structure_channels", "anime_key"} <= set(df.columns)
    assert len(df) == 12 and (df["status"] == "kept").all()
    assert set(df["label"]) == {0, 1} and (df["label"] == (df["kind"] == "legit")).all()
    for _, row in df.iterrows():
        assert len(row["structure_points"]) == 2 * len(row["structure_channels"])
        assert load_image(out / row["image"]).shape == (256, 256, 3)
        assert unflatten_points(row["landmarks"]).shape == (56, 2)
    sheet = load_image(out / "contact_sheet.jpg")
    assert sheet.shape[1] == 3 * 128 and sheet.shape[0] >= 128
    items, problems = items_from_synth(out, "structure")  # what `pda-data pack` reads
    assert len(items) == 12 and not problems
    again = tmp_path / "st2"
    _invoke(
        "synth-structure",
        "--anime",
        str(world / "anime.parquet"),
        "--out",
        str(again),
        "--n",
        "12",
        "--seed",
        "4",
        "--workers",
        "2",
    )
    assert _images(again) == _images(out)
    pd.testing.assert_frame_equal(read_synth("structure", again), df)


def test_synth_structure_reports_bad_pairs(world: Path, tmp_path: Path) -> None:
    out = tmp_path / "bad"
    _invoke(
        "synth-structure",
        "--anime",
        str(world / "bad.parquet"),
        "--out",
        str(out),
        "--n",
        "12",
        "--legit-fraction",
        "0",
    )
    df = read_synth("structure", out)
    reasons = df.set_index("key")["reason"]
    kinds = dict(zip(df["key"], df["anime_key"], strict=True))
    assert {reasons[k] for k, a in kinds.items() if a == "fake"} <= {"not_image"}
    assert {reasons[k] for k, a in kinds.items() if a == "collapsed"} <= {"degenerate"}
    assert {"not_image", "degenerate"} <= set(reasons)
    assert (df.loc[df["status"] == "rejected", "image"] == "").all()
    good = df[df["anime_key"] == "anime_3414"]
    assert (good["status"] == "kept").sum() >= len(good) // 2
    assert set(good.loc[good["status"] == "rejected", "reason"]) <= {"no_room"}


def test_rerun_resumes_with_identical_output(world: Path, tmp_path: Path) -> None:
    faces = load_anime_faces(world / "anime.parquet")  # the reader validates every row
    assert len(faces) == 2
    tasks = plan_structure(faces, 10, seed=5, sheet_rows=2)
    out = tmp_path / "resume"
    first = run_synth("structure", tasks, out)
    images, manifest = _images(out), read_synth("structure", out)
    kept = manifest[(manifest["status"] == "kept")]["key"].tolist()
    (out / "images" / f"{kept[-1]}.png").unlink()
    second = run_synth("structure", tasks, out)
    assert second.reused == first.kept - 1 - sum(t.sheet for t in tasks if t.key in kept)
    assert _images(out) == images
    pd.testing.assert_frame_equal(read_synth("structure", out), manifest)
    assert run_synth("structure", plan_structure(faces, 10, seed=6, sheet_rows=0), out).reused == 0


def test_synth_highlights_command(world: Path, tmp_path: Path, samples_dir: Path) -> None:
    out = tmp_path / "hl"
    _invoke(
        "synth-highlights",
        "--humans",
        str(world / "humans"),
        "--anime",
        str(world / "anime.parquet"),
        "--out",
        str(out),
        "--n",
        "10",
        "--seed",
        "2",
    )
    df = read_synth("highlight", out)
    assert {"key", "image", "mask", "label", "kind", "anime_key", "human_key"} <= set(df.columns)
    kept = df[df["status"] == "kept"]
    assert set(kept["kind"]) == {"legit", "highlight"}
    # The grey selfie yields no highlight: those pairs are reported, not crashed on or mislabelled.
    rejected = df[df["status"] == "rejected"]
    assert set(rejected["reason"]) <= {"no_highlight"}
    assert set(rejected["human_key"]) <= {"selfie_female_2321"}
    for _, row in kept.iterrows():
        image, mask = load_image(out / row["image"]), load_image(out / row["mask"])
        source = load_image(samples_dir / f"{row['anime_key']}.png")
        assert image.shape == mask.shape == (256, 256, 3) and (image >= source).all()
        assert (mask.max() > 0) == (row["kind"] == "highlight") == (image != source).any()
    assert (out / "contact_sheet.jpg").is_file()
    assert len(items_from_synth(out, "highlight")[0]) == len(kept)


def test_synth_aug_command(world: Path, tmp_path: Path) -> None:
    out = tmp_path / "aug"
    _invoke(
        "synth-aug",
        "--humans",
        str(world / "humans"),
        "--cosers",
        str(world / "humans"),
        "--out",
        str(out),
        "--n",
        "4",
        "--no-colour-match",
    )
    df = read_synth("aug", out)
    assert {"key", "image", "landmarks", "human_key", "coser_key"} <= set(df.columns)
    assert (df["status"] == "kept").all() and len(df) == 4
    for _, row in df.iterrows():
        assert load_image(out / row["image"]).shape == (256, 256, 3)
        assert unflatten_points(row["landmarks"]).shape == (68, 2)
    assert load_image(out / "contact_sheet.jpg").shape[1] == 4 * 128
