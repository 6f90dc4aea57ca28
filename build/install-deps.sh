#!/usr/bin/env bash
# Installs the system packages Osprey's tests and benchmarks need (Debian/Ubuntu, as root). Idempotent: does
# nothing when everything is present.
set -euo pipefail
packages=(
  openmpi-bin   # mpirun for the multi-process (Distributed) tests and the local launcher
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}" >&2
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
