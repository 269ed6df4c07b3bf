"""recsys-model import: what goes in comes out.

Each model is imported with the real tool and read back independently, with
python3-lmdb and numpy following model/FORMAT.md (fixtures.read_model), so a
bug shared by the writer and the C reader cannot hide. verify and inspect
are then checked against the dataset, not against earlier output.
"""

import csv
import os
import resource
import shutil
import signal
import struct
import subprocess
import tempfile
import time
import unittest

import numpy as np

import fixtures
from fixtures import run_tool


class ImportCase(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="recsys-test-")

    def tearDown(self):
        shutil.rmtree(self.tmp)

    def sub(self, name):
        d = os.path.join(self.tmp, name)
        os.mkdir(d)
        return d

    def import_files(self, files, out, *extra, version="test-v1", created_at=1_700_000_001):
        return run_tool("import", *fixtures.import_args(files), "--model-version", version,
                        "--created-at", created_at, "-o", out, *extra)


class RoundTripTest(ImportCase):
    def check_model(self, ds):
        m = fixtures.read_model(ds.path, content=True)
        n_users, n_items = len(ds.user_ids), len(ds.item_ids)

        # header and meta
        self.assertEqual(m["magic"], b"RECSYSM\0")
        self.assertEqual(m["format_version"], 1)
        self.assertEqual(m["dim"], ds.dim)
        self.assertEqual(m["stride"], -(-ds.dim // 16) * 16)
        self.assertEqual(m["elem_type"], 0)
        self.assertEqual(m["has_bias"], int(ds.bias))
        self.assertEqual((m["user_count"], m["item_count"]), (n_users, n_items))
        self.assertEqual(m["category_count"], len(ds.categories))
        self.assertEqual(m["purchase_count"], sum(len(o) for o in ds.owned.values()))
        self.assertEqual(m["created_at"], ds.created_at)
        self.assertEqual(m["blob_pad"][6:], [0, 0])  # no reduced copies asked for
        self.assertEqual(m["meta_keys"], sorted(["header", "version", "checksum", "item_matrix",
                                                 "user_matrix", "item_attrs", "item_ids",
                                                 "categories", "popularity"]))
        self.assertEqual(m["version"], ds.version)
        self.assertEqual(m["checksum"], fixtures.rch64(m["content"]))

        # items: ids both ways, vectors bit for bit, zero row padding, attributes
        self.assertEqual(m["item_ids"], ds.item_ids)
        self.assertEqual(m["items"], {iid: i for i, iid in enumerate(ds.item_ids)})
        np.testing.assert_array_equal(m["item_matrix"], ds.V)
        self.assertFalse(m["item_matrix_full"][:, ds.dim:].any())
        self.assertEqual(m["categories"], ds.categories)
        a = m["attrs"]
        self.assertEqual([m["categories"][c] for c in a["category"]], ds.category)
        self.assertEqual(a["price_cents"].tolist(), ds.price)
        self.assertEqual(a["on_sale"].tolist(), [int(x) for x in ds.on_sale])
        self.assertEqual(a["tier"].tolist(), ds.item_tier)
        self.assertFalse(a["pad"].any())

        # users: row = line of the id file, vector (+1.0 with a bias), tier, owned
        self.assertEqual(set(m["users"]), set(ds.user_ids))
        for u, uid in enumerate(ds.user_ids):
            row, tier, owned, size = m["users"][uid]
            self.assertEqual(row, u, uid)
            self.assertEqual(tier, ds.user_tier[uid], uid)
            self.assertEqual(owned, sorted(ds.item_index[i] for i in ds.owned[uid]), uid)
            self.assertEqual(size, 12 + 4 * len(owned))
        if ds.bias:
            np.testing.assert_array_equal(m["user_matrix"][:, :-1], ds.U)
            self.assertTrue((m["user_matrix"][:, -1] == 1.0).all())
        else:
            np.testing.assert_array_equal(m["user_matrix"], ds.U)
        self.assertFalse(m["user_matrix_full"][:, ds.dim:].any())

        # popularity: distinct owners, count descending, ties to the lower index
        want = [(i, ds.popularity[i]) for i in ds.popular_order()]
        got = [(int(p["item"]), int(p["count"])) for p in m["popularity"]]
        self.assertEqual(got, want)
        return m

    def check_tools(self, ds, m):
        p = run_tool("verify", ds.path)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stdout, "OK %s: version %s, %d users, %d items\n"
                         % (ds.path, ds.version, len(ds.user_ids), len(ds.item_ids)))

        p = run_tool("inspect", ds.path)
        self.assertEqual(p.returncode, 0, p.stderr)
        f = fixtures.parse_fields(p.stdout)
        iso = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ds.created_at))
        expect = {
            "path": ds.path, "format_version": "1", "version": ds.version,
            "created_at": "%d (%s)" % (ds.created_at, iso), "dim": str(ds.dim),
            "has_bias": str(int(ds.bias)), "element_type": "f32",
            "users": str(len(ds.user_ids)), "items": str(len(ds.item_ids)),
            "purchases": str(sum(len(o) for o in ds.owned.values())),
            "file_bytes": str(os.path.getsize(ds.path)), "checksum": "%016x" % m["checksum"],
            "categories": str(len(ds.categories)), "popular": "5",
        }
        for k, v in expect.items():
            self.assertEqual(f.get(k), v, k)

        lines = p.stdout.splitlines()
        start = lines.index("categories:      %d" % len(ds.categories)) + 1
        cats = [line.split() for line in lines[start:start + len(ds.categories)]]
        self.assertEqual(cats, [[c, str(ds.category.count(c)), "items"] for c in ds.categories])
        start = lines.index("popular:         5") + 1
        top = [line.split() for line in lines[start:start + 5]]
        self.assertEqual(top, [["%d." % (k + 1), ds.item_ids[i], str(ds.popularity[i]),
                                "purchases"] for k, i in enumerate(ds.popular_order()[:5])])

    def test_round_trip(self):
        ds = fixtures.make_model(self.tmp, users=150, items=260, dim=16, seed=3)
        self.check_tools(ds, self.check_model(ds))

    def test_round_trip_with_bias_folded_in(self):
        # 16 factors + the bias: stride 32, so the row padding is exercised too.
        ds = fixtures.make_model(self.tmp, users=90, items=120, dim=16, seed=4, bias=True,
                                 version="bias-v1")
        self.assertEqual(ds.V.shape[1], 17)
        self.check_tools(ds, self.check_model(ds))

    def test_round_trip_without_tiers_and_purchases(self):
        ds = fixtures.make_model(self.tmp, users=40, items=50, dim=5, seed=5, tiers=False,
                                 owned_per_user=(0, 0))
        self.assertNotIn("users", ds.files)
        m = self.check_model(ds)
        self.assertEqual(m["purchase_count"], 0)
        self.assertEqual([int(p["item"]) for p in m["popularity"]], list(range(50)))

    def test_summary_line(self):
        ds = fixtures.make_model(self.tmp, users=30, items=40, dim=8, seed=6, bias=True)
        out = os.path.join(self.tmp, "again.lmdb")
        p = self.import_files(ds.files, out, version="v7")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stdout,
                         "wrote %s: version v7, 30 users, 40 items, dim 9 (item bias folded in), "
                         "%d categories, %d purchases\n"
                         % (out, len(ds.categories), sum(len(o) for o in ds.owned.values())))

    def test_created_at_defaults_to_now(self):
        ds = fixtures.make_model(self.tmp, users=10, items=12, dim=4, seed=7)
        out = os.path.join(self.tmp, "now.lmdb")
        before = int(time.time())
        p = run_tool("import", *fixtures.import_args(ds.files), "--model-version", "x", "-o", out)
        after = int(time.time())
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertTrue(before <= fixtures.read_model(out)["created_at"] <= after)

    def test_users_without_factors_at_all(self):
        # Zero users is a valid model: every caller is a cold start.
        d = self.sub("nousers")
        V = np.array([[0.5, -1.0], [0.25, 0.0]], dtype=np.float32)
        files = {
            "user_factors": fixtures.write_npy(os.path.join(d, "U.npy"),
                                               np.zeros((0, 2), np.float32)),
            "user_ids": fixtures.write_text(os.path.join(d, "users.txt"), ""),
            "item_factors": fixtures.write_npy(os.path.join(d, "V.npy"), V),
            "item_ids": fixtures.write_ids(os.path.join(d, "items.txt"), ["a", "b"]),
            "catalog": fixtures.write_csv(os.path.join(d, "catalog.csv"),
                                          fixtures.CATALOG_HEADER,
                                          [["a", "x", 1, 1, 0], ["b", "y", 2, 0, 1]]),
        }
        out = os.path.join(d, "m.lmdb")
        p = self.import_files(files, out)
        self.assertEqual(p.returncode, 0, p.stderr)
        m = fixtures.read_model(out)
        self.assertEqual((m["user_count"], m["item_count"], m["users"]), (0, 2, {}))
        np.testing.assert_array_equal(m["item_matrix"], V)
        self.assertEqual(m["categories"], ["x", "y"])
        self.assertEqual(run_tool("verify", out).returncode, 0)


