"""Every RPC through Node's @grpc/grpc-js, an independent gRPC implementation
(its own HTTP/2, framing, compression, deadlines and cancellation), as the
backend teams' Node services call recsysd.

One recsysd serves a model built by tests/lib/fixtures.py. The test writes
a plan of calls, tests/node/client.js makes them with grpc-js and writes
down what came back, and the answers are compared here with fixtures.ref_*
(NumPy from the dataset that went into the model, never the daemon's own
output). The plan's phases, in order, on two grpc-js channels:

  rpc         every RPC and the documented error statuses, on channel "plain"
  events      RecordEvents and ForgetUser, one after the other: a new user's
              purchase is owned and folds them in (FOLDED_IN, compared with
              the implicit-ALS fold-in in NumPy), forgetting it gives the
              popularity list back
  multiplex   200 calls started in one tick on the same channel
  gzip        requests sent gzip-compressed, on channel "gzip"
  abandon     calls that end by deadline or cancellation, some held open
              on the daemon with no request sent, among ordinary calls
  after       ordinary calls on the same connection once those are gone

client.js reaches the daemon through a relay that reads the HTTP/2 frames,
so the test also checks what went over the wire: one connection per
channel, many streams open on it at once, requests really compressed
(else the gzip phase would prove nothing), and the abandoned streams reset
by the client.

Environment (tests/CMakeLists.txt): NODE_PATH, the node_modules that `npm
ci` installed from tests/node/package-lock.json into the build directory;
RECSYS_GRPC_PROTO_DIR, where health.proto lives.
"""

import json
import os
import shutil
import subprocess
import tempfile
import time
import unittest

import fixtures
from daemon import Daemon
from test_events import fold_in  # the NumPy reference of a folded-in vector

HERE = os.path.dirname(os.path.abspath(__file__))
CLIENT = os.path.join(HERE, "..", "node", "client.js")
PROTO_DIR = os.path.join(HERE, "..", "..", "proto")
SERVICE = "/recsys.v1.Recommender/"
HEALTH = "/grpc.health.v1.Health/Check"
COSINE_TOL = 1e-5
FOLD_IN_TOL = 1e-4  # relative: float32 scores of a vector NumPy solves in double
MULTIPLEX_CALLS = 200
# A whole run takes a few seconds; a sanitizer build of the daemon on a
# loaded machine is several times slower, and a hang must still end.
NODE_TIMEOUT = 300


# ---- expectations: each takes (test case, call result) and asserts -----------

def ok(check):
    def expect(tc, got):
        tc.assertEqual(got["code"], "OK", got["details"])
        check(tc, got["response"])
    return expect


def assert_ranked(tc, got, source, want, version, tol=0.0):
    """got: a RecommendResponse as grpc-js decoded it; want: [(item_id, score)]."""
    tc.assertEqual(got["source"], source)
    tc.assertEqual(got["model_version"], version)
    tc.assertEqual([g["item_id"] for g in got["items"]], [w[0] for w in want])
    for g, (item, score) in zip(got["items"], want):
        if tol:
            tc.assertAlmostEqual(g["score"], score, delta=tol, msg=item)
        else:
            # Grid factors: exact in float32 (fixtures.py), and JSON carries
            # grpc-js's double of that float32 without loss.
            tc.assertEqual(g["score"], score, msg=item)


def ranked(ref, version, tol=0.0):
    source, want = ref
    return ok(lambda tc, got: assert_ranked(tc, got, source, want, version, tol))


def batch(refs, version):
    def check(tc, got):
        tc.assertEqual(len(got["responses"]), len(refs))
        for resp, (source, want) in zip(got["responses"], refs):
            assert_ranked(tc, resp, source, want, version)
    return ok(check)


def eligibility(want, version):
    def check(tc, got):
        tc.assertEqual(got["model_version"], version)
        tc.assertEqual([(r["item_id"], r["eligible"], r["reason"], int(r["price_cents"]))
                        for r in got["results"]], want)
    return ok(check)


