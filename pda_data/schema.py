"""Landmark schemas: the one place where landmark indices mean something.

Two layouts are used throughout the toolkit:

* ``HUMAN68``: dlib's 68-point layout, detected on coser and human portraits.
* ``ANIME56``: the paper's 56-point layout (Fig. 9), hand-labelled on anime portraits.

Coordinates are image pixels, (x, y), with pixel centres on integers; "left" always means image-left.
Every other module takes index groups, flip permutations, structure points and the human-to-anime
correspondence from here, so no landmark index appears as a bare number elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

SCHEMA_VERSION = 1


def _mirror_cycle(first_a: int, first_b: int, length: int, pivot: int) -> dict[int, int]:
    """Pairs for two clockwise point cycles that mirror onto each other.

    Mirroring reverses the direction of a cycle, so point ``k`` of cycle A lands on point
    ``(pivot - k) mod length`` of cycle B, where ``pivot`` is the offset of the opposite corner.
    ``first_a == first_b`` mirrors a single cycle (the mouth) onto itself.
    """
    pairs: dict[int, int] = {}
    for k in range(length):
        j = (pivot - k) % length
        pairs[first_a + k] = first_b + j
        pairs[first_b + j] = first_a + k
    return pairs


def _reversed_run(first: int, last: int) -> dict[int, int]:
    """Pairs for a left-to-right run of points that mirrors onto itself reversed (contour, nose base)."""
    return {first + k: last - k for k in range(last - first + 1)}


@dataclass(frozen=True)
class LandmarkSchema:
    """A named landmark layout with its semantic groups and mirror symmetry."""

    name: str
    n_points: int
    groups: dict[str, tuple[int, ...]]
    flip_perm: tuple[int, ...]
    left_eye: tuple[int, ...]
    right_eye: tuple[int, ...]
    mouth_corners: tuple[int, int]
    nose_tip: int
    group_colors: dict[str, tuple[int, int, int]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        perm = np.asarray(self.flip_perm)
        if sorted(self.flip_perm) != list(range(self.n_points)):
            raise ValueError(f"{self.name}: flip permutation is not a permutation of {self.n_points} points")
        if not np.array_equal(perm[perm], np.arange(self.n_points)):
            raise ValueError(f"{self.name}: flip permutation is not an involution")
        covered = sorted(i for idx in self.groups.values() for i in idx)
        if covered != list(range(self.n_points)):
            raise ValueError(f"{self.name}: groups do not cover every point exactly once")

    @property
    def contour(self) -> tuple[int, ...]:
        """The 17 face-contour points, the landmark domain of the Landmark Deformation Network."""
        return self.groups["contour"]

    def group_of(self) -> list[str]:
        """Group name of every point, in index order."""
        names = [""] * self.n_points
        for name, idx in self.groups.items():
            for i in idx:
                names[i] = name
        return names

    def check_shape(self, points: np.ndarray) -> np.ndarray:
        """Return ``points`` as a float array of shape (..., n_points, 2), or raise ValueError."""
        arr = np.asarray(points, dtype=np.float64)
        if arr.ndim < 2 or arr.shape[-2:] != (self.n_points, 2):
            raise ValueError(
                f"expected {self.name} points of shape (..., {self.n_points}, 2), got {arr.shape}"
            )
        return arr

    def group_points(self, points: np.ndarray, group: str) -> np.ndarray:
        """The points of one named group, (..., len(group), 2); ``"contour"`` gives the 17-point LDN domain
        for either schema, so curated 68-point manifests and 56-point annotations share one vocabulary."""
        if group not in self.groups:
            raise KeyError(f"{self.name} has no group {group!r} (groups: {', '.join(self.groups)})")
        return self.check_shape(points)[..., list(self.groups[group]), :]

    def eye_centres(self, points: np.ndarray) -> np.ndarray:
        """Centres of the image-left and image-right eye, shape (..., 2, 2)."""
        arr = self.check_shape(points)
        left = arr[..., list(self.left_eye), :].mean(axis=-2)
        right = arr[..., list(self.right_eye), :].mean(axis=-2)
        return np.stack([left, right], axis=-2)

    def structure_points(self, points: np.ndarray) -> np.ndarray:
        """The 4 structure points, (..., 4, 2): left and right eye centre, left and right mouth corner."""
        arr = self.check_shape(points)
        mouth = arr[..., list(self.mouth_corners), :]
        return np.concatenate([self.eye_centres(arr), mouth], axis=-2)

    def flip(self, points: np.ndarray, width: int) -> np.ndarray:
        """Landmarks of the horizontally mirrored image, in this schema's semantic order.

        Mirroring maps pixel x to ``width - 1 - x``; the permutation then restores the meaning of each
        index (the mirrored image-left eye becomes the image-right eye, and so on).
        """
        arr = self.check_shape(points).copy()
        arr[..., 0] = (width - 1) - arr[..., 0]
        return arr[..., list(self.flip_perm), :]


def _schema(
    name: str,
    groups: dict[str, tuple[int, ...]],
    perm: dict[int, int],
    mouth_corners: tuple[int, int],
    nose_tip: int,
) -> LandmarkSchema:
    """A schema from its groups (naming ``left_eye`` and ``right_eye``) and its flip map {index: mirrored}."""
    n_points = len(perm)
    return LandmarkSchema(
        name=name,
        n_points=n_points,
        groups=groups,
        flip_perm=tuple(perm[i] for i in range(n_points)),
        left_eye=groups["left_eye"],
        right_eye=groups["right_eye"],
        mouth_corners=mouth_corners,
        nose_tip=nose_tip,
        group_colors=GROUP_COLORS,
    )


def _anime56() -> LandmarkSchema:
    groups = {
        "contour": tuple(range(0, 17)),
        "left_brow": tuple(range(17, 22)),
        "right_brow": tuple(range(22, 27)),
        "left_eye": tuple(range(27, 35)),
        "right_eye": tuple(range(35, 43)),
        "nose": (43,),
        "mouth": tuple(range(44, 56)),
    }
    perm = dict(_reversed_run(0, 16))
    perm.update(_reversed_run(17, 26))
    perm.update(_mirror_cycle(27, 35, 8, 4))
    perm[43] = 43
    perm.update(_mirror_cycle(44, 44, 12, 6))
    return _schema("anime56", groups, perm, mouth_corners=(44, 50), nose_tip=43)


def _human68() -> LandmarkSchema:
    groups = {
        "contour": tuple(range(0, 17)),
        "left_brow": tuple(range(17, 22)),
        "right_brow": tuple(range(22, 27)),
        "nose_bridge": tuple(range(27, 31)),
        "nose_base": tuple(range(31, 36)),
        "left_eye": tuple(range(36, 42)),
        "right_eye": tuple(range(42, 48)),
        "outer_lip": tuple(range(48, 60)),
        "inner_lip": tuple(range(60, 68)),
    }
    perm = dict(_reversed_run(0, 16))
    perm.update(_reversed_run(17, 26))
    perm.update({i: i for i in range(27, 31)})
    perm.update(_reversed_run(31, 35))
    perm.update(_mirror_cycle(36, 42, 6, 3))
    perm.update(_mirror_cycle(48, 48, 12, 6))
    perm.update(_mirror_cycle(60, 60, 8, 4))
    return _schema("human68", groups, perm, mouth_corners=(48, 54), nose_tip=30)


# RGB colours per group for overlays (Fig. 9 style); nose groups share a colour, as do the lips.
GROUP_COLORS: dict[str, tuple[int, int, int]] = {
    "contour": (255, 214, 0),
    "left_brow": (255, 96, 32),
    "right_brow": (255, 96, 32),
    "left_eye": (0, 200, 255),
    "right_eye": (0, 200, 255),
    "nose": (64, 255, 64),
    "nose_bridge": (64, 255, 64),
    "nose_base": (64, 255, 64),
    "mouth": (255, 64, 200),
    "outer_lip": (255, 64, 200),
    "inner_lip": (200, 64, 255),
}

ANIME56 = _anime56()
HUMAN68 = _human68()
SCHEMAS: dict[str, LandmarkSchema] = {ANIME56.name: ANIME56, HUMAN68.name: HUMAN68}

# Structure heatmap channels, in the order of LandmarkSchema.structure_points.
STRUCTURE_CHANNELS: tuple[str, ...] = (
    "left_eye_centre",
    "right_eye_centre",
    "left_mouth_corner",
    "right_mouth_corner",
)
# Channel of each structure channel in the horizontally mirrored image (image-left and image-right swap).
STRUCTURE_FLIP: tuple[int, ...] = tuple(
    STRUCTURE_CHANNELS.index(n.replace("left", "<").replace("right", "left").replace("<", "right"))
    for n in STRUCTURE_CHANNELS
)


@dataclass(frozen=True)
class Correspondence:
    """Matching points of two schemas; each side of a pair is the mean of one or more indices."""

    source: LandmarkSchema
    target: LandmarkSchema
    pairs: tuple[tuple[tuple[int, ...], tuple[int, ...]], ...]

    def apply(self, source_points: np.ndarray, target_points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Corresponding point sets ``(P, 2), (P, 2)`` from full source and target landmarks."""
        src = self.source.check_shape(source_points)
        dst = self.target.check_shape(target_points)
        a = np.stack([src[..., list(s), :].mean(axis=-2) for s, _ in self.pairs], axis=-2)
        b = np.stack([dst[..., list(t), :].mean(axis=-2) for _, t in self.pairs], axis=-2)
        return a, b


