#!/usr/bin/env bash
# Side by side: tandem (XDP and AF_PACKET datapaths; failover off, and on with a tandem
# partner), kea-dhcp4 (single- and multi-threaded) and ISC dhcpd, each under perfdhcp and under
# tandem-loadgen, at a ladder of offered DORA rates, REPEATS times, with the ceiling of the
# testbed (tandem-responder: a stateless AF_XDP responder, canned OFFER/ACK, no tables) as a
# row; then the summary (highest rate with <= 2.5 % drops, goodput at saturation, latency,
# server CPU per DORA, ratios to Kea and to the ceiling of the same run) and the plots.
#
# Run as root from the repository root:
#   bash bench/load/side-by-side.sh            # the full ladder, 3 repeats (~25 min)
#   bash bench/load/side-by-side.sh --quick    # < 3 minutes: the responder, tandem-xdp and kea, 2 rates, 1 repeat
#
# Testbed (torn down on exit, even on failure): namespaces lg-srv-PID (the server, 10.100.0.1/14
# on veth lg-s) and lg-cli-PID (the generator, 10.100.0.2/14 on lg-c); for the failover rows a
# third namespace lg-peer-PID holds the partner tandemd, reached over a second veth (lg-p0 in
# lg-srv, 192.168.77.1/24 <-> lg-p1 in lg-peer, 192.168.77.2/24) that carries only the peer
# link. Identical conditions for every server: pinned to CPU $SERVER_CPU, the generator to
# $CLIENT_CPU; the same pool 10.100.0.10-10.103.255.250 (262,129 addresses), lease time 1 h,
# persistence on (tandem: durability "sync", one worker; Kea: memfile persist true, LFC off,
# MT off; dhcpd: lease file on disk, ping-check off); a fresh server and empty store per cell.
# Both generators act as relay agents (giaddr 10.100.0.2, one million distinct clients,
# 1 s drop timeout); drop % = exchanges started that got no ACK within it.
#
# Environment: RATES ("2000 5000 10000 20000 40000"), PERIOD (5 s per cell), REPEATS (3),
# SERVERS ("tandem-xdp tandem-packet tandem-xdp-failover tandem-xdp-failover-isc kea dhcpd"), GENERATORS
# ("perfdhcp loadgen"; servers also: tandem-packet-failover, kea-mt, responder), SERVER_CPU (1),
# CLIENT_CPU (0), OUT (bench/results/side-by-side),
# WORK (a new directory under /var/tmp: every raw output), PYTHON (python3), LOADGEN_ARGS
# (extra tandem-loadgen flags, e.g. --no-option82 to send what perfdhcp sends), DHCPD_RANGE
# (e.g. "10.100.1.0 10.100.255.255": a deviation from the common pool, for dhcpd's allocator
# that collapses on large ranges; say so next to its numbers), TANDEMD /
# TANDEMCTL / LOADGEN / RESPONDER (built binaries; by default cargo build --release in
# $CARGO_TARGET_DIR or target/). Server CPU per DORA: the server process's user + system time
# (/proc/PID/stat) while the generator ran, divided by the exchanges completed; on veth the
# kernel charges part of each frame's receive to the sending side, so compare it between rows
# of one run (the responder's is the floor), never as an absolute.
# HOG=1 runs a busy loop pinned to the server's CPU while the generator runs (the server
# shares its core with a CPU-bound process at the same priority; rows noted "hog").
# PROFILE=1 also profiles the server while the generator runs (perf, which slows it: keep
# profiled runs apart from measured ones): OUT/profile-SERVER-GEN-RATE-cpu.svg, the on-CPU
# flame graph (DWARF stacks at 999 Hz, every thread); -switch.svg, where its threads leave the
# CPU (every context switch, kernel and user stack: poll, futex, fdatasync...); -top.md, the
# hottest frames and threads; -syscalls.csv, system calls by thread (perf stat, tracepoints).
# Every wait is bounded; servers are ended by pid. Each cell's lease store is deleted after
# the cell (its logs and the generator's output are kept in WORK).
set -euo pipefail
cd "$(dirname "$0")/../.."
. bench/load/testbed.sh

QUICK=0
for a in "$@"; do
  case "$a" in
    --quick) QUICK=1 ;;
    -h|--help) sed -n '2,30p' "$0"; exit 0 ;;
    *) echo "side-by-side.sh: unknown argument $a" >&2; exit 2 ;;
  esac
