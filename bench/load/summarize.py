#!/usr/bin/env python3
"""Summarise side-by-side.sh's runs.tsv: medians over repeats, the highest offered rate with
<= 2.5 % drops, goodput at saturation, latency, server CPU per DORA, ratios to Kea and to the
ceiling (the `responder` row: a stateless responder on the same testbed); write the plots.

    python3 bench/load/summarize.py RUNS.tsv OUTDIR

Prints Markdown on stdout. Writes OUTDIR/dora.{png,svg} (completed DORA/s against offered
load, one panel per generator) and OUTDIR/latency.{png,svg} (tandem-loadgen's DISCOVER->ACK
p50/p99/p99.9 against offered load). PNG with matplotlib when it is installed, else SVG
written here.
"""
import csv
import statistics
import sys
from collections import defaultdict

DROP_OK = 2.5


def num(x):
    try:
        return float(x)
    except (TypeError, ValueError):
        return None


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def fmt(x, digits=0):
    if x is None:
        return "-"
    return f"{x:,.{digits}f}"


def load(path):
    cells = defaultdict(list)  # (server, gen, offered) -> rows
    order = []
    with open(path, newline="") as f:
        for row in csv.DictReader(f, delimiter="\t"):
            key = (row["server"], row["generator"], int(row["offered"]))
            cells[key].append(row)
            if (row["server"], row["generator"]) not in order:
                order.append((row["server"], row["generator"]))
    return cells, order


def summarize(cells, order):
    med = {}
    for key, rows in cells.items():
        med[key] = {
            "per_s": median([num(r["completed_per_s"]) for r in rows]),
            "drop": median([num(r["drop_pct"]) for r in rows]),
            "avg": median([num(r["lat_avg_ms"]) for r in rows]),
            "p50": median([num(r["lat_p50_ms"]) for r in rows]),
            "p99": median([num(r["lat_p99_ms"]) for r in rows]),
            "p999": median([num(r["lat_p999_ms"]) for r in rows]),
            "cpu": median([num(r.get("cpu_us_per_dora")) for r in rows]),
            "n": len(rows),
            "note": ",".join(sorted({r["note"] for r in rows if r["note"] not in ("", "-")})),
        }
    per = {}
    for server, gen in order:
        rates = sorted(r for (s, g, r) in med if s == server and g == gen)
        ok = [r for r in rates if med[(server, gen, r)]["drop"] is not None and med[(server, gen, r)]["drop"] <= DROP_OK]
        best = max(ok) if ok else None
        goodput = max((med[(server, gen, r)]["per_s"] or 0) for r in rates) if rates else None
        at = med[(server, gen, best)] if best is not None else None
        notes = ",".join(sorted({med[(server, gen, r)]["note"] for r in rates if med[(server, gen, r)]["note"]}))
        per[(server, gen)] = {"rates": rates, "best": best, "goodput": goodput, "at": at, "note": notes}
    return med, per


