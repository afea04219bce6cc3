#!/usr/bin/python3
"""Plot completed DORA exchanges/s against the offered rate, one line per server.

    /usr/bin/python3 bench/load/plot.py bench/results/packet-vs-kea.png \
        bench/results/packet-vs-kea.tsv bench/results/tandem-async.tsv

Reads the TSVs that packet-vs-kea.sh writes (server, offered, discover_sent, acks,
completed_per_s, drop_pct). Needs matplotlib (Debian: python3-matplotlib).
"""
import csv
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main(png: str, *tsvs: str) -> None:
    series: dict[str, list[tuple[int, int, float]]] = {}
    for tsv in tsvs:
        with open(tsv, newline="") as f:
            for row in csv.DictReader(f, delimiter="\t"):
                series.setdefault(row["server"], []).append(
                    (int(row["offered"]), int(row["completed_per_s"]), float(row["drop_pct"]))
                )
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    top = max(r for pts in series.values() for r, _, _ in pts)
    ax.plot([0, top], [0, top], color="0.7", linestyle="--", label="offered (no loss)")
    for server, pts in series.items():
        pts.sort()
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=server)
        for r, c, d in pts:
            ax.annotate(f"{d:.1f}%", (r, c), textcoords="offset points", xytext=(4, -12), fontsize=7)
    ax.set_xlabel("offered DORA exchanges/s (perfdhcp -r)")
    ax.set_ylabel("completed exchanges/s (ACKs / period)")
    ax.set_title("perfdhcp DORA/s, server on one core (labels: exchanges dropped)")
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(png)


if __name__ == "__main__":
    main(*sys.argv[1:])
