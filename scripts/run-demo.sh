#!/usr/bin/env bash
# Quick start (1): installs the Debian packages, builds NIC Studio and runs the main job on the built-in
# default: a small synthetic cohort. Output goes to ./demo (or $1).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${1:-$root/demo}"
"$root/scripts/install-deps.sh"
"$root/scripts/build.sh" release nic
nic="$root/build/release/app/nic/nic"
echo "== generating a synthetic cohort in $out/cohort"
"$nic" synth --out "$out/cohort" --count 6 --size 8192x6144 --seed 7 --positive-fraction 0.5
echo "== what it made"
cat "$out/cohort/cohort.csv"
first="$(find "$out/cohort" -maxdepth 1 -name '*.tif' -o -maxdepth 1 -name '*.svs' | sort | head -n 1)"
"$nic" info "$first"
"$nic" tissue "$first" --out "$out/tissue-mask.png" --grid 128,128,0.5
echo "== compressing the cohort with the Mean-RGB baseline encoder"
"$nic" compress --encoder mean-rgb --out "$out/grids" --cohort "$out/cohort/cohort.csv"
echo "== done: slides, annotations and cohort.csv in $out/cohort; tissue mask in $out/tissue-mask.png;"
echo "   latent grids (HDF5, see docs/compressed-slide-format.md) in $out/grids"
