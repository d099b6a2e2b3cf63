"""What the synthesis jobs make: structure kinds, highlight levels and the Aug-Portrait fusion options.

Plain data apart from the image code (no numpy, cv2 or torch) so that the command-line help reads the defaults
cheaply; ``synth-aug``, the training stream and experiment manifests share :class:`FusionOptions`.
"""

from __future__ import annotations

from dataclasses import dataclass

LEGIT = "legit"
ABNORMAL_KINDS: tuple[str, ...] = ("eye_pasted", "eye_removed", "mouth_removed", "eye_moved", "mouth_moved")
KINDS: tuple[str, ...] = (LEGIT, *ABNORMAL_KINDS)


@dataclass(frozen=True)
class Levels:
    """Photoshop-style levels on [0, 1] values, then a threshold on the adjusted luminance.

    The defaults keep the specular shine of typical selfies (nose bridge, cheeks, chin: the top few percent
    of face luminance) and drop the evenly lit skin.
    """

    black: float = 0.70
    white: float = 0.98
    gamma: float = 1.0
    threshold: float = 0.6

    def __post_init__(self) -> None:
        if not 0.0 <= self.black < self.white <= 1.0:
            raise ValueError(
                f"levels need 0 <= black < white <= 1, got black={self.black} white={self.white}"
            )
        if self.gamma <= 0:
            raise ValueError(f"gamma must be positive, got {self.gamma}")


@dataclass(frozen=True)
class FusionOptions:
    """How an Aug-Portrait is fused: one definition for ``synth-aug``, the training stream and manifests.

    ``colour_strength`` is the range of the random colour-matching strength ((0, 0) turns it off) and
    ``feather`` the range of the mask feather (Gaussian sigma) as a fraction of the coser's brow-to-chin
    distance; ``grid`` is the spline's coarse evaluation grid (cells per side).
    """

    grid: int = 32
    colour_strength: tuple[float, float] = (0.5, 1.0)
    feather: tuple[float, float] = (0.03, 0.06)

    def __post_init__(self) -> None:
        if self.grid < 2:
            raise ValueError(f"grid must be >= 2, got {self.grid}")
        for name in ("colour_strength", "feather"):
            low, high = getattr(self, name)
            if not 0.0 <= low <= high:
                raise ValueError(f"{name} must be a range 0 <= low <= high, got ({low}, {high})")
        if self.colour_strength[1] > 1.0:
            raise ValueError(f"colour_strength must not exceed 1, got {self.colour_strength}")


DEFAULT_LEVELS = Levels()
DEFAULT_FUSION = FusionOptions()
