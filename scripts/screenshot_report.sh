#!/usr/bin/env bash
# Render a certificate report in headless Chromium and keep a screenshot under docs/.
#
#   scripts/screenshot_report.sh [OUT_DIR]        (PYTHON=... to choose the interpreter)
#
# Trains a small ReLU network on a built-in data set, certifies the KKT point and a neuron
# split of it, checks both certificates exactly, writes the report (with the training curves
# and the embedding deviation along gradient descent) and screenshots report.html into
# docs/report_screenshot.png.  Needs chromium (or chromium-browser / google-chrome) on PATH.
set -euo pipefail
HERE="$(cd "$(dirname "$0")/.." && pwd)"
OUT="${1:-${TMPDIR:-/tmp}/verifier-report-demo}"
PY="${PYTHON:-python3}"
mkdir -p "$OUT" "$HERE/docs"

"$PY" -c 'import sys; from verifier.report.demo import run_demo; run_demo(sys.argv[1])' "$OUT"

BROWSER=""
for b in chromium chromium-browser google-chrome; do
  if command -v "$b" >/dev/null 2>&1; then BROWSER="$b"; break; fi
done
if [ -z "$BROWSER" ]; then
  echo "no chromium on PATH: the report is in $OUT/report/report.html (no screenshot taken)" >&2
  exit 3
fi
"$BROWSER" --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=1100,2600 \
  --screenshot="$HERE/docs/report_screenshot.png" "file://$OUT/report/report.html" 2>/dev/null
echo "screenshot: $HERE/docs/report_screenshot.png"
