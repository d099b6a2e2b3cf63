"""Landmark Deformation Network and the warp bridge to the stylization network (Sec. 3.1.2).

The LDN maps portrait landmarks to anime landmarks and back. Which points it sees is the
``landmark_set``:

* ``"contour"`` (the paper): the 17 face-contour points of either schema, index for index.
* ``"full"`` (the "Full Landmarks" ablation): all 56 anime points, each paired with its human counterpart
  by ``schema.HUMAN_TO_ANIME`` (dlib's 6-point eyes interpolated to anime's 8; dlib's nose bridge, nose
  base and inner lip unused). Both domains then live in the same point space, which the warp needs: a
  portrait point must move to *its* predicted anime point.

All coordinates are normalised to [-1, 1] (``schema.normalize_points``, align_corners=True).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from pda_data.geometry.warp import tps_warp
from pda_data.schema import ANIME56, HUMAN68, HUMAN_TO_ANIME, LandmarkSchema
from pda_train.config import LandmarkSet
from pda_train.nets.layers import mlp

# Scale of the generators' initial output layer: near-identity maps, so the first warps are mild.
_INITIAL_DISPLACEMENT_SCALE = 0.01


def _point_groups(schema: LandmarkSchema, landmark_set: LandmarkSet) -> tuple[tuple[int, ...], ...]:
    """For each LDN point, the schema indices whose mean it is."""
    if landmark_set == "contour":
        return tuple((i,) for i in schema.contour)
    if schema is HUMAN68:
        return tuple(src for src, _ in HUMAN_TO_ANIME.pairs)
    if schema is ANIME56:
        return tuple(dst for _, dst in HUMAN_TO_ANIME.pairs)
    raise ValueError(f"no full landmark set for schema {schema.name}")


def ldn_point_count(landmark_set: LandmarkSet) -> int:
    """Number of points the LDN maps (17 for the contour, the correspondence size for the full set)."""
    return len(_point_groups(ANIME56, landmark_set))


def ldn_points(landmarks: Tensor, schema: LandmarkSchema, landmark_set: LandmarkSet) -> Tensor:
    """The LDN's points ``(B, P, 2)`` from full ``schema`` landmarks ``(B, N, 2)`` (differentiable)."""
    if landmarks.shape[-2:] != (schema.n_points, 2):
        raise ValueError(
            f"expected {schema.name} landmarks (..., {schema.n_points}, 2), got {tuple(landmarks.shape)}"
        )
    groups = _point_groups(schema, landmark_set)
    if all(len(g) == 1 for g in groups):
        return landmarks[..., [g[0] for g in groups], :]
    return torch.stack([landmarks[..., list(g), :].mean(dim=-2) for g in groups], dim=-2)


class LandmarkGenerator(nn.Module):
    """G^LDN: an MLP over the flattened points that predicts their displacement into the other domain."""

    def __init__(self, *, landmark_set: LandmarkSet, width: int, layers: int) -> None:
        super().__init__()
        self.landmark_set = landmark_set
        self.n_points = ldn_point_count(landmark_set)
        n = 2 * self.n_points
        self.body = mlp([n] + [width] * (layers - 1) + [n])
        last = self.body[-1]
        with torch.no_grad():
            last.weight.mul_(_INITIAL_DISPLACEMENT_SCALE)
            last.bias.zero_()

    def forward(self, points: Tensor) -> Tensor:
        """Points ``(B, P, 2)`` in [-1, 1] to the other domain's points ``(B, P, 2)``."""
        flat = points.flatten(1)
        return (flat + self.body(flat)).view_as(points)


class LandmarkDiscriminator(nn.Module):
    """D^LDN: an MLP scoring a point set as real (towards 1) or generated (towards 0); logits (B, 1)."""

    def __init__(self, *, landmark_set: LandmarkSet, width: int, layers: int) -> None:
        super().__init__()
        self.n_points = ldn_point_count(landmark_set)
        self.body = mlp([2 * self.n_points] + [width] * (layers - 1) + [1])

    def forward(self, points: Tensor) -> Tensor:
        return self.body(points.flatten(1))


def warp_portrait(
    generator: LandmarkGenerator,
    image: Tensor,
    landmarks: Tensor,
    schema: LandmarkSchema,
    *,
    grid: int | None = 64,
) -> tuple[Tensor, Tensor]:
    """The warped portrait I_w and the predicted anime points.

    ``image`` (B, 3, H, W), ``landmarks`` (B, N, 2) in [-1, 1] in ``schema``. G_p->a predicts the anime
    points from the portrait's LDN points and the differentiable TPS moves the content at the portrait's
    points to the predicted ones, image borders anchored; image losses reach G_p->a through the warp.
    Returns (warped (B, 3, H, W), predicted points (B, P, 2)).
    """
    source = ldn_points(landmarks, schema, generator.landmark_set)
    predicted = generator(source)
    warped = tps_warp(image, source.to(image.dtype), predicted.to(image.dtype), grid=grid, anchors=True)
    return warped, predicted