def serving(tc, got):
    tc.assertEqual(got["code"], "OK", got["details"])
    tc.assertEqual(got["response"]["status"], "SERVING")


def status(code, details=None, contains=None):
    """The call fails with code; its message is details, or contains a text."""
    def expect(tc, got):
        tc.assertEqual(got["code"], code, got["details"])
        if details is not None:
            tc.assertEqual(got["details"], details)
        if contains is not None:
            tc.assertIn(contains, got["details"])
    return expect


def either(answer, code):
    """A race: the answer, when the call won it, else the status `code`."""
    def expect(tc, got):
        if got["code"] != "OK":
            tc.assertEqual(got["code"], code, got["details"])
        else:
            answer(tc, got)
    return expect


# ---- requests ------------------------------------------------------------------

def recommend_request(user, count=0, exclude=(), categories=(), purchasable_only=False,
                      owned=()):
    """The request for the arguments fixtures.ref_recommend takes."""
    return {"user_id": user, "count": count, "exclude_item_ids": list(exclude),
            "categories": list(categories), "purchasable_only": purchasable_only,
            "owned_item_ids": list(owned)}


def similar_request(item, count=0, exclude=(), categories=(), user_id=""):
    return {"item_id": item, "count": count, "exclude_item_ids": list(exclude),
            "categories": list(categories), "user_id": user_id}


class Plan:
    """The calls for client.js, and what each must get."""

    def __init__(self):
        self.phases = []
        self.expect = {}
        self.racing = set()  # calls that may end before grpc-js opens their stream

    def phase(self, name, channel="plain", sequential=False):
        self.phases.append({"name": name, "channel": channel, "sequential": sequential,
                            "calls": []})

    def call(self, call_id, path, request, expect, race=None, **opts):
        """race: the status the call may end with instead (see either)."""
        assert call_id not in self.expect, call_id
        path = path if path.startswith("/") else SERVICE + path
        self.phases[-1]["calls"].append(dict(opts, id=call_id, path=path, request=request))
        self.expect[call_id] = either(expect, race) if race else expect
        if race:
            self.racing.add(call_id)

    def recommend(self, call_id, ds, user, **kw):
        self.call(call_id, "Recommend", recommend_request(user, **kw),
                  ranked(fixtures.ref_recommend(ds, user, **kw), ds.version))

    def similar(self, call_id, ds, item, **kw):
        self.call(call_id, "SimilarItems", similar_request(item, **kw),
                  ranked(fixtures.ref_similar(ds, item, **kw), ds.version, COSINE_TOL))

    def eligibility(self, call_id, ds, user, items, owned=()):
        self.call(call_id, "CheckEligibility",
                  {"user_id": user, "item_ids": list(items), "owned_item_ids": list(owned)},
                  eligibility(fixtures.ref_eligibility(ds, user, items, owned), ds.version))

    def batch(self, call_id, ds, requests, **opts):
        """requests: [(user, ref_recommend keyword arguments)]."""
        self.call(call_id, "BatchRecommend",
                  {"requests": [recommend_request(u, **kw) for u, kw in requests]},
                  batch([fixtures.ref_recommend(ds, u, **kw) for u, kw in requests], ds.version),
                  **opts)


