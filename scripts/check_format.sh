#!/usr/bin/env bash
# Fails (exit 1, listing the files) when a C/C++ file of ours does not follow
# .clang-format. Uses Debian's clang-format 14 (scripts/install_deps.sh installs
# it): other versions format some constructs differently.
# Usage: scripts/check_format.sh [--fix] [FILE...]
#   --fix rewrites the files in place; FILEs replace the default set (our sources).
set -euo pipefail
fix=0
if [[ "${1:-}" == "--fix" ]]; then
  fix=1
  shift
fi
args=()
for f in "$@"; do
  if [[ "$f" = /* ]]; then args+=("$f"); else args+=("$PWD/$f"); fi
done
cd "$(dirname "$0")/.."
CLANG_FORMAT="${CLANG_FORMAT:-clang-format}"
if ! command -v "$CLANG_FORMAT" >/dev/null; then
  echo "check_format: $CLANG_FORMAT not found (scripts/install_deps.sh installs it)" >&2
  exit 1
fi
version="$("$CLANG_FORMAT" --version)"
if [[ "$version" != *"version 14."* ]]; then
  echo "check_format: warning: expected clang-format 14, found: $version" >&2
fi
# Our files: tracked or new (not ignored) sources under these folders.
if ((${#args[@]} > 0)); then
  files=("${args[@]}")
else
  mapfile -t files < <(git ls-files --cached --others --exclude-standard -- \
    'src/*.cpp' 'src/*.h' 'include/*.h' 'apps/*.cpp' 'apps/*.h' 'tests/*.cpp' 'tests/*.h' \
    'examples/*.cpp' 'examples/*.h' 'scripts/*.cpp' | sort -u |
    while read -r f; do [[ -f "$f" ]] && echo "$f"; done)  # not deleted in the work tree
fi
if ((fix)); then
  "$CLANG_FORMAT" -i "${files[@]}"
  echo "check_format: formatted ${#files[@]} files"
  exit 0
fi
bad=()
for f in "${files[@]}"; do
  "$CLANG_FORMAT" --dry-run --Werror "$f" >/dev/null 2>&1 || bad+=("$f")
done
if ((${#bad[@]} > 0)); then
  echo "check_format: ${#bad[@]} of ${#files[@]} files do not follow .clang-format:" >&2
  printf '  %s\n' "${bad[@]}" >&2
  echo "fix with: scripts/check_format.sh --fix (or clang-format -i FILE)" >&2
  exit 1
fi
echo "check_format: all ${#files[@]} files formatted"
