"""End-to-end tests of the model hot swap: the real daemon following a real
model file while real gRPC clients call it.

Two models take turns at the served path. A has 300 items in the
categories course/ebook/audiobook, B has 420 in video/podcast/game, so no
item id is in both: a response is consistent with exactly one model when
its model_version names the model, every item id in it exists in that
model, and its answer equals that model's reference answer (fixtures.ref_*).
Both models know the same user ids, so one request is meaningful for both.

Publishing is what operations do: the bytes are written to a temporary file
in the served file's directory, fsynced and renamed over the path (or the
import tool, which does the same, writes it there). Nothing sleeps: tests
wait for a log line or poll a call against a deadline.
"""

import os
import re
import shutil
import signal
import tempfile
import threading
import time
import unittest

import grpc

import fixtures
from daemon import Daemon
from recsys.v1 import recommender_pb2 as pb

SWAP_BUDGET_S = 1.0  # issue 3: clients see the new version within 1 s of the rename
AWAIT_S = 30.0  # upper bound for waits that have no budget of their own
# In an AddressSanitizer or ThreadSanitizer build (tests/CMakeLists.txt sets
# ASAN_OPTIONS or TSAN_OPTIONS for it) the runtime's own memory dominates
# RSS and grows whatever the daemon does: ASan keeps freed memory in
# quarantine, up to 256 MB, and TSan's shadow and history grow with every
# new address. There, LeakSanitizer checks every allocation at exit instead
# (the daemon then exits non-zero, which fails the test).
SANITIZER_MEMORY = "ASAN_OPTIONS" in os.environ or "TSAN_OPTIONS" in os.environ
USERS = ["u%05d" % u for u in (0, 1, 3, 5, 8, 13)] + ["not-a-user"]  # the last one: POPULAR
COUNT = 10


class Model:
    """One of the two models: its dataset, bytes and reference answers."""

    def __init__(self, tmp, name, seed, items, categories):
        d = os.path.join(tmp, name)
        os.mkdir(d)
        self.ds = fixtures.make_model(d, users=60, items=items, dim=16, seed=seed,
                                      categories=categories, version="swap-" + name)
        self.version = self.ds.version
        with open(self.ds.path, "rb") as f:
            self.data = f.read()
        self.items = set(self.ds.item_ids)
        self.recommend = {u: fixtures.ref_recommend(self.ds, u, count=COUNT)[1] for u in USERS}

    def eligibility(self, user, item_ids):
        return [(r[0], r[2], r[3]) for r in fixtures.ref_eligibility(self.ds, user, item_ids)]


def setUpModule():
    global TMP, A, B, MODELS, PROBE_ITEMS
    TMP = tempfile.mkdtemp(prefix="recsys-test-")
    A = Model(TMP, "A", 61, 300, ("course", "ebook", "audiobook"))
    B = Model(TMP, "B", 62, 420, ("video", "podcast", "game"))
    assert not A.items & B.items
    MODELS = {m.version: m for m in (A, B)}
    # CheckEligibility asks about items of both: the other model's are UNKNOWN_ITEM.
    PROBE_ITEMS = A.ds.item_ids[:5] + B.ds.item_ids[-5:]


def tearDownModule():
    shutil.rmtree(TMP)


def publish(data, path):
    """Publish a model file at path safely: a temporary file in the same
    directory, written, fsynced, renamed over path. Returns the monotonic
    time taken just before the rename."""
    fd, tmp = tempfile.mkstemp(prefix=".publish-", dir=os.path.dirname(path))
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    t = time.monotonic()
    os.rename(tmp, path)
    return t


def import_to(model, path):
    """Publish with the real import tool (it renames into place too)."""
    p = fixtures.run_tool("import", *fixtures.import_args(model.ds.files), "--model-version",
                          model.version, "--created-at", model.ds.created_at, "-o", path)
    assert p.returncode == 0, p.stderr


def loaded_line(version):
    return r"INFO  model loaded path=\S+ version=%s " % version


def check_recommend(resp, user):
    """None if resp is exactly what the model it names answers, else why not."""
    m = MODELS.get(resp.model_version)
    if m is None:
        return "unknown model_version %r" % resp.model_version
    got = [(g.item_id, g.score) for g in resp.items]
    stray = [i for i, _ in got if i not in m.items]
    if stray:
        return "%s response lists items of no such model: %s" % (m.version, stray[:3])
    if got != m.recommend[user]:
        return "%s ranking for %s differs from the reference" % (m.version, user)
    return None