class NodeClientTest(unittest.TestCase):
    d = None  # the daemon

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="recsys-test-")
        try:
            cls.ds = fixtures.make_model(cls.tmp, users=300, items=400, dim=16, seed=17,
                                         version="node-test-1")
            cls.plan = Plan()
            cls.plan_rpc()
            cls.plan_events()
            cls.plan_multiplex()
            cls.plan_gzip()
            cls.plan_abandon()
            cls.started = int(time.time())
            cls.state = os.path.join(cls.tmp, "state")
            cls.d = Daemon(cls.ds.path, threads=2, args=["--state-dir", cls.state])
            cls.d.start()
            cls.out = cls.run_node()
        except BaseException:
            cls.clean_up(check=False)
            raise

    @classmethod
    def tearDownClass(cls):
        cls.clean_up(check=True)

    @classmethod
    def clean_up(cls, check):
        """Stop the daemon; with check, fail unless it exits 0 (a sanitizer
        report, a leak of the abandoned calls included, makes it exit 1)."""
        try:
            if cls.d is not None:
                cls.d.stop(check=check)
        finally:
            shutil.rmtree(cls.tmp)

    @classmethod
    def run_node(cls):
        plan = {
            "target": cls.d.addr,
            "include_dirs": [PROTO_DIR, os.environ["RECSYS_GRPC_PROTO_DIR"]],
            "proto_files": ["recsys/v1/recommender.proto", "grpc/health/v1/health.proto"],
            "channels": {"plain": {}, "gzip": {"grpc.default_compression_algorithm": 2}},
            "phases": cls.plan.phases,
        }
        plan_path = os.path.join(cls.tmp, "plan.json")
        out_path = os.path.join(cls.tmp, "results.json")
        with open(plan_path, "w") as f:
            json.dump(plan, f)
        node = shutil.which("node")
        if node is None:
            raise AssertionError("node is not installed (`make test` installs it)")
        p = subprocess.run([node, CLIENT, plan_path, out_path], capture_output=True, text=True,
                           timeout=NODE_TIMEOUT)
        if p.returncode != 0:
            raise AssertionError("client.js exited %d:\n%s" % (p.returncode, p.stderr))
        with open(out_path) as f:
            return json.load(f)

    # ---- the plan ----------------------------------------------------------------

    @classmethod
    def user_with(cls, predicate):
        return next(u for u in cls.ds.user_ids if predicate(u))

    @classmethod
    def plan_rpc(cls):
        ds, plan = cls.ds, cls.plan
        plan.phase("rpc")
        for user in ds.user_ids[:6]:  # [2] has UTF-8 and a comma
            for count in (0, 1, 7, 25):
                plan.recommend("recommend/%s/%d" % (user, count), ds, user, count=count)
        plan.recommend("recommend/count-1000", ds, ds.user_ids[5], count=1000)

        user = cls.user_with(lambda u: ds.user_tier[u] > 0 and ds.owned[u])
        _, top = fixtures.ref_recommend(ds, user, count=8)
        exclude = [top[0][0], top[3][0], "no-such-item", ds.item_ids[1]]
        owned = [top[1][0], ds.item_ids[2]]
        filters = {
            "exclude": dict(exclude=exclude),
            "owned": dict(owned=owned),
            "category": dict(categories=[ds.item_category(top[2][0])]),
            "two-categories": dict(categories=ds.categories[:2]),
            "purchasable-only": dict(purchasable_only=True),
            "all": dict(exclude=exclude, owned=owned, categories=ds.categories[:2],
                        purchasable_only=True),
        }
        for name, kw in filters.items():
            plan.recommend("filter/%s" % name, ds, user, count=12, **kw)

        cold = {
            "plain": dict(),
            "count-30": dict(count=30),
            "category": dict(categories=[ds.categories[1]]),
            "purchasable-exclude": dict(purchasable_only=True, exclude=[ds.item_ids[0]]),
            "owned-most-popular": dict(owned=[ds.item_ids[ds.popular_order()[0]]]),
        }
        for name, kw in cold.items():
            plan.recommend("popular/%s" % name, ds, "nobody-knows-me", **kw)

        ids = ds.item_ids + ["no-such-item"]
        users = [cls.user_with(lambda u: ds.user_tier[u] == t) for t in (0, 1, 2)]
        for user in users + ["a-new-user"]:
            plan.eligibility("eligibility/%s" % user, ds, user, ids)
        user = users[1]
        plan.eligibility("eligibility/owned-ids", ds, user, ids[:50], owned=ids[10:20])

        for item in (ds.item_ids[0], ds.item_ids[2], ds.item_ids[len(ds.item_ids) // 2],
                     ds.item_ids[-1]):
            _, top = fixtures.ref_similar(ds, item, count=6)
            owner = cls.user_with(lambda u: len(ds.owned[u]) >= 3)
            cases = {
                "plain": dict(),
                "count-40": dict(count=40),
                "exclude": dict(exclude=[top[0][0], top[4][0]]),
                "category": dict(categories=[ds.categories[0]]),
                "user": dict(user_id=owner),
                "unknown-user": dict(user_id="nobody"),
                "all": dict(count=15, exclude=[top[1][0]], categories=ds.categories[1:],
                            user_id=owner),
            }
            for name, kw in cases.items():
                plan.similar("similar/%s/%s" % (item, name), ds, item, **kw)

        plan.batch("batch/mixed", ds, [
            (ds.user_ids[0], dict()),
            (ds.user_ids[1], dict(count=3, categories=[ds.categories[2]])),
            ("nobody-knows-me", dict(count=5)),
            (ds.user_ids[2], dict(count=20, exclude=ds.item_ids[:30], purchasable_only=True,
                                  owned=ds.item_ids[30:40])),
            (ds.user_ids[0], dict(count=1000)),
        ])
        plan.batch("batch/empty", ds, [])

        plan.call("info", "GetModelInfo", {}, ok(cls.check_model_info))
        plan.call("health/overall", HEALTH, {"service": ""}, serving)
        plan.call("health/recommender", HEALTH, {"service": "recsys.v1.Recommender"}, serving)
        plan.call("health/other", HEALTH, {"service": "some.other.Service"}, status("NOT_FOUND"))

        user, item = ds.user_ids[0], ds.item_ids[0]
        errors = [
            ("recommend-empty-user", "Recommend", recommend_request(""),
             status("INVALID_ARGUMENT", "user_id is empty")),
            ("recommend-count-1001", "Recommend", recommend_request(user, count=1001),
             status("INVALID_ARGUMENT", "count 1001 exceeds 1000")),
            ("eligibility-empty-user", "CheckEligibility", {"user_id": "", "item_ids": [item]},
             status("INVALID_ARGUMENT", "user_id is empty")),
            ("eligibility-no-items", "CheckEligibility", {"user_id": user},
             status("INVALID_ARGUMENT", "item_ids is empty")),
            ("similar-count-1001", "SimilarItems", similar_request(item, count=1001),
             status("INVALID_ARGUMENT", "count 1001 exceeds 1000")),
            # The message comes back percent-encoded: grpc-js must decode it.
            ("similar-unknown-item", "SimilarItems", similar_request("no-such/\u00e9-item"),
             status("NOT_FOUND", contains="no-such/\u00e9-item")),
            ("batch-count-5000", "BatchRecommend",
             {"requests": [recommend_request(user), recommend_request(user, count=5000)]},
             status("INVALID_ARGUMENT", "requests[1]: count 5000 exceeds 1000")),
            ("batch-257", "BatchRecommend", {"requests": [recommend_request(user)] * 257},
             status("INVALID_ARGUMENT", contains="requests has 257 entries, more than 256")),
        ]
        for name, method, request, expect in errors:
            plan.call("error/" + name, method, request, expect)
        plan.call("error/unknown-method", "Nope", recommend_request(user),
                  status("UNIMPLEMENTED"), types=SERVICE + "Recommend")

    @classmethod
    def plan_events(cls):
        ds, plan = cls.ds, cls.plan
        plan.phase("events", sequential=True)
        user = "node-new-buyer"  # not in the model
        popular = fixtures.ref_recommend(ds, user)
        bought = popular[1][0][0]  # the top of the list: its absence shows
        plan.recommend("events/before", ds, user)
        plan.call("events/record", "RecordEvents",
                  {"events": [{"user_id": user, "item_id": bought, "type": "PURCHASE"},
                              {"user_id": user, "item_id": "no-such-item", "type": "VIEW",
                               "weight": 2.0}]},
                  ok(lambda tc, got: tc.assertEqual(
                      (got["recorded"], got["unknown_items"]), (1, 1))))
        plan.call("events/eligibility", "CheckEligibility",
                  {"user_id": user, "item_ids": [bought]},
                  eligibility([(bought, False, "ALREADY_OWNED", ds.price[ds.item_index[bought]])],
                              ds.version))
        plan.call("events/folded-in", "Recommend", recommend_request(user, count=10),
                  ok(lambda tc, got: tc.check_folded_in(got, bought)))
        plan.call("events/forget", "ForgetUser", {"user_id": user},
                  ok(lambda tc, got: tc.assertEqual(got["deleted"], 1)))
        plan.recommend("events/forgotten", ds, user)
        plan.eligibility("events/forgotten-eligibility", ds, user, [bought])
        plan.call("events/forget-again", "ForgetUser", {"user_id": user},
                  ok(lambda tc, got: tc.assertEqual(got["deleted"], 0)))
        plan.call("events/empty-item", "RecordEvents",
                  {"events": [{"user_id": user, "item_id": bought, "type": "PURCHASE"},
                              {"user_id": user, "item_id": "", "type": "PURCHASE"}]},
                  status("INVALID_ARGUMENT", "events[1]: item_id is empty"))
        plan.call("events/forget-empty-user", "ForgetUser", {"user_id": ""},
                  status("INVALID_ARGUMENT", contains="user_id"))
        # The refused call stored nothing, its valid first event included.
        plan.eligibility("events/after-refused", ds, user, [bought])

    @classmethod
    def plan_multiplex(cls):
        ds, plan = cls.ds, cls.plan
        plan.phase("multiplex")
        for k in range(MULTIPLEX_CALLS):
            user = ds.user_ids[k % 100]
            kind = k % 5
            if kind == 3:
                plan.similar("multiplex/%d" % k, ds, ds.item_ids[k], count=5)
            elif kind == 4:
                plan.eligibility("multiplex/%d" % k, ds, user, ds.item_ids[k:k + 20])
            else:
                plan.recommend("multiplex/%d" % k, ds, user, count=1 + k % 12,
                               purchasable_only=kind == 2)

    @classmethod
    def plan_gzip(cls):
        # The calls start together, before the channel has read any response:
        # grpc-js (1.14.7) stops compressing on a channel once it has seen the
        # C core's "grpc-accept-encoding: identity, deflate, gzip", as it
        # splits that on ',' without dropping the blanks and finds no "gzip".
        # Large, repetitive requests, so that gzip has something to do and a
        # misread byte would change the answer.
        ds, plan = cls.ds, cls.plan
        user = cls.user_with(lambda u: ds.user_tier[u] > 0 and ds.owned[u])
        exclude = ds.item_ids[::3] + ["gone-%04d" % i for i in range(500)]
        plan.phase("gzip", channel="gzip")
        plan.recommend("gzip/recommend", ds, user, count=50, exclude=exclude,
                       categories=ds.categories[:2], owned=ds.item_ids[1::7])
        plan.recommend("gzip/popular", ds, "nobody-knows-me", count=50, exclude=exclude,
                       purchasable_only=True)
        plan.eligibility("gzip/eligibility", ds, user, ds.item_ids + ["no-such-item"])
        plan.similar("gzip/similar", ds, ds.item_ids[5], count=30, user_id=user)
        plan.batch("gzip/batch", ds, [(u, dict(count=20)) for u in ds.user_ids[:64]])
        plan.call("gzip/info", "GetModelInfo", {}, ok(cls.check_model_info))
        plan.call("gzip/health", HEALTH, {"service": ""}, serving)
        plan.call("gzip/error", "Recommend", recommend_request("", exclude=exclude),
                  status("INVALID_ARGUMENT", "user_id is empty"))

    @classmethod
    def plan_abandon(cls):
        ds, plan = cls.ds, cls.plan
        plan.phase("abandon")
        # The largest batch, so that the daemon may still be at work when
        # the deadline or the cancellation comes, with short answers, so
        # that decoding them does not keep grpc-js from its timers.
        users = ds.user_ids[:256]
        heavy = {"requests": [recommend_request(u) for u in users]}
        heavy_answer = batch([fixtures.ref_recommend(ds, u) for u in users], ds.version)
        for k in range(3):
            # The call reaches the daemon but its request never does. Its
            # end comes late enough for grpc-js to have opened the stream
            # even while the batches below keep its event loop busy.
            plan.call("abandon/stalled-deadline/%d" % k, "Recommend", None,
                      status("DEADLINE_EXCEEDED"), stall=True, deadline_ms=1000)
            plan.call("abandon/stalled-cancel/%d" % k, "Recommend", None,
                      status("CANCELLED"), stall=True, cancel_after_ms=500)
        for k in range(10):
            # Races with the daemon's answer, ended anywhere from before the
            # request is sent to after the answer came: either outcome is
            # right, as long as an answer that comes is the right one.
            plan.call("abandon/deadline/%d" % k, "BatchRecommend", heavy, heavy_answer,
                      race="DEADLINE_EXCEEDED", deadline_ms=2**k)
            plan.call("abandon/cancel/%d" % k, "BatchRecommend", heavy, heavy_answer,
                      race="CANCELLED", cancel_after_ms=2**k // 2)
            plan.recommend("abandon/ordinary/%d" % k, ds, ds.user_ids[k], count=10)
        plan.phase("after", sequential=True)
        for k in range(5):
            plan.recommend("after/recommend/%d" % k, ds, ds.user_ids[k], count=10)
        plan.call("after/batch", "BatchRecommend", heavy, heavy_answer)
        plan.call("after/health", HEALTH, {"service": ""}, serving)

    # ---- checks ------------------------------------------------------------------

    def check_model_info(self, got):
        ds = self.ds
        model = fixtures.read_model(ds.path)  # decoded from model/FORMAT.md alone
        self.assertEqual(got["model_version"], ds.version)
        self.assertEqual(int(got["created_at_unix"]), ds.created_at)
        self.assertGreaterEqual(int(got["loaded_at_unix"]), self.started - 1)
        self.assertLessEqual(int(got["loaded_at_unix"]), int(time.time()) + 1)
        self.assertEqual(got["dimension"], ds.dim)
        self.assertEqual(int(got["user_count"]), len(ds.user_ids))
        self.assertEqual(int(got["item_count"]), len(ds.item_ids))
        self.assertEqual(got["element_type"], "f32")
        self.assertEqual(got["path"], ds.path)
        self.assertEqual(got["checksum"], "%016x" % model["checksum"])
        self.assertEqual(got["quantized"], [b[len("item_"):] for b in fixtures.OPTIONAL_BLOBS
                                            if b in model])
        self.assertEqual(int(got["reload_count"]), 1)
        self.assertEqual(int(got["failed_reload_count"]), 0)
        self.assertEqual(got["last_reload_error"], "")
        self.assertEqual(got["events"]["dir"], self.state)
        self.assertEqual(got["events"]["error"], "")

    def check_folded_in(self, got, bought):
        """A new user who bought only @bought: the top 10 of the NumPy
        fold-in over the items on sale, @bought excluded."""
        ds = self.ds
        x = fold_in(ds, {ds.item_index[bought]: 1.0})
        scores = ds.V.astype("float64") @ x
        keep = [i for i in range(len(ds.item_ids)) if ds.on_sale[i] and ds.item_ids[i] != bought]
        keep.sort(key=lambda i: (-scores[i], i))
        self.assertEqual(got["source"], "FOLDED_IN")
        self.assertEqual(got["model_version"], ds.version)
        self.assertEqual(len(got["items"]), 10)
        self.assertNotIn(bought, [g["item_id"] for g in got["items"]])
        scale = max(abs(scores[keep[0]]), 1e-6)
        for g, want in zip(got["items"], keep[:10]):
            score = scores[ds.item_index[g["item_id"]]]
            self.assertLess(abs(g["score"] - score), FOLD_IN_TOL * scale, g["item_id"])
            # Another item only where the two tie within the tolerance.
            if g["item_id"] != ds.item_ids[want]:
                self.assertLess(abs(scores[want] - score), FOLD_IN_TOL * scale, g["item_id"])

    def check_calls(self, prefix):
        ids = [i for i in self.plan.expect if i.startswith(prefix)]
        self.assertTrue(ids, prefix)
        for call_id in ids:
            with self.subTest(call=call_id):
                self.plan.expect[call_id](self, self.out["calls"][call_id])

    def test_recommend(self):
        self.check_calls("recommend/")

    def test_recommend_filters(self):
        self.check_calls("filter/")

    def test_cold_start_popular(self):
        self.check_calls("popular/")

    def test_eligibility_every_reason(self):
        self.check_calls("eligibility/")
        reasons = {r["reason"] for i, c in self.out["calls"].items()
                   if i.startswith("eligibility/") and c["response"]
                   for r in c["response"]["results"]}
        self.assertEqual(reasons, {"PURCHASABLE", "ALREADY_OWNED", "INCLUDED_IN_MEMBERSHIP",
                                   "NOT_FOR_SALE", "UNKNOWN_ITEM"})

    def test_similar_items(self):
        self.check_calls("similar/")

    def test_batch_recommend(self):
        self.check_calls("batch/")

    def test_record_and_forget_events(self):
        self.check_calls("events/")

    def test_model_info(self):
        self.check_calls("info")

    def test_health(self):
        self.check_calls("health/")

    def test_error_statuses(self):
        self.check_calls("error/")

    def test_multiplexed_on_one_connection(self):
        self.check_calls("multiplex/")
        self.assertEqual(self.out["phases"]["multiplex"]["max_in_flight"], MULTIPLEX_CALLS)
        # Every call of every phase on "plain" went over one connection, each
        # on a stream of its own, many at once. A call that lost its race to
        # a deadline or a cancellation may have ended before its stream.
        plain = self.out["channels"]["plain"]
        self.assertEqual(plain["connections"], 1, plain)
        calls = [c for p in self.plan.phases if p["channel"] == "plain" for c in p["calls"]]
        racing = [c for c in calls if c["id"] in self.plan.racing]
        self.assertLessEqual(plain["streams"], len(calls), plain)
        self.assertGreaterEqual(plain["streams"], len(calls) - len(racing), plain)
        self.assertGreater(plain["max_open_streams"], 1, plain)
        self.assertEqual(plain["compressed_messages"], 0, plain)

    def test_gzip_requests(self):
        self.check_calls("gzip/")
        wire = self.out["channels"]["gzip"]
        calls = sum(len(p["calls"]) for p in self.plan.phases if p["channel"] == "gzip")
        self.assertEqual(wire["compressed_messages"], calls, wire)
        self.assertEqual(wire["plain_messages"], 0, wire)

    def test_abandoned_calls_leave_the_daemon_serving(self):
        self.check_calls("abandon/")
        self.check_calls("after/")
        # The held calls did reach the daemon and were reset by the client.
        stalled = [i for i in self.plan.expect if i.startswith("abandon/stalled-")]
        self.assertGreaterEqual(self.out["channels"]["plain"]["client_resets"], len(stalled))
        self.assertEqual(self.d.health(), "SERVING")
        self.assertNotRegex(self.d.log(), r"(?m)^\S+ (WARN|ERROR)\b")


if __name__ == "__main__":
    unittest.main()
