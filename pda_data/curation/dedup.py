"""64-bit DCT perceptual hash, for near-duplicate detection.

The image is reduced to 32x32 grey, transformed by a 2D DCT, and the 8x8 lowest frequencies are compared with
their median: small edits (re-encoding, resizing, slight colour changes) flip few of the 64 bits.
"""

from __future__ import annotations

from collections.abc import Iterable

import cv2
import numpy as np

HASH_SIZE = 8
_SAMPLE = 32


def phash(rgb: np.ndarray) -> str:
    """The 64-bit pHash of an RGB (or grey) image, as 16 hex characters."""
    gray = rgb if rgb.ndim == 2 else cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)
    small = cv2.resize(gray, (_SAMPLE, _SAMPLE), interpolation=cv2.INTER_AREA).astype(np.float32)
    low = cv2.dct(small)[:HASH_SIZE, :HASH_SIZE].reshape(-1)
    # The DC term is the mean brightness; leaving it out of the median keeps the hash brightness-invariant.
    bits = low > np.median(low[1:])
    return f"{int(np.packbits(bits).view('>u8')[0]):016x}"


def hash_value(hex_hash: str) -> int:
    """A 16-hex-character hash as an unsigned 64-bit integer."""
    return int(hex_hash, 16)


def hamming(a: str, b: str) -> int:
    """Number of differing bits between two hex hashes."""
    return (hash_value(a) ^ hash_value(b)).bit_count()


class NearDuplicateIndex:
    """Hashes seen so far; :meth:`match` finds one within a Hamming distance (vectorised over all of them)."""

    def __init__(self, threshold: int, items: Iterable[tuple[str, str]] = ()) -> None:
        self.threshold = threshold
        self._values = np.zeros(1024, dtype=np.uint64)  # grown by doubling; the first len(self) are used
        self._keys: list[str] = []
        for key, value in items:
            self.add(key, value)

    def __len__(self) -> int:
        return len(self._keys)

    def match(self, hex_hash: str) -> str | None:
        """Key of the first stored hash within ``threshold`` bits of ``hex_hash``, or None."""
        if not self._keys:
            return None
        dist = np.bitwise_count(self._values[: len(self._keys)] ^ np.uint64(hash_value(hex_hash)))
        hits = np.flatnonzero(dist <= self.threshold)
        return self._keys[int(hits[0])] if hits.size else None

    def add(self, key: str, hex_hash: str) -> None:
        n = len(self._keys)
        if n == self._values.size:
            self._values = np.concatenate([self._values, np.zeros_like(self._values)])
        self._values[n] = np.uint64(hash_value(hex_hash))
        self._keys.append(key)
