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
import socket
import subprocess
import time
import unittest

import fixtures
from daemon import TempDaemonTest
from recsys.v1 import recommender_pb2 as pb

CLI = os.environ["RECSYS_CLI"]

EXIT_FAILED, EXIT_USAGE, EXIT_UNREACHABLE = 1, 2, 3
SCORE_TOL = 1e-4
# The deadline the no-answer tests give the CLI, and how long past it the CLI
# may take to exit (process start-up and gRPC init on a loaded 2-core box).
DEADLINE_S = 1.0
SLACK_S = 4.0
# The data end the events tests' model records (recsys-model import
# --data-end): 2023-11-14T22:13:20.123Z, long before any event they record.
DATA_END_MS = 1_700_000_000_123

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


class CliCase(TempDaemonTest):
    """Running the CLI against the class's daemon (self.addr)."""

    def cli(self, *args):
        return run(*args, addr=self.addr)

    def cli_json(self, *args):
        rc, out, err, _ = self.cli("--json", *args)
        self.assertEqual(rc, 0, err)
        lines = out.splitlines()
        self.assertEqual(len(lines), 1, "one JSON object on one line: %r" % out)
        return json.loads(lines[0])

    def assert_rpc_error(self, args, method, status):
        """The call fails with status: exit 1, one line on stderr naming the
        method and the status; that line."""
        rc, out, err, _ = self.cli(*args)
        self.assertEqual(rc, EXIT_FAILED, err)
        self.assertEqual(out, "")
        self.assertTrue(err.startswith("recsys-cli: %s failed: %s: " % (method, status)), err)
        self.assertEqual(len(err.splitlines()), 1, err)
        return err


class CliTest(CliCase):
    @classmethod
    def prepare(cls, tmp):
        cls.ds = fixtures.make_model(tmp, users=300, items=400, dim=16, seed=7,
                                     version="cli-test-1")
        return cls.ds.path, dict(threads=2)

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
        self.assertEqual(fields["model_name"], "default")
        self.assertEqual(set(fields), {"model_name", "model_version", "created_at", "loaded_at", "dimension",
                                       "users", "items", "element_type", "kernel", "scan",
                                       "quantized", "path", "checksum", "reloads",
                                       "failed_reloads", "last_reload_attempt",
                                       "last_reload_error", "data_end"})
        # No --state-dir: no events rows, and the fixtures' import records
        # no data end.
        self.assertEqual(fields["data_end"], "0")
        self.assertEqual(got["data_end_unix_ms"], 0)
        self.assertIsNone(got["events"])
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

    def test_server_errors_exit_1_with_status(self):
        self.assert_rpc_error(["recommend", "--user", ""], "Recommend", "INVALID_ARGUMENT")
        self.assert_rpc_error(["recommend", "--user", self.ds.user_ids[0], "--count", "1001"],
                              "Recommend", "INVALID_ARGUMENT")
        self.assert_rpc_error(["eligibility", "--user", "", self.ds.item_ids[0]],
                              "CheckEligibility", "INVALID_ARGUMENT")
        self.assert_rpc_error(["similar", "--item", "no-such-item"], "SimilarItems", "NOT_FOUND")

    def test_events_without_state_dir_fail_precondition(self):
        user, item = self.ds.user_ids[0], self.ds.item_ids[0]
        self.assert_rpc_error(["record", "--user", user, "--purchase", item], "RecordEvents",
                              "FAILED_PRECONDITION")
        self.assert_rpc_error(["forget", "--user", user], "ForgetUser", "FAILED_PRECONDITION")
        # Nothing was recorded: the model's answer for the item stands.
        want = fixtures.ref_eligibility(self.ds, user, [item])
        got = self.cli_json("eligibility", "--user", user, item)
        self.assertEqual(got["results"][0]["reason"], want[0][2])

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
            (["record", "--purchase", "x"], "--user is required"),
            (["record", "--user", user], "give at least one --purchase, --view or --refund"),
            (["record", "--user", user, "--purchase"], "--purchase needs a value (ITEM)"),
            (["record", "--user", user, "--view", "x", "--weight", "heavy"],
             "--weight: 'heavy' is not a number"),
            (["record", "--user", user, "--view", "x", "--weight", "1.5kg"],
             "--weight: '1.5kg' is not a number"),
            (["record", "--user", user, "--view", "x", "--time", "-5"], "--time: '-5' is not"),
            (["record", "--user", user, "--view", "x", "--time", str(2**63)],
             "--time: '9223372036854775808' is not"),
            (["record", "--user", user, "--view", "x", "extra"], "unexpected argument 'extra'"),
            (["forget"], "--user is required"),
            (["forget", "--user", user, "--purchase", "x"], "unknown option --purchase"),
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
        for command in ("recommend", "eligibility", "similar", "record", "forget", "info",
                        "health"):
            self.assertRegex(out, r"\n  %s\b" % command)
        rc, out, err, _ = run("similar", "--help")
        self.assertEqual(rc, 0, err)
        self.assertTrue(out.startswith("usage: recsys-cli similar --item I"), out)
        rc, out, err, _ = run("record", "--help")
        self.assertEqual(rc, 0, err)
        self.assertTrue(out.startswith("usage: recsys-cli record --user U (--purchase ITEM | "
                                       "--view ITEM | --refund ITEM)..."), out)


