#!/usr/bin/env bash
# Installs the Debian packages samdeblur needs. Idempotent: packages already
# present are not touched, and apt is not called at all when nothing is missing.
#
#   scripts/install_deps.sh [--with-python] [--with-fuzz] [--with-browser]
#
# --with-python:  the fixture generators' Python packages (scripts/make_*_fixtures.py).
# --with-fuzz:    clang and its libFuzzer / sanitizer runtimes (scripts/fuzz.sh).
# --with-browser: Chromium (chromium + chromium-common, about 350 MB installed) for the
#                 headless check of a sweep's report.html: scripts/check_report.sh and the
#                 test SweepReportBrowser.RendersInHeadlessChromiumWithoutConsoleErrors,
#                 which skips without it. Opt-in, so that CI (scripts/test.sh) does not pay
#                 for it.
set -euo pipefail
BUILD_PKGS=(cmake g++ make pkg-config libtorch-dev libopencv-dev libopencv-contrib-dev
  libcli11-dev libyaml-cpp-dev libspdlog-dev libfmt-dev libgtest-dev libzip-dev
  nlohmann-json3-dev libopenblas0-pthread libgloo-dev libgoogle-perftools-dev
  libjpeg-dev libpng-dev
  clang-format)  # clang-format: scripts/check_format.sh (Debian's, version 14)
# Only the fixture generators need these (scripts/make_*_fixtures.py).
PY_PKGS=(python3-torch python3-numpy python3-opencv python3-yaml)
# scripts/fuzz.sh: clang++ (Debian's clang 14) and libclang_rt.fuzzer / asan / ubsan, which
# libclang-rt-14-dev ships (only "recommended" by clang, so named here).
FUZZ_PKGS=(clang libclang-rt-14-dev)
# scripts/check_report.sh: Debian's chromium (bookworm ships it from bookworm-security).
BROWSER_PKGS=(chromium)
want=("${BUILD_PKGS[@]}")
for arg in "$@"; do
  case "$arg" in
    --with-python) want+=("${PY_PKGS[@]}") ;;
    --with-fuzz) want+=("${FUZZ_PKGS[@]}") ;;
    --with-browser) want+=("${BROWSER_PKGS[@]}") ;;
    *) echo "install_deps: unknown option $arg (--with-python, --with-fuzz, --with-browser)" >&2; exit 2 ;;
  esac
done
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
