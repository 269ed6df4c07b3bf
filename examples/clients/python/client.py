#!/usr/bin/env python3
"""Call recsysd from Python: one long-lived channel, a deadline on every
call, UNAVAILABLE retried by the channel's service config, keepalive the
daemon accepts, TLS or mutual TLS, and the standard health check.

    python3 client.py --addr 127.0.0.1:50051 --user u000001 --items ITEM... \\
        [--batch USER...] [--tls-ca ca.pem [--tls-cert client.pem --tls-key client.key]]

prints the answers as one JSON object (proto3 JSON, field names as in the
.proto). With --load SECONDS it calls Recommend for --user back to back on
--concurrency threads for that long instead, and prints how many calls
answered and how many failed, by status.
"""

import argparse
import json
import sys
import threading
import time
from collections import Counter

import grpc
from google.protobuf import json_format
from grpc_health.v1 import health_pb2, health_pb2_grpc

from recsys.v1 import recommender_pb2 as pb
from recsys.v1 import recommender_pb2_grpc as pb_grpc

# Reads are safe to try again. UNAVAILABLE means the call did not reach a
# daemon that took it (connection refused, reset, the daemon draining).
# CANCELLED, from the daemon, means it was shutting down: the gRPC C core
# server cancels a call that reaches it in the instant between its shutdown
# and its GOAWAY reaching the client (a call this client cancels itself is
# over, never retried). Retry both, with backoff, within the call's
# deadline. Never retry DEADLINE_EXCEEDED: the caller's time is spent, and
# a retry would only add load to a daemon that is already late. And wait
# for a daemon that is not there yet (restarting), within the deadline,
# rather than fail at once (waitForReady).
SERVICE_CONFIG = {
    "methodConfig": [{
        "name": [{"service": "recsys.v1.Recommender", "method": m}
                 for m in ("Recommend", "BatchRecommend", "CheckEligibility", "SimilarItems",
                           "GetModelInfo")] + [{"service": "grpc.health.v1.Health"}],
        "waitForReady": True,
        "retryPolicy": {
            "maxAttempts": 5,
            "initialBackoff": "0.1s",
            "maxBackoff": "1s",
            "backoffMultiplier": 2,
            "retryableStatusCodes": ["UNAVAILABLE", "CANCELLED"],
        },
    }],
}

CHANNEL_OPTIONS = [
    ("grpc.service_config", json.dumps(SERVICE_CONFIG)),
    ("grpc.enable_retries", 1),
    # recsysd accepts a client's pings every 10 s or more, also between
    # calls; it pings an idle connection itself after 60 s.
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 1),
    # A daemon restarting (a deploy, a node drained) is back within a
    # second or two: try to reconnect that soon, not after gRPC's default
    # 1 s growing to 120 s.
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
]


def channel(args):
    if args.tls_ca is None:
        return grpc.insecure_channel(args.addr, options=CHANNEL_OPTIONS)
    read = lambda path: open(path, "rb").read() if path else None  # noqa: E731
    creds = grpc.ssl_channel_credentials(read(args.tls_ca), read(args.tls_key),
                                         read(args.tls_cert))
    return grpc.secure_channel(args.addr, creds, options=CHANNEL_OPTIONS)


def as_json(message):
    return json_format.MessageToDict(message, preserving_proto_field_name=True,
                                     always_print_fields_with_no_presence=True)


def answers(ch, args):
    deadline = args.deadline_ms / 1000
    health = health_pb2_grpc.HealthStub(ch).Check(
        health_pb2.HealthCheckRequest(service="recsys.v1.Recommender"), timeout=deadline)
    stub = pb_grpc.RecommenderStub(ch)
    rec = stub.Recommend(pb.RecommendRequest(user_id=args.user, count=args.count),
                         timeout=deadline)
    elig = stub.CheckEligibility(pb.EligibilityRequest(user_id=args.user, item_ids=args.items),
                                 timeout=deadline)
    batch = stub.BatchRecommend(pb.BatchRecommendRequest(
        requests=[pb.RecommendRequest(user_id=u, count=args.count) for u in args.batch]),
        timeout=deadline)
    return {
        "health": health_pb2.HealthCheckResponse.ServingStatus.Name(health.status),
        "recommend": as_json(rec),
        "eligibility": as_json(elig),
        "batch": as_json(batch),
    }


def load(ch, args):
    stub = pb_grpc.RecommenderStub(ch)
    req = pb.RecommendRequest(user_id=args.user, count=args.count)
    outcomes = Counter()
    lock = threading.Lock()
    end = time.monotonic() + args.load

    def run():
        while time.monotonic() < end:
            try:
                stub.Recommend(req, timeout=args.deadline_ms / 1000)
                code = "OK"
            except grpc.RpcError as e:
                code = e.code().name
            with lock:
                outcomes[code] += 1

    threads = [threading.Thread(target=run) for _ in range(args.concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {"calls": sum(outcomes.values()), "outcomes": dict(outcomes)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--addr", default="127.0.0.1:50051")
    ap.add_argument("--user", required=True)
    ap.add_argument("--items", nargs="*", default=[])
    ap.add_argument("--batch", nargs="*", default=[])
    ap.add_argument("--count", type=int, default=10)
    ap.add_argument("--deadline-ms", type=int, default=2000)
    ap.add_argument("--tls-ca")
    ap.add_argument("--tls-cert")
    ap.add_argument("--tls-key")
    ap.add_argument("--load", type=float, help="seconds of back-to-back Recommend calls")
    ap.add_argument("--concurrency", type=int, default=4)
    args = ap.parse_args()
    with channel(args) as ch:
        out = load(ch, args) if args.load else answers(ch, args)
    json.dump(out, sys.stdout)
    print()


if __name__ == "__main__":
    main()