done
if [ "$QUICK" = 1 ]; then
  RATES=${RATES:-"2000 8000"}
  PERIOD=${PERIOD:-2}
  REPEATS=${REPEATS:-1}
  SERVERS=${SERVERS:-"responder tandem-xdp kea"}
  OUT=${OUT:-${WORK:-/var/tmp}/side-by-side-quick-$$}
fi
RATES=${RATES:-"2000 5000 10000 20000 40000"}
PERIOD=${PERIOD:-5}
REPEATS=${REPEATS:-3}
SERVERS=${SERVERS:-"tandem-xdp tandem-packet tandem-xdp-failover tandem-xdp-failover-isc kea dhcpd"}
GENERATORS=${GENERATORS:-"perfdhcp loadgen"}
SERVER_CPU=${SERVER_CPU:-$([ "$(nproc)" -ge 2 ] && echo 1 || echo 0)}
CLIENT_CPU=${CLIENT_CPU:-0}
OUT=${OUT:-bench/results/side-by-side}
LOADGEN_ARGS=${LOADGEN_ARGS:-}
DHCPD_RANGE=${DHCPD_RANGE:-}
PYTHON=${PYTHON:-python3}
# Namespaces named by this run's pid, so that two runs (two CI clones) never share or delete
# each other's; leftovers of a run that died are removed below.
NS_S=lg-srv-$$
NS_C=lg-cli-$$
NS_P=lg-peer-$$
IF_S=lg-s
IF_C=lg-c
POOL_FIRST=10.100.0.10
POOL_LAST=10.103.255.250
POOL_SIZE=262129

tb_require side-by-side.sh ip taskset timeout perfdhcp kea-dhcp4 dhcpd awk
if [ -n "${PROFILE:-}" ]; then tb_require side-by-side.sh perf; fi
for r in $RATES; do
  if [ $((r * PERIOD)) -gt $POOL_SIZE ]; then
    echo "side-by-side.sh: rate $r x ${PERIOD}s exceeds the pool ($POOL_SIZE addresses)" >&2; exit 2
  fi
done

T="${CARGO_TARGET_DIR:-target}/release"
if [ -z "${TANDEMD:-}" ] || [ -z "${LOADGEN:-}" ] || [ -z "${TANDEMCTL:-}" ] || [ -z "${RESPONDER:-}" ]; then
  echo "[sbs] building tandemd, tandemctl, tandem-loadgen, tandem-responder (release)" >&2
  cargo build --release --locked -p control --bin tandemd --bin tandemctl >&2
  cargo build --release --locked -p bench --bin tandem-loadgen --bin tandem-responder >&2
fi
TANDEMD=$(realpath "${TANDEMD:-$T/tandemd}")
TANDEMCTL=$(realpath "${TANDEMCTL:-$T/tandemctl}")
LOADGEN=$(realpath "${LOADGEN:-$T/tandem-loadgen}")
RESPONDER=$(realpath "${RESPONDER:-$T/tandem-responder}")
CLK_TCK=$(getconf CLK_TCK)
WORK=${WORK:-$(mktemp -d /var/tmp/lg-sbs.XXXXXX)}
mkdir -p "$WORK" "$OUT"
WORK=$(realpath "$WORK")

