#!/usr/bin/python3
"""bench/models.py: several named models (--models-dir), measured against
issue 16's targets.

    bench/models.py [BUILD_DIR] [--items 100000] [--dim 64] [--users 100000]
                    [--rounds 5] [--seconds 2] [--flips 20]

It writes the demo model of --items x --dim (recsys-model demo) and serves
copies of it, so every model costs the same to score and what differs is
the routing. Three measurements:

  1. The split: a models directory of two models and routes.json
     {"default": "stable", "split": {"stable": 90, "candidate": 10}}; the
     arm of --users distinct user ids, asked through BatchRecommend (256 a
     call; unknown users, so popular lists: the routing is what is asked),
     from each answer's model_name. Printed: the candidate's share, how
     many users got another arm than the documented formula (computed here
     with hashlib) gives, and whether every user got the same arm again
     after a restart of the daemon.
  2. Routing's cost: Recommend top 10 for a model user and the health
     check, 1 connection x 1 call (h2load, Debian's nghttp2-client), on a
     daemon serving the model alone (--model) and on one serving three
     copies (--models-dir, routes.json splitting 34/33/33), the two taking
     turns over --rounds: medians of p50 and of calls/s, and the ratios
     measured in the same rounds.
  3. Route changes under load: h2load keeps 4 connections x 4 calls of
     Recommend (routed) going while routes.json is flipped --flips times
     between {"default": "stable"} and the 90/10 split, and then the
     candidate's file is removed (its share goes to the default); a probe
     thread calls Recommend for a user each flip moves, back to back. For
     each change: the time from the rename (or unlink) returning to the
     first answer, to a call begun after it, from the user's new arm.
     Every call of the load must answer OK: the daemon's
     grpc_server_handled_total by code, from /metrics.

The load generators and the daemon share the machine's cores.
"""

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "tests", "lib"))

import grpc  # noqa: E402

import rpc  # noqa: E402  h2load(), percentiles(), cpu_model()
from routes import arm_of, publish  # noqa: E402

SPLIT = {"default": "stable", "split": {"stable": 90, "candidate": 10}, "salt": "exp-1"}
STABLE = {"default": "stable"}
THREE = {"default": "stable", "split": {"stable": 34, "candidate": 33, "third": 33},
         "salt": "exp-3"}
BATCH = 256


class Daemon:
    """A recsysd with its metrics endpoint, its log in a file."""

    def __init__(self, recsysd, args, log_path):
        with open(log_path, "w") as log:
            self.proc = subprocess.Popen([recsysd, "--listen", "127.0.0.1:0", "--metrics-listen",
                                          "127.0.0.1:0"] + args, stderr=log)
        deadline = time.monotonic() + 120
        while True:
            with open(log_path) as f:
                text = f.read()
            m = re.search(r"listening on \S+:(\d+) threads=", text)
            if m:
                self.port = int(m.group(1))
                self.metrics = int(re.search(r"metrics on http://\S+:(\d+)/", text).group(1))
                break
            if time.monotonic() > deadline or self.proc.poll() is not None:
                self.proc.kill()
                raise SystemExit("recsysd did not start:\n" + text)
            time.sleep(0.05)
        self.channel = grpc.insecure_channel("127.0.0.1:%d" % self.port)

    def stop(self):
        self.channel.close()
        self.proc.terminate()
        self.proc.wait(60)

    def handled(self):
        """{grpc_code: calls} of grpc_server_handled_total, over methods."""
        with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % self.metrics) as r:
            text = r.read().decode()
        out = {}
        for m in re.finditer(r'^grpc_server_handled_total\{.*grpc_code="(\w+)"\} (\d+)', text,
                             re.M):
            out[m.group(1)] = out.get(m.group(1), 0) + int(m.group(2))
        return out


def split_arms(d, pb, users):
    call = d.channel.unary_unary("/recsys.v1.Recommender/BatchRecommend",
                                 request_serializer=lambda m: m.SerializeToString(),
                                 response_deserializer=pb.BatchRecommendResponse.FromString)
    arms = []
    for i in range(0, len(users), BATCH):
        req = pb.BatchRecommendRequest(requests=[pb.RecommendRequest(user_id=u, count=1)
                                                 for u in users[i:i + BATCH]])
        arms += [r.model_name for r in call(req, timeout=60).responses]
    return arms


