#!/usr/bin/env bash
# Renders an HTML report (or any page, e.g. the live dashboard's URL) to a
# PNG with headless Chromium (Debian's `chromium`).
#
#   scripts/render-report.sh r.html out.png [WIDTH [HEIGHT]]
#   scripts/render-report.sh http://127.0.0.1:8089/ dashboard.png 1100 900
#
# The page is given WAIT_MS (default 3000) of time before the shot, so a
# live page has received a few updates.
set -euo pipefail
if [ $# -lt 2 ]; then
  echo "usage: $0 REPORT.html|URL OUT.png [WIDTH [HEIGHT]]" >&2
  exit 2
fi
src=$1
out=$2
width=${3:-1000}
height=${4:-3200}
browser=${CHROMIUM:-$(command -v chromium || command -v chromium-browser || true)}
if [ -z "$browser" ]; then
  echo "error: chromium not found (apt-get install chromium, or set CHROMIUM=/path/to/chrome)" >&2
  exit 2
fi
case $src in
  http://*|https://*|file://*) url=$src ;;
  *)
    [ -f "$src" ] || { echo "error: $src: no such file" >&2; exit 2; }
    url="file://$(cd "$(dirname "$src")" && pwd)/$(basename "$src")"
    ;;
esac
case $out in /*) ;; *) out="$PWD/$out" ;; esac
profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
"$browser" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
  --disable-background-networking --disable-component-update --disable-sync \
  --hide-scrollbars --user-data-dir="$profile" --window-size="$width,$height" \
  --timeout="${WAIT_MS:-3000}" --screenshot="$out" "$url" >/dev/null 2>"$profile/stderr" || {
  cat "$profile/stderr" >&2
  exit 1
}
[ -s "$out" ] || { echo "error: chromium wrote no screenshot" >&2; cat "$profile/stderr" >&2; exit 1; }
echo "$out"
