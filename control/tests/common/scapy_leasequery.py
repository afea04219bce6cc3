"""A scripted relay agent for tandem's leasequery end-to-end test (e2e_leasequery.rs).

It relays clients' DHCP exchanges as a relay agent would (giaddr set, option 82 added, UDP
from and to port 67), then asks the servers about the leases as an access concentrator does:
RFC 4388 DHCPLEASEQUERY over UDP (by IP, MAC, client-id; RFC 6148 by remote-id) and RFC 6926
DHCPBULKLEASEQUERY over TCP. Every DHCP message is built and parsed byte by byte here (scapy
knows neither the leasequery message types nor their options); scapy sniffs the replies off
the wire, so their Ethernet, IPv4 and UDP headers can be judged too.

  scapy_leasequery.py dora IFACE GIADDR SPEC OUT    relayed DORA, then a renewal, per client
  scapy_leasequery.py query IFACE GIADDR SPEC OUT   DHCPLEASEQUERYs over UDP
  scapy_leasequery.py bulk GIADDR SPEC OUT          DHCPBULKLEASEQUERYs over TCP

SPEC is a JSON file (below, per mode); OUT gets one JSON object per line, one per client or
query. Nothing is judged here: the test reads every field.

A reply, wherever it appears in OUT, is {"op", "htype", "hlen", "xid", "ciaddr", "yiaddr",
"giaddr", "chaddr" (hex of hlen bytes), "type" (option 53, or null), "options" ({"code": hex},
split options joined, RFC 3396)}; a reply sniffed off the wire adds "eth_src", "eth_dst",
"ip_src", "ip_dst", "sport", "dport" and "delivered" (a socket bound to GIADDR:67 received a
datagram with its xid from that source, so the kernel took its checksums).
"""

import json
import random
import socket
import struct
import sys
import threading
import time

from scapy.all import UDP, AsyncSniffer, Ether, IP, conf

conf.verb = 0

COOKIE = b"\x63\x82\x53\x63"
BOOTREQUEST = 1
DISCOVER, OFFER, REQUEST, ACK, NAK = 1, 2, 3, 5, 6
LEASEQUERY, BULKLEASEQUERY, LEASEQUERYDONE = 10, 14, 15
# Remote-ID (RFC 3046), link selection (RFC 3527) and Relay-ID (RFC 6925) sub-options of
# option 82.
REMOTE_ID, LINK_SELECTION, RELAY_ID = 2, 5, 12


def log(*args):
    print(*args, file=sys.stderr, flush=True)


def ip4(addr):
    return socket.inet_aton(addr or "0.0.0.0")


def mac_bytes(mac):
    return bytes.fromhex(mac.replace(":", "")) if mac else b""


def option(code, value):
    out = b""
    while True:  # RFC 3396: a value over 255 bytes is split into consecutive options
        out += bytes([code, min(len(value), 255)]) + value[:255]
        value = value[255:]
        if not value:
            return out


def message(msg_type, xid, giaddr="0.0.0.0", ciaddr="0.0.0.0", mac=None, hops=0, options=()):
    """A BOOTREQUEST: `mac` fills htype 1, hlen 6 and chaddr; without it they stay zero (as a
    leasequery by IP, client-id or remote-id must have them, RFC 4388 section 6.2)."""
    chaddr = mac_bytes(mac)
    htype, hlen = (1, len(chaddr)) if chaddr else (0, 0)
    hdr = struct.pack("!BBBBIHH", BOOTREQUEST, htype, hlen, hops, xid, 0, 0)
    hdr += ip4(ciaddr) + ip4(None) + ip4(None) + ip4(giaddr)
    hdr += chaddr.ljust(16, b"\x00") + b"\x00" * 192
    body = option(53, bytes([msg_type]))
    for code, value in options:
        body += option(code, value)
    return hdr + COOKIE + body + b"\xff"


def parse(data):
    """A DHCP message's fields and options, or None if it is not one."""
    if len(data) < 240 or data[236:240] != COOKIE:
        return None
    op, htype, hlen, _, xid = struct.unpack("!BBBBI", data[:8])
    opts = {}
    i = 240
    while i < len(data):
        code = data[i]
        if code == 255:
            break
        if code == 0:
            i += 1
            continue
        if i + 1 >= len(data):
            break
        n = data[i + 1]
        opts[code] = opts.get(code, b"") + data[i + 2 : i + 2 + n]
        i += 2 + n
    t = opts.get(53)
    return {
        "op": op,
        "htype": htype,
        "hlen": hlen,
        "xid": xid,
        "ciaddr": socket.inet_ntoa(data[12:16]),
        "yiaddr": socket.inet_ntoa(data[16:20]),
        "giaddr": socket.inet_ntoa(data[24:28]),
        "chaddr": data[28 : 28 + min(hlen, 16)].hex(),
        "type": t[0] if t and len(t) == 1 else None,
        "options": {str(k): v.hex() for k, v in sorted(opts.items())},
    }


