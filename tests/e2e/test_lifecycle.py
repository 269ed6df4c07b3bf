"""End-to-end tests of the daemon's life: configuration from flags and the
environment, start-up failures, signals, graceful shutdown with calls in
flight, and many concurrent clients.
"""

import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import unittest

import grpc

import fixtures
from daemon import RECSYSD, Daemon
from recsys.v1 import recommender_pb2 as pb

EXIT_FAILED, EXIT_USAGE = 1, 2


def run_daemon(*args, env=None, timeout=60):
    """Run recsysd to completion (for runs that must fail at start)."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("RECSYS_")}
    full_env.update(env or {})
    return subprocess.run([RECSYSD] + list(args), capture_output=True, text=True,
                          env=full_env, timeout=timeout)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SmallModel:
    """A per-class small model in a temporary directory."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="recsys-test-")
        cls.ds = fixtures.make_model(cls.tmp, users=200, items=300, dim=16, seed=31,
                                     version="life-1")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp)

    def assert_serves(self, d):
        user = self.ds.user_ids[0]
        got = d.stub_call("Recommend", pb.RecommendRequest(user_id=user, count=4),
                          pb.RecommendResponse)
        _, want = fixtures.ref_recommend(self.ds, user, count=4)
        self.assertEqual([(g.item_id, g.score) for g in got.items], want)


class ShutdownTest(unittest.TestCase):
    """SIGTERM or SIGINT while the daemon is busy: every call it has received
    completes OK, then it exits 0."""

    CALLS = 64  # within what 2 workers take in at shutdown (server.c, DRAIN_SLOTS)
    USERS = 8

    @classmethod
    def setUpClass(cls):
        # Big enough that the burst keeps both workers busy for a while.
        cls.tmp = tempfile.mkdtemp(prefix="recsys-test-")
        cls.ds = fixtures.make_model(cls.tmp, users=cls.USERS, items=100_000, dim=32, seed=41,
                                     owned_per_user=(0, 3), version="big-1")
        cls.want = {u: fixtures.ref_recommend(cls.ds, u, count=50)[1] for u in cls.ds.user_ids}

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp)

    def burst_then_signal(self, sig, name):
        # A grace period no sanitizer build on a loaded machine can exhaust:
        # this test is about finishing calls, not about cutting them off.
        with Daemon(self.ds.path, threads=2, args=["--grace-seconds", "600"]) as d:
            ch = d.channel()
            rpc = d.rpc("Recommend", pb.RecommendResponse, channel=ch)
            users = [self.ds.user_ids[i % self.USERS] for i in range(self.CALLS)]
            # A fast machine may finish a whole burst before the signal; then
            # the burst is checked and sent again, until one is still running.
            for _ in range(20):
                futures = [rpc.future(pb.RecommendRequest(user_id=u, count=50), timeout=60)
                           for u in users]
                # A call sent after the burst on the same connection: its answer
                # means the daemon has read every call of the burst (HTTP/2 keeps
                # the order), so the signal below cannot overtake any of them.
                d.rpc("GetModelInfo", pb.ModelInfo, channel=ch)(pb.ModelInfoRequest(), timeout=60)
                in_flight = sum(not f.done() for f in futures)
                if in_flight > 0:
                    break
                for u, f in zip(users, futures):
                    self.assertEqual([(g.item_id, g.score) for g in f.result().items], self.want[u])
            d.signal(sig)
            for u, f in zip(users, futures):
                self.assertEqual([(g.item_id, g.score) for g in f.result().items], self.want[u])
            self.assertEqual(d.wait_exit(60), 0, d.log())
            self.assertGreater(in_flight, 0, "the burst ended before the signal: nothing tested")
            self.assertIn("stopping on %s" % name, d.log())
            self.assertRegex(d.log(), r"INFO  stopped\n$")
            self.assertNotIn("cancelling", d.log())
            # Gone: a new call finds nobody listening.
            with self.assertRaises(grpc.RpcError) as cm:
                rpc(pb.RecommendRequest(user_id=users[0]), timeout=5)
            self.assertEqual(cm.exception.code(), grpc.StatusCode.UNAVAILABLE)

    def test_sigterm_finishes_calls_in_flight(self):
        self.burst_then_signal(signal.SIGTERM, "SIGTERM")

    def test_sigint_finishes_calls_in_flight(self):
        self.burst_then_signal(signal.SIGINT, "SIGINT")


class SignalTest(SmallModel, unittest.TestCase):
    def test_idle_daemon_stops_at_once(self):
        with Daemon(self.ds.path, threads=1) as d:
            self.assert_serves(d)
            d.close_channels()
            d.signal(signal.SIGTERM)
            self.assertEqual(d.wait_exit(30), 0, d.log())

    def test_sighup_loads_the_model_file(self):
        """SIGHUP asks for a load; an unchanged file is not loaded again, and
        serving goes on (test_reload covers SIGHUP loading a new file)."""
        with Daemon(self.ds.path, threads=1) as d:
            d.signal(signal.SIGHUP)
            d.wait_log(r"INFO  SIGHUP received; loading model file %s$" % re.escape(self.ds.path))
            d.wait_log(r"INFO  model file %s unchanged; still serving version life-1$"
                       % re.escape(self.ds.path))
            self.assert_serves(d)
            self.assertEqual(d.info().reload_count, 1)


