"""Safe image I/O: every decoded image is an H x W x 3 uint8 RGB array, or one typed error.

Raw crawls hold everything: palette GIFs, CMYK JPEGs, 16-bit PNGs, phone photos whose pixels are stored
sideways with an EXIF orientation tag, truncated downloads, HTML pages saved as ``.jpg``, decompression
bombs, and names that are FIFOs or links to devices. :func:`load_image` normalizes the good ones and turns
the rest into :class:`ImageError`, whose ``reason`` is a short code that manifests record.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from pda_data.io.files import (
    NOT_REGULAR_FILE,
    TOO_LARGE,
    UNREADABLE,
    RefusedFile,
    atomic_write_bytes,
    read_regular_file,
)

# Pillow's bomb check only warns up to 2x its limit; we refuse anything over MAX_PIXELS before decoding.
MAX_PIXELS = 64_000_000
MAX_FILE_BYTES = 256 * 1024 * 1024

REASONS: dict[str, str] = {
    NOT_REGULAR_FILE: "not a regular file",
    UNREADABLE: "file cannot be read",
    TOO_LARGE: "image too large",
    "empty": "empty file",
    "truncated": "truncated image data",
    "not_image": "not an image file",
    "decode_error": "image data could not be decoded",
    "unsupported_mode": "unsupported pixel mode",
}

_ALPHA_MODES = {"RGBA", "LA", "PA", "RGBa", "La"}
_SIXTEEN_BIT_MODES = {"I;16", "I;16L", "I;16B", "I;16N", "I"}
_EXTENSIONS = {"png": ".png", "jpg": ".jpg", "jpeg": ".jpg"}


class ImageError(ValueError):
    """An input that is not a usable image; ``reason`` is one of :data:`REASONS`."""

    def __init__(self, path: str, reason: str, detail: str = "") -> None:
        self.path = path
        self.reason = reason
        self.detail = detail
        text = REASONS.get(reason, reason)
        super().__init__(f"{path}: {text}" + (f" ({detail})" if detail else ""))


def read_image_file(path: str | Path, name: str | None = None, max_bytes: int | None = None) -> bytes:
    """The bytes of an image file, read once: a FIFO, a device, a file over ``max_bytes`` (default
    :data:`MAX_FILE_BYTES`) or one that cannot be opened is an :class:`ImageError` before anything is read."""
    try:
        return read_regular_file(path, MAX_FILE_BYTES if max_bytes is None else max_bytes)
    except RefusedFile as exc:
        raise ImageError(str(path) if name is None else name, exc.reason, exc.detail) from exc


def _read_source(source: str | Path | bytes, name: str, max_bytes: int) -> bytes:
    if isinstance(source, bytes | bytearray | memoryview):
        data = bytes(source)
    else:
        data = read_image_file(source, name, max_bytes)
    if not data:
        raise ImageError(name, "empty")
    if len(data) > max_bytes:
        raise ImageError(name, TOO_LARGE, f"{len(data)} bytes > {max_bytes}")
    return data


def _to_rgb(im: Image.Image, name: str) -> np.ndarray:
    """Any Pillow mode to RGB uint8; alpha is composited on white, 16-bit is scaled, not clipped."""
    mode = im.mode
    if mode == "P" and "transparency" in im.info:
        im = im.convert("RGBA")
        mode = "RGBA"
    if mode in _ALPHA_MODES:
        rgba = np.asarray(im.convert("RGBA"), dtype=np.float32)
        alpha = rgba[..., 3:4] / 255.0
        rgb = rgba[..., :3] * alpha + 255.0 * (1.0 - alpha)
        return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)
    if mode in _SIXTEEN_BIT_MODES:
        arr = np.asarray(im).astype(np.float64)
        # Mode "I" holds 16-bit PNGs too; anything at most 255 is already 8-bit data.
        scale = 255.0 / 65535.0 if arr.max(initial=0) > 255 else 1.0
        gray = np.clip(np.rint(arr * scale), 0, 255).astype(np.uint8)
        return np.repeat(gray[:, :, None], 3, axis=2)
    if mode == "F":
        gray = np.clip(np.rint(np.asarray(im)), 0, 255).astype(np.uint8)
        return np.repeat(gray[:, :, None], 3, axis=2)
    try:
        return np.asarray(im.convert("RGB"), dtype=np.uint8)
    except (ValueError, OSError) as exc:
        raise ImageError(name, "unsupported_mode", mode) from exc


def load_image(
    source: str | Path | bytes,
    name: str | None = None,
    *,
    max_pixels: int = MAX_PIXELS,
    max_bytes: int | None = None,
) -> np.ndarray:
    """Decode a file path or encoded bytes to an H x W x 3 uint8 RGB array, upright per EXIF.

    A path is read once with :func:`read_image_file`; the pixel count is checked from the header before any
    pixel is decoded. ``name`` labels errors (defaults to the path); ``max_bytes`` defaults to
    :data:`MAX_FILE_BYTES`. Raises :class:`ImageError` for anything that is not a usable image.
    """
    label = name if name is not None else (str(source) if not isinstance(source, bytes) else "<bytes>")
    data = _read_source(source, label, MAX_FILE_BYTES if max_bytes is None else max_bytes)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            im = Image.open(io.BytesIO(data))
        except Image.DecompressionBombError as exc:
            raise ImageError(label, TOO_LARGE, str(exc)) from exc
        except UnidentifiedImageError as exc:
            raise ImageError(label, "not_image") from exc
        except (OSError, ValueError, SyntaxError) as exc:
            raise ImageError(label, "decode_error", str(exc)) from exc
        width, height = im.size
        if width <= 0 or height <= 0:
            raise ImageError(label, "decode_error", f"size {width}x{height}")
        if width * height > max_pixels:
            raise ImageError(label, TOO_LARGE, f"{width}x{height} pixels > {max_pixels}")
        try:
            im.load()
            im = ImageOps.exif_transpose(im)
        except Image.DecompressionBombError as exc:
            raise ImageError(label, TOO_LARGE, str(exc)) from exc
        except (OSError, ValueError, SyntaxError, EOFError) as exc:
            reason = "truncated" if "truncat" in str(exc).lower() else "decode_error"
            raise ImageError(label, reason, str(exc)) from exc
    return np.ascontiguousarray(_to_rgb(im, label))


def encode_image(rgb: np.ndarray, fmt: str = "png", quality: int = 95) -> bytes:
    """Encode an RGB uint8 array as PNG or JPEG bytes (JPEG with 4:4:4 chroma at ``quality``)."""
    ext = _EXTENSIONS.get(fmt.lower().lstrip("."))
    if ext is None:
        raise ValueError(f"unsupported image format {fmt!r} (png or jpg)")
    bgr = cv2.cvtColor(np.ascontiguousarray(rgb, dtype=np.uint8), cv2.COLOR_RGB2BGR)
    if ext == ".jpg":
        params = [cv2.IMWRITE_JPEG_QUALITY, int(quality), cv2.IMWRITE_JPEG_SAMPLING_FACTOR,
                  cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444]
    else:
        params = [cv2.IMWRITE_PNG_COMPRESSION, 3]
    ok, buf = cv2.imencode(ext, bgr, params)
    if not ok:
        raise ValueError(f"could not encode a {rgb.shape} image as {fmt}")
    return buf.tobytes()


def save_image(path: str | Path, rgb: np.ndarray, quality: int = 95) -> None:
    """Write ``rgb`` atomically; the format follows the suffix (.png, .jpg, .jpeg)."""
    atomic_write_bytes(path, encode_image(rgb, Path(path).suffix, quality))
