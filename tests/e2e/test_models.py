"""Named models, as a daemon started with --model serves them: its one
model is named "default", which an empty `model` field names too; every
answer says which model gave it (model_name), and a request naming any
other model answers NOT_FOUND naming it, whatever else is wrong with it.
"""

import unittest

import grpc

from daemon import ServedModelTest
from recsys.v1 import recommender_pb2 as pb


class DefaultModelTest(ServedModelTest):
    MODEL = dict(users=40, items=60, dim=8, seed=13, version="named-1")
    DAEMON = dict(threads=2)

    def call(self, method, req, resp):
        return self.d.stub_call(method, req, resp)

    def requests(self, model):
        """One request of each method that takes a model, naming @model."""
        user, item = self.ds.user_ids[1], self.ds.item_ids[2]
        return [
            ("Recommend", pb.RecommendRequest(user_id=user, model=model), pb.RecommendResponse),
            ("SimilarItems", pb.SimilarItemsRequest(item_id=item, model=model),
             pb.RecommendResponse),
            ("CheckEligibility", pb.EligibilityRequest(user_id=user, item_ids=[item],
                                                       model=model), pb.EligibilityResponse),
            ("GetModelInfo", pb.ModelInfoRequest(model=model), pb.ModelInfo),
            ("BatchRecommend", pb.BatchRecommendRequest(
                requests=[pb.RecommendRequest(user_id=user)], model=model),
             pb.BatchRecommendResponse),
        ]

    def names(self, method, resp):
        """The model names an answer carries."""
        if method == "BatchRecommend":
            return [r.model_name for r in resp.responses]
        return [resp.model_name]

    def test_default_and_empty_name_the_one_model(self):
        for model in ("", "default"):
            for method, req, resp_cls in self.requests(model):
                with self.subTest(method=method, model=model):
                    resp = self.call(method, req, resp_cls)
                    self.assertEqual(self.names(method, resp), ["default"])

    def test_another_name_is_not_found_and_named(self):
        for model in ("candidate", "Default", "default "):
            for method, req, resp_cls in self.requests(model):
                with self.subTest(method=method, model=model):
                    with self.assertRaises(grpc.RpcError) as cm:
                        self.call(method, req, resp_cls)
                    self.assertEqual(cm.exception.code(), grpc.StatusCode.NOT_FOUND)
                    self.assertIn("model '%s' not found" % model, cm.exception.details())

    def test_unknown_model_comes_before_other_faults(self):
        # An empty user_id would be INVALID_ARGUMENT: the model is looked at first.
        with self.assertRaises(grpc.RpcError) as cm:
            self.call("Recommend", pb.RecommendRequest(user_id="", model="candidate"),
                      pb.RecommendResponse)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.NOT_FOUND)

    def test_batch_request_naming_another_model_is_named(self):
        req = pb.BatchRecommendRequest(requests=[
            pb.RecommendRequest(user_id=self.ds.user_ids[0]),
            pb.RecommendRequest(user_id=self.ds.user_ids[1], model="candidate")])
        with self.assertRaises(grpc.RpcError) as cm:
            self.call("BatchRecommend", req, pb.BatchRecommendResponse)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.NOT_FOUND)
        self.assertIn("requests[1]: model 'candidate' not found", cm.exception.details())

    def test_too_long_a_name_is_invalid(self):
        with self.assertRaises(grpc.RpcError) as cm:
            self.call("Recommend", pb.RecommendRequest(user_id="u", model="m" * 257),
                      pb.RecommendResponse)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
        self.assertIn("model", cm.exception.details())


if __name__ == "__main__":
    unittest.main()
