"""Benchmark the anime landmark predictor against the mean-shape bootstrap on held-out demo portraits.

Trains ``landmarks train-predictor``'s code path on the first N procedural portraits of one demo world
(``pda-data demo --seed 1``; N = 50 and 200, the same epochs and seed), then pre-annotates the portraits of
a separate demo world (``--seed 2``) the way ``landmarks bootstrap`` does: the anime-lbp detector's box,
then the predictor's points or the mean shape placed in the box (the reference, measured in the same run
on the same detected faces). Every figure is an NME: the mean point error over the inter-ocular distance.

    python tools/bench_landmarks.py [--epochs 60] [--sizes 50 200] [--test 100] [--cascade PATH]

The last line of stdout is one JSON object: nme_50, nme_200 (goal <= 0.05), train_s_200, nme_mean_shape,
mean_shape_vs_200 (nme_mean_shape / nme_200, higher is better), train_s_50, per-group NME at 200,
test_images and detected.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from pda_data.annotations.bootstrap import pre_annotate
from pda_data.annotations.formats.registry import read_annotation_source
from pda_data.annotations.ingest import import_annotations
from pda_data.annotations.predictor.model import PredictorConfig
from pda_data.annotations.predictor.nme import OVERALL, nme_report
from pda_data.annotations.predictor.train import TrainOptions, train_predictor
from pda_data.annotations.shapes import default_shape, place_shape
from pda_data.annotations.table import points_array
from pda_data.demo.writer import ANIME_DIR, ANNOTATIONS_NAME, DemoConfig, write_demo
from pda_data.faces.detectors import make_detector
from pda_data.io.images import load_image

ROOT = Path(__file__).resolve().parents[1]
SIZES = (50, 200)  # the training-set sizes: nme_50, nme_200, train_s_200 need both


def _world(out: Path, seed: int, n: int) -> tuple[list[np.ndarray], np.ndarray, list[tuple[str, Path]]]:
    """A demo world's anime portraits through the importer: (images, (N, 56, 2) points, (name, path))."""
    write_demo(out, DemoConfig(seed=seed, n_cosers=0, n_humans=0, n_anime=n, verify=False))
    fmt, records = read_annotation_source(out / ANNOTATIONS_NAME)
    df, problems = import_annotations(records, out / ANIME_DIR, fmt)
    assert not problems, problems
    paths = [Path(p) for p in df["path"]]
    return [load_image(p) for p in paths], points_array(df), [(p.name, p) for p in paths]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=TrainOptions().epochs)
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES), help="training-set sizes")
    parser.add_argument("--test", type=int, default=100, help="held-out portraits (demo seed 2)")
    parser.add_argument("--size", type=int, default=PredictorConfig().size)
    default_cascade = ROOT.parent / "shared" / "models" / "lbpcascade_animeface.xml"
    parser.add_argument("--cascade", type=Path, default=default_cascade if default_cascade.exists() else None)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        images, points, _ = _world(Path(tmp) / "train", 1, max(args.sizes))
        _, test_points, test_files = _world(Path(tmp) / "test", 2, args.test)
        truth = dict(zip((n for n, _ in test_files), test_points, strict=True))
        detector = make_detector("anime-lbp", args.cascade)
        unit = default_shape()
        placed, _ = pre_annotate(test_files, detector, lambda _rgb, box: (place_shape(unit, box), None))
        names = [p.record.name for p in placed]
        true = np.stack([truth[n] for n in names])
        mean_nme = nme_report(np.stack([p.record.points for p in placed]), true)[OVERALL]
        print(f"mean shape: NME {mean_nme:.4f} on {len(names)} detected of {args.test}", flush=True)
        result: dict[str, object] = {}
        for n in sorted(args.sizes):
            options = TrainOptions(epochs=args.epochs, val_fraction=0.0)
            start = time.perf_counter()
            trained = train_predictor(images[:n], points[:n], PredictorConfig(size=args.size), options)
            result[f"train_s_{n}"] = round(time.perf_counter() - start, 1)
            predicted, _ = pre_annotate(test_files, detector, trained.predictor.predict)
            assert [p.record.name for p in predicted] == names
            report = nme_report(np.stack([p.record.points for p in predicted]), true)
            result[f"nme_{n}"] = round(report[OVERALL], 4)
            print(f"N={n}: NME {report[OVERALL]:.4f} in {result[f'train_s_{n}']} s", flush=True)
    largest = max(args.sizes)
    result.update(
        nme_mean_shape=round(mean_nme, 4),
        **{f"mean_shape_vs_{largest}": round(mean_nme / float(result[f"nme_{largest}"]), 2)},
        **{f"groups_{largest}": {k: round(v, 4) for k, v in report.items() if k != OVERALL}},
        test_images=args.test,
        detected=len(names),
        epochs=args.epochs,
        size=args.size,
    )
    ordered = {k: result[k] for k in ("nme_50", "nme_200", "train_s_200", "nme_mean_shape") if k in result}
    print(json.dumps(ordered | result))


if __name__ == "__main__":
    main()