def bf16_of(x):
    """float32 -> bf16 bit patterns, nearest with ties to even (FORMAT.md)."""
    bits = np.ascontiguousarray(x, dtype="<f4").view("<u4").astype(np.uint64)
    upper, lower = bits >> 16, bits & 0xFFFF
    up = (lower > 0x8000) | ((lower == 0x8000) & ((upper & 1) == 1))
    return (upper + up).astype(np.uint16)


class QuantizeTest(ImportCase):
    """--quantize: the copies hold the documented rounding of the factors,
    recomputed here from FORMAT.md, and the file stays valid."""

    def imported(self, quantize, bias=True):
        ds = fixtures.make_model(self.tmp, users=60, items=90, dim=20, seed=11, bias=bias)
        out = os.path.join(self.tmp, "q.lmdb")
        p = self.import_files(ds.files, out, "--quantize", quantize)
        self.assertEqual(p.returncode, 0, p.stderr)
        return ds, fixtures.read_model(out, content=True), out

    def test_both_copies(self):
        ds, m, out = self.imported("bf16,int8")
        base = ["header", "version", "checksum", "item_matrix", "user_matrix", "item_attrs",
                "item_ids", "categories", "popularity"]
        self.assertEqual(m["meta_keys"], sorted(base + ["item_bf16", "item_int8"]))
        self.assertEqual(m["checksum"], fixtures.rch64(m["content"]))
        full = m["item_matrix_full"]  # dim 21 with the bias, stride 32
        np.testing.assert_array_equal(m["item_matrix"], ds.V)
        np.testing.assert_array_equal(m["item_bf16"], bf16_of(full))
        scale = np.abs(full).max(axis=1).astype(np.float32) / np.float32(127)
        np.testing.assert_array_equal(m["item_int8_scale"], scale)
        q = np.rint(full / scale[:, None]).astype(np.int8)
        np.testing.assert_array_equal(m["item_int8"], q)
        self.assertFalse(m["item_int8"][:, m["dim"]:].any())
        # Every copy element stands close to its factor.
        self.assertLessEqual(np.abs(m["item_int8"] * scale[:, None] - full).max(),
                             scale.max() / 2 * 1.0001)
        p = run_tool("verify", out)
        self.assertEqual(p.returncode, 0, p.stderr)
        p = run_tool("inspect", out)
        line = [x for x in p.stdout.splitlines() if x.startswith("quantized:")]
        self.assertEqual(len(line), 1, p.stdout)
        self.assertRegex(line[0], r"^quantized: +bf16 \(max error [0-9.e-]+ of the largest norm\), "
                                  r"int8 \(max error [0-9.e-]+ of the largest norm\)$")

    def test_one_copy(self):
        _, m, _ = self.imported("int8", bias=False)
        self.assertIn("item_int8", m["meta_keys"])
        self.assertNotIn("item_bf16", m["meta_keys"])
        self.assertEqual(m["blob_pad"][6], 0)  # the absent copy's pad

    def test_none(self):
        _, m, out = self.imported("none")
        self.assertNotIn("item_int8", m["meta_keys"])
        self.assertNotIn("item_bf16", m["meta_keys"])
        self.assertIn("quantized:       none", run_tool("inspect", out).stdout)

    def test_unknown_copy_is_a_usage_error(self):
        ds = fixtures.make_model(self.tmp, users=5, items=6, dim=4, seed=12)
        out = os.path.join(self.tmp, "bad.lmdb")
        p = self.import_files(ds.files, out, "--quantize", "bf16,fp8")
        self.assertEqual(p.returncode, 2)
        self.assertIn("--quantize: 'fp8' is not bf16 or int8 (or 'none')", p.stderr)
        self.assertFalse(os.path.exists(out))


