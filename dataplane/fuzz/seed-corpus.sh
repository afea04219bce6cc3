#!/usr/bin/env bash
# Rebuilds the seed corpora from the captured vectors in ../tests/vectors:
# frame: the whole Ethernet frames; dhcpv4_repr: their DHCP payloads; options: their
# options areas (after the magic cookie); engine_decide: each scenario's frames in order,
# as the engine target reads them ([seconds to wait][length, little-endian][frame]), once
# received on the LAN's address and once on an unnumbered interface.
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
