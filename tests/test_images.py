"""Safe image I/O: bad inputs become one typed error; odd modes become RGB uint8."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image
from skimage import data

from pda_data.io.images import ImageError, encode_image, load_image, save_image


def _png_header(width: int, height: int) -> bytes:
    """A PNG whose IHDR claims width x height RGB pixels, followed by a tiny IDAT: no pixel buffer exists."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(
        b"IEND", b"")


def _reason(source: str | Path | bytes) -> str:
    with pytest.raises(ImageError) as info:
        load_image(source)
    return info.value.reason


def test_zero_byte_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.jpg"
    path.write_bytes(b"")
    with pytest.raises(ImageError) as info:
        load_image(path)
    assert info.value.reason == "empty"
    assert info.value.path == str(path)
    assert str(info.value) == f"{path}: empty file"


def test_truncated_jpeg(tmp_path: Path) -> None:
    whole = encode_image(data.astronaut(), "jpg")
    path = tmp_path / "cut.jpg"
    path.write_bytes(whole[: len(whole) // 3])
    assert _reason(path) == "truncated"


def test_text_named_jpg(tmp_path: Path) -> None:
    path = tmp_path / "page.jpg"
    path.write_text("<html>404 Not Found</html>\n")
    assert _reason(path) == "not_image"


def test_missing_file_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match="nothing.png"):
        load_image(tmp_path / "nothing.png")


def test_huge_png_header_is_refused_before_decoding() -> None:
    assert _reason(_png_header(20000, 20000)) == "too_large"
    # Under Pillow's own bomb limit but over ours: refused from the header too.
    assert _reason(_png_header(9000, 9000)) == "too_large"
    with pytest.raises(ImageError) as info:
        load_image(_png_header(20000, 20000), name="bomb.png")
    assert str(info.value).startswith("bomb.png: image too large")


def test_cmyk_jpeg_becomes_rgb() -> None:
    buf = io.BytesIO()
    Image.new("CMYK", (32, 24), (0, 255, 255, 0)).save(buf, "JPEG", quality=95)  # pure red in CMYK
    rgb = load_image(buf.getvalue())
    assert rgb.shape == (24, 32, 3) and rgb.dtype == np.uint8
    assert rgb[..., 0].mean() > 230 and rgb[..., 1].mean() < 30 and rgb[..., 2].mean() < 30


def test_16bit_grey_png_is_scaled_not_clipped(tmp_path: Path) -> None:
    grey = np.full((20, 30), 32768, np.uint16)
    grey[:, :10] = 65535
    path = tmp_path / "grey16.png"
    Image.fromarray(grey).save(path)
    rgb = load_image(path)
    assert rgb.shape == (20, 30, 3) and rgb.dtype == np.uint8
    assert abs(int(rgb[0, 20, 0]) - 128) <= 1 and rgb[0, 0, 0] == 255
    assert (rgb[..., 0] == rgb[..., 2]).all()


def test_16bit_rgb_png(tmp_path: Path) -> None:
    bgr16 = np.zeros((8, 8, 3), np.uint16)
    bgr16[..., 2] = 65535  # red in OpenCV's BGR order
    bgr16[..., 1] = 257 * 100
    path = tmp_path / "rgb16.png"
    cv2.imwrite(str(path), bgr16)
    rgb = load_image(path)
    assert rgb.dtype == np.uint8
    assert tuple(rgb[0, 0]) == (255, 100, 0)


def test_rgba_png_is_composited_on_white(tmp_path: Path) -> None:
    rgba = np.zeros((10, 10, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[:, :5, 3] = 255  # opaque left half
    rgba[:, 5:, 3] = 0  # transparent right half
    path = tmp_path / "alpha.png"
    Image.fromarray(rgba, "RGBA").save(path)
    rgb = load_image(path)
    assert tuple(rgb[0, 0]) == (200, 0, 0)
    assert tuple(rgb[0, 9]) == (255, 255, 255)


def test_palette_with_transparency(tmp_path: Path) -> None:
    im = Image.new("P", (4, 4), 1)
    im.putpalette([0, 0, 0, 0, 128, 0] + [0] * 762)
    im.info["transparency"] = 1
    path = tmp_path / "pal.png"
    im.save(path, transparency=1)
    assert tuple(load_image(path)[0, 0]) == (255, 255, 255)


def test_grey_and_palette_modes(tmp_path: Path) -> None:
    Image.new("L", (6, 4), 77).save(tmp_path / "l.png")
    assert tuple(load_image(tmp_path / "l.png")[1, 1]) == (77, 77, 77)
    Image.new("1", (6, 4), 1).save(tmp_path / "bw.png")
    assert tuple(load_image(tmp_path / "bw.png")[0, 0]) == (255, 255, 255)


def test_exif_rotation_is_applied(tmp_path: Path) -> None:
    upright = data.astronaut()
    stored = np.ascontiguousarray(np.rot90(upright, 1))  # pixels stored turned 90 deg counter-clockwise
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 deg clockwise to display
    path = tmp_path / "phone.jpg"
    Image.fromarray(stored).save(path, quality=95, exif=exif)
    rgb = load_image(path)
    assert rgb.shape == upright.shape
    assert np.abs(rgb.astype(float) - upright).mean() < 4


def test_encode_and_save_roundtrip(tmp_path: Path) -> None:
    rgb = data.astronaut()[::4, ::4].copy()
    assert np.array_equal(load_image(encode_image(rgb, "png")), rgb)
    save_image(tmp_path / "a.jpg", rgb, quality=95)
    assert np.abs(load_image(tmp_path / "a.jpg").astype(float) - rgb).mean() < 3
    save_image(tmp_path / "a.png", rgb)
    assert np.array_equal(load_image(tmp_path / "a.png"), rgb)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.jpg", "a.png"]  # no temp files left
    with pytest.raises(ValueError, match="unsupported image format"):
        encode_image(rgb, "gif")