def raw_meta(path, key):
    """The bytes of meta/<key>, or None."""
    env = fixtures.open_env(path)
    try:
        with env.begin() as txn:
            meta = env.open_db(b"meta", txn=txn, create=False)
            raw = txn.get(key.encode(), db=meta)
            return None if raw is None else bytes(raw)
    finally:
        env.close()


def f32(x):
    """x as the float32 the file holds, back in a Python float."""
    return float(np.float32(x))


class TrainingRecordTest(ImportCase):
    """--regularization, --alpha, --view-weight, --data-end: any of them
    writes the record FORMAT.md lays out, the rest at the documented
    defaults; none writes the file as it always was."""

    @classmethod
    def setUpClass(cls):
        cls.base_tmp = tempfile.mkdtemp(prefix="recsys-test-")
        cls.ds = fixtures.make_model(cls.base_tmp, users=20, items=30, dim=4, seed=31)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.base_tmp)

    def record(self, out):
        raw = raw_meta(out, "training")
        if raw is None:
            return None
        self.assertEqual(len(raw), 24)
        return struct.unpack("<fffIq", raw)

    def inspect_training(self, out):
        p = run_tool("inspect", out)
        self.assertEqual(p.returncode, 0, p.stderr)
        return fixtures.parse_fields(p.stdout)["training"]

    def test_all_flags(self):
        out = os.path.join(self.tmp, "all.lmdb")
        p = self.import_files(self.ds.files, out, "--regularization", "0.125", "--alpha", "12.5",
                              "--view-weight", "0.75", "--data-end", "1700000000123")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(self.record(out), (0.125, 12.5, 0.75, 0, 1_700_000_000_123))
        m = fixtures.read_model(out, content=True)
        self.assertIn("training", m["meta_keys"])
        self.assertEqual(m["checksum"], fixtures.rch64(m["content"]))  # covered like any pair
        self.assertEqual(run_tool("verify", out).returncode, 0)
        iso = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(1_700_000_000)) + ".123Z"
        self.assertEqual(self.inspect_training(out),
                         "regularization 0.125, alpha 12.5, view weight 0.75, "
                         "data end 1700000000123 (%s)" % iso)

    def test_regularization_scaling(self):
        # Spark's rule is the record's word at offset 12: 1; "none" is 0,
        # the word every file held before the rule, and anything else is a
        # usage error that writes nothing.
        out = os.path.join(self.tmp, "spark.lmdb")
        p = self.import_files(self.ds.files, out, "--regularization", "0.1",
                              "--regularization-scaling", "per-interaction")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(self.record(out), (f32(0.1), 20.0, 0.25, 1, 0))
        self.assertEqual(self.inspect_training(out),
                         "regularization 0.1 per interaction, alpha 20, view weight 0.25, "
                         "data end 0 (unknown)")
        out = os.path.join(self.tmp, "none.lmdb")
        p = self.import_files(self.ds.files, out, "--regularization-scaling", "none")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(self.record(out), (f32(0.05), 20.0, 0.25, 0, 0))
        out = os.path.join(self.tmp, "bad.lmdb")
        p = self.import_files(self.ds.files, out, "--regularization-scaling", "per-user")
        self.assertEqual(p.returncode, 2)
        self.assertIn("--regularization-scaling: 'per-user' is not none or per-interaction",
                      p.stderr)
        self.assertFalse(os.path.exists(out))

    def test_one_flag_takes_the_defaults_for_the_rest(self):
        for flag, value, want in (
                ("--alpha", "3", (f32(0.05), 3.0, 0.25, 0, 0)),
                ("--data-end", "0", (f32(0.05), 20.0, 0.25, 0, 0)),
                ("--view-weight", "1e-3", (f32(0.05), 20.0, f32(1e-3), 0, 0)),
                ("--regularization", "0", (0.0, 20.0, 0.25, 0, 0))):
            with self.subTest(flag=flag):
                out = os.path.join(self.tmp, flag[2:] + ".lmdb")
                p = self.import_files(self.ds.files, out, flag, value)
                self.assertEqual(p.returncode, 0, p.stderr)
                self.assertEqual(self.record(out), want)
        self.assertEqual(self.inspect_training(os.path.join(self.tmp, "alpha.lmdb")),
                         "regularization 0.05, alpha 3, view weight 0.25, data end 0 (unknown)")

    def test_no_flags_no_record(self):
        out = os.path.join(self.tmp, "none.lmdb")
        p = self.import_files(self.ds.files, out)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIsNone(raw_meta(out, "training"))
        # The nine keys of a file written before the record existed, hashed
        # as FORMAT.md says.
        m = fixtures.read_model(out, content=True)
        self.assertEqual(m["meta_keys"], sorted(["header", "version", "checksum", "item_matrix",
                                                 "user_matrix", "item_attrs", "item_ids",
                                                 "categories", "popularity"]))
        self.assertEqual(m["checksum"], fixtures.rch64(m["content"]))
        self.assertEqual(self.inspect_training(out),
                         "none (defaults: regularization 0.05, alpha 20, view weight 0.25, "
                         "data end 0 (unknown))")

    def test_bad_values_are_refused_and_write_nothing(self):
        for flag, value, message in (
                ("--regularization", "abc", "--regularization: 'abc' is not a finite number >= 0"),
                ("--regularization", "-0.1", "--regularization: '-0.1' is not a finite number >= 0"),
                ("--regularization", "1e40", "--regularization: '1e40' is not a finite number >= 0"),
                ("--alpha", "nan", "--alpha: 'nan' is not a finite number >= 0"),
                ("--alpha", "inf", "--alpha: 'inf' is not a finite number >= 0"),
                ("--alpha", "", "--alpha: '' is not a finite number >= 0"),
                ("--view-weight", "0", "--view-weight: '0' is not a finite number > 0"),
                ("--view-weight", "-2", "--view-weight: '-2' is not a finite number > 0"),
                ("--view-weight", "0.5x", "--view-weight: '0.5x' is not a finite number > 0"),
                ("--data-end", "-1", "--data-end: '-1' is not a number in 0..9223372036854775807"),
                ("--data-end", "1.5", "--data-end: '1.5' is not a number in 0..9223372036854775807"),
                ("--data-end", "9223372036854775808",
                 "--data-end: '9223372036854775808' is not a number in 0..9223372036854775807")):
            with self.subTest(flag=flag, value=value):
                out = os.path.join(self.tmp, "bad.lmdb")
                p = self.import_files(self.ds.files, out, "--alpha", "5", flag, value)
                self.assertEqual(p.returncode, 2, p.stderr)
                self.assertEqual(p.stderr.splitlines()[0], "recsys-model: " + message)
                self.assertFalse(os.path.exists(out))
                self.assertEqual(os.listdir(self.tmp), [])


