#!/usr/bin/python3
"""bench/train_peers.py: Spark MLlib's ALS and the implicit library's ALS
on bench/train.sh's data, split and metrics, beside recsys-train.

    train_peers.py --catalog C --interactions L --factors K --iterations N
                   --regularization R --alpha A --holdout H --threads T
                   --work DIR [--spark-regularization RS]
                   [--also NAME=P10:SECONDS ...] [--plot PNG]

Run with the peers' venv python (`make bench-peers`: implicit and PySpark
from bench/requirements.txt and tools/spark/requirements.txt). The split
and the metrics are bench/train_ref.py's, so every line is comparable with
recsys-train's and NumPy's:

- implicit: AlternatingLeastSquares on the training pairs, confidence
  1 + alpha * weight given as the matrix with alpha 1 (implicit takes the
  matrix's values as the confidence), lambda unscaled as recsys-train
  applies it, exact solves (use_cg False) and its conjugate-gradient
  default (3 steps), T threads. Time per iteration: fit's wall time over N.
- Spark: tools/spark/recsys_als.py in local[T] on the training pairs (one
  row per pair with its summed weight), the export read back by id. Spark
  multiplies lambda by each user's and item's number of ratings; it is
  given RS, by default R over the mean number of items per user, so that
  a typical user gets recsys-train's lambda. Time per iteration: the job's
  own (ALS.fit's wall time over N), Spark's task scheduling included.
Each prints a metrics line in recsys-train's format and its time. --also
adds the figures of the runs train.sh made (recsys-train, NumPy) to the
plot: precision@10 and seconds per iteration of each, side by side.
"""

import argparse
import csv
import os
import subprocess
import sys
import time

import numpy as np
import scipy.sparse as sp

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import train_ref  # noqa: E402

JOB = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools", "spark",
                   "recsys_als.py")


RESULTS = []  # (name, precision@10, seconds per iteration), for the plot


def line(name, X, Y, on_sale, train, held, seconds):
    p, r, nd, cov, _ = train_ref.metrics(X.astype(np.float32), Y.astype(np.float32), on_sale,
                                         train, held)
    print("  %-12s %12.4f %10.4f %8.4f %9.4f   %.3f s per iteration" % (name, p, r, nd, cov,
                                                                         seconds), flush=True)
    RESULTS.append((name, p, seconds))


def plot(path, title):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    names = [n for n, _, _ in RESULTS]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    colors = ["tab:blue" if n.startswith("recsys") else "tab:gray" for n in names]
    ax1.bar(names, [p for _, p, _ in RESULTS], color=colors)
    ax1.set_ylabel("precision@10 on the holdout")
    ax2.bar(names, [s for _, _, s in RESULTS], color=colors)
    ax2.set_ylabel("seconds per iteration")
    ax2.set_yscale("log")
    for ax in (ax1, ax2):
        ax.tick_params(axis="x", labelrotation=30)
        ax.grid(True, axis="y", alpha=0.3)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print("wrote %s" % path)


def run_implicit(a, items, on_sale, train, held):
    from implicit.cpu.als import AlternatingLeastSquares
    from threadpoolctl import threadpool_limits
    # implicit runs its own threads and asks for a single-threaded BLAS.
    threadpool_limits(1, "blas")
    rows, cols, vals = [], [], []
    for u, t in enumerate(train):
        for i, w in t:
            rows.append(u)
            cols.append(i)
            vals.append(1.0 + a.alpha * w)
    C = sp.csr_matrix((np.array(vals, dtype=np.float32), (rows, cols)),
                      shape=(len(train), items))
    for name, cg in (("implicit", False), ("implicit-cg3", True)):
        model = AlternatingLeastSquares(factors=a.factors, regularization=a.regularization,
                                        alpha=1.0, iterations=a.iterations, use_cg=cg,
                                        num_threads=a.threads, random_state=1,
                                        calculate_training_loss=False)
        t = time.perf_counter()
        model.fit(C, show_progress=False)
        seconds = (time.perf_counter() - t) / a.iterations
        line(name, model.user_factors, model.item_factors, on_sale, train, held, seconds)


