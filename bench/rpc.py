#!/usr/bin/python3
"""bench/rpc.py: every RPC against the floor of gRPC itself, as ghz measures.

    bench/rpc.py [BUILD_DIR] [--catalogs 6000x32,10000x64,100000x32,1000000x64]
                 [--factors demo,random,clustered,skewed]
                 [--rounds 5] [--seconds 2] [--plot DIR]

For each catalog (items x dimension) and factor shape it writes a model of
30,000 users with both reduced copies, starts the real recsysd on it and
loads it with h2load (Debian's nghttp2-client), the way ghz would: gRPC
requests over HTTP/2, each method in turn, rounds taking turns so the
machine's drift hits every method alike. The floor is the standard health
check, a method whose handler does next to nothing: what gRPC, HTTP/2 and
the server's plumbing cost by themselves on this machine.

The factor shapes (--factors, default demo) are bench/score's:

  demo        recsys-model demo's model: planted topics, a catalog of six
              categories, tiers and purchases
  random      every entry uniform in [-1, 1), items and users
  clustered   items and users within 5% (of its norm) of one of 48 random
              centres: a cluster's rows nearly tie
  skewed      as implicit ALS gives: a shared popularity direction times
              |N(0, 1)| plus a random part, scaled to a log-normal norm
              (sigma 1); users lean 0.5 to 1.5 toward popularity

The last three are drawn with numpy from a fixed seed and imported with
recsys-model import: every item in one category, 8% off sale as in the demo,
no tiers, and each user owns 1 to 40 items (most a few, as in the demo),
the best-scoring of a random draw, so Recommend's owned-item filter has
work to do.

Each request is sent once through grpcio first and must answer OK (h2load
counts any HTTP 200 as a success, whatever its gRPC status); the heading of
each model names the copy of the item matrix the daemon scans and the
copies it holds, from GetModelInfo, and the daemon's "scan probe:" log line
when it has one.

Two loads per method, each for --seconds:
  latency     1 connection, 1 stream at a time: p50 and p99 of each call,
              from h2load's per-request log;
  throughput  4 connections x 16 streams: calls per second.

Then a sweep of the calls in flight (1, 4, 16, 64, 256) for Health/Check
and Recommend top 10: calls per second, p50 and p99 at each, drawn with
matplotlib (Debian's python3-matplotlib) into
DIR/rpc-sweep-<shape>-<catalog>.png, DIR/rpc-sweep-<catalog>.png for the
demo's (--plot; make bench gives its build directory). A connection carries
at most 8 calls (the daemon's stream bound at 2 threads), so the calls in
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

import grpc
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "lib"))


def requests(pb, health_pb2, model):
    """(label, method path, request) for each method: realistic requests for
    the model, whose ids read back from the file."""
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


# The models: demo's user count, and what the imported ones are drawn from
# (bench/score's shapes; the catalog and purchases as the demo has them).
USERS = 30000
SEED = 1
CREATED_AT = 1704067200  # recsys-model demo's epoch: a fixed date, the same bytes
CENTRES = 48  # clustered: a few dozen tastes, as a catalog's genres
CLUSTER_NOISE = 0.05  # clustered: noise, as a share of the centre's norm
SKEW_SIGMA = 1.0  # skewed: the sigma of log(item norm)
OFF_SALE = 0.08  # the demo's share of items off sale
PURCHASE_MAX = 40  # the demo's most purchases of a user
PRICE_CENTS = 1999


def random_factors(rng, items, users, dim):
    """Item and user matrices, every entry uniform in [-1, 1)."""
    return rng.uniform(-1, 1, (items, dim)), rng.uniform(-1, 1, (users, dim))


def clustered_rows(rng, centre, n):
    """n rows, each a random centre plus isotropic noise of CLUSTER_NOISE of
    that centre's norm."""
    c = centre[rng.integers(len(centre), size=n)]
    sd = CLUSTER_NOISE * np.linalg.norm(c, axis=1, keepdims=True) / np.sqrt(c.shape[1])
    return c + sd * rng.standard_normal(c.shape)


def clustered_factors(rng, items, users, dim):
    """Item and user matrices around the same CENTRES centres."""
    centre = rng.standard_normal((CENTRES, dim))
    return clustered_rows(rng, centre, items), clustered_rows(rng, centre, users)


