#!/usr/bin/env bash
# The whole PDA chain on the embedded demo world: `make demo` runs this.
# Usage: tools/run_demo.sh OUT   (the venv's bin must be on PATH, or set BIN; STOP_AFTER=pack stops there)
set -euo pipefail
OUT=${1:-demo_out}
BIN=${BIN:-$(dirname "$0")/../.venv/bin}
export PATH="$BIN:$PATH"
# One thread per math library: every model here is tiny, and on 2 cores a second OpenMP thread mostly spins
# (and crawls when the other core is busy).
export OMP_NUM_THREADS=1
mkdir -p "$OUT"

step() { printf '\n\033[1m== %s\033[0m (%d s)\n' "$*" "$SECONDS"; }

# Independent steps run side by side (the demo is sized for 2 cores), each into its own log under
# $OUT/logs; the logs are printed in order once all are done, and if any failed the demo stops there.
side_by_side() {
  local names=("$@") pids=() i status=0
  mkdir -p "$OUT/logs"
  for i in "${!names[@]}"; do "${names[$i]}" > "$OUT/logs/${names[$i]}.log" 2>&1 & pids+=($!); done
  for i in "${!names[@]}"; do
    wait "${pids[$i]}" || status=$?
    cat "$OUT/logs/${names[$i]}.log"
  done
  return "$status"
}

step "1/8 demo world"
pda-data demo --out "$OUT/world"
step "2/8 curate cosers (anime face detector + dlib fallback) and humans, 3/8 anime landmarks"
# The anime cascade is downloaded on first use; an offline machine without it (and without
# $PDA_ANIME_CASCADE) runs the demo on dlib's detector alone rather than stopping.
coser_detector=()
if ! python -c "from pda_data.faces.models import resolve_cascade; resolve_cascade()" 2>/dev/null; then
  echo "note: the anime-face cascade is not available offline; cropping demo cosers with dlib-hog only"
  coser_detector=(--detector dlib-hog --no-fallback)
fi
# Every demo face is the same person, so near-duplicate removal would drop real samples here.
cosers() {
  pda-data crop-cosers "$OUT/world/raw_cosers" --out "$OUT/cosers" --faces all --no-dedup "${coser_detector[@]}"
}
humans_and_anime() {
  pda-data crop-humans "$OUT/world/humans" --out "$OUT/humans" --no-dedup
  pda-data landmarks import "$OUT/world/anime_annotations.xml" --images "$OUT/world/anime" \
    --out "$OUT/anime.parquet"
}
side_by_side cosers humans_and_anime
step "4/8 synthesized classifier data"
structure() { pda-data synth-structure --anime "$OUT/anime.parquet" --out "$OUT/structure" --n 64; }
highlights() {
  pda-data synth-highlights --humans "$OUT/humans" --anime "$OUT/anime.parquet" --out "$OUT/highlights" --n 48
}
aug() { pda-data synth-aug --humans "$OUT/humans" --cosers "$OUT/cosers" --out "$OUT/aug" --n 16; }
side_by_side structure highlights aug
step "5/8 pack shards"
# A quarter of every role is held out (by key hash): about ten test humans the model never trains on.
pda-data pack --out "$OUT/shards" --cosers "$OUT/cosers" --humans "$OUT/humans" --anime "$OUT/anime.parquet" \
  --structure "$OUT/structure" --highlights "$OUT/highlights" --shard-size 32 --test-fraction 0.25
pda-data verify "$OUT/shards" --deep
if [ "${STOP_AFTER:-}" = pack ]; then exit 0; fi  # tools/fetch_gpu_wheels.sh wants the shards only
step "6/8 train: auxiliary networks, then stages 1, 2 and 3 (tiny preset)"
# One torch thread: the tiny networks gain little from a second one and lose badly when the other core is busy.
pda-train run --manifest manifests/demo.yaml --shards "$OUT/shards" --out "$OUT/run" --device cpu --threads 1
step "7/8 translate every human photo, and 8/8 evaluate on the held-out test split"
translate() {
  pda-train translate "$OUT/world/humans" --model "$OUT/run/final.safetensors" --out "$OUT/translated" \
    --paste-back --device cpu
}
# The run's shards, human and anime test splits: faces the model never saw. summary.png shows them.
evaluate() { pda-train evaluate --model "$OUT/run/final.safetensors" --out "$OUT/eval" --device cpu; }
side_by_side translate evaluate
cp "$OUT/eval/summary.png" "$OUT/summary.png"

step "outputs"
echo "model:       $OUT/run/final.safetensors (+ .json config)"
echo "translated:  $OUT/translated/"
echo "evaluation:  $OUT/eval/report.json"
echo "summary:     $OUT/summary.png (input, LDN-warped, anime, pasted back: one column per test face)"
echo "done in $SECONDS s"
