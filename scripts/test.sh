#!/usr/bin/env bash
# Installs missing Debian packages, checks the formatting of our C/C++ files
# (scripts/check_format.sh), builds samdeblur (Release) with compiler warnings in
# our code as errors (SAMDEBLUR_WERROR) and runs the whole suite through CTest
# (GoogleTest cases and the package test). Usage: scripts/test.sh [build-dir]
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR="${1:-build}"
scripts/install_deps.sh
scripts/check_format.sh
JOBS="$(nproc)"
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release -DSAMDEBLUR_WERROR=ON
cmake --build "$BUILD_DIR" -j "$JOBS"
# Tests use at most two intra-op threads each: ctest runs them in parallel.
OMP_NUM_THREADS=1 ctest --test-dir "$BUILD_DIR" --output-on-failure -j "$JOBS" --timeout 300