SERVER_PID=
PEER_PID=
GEN_PID=
PERF_PIDS=
HOG_PID=
stop_servers() {
  tb_stop_pid "$SERVER_PID"; SERVER_PID=
  tb_stop_pid "$PEER_PID"; PEER_PID=
}
cleanup() {
  tb_stop_pid "$GEN_PID"
  tb_stop_pid "$HOG_PID"
  for p in $PERF_PIDS; do kill -INT "$p" 2>/dev/null || true; done
  stop_servers
  tb_del_ns "$NS_S" "$NS_C" "$NS_P"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

cleanup
for ns in $(ip netns list | grep -oE '^lg-(srv|cli|peer)-[0-9]+'); do
  kill -0 "${ns##*-}" 2>/dev/null || tb_del_ns "$ns"
done
tb_veth "$NS_S" "$IF_S" 10.100.0.1/14 "$NS_C" "$IF_C" 10.100.0.2/14
tb_veth "$NS_S" lg-p0 192.168.77.1/24 "$NS_P" lg-p1 192.168.77.2/24

tandem_conf() { # $1: dir, $2: datapath, $3: iface, $4: server_id, $5: failover role or ""
  local d=$1 dp=$2 ifc=$3 sid=$4 role=$5
  cat <<EOF
[server]
interfaces = ["$ifc"]
server_id = "$sid"
data_dir = "$d/data"
datapath = "$dp"
workers = 1
durability = "sync"
log_level = "warn"

[[subnet]]
prefix = "10.100.0.0/14"
pools = ["$POOL_FIRST-$POOL_LAST"]
router = ["10.100.0.1"]
lease_time = "1h"
EOF
  if [ -n "$role" ]; then
    local me peer extra=""
    if [ "$role" = primary ]; then me=192.168.77.1; peer=192.168.77.2; extra='mclt = "1h"'
    else me=192.168.77.2; peer=192.168.77.1; fi
    # Both ends sign the peer link with the same secret (the same text on each side).
    mkdir -p "$d"; printf 'side-by-side pair secret\n' > "$d/pair.secret"
    cat <<EOF
failover = "pair"

[[failover]]
name = "pair"
role = "$role"
$extra
mode = "hot-standby"
address = "$me"
peer_address = "$peer"
shared_secret_file = "$d/pair.secret"
EOF
  fi
}

# ISC dhcpd as the failover secondary of tandemd, in lg-peer (the failover-isc rows): the same
# pool under `failover peer`, lease file on disk. In hot standby tandemd sends the HBA of
# `split 256`, so dhcpd answers no DISCOVER in NORMAL; it stores every BNDUPD.
start_isc_peer() { # $1: dir
  local d=$1
  cat >"$d/peer/dhcpd.conf" <<EOF
authoritative; default-lease-time 3600; max-lease-time 3600; ddns-update-style none;
ping-check false;
failover peer "pair" {
  secondary;
  address 192.168.77.2; port 647;
  peer address 192.168.77.1; peer port 647;
  max-response-delay 60;
  max-unacked-updates 100;
  load balance max seconds 3;
}
subnet 192.168.77.0 netmask 255.255.255.0 { }
subnet 10.100.0.0 netmask 255.252.0.0 {
  option routers 10.100.0.1;
  pool { failover peer "pair"; range ${DHCPD_RANGE:-$POOL_FIRST $POOL_LAST}; }
}
EOF
  : >"$d/peer/dhcpd.leases"
  ip netns exec "$NS_P" taskset -c "$CLIENT_CPU" \
    dhcpd -4 -f -q -cf "$d/peer/dhcpd.conf" -lf "$d/peer/dhcpd.leases" -pf "$d/peer/dhcpd.pid" lg-p1 \
    >"$d/peer/server.log" 2>&1 &
  PEER_PID=$!
}

start_tandem() { # $1: dir, $2: datapath, $3: failover (0: off, 1: tandem partner, 2: ISC dhcpd partner)
  local d=$1 dp=$2 fo=$3 role=""
  [ "$fo" != 0 ] && role=primary
  tandem_conf "$d" "$dp" "$IF_S" 10.100.0.1 "$role" >"$d/tandemd.toml"
  if [ "$fo" = 1 ]; then
    mkdir -p "$d/peer"
    tandem_conf "$d/peer" packet lg-p1 192.168.77.2 secondary >"$d/peer/tandemd.toml"
    ip netns exec "$NS_P" taskset -c "$CLIENT_CPU" "$TANDEMD" --config "$d/peer/tandemd.toml" \
      >"$d/peer/server.log" 2>&1 &
    PEER_PID=$!
  elif [ "$fo" = 2 ]; then
    mkdir -p "$d/peer"
    start_isc_peer "$d"
  fi
  ip netns exec "$NS_S" taskset -c "$SERVER_CPU" "$TANDEMD" --config "$d/tandemd.toml" \
    >"$d/server.log" 2>&1 &
  SERVER_PID=$!
  tb_wait_sock "$d/data" "$SERVER_PID" "$d/server.log"
  if [ "$fo" != 0 ]; then
    if [ "$fo" = 1 ]; then tb_wait_sock "$d/peer/data" "$PEER_PID" "$d/peer/server.log"; fi
    # The pair should reach NORMAL in a few seconds; the row is labelled by what it reached.
    local st="" tries=100
    [ "$fo" = 2 ] && tries=600 # dhcpd starts a new relationship in RECOVER and asks for everything
    for _ in $(seq "$tries"); do
      st=$("$TANDEMCTL" --data-dir "$d/data" status --json 2>/dev/null | tr -d ' \n' |
        sed -n 's/.*"relationships":\[{[^]]*"state":"\([a-z-]*\)".*/\1/p') || true
      [ "$st" = normal ] && break
      sleep 0.1
    done
    echo "${st:-unknown}" >"$d/failover-state"
  fi
}

start_kea() { # $1: dir, $2: threads (0: multi-threading off)
  local d=$1 mt=false threads=${2:-0}
  [ "$threads" -gt 0 ] && mt=true
  cat >"$d/kea.json" <<EOF
{ "Dhcp4": {
  "interfaces-config": { "interfaces": [ "$IF_S" ], "dhcp-socket-type": "raw" },
  "lease-database": { "type": "memfile", "persist": true, "name": "$d/kea-leases.csv", "lfc-interval": 0 },
  "multi-threading": { "enable-multi-threading": $mt, "thread-pool-size": $threads, "packet-queue-size": 64 },
  "valid-lifetime": 3600, "renew-timer": 1800, "rebind-timer": 3150, "authoritative": true,
  "subnet4": [ { "id": 1, "subnet": "10.100.0.0/14",
                 "pools": [ { "pool": "$POOL_FIRST - $POOL_LAST" } ],
                 "option-data": [ { "name": "routers", "data": "10.100.0.1" } ] } ],
  "loggers": [ { "name": "kea-dhcp4", "output_options": [ { "output": "$d/kea.log" } ], "severity": "WARN" } ]
} }
EOF
  KEA_PIDFILE_DIR=$d KEA_LOCKFILE_DIR=$d ip netns exec "$NS_S" taskset -c "$SERVER_CPU" \
    kea-dhcp4 -c "$d/kea.json" >"$d/server.log" 2>&1 &
  SERVER_PID=$!
  sleep 1.5
  kill -0 "$SERVER_PID" 2>/dev/null || { echo "kea-dhcp4 did not start:" >&2; cat "$d/server.log" >&2; return 1; }
}

start_dhcpd() {
  local d=$1
  cat >"$d/dhcpd.conf" <<EOF
authoritative; default-lease-time 3600; max-lease-time 3600; ddns-update-style none;
ping-check false;
subnet 10.100.0.0 netmask 255.252.0.0 { range ${DHCPD_RANGE:-$POOL_FIRST $POOL_LAST}; option routers 10.100.0.1; }
EOF
  : >"$d/dhcpd.leases"
  ip netns exec "$NS_S" taskset -c "$SERVER_CPU" \
    dhcpd -4 -f -q -cf "$d/dhcpd.conf" -lf "$d/dhcpd.leases" -pf "$d/dhcpd.pid" "$IF_S" \
    >"$d/server.log" 2>&1 &
  SERVER_PID=$!
  sleep 1.5
  kill -0 "$SERVER_PID" 2>/dev/null || { echo "dhcpd did not start:" >&2; cat "$d/server.log" >&2; return 1; }
}

start_responder() {
  local d=$1
  ip netns exec "$NS_S" taskset -c "$SERVER_CPU" "$RESPONDER" --iface "$IF_S" --cpus "$SERVER_CPU" \
    >"$d/server.log" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 50); do
    grep -q "canned OFFER/ACK" "$d/server.log" 2>/dev/null && return 0
    kill -0 "$SERVER_PID" 2>/dev/null || break
    sleep 0.1
  done
  echo "tandem-responder did not start:" >&2; cat "$d/server.log" >&2; return 1
}

