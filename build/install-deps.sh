#!/usr/bin/env bash
# System packages Osprey needs on Debian 12 (run as root; idempotent).
#  - OpenCvSharp4.official.runtime.linux-x64 (libOpenCvSharpExtern.so) links GTK3, pango/cairo, freetype, harfbuzz, X11, drm.
#  - python3-opencv + python3-numpy: the Python/OpenCV reference of the data benchmark (bench/data_reference.py),
#    run with /usr/bin/python3 (the pyenv python3 on PATH has no cv2).
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends \
  libgtk-3-0 libfreetype6 libharfbuzz0b libdrm2 libatomic1 libx11-6 \
  python3-opencv python3-numpy
