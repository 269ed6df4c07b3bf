#!/usr/bin/python3
"""bench/overload.py: what recsysd answers when asked for more than it can.

    bench/overload.py [BUILD_DIR] [--seconds 5] [--rounds 3] [--threads 2]

On the demo model (recsys-model demo: 30,000 users, 6,000 items, dimension
32), one daemon, loaded by h2load (Debian's nghttp2-client) with Recommend
calls, four phases in turn, each round taking them in the same order:

  capacity   4 connections x 16 streams, no deadline: the calls per second
             the daemon answers when it is kept busy and nothing more;
  storm      64 connections x 100 streams, every call with a 50 ms deadline
             (grpc-timeout: 50m), closed loop: h2load sends a new call the
             moment one ends, so a refused call comes right back;
  open 5x    an offered rate of 5 x the capacity (h2load --rps over 64
             connections), 50 ms deadlines: what the issue's target speaks of;
  flood      500 connections x 100 streams, no deadline, while a separate
             client (python3-grpcio) makes Recommend calls one at a time:
             its latency is what a well-behaved caller sees meanwhile.

The figures come from the daemon's own /metrics (grpc_server_handled_total
by status), read before and after each phase, and from /proc for its
memory. It prints medians over the rounds and, for the deadline phases,
OK calls per second against the capacity measured in the same round.

h2load and the daemon share the machine's cores, so "5x" is what h2load
could offer beside the daemon; the command, the machine and the offered
rate actually reached are printed with the figures.
"""

import argparse
import os
import platform
import re
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

RECOMMEND = "/recsys.v1.Recommender/Recommend"
CODES = ("OK", "DeadlineExceeded", "ResourceExhausted", "Canceled", "Unavailable")


def cpu_model():
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor()


class Daemon:
    def __init__(self, build, model, threads):
        self.proc = subprocess.Popen(
            [os.path.join(build, "recsysd"), "--model", model, "--listen", "127.0.0.1:0",
             "--metrics-listen", "127.0.0.1:0", "--threads", str(threads)],
            stderr=subprocess.PIPE, text=True)
        text = ""
        while "listening on" not in text:
            line = self.proc.stderr.readline()
            if not line:
                raise SystemExit("recsysd did not start:\n" + text)
            text += line
        self.metrics = int(re.search(r"metrics on http://\S+:(\d+)/", text).group(1))
        self.port = int(re.search(r"listening on \S+:(\d+)", text).group(1))
        # Keep reading its log, so that it never blocks on a full pipe.
        threading.Thread(target=lambda: [None for _ in self.proc.stderr], daemon=True).start()

    def handled(self):
        """{grpc_code: count} of Recommend so far."""
        with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % self.metrics) as r:
            text = r.read().decode()
        out = dict.fromkeys(CODES, 0.0)
        for m in re.finditer(r'grpc_server_handled_total\{[^}]*grpc_method="Recommend"'
                             r'[^}]*grpc_code="(\w+)"\} (\S+)', text):
            out[m.group(1)] = out.get(m.group(1), 0.0) + float(m.group(2))
        return out

    def memory(self):
        with open("/proc/%d/status" % self.proc.pid) as f:
            fields = dict(line.split(":", 1) for line in f)
        return (int(fields["VmRSS"].split()[0]) // 1024, int(fields["VmHWM"].split()[0]) // 1024)

    def stop(self):
        self.proc.terminate()
        self.proc.wait(60)


def h2load(port, body, seconds, conns, streams, extra=()):
    argv = ["h2load", "-D", str(seconds), "-c", str(conns), "-m", str(streams), "-t", "1",
            "-H", "content-type: application/grpc", "-H", "te: trailers", "-d", body,
            *extra, "http://127.0.0.1:%d%s" % (port, RECOMMEND)]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 120).stdout
    m = re.search(r"finished in ([0-9.]+)(m?s), ([0-9.]+) req/s", out)
    return float(m.group(3)) if m else 0.0


def phase(d, run):
    """run() under the daemon; (per-second rates by status, seconds, h2load's req/s)."""
    before = d.handled()
    t0 = time.monotonic()
    sent = run()
    secs = time.monotonic() - t0
    after = d.handled()
    return {c: (after[c] - before[c]) / secs for c in CODES}, secs, sent