PROFILE_SYSCALLS=recvfrom,sendto,sendmsg,recvmsg,sendmmsg,recvmmsg,poll,ppoll,epoll_wait,futex,fdatasync,pwrite64,write,read,msync,clock_nanosleep
profile_start() { # $1: dir
  perf record -q -F 999 --call-graph dwarf,16384 -p "$SERVER_PID" -o "$1/perf-cpu.data" \
    >/dev/null 2>&1 &
  PERF_PIDS="$!"
  perf record -q -e sched:sched_switch -g -p "$SERVER_PID" -o "$1/perf-switch.data" \
    >/dev/null 2>&1 &
  PERF_PIDS="$PERF_PIDS $!"
  local ev
  ev=$(echo "$PROFILE_SYSCALLS" | tr ',' '\n' | sed 's/^/syscalls:sys_enter_/' | paste -sd,)
  perf stat -x, --per-thread -e "$ev" -p "$SERVER_PID" -o "$1/syscalls.csv" >/dev/null 2>&1 &
  PERF_PIDS="$PERF_PIDS $!"
  sleep 0.5
}
profile_stop() { # $1: dir, $2: name for the outputs, $3: title
  local p
  for p in $PERF_PIDS; do kill -INT "$p" 2>/dev/null || true; done
  for p in $PERF_PIDS; do timeout 60 tail --pid="$p" -f /dev/null || true; done
  PERF_PIDS=
  echo "[sbs] profile $2: folding the stacks (perf script; a minute or two)" >&2
  perf script -i "$1/perf-cpu.data" 2>/dev/null |
    "$PYTHON" bench/load/flamegraph.py --title "$3: on-CPU" --top 25 \
      --folded "$1/cpu.folded" "$OUT/profile-$2-cpu.svg" >"$OUT/profile-$2-top.md" || true
  perf script -i "$1/perf-switch.data" 2>/dev/null |
    "$PYTHON" bench/load/flamegraph.py --title "$3: context switches (where threads leave the CPU)" \
      --folded "$1/switch.folded" "$OUT/profile-$2-switch.svg" || true
  cp "$1/syscalls.csv" "$OUT/profile-$2-syscalls.csv" 2>/dev/null || true
  rm -f "$1/perf-cpu.data" "$1/perf-switch.data"
}

