#!/usr/bin/env python3
"""Fold `perf script` output into stacks and draw them as a flame graph (SVG, no dependencies).

    perf script -i perf.data | python3 bench/load/flamegraph.py --title T OUT.svg [--folded OUT.folded]

Each sample's stack, root first, becomes one path; a frame's width is the share of samples
whose stack passes through it. Frames are named by symbol (offsets and addresses dropped,
Rust hashes `::h0123...` cut); the thread name is the root, so workers, the commit thread and
the control threads stand apart. Hover a frame for its name, samples and share. `--folded`
also writes the folded stacks (`frame;frame;frame count`), the input of other tools; `--top N`
prints the N frames with the most samples of their own (self) and the N threads with the most
samples, and what each sample was doing by the first rule of BREAKDOWN its stack matches (the
worker's and the commit thread's steps), as Markdown tables.
"""
import argparse
import html
import re
import sys
from collections import defaultdict

HASH = re.compile(r"::h[0-9a-f]{16}$")


def frame_name(line):
    # "\t    55d0c0a1b2c3 dataplane::server::DhcpHandler::handle_frame+0x1f3 (/path/tandemd)"
    parts = line.strip().split(None, 1)
    if len(parts) < 2:
        return None
    sym = parts[1]
    sym = re.sub(r" \([^()]*\)$", "", sym)
    sym = re.sub(r"\+0x[0-9a-f]+$", "", sym)
    sym = HASH.sub("", sym)
    return sym or "[unknown]"


def fold(lines):
    stacks = defaultdict(int)
    comm, frames = None, []
    for line in lines:
        if not line.strip():
            if comm is not None:
                stacks[";".join([comm] + frames[::-1])] += 1
            comm, frames = None, []
            continue
        if not line[0].isspace():
            # "tandemd  1234/1240  123.456: 1000 cpu-clock:" : the thread name may hold spaces.
            m = re.match(r"^(.*?)\s+\d+(?:/\d+)?\s", line)
            comm = (m.group(1) if m else line.split()[0]).strip()
            frames = []
            continue
        name = frame_name(line)
        if name:
            frames.append(name)
    if comm is not None:
        stacks[";".join([comm] + frames[::-1])] += 1
    return stacks


def tree(stacks):
    root = {"n": 0, "kids": {}}
    for path, n in stacks.items():
        root["n"] += n
        node = root
        for f in path.split(";"):
            node = node["kids"].setdefault(f, {"n": 0, "kids": {}})
            node["n"] += n
    return root


def color(name):
    h = 0
    for ch in name:
        h = (h * 31 + ord(ch)) & 0xFFFFFFFF
    if name.startswith(("dataplane::", "lease_mmap::", "control::", "failover_core::", "tandemd")):
        return f"rgb({205 + h % 50},{100 + h % 80},{40 + h % 40})"
    if "[k]" in name or name.startswith(("__", "do_", "sys_", "x64_", "entry_", "xsk_", "veth_")):
        return f"rgb({60 + h % 40},{140 + h % 60},{190 + h % 50})"
    return f"rgb({220 + h % 35},{170 + h % 60},{60 + h % 50})"


def render(root, title, out, width=1200, row=16):
    total = max(root["n"], 1)
    rects = []

    def walk(node, name, x, depth):
        w = node["n"] / total * (width - 20)
        if w < 0.3:
            return
        rects.append((x, depth, w, name, node["n"]))
        cx = x
        for k, kid in sorted(node["kids"].items()):
            walk(kid, k, cx, depth + 1)
            cx += kid["n"] / total * (width - 20)

    cx = 10.0
    for k, kid in sorted(root["kids"].items()):
        walk(kid, k, cx, 0)
        cx += kid["n"] / total * (width - 20)
    depth = max((d for _, d, _, _, _ in rects), default=0) + 1
    height = depth * row + 60
    el = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'font-family="monospace" font-size="11">',
        f'<rect width="100%" height="100%" fill="#fafafa"/>',
        f'<text x="10" y="20" font-size="14" font-family="sans-serif">{html.escape(title)}</text>',
        f'<text x="10" y="36" font-family="sans-serif" fill="#555">{total} samples; width = share of '
        f"samples, root (thread) at the bottom; hover for details</text>",
    ]
    for x, d, w, name, n in rects:
        y = height - 10 - (d + 1) * row
        label = html.escape(name)
        el.append(
            f'<g><title>{label} — {n} samples ({n * 100 / total:.2f} %)</title>'
            f'<rect x="{x:.1f}" y="{y}" width="{w:.1f}" height="{row - 1}" fill="{color(name)}"/>'
        )
        chars = int(w / 6.6)
        if chars >= 3:
            text = name if len(name) <= chars else name[: chars - 2] + ".."
            el.append(f'<text x="{x + 2:.1f}" y="{y + row - 4}">{html.escape(text)}</text>')
        el.append("</g>")
    el.append("</svg>")
    with open(out, "w") as f:
        f.write("\n".join(el) + "\n")


