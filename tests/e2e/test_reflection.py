"""End-to-end tests of gRPC server reflection (what grpcurl and ghz use to
call the daemon without .proto files), through python3-grpcio's streams.

The descriptors the daemon returns are checked against the ones protoc
generated for the tests' Python modules from the same .proto files, and are
then used the way grpcurl uses them: a request class is built from them
alone and a real Recommend call made with it.
"""

import unittest

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

import fixtures
from daemon import Daemon, ServedModelTest, load_grpc_pb2
from recsys.v1 import recommender_pb2 as pb

V1 = load_grpc_pb2("reflection/v1/reflection_pb2.py")
V1ALPHA = load_grpc_pb2("reflection/v1alpha/reflection_pb2.py")
HEALTH = load_grpc_pb2("health/v1/health_pb2.py")
SERVICES = {"recsys.v1.Recommender", "grpc.health.v1.Health",
            "grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection"}
NOT_FOUND, INVALID_ARGUMENT = 5, 3


def without_json_names(fdp):
    """@fdp without its fields' json_name: protoc fills it in descriptor sets
    (which the daemon serves) and not in the Python modules' copies."""
    def strip(messages):
        for m in messages:
            for f in m.field:
                f.ClearField("json_name")
            strip(m.nested_type)
    strip(fdp.message_type)
    return fdp


def file_proto(module):
    """The FileDescriptorProto protoc generated for a Python module."""
    return descriptor_pb2.FileDescriptorProto.FromString(module.DESCRIPTOR.serialized_pb)


