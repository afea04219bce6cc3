#!/usr/bin/env python3
"""Writes every DHCP frame of the given pcaps as `<pcap stem>_<nn>_<msgtype>.hex` into OUTDIR.

Usage: extract.py OUTDIR FILE.pcap...   (called by capture.sh; classic pcap, Ethernet link type)
Standard library only; the DHCP message type is read from option 53 of the options field.
"""
import os
import struct
import sys

NAMES = {1: "discover", 2: "offer", 3: "request", 4: "decline", 5: "ack", 6: "nak",
         7: "release", 8: "inform"}


def frames(path):
    with open(path, "rb") as f:
        data = f.read()
    magic = data[:4]
    endian = "<" if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    off = 24
    while off + 16 <= len(data):
        _, _, incl, _ = struct.unpack(endian + "IIII", data[off:off + 16])
        off += 16
        yield data[off:off + incl]
        off += incl


def msg_type(frame):
    off = 14
    if frame[12:14] == b"\x81\x00":
        off += 4
    ihl = (frame[off] & 0x0F) * 4
    dhcp = frame[off + ihl + 8:]
    if dhcp[236:240] != b"\x63\x82\x53\x63":
        return "bootp"
    i = 240
    while i < len(dhcp):
        code = dhcp[i]
        if code == 0:
            i += 1
            continue
        if code == 255 or i + 1 >= len(dhcp):
            break
        length = dhcp[i + 1]
        if code == 53 and length == 1:
            return NAMES.get(dhcp[i + 2], "type%d" % dhcp[i + 2])
        i += 2 + length
    return "dhcp"


def main():
    out = sys.argv[1]
    for path in sys.argv[2:]:
        stem = os.path.splitext(os.path.basename(path))[0]
        for n, frame in enumerate(frames(path), 1):
            name = "%s_%02d_%s.hex" % (stem, n, msg_type(frame))
            with open(os.path.join(out, name), "w") as f:
                f.write(frame.hex() + "\n")


if __name__ == "__main__":
    main()
