"""The route of a models directory as its documentation states it
(recommender.proto's Route), computed independently of the daemon for the
tests and bench/models.py, and the way files are published into it."""

import hashlib
import os


def bucket(salt, user):
    """The user's bucket, 0..99: the first 8 bytes of SHA-256(salt NUL
    user), big-endian, modulo 100."""
    digest = hashlib.sha256(salt.encode() + b"\0" + user.encode()).digest()
    return int.from_bytes(digest[:8], "big") % 100


def arm_of(route, user):
    """The model route (a routes.json dict) sends user to: the arms, in
    byte order of their names, own consecutive ranges of buckets as wide as
    their weights."""
    split = route.get("split")
    if not split:
        return route["default"]
    b, end = bucket(route.get("salt", ""), user), 0
    names = sorted(split, key=lambda n: n.encode())
    for name in names:
        end += split[name]
        if b < end:
            return name
    return names[-1]


def publish(path, data):
    """Write data (bytes) to a hidden file beside path, fsync it and rename
    it over path: how models and routes are published."""
    staged = os.path.join(os.path.dirname(path), ".%s.new" % os.path.basename(path))
    with open(staged, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.rename(staged, path)
