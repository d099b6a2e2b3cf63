"""Hostile inputs: FIFOs, device links, oversized files, markup in names, annotation fields of the wrong type,
image paths outside --images, unreadable or vanishing folders and files. Each is one row or line with its
reason, never a hang or a traceback."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from pda_data.annotations import ingest
from pda_data.annotations.formats.records import AnnotationFormatError
from pda_data.annotations.formats.registry import read_annotation_source
from pda_data.annotations.ingest import import_annotations
from pda_data.annotations.table import read_annotations
from pda_data.annotations.validate import REASONS
from pda_data.cli import app
from pda_data.curation.options import HUMAN_DEFAULTS
from pda_data.curation.run import run_curation
from pda_data.curation.table import read_portraits
from pda_data.io import images as image_io
from pda_data.io.files import RefusedFile, read_regular_file
from pda_data.io.images import load_image, save_image
from pda_data.io.sources import FolderError, iter_sources

REPO = Path(__file__).resolve().parents[1]
HAND_CSV = Path(__file__).parent / "fixtures" / "anime_0006_landmarks.csv"  # names anime_0006.png
runner = CliRunner()


class Hang(BaseException):
    """Raised by the alarm: a BaseException, so neither the CLI guard nor CliRunner swallows it."""


@pytest.fixture(autouse=True)
def deadline() -> Iterator[None]:
    """Fail a test that blocks (a FIFO opened for reading waits for a writer forever) instead of hanging."""

    def expire(signum: int, frame: object) -> None:
        raise Hang("blocked for 120 s: an input was opened or read without a check")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(120)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def _face_photo(samples_dir: Path, path: Path) -> Path:
    """A real selfie on a larger background (as the detector sees a raw photo), saved at ``path``."""
    canvas = np.full((480, 640, 3), (70, 90, 120), np.uint8)
    face = load_image(samples_dir / "selfie_female_222.jpg")
    canvas[120 : 120 + face.shape[0], 300 : 300 + face.shape[1]] = face
    path.parent.mkdir(parents=True, exist_ok=True)
    save_image(path, canvas)
    return path


def _crop(*args: str) -> object:
    return runner.invoke(app, ["crop-humans", *args, "--no-sheets"])


def _import(annotations: Path, images: Path, out: Path, *args: str) -> object:
    return runner.invoke(app, ["landmarks", "import", str(annotations), "--images", str(images), "--out",
                               str(out), *args])


def _cell(line: str) -> str:
    """A table row from its first cell on (the border and padding stripped)."""
    return line.lstrip("│┃ ")


def _lines(output: str, text: str) -> list[str]:
    return [line for line in output.splitlines() if text in line]


def _count(output: str, row: str) -> int:
    """The count of a row of the closing summary table."""
    match = re.search(rf"{re.escape(row)}\W+(\d+)", output)
    assert match, f"no summary row {row!r} in:\n{output}"
    return int(match[1])


def _reasons(out: Path) -> dict[str, tuple[str, str]]:
    """source -> (reason, detail) of every row of a curated folder's manifest."""
    df = read_portraits(out)
    return {row.source: (row.reason, row.detail) for row in df.itertuples()}


# --------------------------------------------------------------------------------- files that are not files


def test_read_regular_file_refuses_before_reading(tmp_path: Path) -> None:
    fifo = tmp_path / "x.jpg"
    os.mkfifo(fifo)
    (tmp_path / "zero.jpg").symlink_to("/dev/zero")
    (tmp_path / "big.bin").write_bytes(b"\1" * 101)
    cases = {
        fifo: ("not_regular_file", "FIFO"),
        tmp_path / "zero.jpg": ("not_regular_file", "character device"),
        tmp_path / "big.bin": ("too_large", "101 bytes > 100"),
        tmp_path: ("not_regular_file", "folder"),
        tmp_path / "gone.jpg": ("unreadable", "No such file or directory"),
    }
    for path, (reason, detail) in cases.items():
        with pytest.raises(RefusedFile) as info:
            read_regular_file(path, 100)
        assert (info.value.reason, info.value.detail) == (reason, detail)
        assert str(info.value) == f"{path}: {reason} ({detail})"
    assert read_regular_file(tmp_path / "big.bin", 101) == b"\1" * 101


