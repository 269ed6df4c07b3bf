"""End-to-end tests of recsys-cli against a real recsysd.

One daemon serves a model built by the fixtures; every test runs the real
recsys-cli binary ($RECSYS_CLI) as a subprocess and checks what it prints and
its exit status. Expected results come from the fixtures' reference
implementation, never from the CLI's own earlier output: --json output is
parsed and compared with the reference, the text output is parsed by its
columns and must list the same items in the same order.
"""

import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
import unittest

import fixtures
from daemon import Daemon

CLI = os.environ["RECSYS_CLI"]

EXIT_FAILED, EXIT_USAGE, EXIT_UNREACHABLE = 1, 2, 3
SCORE_TOL = 1e-4
# The deadline the no-answer tests give the CLI, and how long past it the CLI
# may take to exit (process start-up and gRPC init on a loaded 2-core box).
DEADLINE_S = 1.0
SLACK_S = 4.0

# An id the model cannot know, with every character class the JSON writer
# must escape, and some UTF-8 it must pass through unchanged.
WEIRD_ID = 'we"ird\\id\n\ttab\x01ctl-\u00fc\u4e2d'


def run(*args, addr=None, env_addr=None, timeout=None):
    """Run recsys-cli with args; return (exit status, stdout, stderr, seconds)."""
    env = {k: v for k, v in os.environ.items() if k != "RECSYS_ADDR"}
    if env_addr is not None:
        env["RECSYS_ADDR"] = env_addr
    argv = [CLI]
    if addr is not None:
        argv += ["--addr", addr]
    if timeout is not None:
        argv += ["--timeout", str(timeout)]
    start = time.monotonic()
    p = subprocess.run(argv + list(args), capture_output=True, env=env, timeout=60)
    return (p.returncode, p.stdout.decode(), p.stderr.decode(), time.monotonic() - start)


def unused_addr():
    """A loopback address nobody listens on: connecting to it is refused."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return "127.0.0.1:%d" % s.getsockname()[1]


def table_rows(text, header):
    """The rows under the table header line starting with `header`, split on
    runs of blanks (ids in the fixtures contain none)."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.split()[:1] == [header])
    return [line.split() for line in lines[start + 1:] if line.strip()]


class CliTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="recsys-test-")
        cls.ds = fixtures.make_model(cls.tmp, users=300, items=400, dim=16, seed=7,
                                     version="cli-test-1")
        cls.daemon = Daemon(cls.ds.path, threads=2)
        cls.d = cls.daemon.__enter__()
        cls.addr = cls.d.addr

    @classmethod
    def tearDownClass(cls):
        cls.daemon.__exit__(None, None, None)
        shutil.rmtree(cls.tmp)

    def cli(self, *args):
        return run(*args, addr=self.addr)

    def cli_json(self, *args):
        rc, out, err, _ = self.cli("--json", *args)
        self.assertEqual(rc, 0, err)
        lines = out.splitlines()
        self.assertEqual(len(lines), 1, "one JSON object on one line: %r" % out)
        return json.loads(lines[0])

    def assert_ranked(self, got, want):
        """got: the JSON items list; want: the reference [(item_id, score)]."""
        self.assertEqual([g["item_id"] for g in got], [w[0] for w in want])
        for g, (item, score) in zip(got, want):
            self.assertAlmostEqual(g["score"], score, delta=SCORE_TOL, msg=item)

    # ---- recommend --------------------------------------------------------

    def test_recommend_json_matches_reference(self):
        for user in self.ds.user_ids[:5]:
            with self.subTest(user=user):
                got = self.cli_json("recommend", "--user", user, "--count", "7")
                source, want = fixtures.ref_recommend(self.ds, user, count=7)
                self.assertEqual(got["source"], source)
                self.assertEqual(got["model_version"], self.ds.version)
                self.assert_ranked(got["items"], want)

    def test_recommend_default_count_is_ten(self):
        user = self.ds.user_ids[0]
        got = self.cli_json("recommend", "--user", user)
        source, want = fixtures.ref_recommend(self.ds, user)
        self.assertEqual(len(want), 10)
        self.assert_ranked(got["items"], want)

    def test_recommend_unknown_user_gets_popular(self):
        got = self.cli_json("recommend", "--user", "no-such-user", "--count", "5")
        source, want = fixtures.ref_recommend(self.ds, "no-such-user", count=5)
        self.assertEqual(source, "POPULAR")
        self.assertEqual(got["source"], "POPULAR")
        self.assert_ranked(got["items"], want)

    def test_recommend_filters_match_reference(self):
        user = self.ds.user_ids[3]
        _, top = fixtures.ref_recommend(self.ds, user, count=6)
        exclude = (top[0][0], top[2][0])
        owned = (top[1][0],)
        categories = sorted({self.ds.item_category(top[3][0]), self.ds.item_category(top[5][0])})
        cases = [
            ("exclude", ["--exclude", exclude[0], "--exclude", exclude[1]], dict(exclude=exclude)),
            ("owned", ["--owned", owned[0]], dict(owned=owned)),
            ("categories", [a for c in categories for a in ("--category", c)],
             dict(categories=categories)),
            ("purchasable", ["--purchasable-only"], dict(purchasable_only=True)),
            ("all", ["--exclude", exclude[0], "--owned", owned[0], "--category", categories[0],
                     "--purchasable-only"],
             dict(exclude=exclude[:1], owned=owned, categories=categories[:1],
                  purchasable_only=True)),
        ]
        for name, flags, kwargs in cases:
            with self.subTest(filter=name):
                got = self.cli_json("recommend", "--user", user, "--count", "8", *flags)
                source, want = fixtures.ref_recommend(self.ds, user, count=8, **kwargs)
                self.assertEqual(got["source"], source)
                self.assert_ranked(got["items"], want)

    def test_recommend_text_lists_items_in_order(self):
        user = self.ds.user_ids[1]
        rc, out, err, _ = self.cli("recommend", "--user", user, "--count", "5")
        self.assertEqual(rc, 0, err)
        source, want = fixtures.ref_recommend(self.ds, user, count=5)
        summary = out.splitlines()[0]
        self.assertEqual(summary, "model %s · source %s · 5 items" % (self.ds.version, source))
        rows = table_rows(out, "rank")
        self.assertEqual([r[0] for r in rows], ["1", "2", "3", "4", "5"])
        self.assertEqual([r[1] for r in rows], [w[0] for w in want])
        for row, (item, score) in zip(rows, want):
            self.assertAlmostEqual(float(row[2]), score, delta=1e-3, msg=item)

    def test_global_options_after_the_command_and_from_env(self):
        user = self.ds.user_ids[2]
        _, want = fixtures.ref_recommend(self.ds, user, count=3)
        rc, out, err, _ = run("recommend", "--user", user, "--count=3", "--json",
                              env_addr=self.addr)
        self.assertEqual(rc, 0, err)
        self.assert_ranked(json.loads(out)["items"], want)

    # ---- eligibility ------------------------------------------------------

    def eligibility_items(self):
        """Known items of every reason the reference gives this user, plus an
        unknown id and an id the JSON writer must escape."""
        user = self.ds.user_ids[4]
        items = list(self.ds.item_ids[:25]) + ["no-such-item", WEIRD_ID]
        return user, items

    def test_eligibility_json_matches_reference(self):
        user, items = self.eligibility_items()
        owned = [items[0]]
        got = self.cli_json("eligibility", "--user", user, *items, "--owned", owned[0])
        want = fixtures.ref_eligibility(self.ds, user, items, owned=owned)
        self.assertEqual(got["model_version"], self.ds.version)
        self.assertEqual(
            [(r["item_id"], r["eligible"], r["reason"], r["price_cents"]) for r in got["results"]],
            [tuple(w) for w in want])
        reasons = {w[2] for w in want}
        self.assertIn("UNKNOWN_ITEM", reasons)
        self.assertIn("ALREADY_OWNED", reasons)
        self.assertIn("PURCHASABLE", reasons)

    def test_eligibility_text(self):
        user, items = self.eligibility_items()
        items = items[:-1]  # the text table shows control characters as '?'
        rc, out, err, _ = self.cli("eligibility", "--user", user, *items)
        self.assertEqual(rc, 0, err)
        want = fixtures.ref_eligibility(self.ds, user, items)
        self.assertEqual(out.splitlines()[0],
                         "model %s · %d items" % (self.ds.version, len(items)))
        rows = table_rows(out, "item_id")
        self.assertEqual(len(rows), len(want))
        for row, (item, eligible, reason, price) in zip(rows, want):
            shown_price = "-" if reason == "UNKNOWN_ITEM" else "%d.%02d" % divmod(price, 100)
            self.assertEqual(row, [item, "yes" if eligible else "no", reason, shown_price])

    # ---- similar ----------------------------------------------------------

    def test_similar_json_matches_reference(self):
        item = self.ds.item_ids[10]
        user = self.ds.user_ids[0]
        for kwargs, flags in [({}, []), (dict(user_id=user), ["--user", user])]:
            with self.subTest(flags=flags):
                got = self.cli_json("similar", "--item", item, "--count", "6", *flags)
                source, want = fixtures.ref_similar(self.ds, item, count=6, **kwargs)
                self.assertEqual(got["source"], source)
                self.assertEqual(got["model_version"], self.ds.version)
                self.assert_ranked(got["items"], want)

    def test_similar_text(self):
        item = self.ds.item_ids[11]
        rc, out, err, _ = self.cli("similar", "--item", item, "--count", "4")
        self.assertEqual(rc, 0, err)
        _, want = fixtures.ref_similar(self.ds, item, count=4)
        self.assertEqual(out.splitlines()[0],
                         "model %s · similar to %s · 4 items" % (self.ds.version, item))
        self.assertEqual([r[1] for r in table_rows(out, "rank")], [w[0] for w in want])

    # ---- info and health --------------------------------------------------

    def test_info(self):
        got = self.cli_json("info")
        self.assertEqual(got["model_version"], self.ds.version)
        self.assertEqual(got["user_count"], len(self.ds.user_ids))
        self.assertEqual(got["item_count"], len(self.ds.item_ids))
        self.assertEqual(got["dimension"], self.ds.dim)
        self.assertEqual(got["created_at_unix"], self.ds.created_at)

        rc, out, err, _ = self.cli("info")
        self.assertEqual(rc, 0, err)
        fields = dict(re.split(r":\s+", line, maxsplit=1) for line in out.splitlines())
        self.assertEqual(fields["model_version"], self.ds.version)
        self.assertEqual(fields["users"], str(len(self.ds.user_ids)))
        self.assertEqual(fields["items"], str(len(self.ds.item_ids)))
        self.assertEqual(fields["dimension"], str(self.ds.dim))
        for key in ("created_at", "loaded_at"):
            unix = got[key + "_unix"]
            iso = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(unix))
            self.assertEqual(fields[key], "%s (%d)" % (iso, unix))
        self.assertEqual(set(fields), {"model_version", "created_at", "loaded_at", "dimension",
                                       "users", "items", "element_type", "kernel", "scan",
                                       "quantized", "path", "checksum", "reloads",
                                       "failed_reloads", "last_reload_attempt",
                                       "last_reload_error"})
        # The fixture has no reduced copies: the f32 matrix is scanned.
        self.assertEqual((fields["scan"], fields["quantized"]), ("f32", "-"))
        self.assertEqual((got["scan"], got.get("quantized", [])), ("f32", []))
        self.assertEqual(fields["kernel"], got["kernel"])
        self.assertIn(got["kernel"], ("avx512", "avx2", "portable"))
        self.assertEqual(fields["reloads"], str(got["reload_count"]))
        self.assertEqual(fields["failed_reloads"], "0")
        self.assertEqual(fields["last_reload_error"], "-")
        unix = got["last_reload_attempt_unix"]
        self.assertEqual(fields["last_reload_attempt"],
                         "%s (%d)" % (time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(unix)), unix))

    def test_health(self):
        rc, out, err, _ = self.cli("health")
        self.assertEqual((rc, out), (0, "status: SERVING\n"), err)
        rc, out, err, _ = self.cli("--json", "health")
        self.assertEqual(json.loads(out), {"status": "SERVING"})

    # ---- errors -----------------------------------------------------------

    def assert_rpc_error(self, args, method, status):
        rc, out, err, _ = self.cli(*args)
        self.assertEqual(rc, EXIT_FAILED, err)
        self.assertEqual(out, "")
        self.assertTrue(err.startswith("recsys-cli: %s failed: %s: " % (method, status)), err)
        self.assertEqual(len(err.splitlines()), 1, err)

    def test_server_errors_exit_1_with_status(self):
        self.assert_rpc_error(["recommend", "--user", ""], "Recommend", "INVALID_ARGUMENT")
        self.assert_rpc_error(["recommend", "--user", self.ds.user_ids[0], "--count", "1001"],
                              "Recommend", "INVALID_ARGUMENT")
        self.assert_rpc_error(["eligibility", "--user", "", self.ds.item_ids[0]],
                              "CheckEligibility", "INVALID_ARGUMENT")
        self.assert_rpc_error(["similar", "--item", "no-such-item"], "SimilarItems", "NOT_FOUND")

    def test_no_server_exits_3_at_once(self):
        rc, out, err, secs = run("info", addr=unused_addr(), timeout=30)
        self.assertEqual(rc, EXIT_UNREACHABLE, err)
        self.assertIn("GetModelInfo failed: UNAVAILABLE", err)
        self.assertLess(secs, SLACK_S, "a refused connection fails the call, not the deadline")

    def test_silent_server_exits_3_at_the_deadline(self):
        # The kernel accepts the TCP connection into the backlog, but nothing
        # ever speaks HTTP/2 on it: only the deadline ends the call.
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            s.listen(8)
            addr = "127.0.0.1:%d" % s.getsockname()[1]
            rc, out, err, secs = run("info", addr=addr, timeout=DEADLINE_S)
        self.assertEqual(rc, EXIT_UNREACHABLE, err)
        self.assertIn("GetModelInfo failed: DEADLINE_EXCEEDED", err)
        self.assertGreaterEqual(secs, DEADLINE_S * 0.9)
        self.assertLess(secs, DEADLINE_S + SLACK_S)

    def test_usage_errors_exit_2_without_calling(self):
        user = self.ds.user_ids[0]
        cases = [
            ([], "no command given"),
            (["frobnicate"], "unknown command 'frobnicate'"),
            (["recommend"], "--user is required"),
            (["recommend", "--user"], "--user needs a value"),
            (["recommend", "--user", user, "--count", "ten"], "--count: 'ten' is not"),
            (["recommend", "--user", user, "--count", "-1"], "--count: '-1' is not"),
            (["recommend", "--user", user, "--colour", "red"], "unknown option --colour"),
            (["recommend", "--user", user, "extra"], "unexpected argument 'extra'"),
            (["eligibility", "--user", user], "missing arguments"),
            (["similar", "--count", "3"], "--item is required"),
            (["info", "--json=yes"], "--json takes no value"),
            (["--timeout", "0", "info"], "--timeout: '0' is not"),
            (["health", "a", "b"], "unexpected argument 'b'"),
        ]
        # Had any of these made a call, it would fail with exit status 3.
        addr = unused_addr()
        for args, message in cases:
            with self.subTest(args=args):
                rc, out, err, _ = run(*args, addr=addr)
                self.assertEqual(rc, EXIT_USAGE, err)
                self.assertEqual(out, "")
                self.assertIn(message, err)
                self.assertIn("usage", err.lower())

    def test_help_exits_0_and_lists_every_command(self):
        rc, out, err, _ = run("--help")
        self.assertEqual(rc, 0, err)
        for command in ("recommend", "eligibility", "similar", "info", "health"):
            self.assertRegex(out, r"\n  %s\b" % command)
        rc, out, err, _ = run("similar", "--help")
        self.assertEqual(rc, 0, err)
        self.assertTrue(out.startswith("usage: recsys-cli similar --item I"), out)


if __name__ == "__main__":
    unittest.main()
