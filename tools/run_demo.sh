#!/usr/bin/env bash
# The whole PDA chain on the embedded demo world: `make demo` runs this.
# Usage: tools/run_demo.sh OUT   (the venv's bin must be on PATH, or set BIN)
set -euo pipefail
OUT=${1:-demo_out}
BIN=${BIN:-$(dirname "$0")/../.venv/bin}
export PATH="$BIN:$PATH"
mkdir -p "$OUT"

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "1/9 demo world"
pda-data demo "$OUT/world"
step "2/9 curate cosers (anime face detector + dlib fallback) and humans"
# Every demo face is the same person, so near-duplicate removal would drop real samples here.
pda-data crop-cosers "$OUT/world/raw_cosers" --out "$OUT/cosers" --faces all --no-dedup
pda-data crop-humans "$OUT/world/humans" --out "$OUT/humans" --no-dedup
step "3/9 anime landmarks"
pda-data landmarks import "$OUT/world/anime_annotations.xml" --images "$OUT/world/anime" --out "$OUT/anime.parquet"
step "4/9 synthesized classifier data"
pda-data synth-structure --anime "$OUT/anime.parquet" --out "$OUT/structure" --n 96
pda-data synth-highlights --humans "$OUT/humans" --anime "$OUT/anime.parquet" --out "$OUT/highlights" --n 96
pda-data synth-aug --humans "$OUT/humans" --cosers "$OUT/cosers" --out "$OUT/aug" --n 16
step "5/9 pack shards"
pda-data pack --out "$OUT/shards" --cosers "$OUT/cosers" --humans "$OUT/humans" --anime "$OUT/anime.parquet" \
  --structure "$OUT/structure" --highlights "$OUT/highlights" --shard-size 16
pda-data verify "$OUT/shards" --deep
