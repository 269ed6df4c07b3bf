#!/usr/bin/python3
"""bench/ghz.py: recsysd under ghz, the gRPC load tool backend teams use.

    bench/ghz.py [BUILD_DIR] [--seconds 10] [--rates 1000,2000,4000,8000]

It builds ghz from tests/go/ghz's pinned modules with the pinned Go
toolchain (tests/go/install.sh), writes the demo model as `make run` does,
starts the real recsysd on it and loads it with ghz by server reflection
(no .proto handed to ghz):

  1. each of Recommend, CheckEligibility, SimilarItems, BatchRecommend (16
     users a call) and Health at a fixed concurrency, 4 connections x 16
     calls in flight, as bench/rpc.py's throughput runs, each after a
     warm-up of 2,000 calls; the user ids vary per call through ghz's
     request templates, over the demo's 30,000 users;
  2. Recommend at fixed rates (ghz --rps), the same connections: the rate
     reached and the latency at each;
  3. Recommend for one user by ghz and by h2load (Debian's nghttp2-client),
     taking turns over 3 rounds, at the same 4 x 16: the two tools against
     each other on the same machine, and the CPU each took.

It prints one table of calls/s, p50/p90/p99 and the status counts, and
keeps ghz's reports in BUILD_DIR/bench/ghz/: the JSON of each measured run,
and an HTML one of 500 calls more with the same settings (ghz writes one
format a run). The load tool and
the daemon share the machine's cores.
"""

import argparse
import json
import os
import platform
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import rpc  # noqa: E402  h2load(), start_daemon(), cpu_model()

CONNECTIONS, CONCURRENCY = 4, 64
USER = '"u{{printf `%06d` (randomInt 1 30001)}}"'


def ghz_calls(items):
    """(label, method, request template) of each run."""
    batch = ", ".join('{"user_id": %s, "count": 10}' % USER for _ in range(16))
    return [
        ("Recommend", "recsys.v1.Recommender.Recommend",
         '{"user_id": %s, "count": 10}' % USER),
        ("CheckEligibility", "recsys.v1.Recommender.CheckEligibility",
         '{"user_id": %s, "item_ids": %s}' % (USER, json.dumps(items[:5]))),
        ("SimilarItems", "recsys.v1.Recommender.SimilarItems",
         json.dumps([{"item_id": i, "count": 10} for i in items])),
        ("BatchRecommend x16", "recsys.v1.Recommender.BatchRecommend",
         '{"requests": [%s]}' % batch),
        ("Health", "grpc.health.v1.Health.Check", "{}"),
    ]


