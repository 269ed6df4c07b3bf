"""recsysd under h2load (Debian's nghttp2-client): many connections and many
concurrent streams from an independent HTTP/2 implementation, the way ghz
loads a gRPC server.

h2load sees HTTP statuses only; a gRPC status travels in trailers. So each
test reads the daemon's metrics endpoint before and after, and checks that
every request h2load completed was answered once, with the expected gRPC
status, and (where every answer is the same) that the response bytes add up
to the reference answer's encoding, computed with python3-protobuf from the
fixtures' NumPy reference.
"""

import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
import unittest

import fixtures
from daemon import Daemon, grpc_frame, handled, handled_by_code
from recsys.v1 import recommender_pb2 as pb

H2LOAD = shutil.which("h2load") or "/usr/bin/h2load"
RECOMMEND = "/recsys.v1.Recommender/Recommend"
CALLS = 20000  # for the swaps: about a second of load here, longer under sanitizers


class H2Load:
    """One h2load run; its summary parsed."""

    def __init__(self, port, path, body, tmp, *args):
        body_file = os.path.join(tmp, "body-%d.bin" % threading.get_ident())
        with open(body_file, "wb") as f:
            f.write(body)
        argv = [H2LOAD, "-H", "content-type: application/grpc", "-H", "te: trailers",
                "-d", body_file, *args, "http://127.0.0.1:%d%s" % (port, path)]
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=600)
        self.output = proc.stdout + proc.stderr
        if proc.returncode != 0:
            raise AssertionError("h2load exited %d:\n%s" % (proc.returncode, self.output))
        m = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, "
                      r"(\d+) failed, (\d+) errored, (\d+) timeout", self.output)
        if m is None:
            raise AssertionError("no summary in h2load's output:\n" + self.output)
        (self.total, self.started, self.done, self.succeeded, self.failed, self.errored,
         self.timeouts) = map(int, m.groups())
        self.status_2xx = int(re.search(r"status codes: (\d+) 2xx", self.output).group(1))
        self.data_bytes = int(re.search(r"\((\d+)\) data", self.output).group(1))