class ReflectionTest(ServedModelTest):
    MODEL = dict(users=50, items=80, dim=8, seed=4, version="reflect-1")
    DAEMON = dict(threads=2, metrics=True)

    def ask(self, requests, api=V1, timeout=30, daemon=None):
        """Send requests on one reflection stream (to daemon, else the
        shared one); the responses."""
        package = "grpc.reflection.v1" if api is V1 else "grpc.reflection.v1alpha"
        stream = (daemon or self.d).channel().stream_stream(
            "/%s.ServerReflection/ServerReflectionInfo" % package,
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=api.ServerReflectionResponse.FromString)
        return list(stream(iter(requests), timeout=timeout))

    def files(self, response):
        self.assertEqual(response.WhichOneof("message_response"), "file_descriptor_response",
                         response)
        return [descriptor_pb2.FileDescriptorProto.FromString(b)
                for b in response.file_descriptor_response.file_descriptor_proto]

    def test_lists_every_service_in_both_versions(self):
        for api in (V1, V1ALPHA):
            req = api.ServerReflectionRequest(host="h.example", list_services="")
            (resp,) = self.ask([req], api)
            self.assertEqual(resp.valid_host, "h.example")
            self.assertEqual(resp.original_request, req)
            names = [s.name for s in resp.list_services_response.service]
            self.assertEqual(sorted(names), sorted(SERVICES))

    def test_files_by_symbol_and_name_are_protocs_own(self):
        want = file_proto(pb)
        health = file_proto(HEALTH)
        cases = [
            V1.ServerReflectionRequest(file_containing_symbol="recsys.v1.Recommender"),
            V1.ServerReflectionRequest(file_containing_symbol="recsys.v1.Recommender.Recommend"),
            V1.ServerReflectionRequest(file_containing_symbol="recsys.v1.RecommendRequest"),
            V1.ServerReflectionRequest(file_containing_symbol=".recsys.v1.ScoredItem"),
            V1.ServerReflectionRequest(file_containing_symbol="recsys.v1.Reason"),
            V1.ServerReflectionRequest(file_by_filename="recsys/v1/recommender.proto"),
        ]
        responses = self.ask(cases)  # one stream, answered in order
        self.assertEqual(len(responses), len(cases))
        for req, resp in zip(cases, responses):
            self.assertEqual(resp.original_request, req)
            self.assertEqual([without_json_names(f) for f in self.files(resp)], [want], req)
        (resp,) = self.ask([V1.ServerReflectionRequest(
            file_containing_symbol="grpc.health.v1.HealthCheckResponse.ServingStatus")])
        self.assertEqual([without_json_names(f) for f in self.files(resp)], [health])

    def test_errors_answer_and_the_stream_goes_on(self):
        cases = [
            V1.ServerReflectionRequest(file_containing_symbol="recsys.v1.Nope"),
            V1.ServerReflectionRequest(file_by_filename="nope.proto"),
            V1.ServerReflectionRequest(host="only-a-host"),
            V1.ServerReflectionRequest(all_extension_numbers_of_type="recsys.v1.Nope"),
            V1.ServerReflectionRequest(file_containing_extension=V1.ExtensionRequest(
                containing_type="recsys.v1.RecommendRequest", extension_number=100)),
            V1.ServerReflectionRequest(all_extension_numbers_of_type="recsys.v1.RecommendRequest"),
            V1.ServerReflectionRequest(list_services=""),
        ]
        r = self.ask(cases)
        self.assertEqual(len(r), len(cases))
        for resp, code, text in ((r[0], NOT_FOUND, "recsys.v1.Nope"),
                                 (r[1], NOT_FOUND, "nope.proto"),
                                 (r[2], INVALID_ARGUMENT, ""),
                                 (r[3], NOT_FOUND, "recsys.v1.Nope"),
                                 (r[4], NOT_FOUND, "recsys.v1.RecommendRequest")):
            self.assertEqual(resp.WhichOneof("message_response"), "error_response", resp)
            self.assertEqual(resp.error_response.error_code, code)
            self.assertIn(text, resp.error_response.error_message)
        self.assertEqual(r[5].all_extension_numbers_response.base_type_name,
                         "recsys.v1.RecommendRequest")
        self.assertEqual(list(r[5].all_extension_numbers_response.extension_number), [])
        self.assertEqual(len(r[6].list_services_response.service), len(SERVICES))

    def test_a_client_built_from_reflection_alone_calls_recommend(self):
        (resp,) = self.ask([V1.ServerReflectionRequest(
            file_containing_symbol="recsys.v1.Recommender")])
        pool = descriptor_pool.DescriptorPool()
        for fdp in self.files(resp):
            pool.Add(fdp)
        method = pool.FindServiceByName("recsys.v1.Recommender").FindMethodByName("Recommend")
        factory = message_factory.MessageFactory(pool)
        Request = factory.GetPrototype(method.input_type)
        Response = factory.GetPrototype(method.output_type)
        user = self.ds.user_ids[2]
        call = self.d.channel().unary_unary("/recsys.v1.Recommender/Recommend",
                                            request_serializer=lambda m: m.SerializeToString(),
                                            response_deserializer=Response.FromString)
        got = call(Request(user_id=user, count=5), timeout=10)
        source, want = fixtures.ref_recommend(self.ds, user, count=5)
        self.assertEqual([(i.item_id, i.score) for i in got.items], want)
        self.assertEqual(got.model_version, "reflect-1")

    def test_streams_are_counted_once_each(self):
        # A daemon of its own: a call is counted a moment after its client
        # has the answer, so the shared one's last streams could land late.
        count = lambda m: sum(v for l, v in m.select("grpc_server_handled_total",
                                                     grpc_type="bidi_stream"))
        with Daemon(self.ds.path, threads=2, metrics=True) as d:
            for _ in range(3):
                self.ask([V1.ServerReflectionRequest(list_services="")] * 4, daemon=d)
            m = d.await_scrape(lambda m: count(m) >= 3)
            self.assertEqual(count(m), 3)
            self.assertEqual(m.value("grpc_server_handled_total", grpc_type="bidi_stream",
                                     grpc_service="grpc.reflection.v1.ServerReflection",
                                     grpc_code="OK"), 3)

    def test_a_long_stream_of_requests(self):
        reqs = [V1.ServerReflectionRequest(file_containing_symbol=s)
                for s in ("recsys.v1.ModelInfo", "grpc.health.v1.Health") * 100]
        responses = self.ask(reqs)
        self.assertEqual([r.original_request.file_containing_symbol for r in responses],
                         [q.file_containing_symbol for q in reqs])
        self.assertEqual(self.d.health(), "SERVING")

    def test_an_abandoned_stream_does_not_disturb_the_daemon(self):
        stream = self.d.channel().stream_stream(
            "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=V1.ServerReflectionResponse.FromString)
        call = stream(iter([V1.ServerReflectionRequest(list_services="")] * 2), timeout=30)
        next(call)
        call.cancel()
        with self.assertRaises(grpc.RpcError) as cm:
            list(call)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.CANCELLED)
        self.assertEqual(self.d.info().model_version, "reflect-1")


if __name__ == "__main__":
    unittest.main()
