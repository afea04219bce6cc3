#!/usr/bin/env bash
# Rebuilds the seed corpora from the captured vectors in ../tests/vectors:
# frame: the whole Ethernet frames; dhcpv4_repr: their DHCP payloads; options: their
# options areas (after the magic cookie).
set -euo pipefail
cd "$(dirname "$0")"
rm -f seeds/*/*
for f in ../tests/vectors/*.hex; do
    n=$(basename "$f" .hex)
    xxd -r -p "$f" > "seeds/frame/$n"
    # Ethernet 14 + IPv4 20 (the captures carry no VLAN tag or IP options) + UDP 8.
    tail -c +43 "seeds/frame/$n" > "seeds/dhcpv4_repr/$n"
    tail -c +241 "seeds/dhcpv4_repr/$n" > "seeds/options/$n"
done
