#!/usr/bin/env bash
# How far one generator process and one mock server go on this machine.
# Builds the release binary, then for each load point starts
# `xiaozhi-fleet mock-server` and `xiaozhi-fleet run` as two processes on
# loopback (pinned to two different cores with --pin) and prints one row:
#
#   devices, speakers, frames/s up and down (run mean), generator CPU in
#   cores (after the ramp) and per frame (whole run), generator RSS and RSS
#   per device (above a one-device fleet), send lag p50/p99/max after the
#   ramp, mock CPU in cores and peak RSS, failures (failed turns + failed
#   connections), and the generator's verdict (ok, or INVALID and why).
#
# Load points: 100, 1000, 3000, 5000 speakers talking back to back (no
# think time, no mock service delays, every stt checked against the clip's
# words), then 1000, 10000, 20000 idle devices (connected, silent); then
# the same over MQTT + UDP (the mock's OTA answers `mqtt`, its gateway
# carries the turns): 1000 and 3000 speakers, 10000 idle devices. About
# 5 minutes after the build. Options: --pin, speakers=N,N..., idle=N,N...,
# mqtt_speakers=N,N..., mqtt_idle=N,N... (empty: none), hold=SECONDS
# (measure window, default 15).
#
#   scripts/bench.sh                  # every load point, processes unpinned
#   scripts/bench.sh --pin            # generator on CPU 0, mock on CPU 1, one thread each
#   scripts/bench.sh --pin speakers=3000,4000 idle=20000
#   scripts/bench.sh speakers= idle= mqtt_speakers=1000 mqtt_idle=2000   # MQTT only
#
# CPU figures are only worth something on an otherwise idle machine: the
# load average is printed first (prefer < 0.5). Memory figures hold anyway.
set -euo pipefail
cd "$(dirname "$0")/.."

pin=0
speakers=(100 1000 3000 5000)
idle=(1000 10000 20000)
mqtt_speakers=(1000 3000)
mqtt_idle=(10000)
hold=15
for arg in "$@"; do
  case "$arg" in
    --pin) pin=1 ;;
    speakers=*) IFS=, read -r -a speakers <<< "${arg#speakers=}" ;;
    idle=*) IFS=, read -r -a idle <<< "${arg#idle=}" ;;
    mqtt_speakers=*) IFS=, read -r -a mqtt_speakers <<< "${arg#mqtt_speakers=}" ;;
    mqtt_idle=*) IFS=, read -r -a mqtt_idle <<< "${arg#mqtt_idle=}" ;;
    hold=*) hold="${arg#hold=}" ;;
    -h|--help) sed -n '2,28p' "$0"; exit 0 ;;
    *) echo "unknown argument: $arg (see --help)" >&2; exit 2 ;;
  esac
done
command -v python3 > /dev/null || { echo "bench.sh needs python3 to read the JSON reports" >&2; exit 2; }

echo "building the release binary..." >&2
cargo build --release --quiet
bin=$PWD/target/release/xiaozhi-fleet
cores=$(nproc)
if [ "$pin" = 1 ] && [ "$cores" -lt 2 ]; then
  echo "--pin needs 2 cores, this machine has $cores" >&2; exit 2
fi
# One file per connection (up to three per MQTT + UDP device), on both sides; root may raise the hard limit
# (not inside every container). A point that needs more connections than a
# process may open is run at the most it may, and marked so.
ulimit -n 65536 2> /dev/null || ulimit -n "$(ulimit -Hn)"
max_conn=$(( $(ulimit -n) - 64 ))

dir=$(mktemp -d)
mock_pid=
cleanup() {
  if [ -n "$mock_pid" ]; then kill -INT "$mock_pid" 2> /dev/null || true; wait "$mock_pid" 2> /dev/null || true; fi
  rm -rf "$dir"
}
trap cleanup EXIT

