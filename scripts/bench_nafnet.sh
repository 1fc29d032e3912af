#!/usr/bin/env bash
# NAFNet-w32 forward: samdeblur against the official model, like with like.
# Every side and every execution runs in its own fresh process through the same
# case sequence (256x256, then 1280x720; one untimed run per size; median and
# minimum of --repeat timed runs, half of them at 720p; minor page faults per
# run), with the same intra-op threads; the official model both as shipped
# (glibc malloc) and with tcmalloc preloaded (the allocator sdb-bench links).
# Then the matrix-product peak, and an interleaved A/B run of ours (exact vs
# channels-last + fused) in one process. Results: one JSON file per run in OUT.
# The train section at the end (skipped with TRAIN=0) times training iterations.
#
#   scripts/bench_nafnet.sh [THREADS=2] [REPEAT=5] [OUT=bench_nafnet]
#
# Environment: SDB_BIN (default build/bin), PYTHON (/usr/bin/python3, Debian's
# python3-torch: the same LibTorch), SAMDEBLUR_OFFICIAL (official checkout for
# scripts/bench_official.py; the official side is skipped when it is missing),
# TCMALLOC (libtcmalloc_minimal.so.4 path), SIZES (default "256 256 720 1280").
# Run it on an otherwise idle machine: any competing process stalls OpenMP.
set -euo pipefail
THREADS=${1:-2}
REPEAT=${2:-5}
OUT=${3:-bench_nafnet}
OFFICIAL=${SAMDEBLUR_OFFICIAL:-/tmp/ref/sam-deblur}
read -r -a SIZES <<<"${SIZES:-256 256 720 1280}"
source "$(dirname "${BASH_SOURCE[0]}")/bench_common.sh"  # BIN PYTHON TCMALLOC have_bf16
official_side "$OFFICIAL/basicsr" "$OFFICIAL (SAMDEBLUR_OFFICIAL)"
blas_env "$THREADS"  # OPENBLAS_NUM_THREADS, same_blas
mkdir -p "$OUT"

common=(--what nafnet --threads "$THREADS" --repeat "$REPEAT" --sizes "${SIZES[@]}")
for variant in "fp32 contiguous" "fp32 channels_last" "bf16 channels_last"; do
  read -r precision format <<<"$variant"
  if [[ $precision == bf16 && $have_bf16 == 0 ]]; then
    echo "bf16 skipped: this CPU has neither avx512_bf16 nor amx_bf16" >&2
    continue
  fi
  tag="${precision}_${format}"
  echo "== $tag"
  "$BIN/sdb-bench" "${common[@]}" --precision "$precision" --memory-format "$format" -q \
    --json "$OUT/sdb_$tag.json"
  if [[ $have_official == 1 ]]; then
    "${same_blas[@]}" LD_PRELOAD="$TCMALLOC" "$PYTHON" scripts/bench_official.py --root "$OFFICIAL" "${common[@]}" \
      --precision "$precision" --memory-format "$format" --json "$OUT/official_tcmalloc_$tag.json"
    "$PYTHON" scripts/bench_official.py --root "$OFFICIAL" "${common[@]}" \
      --precision "$precision" --memory-format "$format" --json "$OUT/official_glibc_$tag.json"
  fi
done
echo "== matrix-product peak"
"$BIN/sdb-bench" --what peak --threads "$THREADS" --peak-size 4096 -q --json "$OUT/peak.json"
echo "== interleaved A/B, one process: exact vs channels-last + fused"
"$BIN/sdb-bench" "${common[@]}" --memory-format channels_last --ab -q --json "$OUT/sdb_ab.json"

# ---- train: training iterations, batch 4 x 256^2, NAFNet-w32 and SegNAFNet-w32
# (2 untimed + REPEAT timed, median): ours in NCHW and in channels-last with the
# fused kernels' hand-written backward (train.memory_format), the official model
# with tcmalloc and as shipped, in NCHW and channels-last (torch.channels_last),
# then an interleaved A/B of ours (exact vs channels-last + fused) in one process.
if [[ ${TRAIN:-1} != 0 ]]; then
  train=(--what train --threads "$THREADS" --repeat "$REPEAT" --warmup 2 --batch 4 --size 256)
  for format in contiguous channels_last; do
    echo "== training iterations, $format"
    "$BIN/sdb-bench" "${train[@]}" --memory-format "$format" -q --json "$OUT/sdb_train_$format.json"
    if [[ $have_official == 1 ]]; then
      "${same_blas[@]}" LD_PRELOAD="$TCMALLOC" "$PYTHON" scripts/bench_official.py --root "$OFFICIAL" "${train[@]}" \
        --memory-format "$format" --json "$OUT/official_tcmalloc_train_$format.json"
      "$PYTHON" scripts/bench_official.py --root "$OFFICIAL" "${train[@]}" \
        --memory-format "$format" --json "$OUT/official_glibc_train_$format.json"
    fi
  done
  echo "== training iterations, interleaved A/B, one process: exact vs channels-last + fused"
  "$BIN/sdb-bench" "${train[@]}" --memory-format channels_last --ab -q --json "$OUT/sdb_train_ab.json"
fi
