#!/usr/bin/env bash
# Runs on the GPU machine (PyTorch 2.x with CUDA, one NVIDIA GPU), from the repository root,
# with the bundle made by scripts/gpu_check.sh (README, "LibTorch versions"), within 8 min:
#   1. the whole test suite, CUDA tests included (SAM half precision, one-process NCCL,
#      SDPA attention), in 4 parallel gtest shards;
#   2. CUDA checks through the apps: sdb-eval --device cuda equal to the CPU within
#      tolerance (contiguous and channels_last); sdb-train with AMP fp16 (finite losses, a
#      loss scale that moves: halved on overflow or doubled after 2000 good steps), AMP
#      bf16, and bf16 + channels_last;
#   3. benchmarks: NAFNet-w32 forward at 1280x720 (fp32, bf16, channels_last), a training
#      step at batch 32 x 256^2, the vit_h encoder at 1024^2 and the automatic mask
#      generator with vit_h on one photo (SAMDEBLUR_SAM_CHECKPOINT, else seeded random
#      vit_h weights: timings only).
# Writes $OUT/gpu_check.json (or ./gpu-check-out/) and $OUT/gpu_check.log; exits non-zero
# when a test or check fails or the machine has no usable GPU (the JSON says why).
#
# Usage: scripts/gpu/run_gpu_checks.sh [--dry-run] [bundle-dir]   (default build-gpu-bundle)
#   --dry-run  on a machine without a GPU: every step on the CPU with tiny sizes and a
#              filtered suite, to check that each command parses and the JSON is assembled
# Environment:
#   SAMDEBLUR_SAM_CHECKPOINT  a vit_h checkpoint for the SAM benchmarks
#   PYTHON                    the interpreter with the machine's torch (default python3)
#   GTEST_FILTER              narrows the suite
set -uo pipefail
START=$(date +%s)
DRY=0
if [[ "${1:-}" == --dry-run ]]; then DRY=1; shift; fi
BUNDLE="$(cd "${1:-build-gpu-bundle}" && pwd)" || exit 1
OUTDIR="${OUT:-$PWD/gpu-check-out}"
WORK="$(mktemp -d /tmp/gpu-check.XXXXXX)"
PYTHON="${PYTHON:-python3}"
BUDGET_S=470
mkdir -p "$OUTDIR"
LOG="$OUTDIR/gpu_check.log"
: >"$LOG"
say() { echo "run_gpu_checks: $*" | tee -a "$LOG" >&2; }
# Results go to $WORK/results.jsonl, one {"key": ..., "value": ...} per line.
put() {
  "$PYTHON" -c '
import json, sys
try:
    v = json.loads(sys.argv[2])
except ValueError:
    v = {"error": "no result (see gpu_check.log)", "text": sys.argv[2][-400:]}
print(json.dumps({"key": sys.argv[1], "value": v}))' "$1" "$2" >>"$WORK/results.jsonl"
}
finish() {
  "$PYTHON" - "$WORK" "$OUTDIR" "$BUNDLE" "$DRY" "$(($(date +%s) - START))" "$1" <<'PY'
import json, os, sys
work, out, bundle, dry, wall, status = sys.argv[1:7]
report = {"status": status, "dry_run": dry == "1", "wall_s": int(wall)}
try:
    report["bundle"] = json.load(open(os.path.join(bundle, "manifest.json")))
except OSError:
    pass
path = os.path.join(work, "results.jsonl")
for line in open(path) if os.path.exists(path) else []:
    r = json.loads(line)
    report[r["key"]] = r["value"]
json.dump(report, open(os.path.join(out, "gpu_check.json"), "w"), indent=2)
print(json.dumps({k: v for k, v in report.items() if k in ("status", "gpu", "torch", "wall_s",
                                                           "failures")}, indent=2))
PY
}
stop() { say "$*"; put reason "$("$PYTHON" -c 'import json,sys; print(json.dumps(sys.argv[1]))' "$*")"; finish stopped; exit 1; }
left() { echo $((BUDGET_S - ($(date +%s) - START))); }

[[ -f "$BUNDLE/manifest.json" ]] || stop "$BUNDLE/manifest.json missing: run scripts/gpu_check.sh first"
manifest() { "$PYTHON" -c "import json; print(json.load(open('$BUNDLE/manifest.json'))['$1'])"; }
THREADS=4
if ((DRY)); then
  DEVICE=cpu
  THREADS=1  # a loaded build machine: 4 threads each would oversubscribe it
  TORCH_LIB="$(manifest torch_lib)"
