#!/usr/bin/env bash
# DORA/s of tandemd against the number of leases already bound in its table: tandemd (XDP
# datapath, one worker, durability $DURABILITY) with a pool of $POOL addresses; for each
# fill level in $FILLS, tandem-loadgen binds that many clients (closed loop, unpaced), then
# measures $RATE DORA/s of new clients for $PERIOD s.
#
# Run as root from the repository root:  bash bench/load/table-size.sh
# Environment: FILLS ("0 100000 1000000"), RATE (5000), PERIOD (5), DURABILITY (sync),
# SERVER_CPU (1), CLIENT_CPU (0), OUT (bench/results/table-size.tsv), TANDEMD / LOADGEN.
# Namespaces lg-ts-srv / lg-ts-cli, torn down on exit; every wait bounded; pids only.
set -euo pipefail
cd "$(dirname "$0")/../.."
. bench/load/testbed.sh

FILLS=${FILLS:-"0 100000 1000000"}
RATE=${RATE:-5000}
PERIOD=${PERIOD:-5}
DURABILITY=${DURABILITY:-sync}
SERVER_CPU=${SERVER_CPU:-1}
CLIENT_CPU=${CLIENT_CPU:-0}
OUT=${OUT:-bench/results/table-size.tsv}
NS_S=lg-ts-srv
NS_C=lg-ts-cli
# 10.96.0.0/12: 1,048,576 addresses, pool 10.96.0.10-10.111.255.250.
POOL_FIRST=10.96.0.10
POOL_LAST=10.111.255.250

tb_require table-size.sh
T="${CARGO_TARGET_DIR:-target}/release"
if [ -z "${TANDEMD:-}" ] || [ -z "${LOADGEN:-}" ]; then
  cargo build --release --locked -p control --bin tandemd >&2
  cargo build --release --locked -p bench --bin tandem-loadgen >&2
fi
TANDEMD=$(realpath "${TANDEMD:-$T/tandemd}")
LOADGEN=$(realpath "${LOADGEN:-$T/tandem-loadgen}")
WORK=$(mktemp -d /var/tmp/lg-ts.XXXXXX)

SERVER_PID=
cleanup() {
  tb_stop_pid "$SERVER_PID" 100
  tb_del_ns "$NS_S" "$NS_C"
  rm -rf "$WORK/data"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
cleanup
tb_veth "$NS_S" lg-ts-s 10.96.0.1/12 "$NS_C" lg-ts-c 10.96.0.2/12

printf 'fill\tbound_before\toffered\tstarted\tcompleted_per_s\tdrop_pct\tdora_p50_ms\tdora_p99_ms\tdora_p999_ms\n' >"$OUT"
lg() { # extra loadgen args...
  timeout 600 ip netns exec "$NS_C" taskset -c "$CLIENT_CPU" "$LOADGEN" --iface lg-ts-c --giaddr 10.96.0.2 \
    --cpus "$CLIENT_CPU" --queues 1 --quiet "$@"
}
num() { sed -n "s/.*\"$2\":\([0-9.]*\).*/\1/p" "$1" | tail -1; }
for fill in $FILLS; do
  rm -rf "$WORK/data"
  cat >"$WORK/tandemd.toml" <<EOF
[server]
interfaces = ["lg-ts-s"]
server_id = "10.96.0.1"
data_dir = "$WORK/data"
datapath = "xdp"
workers = 1
durability = "$DURABILITY"
log_level = "warn"

[[subnet]]
prefix = "10.96.0.0/12"
pools = ["$POOL_FIRST-$POOL_LAST"]
lease_time = "10h"
EOF
  ip netns exec "$NS_S" taskset -c "$SERVER_CPU" "$TANDEMD" --config "$WORK/tandemd.toml" >"$WORK/server-$fill.log" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 600); do [ -S "$WORK/data/tandemd.sock" ] && break; sleep 0.1; done
  [ -S "$WORK/data/tandemd.sock" ] || { echo "tandemd did not start" >&2; cat "$WORK/server-$fill.log" >&2; exit 1; }
  bound=0
  if [ "$fill" -gt 0 ]; then
    # Bind $fill clients (numbered 0..fill): closed loop, 512 in flight, at most 300 s.
    t0=$(date +%s)
    lg --rate 0 --outstanding 512 --exchanges "$fill" --duration 300 --clients "$fill" --label fill \
      >"$WORK/fill-$fill.json" 2>"$WORK/fill-$fill.err" || true
    bound=$(num "$WORK/fill-$fill.json" completed)
    echo "[ts] fill $fill: $bound exchanges completed in $(( $(date +%s) - t0 )) s" >&2
  fi
  out="$WORK/measure-$fill.json"
  # New clients, numbered past the bound ones.
  lg --rate "$RATE" --duration "$PERIOD" --first-client 100000000 --label "fill-$fill" >"$out" 2>"$WORK/measure-$fill.err" || true
  ms() { awk -v x="$1" 'BEGIN { if (x == "") print "-"; else printf "%.3f", x / 1000 }'; }
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$fill" "$bound" "$RATE" "$(num "$out" started)" \
    "$(num "$out" completed_per_s)" "$(num "$out" drop_pct)" "$(ms "$(num "$out" dora_p50_us)")" \
    "$(ms "$(num "$out" dora_p99_us)")" "$(ms "$(num "$out" dora_p999_us)")" >>"$OUT"
  tail -1 "$OUT" >&2
  tb_stop_pid "$SERVER_PID" 100
  SERVER_PID=
done
cat "$OUT"
