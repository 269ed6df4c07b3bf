"""One recorded purchase makes a personal list out of the demo's planted
taste structure.

`recsys-model demo` plants topics (tools/recsys-model/demo.c,
tools/lib/demo_factors.c): each item has a main topic t1 and a side topic
t2, and its vector is appeal * (w * centroid[t1] + (1 - w) * centroid[t2])
plus a little noise, with w in [0.6, 1.0). Neither the ids nor any file
the demo writes name the topics, so this test replays the demo's item
stream here (xoshiro256** seeded through splitmix64, the same draws in the
same order) and gets each item's id, on-sale flag, topics and vector. The
replay is checked against the model file itself (ids and vectors, read
with fixtures.read_model from the format spec), never against the daemon,
so the planted topics are known independently of anything the daemon says.

Then a brand-new user records ONE purchase of an item that is almost all
its main topic (w >= 0.9), and Recommend must be FOLDED_IN, differ from the
popularity list, and be mostly that topic's items: at least 8 of the top
10. Why 8: the demo has 12 topics and ~500 items per main topic, far more
than 10, all at least 60% the same centroid; items of other main topics
reach it only through their side topic (at most 40%) or through noise. A
list that ignored the purchase would hold about 10/12 of them: the test
checks that the popularity list is far below the threshold, so the
threshold can fail.
"""

import os
import unittest

import numpy as np

import fixtures
from daemon import TempDaemonTest
from recsys.v1 import recommender_pb2 as pb

# The demo's arguments (its defaults, spelt out: the replay depends on them).
SEED, USERS, ITEMS, DIM = 1, 30000, 6000, 32
TOP = 10
SAME_TOPIC_MIN = 8  # of TOP; see the docstring

# ---- the demo's item stream, replayed ----------------------------------------

M64 = (1 << 64) - 1
# demo.c's categories: name, share per mille, price min, max, step (cents).
CATEGORIES = [("course", 300, 2900, 29900, 1000), ("ebook", 250, 499, 2999, 100),
              ("audiobook", 200, 999, 3999, 100), ("workshop", 100, 4900, 19900, 1000),
              ("consultation", 80, 5000, 50000, 2500), ("bundle", 70, 9900, 49900, 5000)]
ITEM_TIER_SHARE = [830, 120, 50]
OFF_SALE_PER_MILLE = 80
STREAM_TOPICS, STREAM_ITEMS = 1, 2
TOPICS_MAX = 12


def splitmix64(x):
    """(next state, value) of splitmix64 at state x."""
    x = (x + 0x9e3779b97f4a7c15) & M64
    z = ((x ^ (x >> 30)) * 0xbf58476d1ce4e5b9) & M64
    z = ((z ^ (z >> 27)) * 0x94d049bb133111eb) & M64
    return x, z ^ (z >> 31)


def rotl(x, k):
    return ((x << k) | (x >> (64 - k))) & M64


class Rng:
    """demo_factors_rng: xoshiro256**, stream `stream` of `seed`."""

    def __init__(self, seed, stream):
        x = (seed ^ (stream * 0xd1b54a32d192ed03)) & M64
        self.s = []
        for _ in range(4):
            x, v = splitmix64(x)
            self.s.append(v)

    def next(self):
        s0, s1, s2, s3 = self.s
        result = (rotl((s1 * 5) & M64, 7) * 9) & M64
        t = (s1 << 17) & M64
        s2 ^= s0
        s3 ^= s1
        s1 ^= s2
        s0 ^= s3
        s2 ^= t
        self.s = [s0, s1, s2, rotl(s3, 45)]
        return result

    def below(self, n):
        return ((self.next() >> 32) * n) >> 32

    def unit(self):
        return (self.next() >> 11) * 2.0 ** -53

    def normal(self):
        total = 0.0
        for _ in range(12):
            total += self.unit()
        return total - 6.0

    def pick(self, shares):
        x = self.below(sum(shares))
        for i, share in enumerate(shares):
            if x < share:
                return i
            x -= share
        return len(shares) - 1