else
  DEVICE=cuda
  command -v nvidia-smi >/dev/null || stop "no nvidia-smi: this machine has no NVIDIA driver (no GPU)"
  nvidia-smi -L >/dev/null 2>&1 || stop "nvidia-smi finds no GPU"
  WANT="$(manifest torch_version)"
  read -r HAVE TORCH_LIB CUDA_OK CUDA_V < <("$PYTHON" -c '
import os, torch
print(torch.__version__.split("+")[0], os.path.join(os.path.dirname(torch.__file__), "lib"),
      int(torch.cuda.is_available()), torch.version.cuda)') || stop "$PYTHON cannot import torch"
  [[ "${HAVE%.*}" == "${WANT%.*}" ]] || stop "bundle built for torch $WANT, this machine has $HAVE"
  [[ "$CUDA_OK" == 1 ]] || stop "torch $HAVE here sees no CUDA device (CUDA_VISIBLE_DEVICES='${CUDA_VISIBLE_DEVICES-unset}')"
  put gpu "\"$(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | head -n1)\""
  put torch "\"$HAVE (CUDA $CUDA_V)\""
fi
export LD_LIBRARY_PATH="$BUNDLE/lib:$TORCH_LIB${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
if ldd "$BUNDLE/bin/sdb-tests" | grep -q 'not found'; then
  ldd "$BUNDLE/bin/sdb-tests" | grep 'not found' >>"$LOG"
  stop "libraries missing (see gpu_check.log)"
fi

# The tests reach their fixtures and the apps through the build machine's paths.
SRC="$(manifest source_dir)"
BIN="$(manifest bin_dir)"
if [[ ! -d "$SRC/tests/data" ]]; then mkdir -p "$(dirname "$SRC")" && ln -sfn "$PWD" "$SRC"; fi
if [[ ! -x "$BIN/sdb-eval" ]]; then mkdir -p "$(dirname "$BIN")" && ln -sfn "$BUNDLE/bin" "$BIN"; fi
B="$BUNDLE/bin"

# ---- 1. the suite, 4 shards in parallel ------------------------------------------------
SHARDS=4
FILTER="${GTEST_FILTER:-*}"
((DRY)) && FILTER="${GTEST_FILTER:-EncoderSdpa.*:DistributedCuda.*:SamModel.*Cuda*:DistEnv.*}"
say "suite: $SHARDS shards, filter $FILTER"
for ((i = 0; i < SHARDS; i++)); do
  GTEST_TOTAL_SHARDS=$SHARDS GTEST_SHARD_INDEX=$i OMP_NUM_THREADS=$THREADS timeout 210 \
    "$B/sdb-tests" --gtest_filter="$FILTER" --gtest_brief=1 \
    --gtest_output="json:$WORK/tests_$i.json" >"$WORK/tests_$i.log" 2>&1 &
done
wait
for ((i = 0; i < SHARDS; i++)); do tail -n 25 "$WORK/tests_$i.log" >>"$LOG"; done
put tests "$("$PYTHON" - "$WORK" "$SHARDS" <<'PY'
import json, os, sys
work, shards = sys.argv[1], int(sys.argv[2])
r = {"total": 0, "passed": 0, "failed": [], "skipped": [], "missing_shards": [], "cuda": {}}
watch = ("Cuda", "Half", "Nccl", "Sdpa")
for i in range(shards):
    p = os.path.join(work, f"tests_{i}.json")
    if not os.path.exists(p):
        r["missing_shards"].append(i)  # crashed or timed out: see gpu_check.log
        continue
    for s in json.load(open(p))["testsuites"]:
        for c in s["testsuite"]:
            name = f'{s["name"]}.{c["name"]}'
            r["total"] += 1
            if c.get("failures"):
                state = "failed"
                r["failed"].append(name)
            elif c.get("result") == "SKIPPED":
                state = "skipped"
                r["skipped"].append(name)
            else:
                state = "passed"
                r["passed"] += 1
            if any(w in name for w in watch):
                r["cuda"][name] = state
print(json.dumps(r))
PY
)"

