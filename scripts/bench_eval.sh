#!/usr/bin/env bash
# Whole-process evaluation benchmark, like with like (issue 12, first table row):
# `sdb-eval` against the official `basicsr/test.py` on the same YAML and data, each in
# a fresh process, back to back, same intra-op threads, the official code both with
# tcmalloc preloaded (the allocator sdb-eval links) and as shipped (glibc malloc).
#
#   scripts/bench_eval.sh [720p|4K]        # default 720p: 2 images 1280x720
#
# 720p: 2 image pairs of 1280x720 with 160 and 175 grouped masks, the official
# SegNAFNet-w32 GoPro configuration with random weights saved by the official code.
# 4K: 1 pair of 3840x2160 (the memory figure); the official side is skipped by default
# (its loader and mask_average need tens of GB at 4K: SIDES="sdb official_tcmalloc" to try).
# Every run goes through /usr/bin/time -v (wall, peak RSS, page faults, CPU time); per
# image, both sides' load / network / total seconds (ours from timing.json, the
# official ones from timing hooks around its dataset, model.test and metric calls,
# scripts/bench_eval.py official); both sides' per-image PSNR / SSIM must agree.
# Results: $OUT/results.json and a printed table.
#
# Environment: SIZE (WxH, overrides the mode's), IMAGES, NETWORK (SegNAFNet | NAFNet),
# THREADS (2), OUT (bench_eval/<mode>-<network>), SDB_BIN (build/bin), PYTHON
# (/usr/bin/python3: Debian's python3-torch, the same LibTorch 1.13; when it lacks einops,
# a venv with system site packages, OFFICIAL_VENV, made once), SAMDEBLUR_OFFICIAL
# (official checkout, /tmp/ref/sam-deblur; copied into $OUT/official because test.py
# writes results/ beside its code), TCMALLOC (libtcmalloc_minimal.so.4), SIDES (which
# runs, default "sdb sdb_exact sdb_bf16 official_tcmalloc official_glibc" at 720p, "sdb
# sdb_exact" at 4K; sdb is sdb-eval as it comes (memory format auto: channels-last on the
# CPU), sdb_exact with --memory-format contiguous, sdb_cl with --memory-format channels_last,
# sdb_bf16 with --memory-format channels_last --precision bf16), NICE (a prefix such as
# "nice -n 10" for a loaded machine). The official test.py needs python3-torchvision,
# python3-tqdm, python3-lmdb, python3-skimage, python3-scipy and einops.
# Run the full-size benchmark on an otherwise idle machine: on 2 cores any competing
# process stalls every OpenMP barrier.
set -euo pipefail
MODE=${1:-720p}
case "$MODE" in
  720p) size=1280x720 images=2 sides="sdb sdb_exact sdb_bf16 official_tcmalloc official_glibc" ;;
  4K | 4k) size=3840x2160 images=1 sides="sdb sdb_exact" ;;
  *) echo "usage: $0 [720p|4K]" >&2; exit 2 ;;
esac
SIZE=${SIZE:-$size}
IMAGES=${IMAGES:-$images}
NETWORK=${NETWORK:-SegNAFNet}
THREADS=${THREADS:-2}
OUT=${OUT:-bench_eval/$MODE-$NETWORK}
BIN=$(realpath "${SDB_BIN:-build/bin}")
PYTHON=${PYTHON:-}
OFFICIAL=${SAMDEBLUR_OFFICIAL:-/tmp/ref/sam-deblur}
TCMALLOC=${TCMALLOC:-/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4}
read -r -a RUNS <<<"${SIDES:-$sides}"
read -r -a NICE_CMD <<<"${NICE:-}"
HERE=$(cd "$(dirname "$0")" && pwd)
HELPER="$HERE/bench_eval.py"

[[ -x "$BIN/sdb-eval" ]] || { echo "no $BIN/sdb-eval: build it first (SDB_BIN)" >&2; exit 1; }
[[ -d "$OFFICIAL/basicsr" ]] || { echo "no official checkout at $OFFICIAL (SAMDEBLUR_OFFICIAL)" >&2; exit 1; }
[[ -x /usr/bin/time ]] || { echo "needs GNU time (apt-get install time)" >&2; exit 1; }
# Debian's python3 lacks einops (restormer_arch.py, imported by the official arch registry):
# a venv over the system site packages gets it from PyPI.
if [[ -z $PYTHON ]]; then
  PYTHON=/usr/bin/python3
  if [[ " ${RUNS[*]} " == *" official"* ]] && ! "$PYTHON" -c 'import einops' 2>/dev/null; then
    venv=${OFFICIAL_VENV:-$HOME/.cache/samdeblur-official-venv}
    if [[ ! -x "$venv/bin/python" ]]; then
      /usr/bin/python3 -m venv --system-site-packages "$venv"
      "$venv/bin/pip" install -q einops
    fi
    PYTHON=$venv/bin/python
  fi
