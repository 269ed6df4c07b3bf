"""recsys-train: from an interaction log to a model recsysd serves.

The logs are synthetic with a planted structure, written here: items belong
to topics, each user buys mostly within one or two topics, and popularity
within a topic is skewed, so the popularity ranking is a fair opponent. The
test knows which pairs are each user's latest, so it computes the holdout
metrics itself with numpy from the factors in the written file (read with
fixtures.read_model, from the format spec) and checks the tool's table
against them, rather than trusting the tool's own numbers.
"""

import csv
import math
import os
import pty
import re
import shutil
import struct
import subprocess
import tempfile
import unittest

import numpy as np

import fixtures
from daemon import Daemon, recommender_pb2 as pb

TRAIN = os.environ.get("RECSYS_TRAIN", "recsys-train")
CATALOG_HEADER = fixtures.CATALOG_HEADER


def run_train(*args, timeout=120):
    return subprocess.run([TRAIN] + [str(a) for a in args], capture_output=True, text=True,
                          timeout=timeout)


class Log:
    """A planted-topic log: `rows` (user, item, timestamp), each user's pairs
    in time order, and the catalog. Item i is in topic i % topics; one in
    nine items is off sale."""

    def __init__(self, d, users=500, items=300, topics=10, per_user=14, seed=1):
        rng = np.random.default_rng(seed)
        per = items // topics
        self.items = ["item-%d" % i for i in range(items)]
        self.users = ["user-%d" % u for u in range(users)]
        self.on_sale = [i % 9 != 8 for i in range(items)]
        self.pairs = []  # per user: item indices in time order
        t = 1_700_000_000
        rows = []
        for u in range(users):
            t1, t2 = rng.integers(topics, size=2)
            got = []
            while len(got) < per_user:
                r = rng.integers(10)
                if r == 0:
                    it = int(rng.integers(items))
                else:
                    rank = min(int(per * rng.random() ** 2), per - 1)
                    it = rank * topics + int(t1 if r < 6 else t2)
                if it not in got:
                    got.append(it)
            self.pairs.append(got)
            for it in got:
                t += 1
                rows.append([self.users[u], self.items[it], t])
        order = rng.permutation(len(rows))  # the file is not in time order
        self.rows = [rows[k] for k in order]
        self.catalog = os.path.join(d, "catalog.csv")
        fixtures.write_csv(self.catalog, CATALOG_HEADER,
                           [[iid, "topic-%d" % (i % topics), 100 + i, int(self.on_sale[i]), 0]
                            for i, iid in enumerate(self.items)])
        self.log = fixtures.write_csv(os.path.join(d, "log.csv"),
                                      ["user_id", "item_id", "timestamp"], self.rows)

    def split(self, held):
        """(training item sets, held-out item lists) with the `held` latest per user."""
        return ([set(p[:-held]) for p in self.pairs], [p[-held:] for p in self.pairs])


def ref_metrics(scores, train, held, on_sale):
    """precision, recall, NDCG @10 and coverage, as README defines them;
    ties to the lower item (a stable sort of -score)."""
    p = r = n = 0.0
    shown = set()
    sale = np.array(on_sale)
    for u in range(len(held)):
        s = np.where(sale, scores(u), -np.inf)
        s[list(train[u])] = -np.inf
        order = np.argsort(-s, kind="stable")[:10]
        order = [i for i in order if s[i] > -np.inf]
        shown.update(order)
        hits = [k for k, i in enumerate(order) if i in held[u]]
        p += len(hits) / 10
        r += len(hits) / len(held[u])
        ideal = sum(1 / math.log2(k + 2) for k in range(min(10, len(held[u]))))
        n += sum(1 / math.log2(k + 2) for k in hits) / ideal
    m = len(held)
    return p / m, r / m, n / m, len(shown) / len(on_sale)


def table(stdout):
    """{ranking: (precision, recall, ndcg, coverage)} from the tool's report."""
    out = {}
    for line in stdout.splitlines():
        f = line.split()
        if len(f) == 5 and f[0] in ("als", "bpr", "popularity"):
            out[f[0]] = tuple(float(x) for x in f[1:])
    return out


