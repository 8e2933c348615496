#!/usr/bin/env bash
# Stage-2 variants side by side on one GPU call: the shipped model's data (seed 1000, 320 + 16 scenes) is
# generated and preprocessed once, then each variant trains for the same number of steps on it and is scored
# (held-out and 8 training scenes, standard_v2, all keyframes, and the model's own pointmap error).
# Everything runs through tests/benchmarks/synthetic_accuracy.py.
#
#   bash tests/benchmarks/synthetic_head_variants.sh [VARIANT ...]     # default: every variant below
#
# Continuing the shipped model (`training.chkpt`): head (its stage 2 continued: head + DINO branch, backbone
# frozen), joint (the MUSt3R backbone fine-tuned too, at 0.2x the rate, under the panoptic loss plus its own
# pointmap loss: objective panoptic_pointmap), joint6 (joint on 6-view samples: twice the samples per second).
# A new head from scratch on the shipped model's frozen stage-1 backbone (`training.must3r_chkpt`):
# head_scratch (compact_v2, the official LoftUp guidance), wide_scratch (compact_wide_v2: 2.5x the DINO branch,
# 5.5x the head), smooth_scratch (synthetic_head's own variant, compact_smooth_v2: LoftUp guidance smooth in
# colour and normalised per image in training; the shipped model's stage 2), nocolor_scratch
# (compact_nocolor_v2: LoftUp guided by pixel positions only).
#
# PARALLEL=1 trains the named variants at the same time (one torchrun each, WORKERS data-loader processes
# each, default 6), then scores each: a fair side-by-side on one GPU that a small model does not fill.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=${ROOT:-runs/synthetic_variants}
STEPS_PER_EPOCH=${STEPS_PER_EPOCH:-50}
EPOCHS=${EPOCHS:-3}
BATCH=${BATCH:-16}
DATA=(--train-scenes "${TRAIN_SCENES:-320}" --val-scenes "${VAL_SCENES:-16}" --frames "${FRAMES:-16}"
      --image-size ${IMAGE_SIZE:-320 240} --seed "${SEED:-1000}" --target-resolution "${TARGET_RESOLUTION:-256}")
read -r -a EXTRA <<< "${EXTRA_ARGS:-}"
PYTHON=${PYTHON:-python3}
JOINT=(--set training.objective=panoptic_pointmap --set training.finetune_must3r_encoder=true
       --set training.finetune_must3r_decoder=true --set training.lr_scales.must3r_encoder=0.2
       --set training.lr_scales.must3r_decoder=0.2)
WARM="--set training.chkpt=shipped:compact_smooth_v2_synthetic"
SCRATCH="--set training.must3r_chkpt=shipped:compact_smooth_v2_synthetic"
declare -A VARIANTS=(
  [head]="$WARM"
  [joint]="$WARM ${JOINT[*]}"
  [joint6]="$WARM ${JOINT[*]} --set data.num_views=6 --set data.max_memory_num_views=6"
  [head_scratch]="$SCRATCH --set model.variant=compact_v2"
  [wide_scratch]="$SCRATCH --set model.variant=compact_wide_v2"
  [smooth_scratch]="$SCRATCH"
  [nocolor_scratch]="$SCRATCH --set model.variant=compact_nocolor_v2"
)
ORDER=(head joint joint6 head_scratch wide_scratch smooth_scratch nocolor_scratch)
run() { "$PYTHON" tests/benchmarks/synthetic_accuracy.py "${DATA[@]}" "${EXTRA[@]}" "$@"; }

train_variant() {
  local name=$1 work="$ROOT/$1" shared overrides
  mkdir -p "$work"
  for shared in scannetpp pairs store generated.json preprocessed.json; do
    ln -sfn ../data/$shared "$work/$shared"
  done
  read -r -a overrides <<< "${VARIANTS[$name]}"
  echo "== variant $name: ${overrides[*]}"
  run --work "$work" --recipe scratch --config synthetic_head --stages train,evaluate,export \
      --set training.batch_size="$BATCH" \
      --set data.samples_per_epoch=$((STEPS_PER_EPOCH * BATCH)) "${overrides[@]}" "${LOADER[@]}" \
      --epochs "$EPOCHS" --train-minutes "${TRAIN_MINUTES:-60}" --postprocess standard_v2 \
      --eval-keyframes all --eval-train-scenes 8
}

run --work "$ROOT/data" --stages generate,preprocess
names=("${@:-${ORDER[@]}}")
for name in "${names[@]}"; do
  [[ -v "VARIANTS[$name]" ]] || { echo "unknown variant $name: ${ORDER[*]}" >&2; exit 2; }
done
LOADER=()
if [[ "${PARALLEL:-0}" == 1 ]]; then
  LOADER=(--set training.num_workers="${WORKERS:-6}")
  for name in "${names[@]}"; do
    train_variant "$name" > "$ROOT/$name.log" 2>&1 &
  done
  status=0
  for job in $(jobs -p); do wait "$job" || status=1; done
  for name in "${names[@]}"; do echo "== $name"; tail -n 40 "$ROOT/$name.log"; done
  exit "$status"
fi
for name in "${names[@]}"; do train_variant "$name"; done
