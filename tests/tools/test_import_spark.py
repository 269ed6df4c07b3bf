"""recsys-model import --from-spark: an ALS export directory in, a model out.

Exports are written by tests/lib/spark_export.py from NumPy factors, the
layout of model/EXPORT.md, not by the job that ships with the importer;
the model is read back with fixtures.read_model (python3-lmdb and numpy,
from FORMAT.md). The same factors imported from .npy files give the same
bytes, so everything the .npy import is tested for carries over. Then every
kind of damage an export can have is made, one at a time, and each must be
refused with its file, line and reason, leaving nothing written.
"""

import os
import shutil
import struct
import tempfile
import unittest

import numpy as np

import fixtures
import spark_export
from fixtures import run_tool

# Ids as a platform has them: UTF-8 beyond ASCII, punctuation, spaces and
# commas (which CSV would quote; the export needs no quoting).
USER_IDS = ["u%03d" % i for i in range(57)] + ["Пользователь 7", "用户-8", "a,b \"c\"", "🎧x"]
ITEM_IDS = ["course-%02d" % i for i in range(36)] + ["Книга №5", "オーディオ", "e-book: C"]


class Case(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="recsys-test-")
        rng = np.random.default_rng(5)
        self.U = (rng.standard_normal((len(USER_IDS), 12)) * 0.4).astype(np.float32)
        self.V = (rng.standard_normal((len(ITEM_IDS), 12)) * 0.4).astype(np.float32)
        # The spellings' edge values: tiny, large, negative zero.
        self.U[0, :3] = [1e-5, -3.5e-8, 123456.7]
        self.V[1, :2] = [-0.0, 7.006492e-45]
        self.purchases = [(USER_IDS[u], ITEM_IDS[(u * 7 + k) % len(ITEM_IDS)])
                          for u in range(0, len(USER_IDS), 2) for k in range(3)]
        self.purchases.append(self.purchases[0])  # a repeat counts once
        self.exp = os.path.join(self.tmp, "export")
        self.manifest = spark_export.write(self.exp, USER_IDS, self.U, ITEM_IDS, self.V,
                                           self.purchases, parts=3, regularization=0.08,
                                           alpha=15.0, data_end_ms=1_796_371_200_123,
                                           model_version="spark-als-1", created_at=1_796_371_300)
        self.catalog = fixtures.write_csv(
            os.path.join(self.tmp, "catalog.csv"), fixtures.CATALOG_HEADER,
            [[i, "cat%d" % (k % 4), 100 + k, k % 2, 0] for k, i in enumerate(ITEM_IDS)])
        self.out = os.path.join(self.tmp, "model.lmdb")

    def tearDown(self):
        shutil.rmtree(self.tmp)

    def import_export(self, *extra, out=None):
        return run_tool("import", "--from-spark", self.exp, "--catalog", self.catalog,
                        "-o", out or self.out, *extra)


