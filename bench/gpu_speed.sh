#!/usr/bin/env bash
# Issue #7 on one CUDA GPU: the step-time breakdown, AutoBatch and the pinned/prefetched data path.
# Needs the .NET SDK and a CUDA libtorch 2.10 on LD_LIBRARY_PATH (README, "Backends: CPU and CUDA").
# Usage: bench/gpu_speed.sh [output folder]   (about 5 minutes on an H100; everything it needs is in the repository)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$(mktemp -d /tmp/osprey-gpu-speed.XXXX)}
mkdir -p "$out"
dotnet build "$root/Osprey.sln" -c Release -p:TorchBackend=cuda -v q --nologo 2>&1 | tail -2
cli="dotnet $root/src/Osprey.Cli/bin/Release/net10.0/Osprey.Cli.dll"
$cli info | tee "$out/info.txt"

# 1. Tests whose CUDA branch runs only here: batches collated into pinned memory (byte-identical to ordinary memory),
#    the one-ahead prefetch to cuda:0, AutoBatch's decisions, the step timer.
dotnet test "$root/Osprey.sln" -c Release --no-build --nologo \
  --filter "FullyQualifiedName~DevicePathTests|FullyQualifiedName~AutoBatchTests|FullyQualifiedName~StepTimerTests" 2>&1 | tail -3

# 2. AutoBatch on the GPU: 60 % (batch=-1) and 30 % (batch=0.3); the log has the profile, the fit's choice and the
#    predicted share, and the run trains one epoch at that batch.
common="data=shapes model=yolov8n.yaml imgsz=640 workers=8 device=0 plots=False val=False project=$out exist_ok=True"
for b in -1 0.3; do
  $cli train $common epochs=1 batch=$b name=auto$b > "$out/auto$b.log" 2>&1 || echo "batch=$b FAILED (see $out/auto$b.log)"
  grep -E "AutoBatch|^batch " "$out/auto$b.log" || true
done
nvidia-smi --query-gpu=name,memory.total,memory.used --format=csv

# 3. Step breakdown at batch 16, two epochs (read epoch 2): synchronised 1 step in 10 (default), every step, never
#    (host times), and without pinned memory/prefetch (PIN_MEMORY=False, the old path).
run() { # name, environment...
  local name=$1; shift
  env "$@" $cli train $common epochs=2 batch=16 name=$name > "$out/$name.log" 2>&1 || echo "$name FAILED (see $out/$name.log)"
  echo "$name ($*): epoch seconds $(cut -d, -f2 "$out/$name/results.csv" | tail -2 | tr '\n' ' ')"
  column -s, -t < "$out/$name/step_times.csv"
}
run sync10 OSPREY_STEP_SYNC_EVERY=10
run sync1 OSPREY_STEP_SYNC_EVERY=1
run sync0 OSPREY_STEP_SYNC_EVERY=0
run nopin OSPREY_STEP_SYNC_EVERY=10 PIN_MEMORY=False
grep -h "step .* ms = " "$out"/sync10.log | tail -1

# 4. gpu_augment=True (mosaic, affine, HSV, flips as tensor ops on cuda:0): the tests (their prefetch route draws on
#    cuda:0 and is compared with the CPU's drawing), the device path's samples/s next to the CPU pipeline's
#    (coco128 if it is beside the repository, else shapes), and the step breakdown of a training run with it.
dotnet test "$root/Osprey.sln" -c Release --no-build --nologo --filter "FullyQualifiedName~DeviceAugmentTests" 2>&1 | tail -3
bench_data=shapes
[ -f "$root/../shared/data/coco128/coco128.yaml" ] && bench_data="$root/../shared/data/coco128/coco128.yaml"
$cli bench data data=$bench_data imgsz=640 workers=8 batch=64 epochs=2 gpu_augment=True device=0 2>&1 | tee "$out/bench_data_gpu_augment.txt" | tail -12
env OSPREY_STEP_SYNC_EVERY=10 $cli train $common epochs=2 batch=16 name=gpuaug gpu_augment=True > "$out/gpuaug.log" 2>&1 || echo "gpuaug FAILED (see $out/gpuaug.log)"
echo "gpuaug (gpu_augment=True): epoch seconds $(cut -d, -f2 "$out/gpuaug/results.csv" | tail -2 | tr '\n' ' ')"
column -s, -t < "$out/gpuaug/step_times.csv"
