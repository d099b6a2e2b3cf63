"""Benchmark translation at the demo preset (tiny, 64 px) on this CPU: faces/s through the PyTorch and the
ONNX backends, and frames/s of translate-video.

The model is a tiny-preset translator (the demo's ``manifests/demo.yaml`` preset; random weights time the
same as trained ones), exported here to ``.safetensors`` and to ONNX. Faces: the demo group photo's three
faces, found once, their crops repeated to ``--faces``, then ``translate_crops`` (the translate command's
translator call: preprocessing, LDN, TPS, PSN, uint8 outputs) at ``--batch-size`` through each backend;
best of ``--rounds``. ``onnx_vs_torch`` = faces_per_s_onnx / faces_per_s_torch. Video: the demo's moving-face
clip written to an .mp4 and run through ``translate_video`` (decode, detect, landmarks, track, one-euro,
crop, translate, paste, encode) with the PyTorch backend; the reference measured in the same run is
``find_faces`` alone on the same frames (detector + landmarks: the floor of any per-frame face pipeline),
``video_vs_detect`` = video_fps / detect_fps (at most 1; closer to 1 = less overhead on top of detection).
Torch and onnxruntime both get ``--threads`` threads.

    python tools/bench_translate.py [--faces 64] [--batch-size 8] [--frames 48] [--rounds 3] [--threads 1]

The last line of stdout is one JSON object: faces_per_s_torch, faces_per_s_onnx, onnx_vs_torch, video_fps,
detect_fps, video_vs_detect, onnx_max_diff.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from pda_data.demo.group import group_photo, moving_face_clip
from pda_data.faces.detectors import make_detector
from pda_data.faces.landmarks import Landmarker
from pda_train.config import get_preset
from pda_train.inference.backends import OnnxBackend, TorchBackend
from pda_train.inference.export import export_translator, load_translator, read_translator_config
from pda_train.inference.faces import face_options, find_faces
from pda_train.inference.onnx_export import demo_inputs, export_onnx, max_difference
from pda_train.inference.translate import translate_crops
from pda_train.inference.video import read_frames, translate_video, write_video
from pda_train.nets import PDANetworks

PRESET = "tiny"


def _best_s(fn: Callable[[], object], rounds: int) -> float:
    fn()  # warm-up
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faces", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        model_path = export_translator(PDANetworks(get_preset(PRESET).model).eval(), root / "m.safetensors")
        model = load_translator(model_path)
        export_onnx(model, root / "m.onnx", read_translator_config(model_path))
        backends = {"torch": TorchBackend(model), "onnx": OnnxBackend(root / "m.onnx", args.threads)}
        size = model.image_size
        diff = max_difference(model, root / "m.onnx", *demo_inputs(4, size))

        detector, landmarker, options = make_detector("dlib-hog"), Landmarker(), face_options(size)
        kept, _ = find_faces(group_photo(np.random.default_rng(0))[0], detector, landmarker, options)
        crops = [kept[i % len(kept)].crop for i in range(args.faces)]
        points = [kept[i % len(kept)].points for i in range(args.faces)]
        rates = {}
        for name, backend in backends.items():
            seconds = _best_s(lambda b=backend: translate_crops(b, crops, points, batch_size=args.batch_size),
                              args.rounds)
            rates[name] = args.faces / seconds
            print(f"translate_crops {name}: {rates[name]:.1f} faces/s ({args.faces} faces, batch "
                  f"{args.batch_size})")

        frames, _ = moving_face_clip(np.random.default_rng(1), frames=args.frames)
        write_video(root / "in.mp4", frames, 25.0, (frames[0].shape[1], frames[0].shape[0]))
        decoded = list(read_frames(root / "in.mp4"))
        detect_s = _best_s(lambda: [find_faces(f, detector, landmarker, options) for f in decoded], 1)
        video_s = _best_s(lambda: translate_video(
            backends["torch"], root / "in.mp4", root / "out.mp4", detector, landmarker, options,
            batch_size=args.batch_size), 1)
    video_fps, detect_fps = args.frames / video_s, args.frames / detect_s
    print(f"translate_video: {video_fps:.1f} frames/s; find_faces alone: {detect_fps:.1f} frames/s "
          f"({args.frames} frames of {frames[0].shape[1]}x{frames[0].shape[0]})")
    print(f"onnxruntime vs PyTorch max |difference| on 4 demo portraits: {diff:.2e}")
    print(json.dumps({
        "faces_per_s_torch": round(rates["torch"], 1),
        "faces_per_s_onnx": round(rates["onnx"], 1),
        "onnx_vs_torch": round(rates["onnx"] / rates["torch"], 3),
        "video_fps": round(video_fps, 2),
        "detect_fps": round(detect_fps, 2),
        "video_vs_detect": round(video_fps / detect_fps, 3),
        "onnx_max_diff": float(f"{diff:.3g}"),
    }))


if __name__ == "__main__":
    main()
