#!/usr/bin/python3
"""bench/rpc.py: every RPC against the floor of gRPC itself, as ghz measures.

    bench/rpc.py [BUILD_DIR] [--items 6000,100000] [--rounds 5] [--requests N]

For each catalog size it writes a demo model (recsys-model demo, 30,000
users, dimension 32, both reduced copies), starts the real recsysd on it and
loads it with h2load (Debian's nghttp2-client), the way ghz would: gRPC
requests over HTTP/2, each method in turn, rounds taking turns so the
machine's drift hits every method alike. The floor is the standard health
check, a method whose handler does next to nothing: what gRPC, HTTP/2 and
the server's plumbing cost by themselves on this machine.

Two loads per method:
  latency     1 connection, 1 stream at a time: p50 and p99 of each call,
              from h2load's per-request log;
  throughput  4 connections x 16 streams: calls per second.

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


def h2load(port, path, body_file, log_file, n, clients, streams):
    argv = ["h2load", "-n", str(n), "-c", str(clients), "-m", str(streams), "-t", "1",
            "-H", "content-type: application/grpc", "-H", "te: trailers", "-d", body_file,
            "http://127.0.0.1:%d%s" % (port, path)]
    if log_file:
        if os.path.exists(log_file):
            os.unlink(log_file)  # h2load appends to it
        argv[1:1] = ["--log-file", log_file]
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    m = re.search(r"requests: \d+ total, \d+ started, (\d+) done, (\d+) succeeded", out)
    if m is None or m.group(1) != m.group(2) or int(m.group(2)) != n:
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


def bench_catalog(args, items, tmp, pb, health_pb2, fixtures):
    from daemon import grpc_frame  # tests/lib is on the path by now
    model = os.path.join(tmp, "model-%d.lmdb" % items)
    subprocess.run([os.path.join(args.build, "recsys-model"), "demo", "-o", model,
                    "--items", str(items), "--users", "30000", "--dim", "32"], check=True,
                   stdout=subprocess.DEVNULL)
    methods = requests(pb, health_pb2, fixtures.read_model(model))
    proc, port, banner = start_daemon(os.path.join(args.build, "recsysd"), model,
                                      os.path.join(tmp, "recsysd.log"))
    try:
        print("\n%d items x 32: %s" % (items, banner.split("INFO  ")[-1]))
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
            h2load(port, path, bodies[k], None, 500, 1, 1)
        for _ in range(args.rounds):
            for k, (_, path, _) in enumerate(methods):
                h2load(port, path, bodies[k], log, args.requests, 1, 1)
                p50, p99 = percentiles(log)
                lat[k][0].append(p50)
                lat[k][1].append(p99)
                tput[k].append(h2load(port, path, bodies[k], None, 4 * args.requests, 4, 16))
        floor = (statistics.median(lat[0][0]), statistics.median(tput[0]))
        print("| method | p50 µs | p99 µs | p50 over floor | calls/s (4x16) | of floor |")
        print("| --- | --- | --- | --- | --- | --- |")
        for k, (label, _, _) in enumerate(methods):
            p50, p99 = statistics.median(lat[k][0]), statistics.median(lat[k][1])
            rate = statistics.median(tput[k])
            print("| %s | %.0f | %.0f | +%.0f | %.0f | %.0f%% |"
                  % (label, p50, p99, p50 - floor[0], rate, 100 * rate / floor[1]))
    finally:
        proc.terminate()
        proc.wait(60)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("build", nargs="?", default="build")
    ap.add_argument("--items", default="6000,100000",
                    help="catalog sizes, comma-separated (default 6000,100000)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--requests", type=int, default=2000,
                    help="calls per latency run; the throughput runs make 4x as many")
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
    print("medians of %d rounds; latency: 1 connection, 1 stream, %d calls per round"
          % (args.rounds, args.requests))
    tmp = tempfile.mkdtemp(prefix="bench-rpc-")
    try:
        for items in (int(x) for x in args.items.split(",")):
            bench_catalog(args, items, tmp, pb, health_pb2, fixtures)
    finally:
        shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
