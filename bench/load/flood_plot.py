#!/usr/bin/python3
"""Plot the legitimate clients' completion ratio (top) and DISCOVER->ACK p99 (bottom) against the
flood multiple, one line per shape.

    /usr/bin/python3 bench/load/flood_plot.py bench/results/flood/flood.tsv [out.png]

Reads the TSV that flood.sh writes (shape, multiple, completion_ratio, legit_drop_pct, ...);
the PNG goes next to it (flood.png) unless named. The no-flood row (shape "none", multiple 0)
starts every shape's line. Needs matplotlib (Debian: python3-matplotlib).
"""
import csv
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

LABELS = {
    "circuit": "circuit: relayed, one circuit-id, random chaddr",
    "direct": "direct: random chaddr, not relayed",
    "mac": "mac: one chaddr, not relayed",
}


def main(tsv: str, png: str = "") -> None:
    png = png or os.path.join(os.path.dirname(tsv) or ".", "flood.png")
    base = None
    series: dict[str, list[tuple[int, float, str, float]]] = {}
    legit_rate = "?"
    with open(tsv, newline="") as f:
        for row in csv.DictReader(f, delimiter="\t"):
            legit_rate = row["legit_rate"]
            if row["completion_ratio"] in ("", "-"):
                continue
            pt = (
                int(row["multiple"]),
                float(row["completion_ratio"]),
                row["legit_drop_pct"],
                float(row["dora_p99_ms"]),
            )
            if row["shape"] == "none":
                base = pt
            else:
                series.setdefault(row["shape"], []).append(pt)
    fig, (ax, lat) = plt.subplots(2, 1, figsize=(7.5, 7), dpi=120, sharex=True, height_ratios=[3, 2])
    for shape, pts in sorted(series.items()):
        if base is not None:
            pts.append(base)
        pts.sort()
        label = LABELS.get(shape, shape)
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=label)
        lat.plot([p[0] for p in pts], [p[3] for p in pts], marker="o", label=label)
        for m, r, d, _ in pts:
            if m > 0:
                ax.annotate(f"{float(d):.1f}%", (m, r), textcoords="offset points", xytext=(4, -11), fontsize=7)
    ax.axhline(1.0, color="0.7", linestyle="--", linewidth=1)
    lat.set_xlabel(f"flood DISCOVERs/s as a multiple of the legitimate rate ({legit_rate} DORA/s)")
    lat.set_ylabel("legitimate DISCOVER->ACK p99 (ms)")
    lat.set_ylim(bottom=0)
    lat.grid(True, alpha=0.3)
    ax.set_ylabel("legitimate DORA/s completed / without flood")
    ax.set_ylim(bottom=0, top=max(1.1, max((p[1] for pts in series.values() for p in pts), default=1) + 0.05))
    ax.set_title("tandemd (XDP, one worker) under a DISCOVER flood (labels: legitimate drops)")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    fig.savefig(png)
    print(png)


if __name__ == "__main__":
    main(*sys.argv[1:])