def check_eligibility(resp, user):
    m = MODELS.get(resp.model_version)
    if m is None:
        return "unknown model_version %r" % resp.model_version
    got = [(r.item_id, pb.Reason.Name(r.reason), r.price_cents) for r in resp.results]
    if got != m.eligibility(user, PROBE_ITEMS):
        return "%s eligibility for %s differs from the reference" % (m.version, user)
    return None


class Load:
    """Client threads, each on its own connection, calling Recommend and
    CheckEligibility in turn until stopped, checking every answer."""

    def __init__(self, d, threads):
        self.d = d
        self.stop_flag = threading.Event()
        self.lock = threading.Condition()
        self.failures = []  # what went wrong, one string each
        self.seen = {m: 0 for m in MODELS}  # good answers per model
        self.calls = 0
        self.threads = [threading.Thread(target=self._run, args=(k,)) for k in range(threads)]

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    def stop(self):
        self.stop_flag.set()
        for t in self.threads:
            t.join()

    def wait_seen(self, version, n, timeout=AWAIT_S):
        """Wait until n good answers from `version` came in; raises
        AssertionError after timeout seconds."""
        with self.lock:
            if not self.lock.wait_for(lambda: self.seen[version] >= n, timeout):
                raise AssertionError("%d answers from %s after %.0f s (failures: %s)"
                                     % (self.seen[version], version, timeout,
                                        self.failures[:3]))

    def _run(self, k):
        ch = self.d.channel()
        rec = self.d.rpc("Recommend", pb.RecommendResponse, channel=ch)
        eli = self.d.rpc("CheckEligibility", pb.EligibilityResponse, channel=ch)
        n = k
        deadline = time.monotonic() + 10 * 60  # bounded whatever happens
        while not self.stop_flag.is_set() and time.monotonic() < deadline:
            user = USERS[n % len(USERS)]
            try:
                if n % 2 == 0:
                    resp = rec(pb.RecommendRequest(user_id=user, count=COUNT), timeout=30)
                    why = check_recommend(resp, user)
                else:
                    resp = eli(pb.EligibilityRequest(user_id=user, item_ids=PROBE_ITEMS),
                               timeout=30)
                    why = check_eligibility(resp, user)
            except grpc.RpcError as e:
                resp, why = None, "call failed: %s %s" % (e.code(), e.details())
            with self.lock:
                self.calls += 1
                if why is None:
                    self.seen[resp.model_version] += 1
                    self.lock.notify_all()
                else:
                    self.failures.append(why)
            n += 1


class ServedDir:
    """A directory holding the served path, removed afterwards."""

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="recsys-serve-")
        self.path = os.path.join(self.dir, "model.lmdb")

    def tearDown(self):
        shutil.rmtree(self.dir)

    def recommend(self, d, user=USERS[0]):
        return d.stub_call("Recommend", pb.RecommendRequest(user_id=user, count=COUNT),
                           pb.RecommendResponse)

    def assert_serves(self, d, model):
        for user in USERS:
            resp = self.recommend(d, user)
            self.assertEqual(resp.model_version, model.version)
            self.assertIsNone(check_recommend(resp, user))

    def await_version(self, d, version, budget):
        """Poll Recommend until it answers from `version`; the seconds it
        took. Fails once `budget` seconds have passed."""
        start = time.monotonic()
        while True:
            try:
                if self.recommend(d).model_version == version:
                    return time.monotonic() - start
            except grpc.RpcError as e:
                if e.code() != grpc.StatusCode.UNAVAILABLE:
                    raise
            if time.monotonic() - start > budget:
                self.fail("still not serving %s after %.2f s; log:\n%s"
                          % (version, budget, d.log()))


