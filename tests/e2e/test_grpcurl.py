"""The README's grpcurl examples, run against live daemons on the demo
model, their output compared with what the README prints: documentation
and behaviour cannot drift apart.

Every ```console block of README.md whose lines start with "$ grpcurl" is
an example: the command, then its output (stdout and stderr, as a terminal
shows them), run in the README's order. 127.0.0.1:50051 is a plaintext
daemon with a state directory, 127.0.0.1:50052 one with mutual TLS, both
on `recsys-model demo`'s model as `make run` makes it; the commands run in
a directory holding ca.pem, client.pem and client.key. grpcurl is built from tests/go/grpcurl's pinned modules by the
e2e/go_tools fixture (RECSYS_GRPCURL).
"""

import os
import re
import shlex
import shutil
import subprocess
import tempfile
import unittest

import grpc

from daemon import Daemon
from pki import make_ca, make_leaf

GRPCURL = os.environ["RECSYS_GRPCURL"]
README = os.path.join(os.path.dirname(__file__), "..", "..", "README.md")
TOOL = os.environ["RECSYS_MODEL_TOOL"]
PLAIN, MUTUAL = "127.0.0.1:50051", "127.0.0.1:50052"


def examples():
    """[(command line, expected output)] of the README, in order."""
    with open(README) as f:
        text = f.read()
    out = []
    for block in re.findall(r"^```console\n(.*?)^```$", text, re.S | re.M):
        if not block.startswith("$ grpcurl "):
            continue
        command, _, output = block.partition("\n")
        out.append((command[2:], output))
    return out


class ReadmeGrpcurl(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if not os.access(GRPCURL, os.X_OK):
            raise AssertionError("grpcurl not built at %s (the e2e/go_tools fixture)" % GRPCURL)
        cls.tmp = tempfile.mkdtemp(prefix="recsys-grpcurl-")
        cls.started = []
        try:
            model = os.path.join(cls.tmp, "model.lmdb")
            subprocess.run([TOOL, "demo", "-o", model], check=True, capture_output=True)
            cls.pki = os.path.join(cls.tmp, "pki")
            os.mkdir(cls.pki)
            make_ca(cls.pki, "ca")
            make_leaf(cls.pki, "server", "ca", san="IP:127.0.0.1")
            make_leaf(cls.pki, "client", "ca")
            read = lambda n: open(os.path.join(cls.pki, n), "rb").read()  # noqa: E731
            p = lambda n: os.path.join(cls.pki, n)  # noqa: E731
            plain = Daemon(model, args=["--state-dir", os.path.join(cls.tmp, "state")])
            mutual = Daemon(model, args=["--tls-cert", p("server.pem"), "--tls-key",
                                         p("server.key"), "--tls-client-ca", p("ca.pem")],
                            credentials=grpc.ssl_channel_credentials(
                                read("ca.pem"), read("client.key"), read("client.pem")))
            for d in (plain, mutual):
                d.start()
                cls.started.append(d)
            cls.addrs = {PLAIN: plain.addr, MUTUAL: mutual.addr}
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        for d in cls.started:
            d.stop()
        shutil.rmtree(cls.tmp)

    def here(self, text):
        """text with the README's addresses replaced by the daemons'."""
        for readme, real in self.addrs.items():
            text = text.replace(readme, real)
        return text

    def test_every_example_prints_what_the_readme_shows(self):
        found = examples()
        # list, describe, each RPC, health, and both sides of mutual TLS.
        self.assertGreaterEqual(len(found), 13)
        for methods in ("Recommend", "CheckEligibility", "SimilarItems", "BatchRecommend",
                        "GetModelInfo", "RecordEvents", "ForgetUser", "Health/Check", " list",
                        " describe "):
            self.assertTrue(any(methods in c for c, _ in found), methods)
        for command, want in found:
            with self.subTest(command=command):
                argv = shlex.split(self.here(command))
                self.assertEqual(argv[0], "grpcurl")
                p = subprocess.run([GRPCURL] + argv[1:], cwd=self.pki, capture_output=True,
                                   text=True, timeout=60)
                self.assertEqual(p.stdout + p.stderr, self.here(want))


if __name__ == "__main__":
    unittest.main()