def ghz(binary, port, call, data, out_dir, name, *load):
    """One ghz run; its JSON report (also kept with an HTML one in out_dir
    as name.json and name.html), and the CPU seconds ghz took."""
    argv = [binary, "--insecure", "--call", call, "-d", data, "--connections",
            str(CONNECTIONS), *load, "127.0.0.1:%d" % port]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    p = subprocess.run(argv + ["-O", "json"], capture_output=True, text=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if p.returncode != 0:
        raise SystemExit("ghz failed (%d): %s" % (p.returncode, p.stderr or p.stdout))
    report = json.loads(p.stdout)
    with open(os.path.join(out_dir, name + ".json"), "w") as f:
        f.write(p.stdout)
    # ghz writes one format a run: the HTML report is of 500 more calls.
    subprocess.run(argv[:-1] + ["-O", "html", "-o", os.path.join(out_dir, name + ".html"),
                                "-n", "500", argv[-1]], capture_output=True)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return report, cpu


def calls_for(rate, seconds):
    """ghz's load for about @seconds at @rate calls/s: a number of calls,
    not a duration, since ghz cuts the calls in flight at a duration's end
    and counts them as failed (Unavailable: "transport is closing")."""
    return ["-c", str(CONCURRENCY), "-n", str(max(2000, int(rate * seconds)))]


def latency_ms(report, pct):
    for row in report.get("latencyDistribution") or []:
        if row["percentage"] == pct:
            return row["latency"] / 1e6
    return float("nan")


def row(label, report):
    codes = ", ".join("%s %d" % kv for kv in sorted(report["statusCodeDistribution"].items()))
    return "   %-22s %10.0f %8.2f %8.2f %8.2f   %s" % (
        label, report["rps"], latency_ms(report, 50), latency_ms(report, 90),
        latency_ms(report, 99), codes)


def known_items(port):
    """Item ids the demo model has: Recommend's answers for a few users."""
    import grpc
    from recsys.v1 import recommender_pb2 as pb
    with grpc.insecure_channel("127.0.0.1:%d" % port) as ch:
        call = ch.unary_unary("/recsys.v1.Recommender/Recommend",
                              request_serializer=lambda m: m.SerializeToString(),
                              response_deserializer=pb.RecommendResponse.FromString)
        items = []
        for u in range(1, 40):
            items += [i.item_id for i in call(pb.RecommendRequest(user_id="u%06d" % u),
                                               timeout=30).items]
    return sorted(set(items))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("build", nargs="?", default="build")
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--rates", default="1000,2000,4000,8000")
    args = ap.parse_args()
    if shutil.which("h2load") is None:
        raise SystemExit("h2load not found: apt-get install nghttp2-client")
    sys.path.insert(0, os.path.join(args.build, "gen", "python"))
    from recsys.v1 import recommender_pb2 as pb  # noqa: E402
    bin_dir = os.path.abspath(os.path.join(args.build, "go", "bin"))
    subprocess.run(["sh", os.path.join(HERE, "..", "tests", "go", "install.sh"),
                    os.path.join(HERE, "..", "tests", "go", "ghz"),
                    "github.com/bojand/ghz/cmd/ghz", bin_dir], check=True)
    binary = os.path.join(bin_dir, "ghz")
    out_dir = os.path.join(args.build, "bench", "ghz")
    os.makedirs(out_dir, exist_ok=True)
    # Built from source, ghz does not know its version: go.mod says it.
    with open(os.path.join(HERE, "..", "tests", "go", "ghz", "go.mod")) as f:
        version = re.search(r"github.com/bojand/ghz (\S+)", f.read()).group(1)
    print("command: %s" % " ".join(sys.argv))
    print("machine: %s, %d cores, Linux %s, load %.2f %.2f %.2f"
          % ((rpc.cpu_model(), os.cpu_count(), platform.release()) + os.getloadavg()))
    print("ghz %s; %d connections x %d calls in flight (%d s runs); reports in %s"
          % (version, CONNECTIONS, CONCURRENCY // CONNECTIONS, args.seconds, out_dir))
    tmp = tempfile.mkdtemp(prefix="bench-ghz-")
    proc = None
    try:
        model = os.path.join(tmp, "demo.lmdb")
        subprocess.run([os.path.join(args.build, "recsys-model"), "demo", "-o", model],
                       check=True, stdout=subprocess.DEVNULL)
        proc, port, line = rpc.start_daemon(os.path.join(args.build, "recsysd"), model,
                                            os.path.join(tmp, "recsysd.log"))
        print("daemon: %s" % line.split("INFO  ")[-1])
        print("\n   %-22s %10s %8s %8s %8s   %s"
              % ("method", "calls/s", "p50 ms", "p90 ms", "p99 ms", "status"))
        for label, call, data in ghz_calls(known_items(port)):
            warm, _ = ghz(binary, port, call, data, out_dir, "warmup", "-c", str(CONCURRENCY),
                          "-n", "2000")
            report, _ = ghz(binary, port, call, data, out_dir, label.split()[0].lower(),
                            *calls_for(warm["rps"], args.seconds))
            print(row(label, report))
        print("\n   Recommend at a fixed rate")
        label, call, data = ghz_calls([])[0]
        for rate in args.rates.split(","):
            report, _ = ghz(binary, port, call, data, out_dir, "recommend-rps-" + rate,
                            "--rps", rate, *calls_for(float(rate), args.seconds))
            print(row("--rps %s" % rate, report))
        compare(args, binary, port, out_dir, tmp, pb)
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(60)
        shutil.rmtree(tmp)


def compare(args, binary, port, out_dir, tmp, pb):
    """ghz against h2load, one user's Recommend, rounds taking turns."""
    msg = pb.RecommendRequest(user_id="u000042", count=10).SerializeToString()
    body = os.path.join(tmp, "recommend.bin")
    with open(body, "wb") as f:
        f.write(b"\0" + len(msg).to_bytes(4, "big") + msg)
    data = '{"user_id": "u000042", "count": 10}'
    rows = {"ghz": [], "h2load": []}
    for r in range(3):
        start = time.monotonic()
        report, cpu = ghz(binary, port, "recsys.v1.Recommender.Recommend", data, out_dir,
                          "recommend-one-user", *calls_for(7000, args.seconds))
        rows["ghz"].append((report["rps"], cpu / (time.monotonic() - start)))
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        rate = rpc.h2load(port, "/recsys.v1.Recommender/Recommend", body, None, args.seconds,
                          CONNECTIONS, CONCURRENCY // CONNECTIONS)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        rows["h2load"].append((rate, cpu / args.seconds))
    g = statistics.median(x[0] for x in rows["ghz"])
    h = statistics.median(x[0] for x in rows["h2load"])
    print("\n   one user's Recommend, %d x %d, medians of 3 rounds:" % (
        CONNECTIONS, CONCURRENCY // CONNECTIONS))
    for tool in ("ghz", "h2load"):
        print("   %-8s %10.0f calls/s, the tool's CPU %.2f cores" % (
            tool, statistics.median(x[0] for x in rows[tool]),
            statistics.median(x[1] for x in rows[tool])))
    print("   ghz / h2load: %.3f (target >= 0.85)" % (g / h))


if __name__ == "__main__":
    main()
