#!/usr/bin/python3
"""bench/rpc.py: every RPC against the floor of gRPC itself, as ghz measures.

    bench/rpc.py [BUILD_DIR] [--catalogs 6000x32,10000x64,100000x32,1000000x64]
                 [--rounds 5] [--seconds 2] [--plot DIR]

For each catalog (items x dimension) it writes a demo model (recsys-model
demo, 30,000 users, both reduced copies), starts the real recsysd on it and
loads it with h2load (Debian's nghttp2-client), the way ghz would: gRPC
requests over HTTP/2, each method in turn, rounds taking turns so the
machine's drift hits every method alike. The floor is the standard health
check, a method whose handler does next to nothing: what gRPC, HTTP/2 and
the server's plumbing cost by themselves on this machine.

Two loads per method, each for --seconds:
  latency     1 connection, 1 stream at a time: p50 and p99 of each call,
              from h2load's per-request log;
  throughput  4 connections x 16 streams: calls per second.

Then a sweep of the calls in flight (1, 4, 16, 64, 256) for Health/Check
and Recommend top 10: calls per second, p50 and p99 at each, drawn with
matplotlib (Debian's python3-matplotlib) into DIR/rpc-sweep-<catalog>.png
(--plot; make bench gives its build directory). A connection carries at
most 8 calls (the daemon's stream bound at 2 threads), so the calls in
flight are spread over connections of 8.

It prints medians over the rounds, and each method against the floor
measured in the same run. h2load and the daemon share the machine's cores:
the throughput is the pair's, not the daemon's alone.
"""

import argparse
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "lib"))


def requests(pb, health_pb2, model):
    """(label, method path, request) for each method: realistic requests for
    the demo model, whose ids read back from the file."""
    users = sorted(model["users"])[:16]
    items = model["item_ids"]
    return [
        ("Health/Check (floor)", "/grpc.health.v1.Health/Check",
         health_pb2.HealthCheckRequest()),
        ("GetModelInfo", "/recsys.v1.Recommender/GetModelInfo", pb.ModelInfoRequest()),
        ("CheckEligibility, 10 items", "/recsys.v1.Recommender/CheckEligibility",
         pb.EligibilityRequest(user_id=users[0], item_ids=items[:10])),
        ("Recommend, top 10", "/recsys.v1.Recommender/Recommend",
         pb.RecommendRequest(user_id=users[0], count=10)),
        ("Recommend, top 100", "/recsys.v1.Recommender/Recommend",
         pb.RecommendRequest(user_id=users[0], count=100)),
        ("SimilarItems, top 10", "/recsys.v1.Recommender/SimilarItems",
         pb.SimilarItemsRequest(item_id=items[0], count=10)),
        ("BatchRecommend, 16 users", "/recsys.v1.Recommender/BatchRecommend",
         pb.BatchRecommendRequest(requests=[pb.RecommendRequest(user_id=u, count=10)
                                            for u in users])),
    ]


# The daemon's streams a connection at --threads 2 (config_streams).
STREAMS = 8
SWEEP = (1, 4, 16, 64, 256)


def h2load(port, path, body_file, log_file, seconds, clients, streams):
    """Calls per second of one timed run; every call must have succeeded."""
    argv = ["h2load", "-D", str(seconds), "-c", str(clients), "-m", str(streams), "-t", "1",
            "-H", "content-type: application/grpc", "-H", "te: trailers", "-d", body_file,
            "http://127.0.0.1:%d%s" % (port, path)]
    if log_file:
        if os.path.exists(log_file):
            os.unlink(log_file)  # h2load appends to it
        argv[1:1] = ["--log-file", log_file]
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    m = re.search(r"requests: \d+ total, \d+ started, (\d+) done, (\d+) succeeded", out)
    if m is None or m.group(1) != m.group(2) or int(m.group(2)) == 0:
        raise SystemExit("h2load did not complete every request:\n" + out)
    return float(re.search(r"finished in [^,]+, ([0-9.]+) req/s", out).group(1))


