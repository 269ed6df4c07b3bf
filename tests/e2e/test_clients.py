"""The client examples of examples/clients, run as a backend team would run
them, against real daemons: each must print what recsys-cli, our C client,
prints for the same calls, over plaintext, TLS and mutual TLS; be refused
by a mutual-TLS daemon without a certificate; and fail no call of its load
while the daemon restarts on the same port (SIGTERM: the daemon drains;
then a new daemon), through its channel's retry policy and reconnection.

The toolchains are set up by the e2e/clients fixture (tests/CMakeLists.txt)
from the pinned files of each example; a missing one fails here, loudly.
"""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import unittest

import grpc
import numpy as np

import fixtures
from daemon import Daemon, handled
from pki import make_ca, make_leaf

CLI = os.environ["RECSYS_CLI"]
CLIENTS_DIR = os.environ["RECSYS_CLIENTS_DIR"]
CLIENTS_SRC = os.environ["RECSYS_CLIENTS_SRC"]

# Each example: how to run it, and the environment it needs beside ours.
CLIENTS = {
    "python": ([os.path.join(CLIENTS_DIR, "python", "venv", "bin", "python"),
                os.path.join(CLIENTS_SRC, "python", "client.py")],
               {"PYTHONPATH": os.path.join(CLIENTS_DIR, "python", "gen")}),
    "node": (["node", os.path.join(CLIENTS_SRC, "node", "client.js")],
             {"NODE_PATH": os.path.join(CLIENTS_DIR, "node", "node_modules")}),
    "go": ([os.path.join(CLIENTS_DIR, "go", "client")], {}),
    "java": (["java", "-jar", os.path.join(CLIENTS_DIR, "java", "client.jar")], {}),
}

# proto3 JSON writes 64-bit integers as strings; recsys-cli as numbers.
INT64_FIELDS = {"price_cents"}