@pytest.fixture(scope="module")
def special_run(samples_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str, int]:
    """crop-humans, in a subprocess with a timeout, over a folder with a FIFO named .jpg, a .jpg linked to
    /dev/zero and one real face: (inputs, out, output, exit code)."""
    root = tmp_path_factory.mktemp("special")
    inputs = root / "in"
    _face_photo(samples_dir, inputs / "face.png")
    os.mkfifo(inputs / "x.jpg")
    (inputs / "zero.jpg").symlink_to("/dev/zero")
    out = root / "out"
    cmd = [sys.executable, "-c", "from pda_data.cli import main; main()", "crop-humans", str(inputs), "--out",
           str(out)]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=240)
    except subprocess.TimeoutExpired:
        pytest.fail("crop-humans hung on a FIFO or /dev/zero input")
    return inputs, out, proc.stdout + proc.stderr, proc.returncode


def test_fifo_named_jpg_is_a_row_not_a_hang(special_run: tuple[Path, Path, str, int]) -> None:
    inputs, out, output, code = special_run
    assert code == 0, output
    assert "Traceback" not in output
    fifo = str(inputs / "x.jpg")
    assert _lines(output, "warning:") and f"warning: {fifo}: not a regular file (FIFO)" in output.splitlines()
    assert _reasons(out)[fifo] == ("not_regular_file", f"{fifo}: not a regular file (FIFO)")
    assert _count(output, "error: not_regular_file") == 2
    assert _count(output, "kept") == 1  # the run went on past the FIFO
    assert (out / "rejects_sheet.jpg").is_file()  # the sheet re-reads rejects: refused again, not hung


def test_symlink_to_dev_zero_is_a_row_not_a_hang(special_run: tuple[Path, Path, str, int]) -> None:
    inputs, out, output, code = special_run
    assert code == 0 and "Traceback" not in output
    link = str(inputs / "zero.jpg")
    assert f"warning: {link}: not a regular file (character device)" in output.splitlines()
    reason, detail = _reasons(out)[link]
    assert reason == "not_regular_file" and "character device" in detail
    assert read_portraits(out).set_index("source").loc[link, "source_sha256"] == ""


