#!/usr/bin/env bash
# Segment Anything on the CPU: samdeblur (sdb-sam-bench) against the official
# segment_anything code (scripts/bench_sam_official.py), side by side in one run,
# the official code both as shipped (glibc malloc) and with tcmalloc preloaded
# (the allocator our executables link). Same weights (random vit_b from the
# official build_sam_vit_b, seeded), same image, options and intra-op threads;
# every case in its own fresh process, C++ and Python alternating.
#
#   scripts/bench_sam.sh IMAGE [THREADS=1] [REPEAT=3] [OUT=bench_sam]
#
# Cases (README "SAM performance"):
#   encoder   vit_b image encoder, (1, 3, 1024, 1024)
#   amg-all   generator, 16x16 prompts, no filtering (pred_iou_thresh 0,
#             stability_score_thresh 0, box_nms_thresh 1): 768 masks, the
#             README's workload (decoder and post-processing of every mask)
#   amg-dflt  generator, 16x16 prompts, the official default filters (0.88 /
#             0.95 / 0.7): most masks fail pred_iou_thresh and are no longer
#             upsampled (issue 12)
# each for samdeblur fp32 (with a --profile run after the timed ones), samdeblur bf16 (only on a CPU with avx512_bf16 /
# amx_bf16), official glibc, official tcmalloc. --compare checks that our fp32
# masks equal the official ones (count and per-record areas).
#
# Environment: CASES (default "encoder amg-all amg-dflt"), SIDES (default "sdb_fp32
# official_tcmalloc sdb_bf16 official_glibc": which runs, in this order per case; the
# --compare needs sdb_fp32 and official_glibc), SDB_BIN (default build/bin), PYTHON (/usr/bin/python3 with Debian's
# python3-torch, the same LibTorch), SAM_REF (official segment-anything checkout;
# the official side is skipped when missing), TCMALLOC (libtcmalloc_minimal.so.4),
# WEIGHTS (default /tmp/sam_vit_b_random.pth, made by the official script when
# absent). Run it on an otherwise idle machine: competing processes stall OpenMP.
set -euo pipefail
IMAGE=${1:?usage: scripts/bench_sam.sh IMAGE [THREADS] [REPEAT] [OUT]}
THREADS=${2:-1}
REPEAT=${3:-3}
OUT=${4:-bench_sam}
export SAM_REF=${SAM_REF:-/tmp/ref/segment-anything}
WEIGHTS=${WEIGHTS:-/tmp/sam_vit_b_random.pth}
source "$(dirname "${BASH_SOURCE[0]}")/bench_common.sh"  # BIN PYTHON TCMALLOC have_bf16
official_side "$SAM_REF/segment_anything" "$SAM_REF (SAM_REF)"
blas_env "$THREADS"  # OPENBLAS_NUM_THREADS, same_blas
mkdir -p "$OUT"
if [[ ! -f $WEIGHTS ]]; then
  [[ $have_official == 1 ]] || { echo "no $WEIGHTS and no official code to make it" >&2; exit 1; }
  "$PYTHON" scripts/bench_sam_official.py --make-weights "$WEIGHTS"
fi

common=(--checkpoint "$WEIGHTS" --image "$IMAGE" --threads "$THREADS" --repeat "$REPEAT" --warmup 1)
declare -A CASE_ARGS=(
  [encoder]="--what encoder"
  [amg-all]="--what amg --points-per-side 16 --pred-iou-thresh 0 --stability-score-thresh 0 --box-nms-thresh 1.0"
  [amg-dflt]="--what amg --points-per-side 16"
)
read -r -a case_names <<<"${CASES:-encoder amg-all amg-dflt}"
sides=" ${SIDES:-sdb_fp32 official_tcmalloc sdb_bf16 official_glibc} "
for name in "${case_names[@]}"; do
  [[ -n ${CASE_ARGS[$name]+set} ]] || { echo "unknown case $name (encoder, amg-all, amg-dflt)" >&2; exit 2; }
  read -r -a opts <<<"${CASE_ARGS[$name]}"
  echo "== $name"
  # --profile: after the timed runs, one profiled encoder forward / decoder batch (the
  # JSON's "profile": per operator, the decoder split into transformer and upscaling).
  if [[ $sides == *" sdb_fp32 "* ]]; then
    "$BIN/sdb-sam-bench" "${common[@]}" "${opts[@]}" --profile -q --json "$OUT/sdb_fp32_$name.json"
  fi
  if [[ $have_official == 1 && $sides == *" official_tcmalloc "* ]]; then
    "${same_blas[@]}" LD_PRELOAD="$TCMALLOC" "$PYTHON" scripts/bench_sam_official.py "${common[@]}" "${opts[@]}" \
      --json "$OUT/official_tcmalloc_$name.json"
  fi
  if [[ $have_bf16 == 1 && $sides == *" sdb_bf16 "* ]]; then
    "$BIN/sdb-sam-bench" "${common[@]}" "${opts[@]}" --precision bf16 -q \
      --json "$OUT/sdb_bf16_$name.json"
  fi
  if [[ $have_official == 1 && $sides == *" official_glibc "* ]]; then
    "$PYTHON" scripts/bench_sam_official.py "${common[@]}" "${opts[@]}" \
      --json "$OUT/official_glibc_$name.json"
    if [[ $name != encoder && $sides == *" sdb_fp32 "* ]]; then
      "$PYTHON" scripts/bench_sam_official.py --compare "$OUT/sdb_fp32_$name.json" \
        "$OUT/official_glibc_$name.json" || echo "MISMATCH: $name (fp32 masks differ)" >&2
    fi
  fi
done
[[ $have_bf16 == 1 ]] || echo "bf16 skipped: this CPU has neither avx512_bf16 nor amx_bf16" >&2
echo "results in $OUT/"
