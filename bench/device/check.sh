#!/usr/bin/env bash
# Every open GPU check in one call, on the GPU machine, from the repository root with the kit (bench/device/pack.sh)
# in .device/:
#   bash bench/device/check.sh                  # DEVICE=0: the GPU checks, at most BUDGET_S=420 s in all
#   DEVICE=cpu bash bench/device/check.sh       # the dry run on the development machine: same logic, tiny sizes
# Items run in order of importance, each under `timeout` (never past the budget); a slow item loses only the ones
# after it. Each item's log goes to $WORK (default $OUT/work or a temp folder); at the end $OUT holds summary.txt (the
# table printed last) and logs.tar.gz (every log, results.csv, step_times.csv, the exports' check), rewritten after
# each item, so a killed run still returns what finished. Environment: DEVICE, BUDGET_S, OUT, OSPREY (the command;
# default: bash .device/osprey), BUSBW (GB/s of the 8-GPU ring for the scaling model, an assumption: not measured).
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
DEVICE=${DEVICE:-0}
BUDGET_S=${BUDGET_S:-420}
OUT=${OUT:-$(mktemp -d /tmp/osprey-check.XXXX)}
WORK=${WORK:-$(mktemp -d /tmp/osprey-check-work.XXXX)}
OSPREY=${OSPREY:-bash $root/.device/osprey}
BUSBW=${BUSBW:-400}
mkdir -p "$OUT" "$WORK"
export OSPREY_TRAIN_REFERENCE=$root/bench/train_reference.py OSPREY_CACHE=$WORK/cache PYTHONUNBUFFERED=1
coco8=$root/.device/data/coco8/coco8.yaml
[ -f "$coco8" ] || coco8=$root/../shared/data/coco8/coco8.yaml
coco64=$root/.device/data/coco64/coco64.yaml           # 64 coco128 train JPEGs (pack.sh), for the speed benches
[ -f "$coco64" ] || coco64=$root/../shared/data/coco128/coco128.yaml

if [ "$DEVICE" = cpu ]; then          # the dry run: every item's logic, at sizes two busy cores finish in minutes
  gpu=false; img=64; big=64; batch=4; bench_epochs=2; workers=2; ddp="imgsz=64 batch=4 steps=2 nproc=1"
  prec_data=$coco8; prec="imgsz=64 epochs=1 batch=4"; pin="imgsz=64 batch=4 epochs=1"; pg=mpi
  nccl_launch="mpirun --allow-run-as-root -np 1 -x OSPREY_PROCESS_GROUP=mpi -x OSPREY_CACHE"
else
  gpu=true; img=320; big=640; batch=64; bench_epochs=20;  workers=8; ddp="imgsz=640 batch=64 steps=20"
  prec_data=shapes; prec="imgsz=128 epochs=10 batch=16"; pin="imgsz=640 batch=32 epochs=2"; pg=nccl
  nccl_launch="env OSPREY_PROCESS_GROUP=nccl"
fi
common="device=$DEVICE workers=$workers plots=False exist_ok=True project=$WORK/runs"

