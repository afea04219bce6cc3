#!/usr/bin/env bash
# Regenerates the captured DHCPv4 frames under dataplane/tests/vectors/ from REAL software:
# kea-dhcp4 as the server; udhcpc, dhcpcd, dhclient and perfdhcp as clients/relay.
#
#   sudo bash dataplane/tests/vectors/capture.sh
#
# Topology (all private to this script, torn down on exit even on failure):
#   netns tdm-wire-srv: veth tdm-wire-s 10.77.0.1/24, kea-dhcp4, dumpcap
#   netns tdm-wire-cli: veth tdm-wire-c (clients), later 10.77.0.2/24 for perfdhcp as a relay
# Each scenario is captured to its own pcap; extract.py writes one file per frame,
# `<scenario>_<nn>_<msgtype>.hex` (the whole Ethernet frame, lowercase hex, one line).
# Needs: kea-dhcp4 (2.2), perfdhcp, udhcpc, dhcpcd (9.x), dhclient, dumpcap, python3.
set -euo pipefail

OUT="$(cd "$(dirname "$0")" && pwd)"
TMP="$(mktemp -d /tmp/tdm-wire-capture.XXXXXX)"
SRV=tdm-wire-srv
CLI=tdm-wire-cli
PIDS=()

cleanup() {
    for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
    for f in /run/dhcpcd/tdm-wire-c-4.pid /run/dhcpcd/tdm-wire-c.pid; do
        [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null || true
    done
    sleep 0.3
    ip netns del "$SRV" 2>/dev/null || true
    ip netns del "$CLI" 2>/dev/null || true
    if [ -n "${KEEP:-}" ]; then echo "kept $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT

# Ends a dhcpcd this script started, through its pid file (dhcpcd 9 daemonizes).
stop_dhcpcd() {
    for f in /run/dhcpcd/tdm-wire-c-4.pid /run/dhcpcd/tdm-wire-c.pid; do
        [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null || true
    done
    sleep 1
}

in_srv() { ip netns exec "$SRV" "$@"; }
in_cli() { ip netns exec "$CLI" "$@"; }

ip netns add "$SRV"
ip netns add "$CLI"
ip link add tdm-wire-s netns "$SRV" type veth peer name tdm-wire-c netns "$CLI"
in_srv ip link set lo up
in_cli ip link set lo up
in_srv ip link set tdm-wire-s address 02:00:00:77:00:01
in_cli ip link set tdm-wire-c address 02:00:00:77:00:02
in_srv ip addr add 10.77.0.1/24 dev tdm-wire-s
in_srv ip link set tdm-wire-s up
in_cli ip link set tdm-wire-c up

cat > "$TMP/kea.json" <<EOF
{ "Dhcp4": {
    "interfaces-config": { "interfaces": [ "tdm-wire-s" ] },
    "lease-database": { "type": "memfile", "persist": false },
    "authoritative": true,
    "valid-lifetime": 600, "renew-timer": 300, "rebind-timer": 525,
    "option-data": [ { "name": "domain-name-servers", "data": "10.77.0.1, 10.77.0.53" },
                     { "name": "domain-name", "data": "tandem.test" } ],
    "subnet4": [ { "id": 1, "subnet": "10.77.0.0/24",
                   "pools": [ { "pool": "10.77.0.100 - 10.77.0.150" } ],
                   "option-data": [ { "name": "routers", "data": "10.77.0.1" } ] } ],
    "loggers": [ { "name": "kea-dhcp4", "output_options": [ { "output": "$TMP/kea.log" } ],
                   "severity": "INFO" } ]
} }
EOF
export KEA_PIDFILE_DIR="$TMP" KEA_LOCKFILE_DIR="$TMP"
ip netns exec "$SRV" kea-dhcp4 -c "$TMP/kea.json" > "$TMP/kea.out" 2>&1 &
PIDS+=($!)
sleep 1.5

# capture NAME CMD...: runs CMD (bounded by timeout) while dumpcap records port 67/68.
capture() {
    local name=$1; shift
    ip netns exec "$SRV" dumpcap -q -P -i tdm-wire-s -f "udp port 67 or udp port 68" -w "$TMP/$name.pcap" \
        > /dev/null 2>&1 &
    local cap=$!
    sleep 1
    timeout 20 "$@" > "$TMP/$name.log" 2>&1 || true
    sleep 0.8
    kill -TERM "$cap" 2>/dev/null || true
    wait "$cap" 2>/dev/null || true
}

# 1. udhcpc: DISCOVER/OFFER/REQUEST/ACK. (-R asks for a RELEASE on exit; busybox 1.35 did not
#    put one on the wire here, the RELEASE vector comes from dhcpcd in 2.)
cat > "$TMP/udhcpc.sh" <<'EOF2'
#!/bin/sh
case "$1" in
    bound|renew) ip addr add "$ip/${mask:-24}" dev "$interface" ;;
    deconfig) ip addr flush dev "$interface" ;;
esac
EOF2
chmod +x "$TMP/udhcpc.sh"
capture udhcpc ip netns exec "$CLI" udhcpc -i tdm-wire-c -n -q -f -R -s "$TMP/udhcpc.sh" -x hostname:tdm-client \
    -V tandem-vectors

# 2. dhcpcd: DORA with its own options (client id, PRL, hostname), it configures the address,
#    then RELEASE (-k).
DHCPCD_OPTS=(-4 -f /dev/null -c /bin/true --noipv4ll -A)
rm -f /var/lib/dhcpcd/tdm-wire-c*.lease
capture dhcpcd bash -c "ip netns exec $CLI dhcpcd ${DHCPCD_OPTS[*]} -t 10 tdm-wire-c; sleep 1; \
    ip netns exec $CLI dhcpcd ${DHCPCD_OPTS[*]} -k tdm-wire-c; sleep 1"
in_cli ip addr flush dev tdm-wire-c

stop_dhcpcd

# 4. dhcpcd INFORM (it configures the static address itself, RFC 2131 §3.4).
capture inform timeout 14 ip netns exec "$CLI" dhcpcd -4 -B -f /dev/null -c /bin/true \
    --noipv4ll -1 -t 10 --inform=10.77.0.60/24 tdm-wire-c
in_cli ip addr flush dev tdm-wire-c

stop_dhcpcd

# 5. dhclient INIT-REBOOT with a remembered lease from another network: Kea is authoritative
#    and answers NAK (RFC 2131 §4.3.2).
cat > "$TMP/dhclient.leases" <<EOF
lease {
  interface "tdm-wire-c";
  fixed-address 10.99.0.5;
  option subnet-mask 255.255.255.0;
  option dhcp-lease-time 600;
  option dhcp-message-type 5;
  option dhcp-server-identifier 10.99.0.1;
  renew 4 2037/01/01 00:00:00;
  rebind 4 2037/01/01 00:00:00;
  expire 4 2037/01/01 00:00:00;
}
EOF
capture nak timeout 8 ip netns exec "$CLI" dhclient -4 -d -1 -sf /bin/true -lf "$TMP/dhclient.leases" \
    -pf "$TMP/dhclient.pid" tdm-wire-c

# 6. perfdhcp as a relay: unicast to the server from 10.77.0.2, giaddr set, option 82 with
#    circuit-id "eth0/1" and remote-id 02:00:00:77:00:02 (RFC 3046).
in_cli ip addr add 10.77.0.2/24 dev tdm-wire-c
capture relay ip netns exec "$CLI" perfdhcp -4 -l 10.77.0.2 -r 1 -n 1 -R 1 -W 2000000 \
    -o 82,0106657468302f310206020000770002 10.77.0.1

# 7. dhcpcd DECLINE, last because Kea then holds the address in probation: Kea restarted with
#    a one-address pool whose address the server side already holds, so dhcpcd's ARP check
#    after the ACK (RFC 2131 §3.1 step 5, RFC 5227) finds it in use and declines it.
in_cli ip addr flush dev tdm-wire-c
kill "${PIDS[0]}"; wait "${PIDS[0]}" 2>/dev/null || true
sed 's/10.77.0.100 - 10.77.0.150/10.77.0.150 - 10.77.0.150/' "$TMP/kea.json" > "$TMP/kea-decline.json"
in_srv ip addr add 10.77.0.150/24 dev tdm-wire-s
ip netns exec "$SRV" kea-dhcp4 -c "$TMP/kea-decline.json" > "$TMP/kea-decline.out" 2>&1 &
PIDS+=($!)
sleep 1.5
rm -f /var/lib/dhcpcd/tdm-wire-c*.lease
capture decline ip netns exec "$CLI" dhcpcd -4 -f /dev/null -c /bin/true --noipv4ll -B -1 -t 10 tdm-wire-c

python3 "$OUT/extract.py" "$OUT" "$TMP"/*.pcap
echo "wrote $(ls "$OUT"/*.hex | wc -l) vectors to $OUT"
