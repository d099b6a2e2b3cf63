"""Normalised mean error (NME): the mean point error over the inter-ocular distance, per group and overall.

The inter-ocular distance is the distance between the true eye centres."""

from __future__ import annotations

import numpy as np

from pda_data.schema import ANIME56, LandmarkSchema

OVERALL = "all"


def nme_per_image(
    predicted: np.ndarray, truth: np.ndarray, schema: LandmarkSchema = ANIME56
) -> dict[str, np.ndarray]:
    """{group or :data:`OVERALL`: (N,) NME of each image} for (N, K, 2) predicted and true points."""
    pred, true = schema.check_shape(predicted), schema.check_shape(truth)
    left, right = np.moveaxis(schema.eye_centres(true), -2, 0)
    iod = np.maximum(np.linalg.norm(right - left, axis=-1), 1e-9)
    err = np.linalg.norm(pred - true, axis=-1) / iod[..., None]
    out = {name: err[..., list(idx)].mean(axis=-1) for name, idx in schema.groups.items()}
    out[OVERALL] = err.mean(axis=-1)
    return out


def nme_report(
    predicted: np.ndarray, truth: np.ndarray, schema: LandmarkSchema = ANIME56
) -> dict[str, float]:
    """{group or :data:`OVERALL`: mean NME over the images}, what the train report and the benchmark print."""
    return {k: float(v.mean()) for k, v in nme_per_image(predicted, truth, schema).items()}
