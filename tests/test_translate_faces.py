"""Every face of a photo: the demo group photo translated face by face and pasted back, faces left out with
their reason, and the paste-back weights (largest face on top, one blend per pixel)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from translator_world import tiny_model
from typer.testing import CliRunner

from pda_data.demo.group import GROUP_WIDTHS, group_photo
from pda_data.faces.detectors import make_detector
from pda_data.faces.landmarks import Landmarker
from pda_data.io.images import load_image, save_image
from pda_train.cli import app
from pda_train.cli import translate as cli_translate
from pda_train.inference.export import load_translator
from pda_train.inference.faces import face_options, find_faces
from pda_train.inference.paste import crop_mask, paste_faces
from pda_train.inference.translate import translate_photos

runner = CliRunner()


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    root = tmp_path_factory.mktemp("group")
    photo, placed = group_photo(np.random.default_rng(0))
    save_image(root / "group.png", photo)
    model = tiny_model(root / "m.safetensors")
    return {"root": root, "photo": photo, "placed": placed, "model": model,
            "faces": (make_detector("dlib-hog"), Landmarker())}


def _invoke(args: list[str], monkeypatch: pytest.MonkeyPatch) -> object:
    monkeypatch.setattr(cli_translate.console, "width", 200)
    return runner.invoke(app, args, env={"COLUMNS": "200"})


def test_group_photo_every_face_translated_and_pasted_back(scene: dict, monkeypatch: pytest.MonkeyPatch
                                                           ) -> None:
    root, photo, placed = scene["root"], scene["photo"], scene["placed"]
    out = root / "out"
    res = _invoke(["translate", str(root / "group.png"), "--model", str(scene["model"]), "-o", str(out),
                   "--device", "cpu"], monkeypatch)
    assert res.exit_code == 0, res.output
    assert "1 of 1 photo(s) translated (3 face(s), 0 left out)" in res.output
    names = {p.name for p in out.iterdir()}
    assert names == {"group_face0.png", "group_face1.png", "group_face2.png", "group_pasted.png", "sheet.png"}
    # The same faces, largest first, each where the demo placed it.
    kept, _ = find_faces(photo, *scene["faces"], face_options(64))
    assert len(kept) == len(GROUP_WIDTHS) == 3
    for face, truth in zip(kept, placed, strict=True):
        assert np.abs(face.landmarks.mean(0) - truth.mean(0)).max() < 4.0
    composite = load_image(out / "group_pasted.png")
    assert composite.shape == photo.shape
    crops = [load_image(out / f"group_face{k}.png") for k in range(3)]
    coverage = paste_faces(photo, crops, [f.affine for f in kept]).coverage
    changed = (composite != photo).any(-1)
    assert changed.sum() > 0 and not (changed & (coverage == 0)).any()  # only inside the pasted regions
    for face in kept:  # and each face's own middle is replaced by its anime crop
        cx, cy = face.landmarks.mean(0).round().astype(int)
        middle = (slice(cy - 10, cy + 10), slice(cx - 10, cx + 10))
        assert changed[middle].mean() > 0.9 and coverage[middle].min() > 0.99


def test_largest_only_and_faces_left_out_are_listed(scene: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    root, model = scene["root"], str(scene["model"])
    (result,) = translate_photos(load_translator(model), [root / "group.png"], root / "one", *scene["faces"],
                                 options=face_options(64, "largest"), paste=False)
    assert (result.faces, result.outputs, result.skipped) == (1, ("group_face0.png",), ())
    assert {p.name for p in (root / "one").iterdir()} == {"group_face0.png", "sheet.png"}
    res = _invoke(["translate", str(root / "group.png"), "--model", model, "-o", str(root / "big"),
                   "--min-face", "105", "--device", "cpu"], monkeypatch)
    assert res.exit_code == 0, res.output
    assert "(1 face(s), 2 left out)" in res.output
    assert res.output.count("face left out:") == 2 and res.output.count("too_small (face ") == 2


def test_paste_back_puts_the_largest_face_on_top_with_one_blend_per_pixel() -> None:
    photo = np.full((60, 90, 3), 40, np.uint8)
    big, small = np.full((32, 32, 3), 250, np.uint8), np.full((16, 16, 3), 130, np.uint8)
    # photo -> crop affines: the big crop spans photo x 10..50, the small one x 40..60 (they overlap)
    a_big = np.array([[32 / 40, 0, -10 * 32 / 40], [0, 32 / 40, -10 * 32 / 40]])
    a_small = np.array([[16 / 20, 0, -40 * 16 / 20], [0, 16 / 20, -15 * 16 / 20]])
    pasted = paste_faces(photo, [big, small], [a_big, a_small], feather=0.25)
    assert pasted.coverage.max() <= 1.0 + 1e-6 and pasted.coverage.min() >= 0.0
    # The expected composite: w_big = a_big, w_small = a_small * (1 - a_big), photo the rest.
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    a1 = cv2.warpAffine(crop_mask(32, 0.25), a_big, (90, 60), flags=flags)
    a2 = cv2.warpAffine(crop_mask(16, 0.25), a_small, (90, 60), flags=flags)
    expected = 250 * a1 + 130 * a2 * (1 - a1) + 40 * (1 - a1) * (1 - a2)
    np.testing.assert_allclose(pasted.image[..., 0], expected, atol=0.51)
    assert ((a1 > 0) & (a2 > 0)).sum() > 20  # the test does cover an overlap
    full = a1 >= 1.0 - 1e-6
    assert (pasted.image[full] == 250).all()  # where the big face is opaque, only it shows
    assert (pasted.image[pasted.coverage == 0] == 40).all()  # outside every mask the photo is exact
