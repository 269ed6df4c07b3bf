"""tools/spark/recsys_als.py in Spark's local mode, through
`recsys-model import --from-spark`, to a daemon answering over gRPC.

A log with planted topics (each user buys within one of four topics), ids
in UTF-8 with spaces, commas and quotes, purchases, views and repeated
pairs, is trained by Spark MLlib: PySpark 3.5 at the pinned version of
tools/spark/requirements.txt in the venv the fixture e2e/spark_venv builds,
and, as e2e/test_spark4, PySpark 4 from requirements-4.txt. Then, against references computed here:
- the export's ids are exactly the log's;
- Recommend for sampled users is the top 10 of the exported factors, read
  from the export's text with exact rounding, owned items removed;
- a user the model does not know, whose live events are a trained user's
  interactions, is folded in to Spark's own vector for that user: the
  fold-in follows Spark's lambda-per-interaction rule, and the trained
  user factors are, by ALS's last half-step, exactly that solve;
- --from-model on the saved ALSModel (and its log read as Parquet) gives
  the same model file as the training run;
- a bad log is refused with its reason and nothing is written.
"""

import csv
import json
import os
import random
import shutil
import subprocess
import tempfile
import unittest
from fractions import Fraction

import numpy as np

import fixtures
from daemon import Daemon
from fixtures import run_tool
from recsys.v1 import recommender_pb2 as pb

VENV = os.environ.get("RECSYS_SPARK_VENV", "")
JOB = os.path.join(os.path.dirname(__file__), "..", "..", "tools", "spark", "recsys_als.py")
FACTORS, ITERATIONS, LAMBDA, ALPHA, VIEW_WEIGHT = 8, 6, 0.1, 15.0, 0.25
TOPICS, PER_TOPIC = 4, 12
SCORE_TOL = 2e-4  # relative: scores of float32 vectors summed in another order


def spark_submit(*args, timeout=600):
    """Runs a PySpark script with the venv's spark-submit in local mode."""
    site = subprocess.run([os.path.join(VENV, "bin", "python"), "-c",
                           "import pyspark, os; print(os.path.dirname(pyspark.__file__))"],
                          capture_output=True, text=True, check=True).stdout.strip()
    env = dict(os.environ, SPARK_HOME=site, PYSPARK_PYTHON=os.path.join(VENV, "bin", "python"),
               SPARK_LOCAL_IP="127.0.0.1")
    argv = [os.path.join(VENV, "bin", "spark-submit"), "--master", "local[2]",
            "--driver-memory", "1g", "--conf", "spark.sql.shuffle.partitions=4",
            "--conf", "spark.ui.enabled=false", *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env)


def float32_of(text):
    """The float32 nearest the decimal @text, ties to even, decided with
    exact fractions: independent of the importer's reader."""
    x = Fraction(text)
    f = np.float32(float(x))
    best = None
    for c in (np.nextafter(f, np.float32(-np.inf)), f, np.nextafter(f, np.float32(np.inf))):
        d = abs(Fraction(float(c)) - x)
        if best is None or d < best[0] or (d == best[0] and int(c.view(np.uint32)) % 2 == 0):
            best = (d, c)
    return best[1]


def read_table(export, name):
    """[(id, [float32...])] in the manifest's part order, parsed here."""
    with open(os.path.join(export, "recsys-export.json"), encoding="utf-8") as f:
        manifest = json.load(f)
    rows = []
    for p in manifest["tables"][name]["parts"]:
        with open(os.path.join(export, name, p["file"]), encoding="utf-8", newline="") as f:
            for line in f:
                assert line.endswith("\n"), line
                fields = line[:-1].split("\t")
                rows.append((fields[0], fields[1:]))
    return manifest, rows


def make_log(path):
    """A planted-topic log: (rows, users, items, topic of each item)."""
    rng = random.Random(15)
    items = ["course %02d" % i for i in range(TOPICS * PER_TOPIC - 3)] + [
        "Книга «Алгоритмы»", "オーディオブック", 'e-book, "C"']
    users = ["u%04d" % i for i in range(240)] + ["Пользователь 1", "用户 二", "o'neil, j"]
    rows, t = [], 1_700_000_000
    for k, u in enumerate(users):
        topic = k % TOPICS
        own = [items[topic * PER_TOPIC + j] for j in range(PER_TOPIC)]
        for _ in range(rng.randrange(4, 10)):
            t += rng.randrange(1, 50)
            kind = "purchase" if rng.random() < 0.6 else "view"
            rows.append((u, rng.choice(own), t, kind))
        rows.append((u, items[k % len(items)], t + 1, "view"))  # noise, and every item seen
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["user_id", "item_id", "timestamp", "event"])
        w.writerows(rows)
    return rows, users, items


class SparkTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if not VENV:
            raise AssertionError("RECSYS_SPARK_VENV is not set: run through ctest, whose "
                                 "e2e/spark_venv fixture installs PySpark")
        cls.tmp = tempfile.mkdtemp(prefix="recsys-spark-")
        try:
            cls.prepare()
        except BaseException:
            shutil.rmtree(cls.tmp)
            raise

    @classmethod
    def prepare(cls):
        cls.log = os.path.join(cls.tmp, "log.csv")
        cls.rows, cls.users, cls.items = make_log(cls.log)
        cls.export = os.path.join(cls.tmp, "export")
        cls.saved = os.path.join(cls.tmp, "saved")
        p = spark_submit(JOB, "--interactions", cls.log, "--out", cls.export, "--factors",
                         str(FACTORS), "--iterations", str(ITERATIONS), "--regularization",
                         str(LAMBDA), "--alpha", str(ALPHA), "--save-model", cls.saved)
        if p.returncode != 0:
            raise AssertionError("recsys_als.py failed:\n" + p.stdout + p.stderr[-4000:])
        cls.job_out = p.stdout
        cls.catalog = fixtures.write_csv(
            os.path.join(cls.tmp, "catalog.csv"), fixtures.CATALOG_HEADER,
            [[i, "topic%d" % (k // PER_TOPIC), 100 + k, 1, 0] for k, i in enumerate(cls.items)])
        cls.model = os.path.join(cls.tmp, "model.lmdb")
        p = run_tool("import", "--from-spark", cls.export, "--catalog", cls.catalog,
                     "--model-version", "spark-test", "--created-at", "1700000000",
                     "-o", cls.model)
        if p.returncode != 0:
            raise AssertionError("import failed: " + p.stderr)
        cls.manifest, users = read_table(cls.export, "users")
        _, items = read_table(cls.export, "items")
        cls.user_ids = [u for u, _ in users]
        cls.item_ids = [i for i, _ in items]
        cls.U = np.array([[float32_of(x) for x in v] for _, v in users], dtype=np.float32)
        cls.V = np.array([[float32_of(x) for x in v] for _, v in items], dtype=np.float32)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp)

    def owned(self):
        out = {}
        for u, i, _, kind in self.rows:
            if kind == "purchase":
                out.setdefault(u, set()).add(i)
        return out

    def check_top(self, got, scores, exclude):
        """@got (a RecommendResponse's items) is a top 10 of @scores
        (float64 by item index) without @exclude: the scores agree, and no
        item left out scores above the last one returned."""
        index = {i: k for k, i in enumerate(self.item_ids)}
        ids = [r.item_id for r in got]
        self.assertEqual(len(ids), 10)
        self.assertFalse(set(ids) & exclude)
        for r in got:
            want = scores[index[r.item_id]]
            self.assertLessEqual(abs(r.score - want), SCORE_TOL * max(1.0, abs(want)), r.item_id)
        last = min(scores[index[i]] for i in ids)
        for k, i in enumerate(self.item_ids):
            if i not in exclude and i not in ids:
                self.assertLessEqual(scores[k], last + SCORE_TOL * max(1.0, abs(last)), i)

    def test_manifest_and_ids(self):
        m = self.manifest
        self.assertEqual((m["format"], m["format_version"], m["factors"]),
                         ("recsys-als-export", 1, FACTORS))
        t = m["training"]
        self.assertEqual((t["regularization"], t["alpha"], t["view_weight"], t["iterations"],
                          t["regularization_scaling"]),
                         (LAMBDA, ALPHA, VIEW_WEIGHT, ITERATIONS, "per-interaction"))
        self.assertEqual(m["data_end_unix_ms"], max(r[2] for r in self.rows) * 1000)
        # Ids round-trip exactly, UTF-8, commas and quotes included, sorted.
        self.assertEqual(self.user_ids, sorted(set(self.users), key=lambda s: s.encode()))
        self.assertEqual(sorted(self.item_ids), sorted({r[1] for r in self.rows}))
        self.assertEqual(self.manifest["tables"]["purchases"]["rows"],
                         sum(len(v) for v in self.owned().values()))
        model = fixtures.read_model(self.model)
        self.assertEqual(sorted(model["users"]), sorted(self.user_ids))
        self.assertEqual(model["item_ids"], self.item_ids)
        self.assertEqual(model["user_matrix"].tobytes(), self.U.tobytes())
        self.assertIn("trained", self.job_out)

    def test_recommend_is_numpy_top_n(self):
        owned = self.owned()
        sample = random.Random(3).sample(self.user_ids, 40)
        with Daemon(self.model) as d:
            for u in sample:
                with self.subTest(user=u):
                    resp = d.stub_call("Recommend", pb.RecommendRequest(user_id=u, count=10),
                                       pb.RecommendResponse)
                    self.assertEqual(pb.Source.Name(resp.source), "PERSONALIZED")
                    scores = self.V.astype(np.float64) @ self.U[self.user_ids.index(u)]
                    self.check_top(resp.items, scores, owned.get(u, set()))
            # The planted topics came through: a user's top items are
            # mostly of the user's topic.
            hits = 0
            for k, u in enumerate(self.users[:40]):
                resp = d.stub_call("Recommend", pb.RecommendRequest(user_id=u, count=5),
                                   pb.RecommendResponse)
                topic = k % TOPICS
                hits += sum(self.items.index(r.item_id) // PER_TOPIC == topic for r in resp.items)
            self.assertGreater(hits, 0.6 * 40 * 5)

    def test_fold_in_is_sparks_vector(self):
        # Ghost users: a user's training interactions recorded as live
        # events under a new id. The daemon folds them in with the export's
        # lambda per interaction; Spark's last half-step solved the same
        # system for the trained user, so the two vectors score alike.
        state = os.path.join(self.tmp, "state")
        sample = random.Random(4).sample(self.users, 12)
        with Daemon(self.model, args=["--state-dir", state]) as d:
            events = []
            for u in sample:
                for user, item, _, kind in self.rows:
                    if user == u:
                        events.append(pb.Event(user_id="ghost " + u, item_id=item,
                                               type=pb.EventType.Value(kind.upper())))
            resp = d.stub_call("RecordEvents", pb.RecordEventsRequest(events=events),
                               pb.RecordEventsResponse)
            self.assertEqual((resp.recorded, resp.unknown_items), (len(events), 0))
            for u in sample:
                with self.subTest(user=u):
                    resp = d.stub_call("Recommend",
                                       pb.RecommendRequest(user_id="ghost " + u, count=10),
                                       pb.RecommendResponse)
                    scores = self.V.astype(np.float64) @ self.U[self.user_ids.index(u)]
                    owned = {i for user, i, _, kind in self.rows
                             if user == u and kind == "purchase"}
                    self.check_top(resp.items, scores, owned)

    def test_from_model_gives_the_same_file(self):
        # The log again, as Parquet with a timestamp-typed column: the
        # job's other input, and its data end must come out the same.
        parquet = os.path.join(self.tmp, "log.parquet")
        script = os.path.join(self.tmp, "to_parquet.py")
        with open(script, "w") as f:
            f.write("import sys\nfrom pyspark.sql import SparkSession, functions as F\n"
                    "s = SparkSession.builder.getOrCreate()\n"
                    "s.read.option('header', True).option('escape', '\"').csv(sys.argv[1])"
                    ".withColumn("
                    "'timestamp', F.col('timestamp').cast('long').cast('timestamp'))"
                    ".write.parquet(sys.argv[2])\n")
        p = spark_submit(script, self.log, parquet)
        self.assertEqual(p.returncode, 0, p.stderr[-3000:])
        again = os.path.join(self.tmp, "again")
        p = spark_submit(JOB, "--from-model", self.saved, "--interactions", parquet, "--out",
                         again, "--regularization", str(LAMBDA), "--alpha", str(ALPHA))
        self.assertEqual(p.returncode, 0, p.stderr[-3000:])
        out = os.path.join(self.tmp, "again.lmdb")
        p = run_tool("import", "--from-spark", again, "--catalog", self.catalog,
                     "--model-version", "spark-test", "--created-at", "1700000000", "-o", out)
        self.assertEqual(p.returncode, 0, p.stderr)
        with open(out, "rb") as a, open(self.model, "rb") as b:
            self.assertTrue(a.read() == b.read(), "the two model files differ")

    def test_bad_log_is_refused_and_nothing_written(self):
        bad = os.path.join(self.tmp, "bad.csv")
        with open(bad, "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(["user_id", "item_id", "weight"])
            w.writerows([["a", "x", "1"], ["tab\there", "x", "1"], ["b", "y", "-2"]])
        out = os.path.join(self.tmp, "bad-export")
        p = spark_submit(JOB, "--interactions", bad, "--out", out, "--factors", "4",
                         "--iterations", "2", "--regularization", "0.1", "--alpha", "1")
        self.assertEqual(p.returncode, 1, p.stdout + p.stderr[-3000:])
        # PySpark's launcher hands the driver's stderr to its stdout.
        self.assertIn("recsys_als: %s: 1 rows have a bad user_id (must be 1..256 bytes without "
                      "tab, CR, LF or NUL), for example: tab\there,x,1" % bad, p.stdout + p.stderr)
        self.assertFalse(os.path.exists(out))


if __name__ == "__main__":
    unittest.main()
