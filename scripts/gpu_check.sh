#!/usr/bin/env bash
# Builds the apps and sdb-tests against the PyPI torch wheel that matches the GPU
# machine's PyTorch (scripts/check_libtorch2.sh, default torch 2.11 / CUDA 13) and the
# minimal OpenCV of scripts/build_opencv_min.sh, and packs them into one folder with every
# shared library they need that such a machine lacks: everything except the torch wheel's
# own libraries (the GPU machine's PyTorch has them), the CUDA libraries and the C runtime.
# Then rehearses the GPU run on this machine with only the bundle's and the wheel's
# libraries on the library path: no library may resolve elsewhere (no Debian OpenCV), the
# GPU script's dry run passes, and the bundle's sdb-tests runs the whole CPU suite with
# the bundle's apps.
#
# Usage: scripts/gpu_check.sh [bundle-dir]        (default build-gpu-bundle, git-ignored)
# Environment:
#   BUILD_DIR             the 2.x build (default build-lt2; check_libtorch2.sh with the same
#                         SAMDEBLUR_OPENCV_DIR builds the same tree, so one build serves both)
#   SAMDEBLUR_OPENCV_DIR  an OpenCV CMake package (default: build_opencv_min.sh's)
#   MAX_MIB               what a device run carries: the bundle plus the repository's tracked
#                         files (default 64)
#   SAMDEBLUR_REHEARSE    0 skips the rehearsal; GTEST_FILTER narrows its suite
# Then on the GPU machine, from the repository root:
#   scripts/gpu/run_gpu_checks.sh build-gpu-bundle      (README, "LibTorch versions")
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
BUNDLE="${1:-build-gpu-bundle}"
BUILD_DIR="${BUILD_DIR:-build-lt2}"
MAX_MIB="${MAX_MIB:-64}"

command -v patchelf >/dev/null || { echo "gpu_check: needs patchelf (apt-get install patchelf)" >&2; exit 1; }
if [[ -z "${SAMDEBLUR_OPENCV_DIR:-}" ]]; then
  SAMDEBLUR_OPENCV_DIR="$(scripts/build_opencv_min.sh | tail -n 1)"
fi
export SAMDEBLUR_OPENCV_DIR
SAMDEBLUR_LT2_SKIP_TESTS=1 scripts/check_libtorch2.sh "$BUILD_DIR"
TORCH_DIR="$(sed -n 's|^Torch_DIR:PATH=\(.*\)/share/cmake/Torch$|\1|p' "$BUILD_DIR/CMakeCache.txt")"
SITE="$(dirname "$TORCH_DIR")"
TORCH_VERSION="$(sed -n 's/^Version: //p' "$SITE"/torch-*.dist-info/METADATA)"

# Libraries the bundle never carries: the torch wheel's and its nvidia-* wheels' (the
# GPU machine's PyTorch provides them), the CUDA driver and toolkit, and glibc / the GCC
# runtime (every Linux with PyTorch has them).
is_provided() {
  case "$1" in
    "$TORCH_DIR"/* | "$SITE"/nvidia/* | "$SITE"/cusparselt/* | /usr/local/cuda*/*) return 0 ;;
  esac
  case "$(basename "$1")" in
    libc.so.* | libm.so.* | libdl.so.* | librt.so.* | libpthread.so.* | libresolv.so.* | \
      ld-linux*.so.* | libgcc_s.so.* | libcuda.so.* | libnvidia-*) return 0 ;;
  esac
  return 1
}

rm -rf "$BUNDLE"
mkdir -p "$BUNDLE/bin" "$BUNDLE/lib"
# Every app: the end-to-end tests run them, and the GPU script runs several.
mapfile -t APPS < <(cd "$BUILD_DIR/bin" && ls sdb-*)
[[ " ${APPS[*]} " == *" sdb-tests "* ]] || { echo "gpu_check: $BUILD_DIR/bin/sdb-tests not built" >&2; exit 1; }
for app in "${APPS[@]}"; do cp "$BUILD_DIR/bin/$app" "$BUNDLE/bin/"; done
LIBPATH="$TORCH_DIR/lib"
# ldd resolves the whole closure, as the loader would with the wheel on the path.
LD_LIBRARY_PATH="$LIBPATH" ldd "${APPS[@]/#/$BUILD_DIR/bin/}" |
  awk '$2 == "=>" && $3 ~ /^\// {print $3} $2 == "=>" && $3 == "not" {print "MISSING:" $1}' |
  sort -u >"$BUNDLE/.closure"
if grep -q '^MISSING:' "$BUNDLE/.closure"; then
  echo "gpu_check: unresolved libraries: $(grep '^MISSING:' "$BUNDLE/.closure" | tr '\n' ' ')" >&2
  exit 1
fi
while read -r lib; do
  is_provided "$lib" || cp -L "$lib" "$BUNDLE/lib/"
