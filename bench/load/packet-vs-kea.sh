#!/usr/bin/env bash
# DORA/s of tandemd (AF_PACKET datapath), kea-dhcp4 and ISC dhcpd under perfdhcp, on this machine.
#
# Run as root from the repository root:   sudo bash bench/load/packet-vs-kea.sh
#
# Two network namespaces joined by a veth: tdm-bench-srv (10.100.0.1/14, the server, pinned
# to CPU $SERVER_CPU) and tdm-bench-cli (10.100.0.2/14, perfdhcp pinned to CPU $CLIENT_CPU).
# perfdhcp -4 acts as a relay agent (giaddr 10.100.0.2), so every server serves 10.100.0.0/14.
# Each cell is one run of $PERIOD s at an offered rate on a freshly started server with an
# empty lease store:
#   tandemd   release build, datapath "packet", durability "sync", one worker (pinned), data
#             dir on $WORK's file system; pool 10.100.0.10-10.103.255.250 (262,129 addresses)
#   kea-dhcp4 memfile, persist true (CSV in $WORK), lfc-interval 0, multi-threading off; same pool
#   dhcpd     lease file in $WORK, ping-check false; range 10.100.1.0-10.100.255.255 (65,280
#             addresses: dhcpd's allocator slows down badly on larger ranges, see
#             shared/reference/performance.md §4.4)
# perfdhcp: -r RATE -p PERIOD -R 1000000 -W 1000000 (one million distinct clients; late
# replies waited for 1 s). Completed exchanges/s = REQUEST-ACK received / PERIOD; drop % =
# exchanges started (DISCOVERs sent) that got no ACK. "max@2.5%" is the highest offered rate
# of the ladder whose drop % is at most 2.5 (ISC's criterion).
#
# Environment: RATES ("2000 5000 10000 20000"), PERIOD (10), SERVERS ("tandem kea dhcpd"),
# SERVER_CPU (1), CLIENT_CPU (0), TANDEM_DURABILITY (sync; async for the page-cache-only mode), WORK (a new directory under /var/tmp; kept, it holds every
# perfdhcp output), RESULTS (bench/results/packet-vs-kea.tsv), TANDEMD (a built binary; by
# default `cargo build --release -p control --bin tandemd` in $CARGO_TARGET_DIR or target/).
# Every wait is bounded; the namespaces are deleted and the servers ended (by pid) on exit.
set -euo pipefail
cd "$(dirname "$0")/../.."
. bench/load/testbed.sh

RATES=${RATES:-"2000 5000 10000 20000"}
PERIOD=${PERIOD:-10}
SERVERS=${SERVERS:-"tandem kea dhcpd"}
SERVER_CPU=${SERVER_CPU:-1}
TANDEM_DURABILITY=${TANDEM_DURABILITY:-sync}
CLIENT_CPU=${CLIENT_CPU:-0}
RESULTS=${RESULTS:-bench/results/packet-vs-kea.tsv}
NS_S=tdm-bench-srv
NS_C=tdm-bench-cli
IF_S=tdm-bench-s
IF_C=tdm-bench-c

tb_require packet-vs-kea.sh ip taskset timeout perfdhcp kea-dhcp4 dhcpd

if [ -z "${TANDEMD:-}" ]; then
  cargo build --release --locked -p control --bin tandemd >&2
  TANDEMD="${CARGO_TARGET_DIR:-target}/release/tandemd"
fi
TANDEMD=$(realpath "$TANDEMD")
WORK=${WORK:-$(mktemp -d /var/tmp/tdm-bench-load.XXXXXX)}
mkdir -p "$WORK"
WORK=$(realpath "$WORK")

