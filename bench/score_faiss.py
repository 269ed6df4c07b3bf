#!/usr/bin/python3
"""bench/score_faiss.py: recsysd's exact top-10 scan beside FAISS on the
same vectors, one query at a time and batched, and FAISS's HNSW
(approximate) with its recall.

    bench/score_faiss.py [BUILD_DIR] --python VENV/bin/python
                         [--rows 10000,1000000] [--dim 64] [--factors demo,skewed]
                         [--plot DIR]

Run with the peers' venv (`make bench-peers` makes it: faiss-cpu from
bench/requirements.txt). Steps:
1. bench/score --top 10 --save DIR writes each catalog as the daemon maps
   it, times the scan kernels one query at a time (one thread, rounds
   taking turns, medians), and saves the items, the 64 queries and its
   medians (score.csv).
2. bench/batch --items-npy --users-npy on the same matrices: the daemon's
   BatchRecommend query (sgemm over item blocks, then the exact
   selection), 64 users a batch, top 10, time per user.
3. FAISS on the same arrays, one thread (faiss.omp_set_num_threads(1)),
   like the two above: IndexFlatIP (exact) searched one query at a time
   and 64 at once; IndexHNSWFlat (inner product, M 32, efConstruction 200,
   built on every core) at efSearch 16 to 512: time per query and
   recall@10 against the exact top 10.
Printed per catalog: microseconds per query and the ratio FAISS / recsysd
(above 1: recsysd is faster). With --plot, DIR/score-faiss.png: time per
query for each method and HNSW's recall against its time.
"""

import argparse
import csv
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

ROUNDS = 5  # passes over the 64 queries for FAISS's timings, medians taken


def one_at_a_time(index, queries):
    """The median microseconds of index.search for one query, over ROUNDS
    passes of @queries."""
    us = []
    for _ in range(ROUNDS):
        for q in queries:
            t = time.perf_counter()
            index.search(q[None, :], 10)
            us.append((time.perf_counter() - t) * 1e6)
    return statistics.median(us)


def faiss_times(items, queries, ef_list):
    import faiss
    faiss.omp_set_num_threads(1)
    d = items.shape[1]
    flat = faiss.IndexFlatIP(d)
    flat.add(items)
    single = one_at_a_time(flat, queries)
    batched = []
    for _ in range(ROUNDS):
        t = time.perf_counter()
        _, exact = flat.search(queries, 10)
        batched.append((time.perf_counter() - t) * 1e6 / len(queries))
    # The graph is built on every core (its time is reported, not
    # compared); searches then run on one thread like the rest.
    faiss.omp_set_num_threads(os.cpu_count())
    t = time.perf_counter()
    hnsw = faiss.IndexHNSWFlat(d, 32, faiss.METRIC_INNER_PRODUCT)
    hnsw.hnsw.efConstruction = 200
    hnsw.add(items)
    build_s = time.perf_counter() - t
    faiss.omp_set_num_threads(1)
    curve = []
    for ef in ef_list:
        hnsw.hnsw.efSearch = ef
        us = one_at_a_time(hnsw, queries)
        _, found = hnsw.search(queries, 10)
        recall = np.mean([len(set(found[k]) & set(exact[k])) / 10 for k in range(len(queries))])
        curve.append((ef, us, recall))
    return single, statistics.median(batched), build_s, curve


def ours(save_dir):
    """{(shape, rows): {method: us}} from bench/score's score.csv."""
    out = {}
    with open(os.path.join(save_dir, "score.csv")) as f:
        for shape, rows, dim, top, method, us in csv.reader(f):
            out.setdefault((shape, int(rows)), {})[method] = float(us)
    return out


