#!/usr/bin/env bash
# Builds the apps and sdb-tests against the PyPI torch wheel that matches the GPU
# machine's PyTorch (scripts/check_libtorch2.sh, default torch 2.11 / CUDA 13) and packs
# them into one folder with every shared library they need that such a machine lacks:
# everything except the torch wheel's own libraries (the GPU machine's PyTorch has them),
# the CUDA libraries and the C runtime. Then rehearses the GPU run on this machine: the
# bundle's sdb-tests runs the CPU suite with only the bundle's and the wheel's libraries
# on the library path, and no library may resolve outside them.
#
# Usage: scripts/gpu_check.sh [bundle-dir]        (default build-gpu-bundle, git-ignored)
# Environment:
#   BUILD_DIR            the 2.x build (default build-lt2)
#   MAX_MIB              size limit of the bundle (default 64: what a device run carries)
#   SAMDEBLUR_REHEARSE   0 skips the rehearsal; GTEST_FILTER narrows it
# Then on the GPU machine, from the repository root: scripts/gpu/run_gpu_checks.sh
# (README, "LibTorch versions").
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
BUNDLE="${1:-build-gpu-bundle}"
BUILD_DIR="${BUILD_DIR:-build-lt2}"
MAX_MIB="${MAX_MIB:-64}"

command -v patchelf >/dev/null || { echo "gpu_check: needs patchelf (apt-get install patchelf)" >&2; exit 1; }
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
APPS=(sdb-eval sdb-train sdb-masks sdb-sam-bench sdb-bench sdb-synth sdb-tests)
for app in "${APPS[@]}"; do
  [[ -x "$BUILD_DIR/bin/$app" ]] || { echo "gpu_check: $BUILD_DIR/bin/$app not built" >&2; exit 1; }
  cp "$BUILD_DIR/bin/$app" "$BUNDLE/bin/"
done
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
strip --strip-unneeded "$BUNDLE"/bin/*
for f in "$BUNDLE"/bin/*; do patchelf --set-rpath '$ORIGIN/../lib' "$f"; done
for f in "$BUNDLE"/lib/*; do patchelf --set-rpath '$ORIGIN' "$f"; done
cp scripts/gpu/run_gpu_checks.sh "$BUNDLE/"

# The tests find their fixtures and the apps through paths compiled in at build time;
# run_gpu_checks.sh links them to the GPU machine's checkout.
SIZE_KIB="$(du -sk "$BUNDLE" | cut -f1)"
cat >"$BUNDLE/manifest.json" <<EOF
{
  "torch_version": "$TORCH_VERSION",
  "source_dir": "$ROOT",
  "bin_dir": "$ROOT/$BUILD_DIR/bin",
  "built": "$(date -u +%Y-%m-%dT%H:%M:%SZ)",
  "commit": "$(git rev-parse HEAD)$(git diff --quiet HEAD || echo '+dirty')",
  "size_kib": $SIZE_KIB,
  "libraries": [$(ls "$BUNDLE/lib" | sed 's/.*/"&"/' | paste -sd, -)]
}
EOF
echo "gpu_check: $BUNDLE: $(ls "$BUNDLE/lib" | wc -l) libraries, $((SIZE_KIB / 1024)) MiB"

# Rehearsal: the loader must find nothing outside the bundle, the wheel and the C runtime.
if [[ "${SAMDEBLUR_REHEARSE:-1}" != 0 ]]; then
  export LD_LIBRARY_PATH="$ROOT/$BUNDLE/lib:$LIBPATH"
  STRAY="$(ldd "$BUNDLE"/bin/* | awk '$2 == "=>" && $3 ~ /^\// {print $3}' | sort -u |
    while read -r lib; do
      case "$lib" in "$ROOT/$BUNDLE/lib/"*) ;; *) is_provided "$lib" || echo "$lib" ;; esac
    done)"
  if [[ -n "$STRAY" ]]; then
    echo "gpu_check: the bundle still loads from outside itself:" $STRAY >&2
    exit 1
  fi
  echo "gpu_check: rehearsal: $BUNDLE/bin/sdb-tests on the CPU with LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
  CUDA_VISIBLE_DEVICES="" OMP_NUM_THREADS=1 "$BUNDLE/bin/sdb-tests" --gtest_brief=1
fi

if ((SIZE_KIB > MAX_MIB * 1024)); then
  echo "gpu_check: $BUNDLE is $((SIZE_KIB / 1024)) MiB, over the $MAX_MIB MiB a device run carries." \
    "Largest libraries:" >&2
  du -k "$BUNDLE"/lib/* | sort -rn | head -n 12 >&2
  exit 3
fi
echo "gpu_check: $BUNDLE is ready; on the GPU machine run scripts/gpu/run_gpu_checks.sh $BUNDLE"
