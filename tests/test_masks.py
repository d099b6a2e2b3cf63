"""Facial masks from landmarks on the real samples, for both schemas."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from synth_world import anime_points, selfie_points

from pda_data.geometry.masks import eye_mask, face_mask, face_outline, forehead_mask, mouth_mask, part_mask
from pda_data.schema import ANIME56, HUMAN68, LandmarkSchema

SHAPE = (256, 256)


def _cases() -> list[tuple[str, np.ndarray, LandmarkSchema]]:
    anime = [(name, pts, ANIME56) for name, pts in anime_points().items()]
    humans = [(name, pts, HUMAN68) for name, pts in selfie_points().items()]
    return anime + humans


CASES = _cases()
IDS = [c[0] for c in CASES]


def _at(mask: np.ndarray, point: np.ndarray) -> float:
    return float(mask[int(round(point[1])), int(round(point[0]))])


@pytest.mark.parametrize(("name", "points", "schema"), CASES, ids=IDS)
def test_face_mask_covers_the_inner_face_and_nothing_far_away(
    name: str, points: np.ndarray, schema: LandmarkSchema
) -> None:
    mask = face_mask(points, schema, SHAPE)
    assert mask.dtype == np.float32 and mask.shape == SHAPE
    for p in schema.structure_points(points):
        assert _at(mask, p) == 1.0
    assert _at(mask, points[schema.nose_tip]) == 1.0
    brows = points[list(schema.groups["left_brow"] + schema.groups["right_brow"])]
    assert min(_at(mask, p) for p in brows) > 0.5  # closed over the brows
    # The area is that of the contour-and-brows polygon, give or take the brow lift and the smooth curve.
    ring = np.concatenate([points[list(schema.contour)], brows[::-1]]).astype(np.float32)
    polygon_area = cv2.contourArea(ring)
    assert 0.9 * polygon_area < mask.sum() < 1.25 * polygon_area
    for corner in ((0, 0), (0, 255), (255, 0), (255, 255)):
        assert mask[corner] == 0.0


@pytest.mark.parametrize(("name", "points", "schema"), CASES, ids=IDS)
def test_forehead_is_above_the_brows_only(name: str, points: np.ndarray, schema: LandmarkSchema) -> None:
    forehead = forehead_mask(points, schema, SHAPE)
    brow_top = points[list(schema.groups["left_brow"] + schema.groups["right_brow"]), 1].min()
    for p in schema.structure_points(points):
        assert _at(forehead, p) == 0.0
    ys = np.nonzero(forehead > 0.5)[0]
    assert len(ys) > 1000 and ys.mean() < brow_top
    outline = face_outline(points, schema)
    assert outline.shape[1] == 2 and len(outline) >= 100


@pytest.mark.parametrize(("name", "points", "schema"), CASES, ids=IDS)
def test_eye_and_mouth_regions(name: str, points: np.ndarray, schema: LandmarkSchema) -> None:
    eyes, mouth = eye_mask(points, schema, SHAPE), mouth_mask(points, schema, SHAPE)
    grown = eye_mask(points, schema, SHAPE, grow=4)
    left, right, lm, rm = schema.structure_points(points)
    assert _at(eyes, left) == 1.0 and _at(eyes, right) == 1.0
    assert _at(eyes, (lm + rm) / 2) == 0.0
    assert (grown >= eyes).all() and grown.sum() > eyes.sum() * 1.2
    assert mouth.sum() > 0 and (mouth * eyes).sum() == 0
    assert _at(mouth, (lm + rm) / 2) > 0.0


def test_feathering_softens_but_keeps_the_mass() -> None:
    points = anime_points()["anime_3414.png"]
    hard, soft = face_mask(points, ANIME56, SHAPE), face_mask(points, ANIME56, SHAPE, feather=4)
    assert ((soft > 0.02) & (soft < 0.98)).sum() > 3 * ((hard > 0.02) & (hard < 0.98)).sum()
    assert abs(soft.sum() - hard.sum()) < 0.02 * hard.sum()


def test_unknown_part_and_degenerate_face_raise() -> None:
    points = anime_points()["anime_3414.png"]
    with pytest.raises(KeyError, match="nose_bridge"):
        part_mask(points, ANIME56, SHAPE, ("nose_bridge",))
    flat = np.zeros((ANIME56.n_points, 2))
    with pytest.raises(ValueError, match="degenerate"):
        face_mask(flat, ANIME56, SHAPE)
