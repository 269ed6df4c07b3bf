"""Several named models at once (--models-dir): each NAME.lmdb a model with
its own hot swap, routes.json splitting users between them, attribution,
refusals, removal and rollback under load.

The arm a user must get is computed here from the documented formula
(recommender.proto's Route), with Python's hashlib, not read from the
daemon; the answers are checked against the NumPy reference of the file of
the model that answered.
"""

import json
import os
import shutil
import tempfile
import threading
import time
import unittest

import grpc

import fixtures
from daemon import Daemon
from routes import arm_of, publish
from recsys.v1 import recommender_pb2 as pb

ROUTE = {"default": "stable", "split": {"stable": 90, "candidate": 10}, "salt": "exp-1"}


def read(path):
    with open(path, "rb") as f:
        return f.read()


class Models(unittest.TestCase):
    """Datasets for two models, two versions each, built once; each test
    starts its own daemon on a fresh models directory."""

    @classmethod
    def setUpClass(cls):
        cls.src = tempfile.mkdtemp(prefix="recsys-models-src-")
        cls.ds = {}
        for name, seed in (("stable", 41), ("candidate", 42)):
            for v in ("a", "b"):
                sub = os.path.join(cls.src, "%s-%s" % (name, v))
                os.mkdir(sub)
                cls.ds[name, v] = fixtures.make_model(
                    sub, users=300, items=120 if v == "a" else 90, dim=8,
                    seed=seed + (10 if v == "b" else 0), version="%s-%s" % (name, v))
        cls.users = cls.ds["stable", "a"].user_ids

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.src)

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="recsys-models-")
        self.addCleanup(shutil.rmtree, self.dir)

    def put(self, name, v):
        publish(os.path.join(self.dir, name + ".lmdb"), read(self.ds[name, v].path))

    def route(self, route):
        text = route if isinstance(route, str) else json.dumps(route)
        publish(os.path.join(self.dir, "routes.json"), text.encode())

    def start(self, args=()):
        d = Daemon(None, args=["--models-dir", self.dir] + list(args), metrics=True)
        d.start()
        self.addCleanup(d.stop)
        return d

    def recommend(self, d, user, model="", count=5):
        return d.stub_call("Recommend", pb.RecommendRequest(user_id=user, model=model,
                                                            count=count), pb.RecommendResponse)

    def info(self, d, model=""):
        return d.stub_call("GetModelInfo", pb.ModelInfoRequest(model=model), pb.ModelInfo)

    def await_info(self, d, pred, timeout=10):
        deadline = time.monotonic() + timeout
        while True:
            got = self.info(d)
            if pred(got):
                return got
            self.assertLess(time.monotonic(), deadline, "GetModelInfo never met it:\n%s" % got)
            time.sleep(0.01)

    def check_answer(self, resp, user, names):
        """resp came from one file of its named model: its version names the
        dataset, whose reference it equals."""
        name, v = resp.model_version.split("-")
        self.assertIn(resp.model_name, names)
        self.assertEqual(name, resp.model_name)
        source, ranked = fixtures.ref_recommend(self.ds[name, v], user, count=len(resp.items))
        self.assertEqual(pb.Source.Name(resp.source), source)
        self.assertEqual([(i.item_id, i.score) for i in resp.items], ranked)

    # ---- routing --------------------------------------------------------------

    def test_split_follows_the_formula_and_holds_after_restart(self):
        self.put("stable", "a")
        self.put("candidate", "a")
        self.route(ROUTE)
        users = list(self.users) + ["visitor-%d" % i for i in range(700)]
        arms = []
        for restart in range(2):
            d = self.start()
            got = [self.recommend(d, u).model_name for u in users]
            self.assertEqual(got, [arm_of(ROUTE, u) for u in users])
            arms.append(got)
            info = self.info(d)
            self.assertEqual({m.name: m.route_share for m in info.models},
                             {"stable": 90, "candidate": 10})
            self.assertEqual((info.route.default_model, info.route.salt, info.route.source,
                              info.route.error), ("stable", "exp-1", "routes.json", ""))
            self.assertEqual([(a.model, a.weight) for a in info.route.split],
                             [("candidate", 10), ("stable", 90)])
            m = d.scrape()
            self.assertEqual(m.value("recsys_route_share_percent", model="candidate"), 10)
            counted = sum(m.value("recsys_recommendations_total", model="candidate", source=s)
                          for s in ("personalized", "popular", "folded_in"))
            self.assertEqual(counted, got.count("candidate"))
            d.stop()
        self.assertEqual(arms[0], arms[1])
        share = arms[0].count("candidate") / len(users)
        self.assertTrue(0.07 < share < 0.13, share)
        # The answers are the answering model's.
        d = self.start()
        for u in self.users[:40]:
            self.check_answer(self.recommend(d, u), u, {"stable", "candidate"})

    def test_batch_answers_each_request_from_its_arm(self):
        self.put("stable", "a")
        self.put("candidate", "a")
        self.route(ROUTE)
        d = self.start()
        users = self.users[:200]
        want = [arm_of(ROUTE, u) for u in users]
        self.assertIn("candidate", want)
        batch = d.stub_call("BatchRecommend", pb.BatchRecommendRequest(
            requests=[pb.RecommendRequest(user_id=u, count=5) for u in users]),
            pb.BatchRecommendResponse)
        self.assertEqual([r.model_name for r in batch.responses], want)
        for u, r in zip(users, batch.responses):
            self.assertEqual(r, self.recommend(d, u))
        # The batch's model names every request's; a request's own wins.
        batch = d.stub_call("BatchRecommend", pb.BatchRecommendRequest(
            requests=[pb.RecommendRequest(user_id=users[0]),
                      pb.RecommendRequest(user_id=users[1], model="stable")],
            model="candidate"), pb.BatchRecommendResponse)
        self.assertEqual([r.model_name for r in batch.responses], ["candidate", "stable"])

    def test_a_named_model_answers_whatever_the_route(self):
        self.put("stable", "a")
        self.put("candidate", "a")
        self.route(ROUTE)
        d = self.start()
        user = next(u for u in self.users if arm_of(ROUTE, u) == "stable")
        for model in ("candidate", "stable"):
            r = self.recommend(d, user, model=model)
            self.check_answer(r, user, {model})
            e = d.stub_call("CheckEligibility", pb.EligibilityRequest(
                user_id=user, item_ids=[self.ds[model, "a"].item_ids[0]], model=model),
                pb.EligibilityResponse)
            self.assertEqual(e.model_name, model)
            self.assertEqual(self.info(d, model).model_name, model)
        self.assertEqual(self.info(d).model_name, "stable")  # the route's default
        with self.assertRaises(grpc.RpcError) as cm:
            self.recommend(d, user, model="ghost")
        self.assertEqual(cm.exception.code(), grpc.StatusCode.NOT_FOUND)
        self.assertEqual(cm.exception.details(), "model 'ghost' not found")

    def test_without_routes_json(self):
        self.put("candidate", "a")
        d = self.start()
        info = self.info(d)
        self.assertEqual((info.route.default_model, info.route.source), ("candidate",
                                                                         "the only model"))
        self.assertEqual(self.recommend(d, self.users[0]).model_name, "candidate")
        # Two models, none named default: nothing routed, said so.
        self.put("stable", "a")
        info = self.await_info(d, lambda i: len(i.models) == 2)
        self.assertEqual((info.route.default_model, info.route.source),
                         ("default", "the model named default"))
        self.assertEqual(d.health(), "NOT_SERVING")
        with self.assertRaises(grpc.RpcError) as cm:
            self.recommend(d, self.users[0])
        self.assertEqual(cm.exception.code(), grpc.StatusCode.UNAVAILABLE)
        self.assertIn("model 'default', the route's default, is not served", cm.exception.details())
        self.assertEqual(self.recommend(d, self.users[0], model="stable").model_name, "stable")
        publish(os.path.join(self.dir, "default.lmdb"), read(self.ds["stable", "b"].path))
        self.await_info(d, lambda i: i.model_name == "default")
        self.assertEqual(d.health(), "SERVING")

    # ---- refusals ------------------------------------------------------------------

    def test_bad_route_files_are_refused_and_the_route_in_force_stays(self):
        self.put("stable", "a")
        self.put("candidate", "a")
        self.route(ROUTE)
        d = self.start()
        sample = self.users[:60]
        want = [arm_of(ROUTE, u) for u in sample]
        bad = [
            ('{"default": "stable", "split": {"stable": 90, "candidate": 10}',
             "line 1"),
            ('{"default": "stable", "split": {"stable": 90, "candidate": 20}}',
             "split: the weights sum to 110, not 100"),
            ('{"default": "stable", "split": {"stable": 90, "ghost": 10}}',
             "split: model 'ghost' is not loaded"),
            ('{"default": "ghost"}', "default: model 'ghost' is not loaded"),
            ('{"default": "stable", "spilt": {"stable": 100}}', "unknown key 'spilt'"),
            ('{"default": "stable", "split": {"stable": 90.0, "candidate": 10}}',
             "the weight of 'stable' is not an integer from 0 to 100"),
            ('{"default": "stable", "split": {"candidate": -10, "stable": 110}}',
             "the weight of 'candidate' is not an integer from 0 to 100"),
            ('{"split": {"stable": 100}}', "default is missing"),
            ('{"default": "Stable"}', "default 'Stable' is not a model name"),
            ('{"default": "stable", "salt": 7}', "salt is not a string"),
            ('{"default": "stable", "default": "candidate"}', "duplicate"),
            ('{"default": "stable"} trailing', "line 1"),
            ('["stable"]', "not a JSON object"),
            ('{"default": "stable", "split": {}}', "split has 0 models"),
            ("", "line"),
        ]
        for n, (text, message) in enumerate(bad):
            with self.subTest(text=text):
                self.route(text)
                info = self.await_info(d, lambda i: message in i.route.error)
                self.assertEqual(info.route.source, "routes.json")
                self.assertEqual([self.recommend(d, u).model_name for u in sample], want)
                self.assertEqual(d.scrape().value("recsys_route_file_refused"), 1)
                d.wait_log(r"ERROR .*routes\.json refused \(.*%s" % message.split("'")[0][:20])
        self.route(dict(ROUTE, split={"stable": 50, "candidate": 50}))
        info = self.await_info(d, lambda i: i.route.error == "")
        self.assertEqual([(a.model, a.weight) for a in info.route.split],
                         [("candidate", 50), ("stable", 50)])
        self.assertEqual(d.scrape().value("recsys_route_file_refused"), 0)

    def test_a_route_file_before_its_model_is_taken_once_the_model_loads(self):
        self.put("stable", "a")
        d = self.start()
        route = {"default": "stable", "split": {"stable": 50, "candidate": 50}}
        self.route(route)
        self.await_info(d, lambda i: "model 'candidate' is not loaded" in i.route.error)
        self.put("candidate", "a")
        info = self.await_info(d, lambda i: i.route.error == "" and len(i.route.split) == 2)
        self.assertEqual(info.route.source, "routes.json")
        users = self.users[:50]
        self.assertEqual([self.recommend(d, u).model_name for u in users],
                         [arm_of(route, u) for u in users])

    def test_odd_names_are_ignored_and_logged_once(self):
        self.put("stable", "a")
        for name in ("Upper.lmdb", "notes.txt", "-dash.lmdb", ".hidden.lmdb"):
            shutil.copyfile(self.ds["candidate", "a"].path, os.path.join(self.dir, name))
        d = self.start()
        self.assertEqual([m.name for m in self.info(d).models], ["stable"])
        for name in ("Upper.lmdb", "notes.txt", "-dash.lmdb"):
            d.wait_log(r"WARN .*/%s ignored: not NAME\.lmdb" % name.replace(".", r"\."))
        # Whatever happens in the directory later, each is logged once.
        self.put("candidate", "a")
        self.await_info(d, lambda i: len(i.models) == 2)
        d.signal(1)  # SIGHUP: the directory is read again
        d.wait_log(r"SIGHUP received; loading the models of directory")
        # Listed after SIGHUP's reading: the watcher reads in order.
        publish(os.path.join(self.dir, "third.lmdb"), read(self.ds["stable", "b"].path))
        self.await_info(d, lambda i: len(i.models) == 3)
        log = d.log()
        for name in ("Upper.lmdb", "notes.txt", "-dash.lmdb"):
            self.assertEqual(log.count("/%s ignored" % name), 1, log)
        self.assertNotIn(".hidden.lmdb", log)

    def test_an_invalid_model_file_is_listed_refused_and_named(self):
        self.put("stable", "a")
        self.route({"default": "stable"})
        d = self.start()
        publish(os.path.join(self.dir, "broken.lmdb"), b"not a model" * 100)
        info = self.await_info(d, lambda i: len(i.models) == 2)
        broken = next(m for m in info.models if m.name == "broken")
        self.assertFalse(broken.loaded)
        self.assertEqual(broken.failed_reload_count, 1)
        self.assertNotEqual(broken.last_reload_error, "")
        with self.assertRaises(grpc.RpcError) as cm:
            self.recommend(d, self.users[0], model="broken")
        self.assertEqual(cm.exception.code(), grpc.StatusCode.UNAVAILABLE)
        self.assertIn("model 'broken' is not loaded (%s)" % broken.last_reload_error,
                      cm.exception.details())
        self.route({"default": "stable", "split": {"stable": 50, "broken": 50}})
        self.await_info(d, lambda i: "split: model 'broken' is not loaded" in i.route.error)
        self.assertEqual(d.health(), "SERVING")  # the route in force names stable alone
        # A valid file under that name is served at once.
        self.put("stable", "b")
        publish(os.path.join(self.dir, "broken.lmdb"), read(self.ds["candidate", "a"].path))
        info = self.await_info(d, lambda i: i.route.error == "" and len(i.route.split) == 2)
        self.assertEqual(self.recommend(d, self.users[0], model="broken").model_version,
                         "candidate-a")

    # ---- memory ---------------------------------------------------------------------

    def test_each_model_is_mapped_once(self):
        self.put("stable", "a")
        self.put("candidate", "a")
        self.route({"default": "stable", "split": {"stable": 0, "candidate": 100}})
        d = self.start()
        maps = d.mapped_files(self.dir)
        for name in ("stable", "candidate"):
            self.assertEqual(maps.count(os.path.join(self.dir, name + ".lmdb")), 1, maps)
        info = self.info(d)
        sizes = sum(os.path.getsize(os.path.join(self.dir, n + ".lmdb"))
                    for n in ("stable", "candidate"))
        self.assertEqual(info.mapped_bytes, sizes)
        self.assertEqual(sum(m.file_bytes for m in info.models), sizes)
        self.assertEqual(d.scrape().value("recsys_models_mapped_bytes"), sizes)

    # ---- under load -------------------------------------------------------------------

    def load(self, d, calls, stop, failures, answers):
        """Call Recommend in a loop (calls: (user, model) pairs, cycled)
        until stop is set; every failure and answer is kept."""
        ch = d.channel()
        rpc = d.rpc("Recommend", pb.RecommendResponse, channel=ch)
        i = 0
        while not stop.is_set():
            user, model = calls[i % len(calls)]
            i += 1
            try:
                answers.append((user, model, time.monotonic(),
                                rpc(pb.RecommendRequest(user_id=user, model=model, count=5),
                                    timeout=10)))
            except grpc.RpcError as e:
                failures.append((user, model, e.code(), e.details()))

    def under_load(self, d, calls, threads=2):
        stop, failures, answers = threading.Event(), [], []
        workers = [threading.Thread(target=self.load, args=(d, calls, stop, failures, answers))
                   for _ in range(threads)]
        for w in workers:
            w.start()

        def done():
            stop.set()
            for w in workers:
                w.join()
            return failures, answers
        return done, answers

    def test_per_model_hot_swaps_under_load(self):
        self.put("stable", "a")
        self.put("candidate", "a")
        d = self.start()
        calls = [(u, m) for u in self.users[:30] for m in ("stable", "candidate")]
        done, answers = self.under_load(d, calls)
        for swap in range(6):
            v = "b" if swap % 2 == 0 else "a"
            self.put("stable", v)
            self.put("candidate", v)
            want = {"stable-" + v, "candidate-" + v}
            self.await_info(d, lambda i: {m.model_version for m in i.models} == want)
            seen = len(answers)
            deadline = time.monotonic() + 10
            while len(answers) < seen + 20:
                self.assertLess(time.monotonic(), deadline)
                time.sleep(0.005)
        failures, answers = done()
        self.assertEqual(failures, [])
        self.assertGreater(len(answers), 100)
        versions = set()
        for user, model, _, resp in answers:
            self.assertEqual(resp.model_name, model)
            self.check_answer(resp, user, {model})
            versions.add(resp.model_version)
        self.assertEqual(versions, {"stable-a", "stable-b", "candidate-a", "candidate-b"})

    def test_route_change_rollback_and_removal_under_load_fail_no_call(self):
        self.put("stable", "a")
        self.put("candidate", "a")
        self.route({"default": "stable"})
        d = self.start()
        calls = [(u, "") for u in self.users[:40]]
        done, answers = self.under_load(d, calls)
        steps = [
            (lambda: self.route(ROUTE), ROUTE),  # the experiment starts
            (lambda: self.route({"default": "stable"}), {"default": "stable"}),  # rollback
            (lambda: self.route(ROUTE), ROUTE),
            # Removing the candidate's file gives its share to the default.
            (lambda: os.unlink(os.path.join(self.dir, "candidate.lmdb")), {"default": "stable"}),
        ]
        before = {"default": "stable"}
        for act, route in steps:
            moved = {u for u, _ in calls if arm_of(route, u) != arm_of(before, u)}
            self.assertTrue(moved)
            start = time.monotonic()
            act()
            # Await an answer to a call begun after the change, for a user
            # it moves, from the user's new arm.
            deadline = start + 10
            while not any(begun > start and user in moved and
                          resp.model_name == arm_of(route, user)
                          for user, _, begun, resp in list(answers)):
                self.assertLess(time.monotonic(), deadline, "route %s never served" % route)
                time.sleep(0.002)
            before = route
        failures, answers = done()
        self.assertEqual(failures, [])
        # After the removal, only stable answers, and naming the candidate is NOT_FOUND.
        self.assertEqual({self.recommend(d, u).model_name for u, _ in calls}, {"stable"})
        with self.assertRaises(grpc.RpcError) as cm:
            self.recommend(d, calls[0][0], model="candidate")
        self.assertEqual(cm.exception.code(), grpc.StatusCode.NOT_FOUND)
        self.assertIn("model 'candidate' not found", cm.exception.details())
        info = self.info(d)
        self.assertEqual([m.name for m in info.models], ["stable"])
        self.assertEqual(len(info.route.split), 2)  # the file still says so
        self.assertEqual([m.route_share for m in info.models], [100])
        d.wait_log(r"INFO  model candidate dropped: its file .*candidate\.lmdb is gone")

    def test_health_follows_the_routes_models(self):
        self.put("stable", "a")
        self.put("candidate", "a")
        self.route(ROUTE)
        d = self.start()
        self.assertEqual(d.health(), "SERVING")
        os.unlink(os.path.join(self.dir, "stable.lmdb"))
        self.await_info(d, lambda i: [m.name for m in i.models] == ["candidate"])
        self.assertEqual(d.health(), "NOT_SERVING")
        user = next(u for u in self.users if arm_of(ROUTE, u) == "stable")
        with self.assertRaises(grpc.RpcError) as cm:
            self.recommend(d, user)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.UNAVAILABLE)
        self.assertIn("model 'stable'", cm.exception.details())
        # The candidate's users are still served, and the model by name.
        other = next(u for u in self.users if arm_of(ROUTE, u) == "candidate")
        self.assertEqual(self.recommend(d, other).model_name, "candidate")
        self.put("stable", "b")
        self.await_info(d, lambda i: len(i.models) == 2)
        self.assertEqual(d.health(), "SERVING")
        self.assertEqual(self.recommend(d, user).model_version, "stable-b")


    # ---- live events ------------------------------------------------------------------

    def import_into_dir(self, name, v, data_end):
        """The dataset's model written into the directory as NAME.lmdb, with
        a data end; model_write's temporary file is hidden, so ignored."""
        p = fixtures.run_tool("import", *fixtures.import_args(self.ds[name, v].files),
                              "--model-version", "%s-%s" % (name, v), "--data-end",
                              str(data_end), "-o", os.path.join(self.dir, name + ".lmdb"))
        self.assertEqual(p.returncode, 0, p.stderr)

    def test_events_are_kept_until_every_model_holds_them(self):
        self.import_into_dir("stable", "a", 5000)
        self.import_into_dir("candidate", "a", 2000)
        self.route(ROUTE)
        state = tempfile.mkdtemp(prefix="recsys-models-state-")
        self.addCleanup(shutil.rmtree, state)
        d = self.start(args=["--state-dir", state])
        item = self.ds["stable", "a"].item_ids[5]
        now = int(time.time() * 1000)
        r = d.stub_call("RecordEvents", pb.RecordEventsRequest(events=[
            pb.Event(user_id="early", item_id=item, type=pb.PURCHASE, timestamp_unix_ms=1000),
            pb.Event(user_id="middle", item_id=item, type=pb.PURCHASE, timestamp_unix_ms=3000),
            pb.Event(user_id="late", item_id=item, type=pb.PURCHASE, timestamp_unix_ms=now)]),
            pb.RecordEventsResponse)
        self.assertEqual(r.recorded, 3)

        def data_ends(i):
            return {m.name: m.data_end_unix_ms for m in i.models}
        # The stable model's data now ends at 9000: it holds the early and
        # the middle purchases, the candidate neither, so both stay.
        self.import_into_dir("stable", "a", 9000)
        info = self.await_info(d, lambda i: data_ends(i)["stable"] == 9000)
        self.assertEqual(info.events.compacted_through_unix_ms, 2000)
        self.assertEqual(info.events.pending_purchases, 3)
        # The candidate's at 2500: both hold the early one.
        self.import_into_dir("candidate", "a", 2500)
        info = self.await_info(d, lambda i: i.events.compacted_through_unix_ms == 2500)
        self.assertEqual(info.events.pending_purchases, 2)
        # At 6000: both hold the middle one too.
        self.import_into_dir("candidate", "a", 6000)
        info = self.await_info(d, lambda i: i.events.compacted_through_unix_ms == 6000)
        self.assertEqual(info.events.pending_purchases, 1)


if __name__ == "__main__":
    unittest.main()