class TrainCase(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="recsys-train-")

    def tearDown(self):
        shutil.rmtree(self.tmp)

    def path(self, name):
        return os.path.join(self.tmp, name)

    def train(self, log, out, *extra, ok=True):
        p = run_train("--interactions", log.log, "--catalog", log.catalog, "--factors", 16,
                      "--model-version", "t-1", "--created-at", 1_700_000_000, "-o", out,
                      *extra)
        if ok:
            self.assertEqual(p.returncode, 0, p.stderr)
        return p


class QualityTest(TrainCase):
    HELD = 2  # round(0.15 * 14) latest pairs per user

    def check_beats_popularity(self, algorithm, *extra):
        log = Log(self.tmp)
        out = self.path(algorithm + ".lmdb")
        p = self.train(log, out, "--algorithm", algorithm, "--holdout", "0.15", "--threads", 2,
                       *extra)
        m = fixtures.read_model(out)
        rows = [m["users"][uid][0] for uid in log.users]
        X, Y = m["user_matrix"][rows].astype(np.float64), m["item_matrix"].astype(np.float64)
        train, held = log.split(self.HELD)
        count = np.zeros(len(log.items))
        for t in train:
            count[list(t)] += 1
        got = table(p.stdout)
        want_model = ref_metrics(lambda u: X[u] @ Y.T, train, held, log.on_sale)
        want_pop = ref_metrics(lambda u: count, train, held, log.on_sale)
        np.testing.assert_allclose(got[algorithm], want_model, atol=2e-4)
        np.testing.assert_allclose(got["popularity"], want_pop, atol=2e-4)
        self.assertGreater(want_pop[1], 0)
        self.assertGreaterEqual(want_model[1], 3 * want_pop[1],
                                "%s recall@10 %.4f vs popularity %.4f"
                                % (algorithm, want_model[1], want_pop[1]))
        # The served model owns every purchase, held out or not.
        for u, uid in enumerate(log.users):
            self.assertEqual(m["users"][uid][2], sorted(log.pairs[u]))
        return p

    def test_als_beats_popularity_and_loss_falls(self):
        p = self.check_beats_popularity("als", "--iterations", 12, "--regularization", 0.1)
        self.assertIn("1000 held out (latest by timestamp)", p.stdout)
        losses = [float(x) for x in re.findall(r"^iteration \d+/12: loss (\S+),", p.stderr,
                                               re.M)]
        self.assertEqual(len(losses), 12, p.stderr)
        for a, b in zip(losses, losses[1:]):
            self.assertLessEqual(b, a * (1 + 1e-6), losses)
        self.assertNotIn("\r", p.stderr)  # not a terminal: no bar

    def test_als_conjugate_gradient(self):
        p = self.check_beats_popularity("als", "--iterations", 12, "--regularization", 0.1,
                                        "--cg-steps", 3)
        losses = [float(x) for x in re.findall(r"^iteration \d+/12: loss (\S+),", p.stderr,
                                               re.M)]
        self.assertEqual(len(losses), 12, p.stderr)
        for a, b in zip(losses, losses[1:]):
            self.assertLessEqual(b, a * (1 + 1e-6), losses)

    def test_bpr_beats_popularity(self):
        self.check_beats_popularity("bpr", "--iterations", 30, "--learning-rate", 0.05)


class DeterminismTest(TrainCase):
    def test_same_seed_same_bytes(self):
        log = Log(self.tmp, users=200, items=120)
        runs = {}
        for name, seed, threads, cg in (("a", 5, 2, 0), ("b", 5, 2, 0), ("c", 5, 1, 0),
                                        ("d", 6, 2, 0), ("e", 5, 2, 3), ("f", 5, 1, 3)):
            out = self.path(name + ".lmdb")
            self.train(log, out, "--seed", seed, "--threads", threads, "--iterations", 3,
                       "--cg-steps", cg)
            m = fixtures.read_model(out)
            runs[name] = (m["user_matrix"].tobytes(), m["item_matrix"].tobytes())
        self.assertEqual(runs["a"], runs["b"])
        self.assertEqual(runs["a"], runs["c"])  # any thread count, in fact
        self.assertNotEqual(runs["a"][1], runs["d"][1])
        self.assertEqual(runs["e"], runs["f"])  # conjugate gradient too
        self.assertNotEqual(runs["a"][1], runs["e"][1])

    def test_bpr_on_one_thread_same_bytes(self):
        log = Log(self.tmp, users=200, items=120)
        runs = []
        for name in ("a", "b"):
            out = self.path(name + ".lmdb")
            self.train(log, out, "--algorithm", "bpr", "--threads", 1, "--iterations", 3)
            runs.append(fixtures.read_model(out)["item_matrix"].tobytes())
        self.assertEqual(runs[0], runs[1])


