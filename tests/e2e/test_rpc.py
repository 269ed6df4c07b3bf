"""End-to-end tests of every RPC against the fixtures' reference answers.

One recsysd serves a model built by tests/lib/fixtures.py; the tests call it
through Python's gRPC client with the protoc-generated messages, and compare
each answer with fixtures.ref_* (plain numpy/Python from the dataset that
went into the model, never from the daemon's own output).
"""

import os
import shutil
import tempfile
import time
import unittest

import grpc

import fixtures
from daemon import Daemon
from recsys.v1 import recommender_pb2 as pb

COSINE_TOL = 1e-5


class RpcTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="recsys-test-")
        cls.ds = fixtures.make_model(cls.tmp, users=300, items=400, dim=16, seed=11,
                                     version="rpc-test-1")
        cls.started = int(time.time())
        cls.daemon = Daemon(cls.ds.path, threads=2)
        cls.d = cls.daemon.__enter__()

    @classmethod
    def tearDownClass(cls):
        cls.daemon.__exit__(None, None, None)
        shutil.rmtree(cls.tmp)

    # ---- helpers -------------------------------------------------------------

    def recommend(self, **kw):
        return self.d.stub_call("Recommend", pb.RecommendRequest(**kw), pb.RecommendResponse)

    def similar(self, **kw):
        return self.d.stub_call("SimilarItems", pb.SimilarItemsRequest(**kw),
                                pb.RecommendResponse)

    def eligibility(self, **kw):
        return self.d.stub_call("CheckEligibility", pb.EligibilityRequest(**kw),
                                pb.EligibilityResponse)

    def assert_ranked(self, got, want, tol=0.0):
        """got: ScoredItems; want: [(item_id, score)] from the reference."""
        self.assertEqual([g.item_id for g in got], [w[0] for w in want])
        for g, (item, score) in zip(got, want):
            if tol:
                self.assertAlmostEqual(g.score, score, delta=tol, msg=item)
            else:
                # Grid factors: dot products are exact in float32 (fixtures.py).
                self.assertEqual(g.score, score, msg=item)

    def user_with(self, predicate):
        return next(u for u in self.ds.user_ids if predicate(u))

    # ---- Recommend -------------------------------------------------------------

    def test_recommend_known_users(self):
        for user in self.ds.user_ids[:8]:
            for count in (0, 1, 7, 25):
                with self.subTest(user=user, count=count):
                    got = self.recommend(user_id=user, count=count)
                    source, want = fixtures.ref_recommend(self.ds, user, count=count)
                    self.assertEqual(source, "PERSONALIZED")
                    self.assertEqual(pb.Source.Name(got.source), source)
                    self.assertEqual(got.model_version, self.ds.version)
                    self.assertEqual(len(got.items), count or 10)
                    self.assert_ranked(got.items, want)

    def test_recommend_count_max_returns_every_candidate(self):
        user = self.ds.user_ids[5]
        got = self.recommend(user_id=user, count=1000)
        _, want = fixtures.ref_recommend(self.ds, user, count=1000)
        self.assertLess(len(want), 1000)  # the whole filtered catalog
        self.assert_ranked(got.items, want)

    def test_recommend_filters(self):
        user = self.user_with(lambda u: self.ds.user_tier[u] > 0 and self.ds.owned[u])
        _, top = fixtures.ref_recommend(self.ds, user, count=8)
        exclude = [top[0][0], top[3][0], "no-such-item"]
        owned = [top[1][0]]
        categories = sorted({self.ds.item_category(top[2][0])})
        cases = {
            "exclude": dict(exclude=exclude),
            "owned": dict(owned=owned),
            "categories": dict(categories=categories),
            "two categories": dict(categories=self.ds.categories[:2]),
            "purchasable_only": dict(purchasable_only=True),
            "all": dict(exclude=exclude, owned=owned, categories=self.ds.categories[:2],
                        purchasable_only=True),
        }
        for name, kw in cases.items():
            with self.subTest(filter=name):
                got = self.recommend(user_id=user, count=12,
                                     exclude_item_ids=kw.get("exclude", ()),
                                     owned_item_ids=kw.get("owned", ()),
                                     categories=kw.get("categories", ()),
                                     purchasable_only=kw.get("purchasable_only", False))
                source, want = fixtures.ref_recommend(self.ds, user, count=12, **kw)
                self.assertEqual(pb.Source.Name(got.source), source)
                self.assert_ranked(got.items, want)
                returned = {g.item_id for g in got.items}
                self.assertFalse(returned & set(kw.get("exclude", ())))
                self.assertFalse(returned & set(kw.get("owned", ())))
                self.assertFalse(returned & self.ds.owned[user])

    def test_recommend_unknown_user_gets_popular(self):
        for kw in (dict(), dict(count=30), dict(categories=[self.ds.categories[1]]),
                   dict(purchasable_only=True, exclude=[self.ds.item_ids[0]])):
            with self.subTest(**{k: str(v) for k, v in kw.items()}):
                got = self.recommend(user_id="nobody-knows-me", count=kw.get("count", 0),
                                     categories=kw.get("categories", ()),
                                     exclude_item_ids=kw.get("exclude", ()),
                                     purchasable_only=kw.get("purchasable_only", False))
                source, want = fixtures.ref_recommend(self.ds, "nobody-knows-me", **kw)
                self.assertEqual(source, "POPULAR")
                self.assertEqual(got.source, pb.POPULAR)
                self.assertEqual(got.model_version, self.ds.version)
                self.assert_ranked(got.items, want)

    def test_recommend_unusual_ids(self):
        # fixtures' ids include UTF-8, '/', quotes and commas.
        user = self.ds.user_ids[2]
        self.assertIn("\u00e9", user)
        got = self.recommend(user_id=user, exclude_item_ids=self.ds.item_ids[1:3])
        _, want = fixtures.ref_recommend(self.ds, user, exclude=self.ds.item_ids[1:3])
        self.assert_ranked(got.items, want)

    # ---- CheckEligibility --------------------------------------------------------

    def test_eligibility_whole_catalog_every_reason(self):
        reasons = set()
        ids = self.ds.item_ids + ["no-such-item"]
        users = [self.user_with(lambda u: self.ds.user_tier[u] == t) for t in (0, 1, 2)]
        for user in users + ["a-new-user"]:
            with self.subTest(user=user):
                got = self.eligibility(user_id=user, item_ids=ids[:1000])
                want = fixtures.ref_eligibility(self.ds, user, ids[:1000])
                self.assertEqual(got.model_version, self.ds.version)
                self.assertEqual(
                    [(r.item_id, r.eligible, pb.Reason.Name(r.reason), r.price_cents)
                     for r in got.results], want)
                reasons |= {w[2] for w in want}
        self.assertEqual(reasons, {"PURCHASABLE", "ALREADY_OWNED", "INCLUDED_IN_MEMBERSHIP",
                                   "NOT_FOR_SALE", "UNKNOWN_ITEM"})

    def test_eligibility_rule_order_and_owned_ids(self):
        ds = self.ds
        user = self.user_with(lambda u: ds.user_tier[u] >= 1 and ds.owned[u])
        # An item that is owned AND included AND off sale must say ALREADY_OWNED;
        # included AND off sale must say INCLUDED_IN_MEMBERSHIP.
        mine = ds.owned[user]
        included_off = [iid for i, iid in enumerate(ds.item_ids) if iid not in mine
                        and 0 < ds.item_tier[i] <= ds.user_tier[user] and not ds.on_sale[i]]
        off_sale = [iid for i, iid in enumerate(ds.item_ids)
                    if iid not in mine and ds.item_tier[i] == 0 and not ds.on_sale[i]]
        buyable = [iid for i, iid in enumerate(ds.item_ids)
                   if iid not in mine and ds.item_tier[i] == 0 and ds.on_sale[i]]
        self.assertTrue(included_off and off_sale and len(buyable) > 1)
        ids = [included_off[0], off_sale[0], buyable[0], buyable[1], sorted(mine)[0],
               buyable[0]]
        got = self.eligibility(user_id=user, item_ids=ids,
                               owned_item_ids=[buyable[1], included_off[0]])
        names = [pb.Reason.Name(r.reason) for r in got.results]
        self.assertEqual(names, ["ALREADY_OWNED", "NOT_FOR_SALE", "PURCHASABLE",
                                 "ALREADY_OWNED", "ALREADY_OWNED", "PURCHASABLE"])
        self.assertEqual([r.eligible for r in got.results],
                         [False, False, True, False, False, True])
        want = fixtures.ref_eligibility(ds, user, ids, owned=[buyable[1], included_off[0]])
        self.assertEqual([w[2] for w in want], names)
        got = self.eligibility(user_id=user, item_ids=[included_off[0]])
        self.assertEqual(got.results[0].reason, pb.INCLUDED_IN_MEMBERSHIP)

    # ---- SimilarItems --------------------------------------------------------------

    def test_similar_items(self):
        ds = self.ds
        user = self.user_with(lambda u: len(ds.owned[u]) >= 3)
        for item in (ds.item_ids[0], ds.item_ids[2], ds.item_ids[len(ds.item_ids) // 2],
                     ds.item_ids[-1]):
            _, top = fixtures.ref_similar(ds, item, count=6)
            cases = {
                "plain": dict(),
                "count": dict(count=40),
                "exclude": dict(exclude=[top[0][0], top[4][0]]),
                "categories": dict(categories=[ds.categories[0]]),
                "user": dict(user_id=user),
                "unknown user": dict(user_id="nobody"),
                "all": dict(count=15, exclude=[top[1][0]], categories=ds.categories[1:],
                            user_id=user),
            }
            for name, kw in cases.items():
                with self.subTest(item=item, case=name):
                    got = self.similar(item_id=item, count=kw.get("count", 0),
                                       exclude_item_ids=kw.get("exclude", ()),
                                       categories=kw.get("categories", ()),
                                       user_id=kw.get("user_id", ""))
                    source, want = fixtures.ref_similar(ds, item, **kw)
                    self.assertEqual(pb.Source.Name(got.source), source)
                    self.assertEqual(got.model_version, ds.version)
                    self.assert_ranked(got.items, want, tol=COSINE_TOL)
                    self.assertNotIn(item, [g.item_id for g in got.items])

    # ---- GetModelInfo ----------------------------------------------------------------

    def test_model_info(self):
        got = self.d.stub_call("GetModelInfo", pb.ModelInfoRequest(), pb.ModelInfo)
        ds = self.ds
        self.assertEqual(got.model_version, ds.version)
        self.assertEqual(got.created_at_unix, ds.created_at)
        self.assertGreaterEqual(got.loaded_at_unix, self.started - 1)
        self.assertLessEqual(got.loaded_at_unix, int(time.time()) + 1)
        self.assertEqual(got.dimension, ds.dim)
        self.assertEqual(got.user_count, len(ds.user_ids))
        self.assertEqual(got.item_count, len(ds.item_ids))
        self.assertEqual(got.element_type, "f32")
        self.assertEqual(got.path, ds.path)
        inspect = fixtures.run_tool("inspect", ds.path)
        self.assertEqual(inspect.returncode, 0, inspect.stderr)
        self.assertEqual(got.checksum, fixtures.parse_fields(inspect.stdout)["checksum"])
        # And the checksum as the file holds it, decoded from the spec alone.
        self.assertEqual(got.checksum, "%016x" % fixtures.read_model(ds.path)["checksum"])

    # ---- health ------------------------------------------------------------------------

    def test_health(self):
        self.assertEqual(self.d.health(""), "SERVING")
        self.assertEqual(self.d.health("recsys.v1.Recommender"), "SERVING")
        with self.assertRaises(grpc.RpcError) as cm:
            self.d.health("some.other.Service")
        self.assertEqual(cm.exception.code(), grpc.StatusCode.NOT_FOUND)

    def test_concurrent_clients_get_correct_answers(self):
        # 8 channels (8 connections) x 25 calls each, all at once.
        users = self.ds.user_ids[:25]
        want = {u: fixtures.ref_recommend(self.ds, u, count=5)[1] for u in users}
        futures = []
        for _ in range(8):
            rpc = self.d.rpc("Recommend", pb.RecommendResponse, channel=self.d.channel())
            futures += [(u, rpc.future(pb.RecommendRequest(user_id=u, count=5), timeout=30))
                        for u in users]
        for u, f in futures:
            self.assert_ranked(f.result().items, want[u])


class BiasModelTest(unittest.TestCase):
    """A model with an item bias column: the user side holds 1.0 for it."""

    def test_recommend_and_similar_with_bias(self):
        tmp = tempfile.mkdtemp(prefix="recsys-test-")
        try:
            ds = fixtures.make_model(tmp, users=50, items=120, dim=8, seed=5, bias=True,
                                     version="bias-1")
            with Daemon(ds.path, threads=1) as d:
                info = d.stub_call("GetModelInfo", pb.ModelInfoRequest(), pb.ModelInfo)
                self.assertEqual(info.dimension, 9)
                for user in ds.user_ids[:5]:
                    got = d.stub_call("Recommend", pb.RecommendRequest(user_id=user, count=10),
                                      pb.RecommendResponse)
                    _, want = fixtures.ref_recommend(ds, user, count=10)
                    self.assertEqual([(g.item_id, g.score) for g in got.items], want)
                got = d.stub_call("SimilarItems", pb.SimilarItemsRequest(item_id=ds.item_ids[7]),
                                  pb.RecommendResponse)
                _, want = fixtures.ref_similar(ds, ds.item_ids[7])
                self.assertEqual([g.item_id for g in got.items], [w[0] for w in want])
        finally:
            shutil.rmtree(tmp)


if __name__ == "__main__":
    unittest.main()
