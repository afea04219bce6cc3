#!/usr/bin/env bash
# Legitimate clients' service under a hostile-client DHCPDISCOVER flood: tandemd on the XDP
# datapath with the default rate limits, legitimate DORA load at a fixed rate, and beside it a
# flood of DISCOVERs (never followed by a REQUEST) at multiples of that rate, in three shapes.
#
# Run as root from the repository root:  bash bench/load/flood.sh      (~4 min)
# Plot:  /usr/bin/python3 bench/load/flood_plot.py bench/results/flood/flood.tsv   (flood.png beside it)
#
# Two namespaces joined by a veth (one rx queue): tdmfl-srv-PID (10.100.0.1/14, tandemd pinned
# to CPU $SERVER_CPU) and tdmfl-cli-PID (10.100.0.2/14, tandem-loadgen pinned to $CLIENT_CPU).
# tandemd: release build, `datapath = "xdp"`, `workers = 1`, durability sync, pool
# 10.100.0.10-10.103.255.250 (262,129 addresses, more than a point's flood can hold with
# offers at the top multiple), the default rate limits written out (`mac_rate` 5/s burst 20,
# `circuit_rate` 20/s burst 100, `relay_rate` off unless $RELAY_RATE), fresh with an empty store
# for every point.
# Legitimate load: tandem-loadgen relaying from 10.100.0.2 (option 82, a circuit-id per client),
# $RATE DORA/s for $PERIOD s, 1 s timeout. The flood (`--flood-rate RATE*M --flood-shape S`):
#   circuit  relayed through the same relay (10.100.0.2) with one fixed circuit-id and a random
#            chaddr per packet: one abusive subscriber port beside the legitimate ones
#   direct   not relayed, a random chaddr per packet
#   mac      not relayed, one fixed chaddr
# Multiple 0 (no flood) is measured once, as shape "none": the unloaded baseline that
# completion_ratio divides by. After each point, `tandemctl status --json` gives the XDP
# program's verdicts (xdp[]: pass, redirect, rate_*; the rate_* are 0 before the XDP limiter)
# and the worker's counters (rx, tx, drops by reason).
#
# Environment: SHAPES ("circuit direct mac"), MULTIPLES ("0 1 2 5 10 20"), RATE (1000),
# PERIOD (10), SERVER_CPU (1), CLIENT_CPU (0), RELAY_RATE (unset: off; else `relay_rate` and
# `relay_burst` = 4x for every point), OUT (bench/results/flood: flood.tsv, machine.txt),
# WORK (a new directory under /var/tmp, kept: every server log, loadgen JSON and status),
# TANDEMD / TANDEMCTL / LOADGEN (built binaries; by default cargo build --release in
# $CARGO_TARGET_DIR or target/). Every wait is bounded, processes are ended by pid, the
# namespaces are deleted on exit.
set -euo pipefail
cd "$(dirname "$0")/../.."
. bench/load/testbed.sh

SHAPES=${SHAPES:-"circuit direct mac"}
MULTIPLES=${MULTIPLES:-"0 1 2 5 10 20"}
RATE=${RATE:-1000}
PERIOD=${PERIOD:-10}
SERVER_CPU=${SERVER_CPU:-1}
CLIENT_CPU=${CLIENT_CPU:-0}
RELAY_RATE=${RELAY_RATE:-}
OUT=${OUT:-bench/results/flood}
NS_S=tdmfl-srv-$$
NS_C=tdmfl-cli-$$
IF_S=tdmfl-s
IF_C=tdmfl-c

tb_require flood.sh ip taskset timeout jq awk
for s in $SHAPES; do
  case "$s" in circuit | direct | mac) ;; *) echo "flood.sh: unknown shape $s" >&2; exit 2 ;; esac
done
for m in $MULTIPLES; do
  [[ "$m" =~ ^[0-9]+$ ]] && [ "$m" -le 100 ] || { echo "flood.sh: multiple $m: 0..100" >&2; exit 2; }
done
[ "$PERIOD" -le 60 ] || { echo "flood.sh: PERIOD is at most 60 s" >&2; exit 2; }

T="${CARGO_TARGET_DIR:-target}/release"
if [ -z "${TANDEMD:-}" ] || [ -z "${LOADGEN:-}" ] || [ -z "${TANDEMCTL:-}" ]; then
  echo "[flood] building tandemd, tandemctl, tandem-loadgen (release)" >&2
  cargo build --release --locked -p control --bin tandemd --bin tandemctl >&2
  cargo build --release --locked -p bench --bin tandem-loadgen >&2
