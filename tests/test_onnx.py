"""export --onnx: the LDN -> TPS -> PSN chain as one graph with a dynamic batch, onnxruntime against
PyTorch on demo portraits, translate --backend onnx, and the export-friendly linear solve."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from translator_world import tiny_model
from typer.testing import CliRunner

from pda_data.demo.group import group_photo
from pda_data.faces.detectors import make_detector
from pda_data.faces.landmarks import Landmarker
from pda_data.geometry.warp import _kernel, _sq_dist, gauss_jordan_solve, tps_warp
from pda_data.io.images import load_image, save_image
from pda_train.cli import app
from pda_train.inference.backends import OnnxBackend, TorchBackend
from pda_train.inference.export import ExportError, load_translator, read_translator_config
from pda_train.inference.onnx_export import demo_inputs
from pda_train.inference.translate import translate_photos

ONNX_TOLERANCE = 1e-4
runner = CliRunner()


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("onnx")
    model = tiny_model(root / "m.safetensors")
    res = runner.invoke(app, ["export", "--model", str(model), "--onnx", "-o", str(root / "m.onnx")],
                        env={"COLUMNS": "200"})
    return {"root": root, "model": model, "onnx": root / "m.onnx", "res": res}


def test_onnx_graph_matches_pytorch_on_demo_portraits(exported: dict) -> None:
    res = exported["res"]
    assert res.exit_code == 0, res.output
    assert "max |difference| =" in res.output
    stated = float(res.output.split("max |difference| =")[1].split()[0])
    assert stated <= ONNX_TOLERANCE
    model = load_translator(exported["model"])
    backend = OnnxBackend(exported["onnx"])
    assert backend.settings == read_translator_config(exported["model"]) and backend.image_size == 64
    x, lm = demo_inputs(5, model.image_size)
    for batch in (slice(0, 1), slice(0, 5)):  # the batch is dynamic: the graph was traced at 2
        anime, warped = backend(x[batch], lm[batch])
        assert anime.shape == warped.shape == (batch.stop, 3, 64, 64)
        ref_anime, ref_warped = TorchBackend(model)(x[batch], lm[batch])
        assert np.abs(anime - ref_anime).max() <= ONNX_TOLERANCE
        assert np.abs(warped - ref_warped).max() <= ONNX_TOLERANCE
    assert np.abs(warped - x).max() > 0.05  # the LDN warp is in the graph and moves pixels


def test_translate_with_the_onnx_backend(exported: dict) -> None:
    root = exported["root"]
    save_image(root / "in" / "group.png", group_photo(np.random.default_rng(0))[0])
    res = runner.invoke(app, ["translate", str(root / "in"), "--model", str(exported["onnx"]), "--backend",
                              "onnx", "-o", str(root / "onnx"), "--device", "cpu"], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    assert "(3 face(s), 0 left out)" in res.output
    # The same photo through the PyTorch backend gives the same pixels, up to uint8 rounding.
    translate_photos(load_translator(exported["model"]), [root / "in" / "group.png"], root / "torch",
                     make_detector("dlib-hog"), Landmarker())
    for name in ("group_face0.png", "group_face2.png", "group_pasted.png"):
        onnx_out, torch_out = (load_image(root / b / name).astype(int) for b in ("onnx", "torch"))
        assert np.abs(onnx_out - torch_out).max() <= 1
    bad = runner.invoke(app, ["translate", str(root / "in"), "--model", str(exported["model"]), "--backend",
                              "onnx", "-o", str(root / "x")])
    assert bad.exit_code == 2 and "not a loadable ONNX model" in bad.output
    with pytest.raises(ExportError, match="no such model file"):
        OnnxBackend(root / "missing.onnx")


def test_export_without_a_format_or_model_is_one_line(exported: dict, tmp_path) -> None:
    res = runner.invoke(app, ["export", "--model", str(exported["model"]), "-o", str(tmp_path / "m.onnx")])
    assert res.exit_code == 2 and "--onnx" in res.output and not (tmp_path / "m.onnx").exists()
    res = runner.invoke(app, ["export", "--model", str(tmp_path / "none.safetensors"), "--onnx", "-o",
                              str(tmp_path / "m.onnx")])
    assert res.exit_code == 2 and "no such model file" in res.output


def test_gauss_jordan_solve_matches_linalg_solve_on_spline_systems(monkeypatch: pytest.MonkeyPatch) -> None:
    g = torch.Generator().manual_seed(0)
    centres = torch.rand(4, 20, 2, generator=g, dtype=torch.float64) * 2 - 1
    k = _kernel(_sq_dist(centres, centres))  # zero diagonal: pivoting is required
    p = torch.cat([torch.ones(4, 20, 1, dtype=torch.float64), centres], -1)
    system = torch.cat([torch.cat([k, p], -1), torch.cat([p.transpose(1, 2), torch.zeros(4, 3, 3,
                       dtype=torch.float64)], -1)], 1)
    rhs = torch.rand(4, 23, 2, generator=g, dtype=torch.float64)
    ref = torch.linalg.solve(system, rhs)
    assert torch.allclose(gauss_jordan_solve(system, rhs), ref, atol=1e-8 * ref.abs().max())
    # And the warp built on it during export is the warp PyTorch runs.
    image = torch.rand(2, 3, 32, 32, generator=g)
    src = torch.rand(2, 17, 2, generator=g) * 1.2 - 0.6
    dst = src + 0.05 * torch.randn(2, 17, 2, generator=g)
    reference = tps_warp(image, src, dst)
    monkeypatch.setattr(torch.onnx, "is_in_onnx_export", lambda: True)  # tps_fit now solves by Gauss-Jordan
    assert torch.allclose(tps_warp(image, src, dst), reference, atol=1e-5)