def markdown(med, per, order):
    out = []
    gens = []
    for _, g in order:
        if g not in gens:
            gens.append(g)
    for gen in gens:
        servers = [s for s, g in order if g == gen]
        kea = per.get(("kea", gen))
        ceiling = per.get(("responder", gen))
        out.append(f"### Under {gen}\n")
        out.append(
            "| server | max offered at <= 2.5 % drops | goodput at saturation (DORA/s) | "
            "latency at that rate: avg / p50 / p99 / p99.9 (ms) | max rate / Kea | goodput / Kea"
            " | goodput / ceiling |"
        )
        out.append("|---|---|---|---|---|---|---|")
        for s in servers:
            p = per[(s, gen)]
            at = p["at"] or {}
            lat = " / ".join(fmt(at.get(k), 2) for k in ("avg", "p50", "p99", "p999")) if at else "-"
            r1 = r2 = "-"
            if kea and kea["best"] and p["best"]:
                r1 = f"{p['best'] / kea['best']:.2f}"
            elif kea and not kea["best"] and p["best"]:
                r1 = "> Kea (Kea: none)"
            if kea and kea["goodput"] and p["goodput"] is not None:
                r2 = f"{p['goodput'] / kea['goodput']:.2f}"
            name = s + (f" ({p['note']})" if p["note"] else "")
            best = fmt(p["best"]) if p["best"] is not None else f"none (< {min(p['rates']):,})"
            r3 = "-"
            if ceiling and ceiling["goodput"] and p["goodput"] is not None:
                r3 = f"{p['goodput'] / ceiling['goodput']:.2f}"
            out.append(f"| {name} | {best} | {fmt(p['goodput'])} | {lat} | {r1} | {r2} | {r3} |")
        out.append("")
        rates = sorted({r for (s, g, r) in med if g == gen})

        def by_rate(cell):
            out.append("| offered DORA/s | " + " | ".join(servers) + " |")
            out.append("|---|" + "---|" * len(servers))
            for r in rates:
                out.append("| " + " | ".join([f"{r:,}"] + [cell(s, r) for s in servers]) + " |")
            out.append("")

        def dora(s, r):
            m = med.get((s, gen, r))
            return f"{fmt(m['per_s'])} ({fmt(m['drop'], 2)} %)" if m else "-"

        def cpu(s, r):
            m, c = med.get((s, gen, r)), med.get(("responder", gen, r))
            if not m or m.get("cpu") is None:
                return "-"
            if s != "responder" and c and c.get("cpu"):
                return f"{fmt(m['cpu'], 1)} ({m['cpu'] / c['cpu']:.2f}×)"
            return fmt(m["cpu"], 1)

        by_rate(dora)
        if any(m.get("cpu") is not None for (s, g, r), m in med.items() if g == gen):
            out.append("Server CPU per completed DORA (µs, median; the server process's user + system time):\n")
            by_rate(cpu)
    out.append(
        "Cells: median completed DORA/s over the repeats (median drop %). Ratios divide by Kea's "
        "figure, or the ceiling's (the responder's: CPU ratios in parentheses), under the same "
        "generator in the same run."
    )
    return "\n".join(out)


def series(med, gen, key):
    data = defaultdict(list)
    for (s, g, r), m in sorted(med.items()):
        if g == gen and m.get(key) is not None:
            data[s].append((r, m[key]))
    return data


def plot_mpl(med, gens, outdir):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(gens), figsize=(6.5 * len(gens), 4.5), dpi=110, squeeze=False)
    for ax, gen in zip(axes[0], gens):
        data = series(med, gen, "per_s")
        top = max((r for pts in data.values() for r, _ in pts), default=1)
        ax.plot([0, top], [0, top], color="0.7", linestyle="--", label="offered (no loss)")
        for s, pts in data.items():
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=s)
        ax.set_title(f"under {gen}")
        ax.set_xlabel("offered DORA/s")
        ax.set_ylabel("completed DORA/s (median)")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(f"{outdir}/dora.png")
    plt.close(fig)

    lg = [g for g in gens if g == "loadgen"]
    if not lg:
        return ["dora.png"]
    fig, ax = plt.subplots(figsize=(7.5, 4.5), dpi=110)
    styles = {"p50": "-", "p99": "--", "p999": ":"}
    colors = {}
    for key, ls in styles.items():
        for s, pts in series(med, "loadgen", key).items():
            line = ax.plot([p[0] for p in pts], [max(p[1], 1e-3) for p in pts], linestyle=ls, marker="o",
                           color=colors.get(s), label=f"{s} {key.replace('p999', 'p99.9')}")
            colors.setdefault(s, line[0].get_color())
    ax.set_yscale("log")
    ax.set_xlabel("offered DORA/s")
    ax.set_ylabel("DISCOVER->ACK latency (ms, log)")
    ax.set_title("tandem-loadgen latency percentiles (median over repeats)")
    ax.grid(True, alpha=0.3, which="both")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(f"{outdir}/latency.png")
    plt.close(fig)
    return ["dora.png", "latency.png"]


PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2"]


