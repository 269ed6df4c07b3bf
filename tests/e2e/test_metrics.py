"""End-to-end tests of the metrics endpoint (--metrics-listen).

A real recsysd serves a fixtures model; the tests make calls through
python3-grpcio with known outcomes, scrape GET /metrics over real HTTP,
parse it with tests/lib/prom.py (written from the format's specification),
and check the counts against the calls made, the model gauges against the
dataset that went into the file, and the process gauges against /proc.
"""

import http.client
import os
import shutil
import socket
import subprocess
import tempfile
import time
import unittest

import grpc

import fixtures
import daemon
from daemon import RECSYSD, Daemon, ServedModelTest
from recsys.v1 import recommender_pb2 as pb

SERVICE = "recsys.v1.Recommender"
SCRAPE_TIMEOUT_S = 5.0  # server/scrape.h: SCRAPE_TIMEOUT_MS
HEAD_TIMEOUT_S = 2.0  # server/scrape.c: HEAD_TIMEOUT_MS, the time to send a request


def handled(m, method, code, service=SERVICE):
    return daemon.handled(m, method, code, service)


def handled_total(m, methods):
    """Calls of these methods counted so far, whatever their status. Tests
    count only the methods they call: a call is counted a moment after its
    client has the answer, so another test's last call may land late."""
    return sum(v for l, v in m.select("grpc_server_handled_total") if l["grpc_method"] in methods)


def http_request(port, method="GET", path="/metrics", raw=None, timeout=30):
    """(status, headers dict, body) of one request; raw: bytes sent as is."""
    if raw is not None:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(raw)
            data = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        headers = dict(l.split(": ", 1) for l in lines[1:])
        return int(lines[0].split()[1]), headers, body
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path)
        resp = conn.getresponse()
        return resp.status, dict(resp.getheaders()), resp.read()
    finally:
        conn.close()