class StartupFailureTest(SmallModel, unittest.TestCase):
    def test_port_in_use(self):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            s.listen()
            addr = "127.0.0.1:%d" % s.getsockname()[1]
            p = run_daemon("--model", self.ds.path, "--listen", addr, "--threads", "1")
        self.assertEqual(p.returncode, EXIT_FAILED, p.stderr)
        self.assertIn("failed to start the server (cannot listen on %s" % addr, p.stderr)
        self.assertIn("Address already in use", p.stderr)

    def test_port_of_another_daemon(self):
        # gRPC sets SO_REUSEPORT unless told not to; a second daemon must not
        # share the port and half the traffic with the first.
        with Daemon(self.ds.path, threads=1) as d:
            p = run_daemon("--model", self.ds.path, "--listen", d.addr, "--threads", "1")
            self.assertEqual(p.returncode, EXIT_FAILED, p.stderr)
            self.assertIn("cannot listen on %s" % d.addr, p.stderr)
            self.assert_serves(d)

    def test_unusable_listen_address(self):
        p = run_daemon("--model", self.ds.path, "--listen", "no-such-host.invalid:1")
        self.assertEqual(p.returncode, EXIT_FAILED, p.stderr)
        self.assertIn("cannot listen on no-such-host.invalid:1", p.stderr)

    def test_a_missing_models_directory_stops_the_start(self):
        p = run_daemon("--models-dir", "/nonexistent-recsys-models")
        self.assertEqual(p.returncode, EXIT_FAILED, p.stderr)
        self.assertIn("failed to follow the models of directory /nonexistent-recsys-models "
                      "(failed to watch models directory", p.stderr)
        p = run_daemon("--models-dir", self.ds.path)  # a file, not a directory
        self.assertEqual(p.returncode, EXIT_FAILED, p.stderr)
        self.assertIn("Not a directory", p.stderr)

    def test_bad_command_lines_exit_2(self):
        m = self.ds.path
        cases = [
            (["--model", m, "--threads", "0"], {}, "--threads: '0' is not in 1..1024"),
            (["--model", m, "--threads", "two"], {}, "--threads: 'two' is not a number"),
            (["--model", m, "--frobnicate"], {}, "unknown option '--frobnicate'"),
            (["--model", m, "--listen"], {}, "--listen: missing value"),
            (["--model", m, "extra"], {}, "unexpected argument 'extra'"),
            (["--model", m, "--grace-seconds", "-1"], {}, "--grace-seconds: '-1'"),
            (["--model", m, "--max-request-bytes", "1"], {}, "'1' is not in 1024.."),
            (["--model", m, "--log-level", "loud"], {}, "'loud' is not one of"),
            ([], {}, "--model (or RECSYS_MODEL) is required, or --models-dir"),
            (["--model", m, "--models-dir", "/tmp"], {}, "--model and --models-dir exclude"),
            (["--models-dir", "/tmp"], {"RECSYS_MODEL": m}, "exclude each other"),
            (["--model", m], {"RECSYS_THREADS": "lots"}, "RECSYS_THREADS: 'lots'"),
            (["--model", m], {"RECSYS_LOG_LEVEL": "chatty"}, "RECSYS_LOG_LEVEL: 'chatty'"),
        ]
        for args, env, message in cases:
            with self.subTest(args=args, env=env):
                p = run_daemon(*args, env=env)
                self.assertEqual(p.returncode, EXIT_USAGE, p.stderr)
                self.assertIn(message, p.stderr)
                self.assertIn("--help", p.stderr)
                self.assertEqual(p.stdout, "")

    def test_help_and_version(self):
        p = run_daemon("--help")
        self.assertEqual(p.returncode, 0, p.stderr)
        for flag in ("--model FILE", "--listen HOST:PORT", "--threads N", "--max-request-bytes",
                     "--grace-seconds", "--log-level", "RECSYS_MODEL", "RECSYS_THREADS",
                     "default 127.0.0.1:50051"):
            self.assertIn(flag, p.stdout)
        p = run_daemon("--version")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertRegex(p.stdout, r"^recsysd \d+\.\d+\.\d+\n$")


