#!/usr/bin/env bash
# Quick start (1): installs the Debian packages, builds NIC Studio and runs the main job on its built-in
# default, a small synthetic cohort: the whole NIC pipeline (bench/pipeline.sh: synth → patch bank →
# train an encoder → compress → slide CNN with 4-fold cross-validation → Grad-CAM → heatmap scores),
# then prints the results table and opens nic-studio on a positive slide with its heatmap and lesion
# annotations — or, without a display, writes that view as figures (PNG, SVG, PDF).
# Output goes to ./demo (or $1). Sizes can be changed through the environment (see bench/pipeline.sh).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${1:-$root/demo}"
"$root/scripts/install-deps.sh"
"$root/scripts/build.sh" release nic nic-studio
nic="$root/build/release/app/nic/nic"
studio="$root/build/release/app/nic-studio/nic-studio"

# The built-in default: 16 slides of 4096² px (half with lesions). NIC's claim is that an encoder trained
# *without labels* makes slide labels enough: a contrastive encoder trained here on unlabelled patches,
# beside the Mean-RGB lower bound and the supervised-tumor upper bound (trained on patch labels from the
# lesion annotations); the figure shows the contrastive encoder's Grad-CAM. About 4 minutes on an idle
# 2-core machine after the build (docs/timings.md).
# One stored orientation per grid (AUGMENT=1) keeps it there; the paper's 8 are AUGMENT=8 (compression 8x).
export NIC="$nic"
export COUNT="${COUNT:-16}" SIZE="${SIZE:-4096x4096}" SEED="${SEED:-7}"
export ENCODERS="${ENCODERS:-mean-rgb supervised-tumor contrastive}"
# 90 encoder steps at augmentation 0.3 instead of the paper's heavy 1.0: the contrastive encoder then learns
# its pair task (validation accuracy ≈ 0.70). At 1.0, or with 40 steps, it stays near chance and its grids
# are those of an almost untrained network (docs/timings.md).
export ENC_EPOCHS="${ENC_EPOCHS:-3}" ENC_STEPS="${ENC_STEPS:-30}" BANK_PER_SLIDE="${BANK_PER_SLIDE:-200}"
export ENC_AUGMENT="${ENC_AUGMENT:-0.3}"
export AUGMENT="${AUGMENT:-1}" EPOCHS="${EPOCHS:-20}" FOLDS="${FOLDS:-4}" THREADS="${THREADS:-$(nproc)}"
"$root/bench/pipeline.sh" "$out"

# A positive slide, its lesions and the heatmap of the last (learned) encoder.
enc="${ENCODERS##* }"
slide="$(awk -F, 'NR > 1 && $2 == 1 { print $1; exit }' "$out/synth/cohort.csv")"
case "$slide" in /*) ;; *) slide="$out/synth/$slide" ;; esac
stem="$(basename "${slide%.*}")"
heatmap="$out/$enc/heatmaps/${stem}_heatmap.h5"
xml="$(awk -F, -v s="$(basename "$slide")" 'NR > 1 && $1 == s { print $4 }' "$out/synth/cohort.csv")"
case "$xml" in /*) ;; "") xml="${slide%.*}.xml" ;; *) xml="$out/synth/$xml" ;; esac
if [ -n "${DISPLAY:-}${WAYLAND_DISPLAY:-}" ]; then
  echo "== opening nic-studio on $slide with the $enc Grad-CAM heatmap and the lesion annotations"
  "$studio" "$slide" --heatmap "$heatmap" --annotations "$xml" &
else
  echo "== no display: writing the same view as figures to $out/figures"
  mkdir -p "$out/figures"
  for ext in png svg pdf; do
    QT_QPA_PLATFORM="${QT_QPA_PLATFORM:-offscreen}" "$studio" "$slide" --heatmap "$heatmap" --annotations "$xml" \
      --fit --width 1600 --export-view "$out/figures/$stem-$enc.$ext"
  done
  ls -l "$out/figures"
fi
