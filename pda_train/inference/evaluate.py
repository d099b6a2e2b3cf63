"""Evaluation on held-out portraits: the metrics of Tables 1 and 3 (and FID on request).

The faces come from :mod:`pda_train.inference.testset`: the shards' recorded test split by default, or a
curated folder. Every face is translated; per face the report holds Hue-HistD and LPIPS between the input
crop and its translation, both at the model's resolution. Against anime faces (an annotation file, or the
shards' anime test split) the landmark MMD of Table 3 compares the LDN point sets (17 contour points, or all
56 for a "full landmarks" model) of raw human faces and of LDN-deformed human faces with the anime faces',
and FID (with ``--inception``) compares the translations with those anime images. The domain score
(:mod:`pda_train.inference.domain`) is the share of translations that an anime-vs-human classifier, fitted
on the shards' train split, calls anime, beside the same share for the untranslated inputs.

Output folder: ``report.json``, ``images/<key>.png`` (translations), ``sheet.png`` (input | warped | anime)
and, given a face finder, ``summary.png`` (:mod:`pda_train.inference.summary`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from pda_data.annotations.table import AnnotationError, points_array, read_annotations
from pda_data.faces.detection import Detector
from pda_data.faces.landmarks import Landmarker
from pda_data.geometry.crop import resize_to_model
from pda_data.io.files import atomic_write_text
from pda_data.io.images import load_image, save_image
from pda_data.schema import ANIME56, HUMAN68, normalize_points
from pda_data.shards.index import ShardError
from pda_data.stream.augment import images_to_tensor
from pda_data.viz.sheet import contact_sheet
from pda_train.inference import domain, metrics
from pda_train.inference.export import Translator
from pda_train.inference.summary import SUMMARY_NAME, TILE, summary_sheet
from pda_train.inference.testset import Faces, role_images, shard_anime, shard_faces
from pda_train.inference.translate import translate_crops
from pda_train.nets import ldn_points

REPORT_NAME = "report.json"
SHEET_ROWS = 8


@dataclass
class EvalOptions:
    """Optional metrics and limits."""

    anime: Path | None = None  # anime annotation Parquet (landmarks import output) for MMD and FID
    shards: Path | None = None  # else the anime faces of these shards (test split, or train without one)
    lpips_weights: Path | None = None
    inception: Path | None = None
    batch_size: int = 8
    mmd_sigma: float = metrics.MMD_SIGMA
    seed: int = 0  # of the domain classifier
    domain_steps: int = domain.STEPS
    finder: tuple[Detector, Landmarker] | None = None  # finds faces in source photos for summary.png


def _summary(values: list[float]) -> dict[str, float]:
    arr = np.asarray(values, dtype=np.float64)
    return {"mean": float(arr.mean()), "std": float(arr.std()), "count": int(arr.size)}


def load_anime_points(path: Path) -> tuple[np.ndarray, list[Path]]:
    """(N, 56, 2) normalized anime landmarks and image paths of an annotation file."""
    df = read_annotations(path)
    if len(df) == 0:
        raise AnnotationError(f"{path}: no anime annotations")
    pts = [
        normalize_points(p, int(w), int(h))
        for p, w, h in zip(points_array(df), df["width"], df["height"], strict=True)
    ]
    return np.stack(pts), [Path(str(p)) for p in df["path"]]


def evaluate(model: Translator, faces: Faces, out: Path, options: EvalOptions) -> dict[str, Any]:
    """Translate every face of ``faces`` and write the report (returned as a dict)."""
    size = model.image_size
    keys, crops, points = faces.keys, faces.crops, faces.points
    results = translate_crops(model, crops, list(points), batch_size=options.batch_size)
    inputs = [resize_to_model(c, p, size)[0] for c, p in zip(crops, points, strict=True)]  # model inputs
    for key, res in zip(keys, results, strict=True):
        save_image(out / "images" / f"{key}.png", res.anime)
    rows = [[inp, res.warped, res.anime] for inp, res in zip(inputs[:SHEET_ROWS], results, strict=False)]
    save_image(
        out / "sheet.png",
        contact_sheet(
            [t for r in rows for t in r],
            ["input", "warped", "anime"] * len(rows),
            columns=3,
            tile_size=min(size, 128),
        ),
    )
    hue = [metrics.hue_hist_distance(inp, res.anime) for inp, res in zip(inputs, results, strict=True)]
    report: dict[str, Any] = {
        "model": {"image_size": size, "use_ldn": model.cfg.use_ldn, "landmark_set": model.cfg.landmark_set},
        "faces": faces.describe(),
        "count": len(keys),
        "skipped": faces.skipped,
        "hue_histd": {**_summary(hue), "bins": metrics.HUE_BINS, "range": "OpenCV H 0..179, every pixel"},
    }
    device = next(model.parameters()).device
    report["lpips"], lp = _lpips(options, device, inputs, [r.anime for r in results])
    report["per_image"] = [
        {"key": k, "hue_histd": h, **({"lpips": v} if v is not None else {})}
        for k, h, v in zip(keys, hue, lp or [None] * len(keys), strict=True)
    ]
    report["mmd"], report["fid"] = _anime_metrics(model, points, crops, results, options, device)
    report["domain_score"] = _domain_score(options, size, inputs, [r.anime for r in results])
    if options.finder is not None:
        report["summary"] = _summary_picture(model, faces, out, options.finder)
    atomic_write_text(out / REPORT_NAME, json.dumps(report, indent=2))
    return report


def _domain_score(
    options: EvalOptions, size: int, inputs: list[np.ndarray], translated: list[np.ndarray]
) -> dict[str, Any]:
    """Share of translations (and of untranslated inputs) that the train split's classifier calls anime."""
    if options.shards is None:
        return {"unavailable": "needs --shards: the classifier trains on their train split"}
    anime = role_images(options.shards, "anime", "train")
    try:
        human = [resize_to_model(c, p, size)[0] for c, p in zip(*_train_humans(options.shards), strict=True)]
        classifier = domain.train_domain_classifier(
            anime, human, size, seed=options.seed, steps=options.domain_steps
        )
    except ValueError as exc:  # too few train images (or no human train shards)
        return {"unavailable": str(exc)}
    return {
        "translated": domain.anime_share(classifier, translated),
        "untranslated": domain.anime_share(classifier, inputs),
        "classifier": {
            "heldout_accuracy": classifier.heldout_accuracy,
            **classifier.counts,
            "steps": options.domain_steps,
            "seed": options.seed,
            "data": f"{options.shards} (train split)",
        },
    }


