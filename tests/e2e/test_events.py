"""End-to-end tests of live events: RecordEvents and ForgetUser against a
real daemon with a state directory, through Python's gRPC client.

What a recorded event must change is computed here from the dataset that
went into the model (tests/lib/fixtures.py) and the events the test sent:
ownership by replaying them in time order, and the folded-in vector by the
implicit-ALS normal equations solved with NumPy in float64, never from the
daemon's own output.
"""

import os
import signal
import subprocess
import tempfile
import time
import unittest

import grpc
import numpy as np

import fixtures
from daemon import Daemon, TempDaemonTest
from recsys.v1 import recommender_pb2 as pb

# The model's training record: the fixtures' import writes none, so the
# daemon uses the documented defaults (model/model.h, FORMAT.md).
LAMBDA = 0.05
ALPHA = 20.0
VIEW_WEIGHT = 0.25
SCORE_TOL = 1e-4  # relative: float32 scores of a vector solved in double


def event(user, item, kind="PURCHASE", weight=0.0, ts=0):
    return pb.Event(user_id=user, item_id=item, type=pb.EventType.Value(kind), weight=weight,
                    timestamp_unix_ms=ts)


def fold_in(ds, interactions):
    """x = (YtY + lambda I + sum alpha w y y^T)^-1 sum (1 + alpha w) y over the
    user's items, in float64: the rule FORMAT.md and als.h give."""
    Y = ds.V.astype(np.float64)
    A = Y.T @ Y + LAMBDA * np.eye(Y.shape[1])
    b = np.zeros(Y.shape[1])
    for i, w in interactions.items():
        y = Y[i]
        A += ALPHA * w * np.outer(y, y)
        b += (1 + ALPHA * w) * y
    return np.linalg.solve(A, b)


def replay(ds, user, events):
    """(owned item ids, {item index: weight}) after @events (in time order)
    over the model's record of @user."""
    owned = set(ds.owned.get(user, ()))
    purchase = {ds.item_index[i]: 1.0 for i in owned}
    view = {}
    for e in sorted(events, key=lambda e: e[3]):
        item, kind, weight = e[0], e[1], e[2]
        if item not in ds.item_index:
            continue
        i = ds.item_index[item]
        if kind == "PURCHASE":
            owned.add(item)
            purchase[i] = purchase.get(i, 0.0) + (weight or 1.0)
        elif kind == "REFUND":
            owned.discard(item)
            purchase[i] = 0.0
        else:
            view[i] = view.get(i, 0.0) + (weight or VIEW_WEIGHT)
    weights = {}
    for i in set(purchase) | set(view):
        w = purchase.get(i, 0.0) + view.get(i, 0.0)
        if w > 0:
            weights[i] = w
    return owned, weights


def reasons(d, user, items):
    """CheckEligibility's reason for each of @items, for @user, by name."""
    r = d.stub_call("CheckEligibility", pb.EligibilityRequest(user_id=user, item_ids=items),
                    pb.EligibilityResponse)
    return [pb.Reason.Name(x.reason) for x in r.results]


def plain_model(tmp, users, items, seed):
    """A small model in which every item is on sale, nobody owns anything
    and no membership includes anything: what an event changes is all
    there is to see."""
    return fixtures.make_model(tmp, users=users, items=items, dim=8, seed=seed, tiers=False,
                               owned_per_user=(0, 0), off_sale_share=0.0)


