#!/usr/bin/env bash
# One device check for a lent GPU machine (no network; python3 3.12 with CUDA torch preinstalled).
# Usage: tools/gpu_check.sh [--dry-run] [--shards DIR]    (writes every figure as JSON into $OUT)
#   --dry-run: every step on the CPU at tiny sizes, with this checkout's .venv, so a broken script shows
#              here and not on the lent machine.
#   --shards DIR: the packed demo shards to train on (default .wheels/demo_shards, see fetch_gpu_wheels.sh).
set -uo pipefail
DRY=0
SHARDS=.wheels/demo_shards
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) DRY=1 ;;
    --shards) SHARDS=$2; shift ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
OUT=${OUT:-gpu_check_out}
mkdir -p "$OUT"
WORK=$(mktemp -d)
status=0
note() { printf '\n== %s\n' "$*"; }
record() { # name rc: one JSON line per step into $OUT/steps.jsonl
  printf '{"step": "%s", "rc": %s}\n' "$1" "$2" >> "$OUT/steps.jsonl"
  [ "$2" = 0 ] || status=1
}
: > "$OUT/steps.jsonl"

if [ "$DRY" = 1 ]; then
  PY=${PY:-.venv/bin/python}; DEV=cpu
  BENCH=(--device cpu --sizes 128 --channels 4 --blocks 1 --steps 1 --warmup 0)
  STEPS=3; RESUME=2
else
  PY=${PY:-python3}; DEV=cuda
  BENCH=(--device cuda --sizes 256 --channels 64 --blocks 6 --steps 5 --warmup 2)
  STEPS=300; RESUME=100
fi

note "1 install (offline: wheels in .wheels/, the project with --no-deps; the machine's torch stays)"
SITE=$WORK/site
if ls .wheels/*.whl >/dev/null 2>&1; then
  extra=(); [ "$DRY" = 1 ] && extra=(--python-version 3.12 --platform manylinux2014_x86_64 --only-binary=:all:)
  $PY -m pip install -q --no-index --no-deps --target "$SITE" "${extra[@]}" .wheels/*.whl; record wheels $?
else
  echo "no .wheels/*.whl: skipped"; [ "$DRY" = 1 ] || record wheels 1
fi
PROJECT=$WORK/project
PYTHONPATH="$SITE" $PY -m pip install -q --no-index --no-deps --no-build-isolation --target "$PROJECT" .
record project $?
if [ "$DRY" = 1 ]; then export PYTHONPATH="$PROJECT"; else export PYTHONPATH="$PROJECT:$SITE"; fi
PDA_TRAIN=("$PY" -c "from pda_train.cli import main; main()")

note "2 tests marked gpu"
$PY -m pytest -q -m gpu tests/test_gpu.py -p no:cacheprovider --junitxml="$OUT/gpu_tests.xml"
rc=$?; [ $rc = 5 ] && rc=0; record gpu_tests $rc  # 5: nothing collected

note "3 bench_step: fp32, bf16, bf16 + compile against the U-GAT-IT step"
for mode in "off" "bf16" "bf16 --compile"; do
  name=$(echo "$mode" | tr -d ' -')
  [ "$DRY" = 1 ] && [ "$name" = bf16compile ] && set -- --compile-backend eager || set --
  # shellcheck disable=SC2086
  $PY tools/bench_step.py "${BENCH[@]}" --amp $mode "$@" | tail -n 1 > "$OUT/bench_$name.json"
  record "bench_$name" "${PIPESTATUS[0]}"
done

note "4 pda-train run on the demo shards, then one resume"
RUN=$WORK/run
"${PDA_TRAIN[@]}" run -m manifests/demo.yaml --shards "$SHARDS" -o "$RUN" --device $DEV --max-steps $STEPS \
  --no-tensorboard; record train $?
"${PDA_TRAIN[@]}" run -m manifests/demo.yaml --shards "$SHARDS" -o "$RUN" --device $DEV --resume \
  --max-steps $RESUME --no-tensorboard; record resume $?
cp "$RUN/metrics.jsonl" "$OUT/metrics.jsonl" 2>/dev/null
"${PDA_TRAIN[@]}" describe --preset paper --amp bf16 --device $DEV --json $([ "$DRY" = 1 ] && echo --no-measure) \
  > "$OUT/describe_paper.json"; record describe $?

rm -rf "$WORK"
echo "{\"dry_run\": $DRY, \"failed_steps\": $(grep -vc '"rc": 0' "$OUT/steps.jsonl")}" | tee "$OUT/summary.json"
exit $status