fi
if [[ " ${RUNS[*]} " == *" official"* ]] &&
  ! "$PYTHON" -c 'import torch, torchvision, tqdm, lmdb, skimage, scipy, einops, cv2, yaml' 2>/dev/null; then
  echo "the official test.py needs: apt-get install python3-torchvision python3-tqdm python3-lmdb" \
    "python3-skimage python3-scipy python3-opencv python3-yaml, and einops (pip)" >&2
  exit 1
fi
mkdir -p "$OUT"
OUT=$(realpath "$OUT")

# The benchmark (deterministic; made once per OUT).
if [[ ! -f "$OUT/data.json" ]]; then
  "$PYTHON" "$HELPER" make-data --size "$SIZE" --images "$IMAGES" --network "$NETWORK" \
    --official "$OFFICIAL" --out "$OUT"
fi
# The official code as its README installs it (setup.py writes basicsr/version.py), in a
# copy: test.py writes results/<name> into the checkout. Its files are not modified.
if [[ ! -d "$OUT/official/basicsr" ]]; then
  mkdir -p "$OUT/official"
  cp -r "$OFFICIAL/basicsr" "$OFFICIAL/options" "$OFFICIAL/VERSION" "$OUT/official/"
  printf "__version__ = '%s'\n" "$(cat "$OFFICIAL/VERSION")" >"$OUT/official/basicsr/version.py"
fi

export OMP_NUM_THREADS=$THREADS
# OpenBLAS threads and kernels as in the other benchmarks (bench_common.sh, blas_env).
abs_bin=$BIN
source "$HERE/bench_common.sh"  # keeps PYTHON and TCMALLOC as set above
BIN=$abs_bin
blas_env "$THREADS"
loadavg=$(cut -d' ' -f1-3 /proc/loadavg)
for run in "${RUNS[@]}"; do
  echo "== $run" >&2
  timefile="$OUT/$run.time"
  case "$run" in
    sdb | sdb_exact | sdb_cl | sdb_bf16)
      # sdb: the default execution (memory format auto: float32 channels-last + fused kernels
      # on the CPU); sdb_exact: the exact NCHW ATen composition (--memory-format contiguous);
      # sdb_cl: channels-last named explicitly (the default on the CPU);
      # sdb_bf16: bf16 channels-last (CPUs with AVX512-BF16 / AMX only).
      case "$run" in
        sdb) exec_args=() ;;
        sdb_exact) exec_args=(--memory-format contiguous) ;;
        sdb_cl) exec_args=(--memory-format channels_last) ;;
        sdb_bf16) exec_args=(--memory-format channels_last --precision bf16) ;;
      esac
      rm -rf "${OUT:?}/$run"
      "${NICE_CMD[@]}" /usr/bin/time -v -o "$timefile" "$BIN/sdb-eval" -c "$OUT/config.yml" \
        -o "$OUT/$run" --threads "$THREADS" -q "${exec_args[@]}" || true
      ;;
    official_tcmalloc | official_glibc)
      preload=()
      [[ $run == official_tcmalloc ]] && preload=("${same_blas[@]}" "LD_PRELOAD=$TCMALLOC")
      rm -rf "$OUT/official/results"
      (cd "$OUT/official" && "${NICE_CMD[@]}" /usr/bin/time -v -o "$timefile" "${preload[@]}" \
        "$PYTHON" "$HELPER" official --root . --opt "$OUT/config.yml" \
        --timing "$OUT/$run.timing.json" --threads "$THREADS" >"$OUT/$run.log" 2>&1) || true
      ;;
    *) echo "unknown run '$run' in SIDES" >&2; exit 2 ;;
  esac
  grep -q 'Exit status: 0' "$timefile" || echo "warning: $run failed (see $timefile, $OUT/$run.log)" >&2
done
"$PYTHON" "$HELPER" report --out "$OUT" --runs "${RUNS[@]}" --json "$OUT/results.json" \
  --threads "$THREADS" --loadavg "$loadavg"
echo "results: $OUT/results.json" >&2
