"""Raw DHCP frames for tandem's end-to-end tests (run by common::clients::Scapy).

  scapy_dhcp.py malformed IFACE MAC BURST   malformed frames toward UDP 67, then BURST garbage
  scapy_dhcp.py init-reboot IFACE MAC/CID/ADDR...   INIT-REBOOT REQUESTs, one reply line each

Output lines: "sent KIND" and "reply MAC ack|nak|none YIADDR".
"""

import random
import struct
import sys

from scapy.all import BOOTP, DHCP, IP, UDP, Ether, Raw, conf, sendp, srp1

conf.verb = 0
conf.checkIPaddr = False  # replies go to 255.255.255.255 / yiaddr, not to our 0.0.0.0

COOKIE = b"\x63\x82\x53\x63"


def mac_bytes(mac):
    return bytes.fromhex(mac.replace(":", ""))


def l2(mac):
    return Ether(src=mac, dst="ff:ff:ff:ff:ff:ff")


def l3(**ip):
    return IP(src="0.0.0.0", dst="255.255.255.255", **ip)


def bootp_fixed(mac, hlen=6, xid=0x7E2E0001):
    """The 236-byte fixed BOOTP header of a BOOTREQUEST (RFC 2131 section 2)."""
    hdr = struct.pack("!BBBBIHH", 1, 1, hlen, 0, xid, 0, 0x8000)
    hdr += b"\x00" * 16  # ciaddr yiaddr siaddr giaddr
    hdr += mac_bytes(mac).ljust(16, b"\x00")
    hdr += b"\x00" * 64 + b"\x00" * 128  # sname, file
    assert len(hdr) == 236
    return hdr


def discover_opts():
    return b"\x35\x01\x01" + b"\x37\x03\x01\x03\x33" + b"\xff"


def frame(mac, payload, ip=None, udp=None):
    return l2(mac) / l3(**(ip or {})) / UDP(sport=68, dport=67, **(udp or {})) / Raw(payload)


def malformed(iface, mac, burst):
    good = bootp_fixed(mac) + COOKIE + discover_opts()
    kinds = {
        "truncated_bootp": frame(mac, good[:100]),
        "truncated_before_cookie": frame(mac, good[:236]),
        "bad_ip_total_length_long": frame(mac, good, ip={"len": 1400}),
        "bad_ip_total_length_short": frame(mac, good, ip={"len": 24}),
        "bad_udp_length_long": frame(mac, good, udp={"len": 1400}),
        "bad_udp_length_short": frame(mac, good, udp={"len": 5}),
        "bad_udp_checksum": frame(mac, good, udp={"chksum": 0x1234}),
        "options_past_end": frame(
            mac, bootp_fixed(mac) + COOKIE + b"\x35\x01\x01" + b"\x0c\xc8hello"
        ),
        "option61_longer_than_packet": frame(
            mac, bootp_fixed(mac) + COOKIE + b"\x35\x01\x01" + b"\x3d\xff\x01\x02\x03"
        ),
        "hlen_over_16": frame(mac, bootp_fixed(mac, hlen=200) + COOKIE + discover_opts()),
        "option53_length_2": frame(
            mac, bootp_fixed(mac) + COOKIE + b"\x35\x02\x01\x01" + b"\xff"
        ),
        "option53_length_0": frame(mac, bootp_fixed(mac) + COOKIE + b"\x35\x00" + b"\xff"),
        "option53_unknown_type": frame(
            mac, bootp_fixed(mac) + COOKIE + b"\x35\x01\xee" + b"\xff"
        ),
        "bad_magic_cookie": frame(mac, bootp_fixed(mac) + b"\xde\xad\xbe\xef" + discover_opts()),
        "overload_past_end": frame(
            mac, bootp_fixed(mac) + COOKIE + b"\x35\x01\x01\x34\x01\x03" + b"\xff"
        ),
        "empty_udp": frame(mac, b""),
        "bootreply_op": frame(mac, b"\x02" + good[1:]),
    }
    for name, pkt in kinds.items():
        sendp(pkt, iface=iface)
        print("sent", name)
    seed = 0x7A9D3E
    rng = random.Random(seed)
    frames = []
    for i in range(burst):
        if i % 2 == 0:
            # Pure garbage after valid headers.
            payload = bytes(rng.getrandbits(8) for _ in range(rng.randrange(0, 600)))
        else:
            # A valid fixed header and cookie, then random option bytes.
            opts = bytes(rng.getrandbits(8) for _ in range(rng.randrange(0, 300)))
            payload = bootp_fixed(mac, xid=rng.getrandbits(32)) + COOKIE + opts
        frames.append(frame(mac, payload))
    sendp(frames, iface=iface)
    print("sent garbage_burst", burst, "seed", hex(seed))


def init_reboot(iface, specs):
    rng = random.Random(0x1B007)
    for spec in specs:
        mac, cid, addr = spec.split("/")
        opts = [("message-type", "request"), ("requested_addr", addr)]
        if cid != "-":
            opts.append(("client_id", bytes.fromhex(cid)))
        opts.append("end")
        xid = rng.getrandbits(32)
        pkt = (
            l2(mac)
            / l3()
            / UDP(sport=68, dport=67)
            / BOOTP(chaddr=mac_bytes(mac), xid=xid, flags=0x8000)
            / DHCP(options=opts)
        )
        ans = None
        for _ in range(3):
            ans = srp1(pkt, iface=iface, timeout=2)
            if ans is not None:
                break
        if ans is None or DHCP not in ans:
            print("reply", mac, "none")
            continue
        kind = "other"
        for o in ans[DHCP].options:
            if isinstance(o, tuple) and o[0] == "message-type":
                kind = {5: "ack", 6: "nak"}.get(o[1], str(o[1]))
        print("reply", mac, kind, ans[BOOTP].yiaddr)
    sys.stdout.flush()


def main():
    mode = sys.argv[1]
    if mode == "malformed":
        malformed(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    elif mode == "init-reboot":
        init_reboot(sys.argv[2], sys.argv[3:])
    else:
        sys.exit("unknown mode " + mode)


if __name__ == "__main__":
    main()