class InputSpellingTest(ImportCase):
    """Different spellings of the same inputs make the same model: the
    checksum covers the whole content, so equal checksums mean equal models."""

    @classmethod
    def setUpClass(cls):
        cls.base_tmp = tempfile.mkdtemp(prefix="recsys-test-")
        cls.ds = fixtures.make_model(cls.base_tmp, users=60, items=80, dim=8, seed=11)
        cls.want = fixtures.read_model(cls.ds.path)["checksum"]

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.base_tmp)

    def checksum_of(self, files):
        out = os.path.join(self.tmp, "m.lmdb")
        p = self.import_files(files, out, created_at=self.ds.created_at)
        self.assertEqual(p.returncode, 0, p.stderr)
        return fixtures.read_model(out)["checksum"]

    def rewrite_csv(self, key, order, crlf=False, quote_all=False, bom=False):
        """files[key] with its columns in `order`, optionally CRLF, every
        field quoted and a byte order mark."""
        with open(self.ds.files[key], encoding="utf-8", newline="") as f:
            rows = list(csv.DictReader(f))
        path = os.path.join(self.tmp, os.path.basename(self.ds.files[key]))
        with open(path, "w", encoding="utf-8-sig" if bom else "utf-8", newline="") as f:
            w = csv.writer(f, lineterminator="\r\n" if crlf else "\n",
                           quoting=csv.QUOTE_ALL if quote_all else csv.QUOTE_MINIMAL)
            w.writerow(order)
            for r in rows:
                w.writerow([r[c] for c in order])
            if crlf:
                f.write("\r\n")  # a trailing empty line is skipped
        return path

    def test_columns_in_any_order_quoted_crlf_bom(self):
        files = dict(self.ds.files)
        files["catalog"] = self.rewrite_csv(
            "catalog", ["member_tier", "on_sale", "item_id", "price_cents", "category"],
            crlf=True, quote_all=True, bom=True)
        files["purchases"] = self.rewrite_csv("purchases", ["item_id", "user_id"], crlf=True)
        files["users"] = self.rewrite_csv("users", ["tier", "user_id"], quote_all=True)
        self.assertEqual(self.checksum_of(files), self.want)

    def test_id_files_with_crlf_and_no_final_newline(self):
        files = dict(self.ds.files)
        files["user_ids"] = fixtures.write_ids(os.path.join(self.tmp, "users.txt"),
                                               self.ds.user_ids, newline="\r\n")
        files["item_ids"] = fixtures.write_text(os.path.join(self.tmp, "items.txt"),
                                                "\n".join(self.ds.item_ids))
        self.assertEqual(self.checksum_of(files), self.want)

    def test_npy_format_versions_2_and_3(self):
        for version in ((2, 0), (3, 0)):
            with self.subTest(version=version):
                files = dict(self.ds.files)
                for key, arr in (("user_factors", self.ds.U), ("item_factors", self.ds.V)):
                    header = "{'descr': '<f4', 'fortran_order': False, 'shape': (%d, %d), }" \
                             % arr.shape
                    files[key] = fixtures.write_raw_npy(
                        os.path.join(self.tmp, key + ".npy"), header,
                        np.ascontiguousarray(arr).tobytes(), version=version)
                self.assertEqual(self.checksum_of(files), self.want)

    def test_quoted_commas_and_quotes_in_category_names(self):
        ds = fixtures.make_model(self.tmp, users=20, items=30, dim=4, seed=12,
                                 categories=('live,"workshop"', "e-book", "c\u00f6urse"))
        m = fixtures.read_model(ds.path)
        self.assertEqual(m["categories"], ds.categories)
        self.assertIn('live,"workshop"', m["categories"])
        self.assertEqual([m["categories"][c] for c in m["attrs"]["category"]], ds.category)