def bench_split(args, recsysd, demo, tmp, pb):
    models = os.path.join(tmp, "split")
    os.mkdir(models)
    for name in ("stable", "candidate"):
        shutil.copyfile(demo, os.path.join(models, name + ".lmdb"))
    publish(os.path.join(models, "routes.json"), json.dumps(SPLIT).encode())
    users = ["user-%07d" % i for i in range(args.users)]
    runs = []
    for restart in range(2):
        d = Daemon(recsysd, ["--models-dir", models], os.path.join(tmp, "split.log"))
        try:
            start = time.monotonic()
            runs.append(split_arms(d, pb, users))
            took = time.monotonic() - start
        finally:
            d.stop()
    arms = runs[0]
    share = 100.0 * arms.count("candidate") / len(arms)
    wrong = sum(a != arm_of(SPLIT, u) for u, a in zip(users, arms))
    print("\n1. split 90/10 over %d distinct users (BatchRecommend of %d, %.1f s a pass)"
          % (len(users), BATCH, took))
    print("   candidate share %.2f%% (target 10 +- 1)  stable %.2f%%"
          % (share, 100.0 * arms.count("stable") / len(arms)))
    print("   users whose arm differs from the formula: %d; arms changed by a restart: %d"
          % (wrong, sum(a != b for a, b in zip(runs[0], runs[1]))))


def recommend_body(pb, tmp, user):
    path = os.path.join(tmp, "recommend.bin")
    msg = pb.RecommendRequest(user_id=user, count=10).SerializeToString()
    with open(path, "wb") as f:
        f.write(b"\0" + len(msg).to_bytes(4, "big") + msg)
    return path


def health_body(tmp):
    path = os.path.join(tmp, "health.bin")
    with open(path, "wb") as f:
        f.write(b"\0\0\0\0\0")
    return path


def bench_cost(args, recsysd, demo, tmp, pb):
    models = os.path.join(tmp, "three")
    os.mkdir(models)
    for name in ("stable", "candidate", "third"):
        shutil.copyfile(demo, os.path.join(models, name + ".lmdb"))
    publish(os.path.join(models, "routes.json"), json.dumps(THREE).encode())
    one = Daemon(recsysd, ["--model", demo], os.path.join(tmp, "one.log"))
    three = Daemon(recsysd, ["--models-dir", models], os.path.join(tmp, "three.log"))
    user = "u000001"  # a demo user
    bodies = {"Recommend": ("/recsys.v1.Recommender/Recommend", recommend_body(pb, tmp, user)),
              "Health": ("/grpc.health.v1.Health/Check", health_body(tmp))}
    log = os.path.join(tmp, "h2load.log")
    rows = {}  # (daemon, method) -> [(p50 us, calls/s)]
    try:
        for r in range(args.rounds):
            for label, d in (("one", one), ("three", three)):
                for method, (path, body) in bodies.items():
                    rate = rpc.h2load(d.port, path, body, log, args.seconds, 1, 1)
                    p50, _ = rpc.percentiles(log)
                    rows.setdefault((label, method), []).append((p50, rate))
    finally:
        one.stop()
        three.stop()
    print("\n2. routing's cost: Recommend top 10 for %s (arm %s of 3), 1 connection x 1 call"
          % (user, arm_of(THREE, user)))
    print("   %-10s %-10s %10s %10s" % ("daemon", "method", "p50 us", "calls/s"))
    med = {}
    for (label, method), vals in rows.items():
        med[label, method] = (statistics.median(v[0] for v in vals),
                              statistics.median(v[1] for v in vals))
        print("   %-10s %-10s %10d %10.0f" % ((label, method) + med[label, method]))
    ratios = [rows["three", "Recommend"][i][0] / rows["one", "Recommend"][i][0]
              for i in range(args.rounds)]
    print("   three/one Recommend p50: %.3f (median of per-round ratios; target <= 1.05);"
          " calls/s %.3f" % (statistics.median(ratios),
                             med["three", "Recommend"][1] / med["one", "Recommend"][1]))
    print("   Recommend over Health p50: one %.2f, three %.2f"
          % (med["one", "Recommend"][0] / med["one", "Health"][0],
             med["three", "Recommend"][0] / med["three", "Health"][0]))


def probe(d, pb, user, stop, answers):
    call = d.channel.unary_unary("/recsys.v1.Recommender/Recommend",
                                 request_serializer=lambda m: m.SerializeToString(),
                                 response_deserializer=pb.RecommendResponse.FromString)
    req = pb.RecommendRequest(user_id=user, count=10)
    while not stop.is_set():
        begun = time.monotonic()
        name = call(req, timeout=10).model_name
        answers.append((begun, time.monotonic(), name))


def await_arm(answers, since, arm, timeout=10):
    """Milliseconds from since to the first answer from arm to a call begun
    after since, as the client received it."""
    deadline = since + timeout
    while time.monotonic() < deadline:
        for begun, done, name in list(answers):
            if begun > since and name == arm:
                return (done - since) * 1000
        time.sleep(0.0005)
    raise SystemExit("no answer from %s within %d s" % (arm, timeout))