cat > "$dir/speakers.toml" <<'EOF'
ramp = 2000
think_time = "0s"
seed = 1
# Every answer checked: stt must carry the clip's words (the mock's ASR).
transcript_check = 0.2
[mock]
asr_delay = "0s"
llm_delay = "0s"
tts_delay = "0s"
sentence_delay = "0s"
EOF
cat > "$dir/idle.toml" <<'EOF'
ramp = 2000
seed = 1
[[group]]
name = "idle"
idle = "silent"
turns = 0
EOF
# The same mock with its OTA answering `mqtt` (the gateway runs with it).
{ cat "$dir/speakers.toml"; echo 'ota = "mqtt"'; } > "$dir/mock-mqtt.toml"

gen_cmd=("$bin" run)
mock_cmd=("$bin" mock-server)
if [ "$pin" = 1 ]; then
  gen_cmd=(taskset -c 0 "$bin" run --threads 1)
  mock_cmd=(taskset -c 1 "$bin" mock-server --threads 1)
fi

# Starts the mock; sets `server` to the run's flags: --url (WebSocket) or
# --ota (MQTT + UDP: the mock's OTA answer names its gateway). $1: ws|mqtt.
start_mock() {
  local via=${1:-ws} config=$dir/speakers.toml pattern='ws://[^ ]*' found=
  if [ "$via" = mqtt ]; then config=$dir/mock-mqtt.toml; pattern='http://[^ ]*'; fi
  : > "$dir/mock.err"
  "${mock_cmd[@]}" --listen 127.0.0.1:0 --config "$config" 2> "$dir/mock.err" &
  mock_pid=$!
  for _ in $(seq 1 100); do
    found=$(grep -o "$pattern" "$dir/mock.err" | head -n 1 || true)
    [ -n "$found" ] && break
    sleep 0.1
  done
  [ -n "$found" ] || { echo "mock server did not start:"; cat "$dir/mock.err"; exit 1; } >&2
  if [ "$via" = mqtt ]; then server=(--ota "$found"); else server=(--url "$found"); fi
}

stop_mock() {
  kill -INT "$mock_pid" 2> /dev/null || true
  wait "$mock_pid" 2> /dev/null || true
  mock_pid=
}

# CPU ticks (utime + stime) of a process.
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# Runs one load point: $1 = kind (speakers|idle), $2 = count, $3 = ws|mqtt.
point() {
  local kind=$1 n=$2 via=${3:-ws} args note= most=$max_conn
  # An MQTT + UDP device holds its MQTT connection and its UDP socket, and
  # while the ramp overlaps boots, its OTA request's connection too.
  [ "$via" = mqtt ] && most=$(( max_conn / 3 ))
  if [ "$n" -gt "$most" ]; then
    note="(asked $n: ulimit -n is $(ulimit -n))"
    n=$most
  fi
  if [ "$kind" = speakers ]; then
    args=("$dir/speakers.toml" --speakers "$n" --duration "${hold}s")
  else
    # The ramp (n / 2000 per second) plus the hold.
    args=("$dir/idle.toml" --devices "$n" --duration "$(( n / 2000 + hold ))s")
  fi
  start_mock "$via"
  local m0 t0 m1 t1 peak
  m0=$(ticks "$mock_pid"); t0=$(date +%s.%N)
  "${gen_cmd[@]}" "${args[@]}" "${server[@]}" -q --report "$dir/r.json" > /dev/null 2> "$dir/run.err" || true
  m1=$(ticks "$mock_pid"); t1=$(date +%s.%N)
  peak=$(awk '/VmHWM/ {print $2}' "/proc/$mock_pid/status")
  stop_mock
  if [ ! -s "$dir/r.json" ]; then
    echo "$kind $n: the run wrote no report:" >&2; tail -5 "$dir/run.err" >&2; return
  fi
  local base=${bases["$kind-$via"]}
  python3 - "$dir/r.json" "$kind" "$n" "$m0" "$m1" "$t0" "$t1" "$peak" "$base" "$note" "$via" <<'PY'
import json, sys
path, kind, n, m0, m1, t0, t1, peak, base, note, via = sys.argv[1:]
r = json.load(open(path)); n = int(n); g = r["generator"]; a = r["audio"]
dur = r["run"]["duration_s"] or 1
idle = kind == "idle"
# Idle devices: memory with every device connected (end of the ramp);
# speakers: the peak.
rss = g["ramp"]["rss_mb"] if idle and g["ramp"]["finished"] else g["rss_peak_mb"]
per = (rss - float(base)) * 1024 / n
lag = g["send_lag_ms"]
mock_cores = (float(m1) - float(m0)) / 100 / (float(t1) - float(t0))
fails = r["turns"]["failed"] + sum(r["connections"]["failed"].values())
verdict = "ok" if g["valid"] else "INVALID: " + "; ".join(g["invalid_reasons"])[:90]
if not g["ramp"]["finished"]:
    verdict += " (ramp unfinished)"
lags = f'{lag["p50"]:.1f}/{lag["p99"]:.1f}/{lag["max"]:.1f}' if lag["count"] else "-"
# The generator's CPU over the whole run (ramp + after) per frame it sent or received.
ramp = g["ramp"]
cpu_s = (ramp["cpu_percent"] * ramp["duration_s"] + g["cpu_percent"] * max(dur - ramp["duration_s"], 0)) / 100
frames = a["frames_sent"] + a["frames_received"]
per_frame = f'{cpu_s / frames * 1e6:.1f}' if frames else "-"
print(f'{via:>4} {n:>7} {0 if idle else n:>8} {a["frames_sent"]/dur:>9.0f} {a["frames_received"]/dur:>9.0f} '
      f'{g["cpu_percent"]/100:>6.2f} {per_frame:>6} {rss:>7.1f} {per:>7.1f} {lags:>15} {mock_cores:>6.2f} '
      f'{int(peak)/1024:>7.1f} {fails:>6}  {verdict} {note}'.rstrip())
sys.stdout.flush()
PY
}