class EventsTest(TempDaemonTest):
    @classmethod
    def prepare(cls, tmp):
        cls.ds = fixtures.make_model(tmp, users=120, items=300, dim=16, seed=23,
                                     version="events-1")
        cls.state = os.path.join(tmp, "state")
        return cls.ds.path, dict(threads=2, metrics=True, args=["--state-dir", cls.state])

    def record(self, events):
        return self.d.stub_call("RecordEvents", pb.RecordEventsRequest(events=events),
                                pb.RecordEventsResponse)

    def recommend(self, user, count=10):
        return self.d.stub_call("Recommend", pb.RecommendRequest(user_id=user, count=count),
                                pb.RecommendResponse)

    def reasons(self, user, items):
        return reasons(self.d, user, items)

    def purchasable(self, user, skip=()):
        """An item on sale, not owned, not in the user's membership."""
        tier = self.ds.user_tier.get(user, 0)
        for i, iid in enumerate(self.ds.item_ids):
            if (self.ds.on_sale[i] and iid not in self.ds.owned.get(user, ()) and iid not in skip
                    and not (self.ds.item_tier[i] > 0 and tier >= self.ds.item_tier[i])):
                return iid
        raise AssertionError("no purchasable item")

    def check_folded(self, user, events, count=10):
        """Recommend for @user equals the NumPy fold-in's top @count."""
        owned, weights = replay(self.ds, user, events)
        x = fold_in(self.ds, weights)
        scores = self.ds.V.astype(np.float64) @ x
        keep = [i for i in range(len(self.ds.item_ids))
                if self.ds.on_sale[i] and self.ds.item_ids[i] not in owned]
        keep.sort(key=lambda i: (-scores[i], i))
        r = self.recommend(user, count)
        self.assertEqual(pb.Source.Name(r.source), "FOLDED_IN")
        self.assertEqual(len(r.items), count)
        scale = max(abs(scores[keep[0]]), 1e-6)
        for got, want in zip(r.items, keep[:count]):
            want_score = scores[self.ds.item_index[got.item_id]]
            self.assertLess(abs(got.score - want_score), SCORE_TOL * scale, got.item_id)
            # The item returned is the one NumPy ranks there, unless the two
            # score the same within the tolerance (a tie either may break).
            if got.item_id != self.ds.item_ids[want]:
                self.assertLess(abs(scores[want] - want_score), SCORE_TOL * scale)
        for got in r.items:
            self.assertNotIn(got.item_id, owned)
        return r

    # ---- the writes ------------------------------------------------------

    def test_purchase_is_owned_at_once_and_a_refund_gives_it_back(self):
        user = self.ds.user_ids[3]
        item = self.purchasable(user)
        self.assertEqual(self.reasons(user, [item]), ["PURCHASABLE"])
        r = self.record([event(user, item)])
        self.assertEqual((r.recorded, r.unknown_items), (1, 0))
        self.assertEqual(self.reasons(user, [item]), ["ALREADY_OWNED"])
        rec = self.recommend(user, count=300)
        self.assertNotIn(item, [x.item_id for x in rec.items])
        sim = self.d.stub_call("SimilarItems",
                               pb.SimilarItemsRequest(item_id=self.ds.item_ids[0], count=300,
                                                      user_id=user),
                               pb.RecommendResponse)
        self.assertNotIn(item, [x.item_id for x in sim.items])
        # A later refund gives it back.
        self.record([event(user, item, "REFUND", ts=int(time.time() * 1000) + 1000)])
        self.assertEqual(self.reasons(user, [item]), ["PURCHASABLE"])

    def test_refund_of_a_snapshot_purchase(self):
        user = next(u for u in self.ds.user_ids if self.ds.owned[u])
        item = sorted(self.ds.owned[user])[0]
        self.assertEqual(self.reasons(user, [item]), ["ALREADY_OWNED"])
        self.record([event(user, item, "REFUND")])
        self.assertNotEqual(self.reasons(user, [item]), ["ALREADY_OWNED"])

    def test_unknown_items_are_counted_not_stored(self):
        user = "unknown-items-user"
        item = self.purchasable(user)
        r = self.record([event(user, "no-such-item"), event(user, item, "VIEW"),
                         event(user, "no-such-either", "REFUND")])
        self.assertEqual((r.recorded, r.unknown_items), (1, 2))
        r = self.record([event(user, "no-such-item")])
        self.assertEqual((r.recorded, r.unknown_items), (0, 1))

    def test_bad_input_fails_whole_and_stores_nothing(self):
        user = "bad-input-user"
        item = self.purchasable(user)
        good = event(user, item)
        now = int(time.time() * 1000)
        cases = [
            (event("", item), "events[1]: user_id is empty"),
            (event(user, ""), "events[1]: item_id is empty"),
            (pb.Event(user_id=user, item_id=item), "events[1]: type is unspecified"),
            (event(user, item, weight=-1.0), "events[1]: weight"),
            (event(user, item, weight=float("nan")), "events[1]: weight"),
            (event(user, item, weight=float("inf")), "events[1]: weight"),
            (event(user, item, ts=-5), "events[1]: timestamp_unix_ms -5 is negative"),
            (event(user, item, ts=now + 2 * 3600 * 1000), "more than an hour ahead"),
            (event(user, "x" * 257, ts=0), "events[1]: item_id"),
        ]
        for bad, text in cases:
            with self.subTest(text=text):
                with self.assertRaises(grpc.RpcError) as cm:
                    self.record([good, bad])
                self.assertEqual(cm.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
                self.assertIn(text, cm.exception.details())
        with self.assertRaises(grpc.RpcError) as cm:
            self.record([])
        self.assertEqual(cm.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
        with self.assertRaises(grpc.RpcError) as cm:
            self.record([good] * 1001)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
        self.assertIn("1001", cm.exception.details())
        # An unknown type number (a newer client's) is refused too.
        raw = pb.RecordEventsRequest(events=[good]).SerializeToString()
        bad_type = pb.Event(user_id=user, item_id=item)
        bad_type_bytes = bad_type.SerializeToString() + b"\x18\x07"  # field 3 = 7
        raw += b"\x0a" + bytes([len(bad_type_bytes)]) + bad_type_bytes
        call = self.d.rpc("RecordEvents", pb.RecordEventsResponse,
                          request_serializer=lambda b: b)
        with self.assertRaises(grpc.RpcError) as cm:
            call(raw, timeout=5)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
        self.assertIn("type 7 is unknown", cm.exception.details())
        # Nothing of any of those calls is stored.
        self.assertEqual(self.reasons(user, [item]), ["PURCHASABLE"])
        self.assertEqual(pb.Source.Name(self.recommend(user).source), "POPULAR")

    def test_forget_user(self):
        user = "forget-me"
        a = self.purchasable(user)
        b = self.purchasable(user, skip=(a,))
        self.record([event(user, a), event(user, b, "VIEW"), event(user, b)])
        self.assertEqual(self.reasons(user, [a, b]), ["ALREADY_OWNED", "ALREADY_OWNED"])
        r = self.d.stub_call("ForgetUser", pb.ForgetUserRequest(user_id=user),
                             pb.ForgetUserResponse)
        self.assertEqual(r.deleted, 3)
        self.assertEqual(self.reasons(user, [a, b]), ["PURCHASABLE", "PURCHASABLE"])
        self.assertEqual(pb.Source.Name(self.recommend(user).source), "POPULAR")
        r = self.d.stub_call("ForgetUser", pb.ForgetUserRequest(user_id=user),
                             pb.ForgetUserResponse)
        self.assertEqual(r.deleted, 0)
        with self.assertRaises(grpc.RpcError) as cm:
            self.d.stub_call("ForgetUser", pb.ForgetUserRequest(user_id=""),
                             pb.ForgetUserResponse)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)

    # ---- the fold-in -------------------------------------------------------

    def test_new_user_is_folded_in_as_numpy_folds_in(self):
        user = "new-user-fold"
        self.assertEqual(pb.Source.Name(self.recommend(user).source), "POPULAR")
        items = [self.ds.item_ids[i] for i in (5, 17, 40)]
        evs = [(items[0], "PURCHASE", 0.0, 1000), (items[1], "VIEW", 0.0, 2000),
               (items[2], "PURCHASE", 2.5, 3000), (items[1], "VIEW", 1.5, 4000)]
        self.record([event(user, i, k, w, t) for i, k, w, t in evs])
        self.check_folded(user, evs)

    def test_known_user_with_events_is_folded_in_with_the_snapshot(self):
        user = next(u for u in self.ds.user_ids[10:] if len(self.ds.owned[u]) >= 2)
        snapshot = sorted(self.ds.owned[user])
        extra = self.purchasable(user)
        evs = [(extra, "PURCHASE", 0.0, 5000), (snapshot[0], "REFUND", 0.0, 6000)]
        self.record([event(user, i, k, w, t) for i, k, w, t in evs])
        r = self.check_folded(user, evs)
        self.assertNotIn(extra, [x.item_id for x in r.items])

    # ---- what it reports -----------------------------------------------------

    def test_info_and_metrics_report_the_events(self):
        user = "counted-user"
        item = self.purchasable(user)
        before = self.d.info().events
        self.record([event(user, item), event(user, item, "VIEW")])
        info = self.d.info().events
        self.assertEqual(info.dir, self.state)
        self.assertEqual(info.recorded_purchases, before.recorded_purchases + 1)
        self.assertEqual(info.recorded_views, before.recorded_views + 1)
        self.assertEqual(info.pending_purchases, before.pending_purchases + 1)
        self.assertGreater(info.used_bytes, 0)
        self.assertGreaterEqual(info.max_bytes, 1 << 20)
        self.recommend(user)
        m = self.d.scrape()
        self.assertEqual(m.value("recsys_events_recorded_total", type="purchase"),
                         self.d.info().events.recorded_purchases)
        self.assertGreaterEqual(m.value("recsys_fold_ins_total"), 1)
        self.assertGreaterEqual(m.value("recsys_recommendations_total", source="folded_in"), 1)
        self.assertGreater(m.value("recsys_state_bytes", kind="used"), 0)


class CompactionTest(unittest.TestCase):
    """A served model whose data ends after an event holds it: the event is
    deleted, and the model alone says what the user owns; later events stay."""

    def test_events_the_new_model_holds_are_deleted(self):
        with tempfile.TemporaryDirectory(prefix="recsys-compact-") as tmp:
            ds = plain_model(tmp, users=30, items=60, seed=9)
            state = os.path.join(tmp, "state")
            old_item, new_item = ds.item_ids[3], ds.item_ids[4]
            now = int(time.time() * 1000)
            with Daemon(ds.path, threads=2, args=["--state-dir", state]) as d:
                r = d.stub_call("RecordEvents", pb.RecordEventsRequest(events=[
                    event("old-buyer", old_item, ts=1000),
                    event("new-buyer", new_item, ts=now)]), pb.RecordEventsResponse)
                self.assertEqual(r.recorded, 2)
                self.assertEqual(d.info().events.pending_purchases, 2)
                loads = d.info().reload_count
                # The same factors, trained on data that ends at 5000 ms: it
                # holds the old purchase (as not made: the log it was
                # trained on had none), not the new one.
                p = fixtures.run_tool("import", *fixtures.import_args(ds.files),
                                      "--model-version", "compact-2", "--data-end", "5000",
                                      "-o", ds.path)
                self.assertEqual(p.returncode, 0, p.stderr)
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline:
                    info = d.info()
                    if (info.reload_count > loads and info.events.pending_purchases == 1
                            and info.events.compacted_through_unix_ms == 5000):
                        break
                    time.sleep(0.01)
                info = d.info()
                self.assertEqual(info.data_end_unix_ms, 5000)
                self.assertEqual(info.events.pending_purchases, 1)
                self.assertEqual(info.events.compacted_through_unix_ms, 5000)
                self.assertEqual(reasons(d, "old-buyer", [old_item]), ["PURCHASABLE"])
                self.assertEqual(reasons(d, "new-buyer", [new_item]), ["ALREADY_OWNED"])


class WithoutStateTest(unittest.TestCase):
    def test_failed_precondition_names_the_flag(self):
        with tempfile.TemporaryDirectory(prefix="recsys-nostate-") as tmp:
            ds = fixtures.make_model(tmp, users=20, items=30, dim=8, seed=2)
            with Daemon(ds.path, threads=1) as d:
                for method, req, resp in [
                        ("RecordEvents",
                         pb.RecordEventsRequest(events=[event("u", ds.item_ids[0])]),
                         pb.RecordEventsResponse),
                        ("ForgetUser", pb.ForgetUserRequest(user_id="u"),
                         pb.ForgetUserResponse)]:
                    with self.assertRaises(grpc.RpcError) as cm:
                        d.stub_call(method, req, resp)
                    self.assertEqual(cm.exception.code(), grpc.StatusCode.FAILED_PRECONDITION)
                    self.assertIn("--state-dir", cm.exception.details())
                self.assertFalse(d.info().HasField("events"))


class RestartTest(unittest.TestCase):
    """Acknowledged events survive a restart and kill -9 at any moment."""

    def test_kill_9_loses_no_acknowledged_event(self):
        with tempfile.TemporaryDirectory(prefix="recsys-kill-") as tmp:
            ds = plain_model(tmp, users=20, items=50, seed=5)
            state = os.path.join(tmp, "state")
            acked = []
            item = ds.item_ids[7]
            for round_ in range(4):
                d = Daemon(ds.path, threads=2, args=["--state-dir", state])
                d.start()
                try:
                    # Everything acknowledged before is there.
                    for user in acked:
                        self.assertEqual(reasons(d, user, [item]), ["ALREADY_OWNED"], user)
                    futures = []
                    call = d.rpc("RecordEvents", pb.RecordEventsResponse)
                    for k in range(200):
                        user = "k%d-%d" % (round_, k)
                        futures.append((user, call.future(
                            pb.RecordEventsRequest(events=[event(user, item)]), timeout=10)))
                        if k == 100 + 20 * round_:
                            # Killed while calls are in flight, once some
                            # were answered.
                            deadline = time.monotonic() + 30
                            while (sum(f.done() for _, f in futures) < 20 and
                                   time.monotonic() < deadline):
                                time.sleep(0.001)
                            d.proc.send_signal(signal.SIGKILL)
                    for user, f in futures:
                        try:
                            if f.result().recorded == 1:
                                acked.append(user)
                        except grpc.RpcError:
                            pass
                finally:
                    d.proc.wait(30)
                    d.close_channels()
            self.assertGreaterEqual(len(acked), 4 * 20)
            with Daemon(ds.path, threads=2, args=["--state-dir", state]) as d:
                for user in acked:
                    self.assertEqual(reasons(d, user, [item]), ["ALREADY_OWNED"], user)
                # Acknowledged or not, an event is there once or not at all.
                self.assertLessEqual(d.info().events.pending_purchases, 4 * 200)
                self.assertGreaterEqual(d.info().events.pending_purchases, len(acked))

    def test_sigterm_answers_the_writes_in_flight(self):
        with tempfile.TemporaryDirectory(prefix="recsys-term-") as tmp:
            ds = plain_model(tmp, users=20, items=50, seed=6)
            state = os.path.join(tmp, "state")
            item = ds.item_ids[2]
            d = Daemon(ds.path, threads=2, args=["--state-dir", state])
            d.start()
            call = d.rpc("RecordEvents", pb.RecordEventsResponse)
            futures = [("t%d" % k, call.future(pb.RecordEventsRequest(
                events=[event("t%d" % k, item)]), timeout=30)) for k in range(300)]
            d.proc.send_signal(signal.SIGTERM)
            self.assertEqual(d.wait_exit(60), 0)
            acked, refused = [], 0
            for user, f in futures:
                try:
                    self.assertEqual(f.result().recorded, 1)
                    acked.append(user)
                except grpc.RpcError as e:
                    # Not taken in before the stop (refused, or still in the
                    # core when it shut down): nothing of it is stored, as
                    # the count below checks.
                    self.assertIn(e.code(), (grpc.StatusCode.UNAVAILABLE,
                                             grpc.StatusCode.CANCELLED), e.details())
                    refused += 1
            d.close_channels()
            self.assertGreater(len(acked), 0)
            with Daemon(ds.path, threads=2, args=["--state-dir", state]) as d:
                self.assertEqual(d.info().events.pending_purchases, len(acked))
                for user in acked:
                    self.assertEqual(reasons(d, user, [item]), ["ALREADY_OWNED"], user)

    def test_full_state_refuses_and_keeps_serving(self):
        with tempfile.TemporaryDirectory(prefix="recsys-full-") as tmp:
            ds = plain_model(tmp, users=20, items=50, seed=7)
            state = os.path.join(tmp, "state")
            with Daemon(ds.path, threads=2,
                        args=["--state-dir", state, "--state-max-bytes", "1M"]) as d:
                code, ok = None, 0
                for k in range(2000):
                    evs = [event("full-%d-%d" % (k, j), ds.item_ids[j % 50], "VIEW")
                           for j in range(100)]
                    try:
                        d.stub_call("RecordEvents", pb.RecordEventsRequest(events=evs),
                                    pb.RecordEventsResponse)
                        ok += 1
                    except grpc.RpcError as e:
                        code, details = e.code(), e.details()
                        break
                self.assertEqual(code, grpc.StatusCode.RESOURCE_EXHAUSTED)
                self.assertIn("--state-max-bytes", details)
                self.assertGreater(ok, 0)
                # Nothing of the refused call; the rest serves on.
                self.assertEqual(d.info().events.pending_views, ok * 100)
                self.assertEqual(pb.Source.Name(d.stub_call(
                    "Recommend", pb.RecommendRequest(user_id="full-0-1"),
                    pb.RecommendResponse).source), "FOLDED_IN")
                # Forgetting makes room again.
                d.stub_call("ForgetUser", pb.ForgetUserRequest(user_id="full-0-1"),
                            pb.ForgetUserResponse)

    def test_damaged_state_refused_or_served_without(self):
        with tempfile.TemporaryDirectory(prefix="recsys-damaged-") as tmp:
            ds = fixtures.make_model(tmp, users=20, items=30, dim=8, seed=3)
            state = os.path.join(tmp, "state")
            os.mkdir(state)
            with open(os.path.join(state, "data.mdb"), "wb") as f:
                f.write(bytes((i * 7) % 251 for i in range(3 * 4096)))
            argv = Daemon(ds.path, threads=1, args=["--state-dir", state]).argv
            proc = subprocess.run(argv, stderr=subprocess.PIPE, timeout=60)
            err = proc.stderr
            self.assertNotEqual(proc.returncode, 0)
            self.assertIn(b"--state-on-damage serve", err)
            self.assertIn(state.encode(), err)
            with Daemon(ds.path, threads=1,
                        args=["--state-dir", state, "--state-on-damage", "serve"]) as d:
                info = d.info()
                self.assertIn("damaged", info.events.error)
                with self.assertRaises(grpc.RpcError) as cm:
                    d.stub_call("RecordEvents",
                                pb.RecordEventsRequest(events=[event("u", ds.item_ids[0])]),
                                pb.RecordEventsResponse)
                self.assertEqual(cm.exception.code(), grpc.StatusCode.FAILED_PRECONDITION)


if __name__ == "__main__":
    unittest.main()