def info_fields(text):
    """`key: value` lines of `recsys-cli info` as a dict."""
    return dict(re.split(r":\s+", line, maxsplit=1) for line in text.splitlines())


def format_ms(ms):
    """Unix milliseconds as info prints them; just the number when not a time."""
    if ms <= 0:
        return "%d" % ms
    return "%s.%03dZ (%d)" % (time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)),
                              ms % 1000, ms)


def by_type(text):
    """"purchases 1, views 2, refunds 0" -> (1, 2, 0)."""
    m = re.fullmatch(r"purchases (\d+), views (\d+), refunds (\d+)", text)
    assert m is not None, text
    return tuple(int(x) for x in m.groups())


class CliEventsTest(CliCase):
    """record, forget and info's events state against a daemon with
    --state-dir. What an event changes is checked through the CLI and
    through Python's gRPC client; the model is plain (every item on sale,
    nobody owns anything, no memberships), so an event is all that can
    make an item ALREADY_OWNED."""

    @classmethod
    def prepare(cls, tmp):
        cls.ds = fixtures.make_model(tmp, users=60, items=120, dim=8, seed=31,
                                     version="cli-events-1", tiers=False,
                                     owned_per_user=(0, 0), off_sale_share=0.0)
        # The same inputs again, with a data end.
        path = os.path.join(tmp, "model-data-end.lmdb")
        p = fixtures.run_tool("import", *fixtures.import_args(cls.ds.files), "--model-version",
                              cls.ds.version, "--created-at", cls.ds.created_at, "--data-end",
                              DATA_END_MS, "-o", path)
        if p.returncode != 0:
            raise AssertionError("recsys-model import failed: %s" % p.stderr)
        cls.state = os.path.join(tmp, "state")
        return path, dict(threads=2, args=["--state-dir", cls.state])

    def reasons(self, user, items):
        """CheckEligibility through Python's gRPC: each item's reason."""
        r = self.d.stub_call("CheckEligibility", pb.EligibilityRequest(user_id=user,
                                                                       item_ids=items),
                             pb.EligibilityResponse)
        return [pb.Reason.Name(x.reason) for x in r.results]

    def recommend(self, user):
        r = self.d.stub_call("Recommend", pb.RecommendRequest(user_id=user, count=20),
                             pb.RecommendResponse)
        return pb.Source.Name(r.source), [x.item_id for x in r.items]

    def record(self, *args):
        """`record` that must succeed; its output."""
        rc, out, err, _ = self.cli("record", *args)
        self.assertEqual(rc, 0, err)
        return out

    def info(self):
        rc, out, err, _ = self.cli("info")
        self.assertEqual(rc, 0, err)
        return info_fields(out)

    def test_purchase_owns_the_item_until_forgotten(self):
        user = "cli-new-buyer"  # not in the model
        bought, viewed = self.ds.item_ids[5], self.ds.item_ids[6]
        self.assertEqual(self.reasons(user, [bought, viewed]), ["PURCHASABLE", "PURCHASABLE"])
        self.assertEqual(self.recommend(user)[0], "POPULAR")

        out = self.record("--user", user, "--purchase", bought, "--view", viewed)
        self.assertEqual(out, "recorded 2, unknown items 0\n")
        # A purchase is owned at once; a view owns nothing.
        self.assertEqual(self.reasons(user, [bought, viewed]), ["ALREADY_OWNED", "PURCHASABLE"])
        got = self.cli_json("eligibility", "--user", user, bought, viewed)
        self.assertEqual([r["reason"] for r in got["results"]], ["ALREADY_OWNED", "PURCHASABLE"])
        source, items = self.recommend(user)
        self.assertEqual(source, "FOLDED_IN")
        self.assertNotIn(bought, items)
        got = self.cli_json("recommend", "--user", user, "--count", "20")
        self.assertEqual(got["source"], "FOLDED_IN")
        self.assertEqual([g["item_id"] for g in got["items"]], items)
        rc, out, err, _ = self.cli("recommend", "--user", user, "--count", "3")
        self.assertEqual(rc, 0, err)
        self.assertEqual(out.splitlines()[0],
                         "model %s · source FOLDED_IN · 3 items" % self.ds.version)

        rc, out, err, _ = self.cli("forget", "--user", user)
        self.assertEqual((rc, out), (0, "deleted 2 events of user %s\n" % user), err)
        self.assertEqual(self.reasons(user, [bought, viewed]), ["PURCHASABLE", "PURCHASABLE"])
        self.assertEqual(self.recommend(user)[0], "POPULAR")
        self.assertEqual(self.cli_json("forget", "--user", user), {"deleted": 0})

    def test_events_are_sent_in_command_line_order(self):
        # One call, one timestamp: only the order of the events in the
        # request decides whether the refund undoes the purchase.
        item = self.ds.item_ids[10]
        now = str(int(time.time() * 1000))
        self.record("--user", "cli-order-a", "--purchase", item, "--refund", item, "--time", now)
        self.record("--user", "cli-order-b", "--refund=" + item, "--purchase=" + item,
                    "--time=" + now)
        self.assertEqual(self.reasons("cli-order-a", [item]), ["PURCHASABLE"])
        self.assertEqual(self.reasons("cli-order-b", [item]), ["ALREADY_OWNED"])
        # Interleaved types and the two spellings of a value, in one call.
        items = self.ds.item_ids[20:26]
        got = self.cli_json("record", "--user", "cli-order-c", "--view", items[0],
                            "--purchase=" + items[1], "--refund", items[1], "--purchase",
                            items[2], "--view=" + items[3], "--purchase", items[4],
                            "--refund=" + items[4], "--purchase", items[5])
        self.assertEqual(got, {"recorded": 8, "unknown_items": 0})
        self.assertEqual(self.reasons("cli-order-c", items),
                         ["PURCHASABLE", "PURCHASABLE", "ALREADY_OWNED", "PURCHASABLE",
                          "PURCHASABLE", "ALREADY_OWNED"])

    def test_time_and_weight_reach_the_daemon(self):
        user, item = "cli-timed", self.ds.item_ids[30]
        now = int(time.time() * 1000)
        # Replayed in time order: a refund timed before the purchase, though
        # sent after it, undoes nothing.
        self.record("--user", user, "--purchase", item, "--time", str(now - 1000))
        self.record("--user", user, "--refund", item, "--time", str(now - 2000))
        self.assertEqual(self.reasons(user, [item]), ["ALREADY_OWNED"])
        self.record("--user", user, "--refund", item, "--time", str(now))
        self.assertEqual(self.reasons(user, [item]), ["PURCHASABLE"])
        # The daemon judges the values: it refuses these, so it got them.
        err = self.assert_rpc_error(["record", "--user", user, "--view", item, "--weight", "-1"],
                                    "RecordEvents", "INVALID_ARGUMENT")
        self.assertIn("events[0]: weight", err)
        err = self.assert_rpc_error(["record", "--user", user, "--view", item, "--time",
                                     str(now + 3 * 3600 * 1000)],
                                    "RecordEvents", "INVALID_ARGUMENT")
        self.assertIn("events[0]", err)
        self.assertEqual(self.record("--user", user, "--view", item, "--weight", "2.5"),
                         "recorded 1, unknown items 0\n")

    def test_unknown_items_are_counted(self):
        user = "cli-unknown"
        out = self.record("--user", user, "--purchase", "no-such-item", "--view",
                          self.ds.item_ids[40], "--refund", "nope")
        self.assertEqual(out, "recorded 1, unknown items 2\n")
        rc, out, err, _ = self.cli("forget", "--user", user)
        self.assertEqual((rc, out), (0, "deleted 1 event of user %s\n" % user), err)

    def test_bad_requests_are_refused_and_change_nothing(self):
        item = self.ds.item_ids[50]
        err = self.assert_rpc_error(["record", "--user", "", "--purchase", item], "RecordEvents",
                                    "INVALID_ARGUMENT")
        self.assertIn("events[0]: user_id is empty", err)
        # One bad event fails the whole call: the first is not stored either.
        err = self.assert_rpc_error(["record", "--user", "cli-bad", "--purchase", item,
                                     "--purchase", ""], "RecordEvents", "INVALID_ARGUMENT")
        self.assertIn("events[1]: item_id is empty", err)
        self.assertEqual(self.reasons("cli-bad", [item]), ["PURCHASABLE"])
        self.assert_rpc_error(["forget", "--user", ""], "ForgetUser", "INVALID_ARGUMENT")

    def test_info_shows_data_end_and_events(self):
        before = self.info()
        grpc_before = self.d.info()
        self.assertEqual(before["data_end"], "2023-11-14T22:13:20.123Z (%d)" % DATA_END_MS)
        self.assertEqual(format_ms(DATA_END_MS), before["data_end"])
        self.assertEqual(grpc_before.data_end_unix_ms, DATA_END_MS)
        self.assertEqual(before["events_dir"], grpc_before.events.dir)
        self.assertTrue(os.path.samefile(before["events_dir"], self.state), before["events_dir"])
        self.assertEqual(before["events_error"], "-")
        self.assertEqual(before["compacted_through"],
                         format_ms(grpc_before.events.compacted_through_unix_ms))
        m = re.fullmatch(r"used (\d+), file (\d+), max (\d+)", before["events_bytes"])
        self.assertIsNotNone(m, before["events_bytes"])
        self.assertEqual(int(m.group(3)), 1 << 30)  # --state-max-bytes' default
        self.assertGreater(int(m.group(1)), 0)

        user, items = "cli-info", self.ds.item_ids[60:64]
        self.record("--user", user, "--purchase", items[0], "--view", items[1], "--view",
                    items[2], "--refund", items[3])
        self.assertEqual(self.recommend(user)[0], "FOLDED_IN")  # one fold-in
        after = self.info()
        for key in ("events_recorded", "events_pending"):
            delta = tuple(a - b for a, b in zip(by_type(after[key]), by_type(before[key])))
            self.assertEqual(delta, (1, 2, 1), key)
        self.assertEqual(int(after["fold_ins"]) - int(before["fold_ins"]), 1)
        # The text and the JSON say what GetModelInfo says.
        got = self.cli_json("info")
        ev = self.d.info().events
        self.assertEqual(got["data_end_unix_ms"], DATA_END_MS)
        self.assertEqual(got["events"]["dir"], ev.dir)
        self.assertEqual(by_type(after["events_pending"]),
                         (ev.pending_purchases, ev.pending_views, ev.pending_refunds))
        self.assertEqual(by_type(after["events_recorded"]),
                         (ev.recorded_purchases, ev.recorded_views, ev.recorded_refunds))
        self.assertEqual((got["events"]["recorded_purchases"], got["events"]["recorded_views"],
                          got["events"]["recorded_refunds"]),
                         (ev.recorded_purchases, ev.recorded_views, ev.recorded_refunds))
        self.assertEqual(int(after["fold_ins"]), ev.fold_ins)

        rc, out, err, _ = self.cli("forget", "--user", user)
        self.assertEqual((rc, out), (0, "deleted 4 events of user %s\n" % user), err)
        gone = self.info()
        delta = tuple(a - b for a, b in zip(by_type(after["events_pending"]),
                                            by_type(gone["events_pending"])))
        self.assertEqual(delta, (1, 2, 1))


if __name__ == "__main__":
    unittest.main()
