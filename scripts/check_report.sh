#!/usr/bin/env bash
# Renders a sweep's report.html in headless Chromium (Debian's `chromium`) and fails
# (exit 1) when the page logs anything to the console, when it references anything
# outside the file (an http(s): or protocol-relative src / href / CSS url(), @import:
# the report must be self-contained) or when the rendered DOM has no results table
# (<table id="results">). Optionally writes a screenshot.
#   scripts/check_report.sh REPORT.html [SCREENSHOT.png]
# Exit codes: 0 ok, 1 check failed, 2 usage / missing file, 3 no chromium
# (scripts/install_deps.sh --with-browser installs it).
set -euo pipefail

if [ $# -lt 1 ] || [ $# -gt 2 ]; then
  echo "usage: $0 REPORT.html [SCREENSHOT.png]" >&2
  exit 2
fi
report=$1
shot=${2:-}
if [ ! -f "$report" ]; then
  echo "check_report: $report: no such file" >&2
  exit 2
fi
chrome=$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)
if [ -z "$chrome" ]; then
  echo "check_report: chromium not found (scripts/install_deps.sh --with-browser)" >&2
  exit 3
fi

url="file://$(realpath "$report")"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# Every host name resolves to nothing: a report that needs the network logs a failed load.
flags=(--headless --disable-gpu --no-sandbox --no-first-run --no-default-browser-check
  --disable-extensions --user-data-dir="$work/profile" --host-resolver-rules="MAP * ~NOTFOUND"
  --enable-logging=stderr --v=0)

if ! timeout 120 "$chrome" "${flags[@]}" --dump-dom "$url" >"$work/dom.html" 2>"$work/log.txt"; then
  cat "$work/log.txt" >&2
  echo "check_report: $report: chromium failed to render it" >&2
  exit 1
fi
status=0
# Self-contained: no attribute or CSS url() that points outside the file.
if grep -Eo "(src|href|srcset|poster|action|data)[[:space:]]*=[[:space:]]*[\"']?[[:space:]]*(https?:|ftp:|//)[^\"' >]*|url\([[:space:]]*[\"']?(https?:|//)[^)]*|@import" \
  "$report" | head -5 >"$work/external.txt" && [ -s "$work/external.txt" ]; then
  cat "$work/external.txt" >&2
  echo "check_report: $report: references outside the file (above)" >&2
  status=1
fi
if grep -E ':CONSOLE|Uncaught' "$work/log.txt" >&2; then
  echo "check_report: $report: console messages while rendering (above)" >&2
  status=1
fi
if ! grep -q '<table id="results"' "$work/dom.html"; then
  echo "check_report: $report: the rendered page has no <table id=\"results\">" >&2
  status=1
fi
if [ -n "$shot" ]; then
  if ! timeout 120 "$chrome" "${flags[@]}" --hide-scrollbars --window-size=1280,1400 \
    --screenshot="$(realpath -m "$shot")" "$url" >/dev/null 2>"$work/shot.txt"; then
    cat "$work/shot.txt" >&2
    echo "check_report: screenshot failed" >&2
    status=1
  fi
fi
[ $status -eq 0 ] && echo "check_report: $report: ok (table rendered, no console messages)"
exit $status
