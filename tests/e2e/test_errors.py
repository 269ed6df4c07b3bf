"""End-to-end tests of every error a client can get, and that none of them
changes what the daemon serves: after each failing call, a good call must
still return the reference answer.
"""

import os
import shutil
import tempfile
import unittest

import grpc

import fixtures
from daemon import Daemon, health_pb2
from recsys.v1 import recommender_pb2 as pb

INVALID = grpc.StatusCode.INVALID_ARGUMENT
RAW = dict(request_serializer=lambda b: b)  # send bytes exactly as given


def ids(n, prefix="x"):
    return ["%s%d" % (prefix, i) for i in range(n)]


class ServingErrorsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="recsys-test-")
        cls.ds = fixtures.make_model(cls.tmp, users=100, items=150, dim=8, seed=21,
                                     version="errors-1")
        cls.daemon = Daemon(cls.ds.path, threads=2)
        cls.d = cls.daemon.__enter__()

    @classmethod
    def tearDownClass(cls):
        cls.daemon.__exit__(None, None, None)
        shutil.rmtree(cls.tmp)

    def assert_still_serving(self):
        user = self.ds.user_ids[1]
        got = self.d.stub_call("Recommend", pb.RecommendRequest(user_id=user, count=5),
                               pb.RecommendResponse)
        _, want = fixtures.ref_recommend(self.ds, user, count=5)
        self.assertEqual([(g.item_id, g.score) for g in got.items], want)
        self.assertEqual(got.model_version, self.ds.version)

    def assert_fails(self, call, code, details=None):
        with self.assertRaises(grpc.RpcError) as cm:
            call()
        err = cm.exception
        self.assertEqual(err.code(), code, err.details())
        if details is not None:
            self.assertRegex(err.details(), details)
        self.assert_still_serving()

    def call(self, method, request, response_cls=pb.RecommendResponse):
        return lambda: self.d.stub_call(method, request, response_cls)

    # ---- requests the queries refuse -------------------------------------------

    def test_invalid_requests(self):
        ds = self.ds
        user, item = ds.user_ids[0], ds.item_ids[0]
        long_id = "u" * 257
        cases = [
            ("Recommend", pb.RecommendRequest(user_id=""), "user_id is empty"),
            ("Recommend", pb.RecommendRequest(user_id=user, count=1001), "count 1001"),
            ("Recommend", pb.RecommendRequest(user_id=long_id), "257 bytes"),
            ("Recommend", pb.RecommendRequest(user_id=user, exclude_item_ids=ids(1001)),
             "exclude_item_ids has 1001 entries"),
            ("Recommend", pb.RecommendRequest(user_id=user, owned_item_ids=ids(1001)),
             "owned_item_ids has 1001 entries"),
            ("Recommend", pb.RecommendRequest(user_id=user, categories=ids(65, "c")),
             "categories has 65 entries"),
            ("CheckEligibility", pb.EligibilityRequest(user_id=user), "item_ids is empty"),
            ("CheckEligibility", pb.EligibilityRequest(user_id=user, item_ids=ids(1001)),
             "item_ids has 1001 entries"),
            ("CheckEligibility", pb.EligibilityRequest(user_id="", item_ids=[item]),
             "user_id is empty"),
            ("CheckEligibility", pb.EligibilityRequest(user_id=user, item_ids=[item],
                                                       owned_item_ids=ids(1001)),
             "owned_item_ids"),
            ("SimilarItems", pb.SimilarItemsRequest(item_id=""), "item_id is empty"),
            ("SimilarItems", pb.SimilarItemsRequest(item_id=item, count=1001), "count 1001"),
            ("SimilarItems", pb.SimilarItemsRequest(item_id=item, exclude_item_ids=ids(1001)),
             "exclude_item_ids has 1001 entries"),
        ]
        responses = {"CheckEligibility": pb.EligibilityResponse}
        for method, request, details in cases:
            with self.subTest(method=method, details=details):
                self.assert_fails(
                    self.call(method, request, responses.get(method, pb.RecommendResponse)),
                    INVALID, details)

    def test_limits_themselves_are_accepted(self):
        ds = self.ds
        user, item = ds.user_ids[0], ds.item_ids[0]
        r = self.d.stub_call("Recommend", pb.RecommendRequest(
            user_id=user, count=1000, exclude_item_ids=ids(1000), owned_item_ids=ids(1000),
            categories=ids(61, "c") + ds.categories), pb.RecommendResponse)
        _, want = fixtures.ref_recommend(ds, user, count=1000)
        self.assertEqual([g.item_id for g in r.items], [w[0] for w in want])
        r = self.d.stub_call("CheckEligibility", pb.EligibilityRequest(
            user_id=user, item_ids=ids(999) + [item], owned_item_ids=ids(1000)),
            pb.EligibilityResponse)
        self.assertEqual(len(r.results), 1000)
        self.assertEqual(r.results[-1].item_id, item)
        r = self.d.stub_call("SimilarItems", pb.SimilarItemsRequest(
            item_id=item, count=1000, exclude_item_ids=ids(1000)), pb.RecommendResponse)
        self.assertEqual(len(r.items), len(fixtures.ref_similar(ds, item, count=1000)[1]))
        # The longest legal request of all: every id field full of 256-byte ids.
        big = lambda p: ["%s%0255d" % (p, i) for i in range(1000)]  # noqa: E731
        r = self.d.stub_call("Recommend", pb.RecommendRequest(
            user_id="u" * 256, exclude_item_ids=big("x"), owned_item_ids=big("o"),
            categories=["c%0255d" % i for i in range(64)]), pb.RecommendResponse)
        self.assertEqual(r.source, pb.POPULAR)

    def test_unknown_item_in_similar_items_is_not_found(self):
        self.assert_fails(self.call("SimilarItems", pb.SimilarItemsRequest(item_id="no-such")),
                          grpc.StatusCode.NOT_FOUND, "no-such")

    # ---- requests the service refuses before any query ---------------------------

    def test_undecodable_requests(self):
        cases = [
            ("Recommend", b"\xff\xff\xff\xff", "recsys.v1.RecommendRequest"),
            # Field 1 (user_id, a string) sent as a varint: the wrong wire type.
            ("Recommend", b"\x08\x01", "recsys.v1.RecommendRequest"),
            # A length that runs past the end of the message.
            ("CheckEligibility", b"\x0a\x10abc", "recsys.v1.EligibilityRequest"),
            ("SimilarItems", b"\x12", "recsys.v1.SimilarItemsRequest"),
            ("GetModelInfo", b"\x0f", "recsys.v1.ModelInfoRequest"),
            ("/grpc.health.v1.Health/Check", b"\xff", "grpc.health.v1.HealthCheckRequest"),
        ]
        for method, raw, name in cases:
            with self.subTest(method=method, raw=raw):
                rpc = self.d.rpc(method, pb.RecommendResponse, **RAW)
                self.assert_fails(lambda: rpc(raw, timeout=5), INVALID,
                                  "request is not a valid %s" % name)

    def test_request_over_the_method_limit(self):
        # Larger than any Recommend the query limits allow (a 600 kB user id),
        # yet under --max-request-bytes: refused by the method's own limit.
        request = pb.RecommendRequest(user_id="u" * 600_000)
        self.assert_fails(self.call("Recommend", request), INVALID,
                          r"request of \d+ bytes exceeds the \d+-byte limit of "
                          r"recsys\.v1\.RecommendRequest")
        self.assert_fails(lambda: self.d.stub_call(
            "GetModelInfo", pb.RecommendRequest(user_id="u" * 100), pb.ModelInfo),
            INVALID, "limit of recsys.v1.ModelInfoRequest")

    def test_request_over_max_request_bytes(self):
        # Over the 4 MiB default: the gRPC core refuses it before the service.
        request = pb.EligibilityRequest(user_id="u", item_ids=["i" * 5000] * 1000)
        self.assertGreater(request.ByteSize(), 4 << 20)
        self.assert_fails(self.call("CheckEligibility", request, pb.EligibilityResponse),
                          grpc.StatusCode.RESOURCE_EXHAUSTED)

    def test_unknown_methods_are_unimplemented(self):
        for path in ("/recsys.v1.Recommender/Recommends", "/recsys.v2.Recommender/Recommend",
                     "/grpc.health.v1.Health/Watch", "/x/y"):
            with self.subTest(path=path):
                rpc = self.d.rpc(path, pb.RecommendResponse)
                self.assert_fails(lambda: rpc(pb.RecommendRequest(user_id="u"), timeout=5),
                                  grpc.StatusCode.UNIMPLEMENTED)

    def test_health_of_an_unknown_service_is_not_found(self):
        rpc = self.d.rpc("/grpc.health.v1.Health/Check", health_pb2.HealthCheckResponse)
        self.assert_fails(lambda: rpc(health_pb2.HealthCheckRequest(service="recsys.v2.X"),
                                      timeout=5),
                          grpc.StatusCode.NOT_FOUND, "recsys.v2.X")