def popular_plus_random(rng, popular, weight):
    """A row per weight: the popularity direction times it plus a random
    part of norm about 1."""
    dim = len(popular)
    return weight[:, None] * popular + rng.standard_normal((len(weight), dim)) / np.sqrt(dim)


def skewed_factors(rng, items, users, dim):
    """Items: as much popularity as taste on average (|N(0, 1)| of it) and a
    log-normal length. Users: every one leans toward what is popular, some
    more than others."""
    popular = rng.standard_normal(dim)
    popular /= np.linalg.norm(popular)
    V = popular_plus_random(rng, popular, np.abs(rng.standard_normal(items)))
    V *= (np.exp(SKEW_SIGMA * rng.standard_normal(items)) / np.linalg.norm(V, axis=1))[:, None]
    return V, popular_plus_random(rng, popular, 1 + rng.uniform(-1, 1, users) / 2)


FACTORS = {"random": random_factors, "clustered": clustered_factors, "skewed": skewed_factors}


def purchases(rng, V, U):
    """(user row, item row) pairs: each user buys 1 + x^3 PURCHASE_MAX items
    (x uniform in [0, 1), as the demo draws it), the best-scoring of 4n + 8
    drawn at random. A pair drawn twice counts once."""
    pairs = []
    for u, x in enumerate(rng.random(len(U))):
        n = 1 + int(x ** 3 * PURCHASE_MAX)
        cand = rng.integers(len(V), size=4 * n + 8)
        pairs += [(u, i) for i in cand[np.argsort(-(V[cand] @ U[u]))[:n]]]
    return pairs


def import_model(tool, fixtures, shape, items, dim, path):
    """The model of a FACTORS shape at path, through recsys-model import,
    its inputs written into a directory beside it and removed after."""
    rng = np.random.default_rng(SEED)
    V, U = (m.astype(np.float32) for m in FACTORS[shape](rng, items, USERS, dim))
    item_ids = ["item-%07d" % i for i in range(items)]
    user_ids = ["u%06d" % (u + 1) for u in range(USERS)]  # the demo's user ids
    catalog = [(iid, "item", PRICE_CENTS, int(on_sale), 0)
               for iid, on_sale in zip(item_ids, rng.random(items) >= OFF_SALE)]
    inputs = tempfile.mkdtemp(dir=os.path.dirname(path))
    try:
        files = {
            "user_factors": fixtures.write_npy(os.path.join(inputs, "U.npy"), U),
            "user_ids": fixtures.write_ids(os.path.join(inputs, "users.txt"), user_ids),
            "item_factors": fixtures.write_npy(os.path.join(inputs, "V.npy"), V),
            "item_ids": fixtures.write_ids(os.path.join(inputs, "items.txt"), item_ids),
            "catalog": fixtures.write_csv(os.path.join(inputs, "catalog.csv"),
                                          fixtures.CATALOG_HEADER, catalog),
            "purchases": fixtures.write_csv(os.path.join(inputs, "purchases.csv"),
                                            ["user_id", "item_id"],
                                            [(user_ids[u], item_ids[i])
                                             for u, i in purchases(rng, V, U)]),
        }
        subprocess.run([tool, "import"] + fixtures.import_args(files)
                       + ["--model-version", "bench-" + shape, "--created-at", str(CREATED_AT),
                          "--quantize", "bf16,int8", "-o", path],
                       check=True, stdout=subprocess.DEVNULL)
    finally:
        shutil.rmtree(inputs)


def write_model(build, fixtures, shape, items, dim, tmp):
    """The path of a new model of shape (demo or one of FACTORS) in tmp."""
    path = os.path.join(tmp, "model-%s-%dx%d.lmdb" % (shape, items, dim))
    tool = os.path.join(build, "recsys-model")
    if shape == "demo":
        subprocess.run([tool, "demo", "-o", path, "--items", str(items), "--users", str(USERS),
                        "--dim", str(dim)], check=True, stdout=subprocess.DEVNULL)
    else:
        import_model(tool, fixtures, shape, items, dim, path)
    return path


# The daemon's streams a connection at --threads 2 (config_streams).
STREAMS = 8
SWEEP = (1, 4, 16, 64, 256)