def _human_to_anime() -> Correspondence:
    """A human counterpart for every one of the 56 anime points, in anime index order.

    Contour, brows, nose tip and the 12-point mouth match point for point (the mouth to dlib's outer lip).
    The eyes differ: dlib has 6 points per eye (corners at offsets 0 and 3), anime56 has 8 (corners at 0 and
    4), both clockwise from the image-left corner. Anime lid points at 1/4 and 3/4 of a lid take dlib's lid
    point nearest to them (at 1/3 and 2/3); the lid's middle point takes the mean of dlib's two lid points.
    dlib's nose bridge, nose base and inner lip have no anime counterpart and are not used.
    """
    h, a = HUMAN68, ANIME56
    pairs: list[tuple[tuple[int, ...], tuple[int, ...]]] = []
    pairs += [((i,), (i,)) for i in h.contour]
    pairs += [((i,), (i,)) for i in h.groups["left_brow"] + h.groups["right_brow"]]
    for h_eye, a_eye in ((h.left_eye, a.left_eye), (h.right_eye, a.right_eye)):
        lid = ((0,), (1,), (1, 2), (2,), (3,), (4,), (4, 5), (5,))  # dlib offsets of anime offsets 0..7
        pairs += [(tuple(h_eye[k] for k in ks), (a_eye[j],)) for j, ks in enumerate(lid)]
    pairs.append(((h.nose_tip,), (a.nose_tip,)))
    pairs += list(zip(((i,) for i in h.groups["outer_lip"]), ((i,) for i in a.groups["mouth"]), strict=True))
    return Correspondence(h, a, tuple(pairs))