rows=()
start=$SECONDS
left() { echo $((BUDGET_S - (SECONDS - start))); }
pack_out() {
  printf '%s\n' "${rows[@]}" > "$OUT/summary.txt"
  tar -C "$WORK" --exclude='cache' --exclude='*.safetensors' --exclude='*.ckpt' --exclude='*.onnx' --exclude='*tfevents*' \
    -czf "$OUT/logs.tar.gz" . 2>/dev/null || true
}
# item NAME LIMIT_S FUNCTION: runs FUNCTION under timeout (at most what is left of the budget), logs to $WORK/NAME.log;
# FUNCTION's last line starting with "RESULT " is the table's result, "PASS"/"FAIL" in it the verdict.
item() {
  local name=$1 limit=$2 fn=$3 t0=$SECONDS rc
  local budget; budget=$(left)
  if [ "$budget" -lt 20 ]; then rows+=("$(printf '%-14s %-7s %5s  %s' "$name" skipped - "no time left in BUDGET_S=$BUDGET_S")"); return; fi
  [ "$limit" -gt "$budget" ] && limit=$budget
  echo "== $name (at most $limit s)"
  timeout -k 5 "$limit" bash -c "$fn" > "$WORK/$name.log" 2>&1; rc=$?
  local result; result=$(grep '^RESULT ' "$WORK/$name.log" | tail -1 | cut -c8-)
  local verdict=FAIL
  if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then verdict=TIMEOUT; result="killed after $limit s; ${result:-see $name.log}"
  elif [ $rc -eq 0 ] && [[ $result == PASS* ]]; then verdict=PASS; result=${result#PASS }
  elif [[ $result == INFO* ]] && [ $rc -eq 0 ]; then verdict=INFO; result=${result#INFO }
  else result="${result#FAIL }"; result="${result:-exit $rc: $(tail -2 "$WORK/$name.log" | tr '\n' ' ' | cut -c1-160)}"; fi
  rows+=("$(printf '%-14s %-7s %4ss  %s' "$name" "$verdict" $((SECONDS - t0)) "$result")")
  echo "   $verdict in $((SECONDS - t0)) s: $result"
  pack_out
}
export DEVICE WORK OSPREY BUSBW coco8 coco64 gpu img big batch bench_epochs workers ddp prec_data prec pin pg nccl_launch common root
csvcol() { python3 - "$1" "$2" <<'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
print(rows[-1][sys.argv[2]].strip() if rows else "")
PY
}
export -f csvcol

# 1. info: the app loads PyTorch's CUDA libtorch and sees the GPU
info() {
  local smi; smi=$(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo "no nvidia-smi")
  echo "$smi"
  python3 -c 'import torch; print("python torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.is_available())' 2>&1 || true
  local out; out=$($OSPREY info) || { echo "$out"; exit 1; }
  echo "$out"
  local cuda; cuda=$(grep -E '^ *CUDA' <<< "$out" | sed 's/^ *CUDA *//')
  local gpuname; gpuname=$(head -1 <<< "$smi" | cut -d, -f1)
  if $gpu; then [[ $cuda == available* ]] && echo "RESULT PASS CUDA $cuda; $gpuname" || echo "RESULT FAIL CUDA $cuda"
  else echo "RESULT INFO CUDA $cuda (dry run)"; fi
}
# 2. issue #5: the NCCL process group at world 1 (OSPREY_PROCESS_GROUP=nccl) trains 2 steps (coco8: 4 images, batch 2,
#    nbs 2: both steps optimiser steps with gradient all-reduce) and validates sharded (all-gather)
nccl_train() {
  $nccl_launch $OSPREY train data=$coco8 model=yolov8n.yaml imgsz=$img batch=2 nbs=2 epochs=1 name=nccl $common || exit 1
  local steps ar box; steps=$(csvcol $WORK/runs/nccl/step_times.csv steps); ar=$(csvcol $WORK/runs/nccl/step_times.csv allreduce_ms)
  box=$(csvcol $WORK/runs/nccl/results.csv train/box_loss)
  if grep -q "data parallel: 1 rank(s), $pg process group" "$WORK/nccl_train.log" && [ "$steps" = 2 ] && python3 -c "import sys; sys.exit(0 if float('$ar') > 0 else 1)"; then
    echo "RESULT PASS $pg at world 1: $steps steps, all-reduce $ar ms/step, box loss $box"
  else echo "RESULT FAIL $pg: steps '$steps', all-reduce '$ar' ms/step (see nccl_train.log)"; fi
}
# 3. issue #6: export half=True on the GPU writes an fp16 graph; ONNX Runtime (python3 there) runs it within the test's
#    limits of the fp32 export of the same weights
export_fp16() {
  local w=$WORK/runs/nccl/weights/last.safetensors dir=$WORK/export
  mkdir -p $dir && cd $dir                                  # a YAML model exports into the working folder
  if [ -f "$w" ]; then for n in half full; do cp $w $dir/$n.safetensors; cp ${w%.safetensors}.yaml $dir/$n.yaml 2>/dev/null || true; done
  else echo "no weights from nccl_train: exporting yolov8n.yaml twice"; fi
  local src_half=$dir/half.safetensors src_full=$dir/full.safetensors
  [ -f "$w" ] || { src_half=yolov8n.yaml; src_full=yolov8n.yaml; }
  $OSPREY export model=$src_half format=onnx imgsz=$img half=True device=$DEVICE || exit 1
  $OSPREY export model=$src_full format=onnx imgsz=$img device=cpu || exit 1
  local expect=float16; $gpu || expect=float32
  if python3 $root/bench/device/check_onnx.py ${src_half%.*}.onnx ${src_full%.*}.onnx $expect; then
    echo "RESULT PASS half=True device=$DEVICE: $expect graph; $(grep -h '^numbers' $WORK/export_fp16.log | cut -c1-120)"
  else echo "RESULT FAIL see export_fp16.log"; fi
}
# 4/5. issue #7: end-to-end training img/s vs bench/train_reference.py (PyTorch model step) in the same call
bench_train() {  # $1: precision arguments
  local data=$coco64; $gpu || data=$coco8
  $OSPREY bench train model=yolov8n.yaml data=$data imgsz=$big batch=$batch epochs=$bench_epochs $common $1 || exit 1
  local o r ratio; o=$(grep -E '^osprey ' "$2" | awk '{print $2}'); r=$(grep -E '^reference ' "$2" | awk '{print $2}')
  ratio=$(grep -E '^ratio' "$2" | awk '{print $NF}')
  if [ -n "$ratio" ]; then echo "RESULT INFO osprey $o img/s, reference $r img/s, ratio $ratio"
  elif $gpu; then echo "RESULT FAIL osprey $o img/s; reference not run: $(grep -h 'reference not run' "$2" | cut -c1-100)"
  else echo "RESULT INFO osprey $o img/s (reference needs torch in python3)"; fi
}
bench_bf16() { bench_train "" "$WORK/bench_bf16.log"; }
bench_fp32() { bench_train "amp=False" "$WORK/bench_fp32.log"; }
# 6. issue #5: one-rank NCCL all-reduce times (12.6 MB, 273 MB, …) and the 8-GPU scaling model
bench_ddp() {
  $OSPREY bench ddp model=yolov8n.yaml $ddp device=$DEVICE busbw=$BUSBW || exit 1
  local eff; eff=$(grep -E 'no overlap: step' "$WORK/bench_ddp.log" | sed 's/.*efficiency //')
  echo "RESULT INFO 8-GPU model (busbw $BUSBW GB/s assumed): efficiency ${eff:-?}; $(grep -E '^ *(nccl|mpi) .* (12\.63|272\.92) ' "$WORK/bench_ddp.log" | awk '{print $3 " MB " $4 " ms"}' | tr '\n' ' ')"
}
# 7. issue #7: a fixed short run in bf16, fp32 and fp16 (loss scaling): final mAP50-95 of bf16 within 0.01 of fp32;
#    fp16 finishes with finite losses
precision_run() {  # $1 name, $2 precision arguments
  $OSPREY train data=$prec_data model=yolov8n.yaml $prec seed=0 name=$1 $common $2 >&2 || exit 1
  csvcol $WORK/runs/$1/results.csv 'metrics/mAP50-95(B)'
}
prec_fp32() { m=$(precision_run p_fp32 "amp=False") || exit 1; echo "RESULT INFO fp32 mAP50-95 $m"; }
prec_bf16() {
  local amp="amp=True"; $gpu || amp="amp=True amp_dtype=bf16"
  m=$(precision_run p_bf16 "$amp") || exit 1
  f=$(csvcol $WORK/runs/p_fp32/results.csv 'metrics/mAP50-95(B)' 2>/dev/null)
  python3 -c "import sys; b, f = float('$m'), float('${f:-nan}'); d = abs(b - f); print('RESULT', 'PASS' if d <= 0.01 else 'FAIL', f'bf16 mAP50-95 {b:.4f} vs fp32 {f:.4f}: |d| {d:.4f} (<= 0.01)')"
}
prec_fp16() {
  m=$(precision_run p_fp16 "amp=True amp_dtype=fp16") || exit 1
  python3 -c "import math; m = float('$m'); print('RESULT', 'PASS' if math.isfinite(m) else 'FAIL', f'fp16 + loss scaling finished, mAP50-95 {m:.4f}')"
}
# 8. issue #7 evidence: AutoBatch (batch=-1) on the GPU, the step-time breakdown, pinned + prefetched vs pageable copies
#    (the last epoch's row of step_times.csv: on the GPU epoch 2, after cuDNN's autotuning)
autobatch() {
  $OSPREY train data=$prec_data model=yolov8n.yaml imgsz=$big batch=-1 epochs=1 val=False name=auto $common || exit 1
  echo "RESULT INFO $(grep -h 'AutoBatch' "$WORK/autobatch.log" | tail -1 | cut -c1-150)"
}
pinned() {
  for p in True False; do
    PIN_MEMORY=$p $OSPREY train data=$prec_data model=yolov8n.yaml $pin val=False name=pin$p $common || exit 1
  done
  python3 - "$WORK/runs" <<'PY'
import csv, sys
def last(run):
    return list(csv.DictReader(open(f"{sys.argv[1]}/{run}/step_times.csv")))[-1]
a, b = last("pinTrue"), last("pinFalse")
keys = [k for k in a if k.endswith("_ms")]
print("phase ms/step  pinned  pageable")
for k in keys: print(f"{k:16} {float(a[k]):8.2f} {float(b[k]):8.2f}")
print(f"RESULT INFO step ms pinned {float(a['step_ms']):.1f} vs pageable {float(b['step_ms']):.1f}; copy {float(a['copy_ms']):.2f} vs {float(b['copy_ms']):.2f}; data wait {float(a['data_wait_ms']):.2f} vs {float(b['data_wait_ms']):.2f}")
PY
}
# 10. issue #7: gpu_augment=True (mosaic, affine, HSV, flips as tensor ops on the device): samples/s of the device path
#     next to the CPU pipeline's from the same JPEGs, and a short training run with it (step breakdown)
gpu_augment() {
  local data=$coco64; $gpu || data=$coco8
  $OSPREY bench data data=$data imgsz=$big workers=$workers batch=$batch epochs=2 gpu_augment=True device=$DEVICE || exit 1
  $OSPREY train data=$data model=yolov8n.yaml $pin val=False gpu_augment=True name=gpuaug $common || exit 1
  local step; step=$(csvcol $WORK/runs/gpuaug/step_times.csv step_ms)
  local dev cpuj cpur
  dev=$(awk '$1 == "osprey+device" && $3 ~ /^[0-9]+$/ && $4 ~ /^[0-9.]+$/ {print $5}' "$WORK/gpu_augment.log" | head -1)
  cpuj=$(awk '$1 == "osprey" && $2 == "jpeg" && $3 ~ /^[0-9]+$/ && $4 ~ /^[0-9.]+$/ {print $5}' "$WORK/gpu_augment.log" | head -1)
  cpur=$(awk '$1 == "osprey" && $2 == "ram" && $3 ~ /^[0-9]+$/ && $4 ~ /^[0-9.]+$/ {print $5}' "$WORK/gpu_augment.log" | head -1)
  echo "RESULT INFO samples/s: device path $dev, CPU pipeline jpeg $cpuj / ram $cpur ($workers workers); train step $step ms"
}
# 11. issue #20: osprey serve on the GPU: 16 synthetic 30 fps MJPEG streams of yolov8n at 640 (TorchSharp on CUDA, as
#     backend=auto picks there) plus 2 request clients; goal: p99 end-to-end < 80 ms and the server's throughput >= 0.9x
#     the bare batched model's in the same run
bench_serve() {
  local size=640 streams=16 secs=20; $gpu || { size=64; streams=2; secs=5; }
  $OSPREY bench serve model=yolov8n.yaml imgsz=$size streams=$streams clients=2 duration=$secs device=$DEVICE || exit 1
  local log=$WORK/bench_serve.log p99 ratio
  p99=$(awk '$1 == "all" {print $4}' "$log" | tail -1); ratio=$(grep -oE 'ratio [0-9.]+' "$log" | tail -1 | awk '{print $2}')
  python3 -c "p, r = float('${p99:-nan}'), float('${ratio:-nan}'); ok = p < 80 and r >= 0.9
print('RESULT', 'PASS' if ok else ('FAIL' if '$gpu' == 'true' else 'INFO'), f'{$streams} streams at {$size}: p99 {p:.0f} ms (< 80), throughput ratio {r:.3f} (>= 0.9)')"
}
export -f info nccl_train export_fp16 bench_train bench_bf16 bench_fp32 bench_ddp precision_run prec_fp32 prec_bf16 prec_fp16 autobatch pinned gpu_augment bench_serve

echo "osprey device check: DEVICE=$DEVICE, budget $BUDGET_S s, logs $WORK, results $OUT"
item info 60 info
item nccl_train 150 nccl_train
item export_fp16 90 export_fp16
item bench_bf16 120 bench_bf16
item bench_fp32 120 bench_fp32
item bench_ddp 90 bench_ddp
item prec_fp32 120 prec_fp32
item prec_bf16 120 prec_bf16
item prec_fp16 120 prec_fp16
item autobatch 90 autobatch
item pinned 120 pinned
item gpu_augment 90 gpu_augment
item bench_serve 90 bench_serve
rows+=("total $((SECONDS - start)) s of BUDGET_S=$BUDGET_S; DEVICE=$DEVICE; $(date -u +%FT%TZ)")
pack_out
echo
printf '%-14s %-7s %5s  %s\n' item verdict time result
cat "$OUT/summary.txt"
