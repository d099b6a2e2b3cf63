"""One shard sample: an image member and a ``json`` member sharing a key; written here and checked here.

The ``json`` member (:func:`sample_metadata`) holds the key, ``domain`` (the role), landmark ``schema`` and
``schema_version``, the sha256 of the image member, its size, provenance, landmarks (flat, 1/1000 px) and
pose; classifier roles add ``label``, ``kind``, ``structure_points`` and ``structure_channels``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from pda_data.io.files import sha256_bytes
from pda_data.io.images import encode_image, load_image
from pda_data.schema import SCHEMA_VERSION, SCHEMAS, LandmarkSchema, unflatten_points
from pda_data.shards.index import CLASSIFIER_ROLES, ROLE_SCHEMA
from pda_data.synthesis.table import structure_problem

POINT_DECIMALS = 3  # landmark pixels kept in sample json: 1/1000 px, short to store and fast to parse
# PNG members: zlib level 6 with the "up" row filter on every row. Lossless and the size of OpenCV's default
# (level 3, adaptive filters), but about 27% faster to decode, and decoding dominates the training streams.
PNG_PARAMS: tuple[int, ...] = (
    cv2.IMWRITE_PNG_COMPRESSION,
    6,
    cv2.IMWRITE_PNG_FILTER,
    cv2.IMWRITE_PNG_FILTER_UP,
)
JPEG_QUALITY = 95  # jpg members: quality 95, 4:4:4 chroma (pda_data.io.images.encode_image)


@dataclass(frozen=True)
class PackItem:
    """One sample to pack: its image file and the metadata known before reading it."""

    key: str
    image_path: Path
    meta: dict[str, Any]



def tar_key(key: str) -> str:
    """A WebDataset-safe member prefix: no dots (they start the extension) and no path separators."""
    return re.sub(r"[^A-Za-z0-9_\-]", "_", key)



def point_list(points: np.ndarray) -> list[float]:
    """(K, 2) points as the flat list of a sample's json, rounded to :data:`POINT_DECIMALS`."""
    return [round(float(v), POINT_DECIMALS) for v in np.asarray(points, dtype=np.float64).reshape(-1)]


def _finite_points(values: Any, schema: LandmarkSchema) -> list[float]:
    pts = schema.check_shape(unflatten_points(values))
    if not np.isfinite(pts).all():
        raise ValueError("landmarks have non-finite values")
    return point_list(pts)


def sample_metadata(role: str, item: PackItem, image: bytes, width: int, height: int) -> dict[str, Any]:
    """The ``json`` member of a sample: domain, provenance, sha256 of the image member, landmarks, pose..."""
    return {
        "key": item.key,
        "domain": role,
        "schema": ROLE_SCHEMA[role].name,
        "schema_version": SCHEMA_VERSION,
        "sha256": sha256_bytes(image),
        "width": width,
        "height": height,
        **item.meta,
    }


def encode_member(rgb: np.ndarray, image_format: str) -> bytes:
    """RGB uint8 to the bytes of a shard image member (see :data:`PNG_PARAMS` and :data:`JPEG_QUALITY`)."""
    if image_format != "png":
        return encode_image(rgb, image_format, quality=JPEG_QUALITY)
    ok, buf = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), list(PNG_PARAMS))
    if not ok:
        raise ValueError(f"could not encode a {rgb.shape} image as png")
    return buf.tobytes()


def encode_sample(role: str, item: PackItem, image_format: str) -> tuple[str, bytes, bytes]:
    """Read, validate and re-encode one item: (tar key, image bytes, json bytes); ImageError/ValueError."""
    rgb = load_image(item.image_path)
    image = encode_member(rgb, image_format)
    meta = sample_metadata(role, item, image, rgb.shape[1], rgb.shape[0])
    return tar_key(item.key), image, json.dumps(meta, sort_keys=True).encode("utf-8")



def decode_rgb(data: bytes) -> np.ndarray:
    """Encoded PNG/JPEG bytes to H x W x 3 uint8 RGB with OpenCV (the fast path the streams use)."""
    rgb = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR_RGB)
    if rgb is None:
        raise ValueError("image member does not decode")
    return rgb



def check_sample(role: str, members: dict[str, bytes], image_format: str) -> list[str]:
    """Everything wrong with one decoded sample of ``role`` (empty list when it is valid)."""
    image = members.get(image_format)
    if image is None:
        return [f"no {image_format} member (has {', '.join(sorted(members)) or 'nothing'})"]
    if "json" not in members:
        return ["no json member"]
    try:
        meta = json.loads(members["json"])
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return [f"json does not parse ({exc})"]
    if not isinstance(meta, dict):
        return ["json is not an object"]
    try:
        rgb: np.ndarray | None = decode_rgb(image)
        errors: list[str] = []
    except ValueError:
        rgb, errors = None, [f"{image_format} does not decode"]
    schema = ROLE_SCHEMA[role]
    expect = {"domain": role, "schema": schema.name, "sha256": sha256_bytes(image)}
    errors += [f"{k} is {meta.get(k)!r}, expected {v!r}" for k, v in expect.items() if meta.get(k) != v]
    if rgb is not None and (meta.get("width"), meta.get("height")) != (rgb.shape[1], rgb.shape[0]):
        errors.append(f"size {meta.get('width')}x{meta.get('height')} != image {rgb.shape[1]}x{rgb.shape[0]}")
    try:
        _finite_points(meta.get("landmarks"), SCHEMAS[schema.name])
    except (ValueError, TypeError) as exc:
        errors.append(f"landmarks: {exc}")
    pose = meta.get("pose")
    if pose is not None and not (isinstance(pose, dict) and set(pose) == {"yaw", "pitch", "roll"}):
        errors.append(f"pose {pose!r} is not null or {{yaw, pitch, roll}}")
    if role in CLASSIFIER_ROLES:
        if meta.get("label") not in (0, 1):
            errors.append(f"label {meta.get('label')!r} is not 0 or 1")
        try:
            problem = structure_problem(list(meta.get("structure_points", [])),
                                        list(meta.get("structure_channels", [])))
        except (ValueError, TypeError) as exc:
            problem = str(exc)
        if problem is not None:
            errors.append(f"structure: {problem}")
    return errors

