#!/usr/bin/python3
"""bench/spark_import.py: what `recsys-model import --from-spark` costs at
scale, against the .npy import of the same factors.

    bench/spark_import.py [BUILD_DIR] [--users 1000000,10000000] [--items 100000]
                          [--factors 64] [--rounds 3] [--keep DIR]

For each user count, bench/spark_export writes an export directory
(model/EXPORT.md: factors shaped like trained ones, written as Spark
writes floats, five purchases a user) and the same factors as .npy files
with their id files and purchases.csv. Then, rounds taking turns, the two
imports of identical inputs into identical model files (checked byte for
byte), each timed by its wall clock and its peak resident memory (the
child's own ru_maxrss, from wait4). Printed: the export's size, the model
file's size, the median time and peak of each import, and the ratios the
targets are stated in (README, "Training with Spark"):
  from-spark time / .npy time      at most 2
  from-spark peak / model file     at most 1.5
The page cache holds the inputs after the first round (a pipeline reading
a local copy it just fetched sees the same).
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time


def run(argv):
    """(seconds, peak RSS bytes) of one command; fails loudly."""
    t = time.perf_counter()
    p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(p.pid, 0)
    seconds = time.perf_counter() - t
    err = p.stderr.read().decode()
    p.stderr.close()
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit("failed: %s\n%s" % (" ".join(argv), err))
    return seconds, usage.ru_maxrss * 1024


def du(path):
    total = 0
    for root, _, files in os.walk(path):
        total += sum(os.path.getsize(os.path.join(root, f)) for f in files)
    return total


def mib(n):
    return "%.0f MB" % (n / 1e6)


def case(build, tmp, users, items, factors, rounds):
    d = os.path.join(tmp, "u%d" % users)
    t = time.perf_counter()
    subprocess.run([os.path.join(build, "bench", "spark_export"), "--users", str(users),
                    "--items", str(items), "--factors", str(factors), "-o", d], check=True)
    gen_s = time.perf_counter() - t
    tool = os.path.join(build, "recsys-model")
    npy = os.path.join(d, "npy")
    a, b = os.path.join(d, "spark.lmdb"), os.path.join(d, "npy.lmdb")
    version = "synthetic-%dx%d" % (users, factors)
    spark_argv = [tool, "import", "--from-spark", os.path.join(d, "export"), "--catalog",
                  os.path.join(npy, "catalog.csv"), "-o", a]
    npy_argv = [tool, "import", "--user-factors", os.path.join(npy, "U.npy"), "--user-ids",
                os.path.join(npy, "users.txt"), "--item-factors", os.path.join(npy, "V.npy"),
                "--item-ids", os.path.join(npy, "items.txt"), "--catalog",
                os.path.join(npy, "catalog.csv"), "--purchases",
                os.path.join(npy, "purchases.csv"), "--model-version", version,
                "--created-at", "1796371200", "--regularization", "0.1", "--alpha", "20",
                "--view-weight", "0.25", "--data-end", "1796371200000",
                "--regularization-scaling", "per-interaction", "-o", b]
    got = {"spark": [], "npy": []}
    for _ in range(rounds):
        got["spark"].append(run(spark_argv))
        got["npy"].append(run(npy_argv))
    with open(a, "rb") as fa, open(b, "rb") as fb:
        while True:
            x, y = fa.read(1 << 24), fb.read(1 << 24)
            if x != y:
                sys.exit("the two imports wrote different files")
            if not x:
                break
    row = {
        "users": users, "export": du(os.path.join(d, "export")), "model": os.path.getsize(a),
        "gen": gen_s,
        "spark_s": statistics.median(s for s, _ in got["spark"]),
        "spark_rss": max(r for _, r in got["spark"]),
        "npy_s": statistics.median(s for s, _ in got["npy"]),
        "npy_rss": max(r for _, r in got["npy"]),
    }
    shutil.rmtree(d)
    return row


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("build", nargs="?", default="build")
    ap.add_argument("--users", default="1000000,10000000")
    ap.add_argument("--items", type=int, default=100000)
    ap.add_argument("--factors", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--keep", help="work here (needs about 15 GB at 10^7 users) and keep it")
    a = ap.parse_args()
    print("command: %s" % " ".join(sys.argv))
    with open("/proc/cpuinfo") as f:
        cpu = next(l.split(":", 1)[1].strip() for l in f if l.startswith("model name"))
    print("machine: %s, %d cores, load %s" % (cpu, os.cpu_count(),
                                              " ".join(open("/proc/loadavg").read().split()[:3])))
    tmp = a.keep or tempfile.mkdtemp(prefix="bench-spark-import-", dir="/var/tmp")
    os.makedirs(tmp, exist_ok=True)
    print("\n%d items x %d factors, 5 purchases a user; median of %d rounds taking turns"
          % (a.items, a.factors, a.rounds))
    print("%-10s %10s %10s | %12s %10s | %12s %10s | %6s %9s" % (
        "users", "export", "model", "from-spark", "peak", ".npy", "peak", "time", "peak/file"))
    try:
        for users in (int(u) for u in a.users.split(",")):
            r = case(a.build, tmp, users, a.items, a.factors, a.rounds)
            print("%-10d %10s %10s | %10.2f s %10s | %10.2f s %10s | %5.2fx %8.2fx" % (
                r["users"], mib(r["export"]), mib(r["model"]), r["spark_s"],
                mib(r["spark_rss"]), r["npy_s"], mib(r["npy_rss"]), r["spark_s"] / r["npy_s"],
                r["spark_rss"] / r["model"]), flush=True)
    finally:
        if not a.keep:
            shutil.rmtree(tmp)
    print("\ntime: from-spark over .npy (target at most 2); peak/file: from-spark's peak "
          "resident memory over the model file (target at most 1.5)")
    print("load at the end: %s" % " ".join(open("/proc/loadavg").read().split()[:3]))


if __name__ == "__main__":
    main()
