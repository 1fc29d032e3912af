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