class ServedTest(TrainCase):
    def test_verify_serve_and_hot_swap(self):
        log = Log(self.tmp, users=150, items=100)
        out = self.path("model.lmdb")
        self.train(log, out, "--iterations", 4, "--quantize", "bf16,int8")
        v = fixtures.run_tool("verify", out)
        self.assertEqual(v.returncode, 0, v.stderr)
        self.assertEqual(v.stdout, "OK %s: version t-1, 150 users, 100 items\n" % out)
        m = fixtures.read_model(out)
        self.assertIn("item_bf16", m)
        self.assertIn("item_int8", m)
        with Daemon(out) as d:
            for uid in log.users[:5]:
                row, _, owned, _ = m["users"][uid]
                s = m["user_matrix"][row].astype(np.float64) @ m["item_matrix"].T.astype(
                    np.float64)
                s[owned] = -np.inf
                s[[i for i, sale in enumerate(log.on_sale) if not sale]] = -np.inf
                resp = d.stub_call("Recommend", pb.RecommendRequest(user_id=uid, count=5),
                                   pb.RecommendResponse)
                self.assertEqual(resp.source, pb.PERSONALIZED)
                self.assertEqual(resp.model_version, "t-1")
                got = [m["items"][it.item_id] for it in resp.items]
                np.testing.assert_allclose([it.score for it in resp.items], s[got], rtol=1e-4,
                                           atol=1e-5)
                np.testing.assert_allclose(sorted(s[got], reverse=True),
                                           np.sort(s)[::-1][:5], rtol=1e-4, atol=1e-5)
            # Training again onto the served path swaps the daemon to it.
            p = run_train("--interactions", log.log, "--catalog", log.catalog, "--factors", 8,
                          "--iterations", 2, "--model-version", "t-2", "-o", out)
            self.assertEqual(p.returncode, 0, p.stderr)
            d.wait_log(r"model loaded path=\S+ version=t-2 ", timeout=30)
            info = d.stub_call("GetModelInfo", pb.ModelInfoRequest(), pb.ModelInfo)
            self.assertEqual((info.model_version, info.dimension), ("t-2", 8))


class SplitTest(TrainCase):
    def test_random_holdout_without_timestamps(self):
        log = Log(self.tmp, users=120, items=80, per_user=7)
        # The same log without its timestamp column.
        plain = fixtures.write_csv(self.path("plain.csv"), ["user_id", "item_id"],
                                   [r[:2] for r in log.rows])
        outs = []
        for seed in (3, 3, 4):
            p = run_train("--interactions", plain, "--catalog", log.catalog, "--factors", 4,
                          "--iterations", 2, "--holdout", "0.3", "--seed", seed,
                          "--model-version", "v", "-o", self.path("m.lmdb"))
            self.assertEqual(p.returncode, 0, p.stderr)
            outs.append(p.stdout)
        # round(0.3 * 7) = 2 of each user's 7 pairs, chosen by the seed
        self.assertIn("840 pairs, 240 held out (at random)", outs[0])
        self.assertEqual(outs[0], outs[1])
        self.assertNotEqual(table(outs[0])["als"], table(outs[2])["als"])

    def test_repeated_rows_and_view_weights_add_up(self):
        cat = fixtures.write_csv(self.path("catalog.csv"), CATALOG_HEADER,
                                 [["a", "x", 1, 1, 0], ["b", "x", 2, 1, 0], ["c", "y", 3, 1, 0]])
        base = [["u1", "a"], ["u2", "b"], ["u2", "c"], ["u3", "a"], ["u3", "c"]]
        logs = {
            # u1 bought a twice and viewed b: weights 2 and 0.25
            "rows": (["user_id", "item_id", "event"],
                     [r + ["purchase"] for r in base] +
                     [["u1", "a", "purchase"], ["u1", "b", "view"]]),
            "summed": (["user_id", "item_id", "weight", "event"],
                       [["u1", "a", "2", "purchase"]] +
                       [r + ["1", "purchase"] for r in base[1:]] +
                       [["u1", "b", "0.25", "view"]]),
        }
        got = {}
        for name, (header, rows) in logs.items():
            path = fixtures.write_csv(self.path(name + ".csv"), header, rows)
            out = self.path(name + ".lmdb")
            p = run_train("--interactions", path, "--catalog", cat, "--factors", 3,
                          "--iterations", 3, "--model-version", "v", "-o", out)
            self.assertEqual(p.returncode, 0, p.stderr)
            m = fixtures.read_model(out)
            got[name] = (m["user_matrix"].tobytes(), m["item_matrix"].tobytes(),
                         {k: v[:3] for k, v in m["users"].items()})
        self.assertEqual(got["rows"], got["summed"])
        self.assertEqual(got["rows"][2]["u1"][2], [0])  # the view is not owned


