"""An ALS export directory (model/EXPORT.md) written from NumPy factors, the
way tools/spark/recsys_als.py lays it out, so the importer can be tested
against a writer that is not the one it ships with, and damaged exports
can be made one defect at a time.

Factors are written with numpy's shortest round-trip text for float32,
each row in one of three spellings (plain, Java's "1.0E-5" exponent, and
nine significant digits), so the importer's reading of every spelling is
exercised and each value still reads back bit for bit.
"""

import json
import os

import numpy as np


def factor_text(x, style):
    x = np.float32(x)
    if style == 0:
        return str(x)  # shortest: '0.1', '1e-05'
    if style == 1:
        m, e = np.format_float_scientific(x, unique=True).split("e")
        if "." not in m:
            m += ".0"
        return "%sE%d" % (m, int(e))  # Java's Float.toString for small values
    return "%.9g" % float(x)


def write_table(dir_, name, lines, parts):
    """Writes @lines (strings without LF) into @parts part files of
    dir_/name, in order. Returns the manifest's entry for the table."""
    os.makedirs(os.path.join(dir_, name), exist_ok=True)
    entry = {"rows": len(lines), "parts": []}
    per = -(-len(lines) // parts) if lines else 0
    for p in range(parts):
        chunk = lines[p * per:(p + 1) * per]
        fname = "part-%05d-0f0e-c000.txt" % p
        data = "".join(l + "\n" for l in chunk).encode("utf-8")
        with open(os.path.join(dir_, name, fname), "wb") as f:
            f.write(data)
        entry["parts"].append({"file": fname, "bytes": len(data)})
    with open(os.path.join(dir_, name, "_SUCCESS"), "wb"):
        pass
    return entry


def factor_lines(ids, matrix):
    return ["\t".join([i] + [factor_text(v, (r + j) % 3) for j, v in enumerate(row)])
            for r, (i, row) in enumerate(zip(ids, matrix))]


def write(dir_, user_ids, U, item_ids, V, purchases, *, parts=3, regularization=0.1,
          alpha=20.0, view_weight=0.25, scaling="per-interaction", data_end_ms=0,
          model_version="spark-test", created_at=1_700_000_000):
    """Writes a complete export to @dir_. @purchases: (user_id, item_id) pairs."""
    os.makedirs(dir_, exist_ok=True)
    tables = {
        "users": write_table(dir_, "users", factor_lines(user_ids, U), parts),
        "items": write_table(dir_, "items", factor_lines(item_ids, V), parts),
        "purchases": write_table(dir_, "purchases", ["%s\t%s" % p for p in purchases], parts),
    }
    manifest = {
        "format": "recsys-als-export",
        "format_version": 1,
        "factors": int(U.shape[1]),
        "model_version": model_version,
        "created_at": created_at,
        "data_end_unix_ms": data_end_ms,
        "training": {"trainer": "tests", "iterations": 0, "regularization": regularization,
                     "regularization_scaling": scaling, "alpha": alpha,
                     "view_weight": view_weight},
        "tables": tables,
    }
    write_manifest(dir_, manifest)
    return manifest


def write_manifest(dir_, manifest):
    with open(os.path.join(dir_, "recsys-export.json"), "w", encoding="utf-8") as f:
        json.dump(manifest, f, ensure_ascii=False, indent=1)


def read_manifest(dir_):
    with open(os.path.join(dir_, "recsys-export.json"), encoding="utf-8") as f:
        return json.load(f)


def refresh_sizes(dir_, manifest):
    """Sets every part's size in @manifest to the file's, after a test
    edited a part on purpose."""
    for name, t in manifest["tables"].items():
        for p in t["parts"]:
            p["bytes"] = os.path.getsize(os.path.join(dir_, name, p["file"]))
    write_manifest(dir_, manifest)
