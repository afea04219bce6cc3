#!/usr/bin/env bash
# Rebuilds the kept seed corpora of control/fuzz (seeds/TARGET) from real inputs:
# * the failover messages ISC dhcpd 4.4.3 sent (../tests/data/isc-4.4.3), as the peer's
#   stream (failover_stream, failover_session) and as judged bindings (failover_judge), with
#   an ACTIVE BNDUPD in ISC's layout (tests/failover_binding.rs) for an address of the
#   targets' pool;
# * the configurations of ../tests/config_example.rs and config_keys.rs (config_parse);
# * the admin requests of the protocol's documentation (admin_request);
# * the golden version 1 state file, and version 2 files `persist::store` writes
#   (failover_persist), and the files of real data directories, crashed and closed
#   (store_recovery): those two targets write their own seeds (TANDEM_FUZZ_SEEDS), so this
#   builds them (instrumented, as run.sh does).
set -euo pipefail
cd "$(dirname "$0")"
isc=../tests/data/isc-4.4.3
seeds=seeds
# Inputs that once crashed a target (regress-*) are kept.
find "$seeds" -type f ! -name 'regress-*' -delete 2>/dev/null || true
mkdir -p "$seeds"/{failover_stream,failover_session,failover_judge,config_parse,admin_request,failover_persist,store_recovery}

hex() { xxd -r -p; }
le16() { printf "%04x" "$1" | sed 's/\(..\)\(..\)/\2\1/' | hex; }
# ACTIVE BNDUPD for 10.77.0.101, client 02:00:00:77:00:01 (client id 01 + MAC), ends at the
# captures' time + 1 h, potential expiry + 10 min more, STOS and CLTT the captures' time.
active() {
    echo "004f030c6b026ef900000006 00020004 0a4d0065 0003000102 0004000701020000770001
          0005000701020000770001 000d00046b027d09 001200046b027f61 001900046b026ef9
          000600046b026ef9" | tr -d ' \n' | hex
}

# The peer's messages as a secondary (ISC is the primary: CONNECT first) and as a primary.
from_primary() { cat $isc/connect.bin $isc/state-recover-startup.bin $isc/bndupd-free.bin \
    $isc/bndupd-backup.bin <(active) $isc/upddone.bin $isc/state-normal.bin $isc/updreqall.bin; }
from_secondary() { cat $isc/connectack.bin $isc/state-normal.bin $isc/updreqall.bin \
    $isc/bndupd-free.bin <(active) $isc/upddone.bin $isc/contact.bin; }

# failover_stream: [piece size][role: bit 0 secondary, bit 1 secret] + stream.
for role in 0 1 2 3; do
    { printf "\\xff\\x0$role"; from_primary; } > $seeds/failover_stream/isc-primary-$role
    { printf "\\x07\\x0$role"; from_secondary; } > $seeds/failover_stream/isc-secondary-pieces-$role
done
for m in $isc/*.bin; do
    { printf "\\xff\\x01"; cat "$m"; } > "$seeds/failover_stream/$(basename "$m" .bin)"
done

# failover_session: [setup][piece size][seconds per piece] + stream (module docs).
for stored in 0 1 2 3; do
    s=$((stored << 2))
    { printf "\\x$(printf %02x $s)\\xff\\x01"; from_primary; } > $seeds/failover_session/we-secondary-stored$stored
    { printf "\\x$(printf %02x $((s | 1)))\\xff\\x01"; from_secondary; } > $seeds/failover_session/we-primary-stored$stored
done
{ printf "\\x12\\x05\\x03"; from_primary; } > $seeds/failover_session/signed-pieces-shutdown
{ printf "\\x11\\x40\\x1e"; from_secondary; } > $seeds/failover_session/we-primary-slow-shutdown

# failover_judge: [1][length][message] + the local record and setting (arbitrary bytes).
for m in $isc/bndupd-free.bin $isc/bndupd-backup.bin; do
    n=$(stat -c %s "$m")
    for fill in 00 5a ff; do
        { printf "\\x01"; le16 "$n"; cat "$m"; head -c 96 /dev/zero | tr '\0' "\\$(printf %03o 0x$fill)"; } \
            > "$seeds/failover_judge/$(basename "$m" .bin)-$fill"
    done
done
for fill in 00 5a ff; do
    { printf "\\x01"; le16 79; active; head -c 96 /dev/zero | tr '\0' "\\$(printf %03o 0x$fill)"; } \
        > "$seeds/failover_judge/bndupd-active-$fill"
done
head -c 160 /dev/zero | tr '\0' '\132' | { printf "\\x00"; cat; } > $seeds/failover_judge/options-5a

# config_parse: the test suite's whole configurations.
python3 - "$seeds/config_parse" ../tests/config_example.rs ../tests/config_keys.rs <<'PY'
import re, sys, pathlib
out = pathlib.Path(sys.argv[1])
for src in sys.argv[2:]:
    for i, text in enumerate(re.findall(r'r#"(.*?)"#', pathlib.Path(src).read_text(), re.S)):
        if "[server]" in text:
            (out / f"{pathlib.Path(src).stem}-{i}").write_text(text)
PY

# admin_request: one request per line, as tandemctl sends them, and some that are wrong.
a=$seeds/admin_request
echo '{"verb":"status"}' > $a/status
echo '{"verb":"leases","subnet":"10.0.0.0/16","state":"active","limit":100}' > $a/leases
echo '{"verb":"leases"}' > $a/leases-all
echo '{"verb":"partner-down","name":"edge","since":1763784000}' > $a/partner-down
printf '{"verb":"partner-down","name":"edge-pair"}\r\n{"verb":"status"}\r\n' > $a/crlf-two
echo '{"verb":"reboot"}' > $a/unknown-verb
echo '{"verb":"leases","limit":-1,"state":"nonsense"}' > $a/bad-fields

# failover_persist: the golden version 1 file (case 0); version 2 files come from the target.
{ printf "\\x00"; cat ../src/failover/testdata/failover-edge-pair.v1.state; } > $seeds/failover_persist/v1-golden
head -c 64 /dev/zero | tr '\0' '\132' | { printf "\\xc0"; cat; } > $seeds/failover_persist/state-5a

# The targets that write their own seeds (when run once, on an empty input).
empty=$(mktemp)
trap 'rm -f "$empty"' EXIT
for t in failover_persist store_recovery; do
    bin=$(bash ./run.sh --build "$t" | tail -n 1)
    TANDEM_FUZZ_SEEDS="$seeds/$t" "$bin" "$empty" > /dev/null 2>&1
done
du -sh "$seeds"/*
