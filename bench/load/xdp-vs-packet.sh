#!/usr/bin/env bash
# DORA/s of tandemd on the XDP (AF_XDP) datapath against the packet (AF_PACKET) datapath under
# the same perfdhcp load on the same core, and their ratio.
#
# Run as root from the repository root:   sudo bash bench/load/xdp-vs-packet.sh
#
# Two network namespaces joined by a veth: tdm-xvp-srv (10.100.0.1/14, tandemd pinned with
# taskset to CPU $SERVER_CPU, so all its threads and its worker run there) and tdm-xvp-cli
# (10.100.0.2/14, perfdhcp pinned to CPU $CLIENT_CPU). perfdhcp -4 acts as a relay agent
# (giaddr 10.100.0.2). Each cell is one run of $PERIOD s at an offered rate on a freshly started
# tandemd with an empty lease store: release build, durability $TANDEM_DURABILITY, `workers = 1`
# (the veth has one rx queue, so XDP opens one AF_XDP socket: one worker either way), pool
# 10.100.0.10-10.103.255.250 (262,129 addresses).
# perfdhcp: -r RATE -p PERIOD -R 1000000 -W 1000000. Completed exchanges/s = REQUEST-ACK
# received / PERIOD; drop % = DISCOVERs sent that got no ACK.
#
# A mode is a datapath name ("packet", "xdp") optionally followed by "-TAG"; the [server] lines
# in MODE_EXTRA_<mode with - as _> are added to its config, replacing `workers = 1` if they set
# workers. Software dispatch against none, on the veth's single queue:
#   MODES="xdp-w2off xdp-w2" MODE_EXTRA_xdp_w2off=$'workers = 2\ndispatch = "off"' \
#   MODE_EXTRA_xdp_w2='workers = 2' SERVER_CPU=0,1 sudo -E bash bench/load/xdp-vs-packet.sh
# The first mode is the ratios' denominator.
#
# Environment: RATES ("5000 10000 20000 40000"), PERIOD (10), MODES ("packet xdp"),
# SERVER_CPU (1), CLIENT_CPU (0), TANDEM_DURABILITY (sync), WORK (a new directory under
# /var/tmp, kept: every perfdhcp output and server log), RESULTS
# (bench/results/xdp-vs-packet.tsv), TANDEMD (a built binary; by default `cargo build --release
# -p control --bin tandemd` in $CARGO_TARGET_DIR or target/). Every wait is bounded; the
# namespaces are deleted and tandemd ended (by pid) on exit.
set -euo pipefail
cd "$(dirname "$0")/../.."
. bench/load/testbed.sh

RATES=${RATES:-"5000 10000 20000 40000"}
PERIOD=${PERIOD:-10}
MODES=${MODES:-"packet xdp"}
SERVER_CPU=${SERVER_CPU:-1}
CLIENT_CPU=${CLIENT_CPU:-0}
TANDEM_DURABILITY=${TANDEM_DURABILITY:-sync}
RESULTS=${RESULTS:-bench/results/xdp-vs-packet.tsv}
NS_S=tdm-xvp-srv
NS_C=tdm-xvp-cli
IF_S=tdm-xvp-s
IF_C=tdm-xvp-c

tb_require xdp-vs-packet.sh ip taskset timeout perfdhcp

if [ -z "${TANDEMD:-}" ]; then
  cargo build --release --locked -p control --bin tandemd >&2
  TANDEMD="${CARGO_TARGET_DIR:-target}/release/tandemd"
fi
TANDEMD=$(realpath "$TANDEMD")
WORK=${WORK:-$(mktemp -d /var/tmp/tdm-bench-xvp.XXXXXX)}
mkdir -p "$WORK" "$(dirname "$RESULTS")"
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

# tandemd starts as a direct child (`ip netns exec` and `taskset` exec into it): $! is its pid.
start_tandem() { # $1: run directory, $2: datapath, $3: extra [server] lines
  local d=$1 workers="workers = 1"
  case "$3" in *workers*) workers= ;; esac
  cat >"$d/tandemd.toml" <<CONF
[server]
interfaces = ["$IF_S"]
server_id = "10.100.0.1"
data_dir = "$d/data"
datapath = "$2"
$workers
durability = "$TANDEM_DURABILITY"
log_level = "info"
$3

[[subnet]]
prefix = "10.100.0.0/14"
pools = ["10.100.0.10-10.103.255.250"]
router = ["10.100.0.1"]
lease_time = "1h"
CONF
  tb_start_tandemd "$d"
}

