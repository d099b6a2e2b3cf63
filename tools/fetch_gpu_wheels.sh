#!/usr/bin/env bash
# Fill .wheels/ (git-ignored) with what tools/gpu_check.sh installs offline on a lent GPU machine:
# Python 3.12 x86-64 wheels of the packages its image lacks (no dependencies: the image has numpy, pandas,
# pyarrow, torch...), and the demo shards to train on (.wheels/demo_shards, packed by the demo pipeline).
# Usage: tools/fetch_gpu_wheels.sh   (needs the network and this checkout's .venv)
set -euo pipefail
W=.wheels
mkdir -p "$W"
.venv/bin/python -m pip download -q --no-deps --python-version 3.12 --only-binary=:all: \
  --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 -d "$W" \
  webdataset braceexpand defusedxml dlib-bin pytest iniconfig pluggy setuptools
# Training and the gpu tests import neither datasets (export) nor face-recognition-models (~100 MB of dlib
# models, translate only): they stay behind to keep the carry under 64 MiB.
if [ ! -d "$W/demo_shards" ]; then
  tmp=$(mktemp -d)
  STOP_AFTER=pack BIN=.venv/bin bash tools/run_demo.sh "$tmp"
  mv "$tmp/shards" "$W/demo_shards" && rm -rf "$tmp"
fi
du -sh "$W"
