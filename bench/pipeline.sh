#!/usr/bin/env bash
# End-to-end NIC pipeline on a synthetic cohort, as in the paper's Tables 2–3 plus heatmap scores:
#   nic synth → make-bank → train-encoder (per learned encoder) → compress → train (k-fold CV)
#   → gradcam (held-out model per slide) → eval-heatmap
# Prints one row per encoder (held-out AUC with 95% CI, Grad-CAM pixel AUC, pointing game, mass inside
# lesions) and writes the same table as JSON. A benchmark: figures are printed, never asserted.
#
# Usage: bench/pipeline.sh [WORKDIR]      (default ./bench-pipeline)
# Environment (defaults in brackets):
#   NIC        path of the nic binary            [build/release/app/nic/nic, else `nic` on PATH]
#   COUNT      slides                            [40]      SIZE     level-0 size  [4096x4096]
#   DIFFICULTY standard or hard (one lesion 2–4 patches across per positive slide; nic synth --difficulty) [standard]
#   ENCODERS   space-separated list              ["mean-rgb supervised-tumor bigan"]
#              keras-bigan: the paper's published BiGAN encoder, imported with `nic import-keras` from
#              KERAS_BIGAN [../shared/data/models/nic_encoders/encoder_bigan.h5]; skipped when that file is absent
#              Any <encoder>/encoder.nicenc already in WORKDIR is used as it is (e.g. encoders trained on another cohort)
#   ENC_EPOCHS encoder epochs [5]   ENC_STEPS steps/epoch [100]   BANK_PER_SLIDE patches/slide [200]
#   ENC_AUGMENT augmentation strength for the encoders that augment (train-encoder --augment) [per kind]
#   AUGMENT    1 or 8 stored dihedral variants   [8]
#   EPOCHS     slide-CNN epochs [30]   STEPS steps/epoch [0 = auto]   FOLDS [4]   SEED [1]
#   HEADS      slide-CNN heads (nic train --head), one row each   [auto]
#              auto keeps OUT/<encoder>/{run,heatmaps}; other heads write run-<head>, heatmaps-<head>
#   TRAIN_ARGS extra nic train options, e.g. "--layers 6"   [none]
#   THREADS    LibTorch threads (0 = default)    [0]
set -euo pipefail

WORK=${1:-bench-pipeline}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
if [[ -z "${NIC:-}" ]]; then
  for c in "$ROOT/build/release/app/nic/nic" "$ROOT/build/dev/app/nic/nic"; do
    [[ -x "$c" ]] && NIC=$c && break
  done
  NIC=${NIC:-nic}
fi
COUNT=${COUNT:-40}
SIZE=${SIZE:-4096x4096}
DIFFICULTY=${DIFFICULTY:-standard}
ENCODERS=${ENCODERS:-"mean-rgb supervised-tumor bigan"}
ENC_EPOCHS=${ENC_EPOCHS:-5}
ENC_STEPS=${ENC_STEPS:-100}
ENC_AUGMENT=${ENC_AUGMENT:-}
BANK_PER_SLIDE=${BANK_PER_SLIDE:-200}
AUGMENT=${AUGMENT:-8}
EPOCHS=${EPOCHS:-30}
STEPS=${STEPS:-0}
FOLDS=${FOLDS:-4}
SEED=${SEED:-1}
THREADS=${THREADS:-0}
HEADS=${HEADS:-auto}
TRAIN_ARGS=${TRAIN_ARGS:-}
command -v jq >/dev/null || { echo "bench/pipeline.sh needs jq" >&2; exit 2; }

mkdir -p "$WORK"
T0=$(date +%s)
stamp() { echo "[$(( $(date +%s) - T0 )) s] $*" >&2; }

if [[ ! -f "$WORK/synth/cohort.csv" ]]; then
  stamp "synth: $COUNT slides of $SIZE ($DIFFICULTY)"
  "$NIC" synth --out "$WORK/synth" --count "$COUNT" --size "$SIZE" --seed "$SEED" --positive-fraction 0.5 \
    --difficulty "$DIFFICULTY" -q
fi
COHORT="$WORK/synth/cohort.csv"

