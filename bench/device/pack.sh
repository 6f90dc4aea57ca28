#!/usr/bin/env bash
# Packs the Osprey CLI for the GPU machine (CUDA, NCCL, PyTorch; no .NET, no network) into .device/ (ignored by git,
# carried by the device tool: at most 64 MiB). Run from anywhere on the development machine:
#   bench/device/pack.sh [DEST]                (DEST defaults to .device in the repository root)
# Then, with DEST in the working tree on the GPU machine:  bash .device/osprey info   (any osprey arguments)
#
# What and why:
# - The CUDA build (-p:TorchBackend=cuda): TorchSharp without a bundled libtorch; at start it loads libtorch_cuda from
#   LD_LIBRARY_PATH (PyTorch's torch/lib) before any other Torch call, as TorchSharp requires. On a CPU-only libtorch it
#   runs on the CPU and says why CUDA did not load (the dry run, bench/device/check.sh DEVICE=cpu, uses this).
# - Self-contained and trimmed (framework only, TrimMode=partial: Osprey, TorchSharp and the other packages stay whole):
#   the .NET runtime shrinks from 26 MB (xz) to a few MB, which is what makes the kit fit well under 64 MiB. Trimming
#   turns reflection-based System.Text.Json off by default; Osprey's caches and JSON outputs use it, so it stays on.
# - ../shared/device/pack.sh is not needed: its work (drop the CPU libtorch and other platforms' natives, add a .NET
#   runtime) is already done by this publish (no libtorch in a CUDA build, -r linux-x64, self-contained); our wrapper
#   (bench/device/osprey) replaces its run.sh.
# - ONNX Runtime's native library is left out: only `bench predict` uses it, and the GPU machine's python3 has
#   onnxruntime for checking exports. OpenCV's native library is stripped; the app travels as one app.tar.xz.
# The publish runs in a copy of the sources (OSPREY_DEVKIT_BUILD, default /tmp/osprey-devkit) so that the working
# tree's bin/ and obj/ keep their CPU build.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
dest=${1:-$root/.device}
case $dest in /*) ;; *) dest=$PWD/$dest ;; esac
work=${OSPREY_DEVKIT_BUILD:-/tmp/osprey-devkit}
command -v dotnet >/dev/null || { echo "pack.sh: needs the .NET SDK (dotnet) on this machine" >&2; exit 1; }
start=$SECONDS

# 1. sources: tracked and untracked-not-ignored files of the working tree (stale .cs files removed first)
mkdir -p "$work/src"
find "$work/src" -name '*.cs' -not -path '*/obj/*' -not -path '*/bin/*' -delete
(cd "$root" && git ls-files -co --exclude-standard -z | tar --null -T - -cf -) | tar -C "$work/src" -xf -

# 2. publish: CUDA build, self-contained, framework trimmed (trim warnings are not errors here: only the framework is trimmed)
rm -rf "$work/pub"
dotnet publish "$work/src/src/Osprey.Cli" -c Release -p:TorchBackend=cuda -r linux-x64 --self-contained \
  -p:PublishTrimmed=true -p:TrimMode=partial -p:TreatWarningsAsErrors=false -p:SuppressTrimAnalysisWarnings=true \
  -p:JsonSerializerIsReflectionEnabledByDefault=true \
  -o "$work/pub" -v q --nologo
echo "published in $((SECONDS - start)) s"

app=$work/pub

# 3. shrink: what the GPU machine never loads
rm -f "$app"/libonnxruntime*.so "$app"/onnxruntime*.dll "$app"/*.pdb "$app"/libmscordaccore.so "$app"/libmscordbi.so \
  "$app"/libcoreclrtraceptprovider.so "$app"/libclrgc.so "$app"/libclrgcexp.so "$app"/createdump
strip --strip-unneeded "$app"/libOpenCvSharpExtern.so

# 4. one archive (the wrapper unpacks it once per kit, keyed by its hash)
rm -rf "$dest" && mkdir -p "$dest"
tar -C "$work" --transform 's,^pub,app,' -cf - pub | xz -6 -T0 > "$dest/app.tar.xz"
cp "$root/bench/device/osprey" "$dest/osprey"
# coco8 (0.5 MB) for the checks that need real images; ../shared does not travel to the GPU machine
mkdir -p "$dest/data" && cp -r "$root/../shared/data/coco8" "$dest/data/" && rm -f "$dest"/data/coco8/labels/*.cache
# coco64: the first 64 coco128 train2017 images (~11 MB, all of coco128 train would not fit in 64 MiB) with their labels,
# the real JPEGs `bench train` and `bench data` read on the GPU machine (issue #7: coco128, repeated); train = val
c128=$root/../shared/data/coco128
mkdir -p "$dest/data/coco64/images/train2017" "$dest/data/coco64/labels/train2017"
for f in $(ls "$c128/images/train2017" | sort | head -64); do
  cp "$c128/images/train2017/$f" "$dest/data/coco64/images/train2017/"
  l="$c128/labels/train2017/${f%.*}.txt"; [ -f "$l" ] && cp "$l" "$dest/data/coco64/labels/train2017/"
done
{ printf 'path: .\ntrain: images/train2017\nval: images/train2017\n'; sed -n '/^names:/,$p' "$c128/coco128.yaml"; } > "$dest/data/coco64/coco64.yaml"
sha256sum "$dest/app.tar.xz" | cut -c1-16 > "$dest/stamp"
du -sh "$dest" | awk -v s=$((SECONDS - start)) '{print "packed " $2 ": " $1 " in " s " s (at most 64 MiB travels to the GPU machine)"}'
du -sb "$dest"/* | awk '{printf "  %8.1f MB  %s\n", $1 / 1e6, $2}'