def normalize(x, key=None):
    """x with 64-bit integers as ints and scores as the float32 they are, so
    that printers that spell them differently compare equal."""
    if isinstance(x, dict):
        return {k: normalize(v, k) for k, v in x.items()}
    if isinstance(x, list):
        return [normalize(v) for v in x]
    if key in INT64_FIELDS:
        return int(x)
    if isinstance(x, float) or key == "score":
        return float(np.float32(x))
    return x


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Clients(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        for name, (argv, _) in CLIENTS.items():
            if shutil.which(argv[0]) is None:
                raise AssertionError("%s client: %s not found (make test installs it)"
                                     % (name, argv[0]))
        cls.tmp = tempfile.mkdtemp(prefix="recsys-clients-")
        try:
            cls.pki = os.path.join(cls.tmp, "pki")
            os.mkdir(cls.pki)
            make_ca(cls.pki, "ca")
            make_leaf(cls.pki, "server", "ca", san="IP:127.0.0.1")
            make_leaf(cls.pki, "client", "ca")
            cls.ds = fixtures.make_model(cls.tmp, users=60, items=80, dim=8, seed=17,
                                         version="clients-1")
            p = lambda n: os.path.join(cls.pki, n)  # noqa: E731
            read = lambda n: open(p(n), "rb").read()  # noqa: E731
            tls = ["--tls-cert", p("server.pem"), "--tls-key", p("server.key")]
            # The harness's own channels (health at start) as a client would.
            trust = grpc.ssl_channel_credentials(read("ca.pem"))
            mutual = grpc.ssl_channel_credentials(read("ca.pem"), read("client.key"),
                                                  read("client.pem"))
            cls.daemons = {
                "plain": Daemon(cls.ds.path),
                "tls": Daemon(cls.ds.path, args=tls, credentials=trust),
                "mtls": Daemon(cls.ds.path, args=tls + ["--tls-client-ca", p("ca.pem")],
                               credentials=mutual),
            }
            cls.started = []
            for d in cls.daemons.values():
                d.start()
                cls.started.append(d)
            cls.modes = {
                "plain": [],
                "tls": ["--tls-ca", p("ca.pem")],
                "mtls": ["--tls-ca", p("ca.pem"), "--tls-cert", p("client.pem"),
                         "--tls-key", p("client.key")],
            }
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        for d in getattr(cls, "started", []):
            d.stop()
        shutil.rmtree(cls.tmp)

    def run_client(self, name, *args, timeout=120):
        argv, env = CLIENTS[name]
        return subprocess.run(argv + list(args), capture_output=True, text=True,
                              timeout=timeout, env=dict(os.environ, **env))

    def cli(self, *args):
        p = subprocess.run([CLI, "--addr", self.daemons["plain"].addr, "--json", *args],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        return json.loads(p.stdout)

    def calls(self):
        """The example's arguments, and what recsys-cli answers to them."""
        user, users = self.ds.user_ids[3], self.ds.user_ids[:5] + ["nobody"]
        items = self.ds.item_ids[:4] + ["no-such-item"]
        args = ["--user", user, "--count", "5", "--items", *items, "--batch", *users]
        want = {
            "health": "SERVING",
            "recommend": self.cli("recommend", "--user", user, "--count", "5"),
            "eligibility": self.cli("eligibility", "--user", user, *items),
            "batch": self.cli("batch-recommend", *users, "--count", "5"),
        }
        return args, normalize(want)

    def check_answers(self, name):
        args, want = self.calls()
        self.assertEqual(want["recommend"]["source"], "PERSONALIZED")
        self.assertEqual(want["batch"]["responses"][-1]["source"], "POPULAR")
        for mode, flags in self.modes.items():
            with self.subTest(mode=mode):
                p = self.run_client(name, "--addr", self.daemons[mode].addr, *flags, *args)
                self.assertEqual(p.returncode, 0, p.stderr)
                self.assertEqual(normalize(json.loads(p.stdout)), want)

    def check_mtls_refuses(self, name):
        """Without a certificate, no handshake: the example waits for a
        connection (wait-for-ready) until its deadline, and answers nothing."""
        args, _ = self.calls()
        p = self.run_client(name, "--addr", self.daemons["mtls"].addr, *self.modes["tls"],
                            "--deadline-ms", "1500", *args)
        self.assertNotEqual(p.returncode, 0, p.stdout)
        self.assertEqual(p.stdout, "")
        # DEADLINE_EXCEEDED, as each language spells it.
        self.assertIn("DEADLINEEXCEEDED", re.sub(r"[ _]", "", p.stderr.upper()))

    def check_restart_under_load(self, name):
        """The example's load through SIGTERM and a new daemon on its port."""
        addr = "127.0.0.1:%d" % free_port()
        d = Daemon(self.ds.path, listen=addr, metrics=True)
        d.start()
        argv, env = CLIENTS[name]
        client = subprocess.Popen(argv + [
            "--addr", addr, "--user", self.ds.user_ids[1], "--load", "12", "--concurrency", "4",
            "--deadline-ms", "20000"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env=dict(os.environ, **env))
        out = []
        reader = threading.Thread(target=lambda: out.append(client.communicate()))
        reader.start()
        try:
            d.await_scrape(lambda m: handled(m, "Recommend", "OK") >= 200)
            d.signal(signal.SIGTERM)
            self.assertEqual(d.wait_exit(60), 0, d.log())
            d = Daemon(self.ds.path, listen=addr, metrics=True)
            d.start()
            d.await_scrape(lambda m: handled(m, "Recommend", "OK") >= 200)
        finally:
            reader.join(120)
            d.stop()
        stdout, stderr = out[0]
        self.assertEqual(client.returncode, 0, stderr)
        result = json.loads(stdout)
        self.assertEqual(list(result["outcomes"]), ["OK"], result)

    def test_python(self):
        self.check_answers("python")
        self.check_mtls_refuses("python")
        self.check_restart_under_load("python")

    def test_go(self):
        self.check_answers("go")
        self.check_mtls_refuses("go")
        self.check_restart_under_load("go")

    def test_java(self):
        self.check_answers("java")
        self.check_mtls_refuses("java")
        self.check_restart_under_load("java")

    def test_node(self):
        self.check_answers("node")
        self.check_mtls_refuses("node")
        self.check_restart_under_load("node")


if __name__ == "__main__":
    unittest.main()
