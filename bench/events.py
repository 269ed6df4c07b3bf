#!/usr/bin/python3
"""bench/events.py: live events, measured against the issue's targets.

    bench/events.py [BUILD_DIR] [--items 100000] [--dim 64] [--rounds 5]
                    [--seconds 2] [--swaps 100] [--plot DIR]

It starts the real recsysd with a state directory in the build directory
(a real disk: the filesystem is printed, since fsync on tmpfs is free).
RecordEvents is loaded by build/bench/events (bench/events.c), an HTTP/2
client on libnghttp2 that gives every event a user and an item of its own,
which h2load, repeating one body, cannot; the other calls by h2load
(Debian's nghttp2-client), as bench/rpc.py does. Four measurements:

  1. RecordEvents durable throughput: 16 callers, each with one call of 10
     events in flight, for --seconds a round; events per second, p50, p90
     and p99 of a call, the commits per second and events per commit from
     the daemon's recsys_state_commits_total (the group commit), and the
     generator's own CPU (a share of one core). Every call must answer OK,
     by the generator's count and the daemon's. The state grows from round
     to round (nothing compacts it here), so each round is printed too.
  2. Recommend for folded-in users (20 recorded interactions, scored with
     a vector folded in on every call: no cache), one topical and one of
     mixed tastes, against a model user's Recommend and the health check,
     on the demo model of --items x --dim, 1 connection x 1 call, methods
     taking turns over --rounds: medians of p50, and the ratios measured in
     the same rounds.
  3. Recommend at a fixed 500 calls/s (h2load), alone, with RecordEvents
     at the target's 20,000 events/s and with RecordEvents flat out
     (build/bench/events in the background): p99 of each, medians over the
     rounds, the ratios, and the events/s recorded meanwhile.
  4. --swaps model swaps with events flowing: a small model published
     --swaps times by rename, each with a data end 60 s of event time later,
     while a thread records events dated along that time; after each swap,
     the state's pages in use, its file size and the events pending, from
     /metrics. They level off when compaction keeps up. --plot draws them
     into DIR/events-state.png (python3-matplotlib).

The load generators, the event thread and the daemon share the machine's
cores.
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
import threading
import time

import grpc
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "tests", "lib"))

import rpc  # noqa: E402  h2load(), percentiles()

EVENTS_PER_CALL = 10
CALLERS = 16
SERVE_RPS = 500
TARGET_EVENTS = 20000  # events/s the issue asks RecordEvents for
FOLDED_INTERACTIONS = 20


def grpc_body(msg, path):
    """@msg as one gRPC message, written to @path for h2load's -d."""
    data = msg.SerializeToString()
    with open(path, "wb") as f:
        f.write(b"\x00" + len(data).to_bytes(4, "big") + data)
    return path


class Daemon:
    def __init__(self, build, model, state, log_path):
        self.log_path = log_path
        with open(log_path, "w") as log:
            self.proc = subprocess.Popen(
                [os.path.join(build, "recsysd"), "--model", model, "--listen", "127.0.0.1:0",
                 "--metrics-listen", "127.0.0.1:0", "--state-dir", state, "--threads", "2"],
                stderr=log)
        deadline = time.monotonic() + 60
        self.port = self.metrics_port = None
        while time.monotonic() < deadline and self.proc.poll() is None:
            text = open(log_path).read()
            m = re.search(r"listening on \S+:(\d+) threads=", text)
            mm = re.search(r"metrics on http://\S+:(\d+)/metrics", text)
            if m and mm:
                self.port, self.metrics_port = int(m.group(1)), int(mm.group(1))
                break
            time.sleep(0.05)
        if self.port is None:
            self.proc.kill()
            raise SystemExit("recsysd did not start:\n" + open(log_path).read())
        self.channel = grpc.insecure_channel("127.0.0.1:%d" % self.port)

    def call(self, method, req, resp_cls):
        return self.channel.unary_unary("/recsys.v1.Recommender/" + method,
                                        request_serializer=lambda m: m.SerializeToString(),
                                        response_deserializer=resp_cls.FromString)(req, timeout=30)

    def metrics(self):
        import prom
        import urllib.request
        with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % self.metrics_port) as r:
            return prom.parse(r.read().decode())

    def stop(self):
        self.channel.close()
        self.proc.terminate()
        self.proc.wait(60)


