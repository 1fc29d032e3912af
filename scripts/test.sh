#!/usr/bin/env bash
# Installs missing Debian packages, builds samdeblur (Release) and runs the
# whole GoogleTest suite through CTest. Usage: scripts/test.sh [build-dir]
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR="${1:-build}"
scripts/install_deps.sh
JOBS="$(nproc)"
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release
cmake --build "$BUILD_DIR" -j "$JOBS"
# Tests use at most two intra-op threads each: ctest runs them in parallel.
OMP_NUM_THREADS=1 ctest --test-dir "$BUILD_DIR" --output-on-failure -j "$JOBS" --timeout 300
