"""The systemd unit in deploy/systemd, checked offline: systemd's own
parser finds nothing to warn about, its security analysis rates the
unit's exposure low, the environment file's settings are the daemon's and
start it, and the numbers the unit sets agree with the daemon's."""

import os
import re
import shutil
import subprocess
import tempfile
import unittest

import fixtures
from daemon import RECSYSD, Daemon

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
UNIT = os.path.join(ROOT, "deploy", "systemd", "recsysd.service")
ENV = os.path.join(ROOT, "deploy", "systemd", "recsysd.env")
# systemd-analyze rates exposure 0 (locked down) to 10; "OK" is below 4.
EXPOSURE_MAX = 2.5


def read_unit(path=UNIT):
    """{key: value} of the unit (keys are unique in ours)."""
    out = {}
    with open(path) as f:
        for line in f:
            m = re.match(r"^(\w+)=(.*)$", line.strip())
            if m:
                out[m.group(1)] = m.group(2)
    return out


def read_env():
    with open(ENV) as f:
        return dict(line.strip().split("=", 1) for line in f
                    if line.strip() and not line.startswith("#"))


class SystemdUnit(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="recsys-deploy-")

    def tearDown(self):
        shutil.rmtree(self.tmp)

    def local_copy(self, extra=""):
        """The unit with ExecStart on this build's recsysd (verify wants it
        to exist), plus extra lines in [Service]."""
        with open(UNIT) as f:
            text = f.read().replace("/usr/local/bin/recsysd", RECSYSD)
        text = text.replace("[Service]\n", "[Service]\n" + extra)
        path = os.path.join(self.tmp, "recsysd.service")
        with open(path, "w") as f:
            f.write(text)
        return path

    def verify(self, path):
        p = subprocess.run(["systemd-analyze", "verify", path], capture_output=True, text=True,
                           timeout=60)
        # It exits 0 on unknown keys and bad values, and says so on stderr.
        return p.returncode, [l for l in p.stderr.splitlines() if os.path.basename(path) in l]

    def test_systemd_parses_it_without_a_warning(self):
        rc, warnings = self.verify(self.local_copy())
        self.assertEqual((rc, warnings), (0, []))
        # The check sees a mistake: an unknown key and a bad signal.
        rc, warnings = self.verify(self.local_copy("Frobnicate=yes\nKillSignal=SIGFOO\n"))
        self.assertEqual(len(warnings), 2, warnings)

    def test_its_exposure_is_low(self):
        p = subprocess.run(["systemd-analyze", "security", "--offline=yes", self.local_copy()],
                           capture_output=True, text=True, timeout=60)
        m = re.search(r"Overall exposure level for \S+: ([0-9.]+)", p.stdout + p.stderr)
        self.assertIsNotNone(m, p.stdout + p.stderr)
        self.assertLessEqual(float(m.group(1)), EXPOSURE_MAX)

    def test_the_numbers_agree_with_the_daemon(self):
        unit, env = read_unit(), read_env()
        self.assertEqual(unit["ExecReload"], "/bin/kill -HUP $MAINPID")
        self.assertEqual(unit["KillSignal"], "SIGTERM")
        # systemd waits past the daemon's grace before it kills.
        self.assertGreater(int(unit["TimeoutStopSec"]), int(env["RECSYS_GRACE_SECONDS"]) + 5)
        # Descriptors for every connection allowed, and the daemon's own.
        self.assertGreater(int(unit["LimitNOFILE"]), int(env["RECSYS_MAX_CONNECTIONS"]) + 64)
        self.assertEqual(unit["ReadOnlyPaths"], os.path.dirname(env["RECSYS_MODEL"]))
        # The live events go where systemd lets the dynamic user write and
        # keeps the files across restarts: under /var/lib/<StateDirectory>.
        self.assertTrue(env["RECSYS_STATE_DIR"].startswith(
            "/var/lib/%s/" % unit["StateDirectory"]), env["RECSYS_STATE_DIR"])

    def test_the_environment_file_starts_the_daemon(self):
        names = set(re.findall(r"env (RECSYS_\w+)",
                               subprocess.run([RECSYSD, "--help"], capture_output=True,
                                              text=True).stdout))
        env = read_env()
        self.assertEqual(set(env) - names, set(), "settings the daemon does not have")
        fixtures.make_model(self.tmp, items=100)
        # The file's settings, but a model and ports of this test's.
        env.update(RECSYS_MODEL=os.path.join(self.tmp, "model.lmdb"),
                   RECSYS_LISTEN="127.0.0.1:0", RECSYS_METRICS_LISTEN="127.0.0.1:0",
                   RECSYS_STATE_DIR=os.path.join(self.tmp, "state"))
        with Daemon(None, listen=None, env=env) as d:
            self.assertEqual(d.health(), "SERVING")
            self.assertEqual(d.info().events.dir, env["RECSYS_STATE_DIR"])
            # MemoryDenyWriteExecute=yes: no page of the daemon is both
            # writable and executable.
            with open("/proc/%d/maps" % d.proc.pid) as f:
                rwx = [l for l in f if l.split()[1].startswith("rwx")]
            self.assertEqual(rwx, [])


if __name__ == "__main__":
    unittest.main()