def handled_ok(m, method):
    return m.value("grpc_server_handled_total", 0, grpc_method=method, grpc_code="OK")


def filesystem(path):
    """The filesystem type and device of @path: findmnt names ext4, where
    stat -f says ext2/ext3."""
    out = subprocess.run(["findmnt", "-no", "FSTYPE,SOURCE", "-T", path], capture_output=True,
                         text=True)
    if out.returncode != 0:
        out = subprocess.run(["stat", "-f", "-c", "%T", path], capture_output=True, text=True)
    return " on ".join(out.stdout.split()) or "unknown"


def machine():
    return "%s, %d CPUs, %s" % (rpc.cpu_model(), os.cpu_count(), platform.release())


# ---- 1 and 3: RecordEvents under load -----------------------------------------

def generator(build, port, items_file, tag, seconds, rps=0):
    """The argv of build/bench/events: CALLERS callers, each with one call of
    EVENTS_PER_CALL views in flight, every event of a user and item of its
    own; for @seconds, or until its stdin closes (0); flat out, or at @rps
    calls/s over all callers."""
    return ([os.path.join(build, "bench", "events"), "--port", str(port), "--items-file",
             items_file, "--callers", str(CALLERS), "--events", str(EVENTS_PER_CALL),
             "--seconds", str(seconds), "--tag", tag] + (["--rps", str(rps)] if rps else []))


def parse_generator(out):
    """build/bench/events' key=value line as a dict of floats."""
    return {k: float(v) for k, v in (f.split("=") for f in out.split())}


