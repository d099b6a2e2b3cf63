"""Both command lines: every command's help renders, stays light, and shares option names and choices."""

from __future__ import annotations

import subprocess
import sys
import typing
from enum import Enum
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import typer
from typer.testing import CliRunner

from pda_data.cli import app as data_app
from pda_data.faces.detection import DETECTORS
from pda_data.geometry.crop import resize_to_model
from pda_data.schema import normalize_points
from pda_data.shards.names import PACK_FLAGS, pack_command
from pda_train.cli import app as train_app
from pda_train.inference.translate import translate_crops

runner = CliRunner()
HEAVY = ("torch", "cv2", "dlib", "datasets")
# Commands that only read; every other command writes, and takes --out/-o.
READ_ONLY = {("verify",), ("landmarks", "check"), ("describe",), ("serve",)}


def _commands(group: Any, prefix: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    """(name path, command) of every leaf command under a click group."""
    found = []
    for name, command in sorted(group.commands.items()):
        path = (*prefix, name)
        if hasattr(command, "commands"):
            found += _commands(command, path)
        else:
            found.append((path, command))
    return found


ALL = [(a, path, cmd) for a in (data_app, train_app) for path, cmd in _commands(typer.main.get_group(a))]


@pytest.mark.parametrize(("app", "path", "command"), ALL, ids=[" ".join(p) for _, p, _ in ALL])
def test_every_command_help_renders(app: typer.Typer, path: tuple[str, ...], command: Any) -> None:
    result = runner.invoke(app, [*path, "--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    first_line = (command.help or "").strip().splitlines()[0]
    assert first_line and " ".join(first_line.split()[:6]) in " ".join(result.output.split())


def test_top_level_help_lists_every_command() -> None:
    for app in (data_app, train_app):
        result = runner.invoke(app, ["--help"], terminal_width=200)
        assert result.exit_code == 0, result.output
        for name in typer.main.get_group(app).commands:
            assert name in result.output


def test_building_the_help_imports_no_heavy_library() -> None:
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from pda_data.cli import app as d\n"
        "from pda_train.cli import app as t\n"
        "r = CliRunner()\n"
        "for app, args in ((d, ['--help']), (t, ['--help']), (d, ['crop-cosers', '--help']), "
        "(d, ['synth-aug', '--help']), (d, ['pack', '--help']), (t, ['translate', '--help']), "
        "(t, ['run', '--help'])):\n"
        "    assert r.invoke(app, args).exit_code == 0, args\n"
        f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == ""


def _annotation(param: Any) -> type:
    """The Python type a Typer option was declared with (``X | None`` unwrapped)."""
    annotation = param.type_descriptor.annotation
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    return args[0] if args else annotation


@pytest.mark.parametrize(("app", "path", "command"), ALL, ids=[" ".join(p) for _, p, _ in ALL])
def test_writing_commands_take_out_and_shared_names(
    app: typer.Typer, path: tuple[str, ...], command: Any
) -> None:
    options = {opt: p for p in command.params for opt in p.opts}
    if path not in READ_ONLY:
        assert "--out" in options and "-o" in options, path
    assert "--format" not in options or path[0] == "landmarks", "image formats are --image-format"
    for name in ("--image-format", "--detector", "--device", "--amp", "--stage", "--role", "--split"):
        if name in options:
            assert issubclass(_annotation(options[name]), Enum), (path, name)
    if "--workers" in options:
        assert options["--workers"].type_descriptor.parameter_info.min == 1
    if "--detector" in options:
        assert {m.value for m in _annotation(options["--detector"])} <= set(DETECTORS)


def test_pack_records_a_command_line_of_its_own_options() -> None:
    help_text = " ".join(runner.invoke(data_app, ["pack", "--help"], terminal_width=200).output.split())
    for flag in PACK_FLAGS.values():
        assert flag in help_text
    line = pack_command(
        "S", {"anime": "a b.parquet"}, test_fraction=0.1, shard_size=5, max_shard_bytes=9, image_format="jpg",
        seed=3,
    )
    assert line == (
        "pda-data pack --out S --anime 'a b.parquet' --test-fraction 0.1 --shard-size 5 "
        "--max-shard-bytes 9 --image-format jpg --seed 3"
    )


def test_translate_rejects_unknown_detector_and_ranges(tmp_path: Path) -> None:
    args = ["translate", str(tmp_path), "--model", "m", "-o", "o", "--detector", "mtcnn"]
    bad = runner.invoke(train_app, args)
    assert bad.exit_code == 2 and "mtcnn" in bad.output
    frac = runner.invoke(data_app, ["pack", "-o", str(tmp_path / "S"), "--test-fraction", "1.5"])
    assert frac.exit_code == 2 and "test-fraction" in frac.output
    args = ["synth-aug", "--humans", "h", "--cosers", "c", "-o", "o", "--workers", "0"]
    workers = runner.invoke(data_app, args)
    assert workers.exit_code == 2 and "workers" in workers.output


@pytest.mark.parametrize(("width", "size"), [(256, 64), (100, 64), (48, 64), (64, 64)])
def test_resize_to_model_maps_points_with_the_pixel_centre_convention(width: int, size: int) -> None:
    """A blob at known crop pixels lands where resize_to_model says (intensity centroid, 0.05 px)."""
    yy, xx = np.mgrid[0:width, 0:width].astype(np.float64)
    centres = np.array([[0.3 * width + 0.25, 0.4 * width - 0.3], [0.7 * width - 0.4, 0.6 * width + 0.15]])
    sigma = width / 16
    image = np.zeros((width, width), np.float64)
    for cx, cy in centres:
        image += np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * sigma**2))
    crop = np.clip(image * 250, 0, 255).round().astype(np.uint8)[..., None].repeat(3, axis=2)
    resized, mapped = resize_to_model(crop, centres, size)
    assert resized.shape == (size, size, 3)
    gy, gx = np.mgrid[0:size, 0:size].astype(np.float64)
    lum = resized[..., 0].astype(np.float64)
    for (mx, my) in mapped:
        near = (np.hypot(gx - mx, gy - my) < 0.2 * size) * lum
        found = np.array([(near * gx).sum(), (near * gy).sum()]) / near.sum()
        np.testing.assert_allclose(found, [mx, my], atol=0.05)
    expected = (centres + 0.5) * size / width - 0.5
    np.testing.assert_allclose(mapped, expected, atol=1e-12)


class _Recorder(torch.nn.Module):
    """A stand-in translator that returns its input and records the landmarks it was given."""

    image_size = 64

    def __init__(self) -> None:
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(1))
        self.seen: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor, lm: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, None]:
        self.seen.append(lm)
        return x, x, None