def bench_flips(args, recsysd, demo, tmp, pb):
    models = os.path.join(tmp, "flips")
    os.mkdir(models)
    for name in ("stable", "candidate"):
        shutil.copyfile(demo, os.path.join(models, name + ".lmdb"))
    routes = os.path.join(models, "routes.json")
    publish(routes, json.dumps(STABLE).encode())
    d = Daemon(recsysd, ["--models-dir", models], os.path.join(tmp, "flips.log"))
    moved = next("u%06d" % u for u in range(1, 10000)
                 if arm_of(SPLIT, "u%06d" % u) == "candidate")
    before = d.handled()
    load = subprocess.Popen(
        ["h2load", "-D", str(args.flips + 10), "-c", "4", "-m", "4", "-t", "1",
         "-H", "content-type: application/grpc", "-H", "te: trailers",
         "-d", recommend_body(pb, tmp, "u000002"),
         "http://127.0.0.1:%d/recsys.v1.Recommender/Recommend" % d.port],
        stdout=subprocess.PIPE, text=True)
    stop, answers = threading.Event(), []
    prober = threading.Thread(target=probe, args=(d, pb, moved, stop, answers))
    prober.start()
    changes = []
    try:
        time.sleep(1)
        for flip in range(args.flips):
            route, arm = (SPLIT, "candidate") if flip % 2 == 0 else (STABLE, "stable")
            publish(routes, json.dumps(route).encode())
            changes.append(("route", await_arm(answers, time.monotonic(), arm)))
            time.sleep(0.2)
        publish(routes, json.dumps(SPLIT).encode())
        await_arm(answers, time.monotonic(), "candidate")
        os.unlink(os.path.join(models, "candidate.lmdb"))
        changes.append(("removal", await_arm(answers, time.monotonic(), "stable")))
        time.sleep(0.5)
        # Before h2load's end, which cancels the calls it has in flight.
        after = d.handled()
        if load.poll() is not None:
            raise SystemExit("h2load ended before the changes did")
    finally:
        stop.set()
        prober.join()
        out = load.communicate()[0]
    d.stop()
    calls = {c: after.get(c, 0) - before.get(c, 0) for c in after}
    print("\n3. route changes under load (h2load 4 x 4 Recommend for %d s, %s calls answered)"
          % (args.flips + 10, re.search(r"requests: \d+ total, \d+ started, (\d+) done",
                                        out).group(1)))
    flips = [ms for kind, ms in changes if kind == "route"]
    print("   routes.json renamed %d times: first routed answer after %.2f ms median, %.2f ms"
          " at most (target < 100)" % (len(flips), statistics.median(flips), max(flips)))
    print("   candidate's file removed: first answer from the default after %.2f ms"
          % changes[-1][1])
    print("   the daemon's calls by code, from 1 s before the first change to 0.5 s after the"
          " last: %s (target: OK only)"
          % ", ".join("%s %d" % kv for kv in sorted(calls.items()) if kv[1]))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("build", nargs="?", default="build")
    ap.add_argument("--items", type=int, default=100000)
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--users", type=int, default=100000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=int, default=2)
    ap.add_argument("--flips", type=int, default=20)
    args = ap.parse_args()
    if shutil.which("h2load") is None:
        raise SystemExit("h2load not found: apt-get install nghttp2-client")
    sys.path.insert(0, os.path.join(args.build, "gen", "python"))
    from recsys.v1 import recommender_pb2 as pb  # noqa: E402
    recsysd = os.path.join(args.build, "recsysd")
    print("command: %s" % " ".join(sys.argv))
    print("machine: %s, %d cores, Linux %s, load %.2f %.2f %.2f"
          % ((rpc.cpu_model(), os.cpu_count(), platform.release()) + os.getloadavg()))
    tmp = tempfile.mkdtemp(prefix="bench-models-", dir=args.build)
    try:
        demo = os.path.join(tmp, "demo.lmdb")
        subprocess.run([os.path.join(args.build, "recsys-model"), "demo", "-o", demo,
                        "--items", str(args.items), "--dim", str(args.dim)], check=True,
                       stdout=subprocess.DEVNULL)
        print("model: recsys-model demo, %d items x %d, %d bytes"
              % (args.items, args.dim, os.path.getsize(demo)))
        bench_split(args, recsysd, demo, tmp, pb)
        bench_cost(args, recsysd, demo, tmp, pb)
        bench_flips(args, recsysd, demo, tmp, pb)
    finally:
        shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
