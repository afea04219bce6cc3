"""Raw DHCP frames for tandem's end-to-end tests (run by common::clients::Scapy).

  scapy_dhcp.py malformed IFACE MAC BURST   malformed frames toward UDP 67, then BURST garbage
  scapy_dhcp.py init-reboot IFACE MAC/CID/ADDR...   INIT-REBOOT REQUESTs, one reply line each
  scapy_dhcp.py dora IFACE MAC...   DISCOVER, then REQUEST of the offer, one client after another
  scapy_dhcp.py decline IFACE MAC...   dora, then a DECLINE of the address ACKed

Output lines: "sent KIND XID" (XID absent for the burst) and "reply MAC ack|nak|none YIADDR"
(dora: "reply MAC no-offer" when no OFFER came; decline: "reply MAC declined YIADDR" once the
DECLINE of an ACKed address is sent).
"""

import random
import struct
import sys

from scapy.all import BOOTP, DHCP, IP, UDP, Ether, Raw, conf, sendp, srp1

conf.verb = 0
conf.checkIPaddr = False  # replies go to 255.255.255.255 / yiaddr, not to our 0.0.0.0

COOKIE = b"\x63\x82\x53\x63"
MALFORMED_XID = 0x7E2E0100  # the first malformed kind's xid; each kind adds its index


def mac_bytes(mac):
    return bytes.fromhex(mac.replace(":", ""))


def l2(mac):
    return Ether(src=mac, dst="ff:ff:ff:ff:ff:ff")


def l3(**ip):
    return IP(src="0.0.0.0", dst="255.255.255.255", **ip)


def bootp_fixed(mac, xid, hlen=6):
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
    """Each kind has its own xid (MALFORMED_XID + index), so a reply names what it answered."""

    def good(xid):
        return bootp_fixed(mac, xid=xid) + COOKIE + discover_opts()

    def fixed(xid, **kw):
        return bootp_fixed(mac, xid=xid, **kw)

    kinds = [
        ("truncated_bootp", lambda x: frame(mac, good(x)[:100])),
        ("truncated_before_cookie", lambda x: frame(mac, good(x)[:236])),
        ("bad_ip_total_length_long", lambda x: frame(mac, good(x), ip={"len": 1400})),
        ("bad_ip_total_length_short", lambda x: frame(mac, good(x), ip={"len": 24})),
        ("bad_udp_length_long", lambda x: frame(mac, good(x), udp={"len": 1400})),
        ("bad_udp_length_short", lambda x: frame(mac, good(x), udp={"len": 5})),
        ("bad_udp_checksum", lambda x: frame(mac, good(x), udp={"chksum": 0x1234})),
        (
            "options_past_end",
            lambda x: frame(mac, fixed(x) + COOKIE + b"\x35\x01\x01" + b"\x0c\xc8hello"),
        ),
        (
            "option61_longer_than_packet",
            lambda x: frame(mac, fixed(x) + COOKIE + b"\x35\x01\x01" + b"\x3d\xff\x01\x02\x03"),
        ),
        ("hlen_over_16", lambda x: frame(mac, fixed(x, hlen=200) + COOKIE + discover_opts())),
        (
            "option53_length_2",
            lambda x: frame(mac, fixed(x) + COOKIE + b"\x35\x02\x01\x01" + b"\xff"),
        ),
        ("option53_length_0", lambda x: frame(mac, fixed(x) + COOKIE + b"\x35\x00" + b"\xff")),
        (
            "option53_unknown_type",
            lambda x: frame(mac, fixed(x) + COOKIE + b"\x35\x01\xee" + b"\xff"),
        ),
        (
            "bad_magic_cookie",
            lambda x: frame(mac, fixed(x) + b"\xde\xad\xbe\xef" + discover_opts()),
        ),
        (
            "overload_past_end",
            lambda x: frame(mac, fixed(x) + COOKIE + b"\x35\x01\x01\x34\x01\x03" + b"\xff"),
        ),
        ("empty_udp", lambda x: frame(mac, b"")),
        ("bootreply_op", lambda x: frame(mac, b"\x02" + good(x)[1:])),
    ]
    for i, (name, build) in enumerate(kinds):
        xid = MALFORMED_XID + i
        sendp(build(xid), iface=iface)
        print("sent", name, hex(xid))
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
        for _ in range(5):
            ans = srp1(pkt, iface=iface, timeout=5)
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


def message_type(ans):
    for o in ans[DHCP].options:
        if isinstance(o, tuple) and o[0] == "message-type":
            return o[1]
    return None


def dora(iface, macs, decline=False):
    """Each client's REQUEST is sent once: the answer (or its absence) is the server's. With
    `decline`, an ACKed client then DECLINEs its address (RFC 2131 section 4.4.1: options 50
    and 54, ciaddr 0), as one that found it in use by ARP would."""
    rng = random.Random(0xD0DA)
    for mac in macs:
        xid = rng.getrandbits(32)
        bootp = BOOTP(chaddr=mac_bytes(mac), xid=xid, flags=0x8000)
        udp = UDP(sport=68, dport=67)
        discover = l2(mac) / l3() / udp / bootp / DHCP(options=[("message-type", "discover"), "end"])
        offer = None
        for _ in range(3):
            offer = srp1(discover, iface=iface, timeout=3)
            if offer is not None and DHCP in offer and message_type(offer) == 2:
                break
            offer = None
        if offer is None:
            print("reply", mac, "no-offer")
            sys.stdout.flush()
            continue
        opts = [
            ("message-type", "request"),
            ("requested_addr", offer[BOOTP].yiaddr),
            ("server_id", offer[IP].src),
            "end",
        ]
        request = l2(mac) / l3() / udp / bootp / DHCP(options=opts)
        ans = srp1(request, iface=iface, timeout=5)
        if ans is None or DHCP not in ans:
            print("reply", mac, "none", offer[BOOTP].yiaddr)
        else:
            kind = {5: "ack", 6: "nak"}.get(message_type(ans), "other")
            if decline and kind == "ack":
                opts = [
                    ("message-type", "decline"),
                    ("requested_addr", ans[BOOTP].yiaddr),
                    ("server_id", offer[IP].src),
                    "end",
                ]
                sendp(l2(mac) / l3() / udp / bootp / DHCP(options=opts), iface=iface)
                kind = "declined"
            print("reply", mac, kind, ans[BOOTP].yiaddr)
        sys.stdout.flush()


def main():
    mode = sys.argv[1]
    if mode == "malformed":
        malformed(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    elif mode == "init-reboot":
        init_reboot(sys.argv[2], sys.argv[3:])
    elif mode == "dora":
        dora(sys.argv[2], sys.argv[3:])
    elif mode == "decline":
        dora(sys.argv[2], sys.argv[3:], decline=True)
    else:
        sys.exit("unknown mode " + mode)


if __name__ == "__main__":
    main()