def record_burst(d, args, items_file, tag):
    """(events/s, p50 us, p90 us, p99 us, events per commit, commits/s, the
    generator's share of a core) of one run of build/bench/events flat out
    for --seconds; every call must be answered OK, by the generator's count
    (grpc-status 0) and the daemon's."""
    before = d.metrics()
    out = subprocess.run(generator(args.build, d.port, items_file, tag, args.seconds),
                         capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit("bench/events failed: %s%s" % (out.stdout, out.stderr))
    g = parse_generator(out.stdout)
    after = d.metrics()
    calls = handled_ok(after, "RecordEvents") - handled_ok(before, "RecordEvents")
    if calls != g["ok"] or g["ok"] != g["calls"]:
        raise SystemExit("RecordEvents: %d calls made, %d answered OK, daemon counts %d OK"
                         % (g["calls"], g["ok"], calls))
    commits = (after.value("recsys_state_commits_total") -
               before.value("recsys_state_commits_total"))
    return (g["events_per_s"], g["p50_us"], g["p90_us"], g["p99_us"],
            calls * EVENTS_PER_CALL / max(commits, 1), commits / g["seconds"], g["cpu_share"])


def record_background(d, args, items_file, tag, rps):
    """build/bench/events running until its stdin is closed: flat out, or
    at @rps calls/s."""
    return subprocess.Popen(generator(args.build, d.port, items_file, tag, 0, rps),
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


def record_stop(p):
    """Stop a record_background and return its figures."""
    out, _ = p.communicate(timeout=60)
    if p.returncode != 0:
        raise SystemExit("bench/events (background) failed: %s" % out)
    return parse_generator(out)


def h2load_rps(port, path, body, log, seconds, rps):
    """One client at a fixed rate: (p50 us, p99 us)."""
    if os.path.exists(log):
        os.unlink(log)
    subprocess.run(["h2load", "--log-file", log, "-D", str(seconds), "-c", "1", "-m", "1", "-t",
                    "1", "--rps", str(rps), "-H", "content-type: application/grpc", "-H",
                    "te: trailers", "-d", body, "http://127.0.0.1:%d%s" % (port, path)],
                   capture_output=True, check=True)
    return rpc.percentiles(log)


# ---- 4: swaps with events flowing ----------------------------------------------

def write_small_model(build, tmp, data_end, path):
    """A 2,000 x 16 model with data end @data_end, imported and renamed
    over @path by recsys-model itself."""
    files = os.path.join(tmp, "small")
    if not os.path.isdir(files):
        os.mkdir(files)
        rng = np.random.default_rng(7)
        np.save(os.path.join(files, "U.npy"), rng.standard_normal((500, 16)).astype(np.float32))
        np.save(os.path.join(files, "V.npy"), rng.standard_normal((2000, 16)).astype(np.float32))
        with open(os.path.join(files, "users.txt"), "w") as f:
            f.write("".join("s%d\n" % u for u in range(500)))
        with open(os.path.join(files, "items.txt"), "w") as f:
            f.write("".join("i%d\n" % i for i in range(2000)))
        with open(os.path.join(files, "catalog.csv"), "w") as f:
            f.write("item_id,category,price_cents,on_sale,member_tier\n")
            f.write("".join("i%d,course,100,true,0\n" % i for i in range(2000)))
    subprocess.run([os.path.join(build, "recsys-model"), "import",
                    "--user-factors", os.path.join(files, "U.npy"),
                    "--user-ids", os.path.join(files, "users.txt"),
                    "--item-factors", os.path.join(files, "V.npy"),
                    "--item-ids", os.path.join(files, "items.txt"),
                    "--catalog", os.path.join(files, "catalog.csv"),
                    "--model-version", "swap-%d" % data_end, "--data-end", str(data_end),
                    "-o", path], check=True, capture_output=True)


def swaps(args, pb, tmp):
    """[(swap, used bytes, file bytes, pending events)] after each swap."""
    model = os.path.join(tmp, "small.lmdb")
    state = os.path.join(tmp, "state-swaps")
    epoch = 1_000_000_000_000  # event time starts here; a swap covers 60 s of it
    write_small_model(args.build, tmp, epoch, model)
    d = Daemon(args.build, model, state, os.path.join(tmp, "swaps.log"))
    clock = {"t": epoch, "stop": False, "calls": 0}

    def record():
        n = 0
        while not clock["stop"]:
            t = clock["t"]
            # Ten events spread over the next 60 s of event time.
            evs = [pb.Event(user_id="sw-%d" % ((n * 10 + k) % 5000), item_id="i%d" % (n % 2000),
                            type=pb.EventType.Value("PURCHASE" if k % 3 else "VIEW"),
                            timestamp_unix_ms=t + k * 6000) for k in range(10)]
            try:
                d.call("RecordEvents", pb.RecordEventsRequest(events=evs),
                       pb.RecordEventsResponse)
                clock["calls"] += 1
            except grpc.RpcError as e:
                raise SystemExit("RecordEvents failed during the swaps: %s" % e.details())
            n += 1

    rows = []
    thread = threading.Thread(target=record)
    thread.start()
    try:
        for k in range(1, args.swaps + 1):
            time.sleep(0.05)
            clock["t"] = epoch + k * 60_000
            loads = d.call("GetModelInfo", pb.ModelInfoRequest(), pb.ModelInfo).reload_count
            write_small_model(args.build, tmp, epoch + (k - 1) * 60_000 + 59_999, model)
            deadline = time.monotonic() + 10
            while (d.call("GetModelInfo", pb.ModelInfoRequest(), pb.ModelInfo).reload_count
                   == loads and time.monotonic() < deadline):
                time.sleep(0.005)
            m = d.metrics()
            pending = sum(m.value("recsys_events_pending", 0, type=t)
                          for t in ("purchase", "view", "refund"))
            rows.append((k, m.value("recsys_state_bytes", kind="used"),
                         m.value("recsys_state_bytes", kind="file"), pending))
    finally:
        clock["stop"] = True
        thread.join()
        d.stop()
    return rows, clock["calls"]


def plot(rows, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot([r[0] for r in rows], [r[1] / 1024 for r in rows], label="pages in use (KiB)")
    ax.plot([r[0] for r in rows], [r[2] / 1024 for r in rows], label="data.mdb size (KiB)")
    ax2 = ax.twinx()
    ax2.plot([r[0] for r in rows], [r[3] for r in rows], color="grey", linestyle=":",
             label="events pending")
    ax.set_xlabel("model swaps, events flowing")
    ax.set_ylabel("KiB")
    ax2.set_ylabel("events pending")
    ax.set_ylim(bottom=0)
    ax2.set_ylim(bottom=0)
    ax.legend(loc="upper left")
    ax2.legend(loc="lower right")
    ax.set_title("recsysd state across model swaps (bench/events.py)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


# ---- main ----------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("build", nargs="?", default="build")
    ap.add_argument("--items", type=int, default=100000)
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=int, default=2)
    ap.add_argument("--swaps", type=int, default=100)
    ap.add_argument("--plot", help="directory for events-state.png")
    args = ap.parse_args()
    args.build = os.path.abspath(args.build)
    if shutil.which("h2load") is None:
        raise SystemExit("h2load not found: apt-get install nghttp2-client")
    sys.path.insert(0, os.path.join(args.build, "gen", "python"))
    from recsys.v1 import recommender_pb2 as pb

    # The state on the build directory's disk, never on a tmpfs /tmp.
    tmp = tempfile.mkdtemp(prefix="bench-events-", dir=args.build)
    try:
        print("command: %s" % " ".join(sys.argv))
        print("machine: %s" % machine())
        print("state filesystem: %s (%s)" % (filesystem(tmp), tmp))
        model = os.path.join(tmp, "demo.lmdb")
        subprocess.run([os.path.join(args.build, "recsys-model"), "demo", "-o", model,
                        "--items", str(args.items), "--dim", str(args.dim)], check=True,
                       stdout=subprocess.DEVNULL)
        d = Daemon(args.build, model, os.path.join(tmp, "state"), os.path.join(tmp, "d.log"))
        try:
            info = d.call("GetModelInfo", pb.ModelInfoRequest(), pb.ModelInfo)
            items = [x.item_id for x in d.call(
                "Recommend", pb.RecommendRequest(user_id="nobody", count=1000),
                pb.RecommendResponse).items]
            print("model: demo %d items x %d, scan %s" % (info.item_count, info.dimension,
                                                       info.scan))
            # Folded-in users of 20 interactions, half purchases, half views:
            # "topical" took them from a model user's own top 20 (one taste,
            # as a shopper's first purchases are), "mixed" at random from the
            # 1,000 most popular items (many tastes at once: its scores
            # nearly tie over many rows, the reduced scan's hardest case).
            rng = np.random.default_rng(3)
            topical = [x.item_id for x in d.call(
                "Recommend", pb.RecommendRequest(user_id="u000043", count=FOLDED_INTERACTIONS),
                pb.RecommendResponse).items]
            mixed = [items[i] for i in rng.choice(len(items), FOLDED_INTERACTIONS,
                                                  replace=False)]
            for user, picks in (("topical", topical), ("mixed", mixed)):
                d.call("RecordEvents", pb.RecordEventsRequest(events=[
                    pb.Event(user_id=user, item_id=item,
                             type=pb.EventType.Value("PURCHASE" if k % 2 else "VIEW"))
                    for k, item in enumerate(picks)]), pb.RecordEventsResponse)
                r = d.call("Recommend", pb.RecommendRequest(user_id=user), pb.RecommendResponse)
                assert pb.Source.Name(r.source) == "FOLDED_IN", r.source
            r = d.call("Recommend", pb.RecommendRequest(user_id="u000043"),
                       pb.RecommendResponse)
            assert pb.Source.Name(r.source) == "PERSONALIZED", r.source
            bodies = {
                # An empty message: HealthCheckRequest for service "".
                "Health": ("/grpc.health.v1.Health/Check",
                           grpc_body(pb.ModelInfoRequest(), os.path.join(tmp, "health"))),
                "Recommend model user": ("/recsys.v1.Recommender/Recommend", grpc_body(
                    pb.RecommendRequest(user_id="u000043"), os.path.join(tmp, "rec-model"))),
                "Recommend topical": ("/recsys.v1.Recommender/Recommend", grpc_body(
                    pb.RecommendRequest(user_id="topical"), os.path.join(tmp, "rec-topical"))),
                "Recommend mixed": ("/recsys.v1.Recommender/Recommend", grpc_body(
                    pb.RecommendRequest(user_id="mixed"), os.path.join(tmp, "rec-mixed"))),
            }
            log = os.path.join(tmp, "h2load.log")
            lat = {k: [] for k in bodies}
            rec, steady, at_target, burst, bg_target, bg_burst = [], [], [], [], [], []
            items_file = os.path.join(tmp, "items.txt")
            with open(items_file, "w") as f:
                f.write("".join(i + "\n" for i in items))
            for rnd in range(args.rounds):
                order = list(bodies)
                order = order[rnd % len(order):] + order[:rnd % len(order)]
                for k in order:
                    path, body = bodies[k]
                    rpc.h2load(d.port, path, body, log, args.seconds, 1, 1)
                    lat[k].append(rpc.percentiles(log)[0])
                rec.append(record_burst(d, args, items_file, "r%d" % rnd))
                path, body = bodies["Recommend model user"]
                steady.append(h2load_rps(d.port, path, body, log, args.seconds, SERVE_RPS)[1])
                # The same while RecordEvents runs at the target's 20,000
                # events/s, then flat out.
                for rps, out, gens in ((TARGET_EVENTS // EVENTS_PER_CALL, at_target, bg_target),
                                       (0, burst, bg_burst)):
                    bg = record_background(d, args, items_file, "b%d-%d" % (rnd, rps), rps)
                    time.sleep(0.3)
                    out.append(h2load_rps(d.port, path, body, log, args.seconds, SERVE_RPS)[1])
                    gens.append(record_stop(bg))
            m = d.metrics()
            fold_us = (m.value("recsys_fold_in_seconds_total") /
                       max(m.value("recsys_fold_ins_total"), 1) * 1e6)
        finally:
            d.stop()

        med = {k: statistics.median(v) for k, v in lat.items()}
        print()
        med_rec = [statistics.median(r[i] for r in rec) for i in range(7)]
        print("1. RecordEvents, %d callers x 1 call of %d events (each of its own user and item),"
              " %d s, %d rounds (medians):" % (CALLERS, EVENTS_PER_CALL, args.seconds, args.rounds))
        print("   %.0f events/s durable   p50 %.2f ms   p90 %.2f ms   p99 %.2f ms"
              % (med_rec[0], med_rec[1] / 1000, med_rec[2] / 1000, med_rec[3] / 1000))
        print("   %.0f commits/s, %.1f events per commit; load generator %.0f%% of one core"
              % (med_rec[5], med_rec[4], 100 * med_rec[6]))
        print("   per round: " + "; ".join("%.0f ev/s p99 %.2f ms" % (r[0], r[3] / 1000)
                                          for r in rec))
        print("   targets: >= 20,000 events/s, p99 <= 10 ms")
        print("2. Latency, 1 connection x 1 call, p50 (medians of %d rounds):" % args.rounds)
        for k in bodies:
            print("   %-22s %7.1f us" % (k, med[k]))
        print("   folded-in / model user: topical %.2f, mixed %.2f (target <= 1.3); model user / "
              "Health: %.2f; mean fold-in %.1f us (the daemon's recsys_fold_in_seconds_total)"
              % (med["Recommend topical"] / med["Recommend model user"],
                 med["Recommend mixed"] / med["Recommend model user"],
                 med["Recommend model user"] / med["Health"], fold_us))
        s, t, b = (statistics.median(steady), statistics.median(at_target),
                   statistics.median(burst))
        print("3. Recommend at %d calls/s, p99: steady %.2f ms; with RecordEvents at %d events/s "
              "%.2f ms (%.2fx), flat out %.2f ms (%.2fx) (target <= 1.5)"
              % (SERVE_RPS, s / 1000, TARGET_EVENTS, t / 1000, t / s, b / 1000, b / s))
        print("   events recorded meanwhile: %.0f /s paced (p99 %.2f ms), %.0f /s flat out "
              "(p99 %.2f ms); generator %.0f%% / %.0f%% of one core"
              % (statistics.median(g["events_per_s"] for g in bg_target),
                 statistics.median(g["p99_us"] for g in bg_target) / 1000,
                 statistics.median(g["events_per_s"] for g in bg_burst),
                 statistics.median(g["p99_us"] for g in bg_burst) / 1000,
                 100 * statistics.median(g["cpu_share"] for g in bg_target),
                 100 * statistics.median(g["cpu_share"] for g in bg_burst)))
        rows, calls = swaps(args, pb, tmp)
        print("4. %d model swaps, %d RecordEvents calls of 10 events flowing:" % (len(rows),
                                                                                   calls))
        print("   swap   used KiB   file KiB   pending")
        for r in rows:
            if r[0] in (1, 2, 5, 10) or r[0] % 25 == 0:
                print("   %4d   %8.0f   %8.0f   %7d" % (r[0], r[1] / 1024, r[2] / 1024, r[3]))
        if args.plot:
            out = os.path.join(args.plot, "events-state.png")
            plot(rows, out)
            print("   plot: %s" % out)
    finally:
        shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
