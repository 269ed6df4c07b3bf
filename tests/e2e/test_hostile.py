"""Hostile and careless clients cannot starve, stall or kill the daemon.

One test per finding of issue 11, numbered as the issue numbers them; each
failed on the daemon before the fix it covers. The misbehaving peers are
played with h2peer (a raw HTTP/2 client), plain sockets, h2load, and
python3-grpcio's own options (compression, metadata, raw request bytes).
"""

import gzip
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import unittest

import grpc

import fixtures
import h2peer
from daemon import RECSYSD, Daemon, grpc_frame, handled, method_path
from recsys.v1 import recommender_pb2 as pb

RECOMMEND = method_path("Recommend")
# Sanitizer builds run several times slower: timing ratios mean nothing there.
SANITIZED = any(v in os.environ for v in ("ASAN_OPTIONS", "TSAN_OPTIONS", "UBSAN_OPTIONS"))


def await_true(pred, timeout=10.0, step=0.02):
    """Poll pred until it is true or timeout; its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(step)


def recommend_bytes(user="u000001", count=10):
    return pb.RecommendRequest(user_id=user, count=count).SerializeToString()


def raw_recommend(channel):
    """Recommend taking request bytes as they are, for malformed ones."""
    return channel.unary_unary(RECOMMEND, request_serializer=lambda b: b,
                               response_deserializer=pb.RecommendResponse.FromString)


def cpu_ticks(pid):
    """utime + stime of a process, in clock ticks."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def vm_hwm_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise AssertionError("no VmHWM")