class Planted:
    """The demo's items as it drew them: ids, on_sale, main and side topic,
    main-topic weight w, appeal, and vectors V (float32)."""

    def __init__(self, seed, items, dim):
        r = Rng(seed, STREAM_TOPICS)
        self.topics = min(max(dim // 2, 1), TOPICS_MAX)
        scale = 2.0 / dim ** 0.5
        c = [r.normal() * scale for _ in range(self.topics * dim)]
        r = Rng(seed, STREAM_ITEMS)
        per_category = [0] * len(CATEGORIES)
        noise = 0.15 / dim ** 0.5
        self.ids, self.on_sale, self.topic, self.side, self.w, self.appeal = [], [], [], [], [], []
        self.V = np.zeros((items, dim), np.float32)
        for i in range(items):
            k = r.pick([cat[1] for cat in CATEGORIES])
            name, _, lo, hi, step = CATEGORIES[k]
            per_category[k] += 1
            self.ids.append("%s-%05d" % (name, per_category[k]))
            r.below((hi - lo) // step + 1)  # the price
            self.on_sale.append(r.below(1000) >= OFF_SALE_PER_MILLE)
            r.pick(ITEM_TIER_SHARE)  # the membership tier
            t1, t2 = r.below(self.topics), r.below(self.topics)
            w = 0.6 + 0.4 * r.unit()
            appeal = 0.5 + r.unit()
            for j in range(dim):
                mix = w * c[t1 * dim + j] + (1 - w) * c[t2 * dim + j]
                self.V[i, j] = appeal * mix + noise * r.normal()
            self.topic.append(t1)
            self.side.append(t2)
            self.w.append(w)
            self.appeal.append(appeal)
        self.index = {iid: i for i, iid in enumerate(self.ids)}


# ---- the test -------------------------------------------------------------------

class DemoFoldInTest(TempDaemonTest):

    @classmethod
    def prepare(cls, tmp):
        cls.path = os.path.join(tmp, "model.lmdb")
        p = fixtures.run_tool("demo", "-o", cls.path, "--seed", SEED, "--users", USERS, "--items",
                              ITEMS, "--dim", DIM)
        if p.returncode != 0:
            raise AssertionError("recsys-model demo failed: %s" % p.stderr)
        cls.planted = Planted(SEED, ITEMS, DIM)
        return cls.path, dict(threads=2, args=["--state-dir", os.path.join(tmp, "state")])

    def recommend(self, user):
        r = self.d.stub_call("Recommend", pb.RecommendRequest(user_id=user, count=TOP),
                             pb.RecommendResponse)
        return pb.Source.Name(r.source), [x.item_id for x in r.items]

    def same_topic(self, items, topic):
        return sum(self.planted.topic[self.planted.index[i]] == topic for i in items)

    def test_replay_matches_the_model_file(self):
        # The ids come from per-category counters and the vectors from the
        # last draws of each item: a replay out of step would differ in both.
        model = fixtures.read_model(self.path)
        self.assertEqual(model["item_ids"], self.planted.ids)
        np.testing.assert_allclose(model["item_matrix"], self.planted.V, rtol=0, atol=1e-6)
        self.assertEqual([bool(x) for x in model["attrs"]["on_sale"]], self.planted.on_sale)

    def test_one_purchase_gives_its_topic(self):
        planted = self.planted
        # An item on sale that is almost all its main topic, with an appeal
        # that makes it a typical member of it.
        bought = next(i for i in range(ITEMS)
                      if planted.on_sale[i] and planted.w[i] >= 0.9 and planted.appeal[i] >= 1.0)
        item, topic = planted.ids[bought], planted.topic[bought]
        user = "demo-new-visitor"

        source, popular = self.recommend(user)
        self.assertEqual(source, "POPULAR")
        self.assertEqual(len(popular), TOP)
        # The threshold tells a personal list from this one.
        self.assertLess(self.same_topic(popular, topic), SAME_TOPIC_MIN, popular)

        r = self.d.stub_call("RecordEvents", pb.RecordEventsRequest(events=[
            pb.Event(user_id=user, item_id=item, type=pb.PURCHASE)]), pb.RecordEventsResponse)
        self.assertEqual((r.recorded, r.unknown_items), (1, 0))

        source, got = self.recommend(user)
        self.assertEqual(source, "FOLDED_IN")
        self.assertEqual(len(got), TOP)
        self.assertNotIn(item, got)
        self.assertNotEqual(got, popular)
        self.assertGreaterEqual(
            self.same_topic(got, topic), SAME_TOPIC_MIN,
            "bought %s (topic %d); got %s" % (
                item, topic, [(i, planted.topic[planted.index[i]]) for i in got]))


if __name__ == "__main__":
    unittest.main()