SERVER_PID=
cleanup() {
  tb_stop_server
  tb_del_ns "$NS_S" "$NS_C"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The testbed.
cleanup
tb_veth "$NS_S" "$IF_S" 10.100.0.1/14 "$NS_C" "$IF_C" 10.100.0.2/14

# Servers start as direct children (a simple command run with `&`, no function or subshell),
# so that $! is the server's own pid: `ip netns exec` and `taskset` exec into it.

start_tandem() { # $1: run directory
  local d=$1
  cat >"$d/tandemd.toml" <<EOF
[server]
interfaces = ["$IF_S"]
server_id = "10.100.0.1"
data_dir = "$d/data"
datapath = "packet"
workers = 1
durability = "$TANDEM_DURABILITY"
log_level = "warn"

[[subnet]]
prefix = "10.100.0.0/14"
pools = ["10.100.0.10-10.103.255.250"]
router = ["10.100.0.1"]
lease_time = "1h"
EOF
  tb_start_tandemd "$d"
}

start_kea() {
  local d=$1
  cat >"$d/kea.json" <<EOF
{ "Dhcp4": {
  "interfaces-config": { "interfaces": [ "$IF_S" ], "dhcp-socket-type": "raw" },
  "lease-database": { "type": "memfile", "persist": true, "name": "$d/kea-leases.csv", "lfc-interval": 0 },
  "multi-threading": { "enable-multi-threading": false },
  "valid-lifetime": 3600, "renew-timer": 1800, "rebind-timer": 3150, "authoritative": true,
  "subnet4": [ { "id": 1, "subnet": "10.100.0.0/14",
                 "pools": [ { "pool": "10.100.0.10 - 10.103.255.250" } ],
                 "option-data": [ { "name": "routers", "data": "10.100.0.1" } ] } ],
  "loggers": [ { "name": "kea-dhcp4", "output_options": [ { "output": "$d/kea.log" } ], "severity": "WARN" } ]
} }
EOF
  KEA_PIDFILE_DIR=$d KEA_LOCKFILE_DIR=$d ip netns exec "$NS_S" taskset -c "$SERVER_CPU" \
    kea-dhcp4 -c "$d/kea.json" >"$d/server.log" 2>&1 &
  SERVER_PID=$!
  sleep 2
  kill -0 "$SERVER_PID" 2>/dev/null || { echo "kea-dhcp4 did not start:" >&2; cat "$d/server.log" >&2; return 1; }
}

start_dhcpd() {
  local d=$1
  cat >"$d/dhcpd.conf" <<EOF
authoritative; default-lease-time 3600; max-lease-time 3600; ddns-update-style none;
ping-check false;
subnet 10.100.0.0 netmask 255.252.0.0 { range 10.100.1.0 10.100.255.255; option routers 10.100.0.1; }
EOF
  : >"$d/dhcpd.leases"
  ip netns exec "$NS_S" taskset -c "$SERVER_CPU" \
    dhcpd -4 -f -q -cf "$d/dhcpd.conf" -lf "$d/dhcpd.leases" -pf "$d/dhcpd.pid" "$IF_S" \
    >"$d/server.log" 2>&1 &
  SERVER_PID=$!
  sleep 2
  kill -0 "$SERVER_PID" 2>/dev/null || { echo "dhcpd did not start:" >&2; cat "$d/server.log" >&2; return 1; }
}

# "sent received" of one perfdhcp section.
section() { # $1: file, $2: DISCOVER-OFFER | REQUEST-ACK
  awk -v s="Statistics for: $2" '
    index($0, s) { on = 1; next }
    on && /^\*\*\*/ { on = 0 }
    on && /^sent packets:/ { sent = $3 }
    on && /^received packets:/ { recv = $3 }
    END { printf "%d %d\n", sent, recv }' "$1"
}

LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
printf 'server\toffered\tdiscover_sent\tacks\tcompleted_per_s\tdrop_pct\n' >"$RESULTS"
# The name in the table: tandem's durability is part of it unless it is the default.
label() {
  if [ "$1" = tandem ] && [ "$TANDEM_DURABILITY" != sync ]; then
    echo "tandem-$TANDEM_DURABILITY"
  else
    echo "$1"
  fi
}
declare -A BEST
for server in $SERVERS; do
  BEST[$server]=none
  for rate in $RATES; do
    d="$WORK/$server-r$rate"
    rm -rf "$d"; mkdir -p "$d"
    "start_$server" "$d"
    out="$d/perfdhcp.txt"
    timeout $((PERIOD + 30)) ip netns exec "$NS_C" taskset -c "$CLIENT_CPU" \
      perfdhcp -4 -l "$IF_C" -r "$rate" -p "$PERIOD" -R 1000000 -W 1000000 >"$out" 2>&1 || true
    tb_stop_server
    read -r do_sent _ < <(section "$out" DISCOVER-OFFER)
    read -r _ acks < <(section "$out" REQUEST-ACK)
    per_s=$((acks / PERIOD))
    if [ "$do_sent" -gt 0 ]; then
      drop=$(awk -v s="$do_sent" -v a="$acks" 'BEGIN { printf "%.2f", (s - a) * 100 / s }')
    else
      drop=100.00
    fi
    if awk -v x="$drop" 'BEGIN { exit !(x <= 2.5) }'; then BEST[$server]=$rate; fi
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$(label "$server")" "$rate" "$do_sent" "$acks" "$per_s" "$drop" >>"$RESULTS"
    printf '%-7s offered %6s/s: %7s DISCOVERs, %7s ACKs, %6s completed/s, %6s %% dropped\n' \
      "$server" "$rate" "$do_sent" "$acks" "$per_s" "$drop" >&2
  done
done

# The table: one row per offered rate, "completed/s (drop %)" per server.
echo
echo "machine: $(nproc) CPUs, kernel $(uname -r), load average at start $LOAD0, at end $(cut -d' ' -f1-3 /proc/loadavg); tandem durability $TANDEM_DURABILITY; server on CPU $SERVER_CPU, perfdhcp on CPU $CLIENT_CPU; ${PERIOD} s per cell"
printf '| offered DORA/s |'
for server in $SERVERS; do printf ' %s: completed/s (drop %%) |' "$(label "$server")"; done
printf '\n|---|'
for _ in $SERVERS; do printf -- '---|'; done
printf '\n'
for rate in $RATES; do
  printf '| %s |' "$rate"
  for server in $SERVERS; do
    awk -F'\t' -v s="$(label "$server")" -v r="$rate" '$1 == s && $2 == r { printf " %s (%s) |", $5, $6 }' "$RESULTS"
  done
  printf '\n'
done
printf '| **max offered at <= 2.5%% drop** |'
for server in $SERVERS; do printf ' %s |' "${BEST[$server]}"; done
printf '\n\nraw perfdhcp outputs: %s; table: %s\n' "$WORK" "$RESULTS"