# ---- 2. CUDA checks through the apps ---------------------------------------------------
DATA="$PWD/tests/data/eval"
cat >"$WORK/eval.yml" <<EOF
name: gpu-check-eval
model_type: ImageRestorationModel
scale: 1
num_gpu: 1
manual_seed: 10
datasets:
  test:
    name: tiny
    type: PairedImageDataset
    dataroot_gt: $DATA/target
    dataroot_lq: $DATA/input
    io_backend:
      type: disk
network_g:
  type: NAFNetLocal
  width: 8
  enc_blk_nums: [1, 1]
  middle_blk_num: 1
  dec_blk_nums: [1, 1]
  train_size: [1, 3, 16, 16]
path:
  pretrain_network_g: $DATA/checkpoints/NAFNet.pth
  strict_load_g: true
  resume_state: ~
val:
  save_img: false
  metrics:
    psnr:
      type: calculate_psnr
      crop_border: 0
      test_y_channel: false
    ssim:
      type: calculate_ssim
      crop_border: 0
      test_y_channel: false
EOF
run_eval() {  # name device [flags...]
  local name=$1 dev=$2
  shift 2
  timeout 90 "$B/sdb-eval" -q -c "$WORK/eval.yml" -o "$WORK/eval_$name" --device "$dev" "$@" \
    >>"$LOG" 2>&1 || say "sdb-eval $name failed"
}
run_eval cpu cpu --threads "$THREADS"
run_eval dev "$DEVICE" --threads "$THREADS"
run_eval dev_cl "$DEVICE" --threads "$THREADS" --memory-format channels_last
put eval "$("$PYTHON" - "$WORK" <<'PY'
import json, os, sys
work = sys.argv[1]
def load(n):
    p = os.path.join(work, f"eval_{n}", "summary.json")
    return json.load(open(p)) if os.path.exists(p) else None
cpu, r = load("cpu"), {}
for n in ("dev", "dev_cl"):
    d = load(n)
    if cpu is None or d is None:
        r[n] = {"ok": False, "error": "no summary.json (see gpu_check.log)"}
        continue
    dp, ds = abs(d["psnr"] - cpu["psnr"]), abs(d["ssim"] - cpu["ssim"])
    # cuDNN may use TF32: 0.05 dB and 1e-3 SSIM on the tiny NAFNet's outputs.
    r[n] = {"psnr": d["psnr"], "ssim": d["ssim"], "psnr_cpu": cpu["psnr"], "ssim_cpu": cpu["ssim"],
            "abs_diff_psnr": dp, "abs_diff_ssim": ds, "ok": dp <= 0.05 and ds <= 1e-3}
print(json.dumps({"contiguous": r["dev"], "channels_last": r["dev_cl"]}))
PY
)"

run_train() {  # name iters [--set ...]
  local name=$1 iters=$2
  shift 2
  timeout 150 "$B/sdb-train" -q -c configs/train/tiny/NAFNet.yml --device "$DEVICE" --threads "$THREADS" \
    --set "path.experiments_root=$WORK/train_$name" --set "train.total_iter=$iters" \
    --set val.val_freq=0 --set "logger.save_checkpoint_freq=$(((iters + 1) / 2))" \
    --set logger.print_freq=5 --set logger.use_tb_logger=false "$@" >>"$LOG" 2>&1 ||
    say "sdb-train $name failed"
}
FP16_ITERS=2010 SHORT_ITERS=100
((DRY)) && FP16_ITERS=20 SHORT_ITERS=10
run_train fp16 "$FP16_ITERS" --set train.amp=fp16
run_train bf16 "$SHORT_ITERS" --set train.amp=bf16
run_train bf16_cl "$SHORT_ITERS" --set train.amp=bf16 --set train.channels_last=true
put train "$("$PYTHON" - "$WORK" "$DRY" <<'PY'
import glob, json, math, os, sys
work, dry, r = sys.argv[1], sys.argv[2] == "1", {}
for n in ("fp16", "bf16", "bf16_cl"):
    root = os.path.join(work, f"train_{n}")
    losses = []
    if os.path.exists(os.path.join(root, "metrics.jsonl")):
        for line in open(os.path.join(root, "metrics.jsonl")):
            j = json.loads(line)
            if j.get("type") == "train":
                losses.append(j.get("l_pix"))
    finite = bool(losses) and all(isinstance(x, (int, float)) and math.isfinite(x) for x in losses)
    states = sorted(glob.glob(os.path.join(root, "training_states", "*.state.json")),
                    key=lambda p: int(os.path.basename(p).split(".")[0]))
    scales = [json.load(open(p))["extra"].get("loss_scale") for p in states]
    e = {"logged_losses": len(losses), "first_loss": losses[0] if losses else None,
         "last_loss": losses[-1] if losses else None, "finite": finite,
         "loss_scale_at_checkpoints": scales, "ok": finite}
    if n == "fp16":
        e["loss_scale_moved"] = any(s != 65536.0 for s in scales)
        e["ok"] = finite and (e["loss_scale_moved"] or dry)  # no loss scaling on the CPU
    r[n] = e