def probe(port, stop, latencies, codes):
    import grpc
    from recsys.v1 import recommender_pb2 as pb
    with grpc.insecure_channel("127.0.0.1:%d" % port) as ch:
        call = ch.unary_unary(RECOMMEND, request_serializer=lambda b: b,
                              response_deserializer=pb.RecommendResponse.FromString)
        msg = pb.RecommendRequest(user_id="u000042", count=10).SerializeToString()
        while not stop.is_set():
            t = time.monotonic()
            try:
                call(msg, timeout=5)
                code = "OK"
            except grpc.RpcError as e:
                code = e.code().name
            latencies.append((time.monotonic() - t) * 1000)
            codes[code] = codes.get(code, 0) + 1


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("build", nargs="?", default="build")
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    sys.path.insert(0, os.path.join(a.build, "gen", "python"))
    from recsys.v1 import recommender_pb2 as pb

    tmp = tempfile.mkdtemp(prefix="recsys-overload-")
    try:
        model = os.path.join(tmp, "demo.lmdb")
        subprocess.run([os.path.join(a.build, "recsys-model"), "demo", "-o", model],
                       check=True, capture_output=True)
        body = os.path.join(tmp, "recommend.grpc")
        with open(body, "wb") as f:
            msg = pb.RecommendRequest(user_id="u000042", count=10).SerializeToString()
            f.write(b"\0" + struct.pack(">I", len(msg)) + msg)  # one gRPC message
        print("bench/overload.py: %s, %d cores; recsysd --threads %d on the demo model; "
              "h2load %s; %d rounds of %d s per phase"
              % (cpu_model(), os.cpu_count(), a.threads,
                 subprocess.run(["h2load", "--version"], capture_output=True,
                                text=True).stdout.split()[-1], a.rounds, a.seconds))
        rows = {k: [] for k in ("capacity", "storm", "open", "flood")}
        offered, probes, hwm = [], [], []
        for r in range(a.rounds):
            d = Daemon(a.build, model, a.threads)
            try:
                cap, _, _ = phase(d, lambda: h2load(d.port, body, a.seconds, 4, 16))
                rows["capacity"].append(cap)
                storm, _, _ = phase(d, lambda: h2load(d.port, body, a.seconds, 64, 100,
                                                      ["-H", "grpc-timeout: 50m"]))
                rows["storm"].append(storm)
                rps = max(1, int(5 * cap["OK"] / 64))
                opened, secs, sent = phase(d, lambda: h2load(
                    d.port, body, a.seconds, 64, 100,
                    ["-H", "grpc-timeout: 50m", "--rps", str(rps)]))
                rows["open"].append(opened)
                offered.append(sent / cap["OK"] if cap["OK"] else 0)
                stop, lat, codes = threading.Event(), [], {}
                t = threading.Thread(target=probe, args=(d.port, stop, lat, codes))
                t.start()
                flood, _, _ = phase(d, lambda: h2load(d.port, body, a.seconds, 500, 100))
                stop.set()
                t.join()
                rows["flood"].append(flood)
                lat.sort()
                probes.append((lat[len(lat) // 2], lat[(len(lat) * 99) // 100], lat[-1],
                               codes.get("OK", 0), sum(codes.values())))
                hwm.append(d.memory()[1])
            finally:
                d.stop()

        def med(phase_rows, code):
            return statistics.median(x[code] for x in phase_rows)

        capacity = med(rows["capacity"], "OK")
        print("\n%-32s %10s %10s %10s %10s" % ("phase (Recommend)", "OK/s", "DEADLINE/s",
                                               "EXHAUST/s", "OK/capacity"))
        for label, key in (("capacity: 4 x 16, no deadline", "capacity"),
                           ("storm: 64 x 100 closed, 50 ms", "storm"),
                           ("open 5x: --rps, 50 ms", "open"),
                           ("flood: 500 x 100, no deadline", "flood")):
            print("%-32s %10.0f %10.0f %10.0f %10.2f"
                  % (label, med(rows[key], "OK"), med(rows[key], "DeadlineExceeded"),
                     med(rows[key], "ResourceExhausted"), med(rows[key], "OK") / capacity))
        print("\nopen 5x: h2load reached %.1fx the capacity (median of rounds)"
              % statistics.median(offered))
        print("probe during the flood, one call at a time: p50 %.1f ms, p99 %.1f ms, max %.1f ms;"
              " %d of %d OK (medians of rounds)"
              % (statistics.median(p[0] for p in probes), statistics.median(p[1] for p in probes),
                 statistics.median(p[2] for p in probes), statistics.median(p[3] for p in probes),
                 statistics.median(p[4] for p in probes)))
        print("peak RSS of the daemon over a round (VmHWM): median %d MB, max %d MB"
              % (statistics.median(hwm), max(hwm)))
    finally:
        shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