def test_oversized_file_is_refused_before_reading(
    samples_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    big = _face_photo(samples_dir, tmp_path / "in" / "big.png")
    limit = big.stat().st_size - 1
    monkeypatch.setattr(image_io, "MAX_FILE_BYTES", limit)
    result = _crop(str(tmp_path / "in"), "--out", str(tmp_path / "out"))
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    line = f"warning: {big}: image too large ({big.stat().st_size} bytes > {limit})"
    assert line in result.output.splitlines()
    assert _reasons(tmp_path / "out")[str(big)] == ("too_large", line.removeprefix("warning: "))
    assert _count(result.output, "error: too_large") == 1


def test_vanishing_file_is_an_unreadable_row(samples_dir: Path, tmp_path: Path) -> None:
    """b.png is listed with a.png, then deleted before it is read: its row says so and the run goes on."""
    inputs = tmp_path / "in"
    _face_photo(samples_dir, inputs / "a.png")
    _face_photo(samples_dir, inputs / "b.png")

    def delete_next(rows: list[dict]) -> None:
        (inputs / "b.png").unlink(missing_ok=True)

    summary = run_curation([inputs], tmp_path / "out", HUMAN_DEFAULTS, sheets=False, on_item=delete_next)
    gone = str(inputs / "b.png")
    assert summary.reasons["unreadable"] == 1 and summary.kept == 1
    assert _reasons(tmp_path / "out")[gone] == (
        "unreadable", f"{gone}: file cannot be read (No such file or directory)")


def test_missing_file_in_a_list_is_an_unreadable_line(tmp_path: Path) -> None:
    listing = tmp_path / "inputs.txt"
    listing.write_text("gone.jpg\n")
    result = _crop(str(listing), "--out", str(tmp_path / "out"))
    assert result.exit_code == 0, result.output
    gone = str(tmp_path / "gone.jpg")
    assert f"warning: {gone}: file cannot be read (No such file or directory)" in result.output.splitlines()
    assert _reasons(tmp_path / "out")[gone][0] == "unreadable"
    assert _count(result.output, "error: unreadable") == 1 and "Traceback" not in result.output


# ------------------------------------------------------------------------------------------- markup in names


def test_markup_in_names_is_printed_verbatim_by_crop_humans(samples_dir: Path, tmp_path: Path) -> None:
    inputs = tmp_path / "in"
    face = _face_photo(samples_dir, inputs / "[red]x[" / "].jpg")  # the path holds "[red]x[/].jpg"
    corrupt = inputs / "a[" / "]b.png"  # the path holds "a[/]b.png"
    corrupt.parent.mkdir()
    corrupt.write_text("not a picture")
    out = tmp_path / "o[bold]"
    result = _crop(str(inputs), "--out", str(out))
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output and "internal error" not in result.output
    assert "[red]x[/].jpg" in str(face) and "a[/]b.png" in str(corrupt)
    lines = _lines(result.output, "warning:")
    assert lines == [f"warning: {corrupt}: not an image file"]
    assert f"manifest: {out / 'manifest.parquet'}" in result.output.splitlines()
    assert _reasons(out)[str(face)] == ("", "")  # kept
    assert _count(result.output, "kept") == 1 and _count(result.output, "error: not_image") == 1


def _hand_csv(name: str, x0: str | None = None) -> str:
    """The hand-annotated anime_0006 CSV with its image renamed ``name`` (and its x0 cell ``x0``)."""
    header, row = HAND_CSV.read_text().splitlines()[:2]
    cells = row.split(",")
    cells[0] = name
    if x0 is not None:
        cells[1] = x0
    return f"{header}\n{','.join(cells)}\n"


def _hand_points() -> np.ndarray:
    """The 56 hand-annotated points of anime_0006.png."""
    (record,) = read_annotation_source(HAND_CSV)[1]
    return record.points


def test_markup_in_names_is_printed_verbatim_by_landmarks_import(samples_dir: Path, tmp_path: Path) -> None:
    images = tmp_path / "images"
    (images / "[red]a[").mkdir(parents=True)
    (images / "[red]a[" / "].png").write_bytes((samples_dir / "anime_0006.png").read_bytes())
    ann = tmp_path / "[bold]ann.csv"
    ann.write_text(_hand_csv("[red]a[/].png") + _hand_csv("[bold]gone[/].png").splitlines()[1] + "\n")
    out = tmp_path / "[red]o.parquet"
    result = _import(ann, images, out)
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output and "internal error" not in result.output
    (line,) = _lines(result.output, "[bold]gone[/].png")
    assert "image_missing" in line and str(images.resolve()) in line
    assert f"csv: 2 annotated image(s), 1 valid, 1 invalid -> {out}" in result.output.splitlines()
    assert read_annotations(out)["key"].tolist() == ["[red]a[__]"]

    broken = tmp_path / "[red]broken[.json"
    broken.write_text("{")
    result = _import(broken, images, tmp_path / "b.parquet", "--format", "coco")
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert result.output.startswith(f"error: {broken}: not valid JSON")


# -------------------------------------------------------------------------------- annotation image files


def _records(text: str, path: Path) -> list:
    """The records of annotation ``text`` written to ``path``."""
    path.write_text(text)
    return read_annotation_source(path)[1]


def _import_one(name: str, images: Path) -> list:
    """The problems of importing the hand annotation for image ``name``."""
    df, problems = import_annotations(_records(_hand_csv(name), images.parent / "one.csv"), images, "csv")
    assert df.empty
    return problems


@pytest.fixture()
def images(samples_dir: Path, tmp_path: Path) -> Path:
    """An images folder holding anime_0006.png, which the hand CSV annotates validly."""
    folder = tmp_path / "images"
    folder.mkdir()
    (folder / "anime_0006.png").write_bytes((samples_dir / "anime_0006.png").read_bytes())
    return folder


def test_annotated_fifo_and_oversized_images_are_problems(
    images: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    os.mkfifo(images / "fifo.png")
    (problem,) = _import_one("fifo.png", images)
    detail = f"{images / 'fifo.png'}: not a regular file (FIFO)"
    assert (problem.code, problem.detail) == ("not_regular_file", detail)
    size = (images / "anime_0006.png").stat().st_size
    monkeypatch.setattr(image_io, "MAX_FILE_BYTES", size - 1)
    (problem,) = _import_one("anime_0006.png", images)
    assert problem.code == "too_large" and f"{size} bytes > {size - 1}" in problem.detail


def test_annotated_fifo_on_the_command_line(images: Path, tmp_path: Path) -> None:
    os.mkfifo(images / "fifo.png")
    ann = tmp_path / "a.csv"
    ann.write_text(_hand_csv("anime_0006.png") + _hand_csv("fifo.png").splitlines()[1] + "\n")
    out = tmp_path / "a.parquet"
    result = _import(ann, images, out)
    assert result.exit_code == 0, result.output
    (line,) = _lines(result.output, "(FIFO)")
    assert _cell(line).startswith("fifo.png") and "│ not_regular_file" in line
    assert f"{images / 'fifo.png'}: not a regular file (FIFO)" in line
    assert "csv: 2 annotated image(s), 1 valid, 1 invalid" in result.output
    assert "Traceback" not in result.output
    assert read_annotations(out)["key"].tolist() == ["anime_0006"]


def test_annotation_file_that_is_a_fifo_fails_with_one_line(images: Path, tmp_path: Path) -> None:
    fifo = tmp_path / "ann.json"
    os.mkfifo(fifo)
    with pytest.raises(AnnotationFormatError, match="not_regular_file"):
        read_annotation_source(fifo, "coco")
    result = _import(fifo, images, tmp_path / "a.parquet", "--format", "coco")
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert result.output.splitlines() == [f"error: {fifo}: not_regular_file (FIFO)"]


def test_check_reports_an_image_replaced_by_a_fifo(images: Path, tmp_path: Path) -> None:
    ann = tmp_path / "a.csv"
    ann.write_text(_hand_csv("anime_0006.png"))
    out = tmp_path / "a.parquet"
    assert _import(ann, images, out).exit_code == 0
    path = read_annotations(out)["path"][0]
    os.unlink(path)
    os.mkfifo(path)
    result = runner.invoke(app, ["landmarks", "check", str(out)])
    assert result.exit_code == 0, result.output
    (line,) = _lines(result.output, "(FIFO)")
    assert _cell(line).startswith("anime_0006 ") and "│ not_regular_file" in line
    assert "Traceback" not in result.output
    assert "1 problem(s) in 1 image(s)" in result.output


def _spy_reads(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Record every image file the import reads."""
    read: list[Path] = []
    real = ingest.read_image_file

    def spy(path: Path) -> bytes:
        read.append(Path(path))
        return real(path)

    monkeypatch.setattr(ingest, "read_image_file", spy)
    return read


@pytest.mark.parametrize("how", ["dotdot", "absolute", "symlink", "dev_zero_link"])
def test_image_outside_images_is_not_read(
    images: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    secret = outside / "secret.png"
    secret.write_bytes((images / "anime_0006.png").read_bytes())  # a valid image: importing it would succeed
    names = {"dotdot": "../outside/secret.png", "absolute": str(secret), "symlink": "link.png",
             "dev_zero_link": "zero.png"}
    (images / "link.png").symlink_to(secret)
    (images / "zero.png").symlink_to("/dev/zero")
    read = _spy_reads(monkeypatch)
    ann = tmp_path / "a.csv"
    ann.write_text(_hand_csv(names[how]))
    out = tmp_path / "a.parquet"
    result = _import(ann, images, out)
    assert result.exit_code == 0, result.output
    (line,) = _lines(result.output, "resolves outside --images; not read")
    assert _cell(line).startswith(names[how]) and "│ outside_images" in line
    assert "csv: 1 annotated image(s), 0 valid, 1 invalid" in result.output
    assert "Traceback" not in result.output
    assert read == [] and read_annotations(out).empty


def test_image_named_with_dotdot_inside_images_still_imports(images: Path, tmp_path: Path) -> None:
    (images / "sub").mkdir()
    records = _records(_hand_csv("sub/../anime_0006.png"), tmp_path / "a.csv")
    df, problems = import_annotations(records, images, "csv")
    assert problems == [] and df["path"].tolist() == [str(images / "anime_0006.png")]


# ------------------------------------------------------------------------------- annotation fields


def _coco(**changes: object) -> dict:
    """A COCO document for one image, its fields overridden by ``changes`` (``image_*`` / ``ann_*``)."""
    image = {"id": 1, "file_name": "anime_0006.png", "width": 256, "height": 256}
    ann = {"id": 1, "image_id": 1, "keypoints": [1.0, 2.0, 2] * 56}
    for key, value in changes.items():
        part, _, field = key.partition("_")
        (image if part == "image" else ann)[field] = value
    if "image_id" in changes:  # an annotation follows its image's id
        ann["image_id"] = changes["image_id"]
    return {"images": [image], "annotations": [ann]}


def _labelme(**changes: object) -> dict:
    doc = {"shapes": [{"label": str(i), "points": [[1.0, 2.0]], "shape_type": "point"} for i in range(56)],
           "imagePath": "anime_0006.png", "imageWidth": 256, "imageHeight": 256}
    doc.update(changes)
    return doc


def _cvat(attrs: str = 'name="anime_0006.png" width="256" height="256"', points: str = "1,2") -> str:
    singles = "".join(f'<points label="{i}" points="{points if i == 7 else "1,2"}"/>' for i in range(56))
    return f"<annotations><image id=\"0\" {attrs}>{singles}</image></annotations>"


FIELD_CASES = {
    "coco_keypoints_number": ("coco", _coco(ann_keypoints=5), "keypoints is a number (5), expected a list"),
    "coco_keypoints_length": ("coco", _coco(ann_keypoints=[1.0] * 167), "keypoints holds 167 values"),
    "coco_keypoints_text": ("coco", _coco(ann_keypoints=[1.0, "2", 2] * 56),
                            "keypoints[1] is a string ('2'), expected a number"),
    "coco_id_list": ("coco", _coco(image_id=[1]), "id is a list ([1]), expected an integer or a string"),
    "coco_id_dict": ("coco", _coco(image_id={"a": 1}), "id is an object ({'a': 1})"),
    "coco_width_text": ("coco", _coco(image_width="256"),
                        "width is a string ('256'), expected a positive integer"),
    "coco_height_fraction": ("coco", _coco(image_height=12.5), "height is a number (12.5)"),
    "coco_file_name_number": ("coco", _coco(image_file_name=5), "file_name is a number (5)"),
    "labelme_shapes_object": ("labelme", _labelme(shapes={}), "shapes is an object ({}), expected a list"),
    "labelme_points_triple": ("labelme", _labelme(shapes=[{"label": "0", "points": [[1, 2, 3]]}]),
                              "point shape '0' points is a list ([[1, 2, 3]]), expected one [x, y] pair"),
    "labelme_points_text": ("labelme", _labelme(shapes=[{"label": "0", "points": [["1", 2]]}]),
                            "point shape '0' points[0][0] is a string ('1'), expected a number"),
    "labelme_shape_number": ("labelme", _labelme(shapes=[7]),
                             "shapes[0] is a number (7), expected an object"),
    "labelme_width_text": ("labelme", _labelme(imageWidth="wide"), "imageWidth is a string ('wide')"),
    "labelme_image_path_number": ("labelme", _labelme(imagePath=5), "imagePath is a number (5)"),
    "csv_coordinate_text": ("csv", _hand_csv("anime_0006.png", x0="abc"),
                            "x0 is a string ('abc'), expected a number"),
    "csv_empty_name": ("csv", _hand_csv(" "), "image is a string (' '), expected an image file name"),
    "cvat_points_garbage": ("cvat", _cvat(points="1,x"),
                            "points pair is a string ('1,x'), expected x,y numbers"),
    "cvat_points_triple": ("cvat", _cvat(points="1,2,3"), "points pair is a string ('1,2,3')"),
    "cvat_width_garbage": ("cvat", _cvat('name="anime_0006.png" width="2x6" height="256"'),
                           "width is a string ('2x6'), expected a positive integer"),
    "cvat_no_name": ("cvat", _cvat('width="256" height="256"'),
                     "name is missing, expected an image file name"),
}


@pytest.mark.parametrize("case", sorted(FIELD_CASES))
def test_each_bad_field_is_a_problem_naming_it(images: Path, tmp_path: Path, case: str) -> None:
    fmt, doc, detail = FIELD_CASES[case]
    suffix = {"coco": ".json", "labelme": ".json", "csv": ".csv", "cvat": ".xml"}[fmt]
    path = tmp_path / f"{case}{suffix}"
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    used, records = read_annotation_source(path, fmt)
    df, problems = import_annotations(records, images, used)
    assert df.empty and len(problems) == 1
    assert problems[0].code == "bad_field"
    assert detail in problems[0].detail, problems[0].detail


def test_bad_fields_on_the_command_line(images: Path, tmp_path: Path) -> None:
    """Several broken images in one COCO file: each its own line, the good one imported, exit 0."""
    good = [v for x, y in _hand_points().tolist() for v in (x, y, 2)]
    doc = {
        "images": [{"id": 1, "file_name": "anime_0006.png", "width": 256, "height": 256},
                   {"id": 2, "file_name": "bad2.png"}, {"id": [3], "file_name": "bad3.png"},
                   {"id": 4, "file_name": "bad4.png", "width": "256"}],
        "annotations": [{"id": 1, "image_id": 1, "keypoints": good},
                        {"id": 2, "image_id": 2, "keypoints": 5},
                        {"id": 3, "image_id": [3], "keypoints": good},
                        {"id": 4, "image_id": 4, "keypoints": good}],
    }
    path = tmp_path / "coco.json"
    path.write_text(json.dumps(doc))
    out = tmp_path / "a.parquet"
    result = _import(path, images, out)
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    for name, detail in [("bad2.png", "keypoints is a number (5)"), ("bad3.png", "id is a list ([3])"),
                         ("bad4.png", "width is a string ('256')")]:
        (line,) = _lines(result.output, name)
        assert "bad_field" in line and detail in line
    assert "coco: 4 annotated image(s), 1 valid, 3 invalid" in result.output
    assert read_annotations(out)["key"].tolist() == ["anime_0006"]


@pytest.mark.parametrize("doc", [{"images": 5, "annotations": []}, [1, 2],
                                 {"images": [], "annotations": [{"id": 3, "image_id": {"x": 1}}]}])
def test_a_file_with_no_images_fails_with_one_line(images: Path, tmp_path: Path, doc: object) -> None:
    path = tmp_path / "coco.json"
    path.write_text(json.dumps(doc))
    result = _import(path, images, tmp_path / "a.parquet", "--format", "coco")
    assert result.exit_code == 2 and "Traceback" not in result.output
    (line,) = result.output.splitlines()
    assert line.startswith(f"error: {path}: ")
    assert not (tmp_path / "a.parquet").exists()


# ---------------------------------------------------------------------------------------------- folders


def _refuse_listing(monkeypatch: pytest.MonkeyPatch, folder: Path, error: OSError) -> None:
    """Make ``os.scandir`` (which os.walk lists folders with) fail for ``folder`` the way the OS would."""
    real = os.scandir

    def scandir(path: object = ".") -> object:
        if os.fspath(path) == str(folder):
            raise error
        return real(path)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "scandir", scandir)


def _folder_with_subfolder(samples_dir: Path, tmp_path: Path) -> tuple[Path, Path]:
    """in/a.png and in/locked/b.png, both real faces: (in, in/locked)."""
    inputs = tmp_path / "in"
    _face_photo(samples_dir, inputs / "a.png")
    _face_photo(samples_dir, inputs / "locked" / "b.png")
    return inputs, inputs / "locked"


def _assert_one_folder_warning(result: object, locked: Path, reason: str) -> None:
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    expected = f"warning: {locked}: cannot read folder ({reason})"
    assert _lines(result.output, "cannot read folder") == [expected]
    assert _count(result.output, "unreadable folders") == 1
    assert _count(result.output, "kept") == 1  # the readable folder's face


def test_unreadable_subfolder_is_one_warning_and_counted(
    samples_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    inputs, locked = _folder_with_subfolder(samples_dir, tmp_path)
    _refuse_listing(monkeypatch, locked, PermissionError(13, "Permission denied", str(locked)))
    result = _crop(str(inputs), "--out", str(tmp_path / "out"))
    _assert_one_folder_warning(result, locked, "Permission denied")
    assert list(_reasons(tmp_path / "out")) == [str(inputs / "a.png")]


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads folders whatever their mode")
def test_chmod_000_subfolder_is_one_warning_and_counted(samples_dir: Path, tmp_path: Path) -> None:
    inputs, locked = _folder_with_subfolder(samples_dir, tmp_path)
    locked.chmod(0)
    try:
        result = _crop(str(inputs), "--out", str(tmp_path / "out"))
    finally:
        locked.chmod(0o755)
    _assert_one_folder_warning(result, locked, "Permission denied")


def test_folder_deleted_while_walking_is_reported(tmp_path: Path) -> None:
    """iter_sources stays lazy: b/ is listed after a/'s images are taken, so deleting it then is reported."""
    for name in ("a/1.png", "b/2.png"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    errors: list[FolderError] = []
    items = iter_sources([tmp_path], on_folder_error=errors.append)
    first = next(items)
    assert first.path == str(tmp_path / "a" / "1.png") and errors == []
    (tmp_path / "b" / "2.png").unlink()
    (tmp_path / "b").rmdir()
    assert list(items) == []
    assert [str(e) for e in errors] == [f"{tmp_path / 'b'}: cannot read folder (No such file or directory)"]


def test_a_fifo_given_as_input_is_a_row(tmp_path: Path) -> None:
    fifo = tmp_path / "clip.jpg"
    os.mkfifo(fifo)
    result = _crop(str(fifo), "--out", str(tmp_path / "out"))
    assert result.exit_code == 0, result.output
    assert f"warning: {fifo}: not a regular file (FIFO)" in result.output.splitlines()
    detail = f"{fifo}: not a regular file (FIFO)"
    assert _reasons(tmp_path / "out") == {str(fifo): ("not_regular_file", detail)}
    assert _count(result.output, "error: not_regular_file") == 1 and "Traceback" not in result.output


def test_the_new_reasons_are_known_and_documented() -> None:
    """Every reason a refused file or annotation can get is in its reasons table and in the docs."""
    docs = (REPO / "docs" / "curation.md").read_text() + (REPO / "docs" / "annotations.md").read_text()
    for reason in ("not_regular_file", "too_large", "unreadable", "outside_images", "bad_field"):
        assert f"`{reason}`" in docs, reason
    assert {"not_regular_file", "too_large", "unreadable"} <= set(image_io.REASONS)
    assert {"not_regular_file", "too_large", "unreadable", "outside_images", "bad_field"} <= set(REASONS)
