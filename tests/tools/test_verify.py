"""recsys-model verify (and inspect) on good and damaged files, and demo.

Damaged files are made from a good one: cut, emptied, replaced, or with one
value changed in place (a NaN factor, a wrong dimension, a changed price),
so each kind of damage reaches the reader's own check rather than failing
earlier for an unrelated reason.
"""

import math
import os
import re
import shutil
import struct
import tempfile
import unittest

import numpy as np

import fixtures
from fixtures import run_tool

EXIT_FAILED = 1
DEMO_CATEGORIES = ["course", "ebook", "audiobook", "workshop", "consultation", "bundle"]


def tamper(path, key, change):
    """Change meta/<key> of the model at path in place: change(bytearray,
    header) edits a copy of the value read with python3-lmdb, and the new
    bytes overwrite the old ones where they lie in the file. Writing through
    LMDB instead would re-insert a large value and shift its small
    neighbours in their leaf page, breaking their 64-byte alignment before
    the reader ever got to the damage under test."""
    env = fixtures.open_env(path)
    try:
        with env.begin() as txn:
            meta = env.open_db(b"meta", txn=txn, create=False)
            header = fixtures.parse_header(txn.get(b"header", db=meta))
            old = bytes(txn.get(key.encode(), db=meta))
    finally:
        env.close()
    new = bytearray(old)
    change(new, header)
    with open(path, "r+b") as f:
        data = f.read()
        at = data.find(old)
        assert at >= 0 and data.find(old, at + 1) < 0, "meta/%s is not unique in the file" % key
        f.seek(at)
        f.write(new)


def blob_offset(header, blob):
    return header["blob_pad"][fixtures.BLOBS.index(blob)]


class VerifyTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="recsys-test-")
        cls.ds = fixtures.make_model(cls.tmp, users=80, items=300, dim=16, seed=41)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp)

    def copy(self, name):
        path = os.path.join(self.tmp, name)
        shutil.copyfile(self.ds.path, path)
        return path

    def assert_bad(self, path, problem):
        """verify and inspect both exit 1 with 'recsys-model: <path>: <problem>'."""
        for command in ("verify", "inspect"):
            with self.subTest(command=command):
                p = run_tool(command, path)
                self.assertEqual(p.returncode, EXIT_FAILED, p.stdout + p.stderr)
                self.assertEqual(p.stdout, "")
                self.assertEqual(len(p.stderr.splitlines()), 1, p.stderr)
                self.assertTrue(p.stderr.startswith("recsys-model: %s: %s" % (path, problem)),
                                p.stderr)

    def test_good_file(self):
        p = run_tool("verify", self.ds.path)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stdout, "OK %s: version test-v1, 80 users, 300 items\n" % self.ds.path)
        self.assertEqual(p.stderr, "")

    def test_empty_file(self):
        path = fixtures.write_text(os.path.join(self.tmp, "empty.lmdb"), "")
        self.assert_bad(path, "empty file, not a model")

    def test_text_file(self):
        path = fixtures.write_text(os.path.join(self.tmp, "text.lmdb"), "not a model\n" * 500)
        self.assert_bad(path, "not an LMDB file")

    def test_truncated_file(self):
        path = self.copy("truncated.lmdb")
        size = os.path.getsize(path)
        os.truncate(path, size // 2)
        self.assert_bad(path, "truncated: %d bytes, the database needs %d" % (size // 2, size))

    def test_missing_file_and_directory(self):
        self.assert_bad(os.path.join(self.tmp, "nope.lmdb"), "No such file or directory")
        self.assert_bad(self.tmp, "not a regular file")

    def test_nan_factor(self):
        path = self.copy("nan.lmdb")
        row, col = 7, 3

        def put_nan(value, h):
            at = blob_offset(h, "item_matrix") + 4 * (row * h["stride"] + col)
            value[at:at + 4] = struct.pack("<f", math.nan)
        tamper(path, "item_matrix", put_nan)
        m = fixtures.read_model(path)
        self.assertTrue(math.isnan(m["item_matrix"][row, col]), "the tampering took effect")
        p = run_tool("verify", path)
        self.assertEqual(p.returncode, EXIT_FAILED)
        self.assertRegex(p.stderr, r"^recsys-model: %s: item (row )?%d factor %d is not finite\n$"
                         % (re.escape(path), row, col))

    def test_wrong_dimension_in_header(self):
        def set_dim(dim, stride):
            def change(value, h):
                struct.pack_into("<2I", value, 12, dim, stride)
            return change

        path = self.copy("dim.lmdb")
        tamper(path, "header", set_dim(32, 16))
        self.assert_bad(path, "header stride 16 is wrong for dim 32 (want 32)")

        # A consistent header that does not match the matrices.
        path = self.copy("dim2.lmdb")
        tamper(path, "header", set_dim(32, 32))
        p = run_tool("verify", path)
        self.assertEqual(p.returncode, EXIT_FAILED)
        self.assertTrue(p.stderr.startswith("recsys-model: %s: header dim 32 does not match "
                                            "item_matrix size" % path), p.stderr)

    def test_checksum_mismatch(self):
        path = self.copy("price.lmdb")

        def change_price(value, h):
            at = blob_offset(h, "item_attrs")
            (price,) = struct.unpack_from("<q", value, at)
            struct.pack_into("<q", value, at, price + 1)
        tamper(path, "item_attrs", change_price)
        self.assert_bad(path, "checksum mismatch: the file says %016x, the content is "
                        % fixtures.read_model(self.ds.path)["checksum"])

    def test_import_refuses_nan(self):
        V = self.ds.V.copy()
        V[9, 2] = np.nan
        d = tempfile.mkdtemp(dir=self.tmp)
        files = dict(self.ds.files, item_factors=fixtures.write_npy(os.path.join(d, "V.npy"), V))
        out = os.path.join(d, "m.lmdb")
        p = run_tool("import", *fixtures.import_args(files), "--model-version", "v", "-o", out)
        self.assertEqual(p.returncode, EXIT_FAILED)
        self.assertEqual(p.stderr, "recsys-model: %s: row 9 ('%s'), column 2 is NaN\n"
                         % (files["item_factors"], self.ds.item_ids[9]))
        self.assertFalse(os.path.exists(out))


class DemoTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="recsys-test-")
        cls.path = os.path.join(cls.tmp, "demo.lmdb")
        p = run_tool("demo", "-o", cls.path)
        if p.returncode != 0:
            raise AssertionError(p.stderr)
        cls.stdout = p.stdout
        cls.m = fixtures.read_model(cls.path)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp)

    def demo(self, name, *args):
        path = os.path.join(self.tmp, name)
        p = run_tool("demo", "-o", path, *args)
        self.assertEqual(p.returncode, 0, p.stderr)
        return path

    def checksum(self, path):
        p = run_tool("inspect", path)
        self.assertEqual(p.returncode, 0, p.stderr)
        return fixtures.parse_fields(p.stdout)["checksum"]

    def test_deterministic(self):
        args = ("--users", "700", "--items", "400", "--dim", "8", "--seed", "9")
        a, b = self.demo("a.lmdb", *args), self.demo("b.lmdb", *args)
        self.assertEqual(self.checksum(a), self.checksum(b))
        with open(a, "rb") as fa, open(b, "rb") as fb:
            self.assertEqual(fa.read(), fb.read())
        c = self.demo("c.lmdb", *args[:-1], "10")
        self.assertNotEqual(self.checksum(c), self.checksum(a))

    def test_more_users_leave_the_items_alone(self):
        # One random stream per phase: the catalog depends on the seed only.
        a = fixtures.read_model(self.demo("few.lmdb", "--users", "10", "--items", "50"))
        b = fixtures.read_model(self.demo("many.lmdb", "--users", "90", "--items", "50"))
        self.assertEqual(a["item_ids"], b["item_ids"])
        np.testing.assert_array_equal(a["item_matrix"], b["item_matrix"])

    def test_verifies(self):
        p = run_tool("verify", self.path)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stdout, "OK %s: version demo-1-32d, 30000 users, 6000 items\n"
                         % self.path)

    def test_defaults_and_summary(self):
        m = self.m
        self.assertEqual((m["user_count"], m["item_count"], m["dim"]), (30000, 6000, 32))
        self.assertEqual(m["version"], "demo-1-32d")
        self.assertEqual(m["has_bias"], 0)
        self.assertEqual(self.stdout, "wrote %s: version demo-1-32d, 30000 users, 6000 items, "
                         "dim 32, 6 categories, %d purchases\n" % (self.path, m["purchase_count"]))

    def test_training_record_of_defaults(self):
        # FORMAT.md's defaults and data end 0: the demo's factors were
        # planted, not trained on events.
        env = fixtures.open_env(self.path)
        try:
            with env.begin() as txn:
                raw = bytes(txn.get(b"training", db=env.open_db(b"meta", txn=txn, create=False)))
        finally:
            env.close()
        self.assertEqual(struct.unpack("<fffIq", raw),
                         (float(np.float32(0.05)), 20.0, 0.25, 0, 0))
        p = run_tool("inspect", self.path)
        self.assertEqual(fixtures.parse_fields(p.stdout)["training"],
                         "regularization 0.05, alpha 20, view weight 0.25, data end 0 (unknown)")

    def test_catalog(self):
        m = self.m
        self.assertEqual(m["categories"], DEMO_CATEGORIES)
        a = m["attrs"]
        cat = np.array(m["categories"])[a["category"]]
        for name in DEMO_CATEGORIES:
            self.assertGreater((cat == name).sum(), 100, name)
        for name, lo, hi in (("ebook", 499, 2999), ("course", 2900, 29900),
                             ("consultation", 5000, 50000)):
            prices = a["price_cents"][cat == name]
            self.assertGreaterEqual(prices.min(), lo, name)
            self.assertLessEqual(prices.max(), hi, name)
            self.assertGreater(len(set(prices.tolist())), 5, name)
        off_sale = 1 - a["on_sale"].mean()
        self.assertTrue(0.05 < off_sale < 0.11, off_sale)
        tiers = np.bincount(a["tier"], minlength=3)
        self.assertEqual(len(tiers), 3)
        self.assertTrue(tiers[1] > 0 and tiers[2] > 0 and tiers[0] > tiers[1] + tiers[2])
        pattern = re.compile(r"^(%s)-\d{5}$" % "|".join(DEMO_CATEGORIES))
        self.assertTrue(all(pattern.match(i) for i in m["item_ids"]))

    def test_users_and_purchases(self):
        m = self.m
        users = m["users"]
        self.assertTrue(all(re.match(r"^u\d{6}$", u) for u in users))
        tiers = np.bincount([t for _, t, _, _ in users.values()], minlength=3)
        self.assertEqual(len(tiers), 3)
        self.assertTrue(tiers[0] > 0.7 * len(users) and tiers[1] > tiers[2] > 0, tiers)
        counts = [len(owned) for _, _, owned, _ in users.values()]
        self.assertTrue(min(counts) >= 1 and max(counts) <= 40, (min(counts), max(counts)))
        self.assertEqual(sum(counts), m["purchase_count"])
        item_tier = m["attrs"]["tier"]
        for uid, (_, tier, owned, _) in users.items():
            for i in owned:  # nobody pays for what their membership includes
                self.assertFalse(0 < item_tier[i] <= tier, (uid, i))
        # A long tail: the best sellers sell far more than the typical item.
        pop = m["popularity"]["count"]
        self.assertGreater(int(pop[0]), 5 * int(np.median(pop)))

    def test_planted_taste_structure(self):
        # What users bought scores well above the catalog average for them:
        # the factors explain the purchases.
        m = self.m
        U, V = m["user_matrix"], m["item_matrix"]
        rows = sorted(m["users"].values())[:2000]
        scores = U[[r for r, _, _, _ in rows]] @ V.T
        bought = np.mean([scores[k, owned].mean() for k, (_, _, owned, _) in enumerate(rows)])
        self.assertGreater(bought - scores.mean(), 1.0 * scores.std())


if __name__ == "__main__":
    unittest.main()