# (thread prefix, substrings any of which a frame of the stack holds, what it is). First match wins.
BREAKDOWN = [
    ("commit", ("fdatasync", "ext4_sync_file", "file_fsync"), "commit thread: fdatasync"),
    ("commit", ("pwrite", "ext4_file_write_iter", "vfs_write"), "commit thread: pwrite of the entries"),
    ("commit", ("EventFd::signal", "eventfd_write", "unpark"), "commit thread: waking the worker"),
    ("commit", ("",), "commit thread: other (channel, wake-ups)"),
    ("worker", ("engine::Engine::", "lease_mmap::table::"), "worker: engine decisions (tables, CAS)"),
    ("worker", ("Repr::parse", "frame::parse"), "worker: parsing requests"),
    ("worker", ("emit_reply",), "worker: building replies"),
    ("worker", ("Committer::record", "JournalRecorder::record", "crc32c"), "worker: journal entries"),
    ("worker", ("send_durable", "::durable", "harvest"), "worker: sending held ACKs (own kick)"),
    ("worker", ("::send_lent", "::transmit", "sendto"), "worker: sending the batch (kick)"),
    ("worker", ("poll",), "worker: waiting (poll)"),
    ("worker", ("::recv",), "worker: receive ring"),
    ("worker", ("",), "worker: other"),
    ("responder", ("Repr::parse", "frame::parse"), "responder: parsing requests"),
    ("responder", ("emit_reply",), "responder: building replies"),
    ("responder", ("::send_lent", "::transmit", "sendto"), "responder: sending the batch (kick)"),
    ("responder", ("poll",), "responder: waiting (poll)"),
    ("responder", ("::recv",), "responder: receive ring"),
    ("responder", ("",), "responder: other"),
]


def breakdown(stacks):
    total = max(sum(stacks.values()), 1)
    got = defaultdict(int)
    for path, k in stacks.items():
        frames = path.split(";")
        what = frames[0]
        for thread, keys, name in BREAKDOWN:
            if frames[0].startswith(thread) and any(key in f for key in keys for f in frames[1:]):
                what = name
                break
        got[what] += k
    print("\n| what | samples | share |\n|---|---|---|")
    for name, k in sorted(got.items(), key=lambda kv: -kv[1]):
        print(f"| {name} | {k} | {k * 100 / total:.1f} % |")


def top(stacks, n):
    total = max(sum(stacks.values()), 1)
    own, threads = defaultdict(int), defaultdict(int)
    for path, k in stacks.items():
        frames = path.split(";")
        own[frames[-1]] += k
        threads[frames[0]] += k
    print(f"| thread | samples | share |\n|---|---|---|")
    for name, k in sorted(threads.items(), key=lambda kv: -kv[1])[:n]:
        print(f"| {name} | {k} | {k * 100 / total:.1f} % |")
    print(f"\n| frame (self) | samples | share |\n|---|---|---|")
    for name, k in sorted(own.items(), key=lambda kv: -kv[1])[:n]:
        print(f"| `{name.replace('|', '/')}` | {k} | {k * 100 / total:.1f} % |")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--title", default="flame graph")
    ap.add_argument("--folded")
    ap.add_argument("--input", default="-")
    ap.add_argument("--top", type=int, default=0)
    a = ap.parse_args()
    src = sys.stdin if a.input == "-" else open(a.input, errors="replace")
    stacks = fold(src)
    if a.top:
        top(stacks, a.top)
        breakdown(stacks)
    if a.folded:
        with open(a.folded, "w") as f:
            for path, n in sorted(stacks.items(), key=lambda kv: -kv[1]):
                f.write(f"{path} {n}\n")
    render(tree(stacks), a.title, a.out)


if __name__ == "__main__":
    main()