class ReloadTest(ServedDir, unittest.TestCase):
    def test_reload_on_rename_within_a_second(self):
        publish(A.data, self.path)
        with Daemon(self.path, threads=2) as d:
            self.assert_serves(d, A)
            wall = int(time.time())
            renamed = publish(B.data, self.path)
            start = time.monotonic()
            took = self.await_version(d, B.version, AWAIT_S) + (start - renamed)
            self.assertLess(took, SWAP_BUDGET_S, "rename to first B answer: %.3f s" % took)
            self.assert_serves(d, B)
            info = d.info()
            self.assertEqual((info.model_version, info.item_count), (B.version, 420))
            self.assertEqual((info.reload_count, info.failed_reload_count), (2, 0))
            self.assertEqual(info.last_reload_error, "")
            self.assertGreaterEqual(info.last_reload_attempt_unix, wall)
            self.assertLessEqual(info.last_reload_attempt_unix, time.time() + 1)

    def test_reload_on_sighup(self):
        """A symlink retargeted in another directory is invisible to the
        watch on the served path's directory: SIGHUP loads it."""
        store = os.path.join(self.dir, "store")
        os.mkdir(store)
        current = os.path.join(store, "current.lmdb")
        publish(A.data, current)
        os.symlink(current, self.path)
        with Daemon(self.path, threads=2) as d:
            d.signal(signal.SIGHUP)  # nothing changed: nothing loaded
            d.wait_log(r"model file %s unchanged; still serving version %s"
                       % (re.escape(self.path), A.version))
            self.assertEqual(d.info().reload_count, 1)

            publish(B.data, current)
            self.assert_serves(d, A)  # no event reached the daemon
            d.signal(signal.SIGHUP)
            d.wait_log(r"SIGHUP received; loading model file %s" % re.escape(self.path), count=2)
            d.wait_log(loaded_line(B.version))
            self.assert_serves(d, B)
            self.assertEqual(d.info().reload_count, 2)

    def test_refused_file_keeps_the_old_model(self):
        bad = B.data[:len(B.data) // 2]
        side = os.path.join(self.dir, "bad-copy.lmdb")
        with open(side, "wb") as f:
            f.write(bad)
        verify = fixtures.run_tool("verify", side)
        self.assertNotEqual(verify.returncode, 0)
        reason = verify.stderr.strip().split("recsys-model: %s: " % side, 1)[-1]

        publish(A.data, self.path)
        with Daemon(self.path, threads=2) as d:
            wall = int(time.time())
            publish(bad, self.path)
            d.wait_log(r"ERROR failed to reload model %s \(.+\); still serving version %s"
                       % (re.escape(self.path), A.version))
            self.assert_serves(d, A)
            self.assertEqual(d.health(), "SERVING")
            info = d.info()
            self.assertEqual(info.model_version, A.version)
            self.assertEqual((info.reload_count, info.failed_reload_count), (1, 1))
            self.assertEqual(info.last_reload_error, reason)
            self.assertGreaterEqual(info.last_reload_attempt_unix, wall)
            self.assertLessEqual(info.last_reload_attempt_unix, time.time() + 1)

            import_to(B, self.path)  # a later good file is picked up
            self.await_version(d, B.version, AWAIT_S)
            self.assert_serves(d, B)
            info = d.info()
            self.assertEqual((info.reload_count, info.failed_reload_count), (2, 1))
            self.assertEqual(info.last_reload_error, "")

    def test_start_without_a_model(self):
        with Daemon(self.path, threads=2) as d:
            self.assertEqual(d.health(), "NOT_SERVING")
            with self.assertRaises(grpc.RpcError) as cm:
                self.recommend(d)
            self.assertEqual(cm.exception.code(), grpc.StatusCode.UNAVAILABLE)
            info = d.info()
            self.assertEqual((info.model_version, info.reload_count, info.failed_reload_count),
                             ("", 0, 1))
            self.assertEqual(info.last_reload_error, "No such file or directory")

            publish(A.data, self.path)
            deadline = time.monotonic() + AWAIT_S
            while d.health() != "SERVING":
                self.assertLess(time.monotonic(), deadline, d.log())
            self.assert_serves(d, A)
            info = d.info()
            self.assertEqual((info.reload_count, info.failed_reload_count), (1, 1))
            self.assertEqual(info.last_reload_error, "")

    def test_overwrite_in_place(self):
        """Writing the served file in place: the daemon's lease holds the
        writer's open() until the model is withdrawn and unmapped; calls
        answer UNAVAILABLE until the writer closes the file, which is then
        validated and served. No call ever sees a torn model."""
        publish(A.data, self.path)
        with Daemon(self.path, threads=2) as d, Load(d, threads=2) as load:
            load.wait_seen(A.version, 20)  # the clients are calling
            fd = os.open(self.path, os.O_WRONLY | os.O_TRUNC)
            try:
                # The open returned: the lease was given up, so A is gone.
                with self.assertRaises(grpc.RpcError) as cm:
                    self.recommend(d)
                self.assertEqual(cm.exception.code(), grpc.StatusCode.UNAVAILABLE)
                self.assertEqual(d.health(), "NOT_SERVING")
                self.assertIn("overwritten in place", d.info().last_reload_error)
                os.write(fd, B.data)
                os.fsync(fd)
            finally:
                os.close(fd)
            self.await_version(d, B.version, AWAIT_S)
            load.wait_seen(B.version, 20)
            load.stop()
            unavailable = "call failed: StatusCode.UNAVAILABLE no model loaded"
            self.assertEqual([f for f in load.failures if f != unavailable], [])
            self.assertIn("withdrew version %s" % A.version, d.log())
            self.assert_serves(d, B)
            info = d.info()
            self.assertEqual((info.reload_count, info.failed_reload_count), (2, 0))
            self.assertEqual(info.last_reload_error, "")


class SwapTest(ServedDir, unittest.TestCase):
    def swap(self, d, n):
        """Publish the n-th swap's model (B for odd n, A for even) and wait
        until the daemon has loaded it and closed the one before."""
        model = B if n % 2 else A
        publish(model.data, self.path)
        d.wait_log(loaded_line(model.version), timeout=AWAIT_S, count=n // 2 + 1)

    def await_only_current_file_open(self, d):
        """Wait until every descriptor the daemon has under the directory
        is on the current file: one kept on a replaced file reads
        "<path> (deleted)". Awaited, not read once: the watcher moves its
        lease to the new file before it validates it, and drops the old file's
        once the old model is closed (reload.c)."""
        deadline = time.monotonic() + AWAIT_S
        while set(d.open_files(self.dir + "/")) != {self.path}:
            self.assertLess(time.monotonic(), deadline,
                            "open model files: %s" % d.open_files(self.dir + "/"))

    def test_swaps_under_load(self):
        """60 swaps while 4 client threads call continuously: no call fails,
        every answer comes from exactly one of the two models."""
        swaps = 60
        publish(A.data, self.path)
        with Daemon(self.path, threads=2) as d, Load(d, threads=4) as load:
            load.wait_seen(A.version, 20)  # the clients are calling
            for n in range(1, swaps + 1):
                self.swap(d, n)
            load.stop()
            self.assertEqual(load.failures, [])
            self.assertEqual(d.info().reload_count, swaps + 1)
            # Both models answered, many times: the swaps happened under load.
            self.assertGreater(load.seen[A.version], swaps)
            self.assertGreater(load.seen[B.version], swaps)

    def test_no_leak_across_swaps(self):
        """After 200 swaps one model file is mapped and no file descriptor
        points to a replaced file; anonymous memory after swap 200 is within
        RSS_SLACK_KB of swap 50.

        The bound: each swap loads a model (heap: the model struct, its
        LMDB environment and per-worker read transactions, the inverse norms:
        a few kB for these models) and builds a snapshot. Leaking even 8 kB
        per swap adds 1.2 MB over the 150 swaps compared, above the slack,
        which covers allocator and gRPC buffer noise; a leaked map would
        show in the maps check whatever its size, and smaller heap leaks are
        LeakSanitizer's to find in the AddressSanitizer build."""
        RSS_SLACK_KB = 1024
        publish(A.data, self.path)
        with Daemon(self.path, threads=2) as d, Load(d, threads=1) as load:
            load.wait_seen(A.version, 20)  # the client is calling
            anon = {}
            for n in range(1, 201):
                self.swap(d, n)
                if n in (50, 200):
                    anon[n] = d.proc_status()["RssAnon"]
                    self.await_only_current_file_open(d)
            maps = d.mapped_files(self.dir + "/")
            load.stop()
            self.assertEqual(load.failures, [])
        self.assertEqual(maps, [self.path], "model files mapped after 200 swaps")
        if SANITIZER_MEMORY:
            return  # RSS says nothing there
        self.assertLess(anon[200] - anon[50], RSS_SLACK_KB,
                        "RssAnon grew from %d kB (swap 50) to %d kB (swap 200)"
                        % (anon[50], anon[200]))


if __name__ == "__main__":
    unittest.main()
