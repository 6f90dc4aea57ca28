#!/usr/bin/env bash
# GPU session: `osprey bench train` at the issue's setting (YOLOv8n, coco128 repeated, imgsz 640, batch 64, device 0)
# in bf16 (amp=True, the default: bf16 on compute capability >= 8), fp16 (GradScaler) and fp32, each followed in the
# same call by bench/train_reference.py (same model, batch, precision, channels_last; PyTorch model step only).
# Usage: bench/train_gpu.sh OSPREY_APP_DIR [extra key=value ...]
#   OSPREY_APP_DIR: `dotnet publish src/Osprey.Cli -c Release -p:TorchBackend=cuda -r linux-x64 --self-contained -o DIR`
#   run from the repository root (../shared/data/coco128 beside it); python3 must import torch (its torch/lib is used).
set -euo pipefail
app=${1:?usage: bench/train_gpu.sh OSPREY_APP_DIR [key=value ...]}; shift
torch_lib=$(python3 -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')
export LD_LIBRARY_PATH="$torch_lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
data=../shared/data/coco128/coco128.yaml
common="model=yolov8n.yaml data=$data imgsz=640 batch=64 device=0 epochs=15 $*"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
"$app/Osprey.Cli" info
for precision in "amp=True" "amp=True amp_dtype=fp16" "amp=False"; do
  echo "== bench train $precision"
  "$app/Osprey.Cli" bench train $common $precision
done
