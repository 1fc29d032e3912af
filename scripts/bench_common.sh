# Shared preamble of the benchmark scripts (scripts/bench_*.sh), sourced after `set -euo
# pipefail`, not run. Reads the environment they all take and probes what this machine runs:
#   BIN       SDB_BIN, default build/bin (the built apps)
#   PYTHON    default /usr/bin/python3 (Debian's python3-torch: the same LibTorch as ours)
#   TCMALLOC  libtcmalloc_minimal.so.4, preloaded into the official side for like-with-like
#             allocators (the one our executables link)
#   have_bf16 1 when /proc/cpuinfo lists avx512_bf16 or amx_bf16, else 0
# and defines official_side MARKER LABEL: sets have_official to 1 when the official
# checkout's MARKER (a folder) exists and PYTHON imports torch; otherwise to 0, saying on
# stderr that the official side is skipped (LABEL names the checkout and its variable).
BIN=${SDB_BIN:-build/bin}
PYTHON=${PYTHON:-/usr/bin/python3}
TCMALLOC=${TCMALLOC:-/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4}
have_bf16=0
if grep -qwE 'avx512_bf16|amx_bf16' /proc/cpuinfo; then have_bf16=1; fi

official_side() {
  have_official=1
  if [[ ! -d $1 ]] || ! "$PYTHON" -c 'import torch' 2>/dev/null; then
    echo "official side skipped: no checkout at $2 or no torch in $PYTHON" >&2
    have_official=0
  fi
}

# OpenBLAS (fp32 matrix products under Debian's LibTorch, README "Benchmarks"): its
# pthread pool ignores torch's thread count, so every side gets OPENBLAS_NUM_THREADS
# (blas_env THREADS). Our apps re-execute with OPENBLAS_CORETYPE where OpenBLAS fell back
# to a generic kernel on this CPU (core/blas.h): the official side's like-with-like runs
# (tcmalloc) get that same kernel (same_blas), its as-shipped runs keep OpenBLAS's choice.
blas_env() {
  export OPENBLAS_NUM_THREADS=$1
  local kernel
  kernel=$("$BIN/sdb-bench" --what peak --peak-size 32 --repeat 1 --threads 1 2>/dev/null |
    sed -n 's/.*BLAS OpenBLAS \([A-Za-z0-9]*\),.*/\1/p' | head -n 1 || true)
  same_blas=(env)
  if [[ -n $kernel ]]; then same_blas=(env "OPENBLAS_CORETYPE=$kernel"); fi
  echo "BLAS: OpenBLAS kernel ${kernel:-unknown} for ours and the official tcmalloc runs," \
    "$1 threads on every side" >&2
}