done <"$BUNDLE/.closure"
rm "$BUNDLE/.closure"
chmod u+w "$BUNDLE"/bin/* "$BUNDLE"/lib/*
strip --strip-unneeded "$BUNDLE"/bin/* "$BUNDLE"/lib/*
for f in "$BUNDLE"/bin/*; do patchelf --set-rpath '$ORIGIN/../lib' "$f"; done
for f in "$BUNDLE"/lib/*; do patchelf --set-rpath '$ORIGIN' "$f"; done
cp scripts/gpu/run_gpu_checks.sh "$BUNDLE/"

# What a device run carries: the tracked files (tests/data, configs, ...) and the bundle.
SIZE_KIB="$(du -sk "$BUNDLE" | cut -f1)"
TREE_KIB="$(git ls-files -z | du -ck --files0-from=- 2>/dev/null | tail -n 1 | cut -f1)"
# The tests find their fixtures and the apps through paths compiled in at build time;
# run_gpu_checks.sh links them to the GPU machine's checkout.
cat >"$BUNDLE/manifest.json" <<EOF
{
  "torch_version": "$TORCH_VERSION",
  "torch_lib": "$LIBPATH",
  "opencv_dir": "$SAMDEBLUR_OPENCV_DIR",
  "source_dir": "$ROOT",
  "bin_dir": "$ROOT/$BUILD_DIR/bin",
  "built": "$(date -u +%Y-%m-%dT%H:%M:%SZ)",
  "commit": "$(git rev-parse HEAD)$(git diff --quiet HEAD || echo '+dirty')",
  "size_kib": $SIZE_KIB,
  "tracked_files_kib": $TREE_KIB,
  "binaries": [$(ls "$BUNDLE/bin" | sed 's/.*/"&"/' | paste -sd, -)],
  "libraries": [$(ls "$BUNDLE/lib" | sed 's/.*/"&"/' | paste -sd, -)]
}
EOF
echo "gpu_check: $BUNDLE: ${#APPS[@]} binaries ($(du -sk "$BUNDLE/bin" | cut -f1) KiB)," \
  "$(ls "$BUNDLE/lib" | wc -l) libraries ($(du -sk "$BUNDLE/lib" | cut -f1) KiB); $SIZE_KIB KiB" \
  "in all, $((SIZE_KIB + TREE_KIB)) KiB with the tracked files"
if ((SIZE_KIB + TREE_KIB > MAX_MIB * 1024)); then
  echo "gpu_check: $BUNDLE and the tracked files are $(((SIZE_KIB + TREE_KIB) / 1024)) MiB, over" \
    "the $MAX_MIB MiB a device run carries. Largest files:" >&2
  du -k "$BUNDLE"/bin/* "$BUNDLE"/lib/* | sort -rn | head -n 12 >&2
  exit 3
fi

# Rehearsal: the loader must find nothing outside the bundle, the wheel and the C runtime.
if [[ "${SAMDEBLUR_REHEARSE:-1}" != 0 ]]; then
  STRAY="$(LD_LIBRARY_PATH="$ROOT/$BUNDLE/lib:$LIBPATH" ldd "$BUNDLE"/bin/* |
    awk '$2 == "=>" && $3 ~ /^\// {print $3}' | sort -u |
    while read -r lib; do
      case "$lib" in "$ROOT/$BUNDLE/lib/"*) ;; *) is_provided "$lib" || echo "$lib" ;; esac
    done)"
  if [[ -n "$STRAY" ]]; then
    echo "gpu_check: the bundle still loads from outside itself:" $STRAY >&2
    exit 1
  fi
  echo "gpu_check: rehearsal 1: scripts/gpu/run_gpu_checks.sh --dry-run (CPU, tiny sizes)"
  OUT="$ROOT/$BUILD_DIR/gpu-check-dry-run" PYTHON="${PYTHON:-python3}" \
    scripts/gpu/run_gpu_checks.sh --dry-run "$BUNDLE"
  # The tests run the apps from the compiled-in $BUILD_DIR/bin: point it at the bundle's
  # (as run_gpu_checks.sh does on the GPU machine) while the suite runs.
  mv "$BUILD_DIR/bin" "$BUILD_DIR/bin.built"
  trap 'rm -f "$BUILD_DIR/bin"; mv "$BUILD_DIR/bin.built" "$BUILD_DIR/bin"' EXIT
  ln -s "$ROOT/$BUNDLE/bin" "$BUILD_DIR/bin"
  export LD_LIBRARY_PATH="$ROOT/$BUNDLE/lib:$LIBPATH"
  echo "gpu_check: rehearsal 2: the whole suite, $BUNDLE/bin/sdb-tests and its apps on the" \
    "CPU with LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
  REHEARSAL_START=$(date +%s)
  RC=0
  CUDA_VISIBLE_DEVICES="" OMP_NUM_THREADS=1 "$BUNDLE/bin/sdb-tests" --gtest_brief=1 \
    --gtest_filter="${GTEST_FILTER:-*}" --gtest_output="json:$ROOT/$BUILD_DIR/rehearsal.json" || RC=$?
  python3 - "$ROOT/$BUILD_DIR/rehearsal.json" "$(($(date +%s) - REHEARSAL_START))" <<'PY'
import json, sys
t = json.load(open(sys.argv[1]))
cases = [c for s in t["testsuites"] for c in s["testsuite"]]
skipped = [c["name"] for c in cases if c.get("result") == "SKIPPED"]
failed = [c["name"] for c in cases if c.get("failures")]
print(f"gpu_check: rehearsal suite: {len(cases)} tests, {len(cases) - len(skipped) - len(failed)}"
      f" passed, {len(skipped)} skipped, {len(failed)} failed in {sys.argv[2]} s")
PY
  ((RC == 0)) || { echo "gpu_check: the rehearsal suite failed" >&2; exit 1; }
fi
echo "gpu_check: $BUNDLE is ready; on the GPU machine: scripts/gpu/run_gpu_checks.sh $BUNDLE"