load=$(cut -d' ' -f1-3 /proc/loadavg)
echo "machine: $cores cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), load average $load$([ "$pin" = 1 ] && echo ', generator on CPU 0, mock on CPU 1')"
if awk -v l="${load%% *}" 'BEGIN { exit !(l > 0.5) }'; then
  echo "warning: load average ${load%% *} > 0.5: other work shares these cores, CPU and send-lag figures are unreliable (memory is not)"
fi

# The memory of a one-device fleet of each kind: what the per-device
# figures are measured above (the collector's histograms, clips, runtime).
# $1: the figure (a Python expression on the report's `generator` g).
base() {
  local expr=$1 via=$2
  shift 2
  start_mock "$via"
  "${gen_cmd[@]}" "$@" "${server[@]}" -q --report "$dir/base.json" > /dev/null 2>&1 || true
  stop_mock
  python3 -c "import json, sys; g = json.load(open(sys.argv[1]))['generator']; print($expr)" "$dir/base.json"
}
declare -A bases
for via in ws mqtt; do
  bases[idle-$via]=$(base "g['ramp']['rss_mb'] or g['rss_mb']" "$via" "$dir/idle.toml" --devices 1 --duration 2s)
  bases[speakers-$via]=$(base "g['rss_peak_mb']" "$via" "$dir/speakers.toml" --speakers 1 --duration 3s)
done

printf '%4s %7s %8s %9s %9s %6s %6s %7s %7s %15s %6s %7s %6s  %s\n' \
  via devices speakers "up/s" "down/s" "cores" "us/fr" "RSS MB" "KiB/dev" "lag p50/p99/max" "mock" "mockMB" fails verdict
for n in "${speakers[@]}"; do point speakers "$n"; done
for n in "${idle[@]}"; do point idle "$n"; done
for n in "${mqtt_speakers[@]}"; do point speakers "$n" mqtt; done
for n in "${mqtt_idle[@]}"; do point idle "$n" mqtt; done
echo "(via: ws = WebSocket (--url), mqtt = MQTT + UDP through the mock's gateway (--ota); cores: CPU after the ramp; us/fr: generator CPU per frame sent or received over the whole run; RSS: idle devices all connected, speakers at the peak; KiB/dev: above a one-device fleet of the same transport (idle ${bases[idle-ws]}/${bases[idle-mqtt]} MB, speakers ${bases[speakers-ws]}/${bases[speakers-mqtt]} MB, ws/mqtt); up/down: frames per second over the whole run; lag: ms, after the ramp)"