print(json.dumps(r))
PY
)"

# ---- 3. benchmarks -----------------------------------------------------------------------
NAF_SIZES=(720 1280) TRAIN_B=32 TRAIN_S=256 REPEAT=10 SAM_TYPE=vit_h PPS=32 SAM_REPEAT=3 WARM=1
((DRY)) && NAF_SIZES=(64 64) TRAIN_B=2 TRAIN_S=64 REPEAT=1 SAM_TYPE=vit_b PPS=4 SAM_REPEAT=1 WARM=0
bench() {  # name seconds command...
  local name=$1 secs=$2
  shift 2
  ((DRY)) && secs=$((secs * 4))  # the CPU of a loaded build machine
  if ((!DRY && $(left) < secs / 2)); then
    say "skipping $name: $(left) s of the 8-minute budget left"
    return
  fi
  timeout "$secs" "$@" --threads "$THREADS" --json "$WORK/bench_$name.json" >>"$LOG" 2>&1 ||
    say "$name failed"
}
for v in "fp32 contiguous" "bf16 contiguous" "fp32 channels_last"; do
  read -r prec fmt <<<"$v"
  bench "nafnet_${prec}_$fmt" 60 "$B/sdb-bench" --what nafnet --device "$DEVICE" --sizes "${NAF_SIZES[@]}" \
    --precision "$prec" --memory-format "$fmt" --repeat "$REPEAT" --warmup "$WARM"
done
bench train 90 "$B/sdb-bench" --what train --device "$DEVICE" --batch "$TRAIN_B" --size "$TRAIN_S" \
  --repeat "$((REPEAT > 1 ? 5 : 1))" --warmup "$((WARM * 2))"
SAM_ARGS=(--random-model-type "$SAM_TYPE")
[[ -n "${SAMDEBLUR_SAM_CHECKPOINT:-}" ]] && SAM_ARGS=(--checkpoint "$SAMDEBLUR_SAM_CHECKPOINT")
# One process for both (random vit_h weights are made once): the encoder, then the
# generator on one photo.
bench sam 180 "$B/sdb-sam-bench" "${SAM_ARGS[@]}" --what all --device "$DEVICE" \
  --image data/demo/photos/chelsea.jpg --points-per-side "$PPS" --repeat "$SAM_REPEAT" \
  --warmup "$WARM"
put bench "$("$PYTHON" - "$WORK" <<'PY'
import glob, json, os, sys
r = {}
for p in sorted(glob.glob(os.path.join(sys.argv[1], "bench_*.json"))):
    r[os.path.basename(p)[6:-5]] = json.load(open(p))
print(json.dumps(r))
PY
)"

# ---- verdict -------------------------------------------------------------------------------
put failures "$("$PYTHON" - "$WORK" <<'PY'
import json, sys
r = {}
for line in open(sys.argv[1] + "/results.jsonl"):
    j = json.loads(line)
    r[j["key"]] = j["value"]
f = ["test " + t for t in r["tests"]["failed"]]
f += [f"suite shard {i} missing (crash or timeout)" for i in r["tests"]["missing_shards"]]
f += [f"eval {k}" for k, v in r["eval"].items() if not v.get("ok")]
f += [f"train {k}" for k, v in r["train"].items() if not v.get("ok")]
f += [f"bench {k} missing" for k in ("nafnet_fp32_contiguous", "nafnet_bf16_contiguous",
      "nafnet_fp32_channels_last", "train", "sam") if k not in r["bench"]]
print(json.dumps(f))
PY
)"
STATUS=passed
grep -q '"key": "failures", "value": \[\]' "$WORK/results.jsonl" || STATUS=failed
finish "$STATUS"
rm -rf "$WORK"
[[ "$STATUS" == passed ]]
