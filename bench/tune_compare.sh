#!/usr/bin/env bash
# ASHA against Ultralytics' genetic tuner on the built-in shapes set, same trials, epochs, slots and seed:
# prints each search's summary (trials completed / stopped / failed, trial-epochs, wall time, best fitness).
# Budget (override by environment): SEED=0 EPOCHS=9 ITERATIONS=8 TRIALS=2 GRACE=1 IMGSZ=128 MODEL=yolov8n.yaml.
# On 2 CPU cores at 128 px a yolov8n epoch of shapes takes about 20 core-seconds: the genetic run trains
# ITERATIONS x EPOCHS epochs (72: about 25 min), ASHA fewer. IMGSZ=64 is about 4x faster.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
SEED=${SEED:-0} EPOCHS=${EPOCHS:-9} ITERATIONS=${ITERATIONS:-8} TRIALS=${TRIALS:-2} GRACE=${GRACE:-1}
IMGSZ=${IMGSZ:-128} MODEL=${MODEL:-yolov8n.yaml} OUT=${OUT:-/tmp/osprey-tune-compare}
common=(data=shapes "model=$MODEL" "imgsz=$IMGSZ" "epochs=$EPOCHS" "iterations=$ITERATIONS" "trials_at_once=$TRIALS"
        "seed=$SEED" device=cpu plots=False "project=$OUT")
for search in genetic asha; do
  extra=(); [ "$search" = asha ] && extra=("grace_period=$GRACE")
  "$here/osprey" tune "${common[@]}" "search=$search" "${extra[@]}" "name=$search-seed$SEED" | tee "$OUT-$search-seed$SEED.log"
done
echo
echo "seed $SEED, $ITERATIONS trials x $EPOCHS epochs ($((ITERATIONS * EPOCHS)) trial-epochs at most), $TRIALS at once, imgsz $IMGSZ, $MODEL:"
for search in genetic asha; do
  printf '%-8s %s\n' "$search" "$(grep '^Tuner: .* trials (' "$OUT-$search-seed$SEED.log" | tail -1)"
done