class RoundTripTest(Case):
    def test_factors_ids_purchases_and_record(self):
        p = self.import_export()
        self.assertEqual(p.returncode, 0, p.stderr)
        m = fixtures.read_model(self.out, content=True)
        self.assertEqual(m["checksum"], fixtures.rch64(m["content"]))
        self.assertEqual(m["version"], "spark-als-1")
        self.assertEqual(m["created_at"], 1_796_371_300)
        self.assertEqual((m["dim"], m["has_bias"]), (12, 0))
        # Rows in line order across the parts, every float bit for bit.
        self.assertEqual(m["item_ids"], ITEM_IDS)
        self.assertEqual(m["user_matrix"].tobytes(), self.U.tobytes())
        self.assertEqual(m["item_matrix"].tobytes(), self.V.tobytes())
        self.assertEqual({u: row for u, (row, _, _, _) in m["users"].items()},
                         {u: k for k, u in enumerate(USER_IDS)})
        owned = {}
        for u, i in self.purchases:
            owned.setdefault(u, set()).add(ITEM_IDS.index(i))
        for u, (_, _, items, _) in m["users"].items():
            self.assertEqual(sorted(items), sorted(owned.get(u, ())), u)
        # The training record: Spark's rule is word 1 at offset 12.
        rec = struct.unpack("<fffIq", raw_meta(self.out, "training"))
        self.assertEqual(rec, (np.float32(0.08), 15.0, 0.25, 1, 1_796_371_200_123))
        self.assertEqual(run_tool("verify", self.out).returncode, 0)

    def test_same_bytes_as_the_npy_import(self):
        d = os.path.join(self.tmp, "npy")
        os.mkdir(d)
        files = {"user_factors": fixtures.write_npy(os.path.join(d, "U.npy"), self.U),
                 "user_ids": fixtures.write_ids(os.path.join(d, "users.txt"), USER_IDS),
                 "item_factors": fixtures.write_npy(os.path.join(d, "V.npy"), self.V),
                 "item_ids": fixtures.write_ids(os.path.join(d, "items.txt"), ITEM_IDS),
                 "purchases": fixtures.write_csv(os.path.join(d, "purchases.csv"),
                                                 ["user_id", "item_id"], self.purchases)}
        npy_out = os.path.join(self.tmp, "npy.lmdb")
        p = run_tool("import", "--user-factors", files["user_factors"], "--user-ids",
                     files["user_ids"], "--item-factors", files["item_factors"], "--item-ids",
                     files["item_ids"], "--purchases", files["purchases"], "--catalog",
                     self.catalog, "--model-version", "spark-als-1", "--created-at",
                     "1796371300", "--regularization", "0.08", "--alpha", "15",
                     "--view-weight", "0.25", "--data-end", "1796371200123",
                     "--regularization-scaling", "per-interaction", "-o", npy_out)
        self.assertEqual(p.returncode, 0, p.stderr)
        for extra in ((), ("--quantize", "bf16,int8")):
            p = self.import_export(*extra)
            self.assertEqual(p.returncode, 0, p.stderr)
            if not extra:
                with open(self.out, "rb") as a, open(npy_out, "rb") as b:
                    self.assertEqual(a.read(), b.read())
        m = fixtures.read_model(self.out)
        self.assertIn("item_int8", m)

    def test_version_and_time_flags_override_the_manifest(self):
        p = self.import_export("--model-version", "v-override", "--created-at", "1234")
        self.assertEqual(p.returncode, 0, p.stderr)
        m = fixtures.read_model(self.out)
        self.assertEqual((m["version"], m["created_at"]), ("v-override", 1234))

    def test_users_file_gives_tiers(self):
        users = fixtures.write_csv(os.path.join(self.tmp, "users.csv"), ["user_id", "tier"],
                                   [[USER_IDS[-1], 3], [USER_IDS[2], 1]])
        p = self.import_export("--users", users)
        self.assertEqual(p.returncode, 0, p.stderr)
        m = fixtures.read_model(self.out)
        self.assertEqual((m["users"][USER_IDS[-1]][1], m["users"][USER_IDS[2]][1],
                          m["users"][USER_IDS[0]][1]), (3, 1, 0))

    def test_catalog_extra_items(self):
        # A catalog selling items nobody rated (Spark gives them no
        # factors): refused by default, left out and counted with skip.
        rows = [[i, "cat%d" % (k % 4), 100 + k, k % 2, 0] for k, i in enumerate(ITEM_IDS)]
        rows[5:5] = [["new-course", "cat1", 990, 1, 0], ["new, book", "cat2", 10, 1, 0]]
        fixtures.write_csv(self.catalog, fixtures.CATALOG_HEADER, rows)
        p = self.import_export()
        self.assertEqual(p.returncode, 1)
        self.assertIn("%s:7: item 'new-course' is not in %s/items (--catalog-extra skip leaves "
                      "out the catalog's items that have no factors)" % (self.catalog, self.exp),
                      p.stderr)
        self.assertFalse(os.path.exists(self.out))
        p = self.import_export("--catalog-extra", "skip")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("%s: left out 2 rows for items without factors (--catalog-extra skip)"
                      % self.catalog, p.stderr)
        m = fixtures.read_model(self.out)
        self.assertEqual(m["item_ids"], ITEM_IDS)
        self.assertEqual([int(x) for x in m["attrs"]["price_cents"][:6]],
                         [100, 101, 102, 103, 104, 105])
        p = self.import_export("--catalog-extra", "keep", out=os.path.join(self.tmp, "x.lmdb"))
        self.assertEqual(p.returncode, 2)
        self.assertIn("--catalog-extra: 'keep' is not skip or error", p.stderr)

    def test_parts_in_manifest_order_not_name_order(self):
        # The manifest's order is the row order: reversed, the rows are too.
        for t in ("users", "items"):
            self.manifest["tables"][t]["parts"].reverse()
        spark_export.write_manifest(self.exp, self.manifest)
        p = self.import_export()
        self.assertEqual(p.returncode, 0, p.stderr)
        m = fixtures.read_model(self.out)
        per = -(-len(ITEM_IDS) // 3)
        chunks = [ITEM_IDS[k * per:(k + 1) * per] for k in range(3)]
        self.assertEqual(m["item_ids"], chunks[2] + chunks[1] + chunks[0])


def raw_meta(path, key):
    env = fixtures.open_env(path)
    try:
        with env.begin() as txn:
            meta = env.open_db(b"meta", txn=txn, create=False)
            return bytes(txn.get(key.encode(), db=meta))
    finally:
        env.close()


def part(exp, table, k=0):
    return os.path.join(exp, table, "part-%05d-0f0e-c000.txt" % k)


def edit_line(path, n, fn):
    """Replaces line @n (0-based) of @path by fn(line)."""
    with open(path, "rb") as f:
        lines = f.read().split(b"\n")
    lines[n] = fn(lines[n])
    with open(path, "wb") as f:
        f.write(b"\n".join(lines))


class DamageTest(Case):
    """Each defect alone: exit 1 (2 for flags), the message, and nothing
    written: no model, no temporary file."""

    def refused(self, want, *extra, status=1):
        before = sorted(os.listdir(self.tmp))
        p = self.import_export(*extra)
        self.assertEqual(p.returncode, status, p.stdout + p.stderr)
        self.assertIn(want, p.stderr)
        self.assertEqual(sorted(os.listdir(self.tmp)), before)  # no model, no temp file
        return p.stderr

    def test_no_manifest(self):
        os.unlink(os.path.join(self.exp, "recsys-export.json"))
        self.refused("recsys-export.json: no manifest: not an export, or one still being written")

    def test_missing_part(self):
        os.unlink(part(self.exp, "items", 1))
        self.refused("%s: missing part (the manifest lists it)" % part(self.exp, "items", 1))

    def test_truncated_part(self):
        with open(part(self.exp, "users", 2), "r+b") as f:
            f.truncate(os.path.getsize(part(self.exp, "users", 2)) - 5)
        self.refused("%s: %d bytes, the manifest says %d (a truncated or rewritten part)"
                     % (part(self.exp, "users", 2), os.path.getsize(part(self.exp, "users", 2)),
                        os.path.getsize(part(self.exp, "users", 2)) + 5))

    def test_unlisted_part(self):
        shutil.copy(part(self.exp, "users", 0), part(self.exp, "users", 7))
        self.refused("%s: a part the manifest does not list" % part(self.exp, "users", 7))

    def test_compressed_part(self):
        with open(os.path.join(self.exp, "items", "part-00009-x.txt.gz"), "wb") as f:
            f.write(b"\x1f\x8b")
        self.refused("part-00009-x.txt.gz: a compressed part; the export must be written "
                     "uncompressed")

    def test_wrong_dimension(self):
        edit_line(part(self.exp, "items", 1), 2, lambda l: l.rsplit(b"\t", 1)[0])
        spark_export.refresh_sizes(self.exp, self.manifest)
        self.refused("%s:3: 11 factors, the manifest says 12" % part(self.exp, "items", 1))

    def test_extra_factor(self):
        edit_line(part(self.exp, "items", 0), 0, lambda l: l + b"\t0.5")
        spark_export.refresh_sizes(self.exp, self.manifest)
        self.refused("%s:1: 13 factors, the manifest says 12" % part(self.exp, "items", 0))

    def test_nan_and_infinity(self):
        for table, value in (("items", b"NaN"), ("items", b"-Infinity"), ("items", b"4e38")):
            with self.subTest(value=value):
                self.setUp()
                edit_line(part(self.exp, table, 0), 1,
                          lambda l: b"\t".join(l.split(b"\t")[:4] + [value] + l.split(b"\t")[5:]))
                spark_export.refresh_sizes(self.exp, self.manifest)
                why = "out of float's range:" if value == b"4e38" else "not a finite number:"
                self.refused("%s:2: factor 4 is %s '%s'" % (part(self.exp, table, 0), why,
                                                             value.decode()))

    def test_nan_in_user_factors_fails_the_write(self):
        # User factors are parsed while the model is written (EXPORT.md):
        # a bad one there must still leave nothing behind.
        edit_line(part(self.exp, "users", 2), 4, lambda l: l.replace(b"\t", b"\tNaN\t", 1)
                  .rsplit(b"\t", 1)[0])
        spark_export.refresh_sizes(self.exp, self.manifest)
        self.refused("%s:5: factor 1 is not a finite number: 'NaN'" % part(self.exp, "users", 2))

    def test_duplicate_ids(self):
        with open(part(self.exp, "users", 0), "rb") as f:
            first = f.read().split(b"\n")[3]
        edit_line(part(self.exp, "users", 2), 1, lambda l: first)
        spark_export.refresh_sizes(self.exp, self.manifest)
        self.refused("%s:2: duplicate id '%s' (first at %s:4)"
                     % (part(self.exp, "users", 2), USER_IDS[3], part(self.exp, "users", 0)))

    def test_empty_and_bad_ids(self):
        for bad, why in ((b"", "empty id"), (b"\xff\xfe", "id is not valid UTF-8"),
                         (b"a\rb", "CR in the id"),
                         (b"x" * 257, "id is 257 bytes, longer than 256")):
            with self.subTest(why=why):
                self.setUp()
                edit_line(part(self.exp, "items", 0), 0, lambda l: bad + l[l.index(b"\t"):])
                spark_export.refresh_sizes(self.exp, self.manifest)
                self.refused("%s:1: %s" % (part(self.exp, "items", 0), why))

    def test_row_counts_against_the_manifest(self):
        self.manifest["tables"]["users"]["rows"] += 1
        spark_export.write_manifest(self.exp, self.manifest)
        self.refused("/users: %d lines in its parts, the manifest says %d"
                     % (len(USER_IDS), len(USER_IDS) + 1))
        self.setUp()
        self.manifest["tables"]["items"]["rows"] -= 1
        spark_export.write_manifest(self.exp, self.manifest)
        self.refused("more items than the manifest's %d" % (len(ITEM_IDS) - 1))

    def test_purchase_of_an_unknown_id(self):
        edit_line(part(self.exp, "purchases", 1), 0, lambda l: b"nobody\t" + l.split(b"\t")[1])
        spark_export.refresh_sizes(self.exp, self.manifest)
        self.refused("%s:1: user 'nobody' is not in the export's users"
                     % part(self.exp, "purchases", 1))

    def test_cut_last_line(self):
        with open(part(self.exp, "items", 2), "r+b") as f:
            f.truncate(os.path.getsize(part(self.exp, "items", 2)) - 1)
        spark_export.refresh_sizes(self.exp, self.manifest)
        self.refused("the last line has no newline (a cut part?)")

    def test_bad_manifests(self):
        cases = [
            (lambda m: m.update(format_version=2),
             "\"format_version\" is not 1, the only version this import reads"),
            (lambda m: m.update(colour="red"), "unknown key \"colour\""),
            (lambda m: m.pop("data_end_unix_ms"), "no \"data_end_unix_ms\""),
            (lambda m: m.update(factors=0), "\"factors\" is 0"),
            (lambda m: m["training"].update(regularization_scaling="per-user"),
             "\"regularization_scaling\" must be \"per-interaction\" or \"none\""),
            (lambda m: m["training"].update(regularization=-1),
             "training regularization -1 is negative"),
            (lambda m: m["training"].pop("alpha"), "\"training\" has no \"alpha\""),
            (lambda m: m["tables"]["items"]["parts"][0].update(file="../x"),
             "\"items\" part 0 must be {\"file\": \"part-...\", \"bytes\": N}"),
        ]
        for edit, want in cases:
            with self.subTest(want=want):
                self.setUp()
                edit(self.manifest)
                spark_export.write_manifest(self.exp, self.manifest)
                self.refused(want)

    def test_catalog_must_match_the_items(self):
        fixtures.write_csv(self.catalog, fixtures.CATALOG_HEADER,
                           [[i, "c", 1, 0, 0] for i in ITEM_IDS[:-1]])
        self.refused("not in the catalog")

    def test_flags_the_manifest_owns(self):
        for flag, value in (("--purchases", "p.csv"), ("--regularization", "1"),
                            ("--alpha", "2"), ("--data-end", "5"),
                            ("--regularization-scaling", "none"), ("--user-factors", "U.npy")):
            with self.subTest(flag=flag):
                self.refused("--from-spark excludes %s" % flag, flag, value, status=2)


if __name__ == "__main__":
    unittest.main()
