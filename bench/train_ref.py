#!/usr/bin/python3
"""The NumPy reference for recsys-train's ALS, and the bench's data.

    train_ref.py gen --users U --items I --interactions N [--seed S] DIR
        writes DIR/catalog.csv and DIR/log.csv: a planted-topic log (each
        user buys mostly within two of 50 topics, popularity skewed within
        a topic) with distinct timestamps, so "the latest pairs" is one set.

    train_ref.py als --catalog C --interactions L --factors K --iterations N
                     --regularization R --alpha A --holdout H [--seed S]
        implicit ALS (Hu, Koren, Volinsky 2008) in plain NumPy on the split
        recsys-train makes (README, "Training a model"), then the same
        holdout metrics. Prints one line per iteration and the metrics in
        recsys-train's format. BLAS threads: OPENBLAS_NUM_THREADS.

It follows the README's definitions, not recsys-train's code: the split
(each user with n >= 2 pairs holds out round(H n) of their latest, at most
n - 1), the initial factors (splitmix64 of seed, side and row, as the README
states), the per-row normal equations, and the metrics. The solves run one
row at a time, as the equations are written; float32 like the tool.
"""

import argparse
import csv
import math
import sys
import time

import numpy as np

GOLDEN = np.uint64(0x9E3779B97F4A7C15)
M64 = (1 << 64) - 1


def mix(z):
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def init_factors(rows, k, seed, side):
    """Row r, factor j: splitmix64(seed ^ side << 62 ^ r * golden + (j + 1) * golden),
    top 24 bits as a fraction, minus 0.5, over sqrt(k)."""
    with np.errstate(over="ignore"):
        base = (np.uint64(seed) ^ np.uint64((side << 62) & M64)) ^ (
            np.arange(rows, dtype=np.uint64) * GOLDEN)
        z = base[:, None] + (np.arange(1, k + 1, dtype=np.uint64) * GOLDEN)[None, :]
        z = mix(z)
    f = (z >> np.uint64(40)).astype(np.float32) / np.float32(16777216.0) - np.float32(0.5)
    return (f * np.float32(1.0 / math.sqrt(k))).astype(np.float32)


# ---- data ---------------------------------------------------------------------

def gen(a):
    rng = np.random.default_rng(a.seed)
    topics = 50
    n = a.interactions
    item_topic = np.arange(a.items) % topics
    per_topic = [np.flatnonzero(item_topic == t) for t in range(topics)]
    user_topics = rng.integers(topics, size=(a.users, 2))
    # Interactions per user: roughly n / users each, at least 2, topped up
    # (or cut) to exactly n.
    counts = np.maximum(2, rng.poisson(n / a.users, size=a.users))
    users = np.repeat(np.arange(a.users), counts)[:n]
    users = np.concatenate([users, rng.integers(a.users, size=n - users.size)])
    which = rng.integers(10, size=users.size)
    topic = np.where(which < 6, user_topics[users, 0], user_topics[users, 1])
    size = np.array([len(p) for p in per_topic])[topic]
    rank = np.minimum((size * rng.random(users.size) ** 2).astype(np.int64), size - 1)
    items = np.array([per_topic[t][r] for t, r in zip(topic, rank)])
    noise = which == 0
    items[noise] = rng.integers(a.items, size=int(noise.sum()))
    stamps = 1_600_000_000 + rng.permutation(users.size)
    with open(a.dir + "/catalog.csv", "w") as f:
        f.write("item_id,category,price_cents,on_sale,member_tier\n")
        f.write("".join("i%d,t%d,%d,1,0\n" % (i, item_topic[i], 100 + i) for i in range(a.items)))
    order = rng.permutation(users.size)
    with open(a.dir + "/log.csv", "w") as f:
        f.write("user_id,item_id,timestamp\n")
        f.write("".join("u%d,i%d,%d\n" % (users[j], items[j], stamps[j]) for j in order))


def read(a):
    """Items in catalog order, users in order of first appearance, pairs
    merged (weights add, latest time), then the split: (item count, on
    sale, train, held, user ids, item ids), train and held by user index."""
    with open(a.catalog, newline="") as f:
        r = csv.reader(f)
        head = next(r)
        rows = list(r)
    item_index = {row[head.index("item_id")]: i for i, row in enumerate(rows)}
    on_sale = np.array([row[head.index("on_sale")].lower() in ("1", "true") for row in rows])
    user_index = {}
    pairs = {}
    with open(a.interactions, newline="") as f:
        r = csv.reader(f)
        head = next(r)
        cu, ci, ct = head.index("user_id"), head.index("item_id"), head.index("timestamp")
        cw = head.index("weight") if "weight" in head else None
        for row in r:
            u = user_index.setdefault(row[cu], len(user_index))
            i = item_index[row[ci]]
            w = float(row[cw]) if cw is not None else 1.0
            t = int(row[ct])
            old = pairs.get((u, i))
            pairs[(u, i)] = (w, t) if old is None else (old[0] + w, max(old[1], t))
    by_user = [[] for _ in user_index]
    for (u, i), (w, t) in pairs.items():
        by_user[u].append((t, i, w))
    train, held = [], []
    for p in by_user:
        p.sort(key=lambda x: (-x[0], -x[1]))  # latest first
        n = len(p)
        h = min(int(math.floor(a.holdout * n + 0.5)), n - 1) if n >= 2 else 0
        held.append([i for _, i, _ in p[:h]])
        train.append(sorted((i, w) for _, i, w in p[h:]))
    return len(item_index), on_sale, train, held, list(user_index), list(item_index)