class InputTest(TrainCase):
    """Events, weights, users.csv and unknown items."""

    def write(self, name, header, rows):
        return fixtures.write_csv(self.path(name), header, rows)

    def small(self):
        cat = self.write("catalog.csv", CATALOG_HEADER,
                         [["a", "x", 1, 1, 0], ["b", "x", 2, 1, 2], ["c", "y", 3, 1, 0],
                          ["d", "y", 4, 0, 0]])
        return cat

    def test_events_weights_users_and_unknown_items(self):
        cat = self.small()
        users = self.write("users.csv", ["tier", "user_id"], [[3, "u1"], [1, "quiet"]])
        log = self.write("log.csv", ["event", "item_id", "user_id", "weight"],
                         [["view", "a", "u1", ""], ["purchase", "b", "u1", "2.5"],
                          ["view", "c", "u2", ""], ["purchase", "c", "u2", ""],
                          ["view", "gone", "u2", ""], ["purchase", "gone", "u3", ""],
                          ["view", "zzz", "u1", ""]])
        # An empty weight is not a number: fix those rows to have none.
        with open(log) as f:
            text = f.read().replace(",\n", ",1\n")
        fixtures.write_text(log, text)
        out = self.path("m.lmdb")
        p = run_train("--interactions", log, "--catalog", cat, "--users", users, "--factors", 4,
                      "--iterations", 2, "--model-version", "v", "-o", out)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("skipped 3 rows naming 2 items not in %s" % cat, p.stderr)
        m = fixtures.read_model(out)
        self.assertEqual(m["item_ids"], ["a", "b", "c", "d"])
        self.assertEqual(m["categories"], ["x", "y"])
        # users.csv first, then the log's new users; u3 only named an unknown item
        self.assertEqual({k: v[:3] for k, v in m["users"].items()},
                         {"u1": (0, 3, [1]), "quiet": (1, 1, []), "u2": (2, 0, [2])})
        p = run_train("--interactions", log, "--catalog", cat, "--factors", 4,
                      "--unknown-items", "error", "--model-version", "v", "-o",
                      self.path("n.lmdb"))
        self.assertEqual(p.returncode, 1)
        self.assertIn("%s:6: item 'gone' is not in the catalog" % log, p.stderr)
        self.assertFalse(os.path.exists(self.path("n.lmdb")))

    def test_help_defines_the_metrics(self):
        p = run_train("--help")
        self.assertEqual(p.returncode, 0)
        for words in ("precision@10 = hits / 10", "recall@10 = hits / held-out items",
                      "NDCG@10", "Hogwild", "--unknown-items"):
            self.assertIn(words, p.stdout)

    def test_progress_bar_on_a_terminal(self):
        log = Log(self.tmp, users=100, items=60)
        pid, fd = pty.fork()
        if pid == 0:
            os.execv(TRAIN, [TRAIN, "--interactions", log.log, "--catalog", log.catalog,
                             "--factors", "8", "--iterations", "2", "--model-version", "v",
                             "-o", self.path("m.lmdb")])
        text = b""
        while True:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            text += chunk
        _, status = os.waitpid(pid, 0)
        self.assertEqual(os.waitstatus_to_exitcode(status), 0, text)
        text = text.decode()
        # Each iteration's line replaces its bar: "\r" and erase-line first.
        self.assertIn("\r\x1b[Kiteration 1/2: loss ", text)
        self.assertIn("\r\x1b[Kiteration 2/2: loss ", text)