def cpu_model():
    """The CPU's model name from /proc/cpuinfo, or "?"."""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return "?"


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


def call_each(port, methods):
    """Each method's request once through grpcio: the replies' bytes, in
    order. A call that does not answer OK ends the run."""
    with grpc.insecure_channel("127.0.0.1:%d" % port) as channel:
        replies = []
        for label, path, req in methods:
            try:
                replies.append(channel.unary_unary(path)(req.SerializeToString(), timeout=30))
            except grpc.RpcError as e:
                raise SystemExit("%s failed: %s %s" % (label, e.code(), e.details()))
        return replies


def scan_probe(log_path):
    """The daemon's "scan probe: ..." log line, from that text on, or None."""
    with open(log_path) as f:
        m = re.search(r"scan probe: .*", f.read())
    return m and m.group(0)


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


def bench_model(args, shape, items, dim, tmp, pb, health_pb2, fixtures):
    from daemon import grpc_frame  # tests/lib is on the path by now
    model = write_model(args.build, fixtures, shape, items, dim, tmp)
    methods = requests(pb, health_pb2, fixtures.read_model(model))
    log_path = os.path.join(tmp, "recsysd.log")
    proc, port, banner = start_daemon(os.path.join(args.build, "recsysd"), model, log_path)
    try:
        print("\n%d items x %d, %s factors: %s"
              % (items, dim, shape, banner.split("INFO  ")[-1]))
        info = pb.ModelInfo.FromString(call_each(port, methods)[1])  # row 1: GetModelInfo
        print("scan: %s (the model holds %s)"
              % (info.scan, ", ".join(["f32"] + list(info.quantized))))
        probe = scan_probe(log_path)
        if probe:
            print(probe)
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
            print("| %s | %.0f | %.0f | %+.0f | %.0f | %.0f%% |"
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
            name = "%dx%d" % (items, dim) if shape == "demo" else "%s-%dx%d" % (shape, items, dim)
            png = os.path.join(args.plot, "rpc-sweep-%s.png" % name)
            plot(png, "%d items x %d, %s factors, recsysd --threads 2" % (items, dim, shape),
                 curves)
            print("plot: %s" % png)
    finally:
        proc.terminate()
        proc.wait(60)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("build", nargs="?", default="build")
    ap.add_argument("--catalogs", default="6000x32,10000x64,100000x32,1000000x64",
                    help="items x dimension, comma-separated")
    ap.add_argument("--factors", default="demo",
                    help="factor shapes, comma-separated: demo, %s" % ", ".join(FACTORS))
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=int, default=2, help="each h2load run's duration")
    ap.add_argument("--plot", help="directory for the sweep's PNG plots")
    args = ap.parse_args()
    shapes = args.factors.split(",")
    for shape in shapes:
        if shape != "demo" and shape not in FACTORS:
            ap.error("unknown factor shape %r" % shape)
    if shutil.which("h2load") is None:
        raise SystemExit("h2load not found: apt-get install nghttp2-client")
    sys.path.insert(0, os.path.join(args.build, "gen", "python"))
    os.environ.setdefault("RECSYS_PYGEN", os.path.join(args.build, "gen", "python"))
    import fixtures  # noqa: E402  (after the path is set)
    from daemon import health_pb2  # noqa: E402
    from recsys.v1 import recommender_pb2 as pb  # noqa: E402

    print("command: %s" % " ".join(sys.argv))
    print("machine: %s, %d cores, Linux %s, load %.2f %.2f %.2f"
          % ((cpu_model(), os.cpu_count(), platform.release()) + os.getloadavg()))
    print("h2load: %s" % subprocess.run(["h2load", "--version"], capture_output=True,
                                        text=True).stdout.strip())
    print("medians of %d rounds of %d s runs; latency: 1 connection, 1 stream"
          % (args.rounds, args.seconds))
    tmp = tempfile.mkdtemp(prefix="bench-rpc-")
    try:
        for catalog in args.catalogs.split(","):
            items, dim = (int(x) for x in catalog.split("x"))
            for shape in shapes:
                bench_model(args, shape, items, dim, tmp, pb, health_pb2, fixtures)
    finally:
        shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