# The user + system CPU time of process $1 so far, in clock ticks.
cpu_ticks() {
  awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0
}

start_server() { # $1: server name, $2: dir
  case "$1" in
    tandem-xdp) start_tandem "$2" xdp 0 ;;
    tandem-packet) start_tandem "$2" packet 0 ;;
    tandem-xdp-failover) start_tandem "$2" xdp 1 ;;
    tandem-packet-failover) start_tandem "$2" packet 1 ;;
    tandem-xdp-failover-isc) start_tandem "$2" xdp 2 ;;
    kea) start_kea "$2" 0 ;;
    kea-mt) start_kea "$2" 2 ;;
    dhcpd) start_dhcpd "$2" ;;
    responder) start_responder "$2" ;;
    *) echo "side-by-side.sh: unknown server $1" >&2; return 1 ;;
  esac
}

# perfdhcp: "sent received avg_delay_ms" of one section.
section() { # $1: file, $2: DISCOVER-OFFER | REQUEST-ACK
  awk -v s="Statistics for: $2" '
    index($0, s) { on = 1; next }
    on && /^\*\*\*/ { on = 0 }
    on && /^sent packets:/ { sent = $3 }
    on && /^received packets:/ { recv = $3 }
    on && /^avg delay:/ { avg = $3 }
    END { printf "%d %d %s\n", sent, recv, (avg == "" ? "-" : avg) }' "$1"
}
json_num() { # $1: file, $2: key
  sed -n "s/.*\"$2\":\([0-9.]*\).*/\1/p" "$1" | tail -1
}

