"""The manifests in deploy/kubernetes, checked offline: against the
Kubernetes API's own JSON schemas (kubernetes-validate, strict: no field
the API does not have), and for what a schema cannot see: the probes and
ports name the daemon's, its settings exist, and the pod's grace covers
preStop's wait and the daemon's own. The live-events variant in
deploy/kubernetes/events the same way, and for its state: on the claimed
volume, bounded below the claim, its pods otherwise the Deployment's."""

import copy
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
DEFAULT = os.path.join(ROOT, "deploy", "kubernetes")
EVENTS = os.path.join(DEFAULT, "events")


def manifests(directory):
    return sorted(p for p in glob.glob(os.path.join(directory, "*.yaml"))
                  if not p.endswith("kustomization.yaml"))


MANIFESTS = manifests(DEFAULT)
EVENTS_MANIFESTS = manifests(EVENTS)
VALIDATE = os.path.join(os.environ["RECSYS_VENV"], "bin", "kubernetes-validate")
K8S_VERSION = "1.30.0"  # the oldest release still supported upstream, late 2026


def validate(paths):
    return subprocess.run([VALIDATE, "--strict", "--quiet", "-k", K8S_VERSION, *paths],
                          capture_output=True, text=True, timeout=120)


def documents(paths=MANIFESTS):
    for path in paths:
        with open(path) as f:
            yield from (d for d in yaml.safe_load_all(f) if d)


def deployment():
    return next(d for d in documents() if d["kind"] == "Deployment")


def statefulset():
    return next(d for d in documents(EVENTS_MANIFESTS) if d["kind"] == "StatefulSet")


def refused(path, old, new):
    """Whether the schemas refuse the manifest at path with old replaced by new."""
    tmp = tempfile.mkdtemp(prefix="recsys-k8s-")
    try:
        with open(path) as f:
            text = f.read()
        assert old in text, old
        bad = os.path.join(tmp, os.path.basename(path))
        with open(bad, "w") as f:
            f.write(text.replace(old, new, 1))
        return validate([bad]).returncode != 0
    finally:
        shutil.rmtree(tmp)


def listed(directory):
    with open(os.path.join(directory, "kustomization.yaml")) as f:
        return set(yaml.safe_load(f)["resources"])


def quantity(q):
    """Bytes of a Kubernetes quantity (2Gi, 500M)."""
    m = re.fullmatch(r"(\d+)(|k|M|G|T|Ki|Mi|Gi|Ti)", str(q))
    assert m, f"not a quantity this test reads: {q}"
    scale = {"": 1, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12,
             "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}[m.group(2)]
    return int(m.group(1)) * scale


def daemon_bytes(v):
    """Bytes of a recsysd size (1536M: K, M and G are powers of 1024, any case)."""
    m = re.fullmatch(r"(\d+)([KMG]?)", v, re.IGNORECASE)
    assert m, f"not a size the daemon reads: {v}"
    return int(m.group(1)) << {"": 0, "K": 10, "M": 20, "G": 30}[m.group(2).upper()]


def check_pod(test, pod):
    """The probes and ports are the daemon's, its settings exist, the grace
    covers preStop's wait and the daemon's own, the container is locked down."""
    c = pod["containers"][0]
    env = {e["name"]: e["value"] for e in c["env"]}
    known = set(re.findall(r"env (RECSYS_\w+)", subprocess.run(
        [RECSYSD, "--help"], capture_output=True, text=True).stdout))
    test.assertEqual(set(env) - known, set(), "settings the daemon does not have")
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    test.assertEqual(int(env["RECSYS_LISTEN"].rsplit(":", 1)[1]), ports["grpc"])
    test.assertEqual(int(env["RECSYS_METRICS_LISTEN"].rsplit(":", 1)[1]), ports["metrics"])
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        test.assertEqual(c[probe]["grpc"]["port"], ports["grpc"], probe)
    # Kubernetes waits past preStop's sleep and the daemon's grace.
    pre_stop = int(c["lifecycle"]["preStop"]["exec"]["command"][-1])
    test.assertGreater(pod["terminationGracePeriodSeconds"],
                       pre_stop + int(env["RECSYS_GRACE_SECONDS"]))
    test.assertTrue(c["securityContext"]["readOnlyRootFilesystem"])
    test.assertEqual(c["securityContext"]["capabilities"]["drop"], ["ALL"])
    test.assertTrue(pod["securityContext"]["runAsNonRoot"])


def check_selected(test, labels, docs):
    """Every Service and PodDisruptionBudget selects pods of these labels."""
    kinds = []
    for d in docs:
        if d["kind"] in ("Service", "PodDisruptionBudget"):
            selector = d["spec"]["selector"]
            match = selector.get("matchLabels", selector)
            test.assertTrue(match and all(labels.get(k) == v for k, v in match.items()),
                            d["metadata"]["name"])
            kinds.append(d["kind"])
    test.assertEqual(sorted(kinds), ["PodDisruptionBudget", "Service", "Service"])


class Manifests(unittest.TestCase):
    def test_the_api_schemas_accept_them(self):
        p = validate(MANIFESTS)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)

    def test_the_schemas_refuse_a_wrong_field(self):
        # The check sees a mistake: a misspelt field, strictly refused.
        self.assertTrue(refused(os.path.join(DEFAULT, "deployment.yaml"),
                                "containerPort:", "containerPorts:"))

    def test_kustomize_lists_every_manifest(self):
        self.assertEqual(listed(DEFAULT), {os.path.basename(p) for p in MANIFESTS})

    def test_probes_ports_and_settings_are_the_daemons(self):
        check_pod(self, deployment()["spec"]["template"]["spec"])

    def test_the_services_and_budget_select_the_pods(self):
        check_selected(self, deployment()["spec"]["template"]["metadata"]["labels"],
                       documents())


