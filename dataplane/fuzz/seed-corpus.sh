#!/usr/bin/env bash
# Rebuilds the seed corpora from the captured vectors in ../tests/vectors:
# frame: the whole Ethernet frames; dhcpv4_repr: their DHCP payloads; options: their
# options areas (after the magic cookie); engine_decide: each scenario's frames in order,
# as the engine target reads them ([seconds to wait][length, little-endian][frame]), once
# received on the LAN's address and once on an unnumbered interface. Then the bad inputs of
# ISC dhcpd's CVEs (NVD, ISC KB), made from udhcpc's DISCOVER and REQUEST: a zero-length and a 255-byte client id (CVE-2010-2156, CVE-2012-3571), BOOTP
# without option 53 (CVE-2011-2748), an FQDN (81) label over 63 bytes (CVE-2022-2929), and a
# UDP length longer and shorter than the datagram (CVE-2015-8605): frames (`cve-*`) in frame,
# dhcpv4_repr and options, and as engine_decide inputs.
set -euo pipefail
cd "$(dirname "$0")"
mkdir -p seeds/frame seeds/dhcpv4_repr seeds/options seeds/engine_decide
# Inputs that once crashed a target (regress-*) are kept.
find seeds -type f ! -name 'regress-*' -delete
le16() { printf "%04x" "$1" | sed 's/\(..\)\(..\)/\2\1/' | xxd -r -p; }
for f in ../tests/vectors/*.hex; do
    n=$(basename "$f" .hex)
    xxd -r -p "$f" > "seeds/frame/$n"
    # Ethernet 14 + IPv4 20 (the captures carry no VLAN tag or IP options) + UDP 8.
    tail -c +43 "seeds/frame/$n" > "seeds/dhcpv4_repr/$n"
    tail -c +241 "seeds/dhcpv4_repr/$n" > "seeds/options/$n"
done
for scenario in $(ls ../tests/vectors/*.hex | xargs -n1 basename | sed 's/_.*//' | sort -u); do
    for setup in 0 1; do
        {
            printf "\\x0$setup"
            for f in seeds/frame/"$scenario"_*; do
                printf "\\x01"
                le16 "$(stat -c %s "$f")"
                cat "$f"
            done
        } > "seeds/engine_decide/$scenario-$setup"
    done
done
python3 - <<'PY'
import struct, pathlib
def csum(b):
    s = sum(struct.unpack(f"!{len(b)//2}H", b))
    while s >> 16:
        s = (s & 0xffff) + (s >> 16)
    return ~s & 0xffff
def options(dhcp):
    out, i, o = [], 240, dhcp
    while i < len(o) and o[i] != 255:
        if o[i] == 0:
            i += 1
            continue
        out.append((o[i], o[i + 2:i + 2 + o[i + 1]]))
        i += 2 + o[i + 1]
    return out
def frame(base, opts, udp_len_delta=0):
    eth, ip, udp, dhcp = base[:14], bytearray(base[14:34]), bytearray(base[34:42]), base[42:]
    body = dhcp[:240] + b"".join(bytes([k, len(v)]) + v for k, v in opts) + b"\xff"
    body += b"\x00" * max(0, 300 - len(body))
    struct.pack_into("!H", udp, 4, 8 + len(body) + udp_len_delta)
    struct.pack_into("!H", udp, 6, 0)
    struct.pack_into("!H", ip, 2, 20 + 8 + len(body))
    struct.pack_into("!H", ip, 10, 0)
    struct.pack_into("!H", ip, 10, csum(bytes(ip)))
    return eth + bytes(ip) + bytes(udp) + body
seeds = pathlib.Path("seeds")
for name in ("udhcpc_01_discover", "udhcpc_03_request"):
    base = (seeds / "frame" / name).read_bytes()
    opts = options(base[42:])
    without = lambda k: [(c, v) for c, v in opts if c != k]
    cases = {
        "cve-2010-2156-empty-client-id": without(61) + [(61, b"")],
        "cve-2012-3571-255-byte-client-id": without(61) + [(61, b"\x01" + bytes(range(254)))],
        "cve-2011-2748-bootp": without(53),
        "cve-2022-2929-fqdn-label-64": opts + [(81, b"\x00\x00\x00" + b"\x40" + b"a" * 64 + b"\x00")],
    }
    out = {k: frame(base, v) for k, v in cases.items()}
    out["cve-2015-8605-udp-length-long"] = frame(base, opts, 40)
    out["cve-2015-8605-udp-length-short"] = frame(base, opts, -100)
    for k, f in out.items():
        n = f"{k}-{name.split('_')[-1]}"
        (seeds / "frame" / n).write_bytes(f)
        (seeds / "dhcpv4_repr" / n).write_bytes(f[42:])
        (seeds / "options" / n).write_bytes(f[42 + 240:])
        (seeds / "engine_decide" / n).write_bytes(b"\x01\x00" + struct.pack("<H", len(f)) + f)
PY
