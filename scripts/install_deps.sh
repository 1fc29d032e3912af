#!/usr/bin/env bash
# Installs the Debian packages samdeblur needs. Idempotent: packages already
# present are not touched, and apt is not called at all when nothing is missing.
set -euo pipefail
BUILD_PKGS=(cmake g++ make pkg-config libtorch-dev libopencv-dev libopencv-contrib-dev
  libcli11-dev libyaml-cpp-dev libspdlog-dev libfmt-dev libgtest-dev libzip-dev
  nlohmann-json3-dev libopenblas0-pthread libgloo-dev libgoogle-perftools-dev
  libjpeg-dev libpng-dev
  clang-format)  # clang-format: scripts/check_format.sh (Debian's, version 14)
# Only the fixture generators need these (scripts/make_*_fixtures.py).
PY_PKGS=(python3-torch python3-numpy python3-opencv python3-yaml)
want=("${BUILD_PKGS[@]}")
if [[ "${1:-}" == "--with-python" ]]; then want+=("${PY_PKGS[@]}"); fi
missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
  echo "install_deps: all ${#want[@]} packages present"
  exit 0
fi
echo "install_deps: installing ${missing[*]}"
SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
$SUDO apt-get update -q
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