class NoModelTest(unittest.TestCase):
    """A daemon whose model cannot be loaded keeps running and says so."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="recsys-test-")

    def tearDown(self):
        shutil.rmtree(self.tmp)

    def assert_unavailable(self, d):
        self.assertEqual(d.health(""), "NOT_SERVING")
        self.assertEqual(d.health("recsys.v1.Recommender"), "NOT_SERVING")
        calls = [
            ("Recommend", pb.RecommendRequest(user_id="u1"), pb.RecommendResponse),
            ("CheckEligibility", pb.EligibilityRequest(user_id="u1", item_ids=["i"]),
             pb.EligibilityResponse),
            ("SimilarItems", pb.SimilarItemsRequest(item_id="i"), pb.RecommendResponse),
        ]
        for method, request, response_cls in calls:
            with self.subTest(method=method):
                with self.assertRaises(grpc.RpcError) as cm:
                    d.stub_call(method, request, response_cls)
                self.assertEqual(cm.exception.code(), grpc.StatusCode.UNAVAILABLE)
                self.assertEqual(cm.exception.details(), "no model loaded")
        # GetModelInfo still answers: no model, and why (recommender.proto).
        info = d.stub_call("GetModelInfo", pb.ModelInfoRequest(), pb.ModelInfo)
        self.assertEqual((info.model_version, info.item_count), ("", 0))
        self.assertEqual((info.reload_count, info.failed_reload_count), (0, 1))
        self.assertNotEqual(info.last_reload_error, "")
        # A bad request is still a bad request.
        rpc = d.rpc("Recommend", pb.RecommendResponse, **RAW)
        with self.assertRaises(grpc.RpcError) as cm:
            rpc(b"\xff", timeout=5)
        self.assertEqual(cm.exception.code(), INVALID)

    def assert_load_failure_logged(self, d, path):
        """The log names the file and the reason, which must be the one
        `recsys-model verify` gives for the same file ("<path>: <reason>");
        GetModelInfo reports the same reason."""
        verify = fixtures.run_tool("verify", path)
        self.assertNotEqual(verify.returncode, 0)
        reason = verify.stderr.strip().split("recsys-model: %s: " % path, 1)[-1]
        self.assertTrue(reason)
        self.assertIn("failed to load model %s (%s)" % (path, reason), d.log())
        info = d.stub_call("GetModelInfo", pb.ModelInfoRequest(), pb.ModelInfo)
        self.assertEqual(info.last_reload_error, reason)

    def test_missing_model_file(self):
        path = os.path.join(self.tmp, "missing.lmdb")
        with Daemon(path, threads=1) as d:
            self.assert_unavailable(d)
            self.assertIn("failed to load model %s (" % path, d.log())
            self.assertIn("No such file or directory", d.log())

    def test_garbage_model_file(self):
        path = os.path.join(self.tmp, "garbage.lmdb")
        with open(path, "wb") as f:
            f.write(os.urandom(8192))
        with Daemon(path, threads=1) as d:
            self.assert_unavailable(d)
            self.assert_load_failure_logged(d, path)

    def test_truncated_model_file(self):
        ds = fixtures.make_model(self.tmp, users=20, items=40, dim=4, seed=2)
        with open(ds.path, "rb") as f:
            data = f.read()
        path = os.path.join(self.tmp, "truncated.lmdb")
        with open(path, "wb") as f:
            f.write(data[:len(data) // 2])
        with Daemon(path, threads=1) as d:
            self.assert_unavailable(d)
            self.assert_load_failure_logged(d, path)


if __name__ == "__main__":
    unittest.main()
