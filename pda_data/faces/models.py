"""Where the face models come from: the anime-face cascade (pinned download, cached) and dlib's model files.

Light on purpose (no OpenCV or dlib), so commands can name :class:`ModelError` without loading a backend.
"""

from __future__ import annotations

import importlib.util
import os
import urllib.error
import urllib.request
from pathlib import Path

from pda_data.io.files import atomic_write_bytes, sha256_bytes, sha256_file

CASCADE_URL = "https://raw.githubusercontent.com/nagadomi/lbpcascade_animeface/master/lbpcascade_animeface.xml"
CASCADE_SHA256 = "9376d30ac38db6bda2a68b88b3b76bbd7e6aa33af47f7f5c76bc88ca75f1ce30"
CASCADE_ENV = "PDA_ANIME_CASCADE"
CACHE_ENV = "PDA_CACHE_DIR"


class ModelError(RuntimeError):
    """A detector or landmark model is missing, unreadable or cannot be fetched."""


def cache_dir() -> Path:
    """Where downloaded models live: ``$PDA_CACHE_DIR`` or ``~/.cache/pda``."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "pda")


def resolve_cascade(path: Path | None = None) -> Path:
    """Path of the anime-face cascade: ``path``, else ``$PDA_ANIME_CASCADE``, else the cache, else a download.

    A download is checked against :data:`CASCADE_SHA256` before it is stored in the cache.
    """
    if path is None and os.environ.get(CASCADE_ENV):
        path = Path(os.environ[CASCADE_ENV])
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ModelError(f"{path}: anime face cascade not found")
        return path
    cached = cache_dir() / "lbpcascade_animeface.xml"
    if cached.is_file() and sha256_file(cached) == CASCADE_SHA256:
        return cached
    try:
        with urllib.request.urlopen(CASCADE_URL, timeout=30) as resp:
            data = resp.read()
    except (urllib.error.URLError, OSError) as exc:
        raise ModelError(
            f"cannot download the anime face cascade from {CASCADE_URL} ({exc}); download it by hand and "
            f"pass --cascade PATH (or set {CASCADE_ENV})"
        ) from exc
    digest = sha256_bytes(data)
    if digest != CASCADE_SHA256:
        raise ModelError(f"{CASCADE_URL}: sha256 {digest} does not match the pinned {CASCADE_SHA256}")
    atomic_write_bytes(cached, data)
    return cached


def dlib_model_path(filename: str) -> Path:
    """A model file shipped by ``face_recognition_models`` (located without importing the package)."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise ModelError("face_recognition_models is not installed (pip install face-recognition-models)")
    path = Path(list(spec.submodule_search_locations)[0]) / "models" / filename
    if not path.is_file():
        raise ModelError(f"{path}: dlib model file missing")
    return path
