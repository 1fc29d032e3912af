#!/usr/bin/env bash
# Builds samdeblur against the LibTorch inside a pinned PyPI torch 2.x wheel (a CUDA
# build: headers, libtorch_cuda, c10d with NCCL, share/cmake/Torch) with CUDA enabled,
# and runs the whole GoogleTest suite on the CPU against it (README, "LibTorch versions").
#
# Usage: scripts/check_libtorch2.sh [build-dir]            (default build-lt2)
# Environment:
#   SAMDEBLUR_TORCH_VERSION  torch wheel to pin (default 2.11.0: the GPU machine's PyTorch)
#   SAMDEBLUR_LT2_VENV       virtual environment holding it (default
#                            ~/.cache/samdeblur/libtorch2-venv; outside the source tree
#                            because CMake refuses exported include paths inside it)
#   TORCH_CUDA_ARCH_LIST     default 9.0 (H100/H200)
#   SAMDEBLUR_OPENCV_DIR     an OpenCV CMake package (OpenCV_DIR) to build against instead
#                            of Debian's, e.g. the minimal one of scripts/build_opencv_min.sh
#                            (scripts/gpu_check.sh bundles this same build); unset: Debian's
#   JOBS, NICE               parallel jobs (default nproc) and nice level (default 10)
#   SAMDEBLUR_LT2_SKIP_TESTS=1  build only (scripts/gpu_check.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
START=$(date +%s)
BUILD_DIR="${1:-build-lt2}"
TORCH_PIN="${SAMDEBLUR_TORCH_VERSION:-2.11.0}"
VENV="${SAMDEBLUR_LT2_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/samdeblur/libtorch2-venv}"
JOBS="${JOBS:-$(nproc)}"
NICE="${NICE:-10}"

scripts/install_deps.sh

NVCC="$(command -v nvcc || true)"
[[ -z "$NVCC" && -x /usr/local/cuda/bin/nvcc ]] && NVCC=/usr/local/cuda/bin/nvcc
if [[ -z "$NVCC" ]]; then
  echo "check_libtorch2: no nvcc on PATH or in /usr/local/cuda/bin: the torch wheel's" \
    "CMake package needs the CUDA toolkit (its major version must match the wheel's)" >&2
  exit 1
fi

# 1. The wheel, in its own virtual environment (pip pulls the nvidia-* wheels that
#    libtorch_cuda.so needs to link and load).
if [[ ! -x "$VENV/bin/python" ]]; then
  mkdir -p "$(dirname "$VENV")"
  python3 -m venv "$VENV"
fi
SITE="$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
TORCH_DIR="$SITE/torch"
INSTALLED="$(sed -n 's/^Version: //p' "$SITE"/torch-*.dist-info/METADATA 2>/dev/null || true)"
if [[ "$INSTALLED" != "$TORCH_PIN" ]]; then
  echo "check_libtorch2: installing torch==$TORCH_PIN into $VENV"
  "$VENV/bin/python" -m pip install --no-cache-dir --quiet "torch==$TORCH_PIN"
fi
[[ -f "$TORCH_DIR/share/cmake/Torch/TorchConfig.cmake" ]] ||
  { echo "check_libtorch2: $TORCH_DIR has no share/cmake/Torch" >&2; exit 1; }
# Debian's OpenCV, yaml-cpp and spdlog use the CXX11 ABI: so must the wheel.
if ! nm -D --defined-only "$TORCH_DIR/lib/libc10.so" | grep __cxx11 >/dev/null; then
  echo "check_libtorch2: torch $TORCH_PIN uses the pre-CXX11 ABI; Debian's libraries cannot link" >&2
  exit 1
fi

# 2. Configure and build everything against it, with CUDA. OpenCV: the given package, or
#    (-U: forget one an earlier run gave) the system's.
if [[ -n "${SAMDEBLUR_OPENCV_DIR:-}" ]]; then
  [[ -f "$SAMDEBLUR_OPENCV_DIR/OpenCVConfig.cmake" ]] ||
    { echo "check_libtorch2: no OpenCVConfig.cmake in SAMDEBLUR_OPENCV_DIR=$SAMDEBLUR_OPENCV_DIR" >&2; exit 1; }
  OPENCV_ARG=(-DOpenCV_DIR="$SAMDEBLUR_OPENCV_DIR")
else
  OPENCV_ARG=(-UOpenCV_DIR)
fi
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release "${OPENCV_ARG[@]}" \
  -DCMAKE_PREFIX_PATH="$TORCH_DIR" \
  -DCMAKE_CUDA_COMPILER="$NVCC" \
  -DTORCH_CUDA_ARCH_LIST="${TORCH_CUDA_ARCH_LIST:-9.0}"
grep -q "^TORCH_LIBRARY:FILEPATH=$TORCH_DIR/lib/" "$BUILD_DIR/CMakeCache.txt" ||
  { echo "check_libtorch2: $BUILD_DIR did not pick the wheel's LibTorch" >&2; exit 1; }
nice -n "$NICE" cmake --build "$BUILD_DIR" -j "$JOBS"

if [[ "${SAMDEBLUR_LT2_SKIP_TESTS:-0}" == 1 ]]; then
  echo "check_libtorch2: built $BUILD_DIR against torch $TORCH_PIN (tests skipped)"
  exit 0
fi

# 3. The whole suite on the CPU (CUDA tests skip: no device visible).
CUDA_VISIBLE_DEVICES="" OMP_NUM_THREADS=1 \
  ctest --test-dir "$BUILD_DIR" --output-on-failure -j "$JOBS" --timeout 300
echo "check_libtorch2: torch $TORCH_PIN ($TORCH_DIR), OpenCV at" \
  "$(sed -n 's/^OpenCV_DIR:[A-Z]*=//p' "$BUILD_DIR/CMakeCache.txt"): build and tests passed in" \
  "$(($(date +%s) - START)) s"