class KernelTest(SmallModel, unittest.TestCase):
    """--kernel / RECSYS_KERNEL pick the scoring kernel; every kernel gives
    the reference answers, and GetModelInfo and the log say which one runs."""

    def test_portable_kernel_by_flag(self):
        with Daemon(self.ds.path, threads=1, args=["--kernel", "portable"]) as d:
            self.assertEqual(d.info().kernel, "portable")
            self.assertRegex(d.log(), r"listening on .* kernel=portable")
            self.assert_serves(d)

    def test_auto_kernel_by_environment(self):
        with Daemon(self.ds.path, threads=1, env={"RECSYS_KERNEL": "auto"}) as d:
            # auto names a real kernel, never "auto".
            self.assertIn(d.info().kernel, ("avx512", "avx2", "portable"))
            self.assert_serves(d)

    def test_unknown_kernel_refused(self):
        p = run_daemon("--model", self.ds.path, "--listen", "127.0.0.1:0", "--kernel", "sse9")
        self.assertEqual(p.returncode, EXIT_FAILED, p.stderr)
        self.assertIn("failed to select the scoring kernel (unknown scoring kernel 'sse9'",
                      p.stderr)


class EnvironmentTest(SmallModel, unittest.TestCase):
    def test_settings_from_environment(self):
        port = free_port()
        env = {"RECSYS_MODEL": self.ds.path, "RECSYS_THREADS": "3",
               "RECSYS_LISTEN": "127.0.0.1:%d" % port, "RECSYS_LOG_LEVEL": "debug"}
        with Daemon(None, threads=None, listen=None, env=env) as d:
            self.assertEqual(d.threads, 3)
            self.assertEqual(d.port, port)
            self.assert_serves(d)
            # Debug level: a failed call is logged, one line.
            with self.assertRaises(grpc.RpcError):
                d.stub_call("Recommend", pb.RecommendRequest(user_id=""), pb.RecommendResponse)
            d.wait_log(r"DEBUG call failed method=/recsys\.v1\.Recommender/Recommend "
                       r"status=INVALID_ARGUMENT \(user_id is empty\)")

    def test_flags_beat_environment(self):
        env = {"RECSYS_THREADS": "5", "RECSYS_MODEL": "/no/such/model.lmdb"}
        with Daemon(self.ds.path, threads=2, env=env) as d:
            self.assertEqual(d.threads, 2)
            self.assertEqual(d.health(), "SERVING")

    def test_info_level_logs_no_calls(self):
        with Daemon(self.ds.path, threads=1) as d:
            self.assert_serves(d)
            with self.assertRaises(grpc.RpcError):
                d.stub_call("Recommend", pb.RecommendRequest(user_id=""), pb.RecommendResponse)
            d.close_channels()
            d.signal(signal.SIGTERM)
            self.assertEqual(d.wait_exit(30), 0)
            self.assertNotIn("call failed", d.log())
            self.assertNotIn(" DEBUG ", d.log())


class ConcurrencyTest(SmallModel, unittest.TestCase):
    def test_many_client_threads(self):
        """8 client threads, each on its own connection, 200 calls each, mixed
        RPCs; every answer must match the reference."""
        ds = self.ds
        users = ds.user_ids[:20] + ["unknown-a", "unknown-b"]
        items = ds.item_ids[:20]
        want_rec = {u: fixtures.ref_recommend(ds, u, count=10)[1] for u in users}
        want_sim = {i: [w[0] for w in fixtures.ref_similar(ds, i, count=5)[1]] for i in items}
        want_eli = {u: [w[2] for w in fixtures.ref_eligibility(ds, u, items)] for u in users}
        errors = []

        def client(k, d):
            ch = d.channel()
            rec = d.rpc("Recommend", pb.RecommendResponse, channel=ch)
            sim = d.rpc("SimilarItems", pb.RecommendResponse, channel=ch)
            eli = d.rpc("CheckEligibility", pb.EligibilityResponse, channel=ch)
            try:
                for n in range(200):
                    u, i = users[(k + n) % len(users)], items[(k * 7 + n) % len(items)]
                    kind = n % 3
                    if kind == 0:
                        got = rec(pb.RecommendRequest(user_id=u, count=10), timeout=30)
                        ok = [(g.item_id, g.score) for g in got.items] == want_rec[u]
                    elif kind == 1:
                        got = sim(pb.SimilarItemsRequest(item_id=i, count=5), timeout=30)
                        ok = [g.item_id for g in got.items] == want_sim[i]
                    else:
                        got = eli(pb.EligibilityRequest(user_id=u, item_ids=items), timeout=30)
                        ok = [pb.Reason.Name(r.reason) for r in got.results] == want_eli[u]
                    if not ok:
                        errors.append("client %d call %d (%s): wrong answer" % (k, n, kind))
            except grpc.RpcError as e:
                errors.append("client %d: %s %s" % (k, e.code(), e.details()))

        with Daemon(ds.path, threads=2) as d:
            threads = [threading.Thread(target=client, args=(k, d)) for k in range(8)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            self.assertEqual(errors, [])
            self.assert_serves(d)


if __name__ == "__main__":
    unittest.main()
