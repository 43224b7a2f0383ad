#!/usr/bin/env bash
# Render an HTML file (an `slt energy --report` page, for example) to a PNG with headless
# Chromium, offline, so a person (or a review) can look at it without a browser:
#
#     tools/render_html.sh report.html report.png [WIDTHxHEIGHT]     (default 1200x2000)
#
# Needs Debian's chromium (apt-get install -y chromium); nothing is fetched from the network.
set -euo pipefail
[[ $# -ge 2 ]] || { echo "usage: $0 IN.html OUT.png [WIDTHxHEIGHT]" >&2; exit 2; }
IN="$(realpath "$1")"
OUT="$(realpath -m "$2")"
SIZE="${3:-1200x2000}"
BROWSER="$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)"
[[ -n "$BROWSER" ]] || { echo "$0: chromium not found (apt-get install -y chromium)" >&2; exit 3; }
PROFILE_DIR="$(mktemp -d)"
trap 'rm -rf "$PROFILE_DIR"' EXIT
"$BROWSER" --headless --no-sandbox --disable-gpu --no-first-run --disable-background-networking \
    --disable-component-update --disable-sync --hide-scrollbars --user-data-dir="$PROFILE_DIR" \
    --screenshot="$OUT" --window-size="${SIZE/x/,}" "file://$IN" >/dev/null 2>&1
[[ -s "$OUT" ]] || { echo "$0: chromium wrote no screenshot" >&2; exit 1; }
echo "$OUT"
