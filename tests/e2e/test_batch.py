"""BatchRecommend through the real daemon with python3-grpcio: every
response equals what Recommend answers alone for the same request (items,
order, float32 scores) and the NumPy reference; the limits give
INVALID_ARGUMENT and the daemon keeps serving. recsys-cli batch-recommend
($RECSYS_CLI) sends one such call and prints its answer.
"""

import json
import os
import shutil
import subprocess
import tempfile
import unittest

import grpc
import numpy as np

import fixtures
from daemon import Daemon, recommender_pb2 as pb


def batch(d, requests, timeout=30):
    return d.stub_call("BatchRecommend", pb.BatchRecommendRequest(requests=requests),
                       pb.BatchRecommendResponse, timeout=timeout)


def random_requests(ds, rng, n):
    out = []
    for _ in range(n):
        user = "visitor-%d" % rng.integers(1000) if rng.random() < 0.15 else \
            ds.user_ids[rng.integers(len(ds.user_ids))]
        kw = dict(user_id=user, count=int(rng.choice([0, 1, 10, 100])))
        if rng.random() < 0.5:
            kw["exclude_item_ids"] = [ds.item_ids[i] for i in rng.integers(len(ds.item_ids), size=5)]
        if rng.random() < 0.5:
            kw["categories"] = list(rng.choice(ds.categories, size=2))
        if rng.random() < 0.5:
            kw["purchasable_only"] = True
        if rng.random() < 0.3:
            kw["owned_item_ids"] = [ds.item_ids[i] for i in rng.integers(len(ds.item_ids), size=5)]
        out.append(pb.RecommendRequest(**kw))
    return out


class BatchTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="recsys-test-")

    def tearDown(self):
        shutil.rmtree(self.tmp)

    def check_batch(self, d, ds, requests, reference):
        resp = batch(d, requests)
        self.assertEqual(len(resp.responses), len(requests))
        for req, got in zip(requests, resp.responses):
            alone = d.stub_call("Recommend", req, pb.RecommendResponse)
            self.assertEqual(got, alone, req.user_id)
            if reference:
                source, want = fixtures.ref_recommend(
                    ds, req.user_id, req.count, exclude=req.exclude_item_ids,
                    categories=req.categories, purchasable_only=req.purchasable_only,
                    owned=req.owned_item_ids)
                self.assertEqual(pb.Source.Name(got.source), source)
                self.assertEqual([(i.item_id, i.score) for i in got.items], want)

    def test_equals_recommend_and_reference(self):
        # Grid factors: exact float32 scores, so NumPy is an exact reference.
        ds = fixtures.make_model(self.tmp, users=120, items=900, dim=24, seed=31, bias=True)
        rng = np.random.default_rng(31)
        with Daemon(ds.path, threads=2) as d:
            for n in (1, 64, 256):
                self.check_batch(d, ds, random_requests(ds, rng, n), reference=True)

    def test_float_factors_split_scan(self):
        # Non-grid factors: sgemm's sums differ from the scan's in the last
        # bits, and the answer must still be Recommend's to the bit. The
        # scans are split over a helper from 1 MB.
        ds = fixtures.make_model(self.tmp, users=80, items=6000, dim=48, seed=32)
        rng = np.random.default_rng(32)
        fixtures.write_npy(ds.files["item_factors"],
                           rng.standard_normal((6000, 48)).astype(np.float32))
        fixtures.write_npy(ds.files["user_factors"],
                           rng.standard_normal((80, 48)).astype(np.float32))
        path = os.path.join(self.tmp, "float.lmdb")
        p = fixtures.run_tool("import", *fixtures.import_args(ds.files), "--model-version", "f1",
                              "--quantize", "bf16,int8", "-o", path)
        self.assertEqual(p.returncode, 0, p.stderr)
        with Daemon(path, threads=2, args=("--scan-threads", "1", "--scan-split-bytes", "1M",
                                           "--scan", "int8")) as d:
            self.check_batch(d, ds, random_requests(ds, rng, 100), reference=False)

    def test_limits(self):
        ds = fixtures.make_model(self.tmp, users=30, items=60, dim=8, seed=33)
        with Daemon(ds.path, threads=2) as d:
            ok = [pb.RecommendRequest(user_id=u) for u in ds.user_ids[:10]]
            with self.assertRaises(grpc.RpcError) as cm:
                batch(d, [pb.RecommendRequest(user_id="x")] * 257)
            self.assertEqual(cm.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
            self.assertIn("requests has 257 entries, more than 256", cm.exception.details())

            bad = list(ok)
            bad[4] = pb.RecommendRequest(user_id=ds.user_ids[4], count=5000)
            with self.assertRaises(grpc.RpcError) as cm:
                batch(d, bad)
            self.assertEqual(cm.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
            self.assertIn("requests[4]: count 5000 exceeds 1000", cm.exception.details())

            self.assertEqual(len(batch(d, []).responses), 0)
            # Still serving, batches and single calls alike.
            self.assertEqual(len(batch(d, ok).responses), 10)
            self.assertEqual(len(d.stub_call("Recommend", ok[0], pb.RecommendResponse).items), 10)

    def test_cli(self):
        ds = fixtures.make_model(self.tmp, users=40, items=300, dim=12, seed=34, bias=True)
        users = ds.user_ids[:5] + ["visitor-1"] + ds.user_ids[5:8]
        with Daemon(ds.path, threads=2) as d:
            cli = [os.environ["RECSYS_CLI"], "--addr", d.addr, "--json", "batch-recommend"]
            p = subprocess.run(cli + users + ["--count", "7", "--category", ds.categories[0],
                                              "--purchasable-only"],
                               capture_output=True, text=True, timeout=60)
            self.assertEqual(p.returncode, 0, p.stderr)
            got = json.loads(p.stdout)["responses"]
            self.assertEqual(len(got), len(users))
            for user, resp in zip(users, got):
                source, want = fixtures.ref_recommend(ds, user, 7, categories=[ds.categories[0]],
                                                      purchasable_only=True)
                self.assertEqual(resp["source"], source, user)
                # Printed with 9 significant digits: float32 round-trips.
                self.assertEqual([(i["item_id"], float(np.float32(i["score"])))
                                  for i in resp.get("items", [])], want, user)

            # For people: a heading line per user, in order, then its table.
            p = subprocess.run([a for a in cli if a != "--json"] + users + ["--count", "2"],
                               capture_output=True, text=True, timeout=60)
            self.assertEqual(p.returncode, 0, p.stderr)
            heads = [line for line in p.stdout.splitlines() if line.startswith("user ")]
            self.assertEqual(heads, ["user %s · model %s · source %s · 2 items" % (
                u, ds.version, fixtures.ref_recommend(ds, u, 2)[0]) for u in users])

            p = subprocess.run(cli + users + ["--count", "5000"], capture_output=True, text=True,
                               timeout=60)
            self.assertEqual(p.returncode, 1)
            self.assertIn("INVALID_ARGUMENT: requests[0]: count 5000 exceeds 1000", p.stderr)


if __name__ == "__main__":
    unittest.main()