class Relay:
    """The relay agent's UDP side: sends from GIADDR:67, and hears replies twice, on the wire
    (scapy, every header) and through a socket bound to GIADDR:67 (what the kernel accepts)."""

    def __init__(self, iface, giaddr):
        self.giaddr = giaddr
        self.mac = open(f"/sys/class/net/{iface}/address").read().strip()
        self.cond = threading.Condition()
        self.sniffed = []
        self.delivered = set()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((giaddr, 67))
        self.sock.settimeout(0.2)
        self.running = True
        self.reader = threading.Thread(target=self.read, daemon=True)
        self.reader.start()
        started = threading.Event()
        self.sniffer = AsyncSniffer(
            iface=iface,
            filter="udp and dst port 67",
            prn=self.on_frame,
            store=False,
            started_callback=started.set,
        )
        self.sniffer.start()
        if not started.wait(10):
            sys.exit("the sniffer did not start in 10 s")

    def read(self):
        while self.running:
            try:
                data, (src, _) = self.sock.recvfrom(65535)
            except (socket.timeout, OSError):
                continue
            m = parse(data)
            if m is not None:
                with self.cond:
                    self.delivered.add((src, m["xid"]))
                    self.cond.notify_all()

    def on_frame(self, pkt):
        if Ether not in pkt or IP not in pkt or UDP not in pkt:
            return
        m = parse(bytes(pkt[UDP].payload))
        if m is None or m["op"] != 2:  # our own requests, seen leaving
            return
        m.update(
            eth_src=pkt[Ether].src,
            eth_dst=pkt[Ether].dst,
            ip_src=pkt[IP].src,
            ip_dst=pkt[IP].dst,
            sport=pkt[UDP].sport,
            dport=pkt[UDP].dport,
        )
        with self.cond:
            self.sniffed.append(m)
            self.cond.notify_all()

    def send(self, server, data):
        self.sock.sendto(data, (server, 67))

    def replies(self, xid, timeout, done=lambda rs: False, grace=0.3):
        """Every reply with `xid` seen within `timeout` s, or within `grace` s after `done`
        says the ones so far are enough (a second server's answer would come by then)."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                got = [m for m in self.sniffed if m["xid"] == xid]
                now = time.monotonic()
                if done(got):
                    deadline = min(deadline, now + grace)
                    done = lambda rs: False  # noqa: E731 (the grace period runs once)
                if now >= deadline:
                    break
                self.cond.wait(deadline - now)
            # The socket's copy may trail the sniffer's by a moment.
            end = time.monotonic() + 0.5
            while any((m["ip_src"], xid) not in self.delivered for m in got):
                left = end - time.monotonic()
                if left <= 0:
                    break
                self.cond.wait(left)
            for m in got:
                m["delivered"] = (m["ip_src"], xid) in self.delivered
            return got

    def close(self):
        self.running = False
        try:
            self.sniffer.stop()
        except Exception as e:  # a sniffer that already died has nothing to stop
            log("sniffer stop:", e)
        self.reader.join(2)
        self.sock.close()


def of_type(*types):
    return lambda rs: any(r["type"] in types for r in rs)


def client_options(c, extra=()):
    opts = list(extra)
    if c.get("cid"):
        opts.append((61, bytes.fromhex(c["cid"])))
    opts.append((55, bytes([1, 3, 51, 54])))
    opts.append((82, bytes.fromhex(c["opt82"])))
    return opts


def dora(iface, giaddr, spec, out):
    """Per client: a DISCOVER to every server (as a relay configured with both does), then a
    REQUEST of the first OFFER to every server; then, once all are bound, a renewal through
    the relay to the server that ACKed, repeated while its lease is no longer than
    `min_lease` (the first lease of a failover pair is MCLT-capped until the partner has
    acknowledged the binding)."""
    relay = Relay(iface, giaddr)
    rng = random.Random(0x1EA5E)
    servers = spec["servers"]
    results = []
    for c in spec["clients"]:
        r = {"mac": c["mac"], "offers": [], "request": [], "renewals": []}
        offers = []
        for _ in range(3):
            xid = rng.getrandbits(32)
            opts = client_options(c)
            d = message(DISCOVER, xid, giaddr, mac=c["mac"], hops=1, options=opts)
            for s in servers:
                relay.send(s, d)
            offers = [m for m in relay.replies(xid, 3, of_type(OFFER)) if m["type"] == OFFER]
            if offers:
                break
        r["offers"] = offers
        if offers:
            o = offers[0]
            xid = rng.getrandbits(32)
            extra = [(50, ip4(o["yiaddr"])), (54, ip4(o["ip_src"]))]
            opts = client_options(c, extra)
            q = message(REQUEST, xid, giaddr, mac=c["mac"], hops=1, options=opts)
            for s in servers:
                relay.send(s, q)
            r["request"] = relay.replies(xid, 3, of_type(ACK, NAK))
        results.append(r)
    time.sleep(spec.get("renew_after", 2))
    for c, r in zip(spec["clients"], results):
        acks = [m for m in r["request"] if m["type"] == ACK]
        if not acks:
            continue
        a = acks[0]
        for attempt in range(spec.get("renew_tries", 4)):
            if attempt:
                time.sleep(2)
            xid = rng.getrandbits(32)
            opts = client_options(c)
            q = message(REQUEST, xid, giaddr, a["yiaddr"], c["mac"], hops=1, options=opts)
            relay.send(a["ip_src"], q)
            got = relay.replies(xid, 3, of_type(ACK, NAK))
            r["renewals"].append(got)
            lease = [m["options"].get("51") for m in got if m["type"] == ACK]
            if lease and lease[0] and int(lease[0], 16) > spec.get("min_lease", 0):
                break
    relay.close()
    with open(out, "w") as f:
        for r in results:
            f.write(json.dumps(r) + "\n")


def query_options(q):
    opts = []
    if q.get("cid"):
        opts.append((61, bytes.fromhex(q["cid"])))
    sub = b""
    if q.get("remote_id"):
        sub += option(REMOTE_ID, bytes.fromhex(q["remote_id"]))
    if q.get("relay_id"):
        sub += option(RELAY_ID, bytes.fromhex(q["relay_id"]))
    if q.get("link"):
        sub += option(LINK_SELECTION, bytes(int(x) for x in q["link"].split(".")))
    if sub:
        opts.append((82, sub))
    opts.append((55, bytes(q.get("prl", []))))
    return opts


def query(iface, giaddr, spec, out):
    """Each DHCPLEASEQUERY unicast to its server from GIADDR:67 with giaddr GIADDR (RFC 4388
    section 6.2), and every reply with its xid within `timeout` s (0.3 s after the queried
    server's own, if it answers)."""
    relay = Relay(iface, giaddr)
    rng = random.Random()
    with open(out, "w") as f:
        for q in spec["queries"]:
            xid = rng.getrandbits(32)
            opts = query_options(q)
            m = message(LEASEQUERY, xid, giaddr, q.get("ciaddr"), q.get("mac"), options=opts)
            relay.send(q["server"], m)
            answered = lambda rs, s=q["server"]: any(r["ip_src"] == s for r in rs)  # noqa: E731
            got = relay.replies(xid, q.get("timeout", 3), answered)
            r = {"id": q["id"], "server": q["server"], "xid": xid, "replies": got}
            f.write(json.dumps(r) + "\n")
            f.flush()
    relay.close()


def recv_exactly(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError(f"connection closed after {len(buf)} of {n} bytes")
        buf += chunk
    return buf


def bulk(giaddr, spec, out):
    """One TCP connection from GIADDR to SERVER:67; each DHCPBULKLEASEQUERY in turn, framed by
    its 2-byte length (RFC 6926 section 6.1), and the messages read until the
    DHCPLEASEQUERYDONE of its xid. A closed or silent (`timeout` s) connection ends the run:
    that query and every later one get an "error"."""
    rng = random.Random()
    results = []
    error = None
    sock = None
    try:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.settimeout(spec.get("timeout", 5))
        sock.bind((giaddr, 0))
        sock.connect((spec["server"], 67))
    except OSError as e:
        error = f"connect: {e}"
    for q in spec["queries"]:
        xid = rng.getrandbits(32)
        r = {"id": q["id"], "xid": xid, "messages": [], "error": error}
        results.append(r)
        if error:
            continue
        opts = query_options(q)
        m = message(BULKLEASEQUERY, xid, ciaddr=q.get("ciaddr"), mac=q.get("mac"), options=opts)
        try:
            sock.sendall(struct.pack("!H", len(m)) + m)
            while True:
                (n,) = struct.unpack("!H", recv_exactly(sock, 2))
                msg = parse(recv_exactly(sock, n))
                if msg is None:
                    raise ValueError(f"a {n}-byte message that is not DHCP")
                r["messages"].append(msg)
                if msg["xid"] == xid and msg["type"] == LEASEQUERYDONE:
                    break
                if len(r["messages"]) > 10000:
                    raise ValueError("more than 10000 messages")
        except (OSError, ValueError) as e:
            error = f"{type(e).__name__}: {e}"
            r["error"] = error
    if sock is not None:
        sock.close()
    with open(out, "w") as f:
        for r in results:
            f.write(json.dumps(r) + "\n")


def main():
    mode = sys.argv[1]
    if mode == "dora":
        dora(sys.argv[2], sys.argv[3], json.load(open(sys.argv[4])), sys.argv[5])
    elif mode == "query":
        query(sys.argv[2], sys.argv[3], json.load(open(sys.argv[4])), sys.argv[5])
    elif mode == "bulk":
        bulk(sys.argv[2], json.load(open(sys.argv[3])), sys.argv[4])
    else:
        sys.exit("unknown mode " + mode)


if __name__ == "__main__":
    main()
