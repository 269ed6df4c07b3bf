#!/usr/bin/python3
"""bench/overload_plot.py: draw what bench/overload wrote with --csv.

    bench/overload_plot.py overload.csv [overload.png]

One panel per phase, over the phase's seconds: calls answered OK per
second (reaching the client within its deadline), refused per second
(DEADLINE_EXCEEDED + RESOURCE_EXHAUSTED, each also drawn alone), the
calls started per second (the offered load), and on a second axis the
daemon's VmRSS. The warm-up seconds are shaded: the phase's figures are
taken from the rest. Needs Debian's python3-matplotlib.
"""

import csv
import sys

import matplotlib

matplotlib.use("Agg")  # no display: write the file only
import matplotlib.pyplot as plt  # noqa: E402


def read(path):
    """{phase: [row, ...]} in the file's order, numbers as numbers."""
    phases = {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            for key in row:
                if key != "phase":
                    row[key] = float(row[key])
            phases.setdefault(row["phase"], []).append(row)
    return phases


def main():
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__.strip().split("\n\n")[1].strip())
    src = sys.argv[1]
    out = sys.argv[2] if len(sys.argv) == 3 else src.rsplit(".", 1)[0] + ".png"
    phases = read(src)
    if not phases:
        sys.exit("%s: no rows" % src)
    fig, axes = plt.subplots(len(phases), 1, figsize=(9, 2.8 * len(phases)), squeeze=False)
    for ax, (name, rows) in zip(axes[:, 0], phases.items()):
        t = [r["second"] + 0.5 for r in rows]  # a row counts the second that starts there
        refused = [r["deadline_exceeded"] + r["resource_exhausted"] for r in rows]
        ax.plot(t, [r["started"] for r in rows], color="0.6", ls="--", label="started/s")
        ax.plot(t, [r["ok"] for r in rows], color="tab:green", lw=2, label="OK/s")
        ax.plot(t, refused, color="tab:red", lw=2, label="refused/s")
        ax.plot(t, [r["deadline_exceeded"] for r in rows], color="tab:red", lw=0.8, ls=":",
                label="DEADLINE_EXCEEDED/s")
        ax.plot(t, [r["resource_exhausted"] for r in rows], color="tab:purple", lw=0.8, ls=":",
                label="RESOURCE_EXHAUSTED/s")
        warm = [r["second"] for r in rows if r["measured"] == 0]
        if warm:
            ax.axvspan(0, max(warm) + 1, color="0.92", zorder=0)
        ax.set_title(name, loc="left", fontsize=10)
        ax.set_ylabel("calls/s")
        ax.set_ylim(bottom=0)
        rss = ax.twinx()
        rss.plot(t, [r["rss_mb"] for r in rows], color="tab:blue", lw=0.8, label="VmRSS MB")
        rss.set_ylabel("daemon VmRSS, MB", color="tab:blue")
        rss.set_ylim(bottom=0)
        lines = ax.get_legend_handles_labels()
        more = rss.get_legend_handles_labels()
        ax.legend(lines[0] + more[0], lines[1] + more[1], fontsize=7, loc="upper right", ncol=3)
    axes[-1, 0].set_xlabel("seconds since the phase started (shaded: warm-up)")
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    print(out)


if __name__ == "__main__":
    main()