class Hostile(unittest.TestCase):
    """A fixtures model per class, a daemon per test (each test plays a
    different peer, and some kill what they test)."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="recsys-hostile-")
        cls.ds = fixtures.make_model(cls.tmp, users=200, items=2000, dim=16)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp)

    def daemon(self, *args, threads=2, **kw):
        return Daemon(self.ds.path, threads=threads, args=args, **kw)

    def assert_serves(self, d, calls=5, timeout=5):
        call = raw_recommend(d.channel())
        for _ in range(calls):
            self.assertGreater(len(call(recommend_bytes(), timeout=timeout).items), 0)


class Findings(Hostile):
    def test_01_out_of_descriptors_the_port_keeps_accepting(self):
        """1: 300 idle connections against a 256-descriptor limit: while
        exhausted the daemon does not spin, and once they close it serves."""
        d = self.daemon()
        d.argv = ["prlimit", "--nofile=256:256"] + d.argv
        with d:
            socks = []
            for _ in range(300):
                try:
                    socks.append(socket.create_connection(("127.0.0.1", d.port), timeout=5))
                except OSError:
                    break
            before = cpu_ticks(d.proc.pid)
            t0 = time.monotonic()
            # The daemon has had these connections for a while: a spinning
            # accept loop would burn a core meanwhile.
            d.wait_log(r"refused \d+ gRPC connection", timeout=10)
            time.sleep(1.0)  # the measuring window itself, not a wait for a condition
            ticks = cpu_ticks(d.proc.pid) - before
            secs = time.monotonic() - t0
            self.assertLess(ticks / os.sysconf("SC_CLK_TCK"), 0.3 * secs,
                            "the daemon burns CPU while out of descriptors")
            for s in socks:
                s.close()
            d.close_channels()
            self.assert_serves(d)

    def test_02_a_gzip_bomb_is_refused_within_the_limit(self):
        """2: a gzip request inflating to 64 MiB is RESOURCE_EXHAUSTED, and
        the daemon's peak memory grows by far less than that."""
        with self.daemon() as d:
            call = raw_recommend(d.channel())
            self.assertGreater(len(call(recommend_bytes(), timeout=5,
                                        compression=grpc.Compression.Gzip).items), 0)
            base = vm_hwm_kb(d.proc.pid)
            # An unknown bytes field (15) of zeros after a valid request.
            bomb = recommend_bytes() + b"\x7a" + _varint(64 << 20) + bytes(64 << 20)
            for _ in range(3):
                with self.assertRaises(grpc.RpcError) as cm:
                    call(bomb, timeout=30, compression=grpc.Compression.Gzip)
                self.assertEqual(cm.exception.code(), grpc.StatusCode.RESOURCE_EXHAUSTED)
            grown_mb = (vm_hwm_kb(d.proc.pid) - base) / 1024
            # A sanitizer's shadow memory and quarantine swell every figure.
            if not SANITIZED:
                self.assertLess(grown_mb, 40, "inflating the bomb cost %.0f MB" % grown_mb)
            self.assert_serves(d)

    def test_03_clients_that_never_read_block_nobody(self):
        """3: four clients that grant no window, each with a large Recommend
        pending, then a well-behaved client: all of its calls succeed."""
        with self.daemon() as d:
            peers = []
            for _ in range(4):
                p = h2peer.H2Peer(d.port, {h2peer.SETTINGS_INITIAL_WINDOW_SIZE: 0})
                p.send(p.request_bytes(RECOMMEND, grpc_frame(recommend_bytes(count=1000)))[1])
                peers.append(p)
            try:
                call = raw_recommend(d.channel())
                for _ in range(20):
                    self.assertGreater(len(call(recommend_bytes(), timeout=2).items), 0)
            finally:
                for p in peers:
                    p.close()

    def test_04_streams_are_bounded_per_connection_and_calls_in_all(self):
        """4: the server announces a stream bound and refuses streams
        beyond it; beyond --max-calls, calls are RESOURCE_EXHAUSTED at
        once and counted."""
        with self.daemon("--max-concurrent-streams", "8") as d:
            with h2peer.H2Peer(d.port) as p:
                first = p.read_frames(lambda f: f.kind == h2peer.SETTINGS and not f.flags)
                settings = first[-1].settings()
                self.assertEqual(settings.get(h2peer.SETTINGS_MAX_CONCURRENT_STREAMS), 8)
                # 200 whole calls at once, where 8 may be open: the server
                # answers no more than 8 (gRPC 1.51 ends such a connection
                # rather than refuse the excess stream by stream).
                message = grpc_frame(recommend_bytes())
                p.send(b"".join(p.request_bytes(RECOMMEND, message)[1] for _ in range(200)))
                frames = p.read_frames(lambda f: False, timeout=3)
                answered = {f.stream for f in frames if f.kind == h2peer.HEADERS}
                self.assertLessEqual(len(answered), 8)
            self.assert_serves(d)
        with self.daemon("--max-calls", "4", threads=1, metrics=True) as d:
            h2load = subprocess.run(
                ["h2load", "-n", "2000", "-c", "4", "-m", "16", "-d", self._request_file(),
                 "-H", "content-type: application/grpc", "-H", "te: trailers",
                 "http://127.0.0.1:%d%s" % (d.port, RECOMMEND)],
                capture_output=True, text=True, timeout=120)
            self.assertEqual(h2load.returncode, 0, h2load.stderr)
            m = d.await_scrape(lambda m: handled(m, "Recommend", "OK")
                               + handled(m, "Recommend", "ResourceExhausted") >= 2000)
            self.assertGreater(handled(m, "Recommend", "ResourceExhausted"), 0)
            self.assertGreater(handled(m, "Recommend", "OK"), 0)

    def _request_file(self):
        path = os.path.join(self.tmp, "recommend.grpc")
        with open(path, "wb") as f:
            f.write(grpc_frame(recommend_bytes()))
        return path

    def _h2load(self, port, seconds, conns, streams, extra=()):
        out = subprocess.run(
            ["h2load", "-D", str(seconds), "-c", str(conns), "-m", str(streams), "-t", "1",
             "-d", self._request_file(), "-H", "content-type: application/grpc",
             "-H", "te: trailers", *extra, "http://127.0.0.1:%d%s" % (port, RECOMMEND)],
            capture_output=True, text=True, timeout=seconds + 60)
        self.assertEqual(out.returncode, 0, out.stderr)

    @unittest.skipIf(SANITIZED, "a throughput ratio: meaningless under a sanitizer's slowdown")
    def test_05_deadlines_under_overload_keep_goodput(self):
        """5: with 64 x 32 calls in flight and 50 ms deadlines, the calls
        answered OK per second stay a good share of the capacity measured
        just before (before the fix: 0.006). The machine is shared: each
        attempt pairs the two phases, and one attempt in three must pass."""
        ratios = []
        with self.daemon(metrics=True) as d:
            def ok_per_second(*load):
                start, t0 = handled(d.scrape(), "Recommend", "OK"), time.monotonic()
                self._h2load(d.port, 2, *load)
                return (handled(d.scrape(), "Recommend", "OK") - start) / (time.monotonic() - t0)
            for _ in range(3):
                capacity = ok_per_second(4, 16)
                goodput = ok_per_second(64, 100, ["-H", "grpc-timeout: 50m"])
                ratios.append(goodput / capacity)
                if ratios[-1] > 0.1:
                    break
        self.assertGreater(max(ratios), 0.1, "goodput / capacity in each attempt: %s"
                           % ", ".join("%.3f" % r for r in ratios))

    def test_06_sigterm_answers_every_call_already_sent(self):
        """6: 512 calls sent at once (16 connections x 32 streams); once
        every connection has had an answer (so every call has been read),
        SIGTERM: every call is answered with its message, and the daemon
        exits 0. A stream above the last one its GOAWAY names was never
        received: a client may send it elsewhere, so it is no failure; none
        may be cut off otherwise. Raw connections, so that all calls are sent
        before the signal; a reply with a message is an OK one (the server
        sends none else)."""
        d = self.daemon(metrics=True)
        with d:
            peers = [h2peer.H2Peer(d.port) for _ in range(16)]
            try:
                message = grpc_frame(recommend_bytes(count=1000))
                streams = []
                for p in peers:
                    p.read_frames(lambda f: f.kind == h2peer.SETTINGS and not f.flags)
                    ids, data = [], b""
                    for _ in range(32):
                        sid, frames = p.request_bytes(RECOMMEND, message)
                        ids.append(sid)
                        data += frames
                    p.send(data)
                    streams.append(set(ids))
                # Every connection answered once, so the daemon has read all
                # of each one's calls (sent in one write): the signal finds
                # them received, and only then is the test a fair one.
                states = [{"done": set(), "data": set(), "last": None} for _ in peers]

                def tracker(ids, st):
                    def track(f):
                        if f.kind == h2peer.GOAWAY:
                            st["last"] = int.from_bytes(f.payload[:4], "big") & 0x7fffffff
                        if f.stream in ids and f.kind == h2peer.DATA:
                            st["data"].add(f.stream)
                        if f.stream in ids and (f.kind == h2peer.RST_STREAM or (
                                f.kind == h2peer.HEADERS and f.flags & h2peer.END_STREAM)):
                            st["done"].add(f.stream)
                        beyond = {s for s in ids
                                  if st["last"] is not None and s > st["last"]}
                        return st["done"] | beyond == ids
                    return track

                for p, ids, st in zip(peers, streams, states):
                    track = tracker(ids, st)
                    p.read_frames(lambda f: track(f) or bool(st["done"]), timeout=30)
                    self.assertTrue(st["done"], "a connection got no answer before SIGTERM")
                d.signal(signal.SIGTERM)
                counts = []

                def read(p, ids, st):
                    # Every connection read at once: one left unread would
                    # leave its replies untaken, and the daemon rightly
                    # cancels replies not taken for long.
                    p.read_frames(tracker(ids, st), timeout=30)
                    counts.append((len(st["data"] & st["done"]),
                                   len({s for s in ids - st["done"]
                                        if st["last"] is not None and s > st["last"]})))

                readers = [threading.Thread(target=read, args=pi)
                           for pi in zip(peers, streams, states)]
                for r in readers:
                    r.start()
                for r in readers:
                    r.join()
                answered = sum(a for a, _ in counts)
                unreceived = sum(u for _, u in counts)
                self.assertEqual(answered + unreceived, 512,
                                 "%d answered, %d never received" % (answered, unreceived))
                self.assertGreater(answered, 32)
                self.assertEqual(d.wait_exit(60), 0)
            finally:
                for p in peers:
                    p.close()

    def test_07_a_log_reader_going_away_does_not_kill(self):
        """7: stderr is a pipe whose reader is gone; a logged event (SIGHUP)
        must not end the daemon."""
        r, w = os.pipe()
        proc = subprocess.Popen([RECSYSD, "--model", self.ds.path, "--listen", "127.0.0.1:0",
                                 "--threads", "1"], stderr=w)
        os.close(w)
        try:
            # The port, from the start-up line, then the reader goes.
            text = b""
            while b"listening on" not in text:
                chunk = os.read(r, 4096)
                self.assertTrue(chunk, "recsysd exited at start")
                text += chunk
            port = int(text.split(b"listening on 127.0.0.1:")[1].split()[0])
            os.close(r)
            r = None
            for _ in range(3):
                proc.send_signal(signal.SIGHUP)  # each logs a line into the broken pipe
            with grpc.insecure_channel("127.0.0.1:%d" % port) as ch:
                self.assertGreater(len(raw_recommend(ch)(recommend_bytes(), timeout=10,
                                                         wait_for_ready=True).items), 0)
            self.assertIsNone(proc.poll(), "recsysd died")
            proc.send_signal(signal.SIGTERM)
            self.assertEqual(proc.wait(60), 0)
        finally:
            if r is not None:
                os.close(r)
            if proc.poll() is None:
                proc.kill()
                proc.wait()

    def test_08_slow_metrics_clients_do_not_delay_scrapes(self):
        """8: ten clients sending a byte at a time: a scrape meanwhile is
        answered within a second."""
        with self.daemon(metrics=True) as d:
            slow = [socket.create_connection(("127.0.0.1", d.metrics_port)) for _ in range(10)]
            try:
                for s in slow:
                    s.send(b"G")
                t0 = time.monotonic()
                d.scrape()
                self.assertLess(time.monotonic() - t0, 1.0)
                for s in slow:
                    s.send(b"E")
                t0 = time.monotonic()
                d.scrape()
                self.assertLess(time.monotonic() - t0, 1.0)
            finally:
                for s in slow:
                    s.close()

    def test_09_a_large_header_fails_only_its_own_call(self):
        """9: one call with an 8 KiB, then a 16 KiB header among 49 others
        on the same connection: the others all succeed."""
        with self.daemon() as d:
            call = raw_recommend(d.channel())
            call(recommend_bytes(), timeout=5)
            for size in (8 << 10, 16 << 10):
                futures = [call.future(recommend_bytes(), timeout=10,
                                       metadata=(("x-big", "a" * size),) if i == 10 else None)
                           for i in range(50)]
                failed = 0
                for i, f in enumerate(futures):
                    try:
                        f.result()
                    except grpc.RpcError:
                        failed += i != 10
                self.assertEqual(failed, 0, "%d other calls failed with a %d-byte header"
                                 % (failed, size))

    def test_11_connections_are_pinged_and_closed_when_idle(self):
        """11: keepalive pings and an idle timeout, as configured."""
        with self.daemon("--keepalive-seconds", "1", "--max-connection-idle-seconds", "2") as d:
            with h2peer.H2Peer(d.port) as p:
                t0 = time.monotonic()
                frames = p.read_frames(lambda f: f.kind == h2peer.PING, timeout=10)
                self.assertEqual(frames[-1].kind, h2peer.PING)
                p.send(p.frame(h2peer.PING, h2peer.ACK, 0, frames[-1].payload))
                frames = p.read_frames(lambda f: f.kind == h2peer.GOAWAY, timeout=10)
                self.assertEqual(frames[-1].kind, h2peer.GOAWAY)
                self.assertLess(time.monotonic() - t0, 8)
        with self.daemon("--max-connection-age-seconds", "1",
                         "--max-connection-age-grace-seconds", "5") as d:
            with h2peer.H2Peer(d.port) as p:
                sid, data = p.request_bytes(RECOMMEND, grpc_frame(recommend_bytes()))
                p.send(data)
                frames = p.read_frames(lambda f: f.kind == h2peer.GOAWAY, timeout=10)
                self.assertEqual(frames[-1].kind, h2peer.GOAWAY)
                # The call made before answered in full: its trailers came.
                self.assertTrue(any(f.kind == h2peer.HEADERS and f.stream == sid
                                    and f.flags & h2peer.END_STREAM for f in frames))

    def test_12_ids_with_nul_or_invalid_utf8_are_refused(self):
        """12: a NUL byte or invalid UTF-8 in an id is INVALID_ARGUMENT."""
        with self.daemon() as d:
            call = raw_recommend(d.channel())
            for raw in (b"\x0a\x0cu000001\x00junk", b"\x0a\x02\xff\xfe"):
                with self.assertRaises(grpc.RpcError) as cm:
                    call(raw, timeout=5)
                self.assertEqual(cm.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
                self.assertIn("user_id", cm.exception.details())


def _varint(n):
    out = bytearray()
    while True:
        b = n & 0x7f
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


class ModelDirectory(unittest.TestCase):
    """10: the model's directory removed and made again."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="recsys-hostile-dir-")
        self.dir = os.path.join(self.tmp, "models")
        os.mkdir(self.dir)
        fixtures.make_model(self.dir, items=300, version="v1")

    def tearDown(self):
        shutil.rmtree(self.tmp)

    def test_10_a_removed_directory_is_reported_and_followed_back(self):
        path = os.path.join(self.dir, "model.lmdb")
        with Daemon(path, metrics=True) as d:
            shutil.rmtree(self.dir)
            m = d.await_scrape(lambda m: m.value("recsys_model_directory_watched") == 0)
            self.assertEqual(m.value("recsys_model_directory_watched"), 0)
            d.wait_log(r"its directory was removed or moved")
            self.assertIn("was removed or moved", d.info().last_reload_error)
            self.assertEqual(len(raw_recommend(d.channel())(recommend_bytes(), timeout=5).items),
                             10, "the model loaded keeps serving")
            # Back, with a new model in it: followed without a signal.
            os.mkdir(self.dir)
            fixtures.make_model(self.dir, items=400, version="v2")
            m = d.await_scrape(lambda m: m.value("recsys_model_items") == 400)
            self.assertEqual(m.value("recsys_model_directory_watched"), 1)
            self.assertEqual(d.info().last_reload_error, "")
            # A SIGHUP with the file unchanged is recorded and logged. The
            # attempt is in whole seconds (time(), whose coarse clock may lag
            # a clock tick): signal once a later second has surely begun.
            later = d.info().last_reload_attempt_unix + 1
            await_true(lambda: time.time() >= later + 0.1, timeout=5)
            d.signal(signal.SIGHUP)
            self.assertTrue(await_true(lambda: d.info().last_reload_attempt_unix >= later, 30),
                            "the SIGHUP left no trace in last_reload_attempt_unix; log:\n"
                            + d.log())
            d.wait_log(r"model file \S+ unchanged")


class Handshakes(unittest.TestCase):
    """12: failed TLS handshakes are logged, but not one line each."""

    def test_12_a_handshake_storm_logs_a_few_lines(self):
        tmp = tempfile.mkdtemp(prefix="recsys-hostile-tls-")
        try:
            fixtures.make_model(tmp, items=100)
            subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                            "ec_paramgen_curve:P-256", "-nodes", "-keyout", "k.pem", "-out",
                            "c.pem", "-days", "2", "-subj", "/CN=127.0.0.1", "-addext",
                            "subjectAltName=IP:127.0.0.1"],
                           cwd=tmp, check=True, capture_output=True, timeout=60)
            with open(os.path.join(tmp, "c.pem"), "rb") as f:
                creds = grpc.ssl_channel_credentials(f.read())
            args = ("--tls-cert", os.path.join(tmp, "c.pem"), "--tls-key",
                    os.path.join(tmp, "k.pem"))
            with Daemon(os.path.join(tmp, "model.lmdb"), args=args, credentials=creds) as d:
                for _ in range(200):
                    with socket.create_connection(("127.0.0.1", d.port), timeout=5) as s:
                        s.sendall(b"GET / HTTP/1.1\r\n\r\n")
                        s.settimeout(5)
                        try:
                            while s.recv(4096):
                                pass
                        except OSError:
                            pass
                d.wait_log(r"Handshake failed")
                lines = [l for l in d.log().splitlines() if "Handshake failed" in l]
                self.assertLess(len(lines), 20, "%d handshake lines" % len(lines))
        finally:
            shutil.rmtree(tmp)


if __name__ == "__main__":
    unittest.main()