HUMAN_TO_ANIME = _human_to_anime()


def normalize_points(points: np.ndarray, width: int, height: int) -> np.ndarray:
    """Pixel coordinates to [-1, 1] (align_corners=True: pixel 0 is -1, pixel W-1 is +1)."""
    arr = np.asarray(points, dtype=np.float64)
    scale = np.array([2.0 / (width - 1), 2.0 / (height - 1)])
    return arr * scale - 1.0


def denormalize_points(points: np.ndarray, width: int, height: int) -> np.ndarray:
    """Inverse of :func:`normalize_points`."""
    arr = np.asarray(points, dtype=np.float64)
    return (arr + 1.0) * np.array([(width - 1) / 2.0, (height - 1) / 2.0])


def flatten_points(points: np.ndarray) -> list[float]:
    """(K, 2) points to the flat ``[x0, y0, x1, y1, ...]`` list stored in manifests and metadata."""
    return [float(v) for v in np.asarray(points, dtype=np.float64).reshape(-1)]


def unflatten_points(values: object) -> np.ndarray:
    """Inverse of :func:`flatten_points`: a flat sequence of 2K numbers to a (K, 2) float array."""
    arr = np.asarray(values, dtype=np.float64).reshape(-1)
    if arr.size % 2:
        raise ValueError(f"a flat point list needs an even number of values, got {arr.size}")
    return arr.reshape(-1, 2)