fi
TANDEMD=$(realpath "${TANDEMD:-$T/tandemd}")
TANDEMCTL=$(realpath "${TANDEMCTL:-$T/tandemctl}")
LOADGEN=$(realpath "${LOADGEN:-$T/tandem-loadgen}")
WORK=${WORK:-$(mktemp -d /var/tmp/tdmfl.XXXXXX)}
mkdir -p "$WORK" "$OUT"
WORK=$(realpath "$WORK")

SERVER_PID=
cleanup() {
  tb_stop_server
  tb_del_ns "$NS_S" "$NS_C"
  rm -rf "$WORK"/*/data
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Leftovers of a run that died.
for ns in $(ip netns list | grep -oE '^tdmfl-(srv|cli)-[0-9]+'); do
  kill -0 "${ns##*-}" 2>/dev/null || tb_del_ns "$ns"
done
tb_veth "$NS_S" "$IF_S" 10.100.0.1/14 "$NS_C" "$IF_C" 10.100.0.2/14

relay_lines=
[ -n "$RELAY_RATE" ] && relay_lines="relay_rate = $RELAY_RATE
relay_burst = $((RELAY_RATE * 4))"

# tandemd starts as a direct child (`ip netns exec` and `taskset` exec into it): $! is its pid.
start_tandem() { # $1: run directory
  local d=$1
  cat >"$d/tandemd.toml" <<CONF
[server]
interfaces = ["$IF_S"]
server_id = "10.100.0.1"
data_dir = "$d/data"
datapath = "xdp"
workers = 1
durability = "sync"
log_level = "warn"
mac_rate = 5
mac_burst = 20
circuit_rate = 20
circuit_burst = 100
$relay_lines

[[subnet]]
prefix = "10.100.0.0/14"
pools = ["10.100.0.10-10.103.255.250"]
router = ["10.100.0.1"]
lease_time = "1h"
CONF
  tb_start_tandemd "$d"
}

num() { jq -r ".$2 // 0" "$1"; }
# The XDP verdicts summed over interfaces, the worker counters over workers, from status JSON.
xdp_sum() { jq -r "[.xdp[]?.$2 // 0] | add // 0" "$1"; }
worker_sum() { jq -r "[.workers[].$2 // 0] | add // 0" "$1"; }
worker_drop() { jq -r "[.workers[].dropped[\"$2\"] // 0] | add // 0" "$1"; }
# Every other drop reason, as reason=n,... ("-" when none).
worker_drops_other() {
  jq -r '[.workers[].dropped | to_entries[] | select(.value > 0)
          | select(.key | startswith("rate-") | not)]
         | group_by(.key) | map("\(.[0].key)=\(map(.value) | add)") | join(",")
         | if . == "" then "-" else . end' "$1"
}
worker_silent() {
  jq -r '[.workers[].silent // {} | to_entries[] | select(.value > 0)]
         | group_by(.key) | map("\(.[0].key)=\(map(.value) | add)") | join(",")
         | if . == "" then "-" else . end' "$1"
}

TSV="$OUT/flood.tsv"
cols=(shape multiple legit_rate flood_rate flood_sent_per_s flood_offers legit_started
  legit_completed_per_s completion_ratio legit_drop_pct dora_p50_ms dora_p99_ms
  generator_rx_dropped xdp_pass xdp_redirect xdp_rate_mac xdp_rate_circuit xdp_rate_relay
  worker_rx worker_tx worker_rate_mac worker_rate_circuit worker_rate_relay worker_drops_other
  worker_silent load1)
(IFS=$'\t'; echo "${cols[*]}") >"$TSV"
LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
BASE=

point() { # $1: shape ("none" for no flood), $2: multiple
  local shape=$1 m=$2 d="$WORK/$1-x$2" flood_rate=$(($2 * RATE)) lg st ratio
  rm -rf "$d"; mkdir -p "$d"
  start_tandem "$d"
  local flood_args=()
  [ "$shape" = none ] || flood_args=(--flood-rate "$flood_rate" --flood-shape "$shape")
  lg="$d/loadgen.json"
  timeout $((PERIOD + 30)) ip netns exec "$NS_C" taskset -c "$CLIENT_CPU" "$LOADGEN" \
    --iface "$IF_C" --giaddr 10.100.0.2 --rate "$RATE" --duration "$PERIOD" --cpus "$CLIENT_CPU" \
    --queues 1 --label "$shape-x$m" "${flood_args[@]}" >"$lg" 2>"$d/loadgen.err" || true
  st="$d/status.json"
  timeout 10 "$TANDEMCTL" --data-dir "$d/data" status --json >"$st" 2>"$d/status.err" || echo '{}' >"$st"
  tb_stop_server
  rm -rf "$d/data" # the 262k-address table: ~80 MB a point
  if [ ! -s "$lg" ]; then
    echo "flood.sh: $shape x$m: tandem-loadgen wrote no result:" >&2; cat "$d/loadgen.err" >&2; exit 1
  fi
  local per_s; per_s=$(num "$lg" completed_per_s)
  [ "$shape" = none ] && BASE=$per_s
  if [ -n "$BASE" ]; then
    ratio=$(awk -v a="$per_s" -v b="$BASE" 'BEGIN { if (b > 0) printf "%.4f", a / b; else print "-" }')
  else
    ratio=-
  fi
  local ms='function ms(x) { return sprintf("%.3f", x / 1000) }'
  local row=("$shape" "$m" "$RATE" "$flood_rate" "$(num "$lg" flood_sent_per_s)"
    "$(num "$lg" flood_replies)" "$(num "$lg" started)" "$per_s" "$ratio" "$(num "$lg" drop_pct)"
    "$(awk "$ms BEGIN { print ms($(num "$lg" dora_p50_us)) }")"
    "$(awk "$ms BEGIN { print ms($(num "$lg" dora_p99_us)) }")"
    "$(num "$lg" generator_rx_dropped)"
    "$(xdp_sum "$st" pass)" "$(xdp_sum "$st" redirect)" "$(xdp_sum "$st" rate_mac)"
    "$(xdp_sum "$st" rate_circuit)" "$(xdp_sum "$st" rate_relay)"
    "$(worker_sum "$st" rx)" "$(worker_sum "$st" tx)" "$(worker_drop "$st" rate-mac)"
    "$(worker_drop "$st" rate-circuit)" "$(worker_drop "$st" rate-relay)"
    "$(worker_drops_other "$st")" "$(worker_silent "$st")" "$(cut -d' ' -f1 /proc/loadavg)")
  (IFS=$'\t'; echo "${row[*]}") >>"$TSV"
  printf '[flood] %-7s x%-3s flood %6s/s (sent %8s/s): legit %7s DORA/s, ratio %6s, drop %6s %%, p99 %7s ms | xdp redirect %7s rate mac/circuit/relay %s/%s/%s | worker rx %7s rate mac/circuit/relay %s/%s/%s other %s | load %s\n' \
    "$shape" "$m" "$flood_rate" "${row[4]}" "$per_s" "$ratio" "${row[9]}" "${row[11]}" \
    "${row[14]}" "${row[15]}" "${row[16]}" "${row[17]}" "${row[18]}" "${row[20]}" "${row[21]}" \
    "${row[22]}" "${row[23]}" "${row[25]}" >&2
}

t0=$(date +%s)
for m in $MULTIPLES; do [ "$m" -eq 0 ] && point none 0; done
for shape in $SHAPES; do
  for m in $MULTIPLES; do
    [ "$m" -eq 0 ] || point "$shape" "$m"
  done
done

{
  echo "date: $(date -u '+%Y-%m-%d %H:%M UTC'), $(($(date +%s) - t0)) s"
  echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet 2>/dev/null || echo ' (with uncommitted changes)')"
  echo "machine: $(nproc) CPUs, kernel $(uname -r), load average at start $LOAD0, at end $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "tandemd on CPU $SERVER_CPU (xdp, workers 1, durability sync), tandem-loadgen on CPU $CLIENT_CPU"
  echo "legitimate load $RATE DORA/s relayed (10.100.0.2), ${PERIOD} s per point; multiples: $MULTIPLES; shapes: $SHAPES"
  echo "rate limits: mac_rate 5 burst 20, circuit_rate 20 burst 100, relay_rate ${RELAY_RATE:-off}"
} >"$OUT/machine.txt"
cat "$OUT/machine.txt" >&2
echo "table: $TSV; logs, loadgen JSON and status per point: $WORK" >&2