class BadInputTest(TrainCase):
    """Each bad input stops the tool with its message and writes nothing."""

    CATALOG = "item_id,category,price_cents,on_sale,member_tier\na,x,1,1,0\nb,x,2,true,1\n"
    LOG = "user_id,item_id,timestamp\nu1,a,5\nu2,b,6\n"
    USERS = "user_id,tier\nu1,2\n"

    # (file to spoil, its text, expected message; {f} is the file's path)
    CASES = [
        ("log", "user_id,weight\nu1,1\n", "{f}:1: missing column 'item_id'"),
        ("log", "user_id,item_id,price\nu1,a,1\n", "{f}:1: unknown column 'price'"),
        ("log", "user_id,item_id,user_id\nu1,a,u1\n", "{f}:1: column 'user_id' appears twice"),
        ("log", "user_id,item_id\nu1,a\nu2,b,7\n", "{f}:3: 3 fields, but the header has 2"),
        ("log", "user_id,item_id,weight\nu1,a,heavy\n", "{f}:2: weight 'heavy' is not a number > 0"),
        ("log", "user_id,item_id,weight\nu1,a,0\n", "{f}:2: weight '0' is not a number > 0"),
        ("log", "user_id,item_id,weight\nu1,a,-1\n", "{f}:2: weight '-1' is not a number > 0"),
        ("log", "user_id,item_id,weight\nu1,a,nan\n", "{f}:2: weight 'nan' is not a number > 0"),
        ("log", "user_id,item_id,weight\nu1,a,1e99\n", "{f}:2: weight '1e99' is not a number > 0"),
        ("log", "user_id,item_id,timestamp\nu1,a,1.5\n",
         "{f}:2: timestamp '1.5' is not an integer >= 0"),
        ("log", "user_id,item_id,event\nu1,a,click\n", "{f}:2: event 'click' is not purchase or view"),
        ("log", "user_id,item_id\n,a\n", "{f}:2: user_id '' must be 1..256 bytes"),
        ("log", "user_id,item_id\n\"u\n1\",a\n",
         "{f}:2: user_id 'u\\n1' must be 1..256 bytes without a newline"),
        ("catalog", "item_id,category,price_cents,on_sale,member_tier\n\"a\nb\",x,1,1,0\n",
         "{f}:2: item_id 'a\\nb' must be 1..256 bytes without a newline"),
        ("log", "user_id,item_id\nu\udce9,a\n", "{f}:2: field 1 is not valid UTF-8"),
        ("log", "user_id,item_id\n", "{f}: no interactions with items in the catalog"),
        ("log", "user_id,item_id\nu1,zzz\n", "{f}: no interactions with items in the catalog"),
        ("log", "", "{f}: empty file"),
        ("log", "user_id,item_id\nu1,\"a\n", "{f}:2: "),
        ("catalog", "item_id,category,price_cents,on_sale,member_tier\na,x,cheap,1,0\n",
         "{f}:2: price_cents 'cheap' is not an integer >= 0"),
        ("catalog", "item_id,category,price_cents,on_sale,member_tier\na,x,1,maybe,0\n",
         "{f}:2: on_sale 'maybe' is not one of 0, 1, true, false"),
        ("catalog", "item_id,category,price_cents,on_sale,member_tier\na,x,1,1,0\na,x,1,1,0\n",
         "{f}:3: item 'a' is listed twice (first as item 1)"),
        ("catalog", "item_id,category,price_cents,on_sale,member_tier\na,,1,1,0\n",
         "{f}:2: category '' must be 1..256 bytes"),
        ("catalog", "item_id,category,price_cents,on_sale\na,x,1,1\n", "{f}:1: "),
        ("catalog", "item_id,category,price_cents,on_sale,member_tier\n",
         "{f}: no items (a model needs at least one)"),
        ("users", "user_id,tier\nu1,300\n", "{f}:2: tier '300' is not an integer in 0..255"),
        ("users", "user_id,tier\nu1,1\nu1,2\n",
         "{f}:3: user 'u1' is listed twice (first on line 2)"),
    ]

    def files(self, spoil=None, text=None):
        paths = {}
        for name, good in (("log", self.LOG), ("catalog", self.CATALOG), ("users", self.USERS)):
            paths[name] = fixtures.write_text(self.path(name + ".csv"),
                                              text if name == spoil else good)
        return paths

    def run_files(self, paths, *extra):
        out = self.path("m.lmdb")
        p = run_train("--interactions", paths["log"], "--catalog", paths["catalog"], "--users",
                      paths["users"], "--factors", 2, "--iterations", 1, "--model-version", "v",
                      "-o", out, *extra)
        return p, out

    def test_good_files_train(self):
        p, out = self.run_files(self.files())
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertTrue(os.path.exists(out))

    def test_each_bad_file(self):
        for spoil, text, message in self.CASES:
            with self.subTest(spoil=spoil, text=text):
                paths = self.files(spoil, text)
                p, out = self.run_files(paths)
                self.assertEqual(p.returncode, 1, p.stderr)
                self.assertTrue(p.stderr.startswith("recsys-train: "), p.stderr)
                self.assertIn(message.format(f=paths[spoil]), p.stderr)
                self.assertEqual(p.stderr.count("\n"), 1, p.stderr)
                self.assertFalse(os.path.exists(out))

    def test_missing_file(self):
        paths = self.files()
        paths["log"] = self.path("nope.csv")
        p, out = self.run_files(paths)
        self.assertEqual(p.returncode, 1)
        self.assertIn("%s: No such file or directory" % paths["log"], p.stderr)

    def test_bad_flags(self):
        paths = self.files()
        for flags, message in (
                (("--algorithm", "svd"), "--algorithm 'svd' must be als or bpr"),
                (("--unknown-items", "warn"), "--unknown-items 'warn' must be skip or error"),
                (("--holdout", "1.5"), "--holdout '1.5' must be a number in [0, 0.9]"),
                (("--alpha", "lots"), "--alpha 'lots' must be a number in [0, 1e+06]"),
                (("--learning-rate", "0"), "--learning-rate '0' must be a number in (0, 10]"),
                (("--factors", "0"), "--factors"),
                (("--model-version", ""), "--model-version must be 1..256 bytes")):
            with self.subTest(flags=flags):
                p, out = self.run_files(paths, *flags)
                self.assertEqual(p.returncode, 2, p.stderr)
                self.assertIn(message, p.stderr)
                self.assertIn("usage: recsys-train", p.stderr)
                self.assertFalse(os.path.exists(out))

    def test_bad_timestamp_unit(self):
        p, out = self.run_files(self.files(), "--timestamp-unit", "us")
        self.assertEqual(p.returncode, 2, p.stderr)
        self.assertIn("--timestamp-unit 'us' must be s or ms", p.stderr)
        self.assertFalse(os.path.exists(out))


