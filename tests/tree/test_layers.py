"""The layers of the tree, checked: every project include points down.

    base <- model <- state <- engine <- server    (the daemon)
    base <- model <- tools/lib <- tools/recsys-*  (the offline tools)

A file may include headers of its own layer and of the layers it rests on,
never of one above or beside it; gRPC's headers only where gRPC is spoken
(server/, the CLI and its rpc module). Within the engine, the queries are
pure functions of (model, request): they see neither the reload lifecycle
nor anything of the server. The README's "How it is built" draws the same
picture; this test keeps the picture true.
"""
import os
import re
import sys
import tempfile
import unittest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))

# What each folder may include, by the include's first path components.
ALLOWED = {
    "base": ["base"],
    "model": ["base", "model"],
    "state": ["base", "model", "state"],
    "engine": ["base", "model", "state", "engine", "recsys"],
    "server": ["base", "model", "state", "engine", "server", "recsys", "grpc"],
    "tools/lib": ["base", "model", "tools/lib"],
    "tools/recsys-model": ["base", "model", "tools/lib", "tools/recsys-model"],
    "tools/recsys-train": ["base", "model", "tools/lib", "tools/recsys-train"],
    "tools/recsys-cli": ["base", "tools/lib", "tools/recsys-cli", "recsys", "grpc"],
}
# The query modules, and what they must not include though their layer may.
QUERIES = ["engine/recommend.", "engine/eligibility.", "engine/similar.", "engine/info.",
           "engine/batch.", "engine/filter.", "engine/query.h"]
NOT_FOR_QUERIES = ["engine/reload.h"]
# System-style includes of gRPC, allowed only here.
GRPC_ALLOWED = ["server/", "tools/recsys-cli/", "tools/lib/rpc."]

INCLUDE = re.compile(r'^\s*#\s*include\s+([<"])([^>"]+)[>"]', re.M)


def layer_of(path):
    for layer in sorted(ALLOWED, key=len, reverse=True):
        if path.startswith(layer + "/"):
            return layer
    return None


def sources(root=ROOT):
    for layer in ALLOWED:
        top = os.path.join(root, layer)
        for dirpath, _, files in os.walk(top):
            for f in files:
                if f.endswith((".c", ".h")):
                    yield os.path.relpath(os.path.join(dirpath, f), root)


def violations(root=ROOT):
    found = []
    for path in sources(root):
        layer = layer_of(path)
        text = open(os.path.join(root, path), encoding="utf-8").read()
        for kind, inc in INCLUDE.findall(text):
            if kind == "<":
                if inc.startswith("grpc/") and not any(path.startswith(p) for p in GRPC_ALLOWED):
                    found.append(f"{path}: <{inc}>: gRPC outside the layers that speak it")
                continue
            if not any(inc == a or inc.startswith(a + "/") for a in ALLOWED[layer]):
                found.append(f'{path}: "{inc}": {layer}/ may include only '
                             + ", ".join(a + "/" for a in ALLOWED[layer]))
            elif inc in NOT_FOR_QUERIES and any(path.startswith(q) for q in QUERIES):
                found.append(f'{path}: "{inc}": a query sees no reload lifecycle')
    return found


class Layers(unittest.TestCase):
    def test_every_include_points_down(self):
        self.assertEqual(violations(), [])

    def test_the_check_sees_the_tree(self):
        # A walk that found nothing would pass the test above vacuously.
        seen = {layer_of(p) for p in sources()}
        self.assertEqual(seen, set(ALLOWED))

    def test_wrong_arrows_are_caught(self):
        # A made-up tree with one wrong arrow of each kind.
        with tempfile.TemporaryDirectory() as root:
            for path, text in {
                "base/a.c": '#include "engine/score.h"\n',
                "engine/b.c": "#include <grpc/grpc.h>\n#include \"model/model.h\"\n",
                "tools/recsys-train/c.c": '#include "tools/recsys-model/cmd.h"\n',
                "server/d.c": '#include "engine/query.h"\n#include <grpc/grpc.h>\n',
                "engine/info.c": '#include "engine/reload.h"\n',
                "engine/reload.c": '#include "engine/reload.h"\n#include "model/model.h"\n',
            }.items():
                os.makedirs(os.path.join(root, os.path.dirname(path)), exist_ok=True)
                with open(os.path.join(root, path), "w") as f:
                    f.write(text)
            found = violations(root)
        self.assertEqual(len(found), 4, found)
        self.assertTrue(found[0].startswith('base/a.c: "engine/score.h"'), found)
        self.assertIn("engine/b.c: <grpc/grpc.h>", " ".join(found))
        self.assertIn("tools/recsys-train/c.c", " ".join(found))
        self.assertIn('engine/info.c: "engine/reload.h": a query', " ".join(found))


if __name__ == "__main__":
    sys.exit(unittest.main())
