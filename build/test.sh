#!/usr/bin/env bash
# The whole test suite, as on a fresh machine: system packages, build (Release), every test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash build/install-deps.sh
dotnet build Osprey.sln -c Release -v q --nologo
export DOTNET_GCgen0size="${DOTNET_GCgen0size:-0x10000000}"   # fewer collections: see ./osprey
log=$(mktemp)
set +e
dotnet test Osprey.sln -c Release --no-build --nologo 2>&1 | tee "$log"
code=${PIPESTATUS[0]}
set -e
passed=$(grep -oE 'Passed: +[0-9]+' "$log" | awk '{s+=$2} END {print s+0}')
failed=$(grep -oE 'Failed: +[0-9]+' "$log" | awk '{s+=$2} END {print s+0}')
skipped=$(grep -oE 'Skipped: +[0-9]+' "$log" | awk '{s+=$2} END {print s+0}')
rm -f "$log"
echo "tests: $passed passed, $failed failed, $skipped skipped"
exit "$code"
