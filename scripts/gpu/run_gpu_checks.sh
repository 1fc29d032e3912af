#!/usr/bin/env bash
# Runs on the GPU machine (PyTorch 2.x with CUDA, NVIDIA GPU), from the repository root,
# with the bundle made by scripts/gpu_check.sh: the whole test suite including the CUDA
# tests, then the CUDA benchmarks. Writes one JSON, $OUT/gpu_check.json (or
# ./gpu-check-out/gpu_check.json), and exits non-zero when a test fails.
#
# Usage: scripts/gpu/run_gpu_checks.sh [bundle-dir]     (default build-gpu-bundle)
# Environment:
#   SAMDEBLUR_SAM_CHECKPOINT  a SAM checkpoint: also runs sdb-sam-bench on CUDA
#   PYTHON                    the interpreter with the GPU machine's torch (default python3)
set -euo pipefail
START=$(date +%s)
BUNDLE="$(cd "${1:-build-gpu-bundle}" && pwd)"
OUTDIR="${OUT:-$PWD/gpu-check-out}"
PYTHON="${PYTHON:-python3}"
mkdir -p "$OUTDIR"
fail() { echo "run_gpu_checks: $*" >&2; exit 1; }

[[ -f "$BUNDLE/manifest.json" ]] || fail "$BUNDLE/manifest.json missing: run scripts/gpu_check.sh first"
command -v nvidia-smi >/dev/null || fail "no nvidia-smi: this machine has no NVIDIA driver (no GPU)"
nvidia-smi -L >/dev/null 2>&1 || fail "nvidia-smi finds no GPU"
manifest() { "$PYTHON" -c "import json,sys; print(json.load(open('$BUNDLE/manifest.json'))['$1'])"; }
WANT="$(manifest torch_version)"
read -r HAVE TORCH_LIB CUDA_OK < <("$PYTHON" -c '
import os, torch
print(torch.__version__.split("+")[0], os.path.join(os.path.dirname(torch.__file__), "lib"),
      int(torch.cuda.is_available()))') || fail "$PYTHON cannot import torch"
[[ "${HAVE%.*}" == "${WANT%.*}" ]] || fail "bundle built for torch $WANT, this machine has $HAVE"
[[ "$CUDA_OK" == 1 ]] || fail "torch $HAVE here sees no CUDA device"
export LD_LIBRARY_PATH="$BUNDLE/lib:$TORCH_LIB${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
if ldd "$BUNDLE/bin/sdb-tests" | grep -q 'not found'; then
  ldd "$BUNDLE/bin/sdb-tests" | grep 'not found' >&2
  fail "libraries missing (above)"
fi

# The tests reach their fixtures and the apps through the build machine's paths.
SRC="$(manifest source_dir)"
BIN="$(manifest bin_dir)"
if [[ ! -d "$SRC/tests/data" ]]; then mkdir -p "$(dirname "$SRC")" && ln -sfn "$PWD" "$SRC"; fi
if [[ ! -x "$BIN/sdb-eval" ]]; then mkdir -p "$(dirname "$BIN")" && ln -sfn "$BUNDLE/bin" "$BIN"; fi

TESTS_RC=0
OMP_NUM_THREADS=4 timeout 420 "$BUNDLE/bin/sdb-tests" --gtest_brief=1 \
  --gtest_output="json:$OUTDIR/tests.json" >"$OUTDIR/tests.log" 2>&1 || TESTS_RC=$?
tail -n 30 "$OUTDIR/tests.log"
timeout 240 "$BUNDLE/bin/sdb-bench" --what all --device cuda --repeat 5 \
  --json "$OUTDIR/bench_cuda.json" >"$OUTDIR/bench.log" 2>&1 || echo "sdb-bench failed" >&2
if [[ -n "${SAMDEBLUR_SAM_CHECKPOINT:-}" ]]; then
  timeout 240 "$BUNDLE/bin/sdb-sam-bench" --checkpoint "$SAMDEBLUR_SAM_CHECKPOINT" --device cuda \
    --json "$OUTDIR/sam_bench_cuda.json" >"$OUTDIR/sam_bench.log" 2>&1 || echo "sdb-sam-bench failed" >&2
fi

"$PYTHON" - "$OUTDIR" "$BUNDLE" "$TESTS_RC" "$(($(date +%s) - START))" <<'PY'
import json, os, subprocess, sys
out, bundle, rc, wall = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
def load(name):
    p = os.path.join(out, name)
    return json.load(open(p)) if os.path.exists(p) else None
import torch
report = {
    "gpu": subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total",
                           "--format=csv,noheader"], capture_output=True, text=True).stdout.strip(),
    "torch": torch.__version__, "cuda": torch.version.cuda,
    "bundle": json.load(open(os.path.join(bundle, "manifest.json"))),
    "tests": {"exit_code": rc}, "bench_cuda": load("bench_cuda.json"),
    "sam_bench_cuda": load("sam_bench_cuda.json"), "wall_s": wall,
}
t = load("tests.json")
if t:
    failed = [f'{s["name"]}.{c["name"]}' for s in t["testsuites"] for c in s["testsuite"]
              if c.get("failures")]
    skipped = [f'{s["name"]}.{c["name"]}' for s in t["testsuites"] for c in s["testsuite"]
               if c.get("result") == "SKIPPED"]
    report["tests"].update(total=t["tests"], failed=failed, skipped=skipped)
json.dump(report, open(os.path.join(out, "gpu_check.json"), "w"), indent=2)
print(json.dumps({k: report[k] for k in ("gpu", "torch", "tests", "wall_s")}, indent=2))
PY
exit "$TESTS_RC"