class AtomicityTest(ImportCase):
    def test_failed_import_leaves_the_old_model_and_no_temp_files(self):
        ds = fixtures.make_model(self.tmp, users=30, items=40, dim=4, seed=21)
        bad = dict(ds.files)
        bad["catalog"] = fixtures.write_csv(
            os.path.join(self.sub("bad"), "catalog.csv"), fixtures.CATALOG_HEADER,
            [[ds.item_ids[0], "course", "12x", 1, 0]])
        with open(ds.path, "rb") as f:
            before = f.read()
        listing = sorted(os.listdir(self.tmp))

        p = self.import_files(bad, ds.path)
        self.assertEqual(p.returncode, 1, p.stderr)
        with open(ds.path, "rb") as f:
            self.assertEqual(f.read(), before)
        self.assertEqual(sorted(os.listdir(self.tmp)), listing)

    def test_write_failure_after_the_temp_file_exists(self):
        # A file size limit makes writing fail once the temporary file is
        # being filled (SIGXFSZ ignored, so the write returns EFBIG): the
        # writer must remove its temporary file and leave the old model.
        ds = fixtures.make_model(self.tmp, users=200, items=300, dim=32, seed=24)
        with open(ds.path, "rb") as f:
            before = f.read()
        listing = sorted(os.listdir(self.tmp))

        def limit_file_size():
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (16 << 10, 16 << 10))

        argv = [fixtures.TOOL, "import", *fixtures.import_args(ds.files), "--model-version",
                "big", "-o", ds.path]
        p = subprocess.run(argv, capture_output=True, text=True, timeout=60,
                           preexec_fn=limit_file_size)
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn("failed to write %s" % ds.path, p.stderr)
        with open(ds.path, "rb") as f:
            self.assertEqual(f.read(), before)
        self.assertEqual(sorted(os.listdir(self.tmp)), listing)

    def test_failed_write_leaves_no_temp_files(self):
        # The input is fine but the destination directory does not exist:
        # model_write fails after validating, before creating anything.
        ds = fixtures.make_model(self.tmp, users=10, items=10, dim=4, seed=22)
        listing = sorted(os.listdir(self.tmp))
        p = self.import_files(ds.files, os.path.join(self.tmp, "missing", "m.lmdb"))
        self.assertEqual(p.returncode, 1)
        self.assertIn("failed to write %s" % os.path.join(self.tmp, "missing", "m.lmdb"),
                      p.stderr)
        self.assertEqual(sorted(os.listdir(self.tmp)), listing)

    def test_successful_import_replaces_the_file(self):
        ds = fixtures.make_model(self.tmp, users=30, items=40, dim=4, seed=23)
        old_inode = os.stat(ds.path).st_ino
        listing = sorted(os.listdir(self.tmp))
        p = self.import_files(ds.files, ds.path, version="second")
        self.assertEqual(p.returncode, 0, p.stderr)
        # A new inode: readers holding the old file keep a complete old model.
        self.assertNotEqual(os.stat(ds.path).st_ino, old_inode)
        self.assertEqual(fixtures.read_model(ds.path)["version"], "second")
        self.assertEqual(sorted(os.listdir(self.tmp)), listing)


if __name__ == "__main__":
    unittest.main()
