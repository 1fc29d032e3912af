#!/usr/bin/env bash
# Builds the libFuzzer targets of tests/fuzz with clang (AddressSanitizer +
# UndefinedBehaviorSanitizer + fuzzer coverage) in build-fuzz/ and runs each for a bounded
# time on a copy of its committed seed corpus (tests/fuzz/corpus/<target>/).
#
#   scripts/fuzz.sh [seconds-per-target] [target ...]     (default 60 s, all targets)
#
# Needs clang++ with libFuzzer (Debian: clang, libclang-rt-14-dev); when it is missing the
# script installs it with scripts/install_deps.sh --with-fuzz first.
# Only the readers are built (src/core, src/io, src/config/yaml_reader.cpp), not the
# models. Crashes are written to build-fuzz/findings/<target>/ (crash-*, leak-*, timeout-*)
# and the script exits 1 when any target found one. Add a fixed crash input to the seed
# corpus so that the CTest smoke run (ctest -R fuzz_smoke in build-fuzz) keeps it fixed.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_TARGET="${1:-60}"
shift || true
TARGETS=("$@")
if ((${#TARGETS[@]} == 0)); then TARGETS=(pickle zip npy safetensors yaml image); fi
BUILD=build-fuzz
JOBS="${FUZZ_JOBS:-2}"

# clang with libFuzzer: checked by linking a one-line fuzzer, installed when missing.
have_libfuzzer() {
  command -v clang++ >/dev/null || return 1
  local probe
  probe="$(mktemp -d)"
  printf '#include <cstddef>\n#include <cstdint>\nextern "C" int LLVMFuzzerTestOneInput(const uint8_t*, size_t) { return 0; }\n' >"$probe/p.cpp"
  clang++ -fsanitize=fuzzer,address,undefined "$probe/p.cpp" -o "$probe/p" 2>/dev/null
  local ok=$?
  rm -rf "$probe"
  return $ok
}
if ! have_libfuzzer; then
  echo "fuzz.sh: clang++ with libFuzzer is missing; installing it (scripts/install_deps.sh --with-fuzz)" >&2
  scripts/install_deps.sh --with-fuzz
  have_libfuzzer || { echo "fuzz.sh: clang++ -fsanitize=fuzzer still does not link; install clang and libclang-rt-14-dev" >&2; exit 2; }
fi
cmake -S . -B "$BUILD" -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g" -DSAMDEBLUR_FUZZ=ON -DSAMDEBLUR_SANITIZE=address,undefined \
  -DSAMDEBLUR_BUILD_TESTS=OFF -DSAMDEBLUR_BUILD_APPS=OFF -DSAMDEBLUR_USE_PCH=OFF \
  -DSAMDEBLUR_PATH_FILTER="src/(core|io)/|src/config/yaml_reader" >/dev/null
cmake --build "$BUILD" -j"$JOBS" --target $(printf '%s_fuzz ' "${TARGETS[@]}")

status=0
for t in "${TARGETS[@]}"; do
  corpus="$BUILD/corpus/$t"
  findings="$BUILD/findings/$t"
  mkdir -p "$corpus" "$findings"
  cp -n tests/fuzz/corpus/"$t"/* "$corpus"/ 2>/dev/null || true
  echo "== $t: ${SECONDS_PER_TARGET}s"
  # -rss_limit_mb bounds every input's memory: a reader that inflates a bomb fails here.
  if ! "$BUILD/bin/${t}_fuzz" -max_total_time="$SECONDS_PER_TARGET" -timeout=10 -rss_limit_mb=2048 \
      -max_len=65536 -artifact_prefix="$findings/" -print_final_stats=1 "$corpus" \
      2>"$findings/log.txt"; then
    echo "   FOUND a problem, see $findings/" >&2
    status=1
  fi
  grep -E "^stat::number_of_executed_units|^stat::peak_rss_mb|^#[0-9]+.*DONE" "$findings/log.txt" | sed 's/^/   /' || true
  echo "   corpus: $(ls "$corpus" | wc -l) inputs"
done
exit $status
