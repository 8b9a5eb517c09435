#!/usr/bin/env bash
# Measures the load generator itself: how many concurrent speakers one
# process keeps at real-time pace, CPU per speaker, memory per device, and
# send lag. The mock server runs as a separate process (on loopback) so the
# generator's figures are its own. Prints one line per fleet size.
#
#   scripts/bench-generator.sh            # 50 100 200 400 speakers, 20 s each
#   scripts/bench-generator.sh 100 800    # other sizes
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
bin=target/release/xiaozhi-fleet
if [ $# -gt 0 ]; then sizes=("$@"); else sizes=(50 100 200 400); fi
dir=$(mktemp -d)
printf 'ramp = 100\nthink_time = "1s"\nseed = 1\n' > "$dir/bench.toml"
trap 'kill "${mock_pid:-}" 2>/dev/null || true; rm -rf "$dir"' EXIT
$bin mock-server --listen 127.0.0.1:0 2> "$dir/mock.err" &
mock_pid=$!
for _ in $(seq 1 100); do
  url=$(grep -o 'ws://[^ ]*' "$dir/mock.err" | head -n 1 || true)
  [ -n "$url" ] && break
  sleep 0.1
done
[ -n "$url" ] || { echo "mock server did not start" >&2; exit 1; }
cores=$(nproc)
printf '%-9s %-10s %-13s %-14s %-12s %-12s %s\n' speakers turns "cpu (cores)" "cpu/speaker" "rss MB" "MB/device" "send lag p50/p99 ms"
for n in "${sizes[@]}"; do
  $bin run "$dir/bench.toml" --url "$url" --speakers "$n" --duration 20s -q --report "$dir/r.json" > /dev/null 2> "$dir/run.err" || { echo "run failed:"; tail -3 "$dir/run.err"; }
  python3 - "$dir/r.json" "$n" "$cores" <<'PY'
import json, sys
r = json.load(open(sys.argv[1])); n = int(sys.argv[2])
g = r["generator"]; lag = g["send_lag_ms"]
cores = g["cpu_percent"] / 100
print(f"{n:<9} {r['turns']['completed']:<10} {cores:<13.2f} {cores / n * 1000:<14.2f} {g['rss_mb']:<12.1f} {g['rss_mb'] / n:<12.3f} {lag['p50']:.1f} / {lag['p99']:.1f}"
      + ("" if g["valid"] else "   INVALID: " + "; ".join(g["invalid_reasons"])))
PY
done
echo "(cpu/speaker in milli-cores; the generator includes the playback model and metrics; $cores cores on this machine)"
