#!/usr/bin/env bash
# The shipped synthetic model's recipe on one GPU, as three calls of under 10 minutes each (the lent GPU
# machines run one command for at most 10 minutes): `synthetic_two_stage.sh data-pretrain`, then `head`, then
# `evaluate`. Each drives tests/benchmarks/synthetic_accuracy.py; a training stage first trains
# MEASURE_MINUTES to measure its step rate, then resumes with a cosine schedule planned to end inside the call.
# Every setting can be changed through the environment (the CPU rehearsal in the tests shrinks them all).
set -euo pipefail
cd "$(dirname "$0")/../.."
call=${1:?usage: synthetic_two_stage.sh data-pretrain|head|evaluate}
started=$(date +%s)
WORK=${WORK:-runs/synthetic_two_stage}
CALL_SECONDS=${CALL_SECONDS:-570}         # what one call may take, start-up of this script included
MEASURE_MINUTES=${MEASURE_MINUTES:-0.75}
DATA=(--train-scenes "${TRAIN_SCENES:-320}" --val-scenes "${VAL_SCENES:-16}" --frames "${FRAMES:-16}"
      --image-size ${IMAGE_SIZE:-320 240} --seed "${SEED:-1000}" --target-resolution "${TARGET_RESOLUTION:-256}")
read -r -a EXTRA <<< "${EXTRA_ARGS:-}"
PYTHON=${PYTHON:-python3}
run() { "$PYTHON" tests/benchmarks/synthetic_accuracy.py --work "$WORK" "${DATA[@]}" "${EXTRA[@]}" "$@"; }
minutes_left() { "$PYTHON" -c "print(max(0.5, ($CALL_SECONDS - ($(date +%s) - $started)) / 60))"; }

case "$call" in
  data-pretrain)
    run --stages generate,preprocess,pretrain --pretrain-minutes "$MEASURE_MINUTES"
    run --stages pretrain --final-call --total-pretrain-minutes 60 --pretrain-minutes 60 \
        --call-minutes "$(minutes_left)" ;;
  head)
    run --stages train --train-minutes "$MEASURE_MINUTES"
    run --stages train --final-call --total-train-minutes 60 --train-minutes 60 \
        --call-minutes "$(minutes_left)" ;;
  evaluate)
    run --stages evaluate,export --eval-keyframes all 4 ;;
  *) echo "unknown call $call: data-pretrain, head or evaluate" >&2; exit 2 ;;
esac
