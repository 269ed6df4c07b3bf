"""The manifests in deploy/kubernetes, checked offline: against the
Kubernetes API's own JSON schemas (kubernetes-validate, strict: no field
the API does not have), and for what a schema cannot see: the probes and
ports name the daemon's, its settings exist, and the pod's grace covers
preStop's wait and the daemon's own."""

import glob
import os
import re
import shutil
import subprocess
import tempfile
import unittest

import yaml

from daemon import RECSYSD

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
MANIFESTS = sorted(p for p in glob.glob(os.path.join(ROOT, "deploy", "kubernetes", "*.yaml"))
                   if not p.endswith("kustomization.yaml"))
VALIDATE = os.path.join(os.environ["RECSYS_VENV"], "bin", "kubernetes-validate")
K8S_VERSION = "1.30.0"  # the oldest release still supported upstream, late 2026


def validate(paths):
    return subprocess.run([VALIDATE, "--strict", "--quiet", "-k", K8S_VERSION, *paths],
                          capture_output=True, text=True, timeout=120)


def documents():
    for path in MANIFESTS:
        with open(path) as f:
            yield from (d for d in yaml.safe_load_all(f) if d)


def deployment():
    return next(d for d in documents() if d["kind"] == "Deployment")


class Manifests(unittest.TestCase):
    def test_the_api_schemas_accept_them(self):
        p = validate(MANIFESTS)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)

    def test_the_schemas_refuse_a_wrong_field(self):
        # The check sees a mistake: a misspelt field, strictly refused.
        tmp = tempfile.mkdtemp(prefix="recsys-k8s-")
        try:
            with open(os.path.join(ROOT, "deploy", "kubernetes", "deployment.yaml")) as f:
                text = f.read().replace("containerPort:", "containerPorts:", 1)
            bad = os.path.join(tmp, "deployment.yaml")
            with open(bad, "w") as f:
                f.write(text)
            self.assertNotEqual(validate([bad]).returncode, 0)
        finally:
            shutil.rmtree(tmp)

    def test_kustomize_lists_every_manifest(self):
        with open(os.path.join(ROOT, "deploy", "kubernetes", "kustomization.yaml")) as f:
            listed = set(yaml.safe_load(f)["resources"])
        self.assertEqual(listed, {os.path.basename(p) for p in MANIFESTS})

    def test_probes_ports_and_settings_are_the_daemons(self):
        pod = deployment()["spec"]["template"]["spec"]
        c = pod["containers"][0]
        env = {e["name"]: e["value"] for e in c["env"]}
        known = set(re.findall(r"env (RECSYS_\w+)", subprocess.run(
            [RECSYSD, "--help"], capture_output=True, text=True).stdout))
        self.assertEqual(set(env) - known, set(), "settings the daemon does not have")
        ports = {p["name"]: p["containerPort"] for p in c["ports"]}
        self.assertEqual(int(env["RECSYS_LISTEN"].rsplit(":", 1)[1]), ports["grpc"])
        self.assertEqual(int(env["RECSYS_METRICS_LISTEN"].rsplit(":", 1)[1]), ports["metrics"])
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            self.assertEqual(c[probe]["grpc"]["port"], ports["grpc"], probe)
        # Kubernetes waits past preStop's sleep and the daemon's grace.
        pre_stop = int(c["lifecycle"]["preStop"]["exec"]["command"][-1])
        self.assertGreater(pod["terminationGracePeriodSeconds"],
                           pre_stop + int(env["RECSYS_GRACE_SECONDS"]))
        self.assertTrue(c["securityContext"]["readOnlyRootFilesystem"])
        self.assertEqual(c["securityContext"]["capabilities"]["drop"], ["ALL"])
        self.assertTrue(pod["securityContext"]["runAsNonRoot"])

    def test_the_services_and_budget_select_the_pods(self):
        labels = deployment()["spec"]["template"]["metadata"]["labels"]
        for d in documents():
            selector = d["spec"].get("selector")
            if d["kind"] in ("Service", "PodDisruptionBudget"):
                match = selector.get("matchLabels", selector)
                self.assertTrue(all(labels.get(k) == v for k, v in match.items()),
                                d["metadata"]["name"])


if __name__ == "__main__":
    unittest.main()