def batch_us(build, items, queries):
    p = subprocess.run([os.path.join(build, "bench", "batch"), "--items-npy", items,
                        "--users-npy", queries, "--batch", "64", "--top", "10", "--rounds", "9"],
                       capture_output=True, text=True, check=True)
    for line in p.stdout.splitlines():
        if line.startswith("batch ") and not line.startswith("batch split"):
            return float(line.split()[1])
    sys.exit("no batch line in bench/batch's output:\n" + p.stdout)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("build", nargs="?", default="build")
    ap.add_argument("--python", help="the peers' venv python, which has faiss (FAISS runs "
                    "there; this one draws with Debian's matplotlib); default: this one")
    ap.add_argument("--rows", default="10000,1000000")
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--factors", default="demo,skewed")
    ap.add_argument("--plot", help="write score-faiss.png here")
    ap.add_argument("--faiss-only", metavar="DIR", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.faiss_only:
        return faiss_only(a.faiss_only)
    print("command: %s" % " ".join(sys.argv))
    tmp = tempfile.mkdtemp(prefix="bench-faiss-")
    subprocess.run([os.path.join(a.build, "bench", "score"), "--rows", a.rows, "--dims",
                    str(a.dim), "--top", "10", "--factors", a.factors, "--save", tmp], check=True)
    mine = ours(tmp)
    subprocess.run([a.python or sys.executable, os.path.abspath(__file__), "--faiss-only", tmp],
                   check=True)
    theirs = {}
    with open(os.path.join(tmp, "faiss.csv")) as f:
        for shape, rows, key, us, recall in csv.reader(f):
            theirs.setdefault((shape, int(rows)), []).append((key, float(us), float(recall)))
    print("\n== top 10 by inner product, %d factors, one thread; microseconds per query "
          "(medians)" % a.dim)
    print("%-8s %9s | %9s %9s %9s %9s | %10s %10s | %7s %7s" % (
        "factors", "items", "ours f32", "ours int8", "ours batch", "", "faiss flat",
        "flat batch", "single", "batch"))
    rows_out = []
    for (shape, rows), m in sorted(mine.items(), key=lambda kv: (kv[0][0], kv[0][1])):
        f32 = min(v for k, v in m.items() if k in ("avx512", "avx2", "portable"))
        int8 = min([v for k, v in m.items() if k in ("avx512 int8", "avx2 int8")] or [f32])
        stem = os.path.join(tmp, "%s-%d-%d" % (shape, rows, a.dim))
        batch = batch_us(a.build, stem + "-items.npy", stem + "-queries.npy")
        t = {k: (us, r) for k, us, r in theirs[(shape, rows)]}
        best = min(f32, int8)
        print("%-8s %9d | %9.1f %9.1f %9.1f %9s | %10.1f %10.1f | %6.2fx %6.2fx" % (
            shape, rows, f32, int8, batch, "", t["flat"][0], t["flat-batch"][0],
            t["flat"][0] / best, t["flat-batch"][0] / batch))
        rows_out.append((shape, rows, f32, int8, batch, t))
    print("\nsingle: FAISS IndexFlatIP one query at a time over recsysd's faster exact scan "
          "(f32 or int8, both exact);\nbatch: FAISS with 64 queries a call over recsysd's "
          "BatchRecommend query per user (64 a batch). Above 1: recsysd is faster.")
    print("\n== FAISS HNSW (M 32, efConstruction 200): time per query and recall@10 against "
          "the exact top 10")
    for shape, rows, f32, int8, batch, t in rows_out:
        build = t["hnsw-build"][0]
        curve = sorted((k, us, r) for k, (us, r) in t.items() if k.startswith("ef"))
        curve = sorted(curve, key=lambda c: int(c[0][2:]))
        print("%-8s %9d: built in %.1f s on %d threads; " % (shape, rows, build / 1e6,
                                                            os.cpu_count()) + ", ".join(
            "ef %s %.1f us recall %.3f" % (k[2:], us, r) for k, us, r in curve))
    if a.plot:
        plot(rows_out, os.path.join(a.plot, "score-faiss.png"), a.dim)
    subprocess.run(["rm", "-rf", tmp], check=True)


def faiss_only(tmp):
    """Runs in the venv: FAISS on every saved matrix, into faiss.csv."""
    out = []
    for name in sorted(os.listdir(tmp)):
        if not name.endswith("-items.npy"):
            continue
        shape, rows, _ = name[:-len("-items.npy")].rsplit("-", 2)
        items = np.load(os.path.join(tmp, name))
        queries = np.load(os.path.join(tmp, name.replace("-items", "-queries")))
        single, batched, build_s, curve = faiss_times(items, queries, (16, 32, 64, 128, 256, 512))
        out += [(shape, rows, "flat", single, 1.0), (shape, rows, "flat-batch", batched, 1.0),
                (shape, rows, "hnsw-build", build_s * 1e6, 0.0)]
        out += [(shape, rows, "ef%d" % ef, us, r) for ef, us, r in curve]
    with open(os.path.join(tmp, "faiss.csv"), "w", newline="") as f:
        csv.writer(f).writerows(out)


def plot(rows_out, path, dim):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, len(rows_out), figsize=(5 * len(rows_out), 4.2), squeeze=False)
    for ax, (shape, rows, f32, int8, batch, t) in zip(axes[0], rows_out):
        curve = sorted(((int(k[2:]), us, r) for k, (us, r) in t.items() if k.startswith("ef")))
        ax.plot([us for _, us, _ in curve], [r for _, _, r in curve], "o-", color="tab:orange",
                label="FAISS HNSW (efSearch %d..%d)" % (curve[0][0], curve[-1][0]))
        for x, label, color in ((f32, "recsysd exact f32", "tab:blue"),
                                (int8, "recsysd exact int8", "tab:green"),
                                (batch, "recsysd BatchRecommend /user", "tab:cyan"),
                                (t["flat"][0], "FAISS IndexFlatIP", "tab:red"),
                                (t["flat-batch"][0], "FAISS flat, 64 a call /query", "tab:pink")):
            ax.plot([x], [1.0], "s", color=color, label=label, markersize=8)
        ax.set_xscale("log")
        ax.set_xlabel("microseconds per query (one thread)")
        ax.set_ylabel("recall@10")
        ax.set_title("%s factors, %d items x %d" % (shape, rows, dim))
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print("\nwrote %s" % path)


if __name__ == "__main__":
    main()