def training_record(path):
    """meta/training decoded by FORMAT.md's layout, or None without one."""
    env = fixtures.open_env(path)
    try:
        with env.begin() as txn:
            meta = env.open_db(b"meta", txn=txn, create=False)
            raw = txn.get(b"training", db=meta)
    finally:
        env.close()
    if raw is None:
        return None
    raw = bytes(raw)
    if len(raw) != 24:
        raise AssertionError("training is %d bytes, want 24" % len(raw))
    reg, alpha, view, reserved, end = struct.unpack("<fffIq", raw)
    return {"regularization": reg, "alpha": alpha, "view_weight": view, "reserved": reserved,
            "data_end_unix_ms": end}


def f32(x):
    """x as the float32 the file holds, back in a Python float."""
    return float(np.float32(x))


class TrainingRecordTest(TrainCase):
    """The record holds what the model was trained with and, as its data
    end, the latest timestamp of the log this test wrote, in milliseconds."""

    def small_log(self):
        return Log(self.tmp, users=60, items=40, topics=4, per_user=5, seed=7)

    def run_small(self, interactions, log, out, *extra):
        p = run_train("--interactions", interactions, "--catalog", log.catalog, "--factors", 4,
                      "--iterations", 2, "--model-version", "r", "-o", out, *extra)
        self.assertEqual(p.returncode, 0, p.stderr)
        return p

    def test_als_with_timestamps_in_seconds(self):
        log = self.small_log()
        out = self.path("s.lmdb")
        p = self.run_small(log.log, log, out, "--regularization", "0.1", "--alpha", "15",
                           "--view-weight", "0.5")
        want_end = max(int(r[2]) for r in log.rows) * 1000
        self.assertEqual(training_record(out),
                         {"regularization": f32(0.1), "alpha": 15.0, "view_weight": 0.5,
                          "reserved": 0, "data_end_unix_ms": want_end})
        self.assertIn("training record: regularization 0.1, alpha 15, view weight 0.5, "
                      "data end %d ms (the log's latest timestamp)\n" % want_end, p.stdout)
        self.assertEqual(fixtures.run_tool("verify", out).returncode, 0)

    def test_defaults_and_milliseconds(self):
        log = self.small_log()
        # The same events with millisecond timestamps, each a different
        # number of milliseconds into its second.
        rows = [[u, i, int(t) * 1000 + k % 997] for k, (u, i, t) in enumerate(log.rows)]
        path = fixtures.write_csv(self.path("ms.csv"), ["user_id", "item_id", "timestamp"], rows)
        out = self.path("ms.lmdb")
        self.run_small(path, log, out, "--timestamp-unit", "ms")
        self.assertEqual(training_record(out),
                         {"regularization": f32(0.05), "alpha": 20.0, "view_weight": 0.25,
                          "reserved": 0, "data_end_unix_ms": max(r[2] for r in rows)})

    def test_milliseconds_read_as_seconds_are_refused(self):
        log = self.small_log()
        rows = [[u, i, int(t) * 1000] for u, i, t in log.rows]
        path = fixtures.write_csv(self.path("ms.csv"), ["user_id", "item_id", "timestamp"], rows)
        out = self.path("refused.lmdb")
        p = run_train("--interactions", path, "--catalog", log.catalog, "--factors", 4,
                      "--iterations", 2, "--model-version", "r", "-o", out)
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn("the latest timestamp, %d, is after the year 9999 as unix seconds"
                      % max(r[2] for r in rows), p.stderr)
        self.assertIn("--timestamp-unit ms", p.stderr)
        self.assertFalse(os.path.exists(out))

    def test_without_timestamps(self):
        log = self.small_log()
        plain = fixtures.write_csv(self.path("plain.csv"), ["user_id", "item_id"],
                                   [r[:2] for r in log.rows])
        out = self.path("plain.lmdb")
        p = self.run_small(plain, log, out)
        self.assertEqual(training_record(out)["data_end_unix_ms"], 0)
        self.assertIn("data end 0 (the log has no timestamp column: no event is taken as held)",
                      p.stdout)

    def test_bpr_records_its_flags_as_given(self):
        log = self.small_log()
        out = self.path("bpr.lmdb")
        self.run_small(log.log, log, out, "--algorithm", "bpr", "--threads", 1,
                       "--regularization", "0.02", "--alpha", "7")
        rec = training_record(out)
        self.assertEqual((rec["regularization"], rec["alpha"], rec["view_weight"]),
                         (f32(0.02), 7.0, 0.25))
        self.assertEqual(rec["data_end_unix_ms"], max(int(r[2]) for r in log.rows) * 1000)

    def test_help_says_the_fold_in_follows_als(self):
        p = run_train("--help")
        self.assertIn("--timestamp-unit s|ms", p.stdout)
        self.assertIn("implicit-ALS", p.stdout)


if __name__ == "__main__":
    unittest.main()