mode_datapath() { echo "${1%%-*}"; }
mode_extra() { local v="MODE_EXTRA_${1//-/_}"; echo "${!v:-}"; }

section() { # $1: file, $2: DISCOVER-OFFER | REQUEST-ACK
  awk -v s="Statistics for: $2" '
    index($0, s) { on = 1; next }
    on && /^\*\*\*/ { on = 0 }
    on && /^sent packets:/ { sent = $3 }
    on && /^received packets:/ { recv = $3 }
    END { printf "%d %d\n", sent, recv }' "$1"
}

LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
printf 'mode\toffered\tdiscover_sent\tacks\tcompleted_per_s\tdrop_pct\n' >"$RESULTS"
for mode in $MODES; do
  for rate in $RATES; do
    d="$WORK/$mode-r$rate"
    rm -rf "$d"; mkdir -p "$d"
    start_tandem "$d" "$(mode_datapath "$mode")" "$(mode_extra "$mode")"
    out="$d/perfdhcp.txt"
    timeout $((PERIOD + 30)) ip netns exec "$NS_C" taskset -c "$CLIENT_CPU" \
      perfdhcp -4 -l "$IF_C" -r "$rate" -p "$PERIOD" -R 1000000 -W 1000000 >"$out" 2>&1 || true
    tb_stop_server
    if ! grep -q "datapath=\"\?$(mode_datapath "$mode")" "$d/server.log"; then
      echo "$mode: tandemd did not log serving on datapath $(mode_datapath "$mode"):" >&2
      cat "$d/server.log" >&2
      exit 1
    fi
    read -r do_sent _ < <(section "$out" DISCOVER-OFFER)
    read -r _ acks < <(section "$out" REQUEST-ACK)
    per_s=$((acks / PERIOD))
    if [ "$do_sent" -gt 0 ]; then
      drop=$(awk -v s="$do_sent" -v a="$acks" 'BEGIN { printf "%.2f", (s - a) * 100 / s }')
    else
      drop=100.00
    fi
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$mode" "$rate" "$do_sent" "$acks" "$per_s" "$drop" >>"$RESULTS"
    printf '%-16s offered %6s/s: %7s DISCOVERs, %7s ACKs, %6s completed/s, %6s %% dropped\n' \
      "$mode" "$rate" "$do_sent" "$acks" "$per_s" "$drop" >&2
  done
done

# The table: completed/s (drop %) per mode, then each other mode's ratio to the first.
first=${MODES%% *}
echo
echo "machine: $(nproc) CPUs, kernel $(uname -r), load average at start $LOAD0, at end $(cut -d' ' -f1-3 /proc/loadavg); durability $TANDEM_DURABILITY; tandemd on CPU $SERVER_CPU, perfdhcp on CPU $CLIENT_CPU; ${PERIOD} s per cell"
printf '| offered DORA/s |'
for mode in $MODES; do printf ' %s: completed/s (drop %%) |' "$mode"; done
for mode in $MODES; do [ "$mode" = "$first" ] || printf ' %s / %s |' "$mode" "$first"; done
printf '\n|---|'
for mode in $MODES; do printf -- '---|'; [ "$mode" = "$first" ] || printf -- '---|'; done
printf '\n'
best() { awk -F'\t' -v m="$1" '$1 == m && $5 > b { b = $5 } END { print b + 0 }' "$RESULTS"; }
for rate in $RATES; do
  printf '| %s |' "$rate"
  for mode in $MODES; do
    awk -F'\t' -v m="$mode" -v r="$rate" '$1 == m && $2 == r { printf " %s (%s) |", $5, $6 }' "$RESULTS"
  done
  base=$(awk -F'\t' -v m="$first" -v r="$rate" '$1 == m && $2 == r { print $5 }' "$RESULTS")
  for mode in $MODES; do
    [ "$mode" = "$first" ] && continue
    awk -F'\t' -v m="$mode" -v r="$rate" -v b="$base" \
      '$1 == m && $2 == r { if (b > 0) printf " %.2f |", $5 / b; else printf " - |" }' "$RESULTS"
  done
  printf '\n'
done
printf '| **best completed/s** |'
for mode in $MODES; do printf ' %s |' "$(best "$mode")"; done
b0=$(best "$first")
for mode in $MODES; do
  [ "$mode" = "$first" ] && continue
  awk -v a="$(best "$mode")" -v b="$b0" 'BEGIN { if (b > 0) printf " %.2f |", a / b; else printf " - |" }'
done
printf '\n\nraw perfdhcp outputs and server logs: %s; table: %s\n' "$WORK" "$RESULTS"