def _train_humans(shards: Path) -> tuple[list[np.ndarray], np.ndarray]:
    try:
        faces = shard_faces(shards, "train")
    except ShardError as exc:
        raise ValueError(str(exc)) from None
    return faces.crops, faces.points


def _summary_picture(
    model: Translator, faces: Faces, out: Path, finder: tuple[Detector, Landmarker]
) -> dict[str, Any]:
    """Write summary.png from the faces' source photos; what it shows, or why there is none."""
    photos = list(dict.fromkeys(Path(s) for s in faces.sources if s))
    sheet, problems = summary_sheet(model, photos, *finder)
    if sheet is None:
        return {"unavailable": "no source photo with a face" + (f": {problems[0]}" if problems else "")}
    save_image(out / SUMMARY_NAME, sheet)
    return {"file": SUMMARY_NAME, "faces": sheet.shape[1] // TILE, "left_out": problems}


def _lpips(
    options: EvalOptions, device: torch.device, a: list[np.ndarray], b: list[np.ndarray]
) -> tuple[dict[str, Any], list[float] | None]:
    """LPIPS of every (input, translation) pair, or the reason it is unavailable."""
    try:
        net = metrics.load_lpips(options.lpips_weights, device)
    except metrics.MetricUnavailable as exc:
        return {"unavailable": str(exc)}, None
    values: list[float] = []
    with torch.no_grad():
        for i in range(0, len(a), options.batch_size):
            x = images_to_tensor(a[i : i + options.batch_size]).to(device)
            y = images_to_tensor(b[i : i + options.batch_size]).to(device)
            values += [float(v) for v in net(x, y)]
    return {**_summary(values), "net": "alex"}, values


def _anime_faces(options: EvalOptions) -> tuple[np.ndarray, Callable[[], list[np.ndarray]], str] | None:
    """Normalized (N, 56, 2) anime landmarks, a loader of their images (only FID reads them) and where they
    came from: ``--anime``, else the shards' anime faces, else None."""
    if options.anime is not None:
        pts, paths = load_anime_points(options.anime)
        return pts, lambda: [load_image(p) for p in paths], str(options.anime)
    if options.shards is not None:
        pts, images, split = shard_anime(options.shards)
        return pts, lambda: images, f"{options.shards} (anime {split} split)"
    return None


def _anime_metrics(
    model: Translator,
    points: np.ndarray,
    crops: list[np.ndarray],
    results: list,
    options: EvalOptions,
    device: torch.device,
) -> tuple[dict[str, Any], dict[str, Any]]:
    anime_faces = _anime_faces(options)
    if anime_faces is None:
        why = {"unavailable": "pass --anime (an anime annotation file) or --shards with an anime role"}
        return why, {"unavailable": "needs anime faces and --inception"}
    anime_pts, anime_images, anime_from = anime_faces
    landmark_set = model.cfg.landmark_set
    human = torch.as_tensor(
        np.stack([normalize_points(p, c.shape[1], c.shape[0]) for p, c in zip(points, crops, strict=True)]),
        dtype=torch.float32,
    )
    raw = ldn_points(human, HUMAN68, landmark_set).numpy()
    anime = ldn_points(torch.as_tensor(anime_pts, dtype=torch.float32), ANIME56, landmark_set).numpy()
    mmd: dict[str, Any] = {
        "human_vs_anime": metrics.gaussian_mmd2(raw, anime, options.mmd_sigma),
        "sigma": options.mmd_sigma,
        "points": int(raw.shape[1]),
        "human_count": len(raw),
        "anime_count": len(anime),
        "anime": anime_from,
    }
    if model.ldn is not None:
        with torch.no_grad():
            warped = model.ldn(torch.as_tensor(raw, device=device)).cpu().numpy()
        mmd["warped_vs_anime"] = metrics.gaussian_mmd2(warped, anime, options.mmd_sigma)
    else:
        mmd["warped_vs_anime"] = None
        mmd["note"] = "model without LDN: no deformed landmarks"
    if options.inception is None:
        return mmd, {"unavailable": "pass --inception with a TorchScript or .pt2 Inception to compute FID"}
    try:
        features = metrics.load_inception(options.inception, device)
    except metrics.MetricUnavailable as exc:
        return mmd, {"unavailable": str(exc)}
    size = model.image_size
    real = [cv2.resize(im, (size, size), interpolation=cv2.INTER_AREA) for im in anime_images()]
    fake = [r.anime for r in results]
    feats = [
        np.concatenate(
            [
                features(images_to_tensor(imgs[i : i + options.batch_size])).numpy()
                for i in range(0, len(imgs), options.batch_size)
            ]
        )
        for imgs in (fake, real)
    ]
    try:
        fid = metrics.frechet_distance(
            *metrics.feature_statistics(feats[0]), *metrics.feature_statistics(feats[1])
        )
    except ValueError as exc:
        return mmd, {"unavailable": str(exc)}
    return mmd, {"value": fid, "generated": len(fake), "anime": len(real)}