def read_export(d, table, index, rows, k):
    """The export's factors of @table into a rows x k matrix by @index
    (id -> row); rows the export lacks stay 0."""
    import json
    with open(os.path.join(d, "recsys-export.json")) as f:
        m = json.load(f)
    out = np.zeros((rows, k), dtype=np.float32)
    for p in m["tables"][table]["parts"]:
        with open(os.path.join(d, table, p["file"]), encoding="utf-8") as f:
            for text in f:
                fields = text.rstrip("\n").split("\t")
                out[index[fields[0]]] = np.array(fields[1:], dtype=np.float32)
    return out


def run_spark(a, items, on_sale, train, held, user_ids, item_ids):
    pairs = os.path.join(a.work, "train-pairs.csv")
    with open(pairs, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["user_id", "item_id", "weight"])
        for u, t in enumerate(train):
            w.writerows((user_ids[u], item_ids[i], "%r" % float(wt)) for i, wt in t)
    per_user = sum(len(t) for t in train) / len(train)
    rs = a.spark_regularization if a.spark_regularization is not None else (
        a.regularization / per_user)
    out = os.path.join(a.work, "spark-export")
    import pyspark
    env = dict(os.environ, SPARK_HOME=os.path.dirname(pyspark.__file__),
               PYSPARK_PYTHON=sys.executable, SPARK_LOCAL_IP="127.0.0.1")
    argv = [os.path.join(os.path.dirname(sys.executable), "spark-submit"), "--master",
            "local[%d]" % a.threads, "--driver-memory", "6g", "--conf",
            "spark.sql.shuffle.partitions=%d" % (4 * a.threads), "--conf",
            "spark.ui.enabled=false", JOB, "--interactions", pairs, "--out", out,
            "--factors", str(a.factors), "--iterations", str(a.iterations),
            "--regularization", repr(rs), "--alpha", repr(a.alpha)]
    t = time.perf_counter()
    p = subprocess.run(argv, capture_output=True, text=True, env=env)
    total = time.perf_counter() - t
    if p.returncode != 0:
        sys.exit("recsys_als.py failed:\n" + p.stdout[-3000:] + p.stderr[-3000:])
    per_it = None
    for text in (p.stdout + p.stderr).splitlines():
        if "s per iteration)" in text:
            per_it = float(text.rsplit("(", 1)[1].split()[0])
    X = read_export(out, "users", {u: k for k, u in enumerate(user_ids)}, len(train), a.factors)
    Y = read_export(out, "items", {i: k for k, i in enumerate(item_ids)}, items, a.factors)
    line("spark-als", X, Y, on_sale, train, held, per_it)
    print("    (Spark: regParam %.5g, that is %.3g over %.2f items per user; the whole job %.0f s "
          "in local[%d], JVM start, reading and export included)"
          % (rs, a.regularization, per_user, total, a.threads), flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--catalog", required=True)
    ap.add_argument("--interactions", required=True)
    ap.add_argument("--factors", type=int, default=64)
    ap.add_argument("--iterations", type=int, default=10)
    ap.add_argument("--regularization", type=float, default=0.05)
    ap.add_argument("--spark-regularization", type=float)
    ap.add_argument("--alpha", type=float, default=20)
    ap.add_argument("--holdout", type=float, default=0.1)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--work", required=True)
    ap.add_argument("--also", action="append", default=[], metavar="NAME=P10:SECONDS")
    ap.add_argument("--plot")
    a = ap.parse_args()
    for spec in a.also:
        name, figures = spec.split("=")
        p10, seconds = figures.split(":")
        RESULTS.append((name, float(p10), float(seconds)))
    items, on_sale, train, held, user_ids, item_ids = train_ref.read(a)
    run_implicit(a, items, on_sale, train, held)
    run_spark(a, items, on_sale, train, held, user_ids, item_ids)
    if a.plot:
        plot(a.plot, "ALS on %d user-item pairs, %d factors, %d iterations, %d threads; holdout %g"
             % (sum(len(t) + len(h) for t, h in zip(train, held)), a.factors, a.iterations,
                a.threads, a.holdout))


if __name__ == "__main__":
    main()
