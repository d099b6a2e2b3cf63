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
    assert a.shape == b.shape and a.shape[0] == 17 + 10 + 6 + 1 + 12
    assert np.allclose(a[0], h[0]) and np.allclose(b[-1], pts[55])


def test_normalize_roundtrip_and_flat():
    pts = np.array([[0.0, 0.0], [255.0, 127.5]])
    n = normalize_points(pts, 256, 256)
    assert np.allclose(n[0], [-1, -1]) and np.isclose(n[1, 0], 1.0)
    assert np.allclose(denormalize_points(n, 256, 256), pts)
    assert np.allclose(unflatten_points(flatten_points(pts)), pts)