class MetricsTest(ServedModelTest):
    MODEL = dict(users=120, items=250, dim=8, seed=5, version='m"1\\x')
    DAEMON = dict(threads=2, metrics=True)

    def call(self, method, request, response_cls):
        try:
            self.d.stub_call(method, request, response_cls)
            return grpc.StatusCode.OK
        except grpc.RpcError as e:
            return e.code()

    def test_counts_every_call_by_method_and_code(self):
        before = self.d.scrape()
        user = self.ds.user_ids[0]
        outcomes = {
            ("Recommend", "OK"): 0, ("Recommend", "InvalidArgument"): 0,
            ("SimilarItems", "NotFound"): 0, ("CheckEligibility", "OK"): 0,
        }
        for k in range(7):
            self.assertEqual(self.call("Recommend", pb.RecommendRequest(user_id=user, count=3),
                                       pb.RecommendResponse), grpc.StatusCode.OK)
            outcomes["Recommend", "OK"] += 1
        for count in (1001, 5000):
            self.assertEqual(self.call("Recommend", pb.RecommendRequest(user_id=user, count=count),
                                       pb.RecommendResponse), grpc.StatusCode.INVALID_ARGUMENT)
            outcomes["Recommend", "InvalidArgument"] += 1
        self.assertEqual(self.call("SimilarItems", pb.SimilarItemsRequest(item_id="no-such"),
                                   pb.RecommendResponse), grpc.StatusCode.NOT_FOUND)
        outcomes["SimilarItems", "NotFound"] += 1
        for k in range(3):
            self.assertEqual(self.call("CheckEligibility",
                                       pb.EligibilityRequest(user_id=user,
                                                             item_ids=[self.ds.item_ids[k]]),
                                       pb.EligibilityResponse), grpc.StatusCode.OK)
            outcomes["CheckEligibility", "OK"] += 1
        # A method nobody serves: counted once, under "unknown", whatever its name.
        for path in ("/recsys.v1.Recommender/Nope", "/x.Y/Z"):
            with self.assertRaises(grpc.RpcError) as cm:
                self.d.rpc(path, pb.ModelInfo)(pb.ModelInfoRequest(), timeout=5)
            self.assertEqual(cm.exception.code(), grpc.StatusCode.UNIMPLEMENTED)

        calls = sum(outcomes.values()) + 2
        methods = {"Recommend", "SimilarItems", "CheckEligibility", "unknown"}
        total = lambda m: handled_total(m, methods)
        after = self.d.await_scrape(lambda m: total(m) >= total(before) + calls)
        self.assertEqual(total(after), total(before) + calls)
        for (method, code), n in outcomes.items():
            self.assertEqual(handled(after, method, code) - handled(before, method, code), n,
                             (method, code))
        self.assertEqual(handled(after, "unknown", "Unimplemented", service="unknown")
                         - handled(before, "unknown", "Unimplemented", service="unknown"), 2)
        # Nothing else was counted for these methods.
        for method in ("Recommend", "SimilarItems", "CheckEligibility"):
            total = lambda m: sum(v for l, v in m.select("grpc_server_handled_total",
                                                          grpc_method=method))
            want = sum(n for (meth, _), n in outcomes.items() if meth == method)
            self.assertEqual(total(after) - total(before), want, method)

    def test_recommendations_are_counted_by_source(self):
        def sources(m):
            return tuple(m.value("recsys_recommendations_total", source=s)
                         for s in ("personalized", "popular"))
        known = self.ds.user_ids[:3]
        before = sources(self.d.scrape())
        self.call("Recommend", pb.RecommendRequest(user_id=known[0]), pb.RecommendResponse)
        self.call("Recommend", pb.RecommendRequest(user_id="nobody-we-know"),
                  pb.RecommendResponse)
        batch = pb.BatchRecommendRequest(requests=[pb.RecommendRequest(user_id=u) for u in
                                                   (known[1], "stranger", known[2])])
        self.assertEqual(self.call("BatchRecommend", batch, pb.BatchRecommendResponse),
                         grpc.StatusCode.OK)
        # A failed call notes nothing.
        self.call("Recommend", pb.RecommendRequest(user_id="", count=3), pb.RecommendResponse)
        # The fixtures' users all have non-zero factors: known means personalized.
        want = (before[0] + 3, before[1] + 2)
        after = self.d.await_scrape(lambda m: sum(sources(m)) >= sum(want))
        self.assertEqual(sources(after), want)
        self.assertEqual(after.types["recsys_recommendations_total"], "counter")

    def test_histograms_agree_with_the_counters(self):
        user = self.ds.user_ids[1]
        before = handled(self.d.scrape(), "Recommend", "OK")
        for _ in range(5):
            self.call("Recommend", pb.RecommendRequest(user_id=user), pb.RecommendResponse)
        m = self.d.await_scrape(lambda m: handled(m, "Recommend", "OK") >= before + 5)
        self.assertEqual(m.types["grpc_server_handling_seconds"], "histogram")
        self.assertEqual(m.types["grpc_server_handled_total"], "counter")
        methods = {(l["grpc_service"], l["grpc_method"])
                   for l, _ in m.select("grpc_server_handling_seconds_count")}
        self.assertTrue({(SERVICE, name) for name in ("Recommend", "BatchRecommend",
                                                        "CheckEligibility", "SimilarItems",
                                                        "GetModelInfo")} <= methods, methods)
        self.assertIn(("grpc.health.v1.Health", "Check"), methods)
        for service, method in methods:
            labels = {"grpc_service": service, "grpc_method": method}
            buckets = sorted((float(l["le"]), v) for l, v in
                             m.select("grpc_server_handling_seconds_bucket", **labels))
            self.assertEqual(buckets[-1][0], float("inf"))
            counts = [v for _, v in buckets]
            self.assertEqual(counts, sorted(counts), "buckets of %s not cumulative" % method)
            count = m.value("grpc_server_handling_seconds_count", **labels)
            self.assertEqual(counts[-1], count, method)
            calls = sum(v for _, v in m.select("grpc_server_handled_total", **labels))
            self.assertEqual(count, calls, method)
            total = m.value("grpc_server_handling_seconds_sum", **labels)
            # The sum lies within what the buckets allow.
            upper = sum((le if le != float("inf") else 1e9) * (c - p) for (le, c), p in
                        zip(buckets, [0] + counts[:-1]))
            self.assertLessEqual(total, upper, method)
        self.assertGreater(m.value("grpc_server_handling_seconds_sum", grpc_method="Recommend"), 0)

    def test_model_gauges_describe_the_served_model(self):
        m = self.d.scrape()
        self.assertEqual(m.value("recsys_model_loaded"), 1)
        self.assertEqual(m.value("recsys_model_items"), len(self.ds.item_ids))
        self.assertEqual(m.value("recsys_model_users"), len(self.ds.user_ids))
        self.assertEqual(m.value("recsys_model_dimension"), self.ds.dim)
        (labels, value), = m.select("recsys_model_info")
        self.assertEqual(value, 1)
        self.assertEqual(labels["version"], 'm"1\\x')  # escaped by the writer, read back here
        header = fixtures.read_model(self.ds.path)
        self.assertEqual(labels["checksum"], "%016x" % header["checksum"])
        self.assertEqual(labels["element_type"], "f32")
        # No reduced copy: nothing to choose, so no probe and no figures.
        self.assertEqual(labels["scan"], "f32")
        self.assertEqual(m.select("recsys_scan_probe_seconds"), [])
        self.assertEqual(m.value("recsys_model_created_timestamp_seconds"), header["created_at"])
        self.assertEqual(m.value("recsys_model_loads_total"), 1)
        self.assertEqual(m.value("recsys_model_load_failures_total"), 0)
        self.assertEqual(m.value("recsys_model_last_load_failed"), 0)

    def test_process_gauges_match_proc(self):
        m = self.d.scrape()
        status = self.d.proc_status()
        rss = m.value("process_resident_memory_bytes")
        self.assertAlmostEqual(rss / 1024, status["VmRSS"], delta=0.2 * status["VmRSS"])
        fds = len(os.listdir("/proc/%d/fd" % self.d.proc.pid))
        self.assertAlmostEqual(m.value("process_open_fds"), fds, delta=3)
        # The daemon was started by setUpClass, within this test run.
        self.assertGreaterEqual(m.value("process_start_time_seconds"), self.started - 2)
        self.assertLessEqual(m.value("process_start_time_seconds"), time.time() + 2)
        self.assertGreater(m.value("process_cpu_seconds_total"), 0)

    def test_http_answers(self):
        port = self.d.metrics_port
        status, headers, body = http_request(port)
        self.assertEqual(status, 200)
        self.assertTrue(headers["Content-Type"].startswith("text/plain; version=0.0.4"))
        self.assertEqual(int(headers["Content-Length"]), len(body))
        status, headers, body = http_request(port, "HEAD")
        self.assertEqual((status, body), (200, b""))
        self.assertGreater(int(headers["Content-Length"]), 0)
        self.assertEqual(http_request(port, "GET", "/metrics?x=1")[0], 200)
        self.assertEqual(http_request(port, "GET", "/")[0], 404)
        self.assertEqual(http_request(port, "GET", "/metricsx")[0], 404)
        status, headers, _ = http_request(port, "POST")
        self.assertEqual((status, headers.get("Allow")), (405, "GET, HEAD"))
        self.assertEqual(http_request(port, raw=b"nonsense\r\n\r\n")[0], 400)
        self.assertEqual(http_request(port, raw=b"GET /metrics HTTP/1.1\r\nX: "
                                      + b"a" * 10000 + b"\r\n\r\n")[0], 431)
        # The endpoint keeps answering, and so does the daemon.
        self.assertEqual(http_request(port)[0], 200)
        self.assertEqual(self.d.health(), "SERVING")

    def test_a_silent_client_neither_delays_a_scrape_nor_stays(self):
        port = self.d.metrics_port
        with socket.create_connection(("127.0.0.1", port)) as silent:
            start = time.monotonic()
            status, _, _ = http_request(port, timeout=4 * SCRAPE_TIMEOUT_S)
            took = time.monotonic() - start
            self.assertEqual(status, 200)
            # Served beside the silent client, not after it is cut off.
            self.assertLess(took, HEAD_TIMEOUT_S)
            silent.settimeout(4 * HEAD_TIMEOUT_S)
            self.assertEqual(silent.recv(100), b"")  # cut off, answered nothing
            self.assertLess(time.monotonic() - start, 2 * HEAD_TIMEOUT_S)


class MetricsLifecycleTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="recsys-metrics-")

    def tearDown(self):
        shutil.rmtree(self.tmp)

    def test_loads_and_refusals_are_counted(self):
        path = os.path.join(self.tmp, "served.lmdb")
        with Daemon(path, threads=1, metrics=True) as d:
            m = d.scrape()
            self.assertEqual(m.value("recsys_model_loaded"), 0)
            self.assertEqual(m.select("recsys_model_info"), [])
            self.assertEqual(m.value("recsys_model_last_load_failed"), 1)
            # Health answered NOT_SERVING during start-up; counted as OK calls.
            d.await_scrape(lambda m: handled(m, "Check", "OK", service="grpc.health.v1.Health")
                           >= 1)

            ds = fixtures.make_model(self.tmp, users=20, items=30, dim=4, seed=3,
                                     version="first", name="staged.lmdb")
            os.rename(ds.path, path)
            d.wait_log(r"model loaded .*version=first")
            m = d.scrape()
            self.assertEqual(m.value("recsys_model_loaded"), 1)
            self.assertEqual(m.value("recsys_model_items"), 30)
            self.assertEqual(m.value("recsys_model_last_load_failed"), 0)
            loads = m.value("recsys_model_loads_total")
            failures = m.value("recsys_model_load_failures_total")

            bad = os.path.join(self.tmp, "bad.lmdb")
            with open(bad, "wb") as f:
                f.write(b"\0" * 8192)
            os.rename(bad, path)
            d.wait_log(r"failed to reload model")
            m = d.scrape()
            self.assertEqual(m.value("recsys_model_load_failures_total"), failures + 1)
            self.assertEqual(m.value("recsys_model_loads_total"), loads)
            self.assertEqual(m.value("recsys_model_last_load_failed"), 1)
            self.assertEqual(m.value("recsys_model_loaded"), 1)  # the old model still serves
            (labels, _), = m.select("recsys_model_info")
            self.assertEqual(labels["version"], "first")

    def test_off_by_default(self):
        ds = fixtures.make_model(self.tmp, users=10, items=10, dim=4)
        with Daemon(ds.path, threads=1) as d:
            d.info()
        self.assertNotIn("metrics on", d.log())

    def test_bad_addresses_stop_the_start(self):
        ds = fixtures.make_model(self.tmp, users=10, items=10, dim=4)
        taken = socket.socket()
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        with taken:
            for addr, why in (("127.0.0.1:%d" % taken.getsockname()[1], "Address already in use"),
                              ("nonsense", "is not HOST:PORT"),
                              ("no.such.host.invalid:9000", "metrics endpoint (cannot listen on")):
                proc = subprocess.run([RECSYSD, "--model", ds.path, "--listen", "127.0.0.1:0",
                                       "--metrics-listen", addr], capture_output=True,
                                      text=True, timeout=120)
                self.assertEqual(proc.returncode, 1, proc.stderr)
                self.assertIn("failed to start the metrics endpoint", proc.stderr)
                self.assertIn(why, proc.stderr)


if __name__ == "__main__":
    unittest.main()
