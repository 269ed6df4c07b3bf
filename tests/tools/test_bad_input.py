"""recsys-model import refuses bad input, naming the file, the line and the problem.

One good dataset is imported once; each case replaces one input file with a
broken copy and expects exit status 1, a one-line message on stderr that
names the file (and line, where there is one) and the problem, and no output
file. Usage errors expect exit status 2 and the command's usage.
"""

import csv
import io
import os
import shutil
import tempfile
import unittest

import numpy as np

import fixtures
from fixtures import CATALOG_HEADER, run_tool

EXIT_FAILED, EXIT_USAGE = 1, 2


def csv_line(fields):
    """One CSV line, quoted where needed, with its newline."""
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerow(fields)
    return out.getvalue()


def write_bytes(path, data):
    with open(path, "wb") as f:
        f.write(data)
    return path


class BadInputTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="recsys-test-")
        cls.ds = fixtures.make_model(cls.tmp, users=40, items=60, dim=6, seed=31)
        ds = cls.ds
        cls.catalog = [[ds.item_ids[i], ds.category[i], ds.price[i], int(ds.on_sale[i]),
                        ds.item_tier[i]] for i in range(len(ds.item_ids))]

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp)

    def setUp(self):
        self.case = tempfile.mkdtemp(prefix="case-", dir=self.tmp)
        self.out = os.path.join(self.case, "out.lmdb")

    def path(self, name):
        return os.path.join(self.case, name)

    def run_import(self, **override):
        files = dict(self.ds.files, **override)
        return run_tool("import", *fixtures.import_args(files), "--model-version", "v",
                        "-o", self.out)

    def assert_refused(self, message, **override):
        """Import with `override` files must fail with exactly one line
        'recsys-model: <message>...' and write nothing."""
        p = self.run_import(**override)
        self.assertEqual(p.returncode, EXIT_FAILED, p.stderr)
        self.assertEqual(p.stdout, "")
        self.assertEqual(len(p.stderr.splitlines()), 1, p.stderr)
        self.assertTrue(p.stderr.startswith("recsys-model: " + message),
                        "\n%r\ndoes not start with\n%r" % (p.stderr, "recsys-model: " + message))
        self.assertFalse(os.path.exists(self.out))
        self.assertEqual(os.listdir(self.case), [n for n in os.listdir(self.case)
                                                 if not n.startswith(".")])
        return p.stderr

    # ---- catalog ---------------------------------------------------------

    def catalog_with(self, line, fields):
        """The good catalog with file line `line` (the header is line 1)
        replaced by `fields`: a list of values, or the raw text of the line."""
        lines = [csv_line(CATALOG_HEADER)] + [csv_line(r) for r in self.catalog]
        lines[line - 1] = fields if isinstance(fields, str) else csv_line(fields)
        return fixtures.write_text(self.path("catalog.csv"), "".join(lines))

    def test_catalog_bad_values(self):
        item = self.ds.item_ids[5]
        cases = [
            ("price_cents", "12.50", "price_cents '12.50' is not an integer >= 0"),
            ("price_cents", "abc", "price_cents 'abc' is not an integer >= 0"),
            ("price_cents", "-5", "price_cents '-5' is not an integer >= 0"),
            ("price_cents", "", "price_cents '' is not an integer >= 0"),
            ("price_cents", "99999999999999999999", "price_cents '99999999999999999999'"),
            ("on_sale", "yes", "on_sale 'yes' is not one of 0, 1, true, false"),
            ("on_sale", "2", "on_sale '2' is not one of 0, 1, true, false"),
            ("member_tier", "256", "member_tier '256' is not an integer in 0..255"),
            ("member_tier", "-1", "member_tier '-1' is not an integer in 0..255"),
            ("category", "", "category '' must be 1..256 bytes"),
            ("category", "x" * 257, "category '%s' must be 1..256 bytes" % ("x" * 257)),
        ]
        for column, value, problem in cases:
            with self.subTest(column=column, value=value):
                row = list(self.catalog[5])
                row[CATALOG_HEADER.index(column)] = value
                path = self.catalog_with(7, row)
                self.assertEqual(row[0], item)
                self.assert_refused("%s:7: %s" % (path, problem), catalog=path)

    def test_catalog_malformed_lines(self):
        good = csv_line(self.catalog[3]).rstrip("\n")
        cases = [
            (good + ",extra", "6 fields, the header has 5"),
            ("a,b,c", "3 fields, the header has 5"),
            ('ab"c,course,100,1,0', "quote inside an unquoted field"),
            ('"abc"x,course,100,1,0', "unexpected character after a closing quote"),
            ("abc\0,course,100,1,0", "NUL byte in a field"),
            ("caf\udce9,course,100,1,0", "field 1 is not valid UTF-8"),  # Latin-1 "café"
            ("abc,course\udcc3,100,1,0", "field 2 is not valid UTF-8"),  # a truncated sequence
        ]
        for text, problem in cases:
            with self.subTest(text=text):
                path = self.catalog_with(5, text + "\n")
                self.assert_refused("%s:5: %s" % (path, problem), catalog=path)

    def test_unterminated_quote_reports_where_it_opens(self):
        # The runaway field swallows the following lines; the message points
        # at the line where the quote opened, not at the end of the file.
        # No quote follows in the file, so the field runs to the end.
        lines = [csv_line(r) for r in self.catalog]
        plain = [line for line in lines if '"' not in line]
        text = (csv_line(CATALOG_HEADER) + "".join(plain[:2]) + '"%s,course,100,1,0\n'
                % self.ds.item_ids[3] + "".join(plain[2:]))
        path = fixtures.write_text(self.path("catalog.csv"), text)
        self.assert_refused("%s:4: unterminated quoted field (the quote opens here)" % path,
                            catalog=path)

    def test_control_characters_are_escaped_in_messages(self):
        # A quoted field may span lines; the record is reported at the line
        # it starts on, and the message stays one line.
        path = self.catalog_with(3, '"bad\nid\r\x01",course,100,1,0\n')
        self.assert_refused("%s:3: item 'bad\\nid\\r\\x01' is not in %s"
                            % (path, self.ds.files["item_ids"]), catalog=path)

    def test_catalog_headers(self):
        rows = self.catalog
        cases = [
            (["item", "category", "price_cents", "on_sale", "member_tier"],
             "unexpected column 'item' (the header must be "
             "'item_id,category,price_cents,on_sale,member_tier')"),
            (["item_id", "category", "price_cents", "on_sale"],
             "column 'member_tier' is missing"),
            (CATALOG_HEADER + ["extra"], "unexpected column 'extra'"),
            (["item_id", "category", "price_cents", "on_sale", "item_id"],
             "column 'item_id' appears twice"),
        ]
        for header, problem in cases:
            with self.subTest(header=header):
                path = fixtures.write_csv(self.path("catalog.csv"), header,
                                          [r[:len(header)] + [""] * (len(header) - len(r))
                                           for r in rows])
                self.assert_refused("%s:1: %s" % (path, problem), catalog=path)

    def test_catalog_empty_file(self):
        path = fixtures.write_text(self.path("catalog.csv"), "")
        self.assert_refused("%s: empty file, expected the header '%s'"
                            % (path, ",".join(CATALOG_HEADER)), catalog=path)

    def test_catalog_unknown_item(self):
        path = self.catalog_with(17, ["no-such-item", "course", 100, 1, 0])
        # Replacing row 17 also drops that row's item; the unknown id is found first.
        self.assert_refused("%s:17: item 'no-such-item' is not in %s"
                            % (path, self.ds.files["item_ids"]), catalog=path)

    def test_catalog_item_listed_twice(self):
        path = fixtures.write_csv(self.path("catalog.csv"), CATALOG_HEADER,
                                  self.catalog + [self.catalog[2]])
        self.assert_refused("%s:%d: item '%s' is listed twice (first on line 4)"
                            % (path, len(self.catalog) + 2, self.ds.item_ids[2]), catalog=path)

    def test_item_missing_from_catalog(self):
        path = fixtures.write_csv(self.path("catalog.csv"), CATALOG_HEADER,
                                  self.catalog[:9] + self.catalog[10:])
        self.assert_refused("%s: item '%s' (%s:10) is not in the catalog"
                            % (path, self.ds.item_ids[9], self.ds.files["item_ids"]),
                            catalog=path)

    # ---- id files --------------------------------------------------------

    def test_id_files(self):
        users = list(self.ds.user_ids)
        cases = [
            (users[:4] + [users[1]] + users[5:], "5: duplicate id '%s' (first on line 2)"
             % users[1]),
            (users[:6] + [""] + users[7:], "7: empty line (one id per line)"),
            (users[:3] + ["x" * 257] + users[4:], "4: id is 257 bytes, longer than 256"),
            (users[:2] + ["caf\udce9"] + users[3:], "3: id is not valid UTF-8"),
        ]
        for ids, problem in cases:
            with self.subTest(problem=problem):
                path = fixtures.write_ids(self.path("users.txt"), ids)
                self.assert_refused("%s:%s" % (path, problem), user_ids=path)

    def test_id_count_mismatch(self):
        n = len(self.ds.item_ids)
        path = fixtures.write_ids(self.path("items.txt"), self.ds.item_ids[:-1])
        self.assert_refused("%s: %d ids, but %s has %d rows"
                            % (path, n - 1, self.ds.files["item_factors"], n), item_ids=path)
        path = fixtures.write_ids(self.path("items.txt"), self.ds.item_ids + ["extra-1", "e2"])
        self.assert_refused("%s:%d: id 'extra-1' has no row: %s has %d rows"
                            % (path, n + 1, self.ds.files["item_factors"], n), item_ids=path)

    # ---- npy -------------------------------------------------------------

    def test_npy_problems(self):
        V = self.ds.V
        header = "{'descr': '<f4', 'fortran_order': False, 'shape': (%d, %d), }" % V.shape
        data = V.tobytes()
        cases = [
            ("f8", lambda p: fixtures.write_npy(p, V.astype(np.float64)),
             "dtype '<f8' is not float32 ('<f4')"),
            ("big-endian", lambda p: fixtures.write_npy(p, V.astype(">f4")),
             "dtype '>f4' is not float32 ('<f4')"),
            ("int32", lambda p: fixtures.write_npy(p, V.astype(np.int32)),
             "dtype '<i4' is not float32 ('<f4')"),
            ("fortran", lambda p: fixtures.write_npy(p, np.asfortranarray(V)),
             "fortran_order arrays are not supported"),
            ("3-D", lambda p: fixtures.write_npy(p, np.zeros((10, 3, 2), np.float32)),
             "shape (10, 3, 2) is not 2-D"),
            ("1-D", lambda p: fixtures.write_npy(p, np.zeros(60, np.float32)),
             "shape (60,) is not 2-D"),
            ("truncated", lambda p: fixtures.write_raw_npy(p, header, data[:-100]),
             "file is %d bytes, header says %d" % (128 + len(data) - 100, 128 + len(data))),
            ("trailing bytes", lambda p: fixtures.write_raw_npy(p, header, data + b"\0" * 4),
             "file is %d bytes, header says %d" % (128 + len(data) + 4, 128 + len(data))),
            ("text", lambda p: fixtures.write_text(p, "1.0 2.0\n3.0 4.0\n"),
             "not a .npy file (no \\x93NUMPY magic)"),
            ("empty", lambda p: fixtures.write_text(p, ""), "empty file, not a .npy file"),
            ("version 4", lambda p: fixtures.write_raw_npy(p, header, data, version=(4, 0)),
             ".npy format version 4.0 is not supported"),
            ("no shape", lambda p: fixtures.write_raw_npy(
                p, "{'descr': '<f4', 'fortran_order': False}", data), "header: 'shape' is missing"),
            ("repeated key", lambda p: fixtures.write_raw_npy(
                p, "{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (1, 1)}",
                data), "header: 'descr' appears twice"),
            ("not a dict", lambda p: fixtures.write_raw_npy(p, "descr <f4 shape 60 6", data),
             "header is not a dict literal"),
            ("unaligned data", lambda p: fixtures.write_raw_npy(
                p, header + " ", data, pad=False), "array data starts at offset"),
            ("header past the end", lambda p: write_bytes(p, b"\x93NUMPY\x01\x00\xe8\x03{}"),
             "file is 12 bytes, header says its header alone is 1000"),
        ]
        for name, make, problem in cases:
            with self.subTest(case=name):
                path = self.path("V.npy")
                make(path)
                self.assert_refused("%s: %s" % (path, problem), item_factors=path)

    def test_non_finite_factors(self):
        V = self.ds.V.copy()
        V[7, 3] = np.inf
        path = fixtures.write_npy(self.path("V.npy"), V)
        self.assert_refused("%s: row 7 ('%s'), column 3 is infinite"
                            % (path, self.ds.item_ids[7]), item_factors=path)

    def test_dimension_mismatch(self):
        for cols in (5, 8):
            with self.subTest(cols=cols):
                path = fixtures.write_npy(self.path("V.npy"),
                                          np.zeros((len(self.ds.item_ids), cols), np.float32))
                self.assert_refused(
                    "dimension mismatch: users 6 (%s), items %d (%s); the items may have "
                    "exactly one more column, an item bias"
                    % (self.ds.files["user_factors"], cols, path), item_factors=path)

    def test_missing_file(self):
        path = self.path("nope.csv")
        self.assert_refused("%s: No such file or directory" % path, catalog=path)

    # ---- users and purchases ---------------------------------------------

    def test_users_csv(self):
        u = self.ds.user_ids
        cases = [
            ([(u[0], 1), ("stranger", 2)], "3: user 'stranger' is not in %s"
             % self.ds.files["user_ids"]),
            ([(u[0], 1), (u[1], "gold")], "3: tier 'gold' is not an integer in 0..255"),
            ([(u[0], 1), (u[1], 0), (u[0], 2)], "4: user '%s' is listed twice (first on line 2)"
             % u[0]),
        ]
        for rows, problem in cases:
            with self.subTest(problem=problem):
                path = fixtures.write_csv(self.path("users.csv"), ["user_id", "tier"], rows)
                self.assert_refused("%s:%s" % (path, problem), users=path)

    def test_purchases_csv(self):
        u, i = self.ds.user_ids, self.ds.item_ids
        cases = [
            ([(u[0], i[0]), ("ghost", i[1])],
             "3: user 'ghost' is not in %s: a purchase can only be recorded for a user with a "
             "factor row" % self.ds.files["user_ids"]),
            ([(u[0], i[0]), (u[1], i[1]), (u[2], "no-such-item")],
             "4: item 'no-such-item' is not in %s" % self.ds.files["item_ids"]),
        ]
        for rows, problem in cases:
            with self.subTest(problem=problem):
                path = fixtures.write_csv(self.path("purchases.csv"), ["user_id", "item_id"],
                                          rows)
                self.assert_refused("%s:%s" % (path, problem), purchases=path)
        path = fixtures.write_csv(self.path("purchases.csv"), ["user", "item_id"], [])
        self.assert_refused("%s:1: unexpected column 'user'" % path, purchases=path)

    # ---- the command line ------------------------------------------------

    def test_usage_errors_exit_2(self):
        f = self.ds.files
        full = fixtures.import_args(f) + ["--model-version", "v", "-o", self.out]
        without = lambda flag: [a for k, a in enumerate(full)  # noqa: E731
                                if a != flag and (k == 0 or full[k - 1] != flag)]
        cases = [
            (["import"] + without("--catalog"), "--catalog catalog.csv is required"),
            (["import"] + without("-o"), "-o/--output FILE is required"),
            (["import"] + full + ["--colour", "red"], "unknown option --colour"),
            (["import"] + full + ["--created-at", "yesterday"],
             "--created-at: 'yesterday' is not a number in 0..9223372036854775807"),
            (["import"] + full + ["stray"], "unexpected argument 'stray'"),
            (["import"] + full[:-1], "-o needs a value (FILE)"),
            (["import"] + without("--model-version") + ["--model-version", ""],
             "--model-version must be 1..256 bytes"),
            (["import"] + full + ["--model-version"], "--model-version needs a value (V)"),
            (["verify"], "missing FILE"),
            (["inspect", "a", "b"], "unexpected argument 'b'"),
            (["demo", "-o", self.out, "--dim", "0"], "--dim: '0' is not a number in 1..1024"),
        ]
        for args, message in cases:
            with self.subTest(args=args):
                p = run_tool(*args)
                self.assertEqual(p.returncode, EXIT_USAGE, p.stderr)
                lines = p.stderr.splitlines()
                self.assertEqual(lines[0], "recsys-model: " + message)
                self.assertTrue(lines[1].startswith("usage: recsys-model " + args[0]), p.stderr)
                self.assertFalse(os.path.exists(self.out))

    def test_no_command_and_unknown_command_exit_2(self):
        p = run_tool()
        self.assertEqual(p.returncode, EXIT_USAGE)
        self.assertIn("usage: recsys-model <command>", p.stderr)
        p = run_tool("frobnicate")
        self.assertEqual(p.returncode, EXIT_USAGE)
        self.assertIn("unknown command 'frobnicate'", p.stderr)

    def test_help(self):
        p = run_tool("help")
        self.assertEqual(p.returncode, 0)
        for name in ("import", "inspect", "verify", "demo"):
            self.assertIn("\n  %s " % name, p.stdout)
        p = run_tool("import", "--help")
        self.assertEqual(p.returncode, 0)
        self.assertTrue(p.stdout.startswith("usage: recsys-model import --user-factors"))


if __name__ == "__main__":
    unittest.main()