def test_translate_feeds_the_model_the_stream_resize() -> None:
    rng = np.random.default_rng(0)
    crops = [rng.integers(0, 256, (256, 256, 3), dtype=np.uint8), rng.integers(0, 256, (64, 64, 3), np.uint8)]
    points = [rng.uniform(0, 255, (68, 2)), rng.uniform(0, 63, (68, 2))]
    model = _Recorder()
    out = translate_crops(model, crops, points, batch_size=2)
    expected = [resize_to_model(c, p, 64) for c, p in zip(crops, points, strict=True)]
    lm = model.seen[0].numpy()
    for i, (image, mapped) in enumerate(expected):
        np.testing.assert_allclose(lm[i], normalize_points(mapped, 64, 64), atol=1e-5)
        assert np.abs(out[i].anime.astype(int) - image.astype(int)).max() <= 1  # [-1, 1] and back
    np.testing.assert_array_equal(out[1].anime, crops[1])  # a crop at the model size passes unchanged


def test_bad_parameter_inside_a_command_is_a_usage_error(tmp_path: Path) -> None:
    """typer.BadParameter raised by a command's own checks ends as click's usage error (exit 2), not as
    the guard's 'internal error' (typer 0.29 carries its own copy of click's exception classes)."""
    part = runner.invoke(data_app, ["crop-humans", str(tmp_path), "-o", str(tmp_path / "o"), "--part", "3/2"])
    kinds = runner.invoke(data_app, ["synth-structure", "--anime", "a.parquet", "-o", str(tmp_path / "s"),
                                     "--kinds", "bogus"])
    for result, reason in ((part, "i must be between 1 and N"), (kinds, "unknown kind(s)")):
        assert result.exit_code == 2, result.output
        assert reason in " ".join(result.output.split()) and "internal error" not in result.output