class H2LoadTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="recsys-h2load-")
        cls.path = os.path.join(cls.tmp, "served.lmdb")
        cls.a = fixtures.make_model(cls.tmp, users=150, items=400, dim=16, seed=21,
                                    version="h2-a", name="a.lmdb")
        cls.b = fixtures.make_model(cls.tmp, users=150, items=260, dim=16, seed=22,
                                    version="h2-b", name="b.lmdb")
        shutil.copyfile(cls.a.path, cls.path)
        cls.daemon = Daemon(cls.path, threads=2, metrics=True)
        cls.d = cls.daemon.__enter__()

    @classmethod
    def tearDownClass(cls):
        cls.daemon.__exit__(None, None, None)
        shutil.rmtree(cls.tmp)

    def publish(self, ds):
        staged = self.path + ".new"
        shutil.copyfile(ds.path, staged)
        with open(staged, "rb") as f:
            os.fsync(f.fileno())
        os.rename(staged, self.path)

    def await_loads(self, n, timeout=60):
        """Wait until the daemon has loaded n models in all."""
        deadline = time.monotonic() + timeout
        while self.d.scrape().value("recsys_model_loads_total") < n:
            self.assertLess(time.monotonic(), deadline, "model %d not loaded" % n)
            time.sleep(0.02)

    def await_recommend(self, before, n):
        """The metrics once n more Recommend calls than in before are counted."""
        total = lambda m: sum(handled_by_code(m, "Recommend").values())
        after = self.d.await_scrape(lambda m: total(m) >= total(before) + n)
        self.assertEqual(total(after), total(before) + n)
        return after

    def h2load(self, path, message_bytes, *args):
        return H2Load(self.d.port, path, grpc_frame(message_bytes), self.tmp, *args)

    def test_many_streams_each_answered_once_and_right(self):
        self.assertEqual(self.d.info().model_version, "h2-a")
        user = self.a.user_ids[3]
        req = pb.RecommendRequest(user_id=user, count=20)
        source, ranked = fixtures.ref_recommend(self.a, user, count=20)
        self.assertEqual(source, "PERSONALIZED")
        want = pb.RecommendResponse(model_version="h2-a", source=pb.PERSONALIZED,
                                   model_name="default")
        for item, score in ranked:
            want.items.add(item_id=item, score=score)
        before = self.d.scrape()
        # 16 connections x 16 concurrent streams: 256 calls in flight on 2 workers.
        run = self.h2load(RECOMMEND, req.SerializeToString(), "-n", "4000", "-c", "16",
                          "-m", "16")
        after = self.await_recommend(before, 4000)
        self.assertEqual((run.succeeded, run.failed, run.errored, run.timeouts),
                         (4000, 0, 0, 0), run.output)
        self.assertEqual(run.status_2xx, 4000)
        self.assertEqual(handled(after, "Recommend", "OK") - handled(before, "Recommend", "OK"),
                         4000)
        codes = handled_by_code(after, "Recommend")
        self.assertEqual({c: v - handled(before, "Recommend", c) for c, v in codes.items()
                          if v != handled(before, "Recommend", c)}, {"OK": 4000})
        # Every answer was the reference's encoding, byte for byte in length.
        self.assertEqual(run.data_bytes, 4000 * len(grpc_frame(want.SerializeToString())))
        self.assertEqual(self.d.health(), "SERVING")

    def test_undecodable_requests_are_refused_and_the_daemon_serves_on(self):
        before = self.d.scrape()
        run = self.h2load(RECOMMEND, b"\xff\xff\xff", "-n", "1000", "-c", "4", "-m", "16")
        after = self.await_recommend(before, 1000)
        self.assertEqual(run.done, 1000, run.output)
        self.assertEqual(handled(after, "Recommend", "InvalidArgument")
                         - handled(before, "Recommend", "InvalidArgument"), 1000)
        self.assertEqual(handled(after, "Recommend", "OK"), handled(before, "Recommend", "OK"))
        user = self.a.user_ids[0]
        self.assertEqual(len(self.d.stub_call("Recommend", pb.RecommendRequest(user_id=user),
                                              pb.RecommendResponse).items), 10)

    def test_model_swaps_under_load_fail_no_call(self):
        before = self.d.scrape()
        loads = before.value("recsys_model_loads_total")
        result = {}

        def load():
            result["run"] = self.h2load(RECOMMEND,
                                        pb.RecommendRequest(user_id=self.a.user_ids[1],
                                                            count=50).SerializeToString(),
                                        "-n", str(CALLS), "-c", "4", "-m", "8")

        runner = threading.Thread(target=load)
        runner.start()
        swaps = during = 0
        try:
            # Swap back and forth while the load runs, ending on model A.
            while runner.is_alive() or swaps % 2 == 1:
                during += runner.is_alive()
                self.publish(self.b if swaps % 2 == 0 else self.a)
                swaps += 1
                self.await_loads(loads + swaps)
        finally:
            runner.join()
        run = result["run"]
        self.assertEqual((run.succeeded, run.failed, run.errored, run.timeouts),
                         (CALLS, 0, 0, 0), run.output)
        self.assertGreaterEqual(during, 2, "the load ended before a second swap")
        after = self.await_recommend(before, CALLS)
        self.assertEqual(after.value("recsys_model_loads_total") - loads, swaps)
        self.assertEqual(handled(after, "Recommend", "OK") - handled(before, "Recommend", "OK"),
                         CALLS)
        codes = handled_by_code(after, "Recommend")
        self.assertEqual([c for c, v in codes.items()
                          if c != "OK" and v != handled(before, "Recommend", c)], [])


if __name__ == "__main__":
    unittest.main()