def svg_chart(title, xlabel, ylabel, data, path, log=False):
    import math

    w, h, ml, mr, mt, mb = 720, 440, 70, 190, 30, 50
    pts = [(x, y) for s in data.values() for x, y in s]
    if not pts:
        return
    xmax = max(x for x, _ in pts) or 1
    ys = [y for _, y in pts if (y > 0 or not log)]
    ymax = max(ys) if ys else 1
    ymin = min(ys) if (ys and log) else 0

    def fy(y):
        if log:
            y = max(y, ymin)
            lo, hi = math.log10(ymin), math.log10(ymax) if ymax > ymin else math.log10(ymin) + 1
            return mt + (h - mt - mb) * (1 - (math.log10(y) - lo) / (hi - lo or 1))
        return mt + (h - mt - mb) * (1 - y / (ymax or 1))

    def fx(x):
        return ml + (w - ml - mr) * x / xmax

    el = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="11">',
          f'<rect width="{w}" height="{h}" fill="white"/>',
          f'<text x="{w / 2}" y="18" text-anchor="middle" font-size="13">{title}</text>',
          f'<line x1="{ml}" y1="{h - mb}" x2="{w - mr}" y2="{h - mb}" stroke="black"/>',
          f'<line x1="{ml}" y1="{mt}" x2="{ml}" y2="{h - mb}" stroke="black"/>',
          f'<text x="{(ml + w - mr) / 2}" y="{h - 12}" text-anchor="middle">{xlabel}</text>',
          f'<text x="14" y="{h / 2}" transform="rotate(-90 14 {h / 2})" text-anchor="middle">{ylabel}</text>']
    for i in range(5):
        x = xmax * i / 4
        el.append(f'<text x="{fx(x)}" y="{h - mb + 15}" text-anchor="middle">{x:,.0f}</text>')
        y = (ymin * (ymax / ymin) ** (i / 4)) if log else ymax * i / 4
        el.append(f'<text x="{ml - 5}" y="{fy(y) + 4}" text-anchor="end">{y:,.3g}</text>')
        el.append(f'<line x1="{ml}" y1="{fy(y)}" x2="{w - mr}" y2="{fy(y)}" stroke="#ddd"/>')
    for i, (name, s) in enumerate(data.items()):
        c = PALETTE[i % len(PALETTE)]
        path_d = " ".join(f"{'M' if j == 0 else 'L'}{fx(x):.1f},{fy(y):.1f}" for j, (x, y) in enumerate(s))
        el.append(f'<path d="{path_d}" fill="none" stroke="{c}" stroke-width="2"/>')
        for x, y in s:
            el.append(f'<circle cx="{fx(x):.1f}" cy="{fy(y):.1f}" r="3" fill="{c}"/>')
        el.append(f'<rect x="{w - mr + 10}" y="{mt + 16 * i}" width="10" height="10" fill="{c}"/>')
        el.append(f'<text x="{w - mr + 25}" y="{mt + 16 * i + 9}">{name}</text>')
    el.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(el))


def plot_svg(med, gens, outdir):
    files = []
    for gen in gens:
        svg_chart(f"completed DORA/s under {gen}", "offered DORA/s", "completed DORA/s",
                  series(med, gen, "per_s"), f"{outdir}/dora-{gen}.svg")
        files.append(f"dora-{gen}.svg")
    if "loadgen" in gens:
        data = {}
        for key in ("p50", "p99", "p999"):
            for s, pts in series(med, "loadgen", key).items():
                data[f"{s} {key}"] = pts
        svg_chart("tandem-loadgen DISCOVER->ACK latency (ms)", "offered DORA/s", "ms (log)", data,
                  f"{outdir}/latency.svg", log=True)
        files.append("latency.svg")
    return files


def main(runs, outdir):
    cells, order = load(runs)
    med, per = summarize(cells, order)
    print(markdown(med, per, order))
    gens = []
    for _, g in order:
        if g not in gens:
            gens.append(g)
    try:
        files = plot_mpl(med, gens, outdir)
    except ImportError:
        files = plot_svg(med, gens, outdir)
    print("\nPlots: " + ", ".join(f"{outdir}/{f}" for f in files))


if __name__ == "__main__":
    main(*sys.argv[1:])