def percentiles(log_file):
    with open(log_file) as f:
        us = sorted(int(line.split("\t")[2]) for line in f if line.strip())
    return us[len(us) // 2], us[min(len(us) - 1, (len(us) * 99) // 100)]


def start_daemon(recsysd, model, log_path):
    """The daemon, its port and its "listening on" line. Its log goes to a
    file: a pipe nobody reads would block it once full."""
    with open(log_path, "w") as log:
        proc = subprocess.Popen([recsysd, "--model", model, "--listen", "127.0.0.1:0"],
                                stderr=log)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        with open(log_path) as f:
            m = re.search(r".*listening on \S+:(\d+) threads=.*", f.read())
        if m:
            return proc, int(m.group(1)), m.group(0)
        time.sleep(0.05)
    proc.kill()
    raise SystemExit("recsysd did not start:\n" + open(log_path).read())


def sweep(port, path, body, log, seconds):
    """[(in flight, calls/s, p50 us, p99 us)] over SWEEP."""
    rows = []
    for n in SWEEP:
        rate = h2load(port, path, body, log, seconds, max(1, n // STREAMS), min(n, STREAMS))
        rows.append((n, rate) + percentiles(log))
    return rows


def plot(path, title, curves):
    """Two panels over the calls in flight: calls/s, and p50/p99 (log)."""
    import matplotlib
    matplotlib.use("Agg")  # no display: write the file only
    import matplotlib.pyplot as plt
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(7, 7), sharex=True)
    for label, rows in curves:
        n = [r[0] for r in rows]
        top.plot(n, [r[1] for r in rows], marker="o", label=label)
        bottom.plot(n, [r[2] / 1e3 for r in rows], marker="o", label=label + ", p50")
        bottom.plot(n, [r[3] / 1e3 for r in rows], marker="x", linestyle="--",
                    label=label + ", p99")
    top.set_ylabel("calls/s")
    top.set_ylim(bottom=0)
    top.set_title(title)
    top.legend()
    bottom.set_xscale("log", base=2)
    bottom.set_yscale("log")
    bottom.set_xticks(list(SWEEP))
    bottom.set_xticklabels([str(n) for n in SWEEP])
    bottom.set_xlabel("calls in flight (connections of %d streams)" % STREAMS)
    bottom.set_ylabel("latency, ms")
    bottom.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def bench_catalog(args, items, dim, tmp, pb, health_pb2, fixtures):
    from daemon import grpc_frame  # tests/lib is on the path by now
    model = os.path.join(tmp, "model-%dx%d.lmdb" % (items, dim))
    subprocess.run([os.path.join(args.build, "recsys-model"), "demo", "-o", model,
                    "--items", str(items), "--users", "30000", "--dim", str(dim)], check=True,
                   stdout=subprocess.DEVNULL)
    methods = requests(pb, health_pb2, fixtures.read_model(model))
    proc, port, banner = start_daemon(os.path.join(args.build, "recsysd"), model,
                                      os.path.join(tmp, "recsysd.log"))
    try:
        print("\n%d items x %d: %s" % (items, dim, banner.split("INFO  ")[-1]))
        bodies = []
        for k, (_, _, req) in enumerate(methods):
            path = os.path.join(tmp, "body-%d.bin" % k)
            with open(path, "wb") as f:
                f.write(grpc_frame(req.SerializeToString()))
            bodies.append(path)
        log = os.path.join(tmp, "h2load.log")
        lat = {k: ([], []) for k in range(len(methods))}
        tput = {k: [] for k in range(len(methods))}
        for k, (_, path, _) in enumerate(methods):  # warm-up: page cache, arenas
            h2load(port, path, bodies[k], None, 1, 1, 1)
        for _ in range(args.rounds):
            for k, (_, path, _) in enumerate(methods):
                h2load(port, path, bodies[k], log, args.seconds, 1, 1)
                p50, p99 = percentiles(log)
                lat[k][0].append(p50)
                lat[k][1].append(p99)
                tput[k].append(h2load(port, path, bodies[k], None, args.seconds, 4, 16))
        floor = (statistics.median(lat[0][0]), statistics.median(tput[0]))
        print("| method | p50 µs | p99 µs | p50 over floor | calls/s (4x16) | of floor |")
        print("| --- | --- | --- | --- | --- | --- |")
        for k, (label, _, _) in enumerate(methods):
            p50, p99 = statistics.median(lat[k][0]), statistics.median(lat[k][1])
            rate = statistics.median(tput[k])
            print("| %s | %.0f | %.0f | +%.0f | %.0f | %.0f%% |"
                  % (label, p50, p99, p50 - floor[0], rate, 100 * rate / floor[1]))
        # The sweep: the floor and Recommend top 10 (rows 0 and 3), one
        # round, each in-flight level right after the other's.
        curves = []
        for k in (0, 3):
            curves.append((methods[k][0], sweep(port, methods[k][1], bodies[k], log,
                                                args.seconds)))
        print("\n| calls in flight | %s calls/s | p50 / p99 µs | %s calls/s | p50 / p99 µs |"
              " ratio |" % (curves[0][0], curves[1][0]))
        print("| --- | --- | --- | --- | --- | --- |")
        for h, r in zip(curves[0][1], curves[1][1]):
            print("| %d | %.0f | %d / %d | %.0f | %d / %d | %.2f |"
                  % (h[0], h[1], h[2], h[3], r[1], r[2], r[3], r[1] / h[1]))
        if args.plot:
            png = os.path.join(args.plot, "rpc-sweep-%dx%d.png" % (items, dim))
            plot(png, "%d items x %d, recsysd --threads 2" % (items, dim), curves)
            print("plot: %s" % png)
    finally:
        proc.terminate()
        proc.wait(60)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("build", nargs="?", default="build")
    ap.add_argument("--catalogs", default="6000x32,10000x64,100000x32,1000000x64",
                    help="items x dimension, comma-separated")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=int, default=2, help="each h2load run's duration")
    ap.add_argument("--plot", help="directory for the sweep's PNG plots")
    args = ap.parse_args()
    if shutil.which("h2load") is None:
        raise SystemExit("h2load not found: apt-get install nghttp2-client")
    sys.path.insert(0, os.path.join(args.build, "gen", "python"))
    os.environ.setdefault("RECSYS_PYGEN", os.path.join(args.build, "gen", "python"))
    import fixtures  # noqa: E402  (after the path is set)
    from daemon import health_pb2  # noqa: E402
    from recsys.v1 import recommender_pb2 as pb  # noqa: E402

    cpu = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    print("command: %s" % " ".join(sys.argv))
    print("machine: %s, %d cores, Linux %s, load %.2f %.2f %.2f"
          % ((cpu, os.cpu_count(), platform.release()) + os.getloadavg()))
    print("h2load: %s" % subprocess.run(["h2load", "--version"], capture_output=True,
                                        text=True).stdout.strip())
    print("medians of %d rounds of %d s runs; latency: 1 connection, 1 stream"
          % (args.rounds, args.seconds))
    tmp = tempfile.mkdtemp(prefix="bench-rpc-")
    try:
        for catalog in args.catalogs.split(","):
            items, dim = (int(x) for x in catalog.split("x"))
            bench_catalog(args, items, dim, tmp, pb, health_pb2, fixtures)
    finally:
        shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