# ---- ALS ----------------------------------------------------------------------

def solve_side(rows, F, k, lam, alpha):
    """x_r = (F^T F + F_r^T (C_r - I) F_r + lam I)^-1 F_r^T C_r 1 for each row r."""
    G = F.T @ F
    out = np.zeros((len(rows), k), dtype=np.float32)
    eye = np.float32(lam) * np.eye(k, dtype=np.float32)
    for r, (cols, w) in enumerate(rows):
        Fr = F[cols]
        c = np.float32(1) + np.float32(alpha) * w
        A = G + (Fr.T * (c - 1)) @ Fr + eye
        out[r] = np.linalg.solve(A, Fr.T @ c)
    return out


def loss(urows, X, Y, lam, alpha):
    total = float(np.einsum("uk,kl,ul->", X.astype(np.float64), (Y.T @ Y).astype(np.float64),
                            X.astype(np.float64)))
    for u, (cols, w) in enumerate(urows):
        s = Y[cols].astype(np.float64) @ X[u].astype(np.float64)
        c = 1 + alpha * w.astype(np.float64)
        total += float((c * (1 - s) ** 2 - s ** 2).sum())
    return total + lam * (float((X.astype(np.float64) ** 2).sum()) +
                          float((Y.astype(np.float64) ** 2).sum()))


def metrics(X, Y, on_sale, train, held):
    p = r = nd = 0.0
    shown = np.zeros(Y.shape[0], dtype=bool)
    users = [u for u in range(len(held)) if held[u]]
    for b in range(0, len(users), 1024):
        block = users[b:b + 1024]
        S = X[block] @ Y.T
        S[:, ~on_sale] = -np.inf
        for j, u in enumerate(block):
            s = S[j]
            s[[i for i, _ in train[u]]] = -np.inf
            top = np.argsort(-s, kind="stable")[:10]
            top = top[s[top] > -np.inf]
            shown[top] = True
            hits = [rank for rank, i in enumerate(top) if i in held[u]]
            ideal = sum(1 / math.log2(q + 2) for q in range(min(10, len(held[u]))))
            p += len(hits) / 10
            r += len(hits) / len(held[u])
            nd += sum(1 / math.log2(q + 2) for q in hits) / ideal
    n = max(len(users), 1)
    return p / n, r / n, nd / n, shown.mean(), len(users)


def als(a):
    items, on_sale, train, held, _, _ = read(a)
    k = a.factors
    urows = [(np.array([i for i, _ in t], dtype=np.int64),
              np.array([w for _, w in t], dtype=np.float32)) for t in train]
    by_item = [([], []) for _ in range(items)]
    for u, t in enumerate(train):
        for i, w in t:
            by_item[i][0].append(u)
            by_item[i][1].append(w)
    irows = [(np.array(c, dtype=np.int64), np.array(w, dtype=np.float32)) for c, w in by_item]
    X = init_factors(len(train), k, a.seed, 0)
    Y = init_factors(items, k, a.seed, 1)
    for it in range(1, a.iterations + 1):
        start = time.perf_counter()
        X = solve_side(urows, Y, k, a.regularization, a.alpha)
        Y = solve_side(irows, X, k, a.regularization, a.alpha)
        value = loss(urows, X, Y, a.regularization, a.alpha)
        print("iteration %d/%d: loss %.6e, %.2f s" % (it, a.iterations, value,
                                                      time.perf_counter() - start), flush=True)
    p, r, nd, cov, n = metrics(X, Y, on_sale, train, held)
    print("holdout: %d users" % n)
    print("  %-12s %12.4f %10.4f %8.4f %9.4f" % ("numpy-als", p, r, nd, cov))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("gen")
    g.add_argument("--users", type=int, required=True)
    g.add_argument("--items", type=int, required=True)
    g.add_argument("--interactions", type=int, required=True)
    g.add_argument("--seed", type=int, default=1)
    g.add_argument("dir")
    t = sub.add_parser("als")
    t.add_argument("--catalog", required=True)
    t.add_argument("--interactions", required=True)
    t.add_argument("--factors", type=int, default=64)
    t.add_argument("--iterations", type=int, default=15)
    t.add_argument("--regularization", type=float, default=0.05)
    t.add_argument("--alpha", type=float, default=20)
    t.add_argument("--holdout", type=float, default=0.1)
    t.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    gen(a) if a.cmd == "gen" else als(a)


if __name__ == "__main__":
    sys.exit(main())
