#!/usr/bin/env bash
# Installs the system packages Osprey's tests and benchmarks need (Debian/Ubuntu, as root). Idempotent: does
# nothing when everything is present.
#  - OpenCvSharp4.official.runtime.linux-x64 (libOpenCvSharpExtern.so) links GTK3, pango/cairo, freetype, harfbuzz,
#    X11, drm.
#  - python3-opencv + python3-numpy: the Python/OpenCV reference of the data benchmark (bench/data_reference.py),
#    run with /usr/bin/python3 (a pyenv python3 on PATH may have no cv2).
#  - python3-torch (Debian's PyTorch, CPU): the interop tests (test/Osprey.Tests/Interop) pickle Ultralytics-style .pt
#    checkpoints with it and torch.load Osprey's save_pt files; without it they report themselves skipped.
#  - chromium + chromium-driver: the browser test of `osprey serve`'s page (test/Osprey.Tests/Serving/ServePageBrowserTests.cs)
#    runs /usr/bin/chromium headless through /usr/bin/chromedriver (Selenium.WebDriver); without them it reports itself skipped.
#  With --runtime: only what the osprey command itself loads (the OpenCV libraries and mpirun); ./osprey runs that.
set -euo pipefail
runtime=(libgtk-3-0 libfreetype6 libharfbuzz0b libdrm2 libatomic1 libx11-6 openmpi-bin)
packages=(
  libgtk-3-0 libfreetype6 libharfbuzz0b libdrm2 libatomic1 libx11-6
  python3-opencv python3-numpy
  openmpi-bin   # mpirun for the multi-process (Distributed) tests and the local launcher
  iproute2      # `ip netns`/veth: the two-machine test runs its ranks in two network namespaces (needs root)
  python3-torch   # .pt interop tests: torch.save Ultralytics-style checkpoints, torch.load save_pt files
  chromium chromium-driver   # the serve page's browser test: headless Chromium driven by Selenium through chromedriver
)
[ "${1:-}" = "--runtime" ] && packages=("${runtime[@]}")
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
