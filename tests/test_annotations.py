"""Anime landmark annotations: import from every format, validation reasons, round trips, flips, CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from pda_data.annotations.formats.coco import write_coco
from pda_data.annotations.formats.csv import write_csv
from pda_data.annotations.formats.cvat import parse_cvat
from pda_data.annotations.formats.labelme import write_labelme
from pda_data.annotations.formats.records import AnnotationFormatError, ImageAnnotation
from pda_data.annotations.formats.registry import read_annotation_source
from pda_data.annotations.ingest import import_annotations, scale_points
from pda_data.annotations.table import COLUMNS, AnnotationError, points_array, read_annotations
from pda_data.annotations.validate import geometry_problems
from pda_data.cli import app
from pda_data.demo.writer import ANIME_DIR, ANNOTATIONS_NAME, DemoConfig, write_demo
from pda_data.io.files import sha256_file
from pda_data.io.images import load_image
from pda_data.schema import ANIME56, GROUP_COLORS, SCHEMA_VERSION, unflatten_points

FIXTURES = Path(__file__).parent / "fixtures"
HAND_CSV = FIXTURES / "anime_0006_landmarks.csv"
runner = CliRunner()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("anime_world")
    truth = write_demo(out, DemoConfig(seed=1, n_cosers=0, n_humans=0, n_anime=4, verify=False))
    return out, truth


def _truth_points(truth: dict) -> dict[str, np.ndarray]:
    return {Path(a["file"]).stem: unflatten_points(a["points"]) for a in truth["anime"]}


def _import(args: list[str]) -> object:
    return runner.invoke(app, ["landmarks", "import", *args])


def _imported(world: tuple[Path, dict], tmp_path: Path) -> Path:
    out, _ = world
    target = tmp_path / "anime.parquet"
    result = _import([str(out / ANNOTATIONS_NAME), "--images", str(out / ANIME_DIR), "--out", str(target)])
    assert result.exit_code == 0, result.output
    return target


def test_demo_cvat_imports_exactly(world: tuple[Path, dict], tmp_path: Path) -> None:
    out, truth = world
    df = read_annotations(_imported(world, tmp_path))
    assert list(df.columns) == list(COLUMNS)
    assert len(df) == 4
    expected = _truth_points(truth)
    for row, pts in zip(df.itertuples(), points_array(df), strict=True):
        assert np.array_equal(pts, expected[row.key])  # exact, not approximately
        assert Path(row.path).is_absolute() and sha256_file(row.path) == row.sha256
        assert (row.width, row.height, row.source_format, row.schema_version) == (
            256,
            256,
            "cvat",
            SCHEMA_VERSION,
        )


@pytest.mark.parametrize("fmt", ["cvat", "labelme", "coco", "csv", "labelanylandmarks"])
def test_round_trip_is_identity(world: tuple[Path, dict], tmp_path: Path, fmt: str) -> None:
    first = read_annotations(_imported(world, tmp_path))
    exported = tmp_path / f"export_{fmt}"
    result = runner.invoke(
        app, ["landmarks", "export", str(tmp_path / "anime.parquet"), "--format", fmt, "--out", str(exported)]
    )
    assert result.exit_code == 0, result.output
    again = tmp_path / "again.parquet"
    result = _import(
        [str(exported), "--images", str(world[0] / ANIME_DIR), "--out", str(again), "--format", fmt]
    )
    assert result.exit_code == 0, result.output
    second = read_annotations(again)
    assert second["source_format"].tolist() == [fmt] * len(first)
    same = ["key", "path", "sha256", "width", "height", "schema_version"]
    pd.testing.assert_frame_equal(first[same], second[same])
    assert np.array_equal(points_array(first), points_array(second))


def test_cvat_point_layouts_agree(world: tuple[Path, dict]) -> None:
    """One multi-point element (order = index) and single points labelled by index read like the skeleton."""
    _, truth = world
    pts = _truth_points(truth)["anime_000"]
    multi = ";".join(f"{x},{y}" for x, y in pts.tolist())
    singles = "".join(
        f'<points label="{i}" points="{x},{y}"/>' for i, (x, y) in reversed(list(enumerate(pts.tolist())))
    )
    for body in (f'<points label="face" points="{multi}"/>', singles):
        image = '<image id="0" name="anime_000.png" width="256" height="256">'
        xml = f"<annotations>{image}{body}</image></annotations>"
        (ann,) = parse_cvat(xml.encode(), "t.xml")
        df, problems = import_annotations([ann], world[0] / ANIME_DIR, "cvat")
        assert problems == []
        assert np.array_equal(points_array(df)[0], pts)


def _broken_cases(pts: np.ndarray) -> dict[str, ImageAnnotation]:
    """reason -> a labelme record with that one planted fault (55 labelled points are missing_index; the
    order-based wrong_count case is in the CSV test)."""
    labels = tuple(str(i) for i in range(56))
    twice = labels[:4] + ("3",) + labels[5:]
    oob = pts.copy()
    oob[12] = (-5, 10)
    nan = pts.copy()
    nan[30, 1] = np.nan
    return {
        "missing_index": ImageAnnotation("anime_001.png", pts[:55], labels[:55]),
        "duplicate_index": ImageAnnotation("anime_002.png", pts, twice),
        "out_of_bounds": ImageAnnotation("anime_003.png", oob, labels),
        "nan": ImageAnnotation("anime_000.png", nan, labels),
        "geometry": ImageAnnotation(
            "anime_001.png", pts[list(ANIME56.flip_perm)], labels
        ),  # left/right swapped
        "image_missing": ImageAnnotation("nope.png", pts, labels),
        "image_unreadable": ImageAnnotation("broken.png", pts, labels),
        "bad_label": ImageAnnotation("anime_002.png", pts, ("nose",) + labels[1:]),
    }


def test_each_fault_gets_its_reason_and_valid_images_survive(
    world: tuple[Path, dict], tmp_path: Path
) -> None:
    out, truth = world
    images = tmp_path / "images"
    shutil.copytree(out / ANIME_DIR, images)
    (images / "broken.png").write_text("not a png")
    truths = _truth_points(truth)
    cases = _broken_cases(truths["anime_000"])
    folder = tmp_path / "labelme"
    for n, ann in enumerate(cases.values()):
        (folder / f"case_{n:02d}.json").parent.mkdir(exist_ok=True)
        (folder / f"case_{n:02d}.json").write_text(write_labelme(ann))
    good = ImageAnnotation("anime_003.png", truths["anime_003"], None, 256, 256)
    (folder / "zz_good.json").write_text(write_labelme(good))

    result = _import([str(folder), "--images", str(images), "--out", str(tmp_path / "a.parquet")])
    assert result.exit_code == 0, result.output
    df = read_annotations(tmp_path / "a.parquet")
    assert df["key"].tolist() == ["anime_003"]
    _, records = read_annotation_source(folder)
    _, problems = import_annotations(records, images, "labelme")
    assert [p.code for p in problems] == list(cases)
    geometry = next(p for p in problems if p.code == "geometry")
    assert "left_right" in geometry.detail
    for code in cases:
        assert code in result.output

    strict = _import([str(folder), "--images", str(images), "--out", str(tmp_path / "b.parquet"), "--strict"])
    assert strict.exit_code == 1
    assert not (tmp_path / "b.parquet").exists()


def test_csv_faults(world: tuple[Path, dict], tmp_path: Path) -> None:
    out, truth = world
    pts = _truth_points(truth)["anime_001"]
    text = write_csv([ImageAnnotation("anime_001.png", pts)])
    short = text.splitlines()[1].rsplit(",", 2)[0]  # drop the last (x, y): 55 points
    gap = text.splitlines()[1].split(",")
    gap[9] = ""  # an empty cell is NaN
    csv = tmp_path / "a.csv"
    csv.write_text("\n".join([text.splitlines()[0], short, ",".join(gap)]) + "\n")
    _, records = read_annotation_source(csv)
    _, problems = import_annotations(records, out / ANIME_DIR, "csv")
    assert [p.code for p in problems] == ["wrong_count", "nan"]


def _lal(points: np.ndarray, **extra: object) -> str:
    """A LabelAnyLandmarks file as the tool writes it: 1-based keys, SIZE [h, w], IMAGE the stem."""
    doc: dict[str, object] = {str(i + 1): [float(x), float(y)] for i, (x, y) in enumerate(points)}
    doc.update(SIZE=[256, 256], IMAGE="anime_000")
    doc.update(extra)
    return json.dumps({k: v for k, v in doc.items() if v is not None})


def test_labelanylandmarks_files_and_their_faults(world: tuple[Path, dict], tmp_path: Path) -> None:
    out, truth = world
    pts = _truth_points(truth)["anime_000"]
    folder = tmp_path / "lal"
    folder.mkdir()
    files = {
        "anime_000-0.txt": _lal(pts),  # valid: IMAGE is the stem, the importer finds anime_000.png
        "anime_001-0.txt": _lal(pts, IMAGE="anime_001", SIZE=[300, 256]),
        "anime_002-0.txt": _lal(pts, IMAGE="anime_002", **{"56": None}),
        "anime_003-0.txt": _lal(pts, IMAGE="anime_003", **{"57": [1.0, 2.0]}),
        "anime_003-1.txt": _lal(pts, IMAGE="anime_003", **{"5": ["1", 2]}),
        "anime_000-1.txt": _lal(pts),  # a second face on one image
        "notes.txt": "not an annotation file",
    }
    for name, text in files.items():
        (folder / name).write_text(text)
    fmt, records = read_annotation_source(folder)
    assert fmt == "labelanylandmarks" and len(records) == 6
    df, problems = import_annotations(records, out / ANIME_DIR, fmt)
    assert df["key"].tolist() == ["anime_000"] and np.array_equal(points_array(df)[0], pts)
    assert sorted((p.name, p.code) for p in problems) == [
        ("anime_000", "duplicate_image"),
        ("anime_001", "size_mismatch"),  # SIZE is [height, width]: 300 rows, the file has 256
        ("anime_002", "missing_index"),
        ("anime_003", "bad_field"),
        ("anime_003", "bad_label"),
    ]
    assert "55" in next(p.detail for p in problems if p.code == "missing_index")  # key 56 is index 55
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "anime_000-0.txt").write_text('{"1": [1, 2], ')
    result = _import([str(broken), "--images", str(out / ANIME_DIR), "--out", str(tmp_path / "x.parquet")])
    assert result.exit_code == 2 and "not valid JSON" in result.output and "Traceback" not in result.output


HOSTILE = {
    "billion_laughs.xml": '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    '<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">'
    '<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>'
    '<annotations><image name="&lol3;"/></annotations>',
    "external.xml": '<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
    '<annotations><image name="&x;"/></annotations>',
    "malformed.xml": '<annotations><image name="a.png"><points label="0" points="1,2"></image>',
    "not_cvat.xml": "<html><body>hello</body></html>",
    "malformed.json": '{"images": [',
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_unparseable_files_fail_with_one_line(world: tuple[Path, dict], tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_text(HOSTILE[name])
    with pytest.raises(AnnotationFormatError):
        read_annotation_source(path, "cvat" if name.endswith(".xml") else "coco")
    result = _import([str(path), "--images", str(world[0] / ANIME_DIR), "--out", str(tmp_path / "x.parquet")])
    assert result.exit_code == 2
    assert name in result.output and "Traceback" not in result.output
    assert not (tmp_path / "x.parquet").exists()


def test_flip_is_an_involution_and_keeps_semantic_order(world: tuple[Path, dict], samples_dir: Path) -> None:
    perm = np.asarray(ANIME56.flip_perm)
    assert np.array_equal(perm[perm], np.arange(56))
    _, truth = world
    (hand,) = read_annotation_source(HAND_CSV)[1]
    rgb = load_image(samples_dir / "anime_0006.png")
    assert geometry_problems(hand.points) == []
    faces = [(hand.points, rgb.shape[1])] + [(p, 256) for p in _truth_points(truth).values()]
    for pts, width in faces:
        flipped = ANIME56.flip(pts, width)
        assert np.allclose(ANIME56.flip(flipped, width), pts)
        # The mirrored face, relabelled by the permutation, is a valid face in semantic order...
        assert geometry_problems(flipped) == []
        # ...whose image-left eye is the mirror of the original image-right eye.
        assert np.allclose(
            flipped[list(ANIME56.left_eye)].mean(axis=0)[0],
            width - 1 - pts[list(ANIME56.right_eye)].mean(axis=0)[0],
        )
        # Mirroring without the permutation swaps left and right, which validation rejects.
        mirrored = pts.copy()
        mirrored[:, 0] = width - 1 - mirrored[:, 0]
        assert "left_right" in geometry_problems(mirrored)


def test_hand_annotation_imports_and_crossing_contour_is_caught(samples_dir: Path) -> None:
    _, records = read_annotation_source(HAND_CSV)
    df, problems = import_annotations(records, samples_dir, "csv")
    assert problems == [] and len(df) == 1
    pts = points_array(df)[0]
    crossed = pts.copy()
    crossed[[3, 5]] = crossed[[5, 3]]
    assert "contour_crossing" in geometry_problems(crossed)


def test_resize_scales_points_exactly(world: tuple[Path, dict], tmp_path: Path) -> None:
    out, truth = world
    target = tmp_path / "small.parquet"
    result = _import(
        [str(out / ANNOTATIONS_NAME), "--images", str(out / ANIME_DIR), "--out", str(target), "--size", "128"]
    )
    assert result.exit_code == 0, result.output
    df = read_annotations(target)
    expected = _truth_points(truth)
    for row, pts in zip(df.itertuples(), points_array(df), strict=True):
        assert Path(row.path).parent == tmp_path / "small_images"
        assert load_image(row.path).shape == (128, 128, 3) and (row.width, row.height) == (128, 128)
        assert np.array_equal(pts, scale_points(expected[row.key], (256, 256), (128, 128)))
    # Pixel-centre convention: the image centre stays the centre, corners map onto corners' centres.
    assert np.allclose(
        scale_points(np.array([[127.5, 127.5], [-0.5, 255.5]]), (256, 256), (128, 128)),
        [[63.5, 63.5], [-0.5, 127.5]],
    )


def test_render_draws_group_colours(world: tuple[Path, dict], tmp_path: Path) -> None:
    target = _imported(world, tmp_path)
    result = runner.invoke(
        app, ["landmarks", "render", str(target), "--out", str(tmp_path / "r"), "--indices"]
    )
    assert result.exit_code == 0, result.output
    df = read_annotations(target)
    assert (tmp_path / "r" / "contact_sheet.png").is_file()
    overlay = load_image(tmp_path / "r" / f"{df['key'][0]}.png")
    assert overlay.shape == (512, 512, 3)
    x, y = np.round((points_array(df)[0][ANIME56.nose_tip] + 0.5) * 2 - 0.5).astype(int)
    assert tuple(overlay[y, x]) == GROUP_COLORS["nose"]


def test_check_reports_changed_images(world: tuple[Path, dict], tmp_path: Path) -> None:
    out, _ = world
    images = tmp_path / "imgs"
    shutil.copytree(out / ANIME_DIR, images)
    target = tmp_path / "a.parquet"
    assert (
        _import([str(out / ANNOTATIONS_NAME), "--images", str(images), "--out", str(target)]).exit_code == 0
    )
    ok = runner.invoke(app, ["landmarks", "check", str(target), "--strict"])
    assert ok.exit_code == 0, ok.output
    assert "contour" in ok.output and "0 problem(s)" in ok.output
    (images / "anime_002.png").write_bytes((images / "anime_001.png").read_bytes())
    bad = runner.invoke(app, ["landmarks", "check", str(target), "--strict"])
    assert bad.exit_code == 1 and "image_changed" in bad.output


def test_read_annotations_rejects_other_versions(world: tuple[Path, dict], tmp_path: Path) -> None:
    target = _imported(world, tmp_path)
    df = pd.read_parquet(target)
    df["schema_version"] = SCHEMA_VERSION + 1
    df.to_parquet(tmp_path / "future.parquet")
    with pytest.raises(AnnotationError, match="schema version"):
        read_annotations(tmp_path / "future.parquet")
    df.drop(columns=["sha256"]).to_parquet(tmp_path / "old.parquet")
    with pytest.raises(AnnotationError, match="sha256"):
        read_annotations(tmp_path / "old.parquet")


@pytest.mark.parametrize("fmt", ["cvat", "labelme"])
def test_bootstrap_places_a_usable_shape(
    world: tuple[Path, dict], tmp_path: Path, cascade_path: Path, fmt: str
) -> None:
    out, truth = world
    target = tmp_path / f"pre_{fmt}"
    result = runner.invoke(
        app,
        [
            "landmarks",
            "bootstrap",
            "--images",
            str(out / ANIME_DIR),
            "--out",
            str(target),
            "--format",
            fmt,
            "--cascade",
            str(cascade_path),
        ],
    )
    assert result.exit_code == 0, result.output
    _, records = read_annotation_source(target, fmt)
    assert records, "the anime cascade found no procedural face"
    expected = _truth_points(truth)
    for ann in records:
        pts = expected[Path(ann.name).stem]
        err = np.linalg.norm(ann.points - pts, axis=1).mean() / np.ptp(pts[:, 0])
        assert err < 0.15, f"{ann.name}: pre-annotation off by {err:.2f} face widths"
    df, problems = import_annotations(records, out / ANIME_DIR, fmt)
    assert len(df) == len(records), problems


def test_labelme_file_with_image_data_key_is_parsed(tmp_path: Path) -> None:
    doc = {
        "version": "5.0.1",
        "shapes": [
            {"label": "0", "points": [[1, 2]], "shape_type": "point"},
            {"label": "hair", "points": [[0, 0], [3, 3]], "shape_type": "polygon"},
        ],
        "imagePath": "../img/a.png",
        "imageData": "abc",
        "imageHeight": 10,
        "imageWidth": 12,
    }
    (tmp_path / "a.json").write_text(json.dumps(doc))
    fmt, (ann,) = read_annotation_source(tmp_path / "a.json")
    assert fmt == "labelme" and ann.labels == ("0",) and ann.points.tolist() == [[1.0, 2.0]]
    assert (ann.width, ann.height) == (12, 10)


def test_coco_visibility_and_multiple_faces(world: tuple[Path, dict], tmp_path: Path) -> None:
    out, truth = world
    pts = _truth_points(truth)
    doc = json.loads(
        write_coco(
            [ImageAnnotation(f"anime_00{i}.png", pts[f"anime_00{i}"], None, 256, 256) for i in range(3)]
        )
    )
    doc["annotations"][0]["keypoints"][3 * 10 + 2] = 0  # point 10 unlabelled
    doc["annotations"].append(dict(doc["annotations"][1], id=99))  # a second face on image 2
    path = tmp_path / "coco.json"
    path.write_text(json.dumps(doc))
    fmt, records = read_annotation_source(path)
    df, problems = import_annotations(records, out / ANIME_DIR, fmt)
    assert fmt == "coco" and df["key"].tolist() == ["anime_002"]
    assert [(p.name, p.code) for p in problems] == [
        ("anime_000.png", "missing_index"),
        ("anime_001.png", "wrong_count"),
    ]
    assert "10" in problems[0].detail


def test_bootstrap_with_a_learned_shape(world: tuple[Path, dict], tmp_path: Path, cascade_path: Path) -> None:
    out, truth = world
    target = _imported(world, tmp_path)
    result = runner.invoke(
        app,
        [
            "landmarks",
            "bootstrap",
            "--images",
            str(out / ANIME_DIR),
            "--out",
            str(tmp_path / "pre.xml"),
            "--shape",
            str(target),
            "--cascade",
            str(cascade_path),
        ],
    )
    assert result.exit_code == 0, result.output
    _, records = read_annotation_source(tmp_path / "pre.xml")
    expected = _truth_points(truth)
    for ann in records:
        pts = expected[Path(ann.name).stem]
        assert np.linalg.norm(ann.points - pts, axis=1).mean() / np.ptp(pts[:, 0]) < 0.15