RESULTS="$OUT/runs.tsv"
printf 'server\tgenerator\trepeat\toffered\tstarted\tcompleted\tcompleted_per_s\tdrop_pct\tlat_avg_ms\tlat_p50_ms\tlat_p99_ms\tlat_p999_ms\tcpu_us_per_dora\tnote\n' >"$RESULTS"
LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
cells=0
total=$(( $(echo $SERVERS | wc -w) * $(echo $GENERATORS | wc -w) * $(echo $RATES | wc -w) * REPEATS ))
T0=$(date +%s)
for rep in $(seq "$REPEATS"); do
  for server in $SERVERS; do
    for gen in $GENERATORS; do
      for rate in $RATES; do
        cells=$((cells + 1))
        d="$WORK/$server-$gen-r$rate-$rep"
        rm -rf "$d"; mkdir -p "$d"
        if ! start_server "$server" "$d"; then
          stop_servers
          printf '%s\t%s\t%s\t%s\t0\t0\t0\t100.00\t-\t-\t-\t-\t-\tstart-failed\n' "$server" "$gen" "$rep" "$rate" >>"$RESULTS"
          echo "[sbs] $server did not start (see $d/server.log); row recorded as start-failed" >&2
          continue
        fi
        note=""
        [ -f "$d/failover-state" ] && note="failover:$(cat "$d/failover-state")"
        if [ -n "${HOG:-}" ]; then
          taskset -c "$SERVER_CPU" sh -c 'while :; do :; done' &
          HOG_PID=$!
          note="${note:+$note,}hog"
        fi
        out="$d/$gen.txt"
        [ -n "${PROFILE:-}" ] && profile_start "$d"
        cpu0=$(cpu_ticks "$SERVER_PID")
        if [ "$gen" = perfdhcp ]; then
          timeout $((PERIOD + 30)) ip netns exec "$NS_C" taskset -c "$CLIENT_CPU" \
            perfdhcp -4 -l "$IF_C" -r "$rate" -p "$PERIOD" -R 1000000 -W 1000000 >"$out" 2>&1 &
          GEN_PID=$!
          wait "$GEN_PID" || true
          GEN_PID=
          read -r started _ do_avg < <(section "$out" DISCOVER-OFFER)
          read -r _ acks ra_avg < <(section "$out" REQUEST-ACK)
          completed=$acks
          lat_avg=$(awk -v a="$do_avg" -v b="$ra_avg" 'BEGIN { if (a == "-" || b == "-") print "-"; else printf "%.3f", a + b }')
          p50=-; p99=-; p999=-
        else
          timeout $((PERIOD + 30)) ip netns exec "$NS_C" taskset -c "$CLIENT_CPU" "$LOADGEN" --iface "$IF_C" --giaddr 10.100.0.2 \
            --rate "$rate" --duration "$PERIOD" --cpus "$CLIENT_CPU" --queues 1 --clients 1000000 \
            --label "$server" --quiet $LOADGEN_ARGS >"$out" 2>"$d/loadgen.err" &
          GEN_PID=$!
          wait "$GEN_PID" || true
          GEN_PID=
          started=$(json_num "$out" started); started=${started:-0}
          completed=$(json_num "$out" completed); completed=${completed:-0}
          ms() { awk -v x="$1" 'BEGIN { if (x == "") print "-"; else printf "%.3f", x / 1000 }'; }
          lat_avg=$(ms "$(json_num "$out" dora_mean_us)")
          p50=$(ms "$(json_num "$out" dora_p50_us)")
          p99=$(ms "$(json_num "$out" dora_p99_us)")
          p999=$(ms "$(json_num "$out" dora_p999_us)")
          if [ "$completed" -eq 0 ]; then lat_avg=-; p50=-; p99=-; p999=-; fi
        fi
        cpu1=$(cpu_ticks "$SERVER_PID")
        tb_stop_pid "$HOG_PID" 0; HOG_PID=
        if [ -n "${PROFILE:-}" ]; then
          profile_stop "$d" "$server-$gen-$rate" "$server, $gen at $rate/s offered"
        fi
        stop_servers
        cpu_us=$(awk -v a="$cpu0" -v b="$cpu1" -v hz="$CLK_TCK" -v n="$completed" \
          'BEGIN { if (n > 0 && b >= a) printf "%.1f", (b - a) * 1e6 / hz / n; else print "-" }')
        # The lease tables are big (67 MB for this pool): keep the logs, not the stores.
        rm -rf "$d/data" "$d/peer/data" "$d/kea-leases.csv" "$d/dhcpd.leases" "$d/peer/dhcpd.leases"
        per_s=$((completed / PERIOD))
        if [ "$started" -gt 0 ]; then
          drop=$(awk -v s="$started" -v a="$completed" 'BEGIN { d = (s - a) * 100 / s; if (d < 0) d = 0; printf "%.2f", d }')
        else
          drop=100.00
        fi
        printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$server" "$gen" "$rep" "$rate" \
          "$started" "$completed" "$per_s" "$drop" "$lat_avg" "$p50" "$p99" "$p999" "$cpu_us" "${note:--}" >>"$RESULTS"
        printf '[sbs] %3d/%d %4ds  %-20s %-8s rep %d offered %6s/s: %7s DORA/s, %6s %% dropped, latency avg %s ms p99 %s ms, server CPU %s us/DORA %s\n' \
          "$cells" "$total" $(( $(date +%s) - T0 )) "$server" "$gen" "$rep" "$rate" "$per_s" "$drop" "$lat_avg" "$p99" "$cpu_us" "$note" >&2
      done
    done
  done
done
LOAD1=$(cut -d' ' -f1-3 /proc/loadavg)

{
  echo "machine: $(nproc) CPUs, kernel $(uname -r), load average at start $LOAD0, at end $LOAD1"
  echo "server on CPU $SERVER_CPU, generator on CPU $CLIENT_CPU; ${PERIOD} s per cell, $REPEATS repeat(s); pool $POOL_SIZE addresses, lease 1 h, persistence on"
  echo
} >"$OUT/summary.md"
"$PYTHON" bench/load/summarize.py "$RESULTS" "$OUT" >>"$OUT/summary.md"
cat "$OUT/summary.md"
echo "raw outputs: $WORK; rows: $RESULTS; summary and plots: $OUT" >&2
