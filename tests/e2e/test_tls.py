"""End-to-end tests of TLS and mutual TLS (--tls-cert, --tls-key,
--tls-client-ca) with python3-grpcio's TLS channels.

The test makes its own certificate authorities with the openssl command:
one the server and the good client chain to, and a rogue one. Every client
that should be refused is refused at the handshake (UNAVAILABLE), and every
one that should get through gets the reference answer.
"""

import json
import os
import shutil
import subprocess
import tempfile
import unittest

import grpc

import fixtures
from daemon import RECSYSD, Daemon
from pki import make_ca, make_leaf
from recsys.v1 import recommender_pb2 as pb

CLI = os.environ["RECSYS_CLI"]


def read(d, name):
    with open(os.path.join(d, name), "rb") as f:
        return f.read()


class TlsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="recsys-tls-")
        d = cls.pki = os.path.join(cls.tmp, "pki")
        os.mkdir(d)
        make_ca(d, "ca")
        make_ca(d, "rogue")
        make_leaf(d, "server", "ca", san="IP:127.0.0.1")
        make_leaf(d, "client", "ca")
        make_leaf(d, "intruder", "rogue")
        cls.ds = fixtures.make_model(cls.tmp, users=40, items=60, dim=8, seed=9, version="tls-1")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp)

    def path(self, name):
        return os.path.join(self.pki, name)

    def creds(self, trust="ca", client=None):
        kw = {"root_certificates": read(self.pki, trust + ".pem")}
        if client is not None:
            kw["private_key"] = read(self.pki, client + ".key")
            kw["certificate_chain"] = read(self.pki, client + ".pem")
        return grpc.ssl_channel_credentials(**kw)

    def server_args(self, mutual=False):
        args = ["--tls-cert", self.path("server.pem"), "--tls-key", self.path("server.key")]
        return args + (["--tls-client-ca", self.path("ca.pem")] if mutual else [])

    def assert_answers(self, d, channel):
        user = self.ds.user_ids[1]
        call = d.rpc("Recommend", pb.RecommendResponse, channel=channel)
        got = call(pb.RecommendRequest(user_id=user, count=5), timeout=10)
        _, want = fixtures.ref_recommend(self.ds, user, count=5)
        self.assertEqual([(i.item_id, i.score) for i in got.items], want)

    def assert_refused(self, d, channel):
        call = d.rpc("GetModelInfo", pb.ModelInfo, channel=channel)
        with self.assertRaises(grpc.RpcError) as cm:
            call(pb.ModelInfoRequest(), timeout=10)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.UNAVAILABLE)

    def secure(self, d, creds):
        ch = grpc.secure_channel(d.addr, creds)
        d._channels.append(ch)
        return ch

    def test_tls_serves_clients_that_trust_its_ca(self):
        with Daemon(self.ds.path, threads=2, args=self.server_args(),
                    credentials=self.creds()) as d:
            self.assertRegex(d.log(), r"listening on \S+ threads=2 tls=on ")
            self.assert_answers(d, d.channel())
            # Without mutual TLS a client certificate is not needed, nor checked.
            self.assert_answers(d, self.secure(d, self.creds(client="intruder")))
            self.assert_refused(d, self.secure(d, self.creds(trust="rogue")))
            plain = grpc.insecure_channel(d.addr)
            d._channels.append(plain)
            self.assert_refused(d, plain)

    def test_mutual_tls_refuses_clients_without_a_good_certificate(self):
        with Daemon(self.ds.path, threads=2, args=self.server_args(mutual=True),
                    credentials=self.creds(client="client")) as d:
            self.assertIn("tls=mutual", d.log())
            self.assert_answers(d, d.channel())
            self.assert_refused(d, self.secure(d, self.creds()))
            self.assert_refused(d, self.secure(d, self.creds(client="intruder")))
            self.assert_answers(d, d.channel())  # and still serves the good one

    def cli(self, d, *args):
        return subprocess.run([CLI, "--addr", d.addr, "--timeout", "20", *args, "info", "--json"],
                              capture_output=True, text=True, timeout=120)

    def test_recsys_cli_over_tls(self):
        with Daemon(self.ds.path, threads=1, args=self.server_args(mutual=True),
                    credentials=self.creds(client="client")) as d:
            ok = self.cli(d, "--tls-ca", self.path("ca.pem"), "--tls-cert",
                          self.path("client.pem"), "--tls-key", self.path("client.key"))
            self.assertEqual(ok.returncode, 0, ok.stderr)
            self.assertEqual(json.loads(ok.stdout)["model_version"], "tls-1")
            # Refused at the handshake: no answer, exit status 3.
            for args in ([], ["--tls-ca", self.path("ca.pem")],
                         ["--tls-ca", self.path("rogue.pem"), "--tls-cert",
                          self.path("client.pem"), "--tls-key", self.path("client.key")]):
                p = self.cli(d, *args)
                self.assertEqual(p.returncode, 3, (args, p.stderr))
                self.assertIn("UNAVAILABLE", p.stderr)
            for args, why in ((["--tls-ca", self.path("nope.pem")], "cannot read the TLS CA"),
                              (["--tls-cert", self.path("client.pem")],
                               "--tls-cert and --tls-key go together")):
                p = self.cli(d, *args)
                self.assertEqual(p.returncode, 1, (args, p.stderr))
                self.assertIn(why, p.stderr)

    def test_bad_settings_stop_the_start(self):
        not_pem = os.path.join(self.tmp, "not.pem")
        with open(not_pem, "w") as f:
            f.write("this is no certificate\n")
        cases = [
            (["--tls-cert", self.path("server.pem")], "--tls-cert and --tls-key go together"),
            (["--tls-key", self.path("server.key")], "--tls-cert and --tls-key go together"),
            (["--tls-client-ca", self.path("ca.pem")], "--tls-client-ca needs both"),
            (["--tls-cert", self.path("nope.pem"), "--tls-key", self.path("server.key")],
             "cannot read the TLS certificate %s" % self.path("nope.pem")),
            (["--tls-cert", not_pem, "--tls-key", self.path("server.key")],
             "the TLS certificate %s is not a PEM file" % not_pem),
            (self.server_args() + ["--tls-client-ca", not_pem],
             "the TLS client CA %s is not a PEM file" % not_pem),
            (["--tls-cert", self.path("server.pem"), "--tls-key", self.path("client.key")],
             "or the TLS key does not match the certificate"),
        ]
        for args, why in cases:
            proc = subprocess.run([RECSYSD, "--model", self.ds.path, "--listen", "127.0.0.1:0",
                                   *args], capture_output=True, text=True, timeout=120)
            self.assertEqual(proc.returncode, 1, (args, proc.stderr))
            self.assertIn("failed to start the server", proc.stderr)
            self.assertIn(why, proc.stderr)


if __name__ == "__main__":
    unittest.main()
