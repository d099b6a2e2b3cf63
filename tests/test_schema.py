import numpy as np
import pytest

from pda_data.schema import (
    ANIME56,
    HUMAN68,
    HUMAN_TO_ANIME,
    denormalize_points,
    flatten_points,
    normalize_points,
    unflatten_points,
)


@pytest.mark.parametrize("schema", [ANIME56, HUMAN68])
def test_flip_is_involution_and_swaps_sides(schema):
    perm = np.array(schema.flip_perm)
    assert np.array_equal(perm[perm], np.arange(schema.n_points))
    assert perm[0] == 16 and perm[8] == 8
    assert [perm[i] for i in schema.left_eye] and set(perm[list(schema.left_eye)]) == set(schema.right_eye)
    assert list(perm[list(schema.mouth_corners)]) == list(schema.mouth_corners)[::-1]
    assert perm[schema.nose_tip] == schema.nose_tip


def test_anime_eye_cycle_mirror():
    perm = ANIME56.flip_perm
    # image-left corner of the left eye becomes the image-right corner of the right eye, lids reverse.
    assert [perm[i] for i in range(27, 35)] == [39, 38, 37, 36, 35, 42, 41, 40]
    assert [perm[i] for i in range(44, 56)] == [50, 49, 48, 47, 46, 45, 44, 55, 54, 53, 52, 51]


def test_human_eye_cycle_mirror():
    perm = HUMAN68.flip_perm
    assert [perm[i] for i in range(36, 42)] == [45, 44, 43, 42, 47, 46]
    assert [perm[i] for i in range(60, 68)] == [64, 63, 62, 61, 60, 67, 66, 65]


def test_flip_twice_is_identity():
    rng = np.random.default_rng(0)
    pts = rng.uniform(0, 255, (ANIME56.n_points, 2))
    assert np.allclose(ANIME56.flip(ANIME56.flip(pts, 256), 256), pts)


def test_structure_points_and_correspondence():
    pts = np.arange(56 * 2, dtype=float).reshape(56, 2)
    sp = ANIME56.structure_points(pts)
    assert sp.shape == (4, 2)
    assert np.allclose(sp[0], pts[27:35].mean(0)) and np.allclose(sp[3], pts[50])
    h = np.arange(68 * 2, dtype=float).reshape(68, 2)
    a, b = HUMAN_TO_ANIME.apply(h, pts)
    assert a.shape == b.shape == (56, 2)
    assert np.allclose(a[0], h[0]) and np.allclose(b, pts)  # every anime point, in index order
    assert np.allclose(a[29], h[37:39].mean(0)) and np.allclose(a[31], h[39])  # lid middle, right corner


def test_correspondence_commutes_with_the_mirror():
    # Mirroring a face then pairing equals pairing then mirroring: anime point k's human counterpart,
    # mirrored, is the counterpart of anime point flip(k).
    human_of = {anime[0]: set(human) for human, anime in HUMAN_TO_ANIME.pairs}
    assert sorted(human_of) == list(range(ANIME56.n_points))
    for k, human in human_of.items():
        assert {HUMAN68.flip_perm[i] for i in human} == human_of[ANIME56.flip_perm[k]], k


def test_correspondence_pairs_neighbouring_points_on_eyes():
    # Both eyes as ellipses, dlib's 6 and anime's 8 points evenly spaced clockwise from the image-left corner:
    # each anime eye point is within a quarter of the eye's width of its human counterpart.
    def ring(n: int, cx: float) -> np.ndarray:
        t = np.pi - 2 * np.pi * np.arange(n) / n  # image-left corner first, then the upper lid (y down)
        return np.stack([cx + 10 * np.cos(t), 50 - 5 * np.sin(t)], axis=1)

    h = np.zeros((68, 2))
    a = np.zeros((56, 2))
    h[36:42], h[42:48] = ring(6, 30), ring(6, 70)
    a[27:35], a[35:43] = ring(8, 30), ring(8, 70)
    src, dst = HUMAN_TO_ANIME.apply(h, a)
    err = np.linalg.norm(src[27:43] - dst[27:43], axis=1)
    assert err.max() < 0.25 * 20, err.round(2)


def test_normalize_roundtrip_and_flat():
    pts = np.array([[0.0, 0.0], [255.0, 127.5]])
    n = normalize_points(pts, 256, 256)
    assert np.allclose(n[0], [-1, -1]) and np.isclose(n[1, 0], 1.0)
    assert np.allclose(denormalize_points(n, 256, 256), pts)
    assert np.allclose(unflatten_points(flatten_points(pts)), pts)
