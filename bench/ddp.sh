#!/usr/bin/env bash
# Data-parallel step time at world 1 vs 2 (CPU ranks under mpirun) and MPI all-reduce time per buffer size.
# Usage: bench/ddp.sh [model] (default yolov8n.yaml); needs `dotnet build` first. Prints epoch times from results.csv.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cli=$root/src/Osprey.Cli/bin/Debug/net10.0/Osprey.Cli.dll
worker=$root/test/Osprey.Distributed.Worker/bin/Debug/net10.0/Osprey.Distributed.Worker.dll
out=$(mktemp -d /tmp/osprey-bench-ddp.XXXX)
common="data=shapes model=${1:-yolov8n.yaml} epochs=1 imgsz=128 batch=16 nbs=16 workers=2 device=cpu plots=False project=$out"
dotnet "$cli" train $common name=w1 > "$out/w1.log" 2>&1
dotnet "$cli" train $common name=w2 nproc=2 > "$out/w2.log" 2>&1
for w in w1 w2; do echo "$w epoch (63 steps + val of 200 images): $(tail -1 "$out/$w/results.csv" | cut -d, -f2) s"; done
# gradient buckets: 0.36 MB (tiny test model), 12.6 MB (yolov8n), 26 MB (one full 25 MiB bucket)
mpirun --allow-run-as-root --oversubscribe -np 2 dotnet "$worker" bench "$out/allreduce" 90000 3150000 6553600 | grep '^bench'
# gradient sync after backward vs overlapped with it (yolov8n, 128 px, batch 8 per rank, same job, medians of 40 steps)
OMP_NUM_THREADS=1 mpirun --allow-run-as-root --oversubscribe -np 2 dotnet "$worker" overlap-bench "$out/overlap" yolov8n.yaml 128 8 4 10 \
  post:25 overlap:25 post:4 overlap:4 overlap:1 | grep '^overlap-bench'