class EventsVariant(unittest.TestCase):
    """deploy/kubernetes/events: a StatefulSet whose replicas each keep
    their live events on a volume of their own."""

    def test_the_api_schemas_accept_them(self):
        p = validate(EVENTS_MANIFESTS)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)

    def test_the_schemas_refuse_a_wrong_field(self):
        self.assertTrue(refused(os.path.join(EVENTS, "statefulset.yaml"),
                                "volumeClaimTemplates:", "volumeClaimTemplate:"))

    def test_kustomize_lists_every_manifest(self):
        self.assertEqual(listed(EVENTS), {os.path.basename(p) for p in EVENTS_MANIFESTS})
        kinds = sorted(d["kind"] for d in documents(EVENTS_MANIFESTS))
        self.assertEqual(kinds, ["PodDisruptionBudget", "Service", "Service", "StatefulSet"])

    def test_the_services_and_budget_are_the_defaults(self):
        # Copies (kustomize loads nothing from the parent directory): the
        # same objects, so clients address either variant alike.
        for name in ("service.yaml", "pdb.yaml"):
            self.assertEqual(list(documents([os.path.join(EVENTS, name)])),
                             list(documents([os.path.join(DEFAULT, name)])), name)

    def test_the_pod_is_the_deployments_plus_its_state(self):
        # Same container, probes, security, resources, preStop, grace,
        # model volume and settings: only the state's settings and mount
        # are added, and the volume comes from the claim template.
        template = copy.deepcopy(statefulset()["spec"]["template"])
        c = template["spec"]["containers"][0]
        c["env"] = [e for e in c["env"]
                    if e["name"] not in ("RECSYS_STATE_DIR", "RECSYS_STATE_MAX_BYTES")]
        c["volumeMounts"] = [m for m in c["volumeMounts"] if m["name"] != "state"]
        self.assertEqual(template, deployment()["spec"]["template"])

    def test_probes_ports_and_settings_are_the_daemons(self):
        check_pod(self, statefulset()["spec"]["template"]["spec"])

    def test_the_state_is_on_the_claimed_volume(self):
        sts = statefulset()
        pod = sts["spec"]["template"]["spec"]
        c = pod["containers"][0]
        env = {e["name"]: e["value"] for e in c["env"]}
        claims = {t["metadata"]["name"]: t["spec"] for t in sts["spec"]["volumeClaimTemplates"]}
        self.assertEqual(set(claims), {"state"})
        # A claim per replica, its volume the pod's alone.
        self.assertEqual(claims["state"]["accessModes"], ["ReadWriteOnce"])
        self.assertNotIn("state", {v["name"] for v in pod.get("volumes", [])},
                         "a pod volume would hide the claim")
        mount = next(m for m in c["volumeMounts"] if m["name"] == "state")
        self.assertFalse(mount.get("readOnly", False))
        self.assertNotIn("subPath", mount)
        # The state directory is inside the volume, below its root (the
        # daemon creates it; the root may hold lost+found), and is on no
        # other mount: not the read-only root filesystem, not the models.
        state, root = os.path.normpath(env["RECSYS_STATE_DIR"]), os.path.normpath(mount["mountPath"])
        self.assertTrue(os.path.isabs(state))
        self.assertEqual(os.path.commonpath([state, root]), root)
        self.assertNotEqual(state, root)
        holding = [m["name"] for m in c["volumeMounts"]
                   if os.path.commonpath([state, os.path.normpath(m["mountPath"])])
                   == os.path.normpath(m["mountPath"])]
        self.assertEqual(holding, ["state"])
        self.assertTrue(c["securityContext"]["readOnlyRootFilesystem"])
        # The non-root daemon can write the volume: it is mounted for its group.
        self.assertEqual(pod["securityContext"]["fsGroup"], pod["securityContext"]["runAsGroup"])
        # The daemon refuses events before the volume is full: the most it
        # keeps is below the claim, with a tenth left for the filesystem's
        # own (journal, metadata, blocks reserved for root).
        request = quantity(claims["state"]["resources"]["requests"]["storage"])
        self.assertLessEqual(daemon_bytes(env["RECSYS_STATE_MAX_BYTES"]), request * 9 // 10)

    def test_one_replica_down_at_a_time(self):
        spec = statefulset()["spec"]
        self.assertEqual(spec["podManagementPolicy"], "Parallel")
        update = spec["updateStrategy"]
        self.assertEqual(update["type"], "RollingUpdate")
        self.assertEqual(update.get("rollingUpdate", {}).get("maxUnavailable", 1), 1)
        self.assertEqual(update.get("rollingUpdate", {}).get("partition", 0), 0)
        pdb = next(d for d in documents(EVENTS_MANIFESTS) if d["kind"] == "PodDisruptionBudget")
        self.assertEqual(pdb["spec"]["maxUnavailable"], 1)

    def test_the_services_and_budget_select_the_pods(self):
        sts = statefulset()
        labels = sts["spec"]["template"]["metadata"]["labels"]
        match = sts["spec"]["selector"]["matchLabels"]
        self.assertTrue(all(labels.get(k) == v for k, v in match.items()))
        check_selected(self, labels, documents(EVENTS_MANIFESTS))
        # The governing Service is headless, and this variant's own.
        services = {d["metadata"]["name"]: d for d in documents(EVENTS_MANIFESTS)
                    if d["kind"] == "Service"}
        self.assertIn(sts["spec"]["serviceName"], services)
        self.assertEqual(services[sts["spec"]["serviceName"]]["spec"].get("clusterIP"), "None")

    @unittest.skipUnless(shutil.which("kubectl"), "no kubectl")
    def test_kustomize_renders_what_is_checked(self):
        # Where kubectl is, its kustomize builds both directories into the
        # very objects the checks above read (a build it refuses fails here).
        for directory, paths in ((DEFAULT, MANIFESTS), (EVENTS, EVENTS_MANIFESTS)):
            p = subprocess.run(["kubectl", "kustomize", directory], capture_output=True,
                               text=True, timeout=120)
            self.assertEqual(p.returncode, 0, p.stderr)
            key = lambda d: (d["kind"], d["metadata"]["name"])  # noqa: E731
            self.assertEqual(sorted((d for d in yaml.safe_load_all(p.stdout) if d), key=key),
                             sorted(documents(paths), key=key), directory)


if __name__ == "__main__":
    unittest.main()