ROWS=()
for ENC in $ENCODERS; do
  E="$WORK/$ENC"
  mkdir -p "$E"
  declare -A SECS=()
  if [[ "$ENC" == mean-rgb ]]; then
    ENCFILE=mean-rgb
  elif [[ "$ENC" == keras-bigan ]]; then
    ENCFILE="$E/encoder.nicenc"
    if [[ ! -f "$ENCFILE" ]]; then
      KERAS=${KERAS_BIGAN:-$ROOT/../shared/data/models/nic_encoders/encoder_bigan.h5}
      if [[ ! -f "$KERAS" ]]; then
        stamp "keras-bigan: skipped, $KERAS not found (set KERAS_BIGAN)"
        continue
      fi
      stamp "keras-bigan: import-keras $KERAS"
      "$NIC" import-keras "$KERAS" --out "$ENCFILE" > /dev/null
    fi
  else
    ENCFILE="$E/encoder.nicenc"
    if [[ ! -f "$ENCFILE" ]]; then
      t=$(date +%s)
      # The paper's patch sets: contrastive pairs need each anchor's 4-neighbours (make-bank keeps them);
      # the supervised sets are class-balanced, from every tissue cell (tumour cells are few); VAE and BiGAN
      # take a plain random subset.
      case "$ENC" in
        contrastive) BANK="$WORK/bank-neighbours.nicbank"; BANK_ARGS=(--max-per-slide "$BANK_PER_SLIDE") ;;
        supervised-*) BANK="$WORK/bank-balanced.nicbank"; BANK_ARGS=(--balance) ;;
        *) BANK="$WORK/bank-random.nicbank"; BANK_ARGS=(--max-per-slide "$BANK_PER_SLIDE" --no-neighbours) ;;
      esac
      if [[ ! -f "$BANK" ]]; then
        stamp "make-bank $(basename "$BANK")"
        "$NIC" make-bank --cohort "$COHORT" --out "$BANK" "${BANK_ARGS[@]}" --seed "$SEED" --quiet
      fi
      stamp "$ENC: train-encoder"
      "$NIC" train-encoder --kind "$ENC" --bank "$BANK" --out "$ENCFILE" --epochs "$ENC_EPOCHS" \
        --steps-per-epoch "$ENC_STEPS" --seed "$SEED" --threads "$THREADS" ${ENC_AUGMENT:+--augment "$ENC_AUGMENT"} --quiet
      SECS[encoder]=$(( $(date +%s) - t ))
    fi
  fi
  t=$(date +%s)
  stamp "$ENC: compress"
  "$NIC" compress --cohort "$COHORT" -e "$ENCFILE" --out "$E/grids" --augment "$AUGMENT" -q
  SECS[compress]=$(( $(date +%s) - t )); t=$(date +%s)
  for HEAD in $HEADS; do
    SFX=$([[ "$HEAD" == auto ]] && echo "" || echo "-$HEAD")
    t=$(date +%s)
    stamp "$ENC: train (k=$FOLDS, head $HEAD)"
    "$NIC" train --cohort "$COHORT" --grids "$E/grids" --task classify --folds "$FOLDS" --epochs "$EPOCHS" \
      --steps-per-epoch "$STEPS" --seed "$SEED" --threads "$THREADS" --head "$HEAD" $TRAIN_ARGS --out "$E/run$SFX" -q \
      > "$E/train$SFX.txt"
    SECS[train]=$(( $(date +%s) - t )); t=$(date +%s)
    stamp "$ENC: gradcam (head $HEAD)"
    "$NIC" gradcam --model "$E/run$SFX" --out "$E/heatmaps$SFX" --slides "$WORK/synth" -q "$E"/grids/*.h5 > /dev/null
    SECS[gradcam]=$(( $(date +%s) - t ))
    "$NIC" eval-heatmap --cohort "$COHORT" --heatmaps "$E/heatmaps$SFX" --json "$E/heatmap-eval$SFX.json" \
      > "$E/heatmap-eval$SFX.txt"
    ROWS+=("$(jq -c --arg enc "$ENC" --arg secs "$(for k in "${!SECS[@]}"; do echo "$k=${SECS[$k]}"; done | paste -sd, -)" \
      --slurpfile ev "$E/heatmap-eval$SFX.json" \
      '{encoder: $enc, head: .head, auc: .auc.value, auc_ci: [.auc.ci_low, .auc.ci_high], round_auc: .round_auc,
        pixel_auc: $ev[0].cohort.pixel_auc.mean, pointing: $ev[0].cohort.pointing_game.rate,
        pointing_hits: $ev[0].cohort.pointing_game.hits, pointing_slides: $ev[0].cohort.pointing_game.slides,
        mass_inside: $ev[0].cohort.mass_inside.mean, seconds: $secs, heatmaps: "'"$E/heatmaps$SFX"'"}' "$E/run$SFX/metrics.json")")
  done
  unset SECS
done

TOTAL=$(( $(date +%s) - T0 ))
printf '%s\n' "${ROWS[@]}" | jq -s --arg total "$TOTAL" --arg count "$COUNT" --arg size "$SIZE" \
  '{slides: ($count|tonumber), size: $size, total_seconds: ($total|tonumber), encoders: .}' > "$WORK/results.json"

echo
echo "NIC pipeline on $COUNT synthetic slides ($SIZE px), $FOLDS-fold CV, held-out \"All\" set"
printf '%-18s %-8s %-22s %9s %9s %9s\n' encoder head "AUC [95% CI]" "pix AUC" pointing "mass in"
jq -r '.encoders[] | [.encoder, (.head // "?"),
   ((.auc // 0 | tostring | .[0:5]) + " [" + (.auc_ci[0] // 0 | tostring | .[0:5]) + "-" + (.auc_ci[1] // 0 | tostring | .[0:5]) + "]"),
   (.pixel_auc // "n/a" | tostring | .[0:5]), ((.pointing_hits|tostring) + "/" + (.pointing_slides|tostring)),
   (.mass_inside // "n/a" | tostring | .[0:5])] | @tsv' "$WORK/results.json" |
  while IFS=$'\t' read -r a h b c d e; do printf '%-18s %-8s %-22s %9s %9s %9s\n' "$a" "$h" "$b" "$c" "$d" "$e"; done
echo
echo "total ${TOTAL} s; JSON: $WORK/results.json; heatmaps: $WORK/<encoder>/heatmaps/"
