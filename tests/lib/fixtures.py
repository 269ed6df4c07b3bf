"""Shared test fixtures: model inputs, the real import, and reference answers.

make_model() writes a small random dataset the way a trainer and a backend
would export it (.npy factor matrices via numpy.save, id files, catalog,
users and purchases CSVs), runs the real `recsys-model import` on it
($RECSYS_MODEL_TOOL) and returns a Dataset describing what went in.

The ref_* functions answer the four queries from that Dataset with plain
numpy and Python, following the rules of issue 2, never the C code:

  - Recommend: known user -> score = dot(user, item) (with a bias model the
    user vector gets a trailing 1.0), source PERSONALIZED; unknown user ->
    the popularity ranking (purchase count descending), score = purchase
    count, source POPULAR. Never returned: items the user owns (in the model
    or passed as owned), items not on sale, excluded ids, items outside the
    requested categories, and with purchasable_only anything whose
    eligibility is not PURCHASABLE. Ties go to the lower item index.
  - CheckEligibility: the first rule that applies, in order: UNKNOWN_ITEM,
    ALREADY_OWNED, INCLUDED_IN_MEMBERSHIP (item tier > 0 and user tier >=
    it), NOT_FOR_SALE, PURCHASABLE. An unknown user owns nothing, tier 0.
  - SimilarItems: cosine of the item vectors (0 against an all-zero vector),
    without the item itself, items not on sale, excluded ids, items outside
    the categories and, when user_id names a known user, what they own.

Why the factors are on a grid: every factor is k/64 with |k| <= 64, so every
product is a multiple of 2^-12 and every dot product is exact in float32
whatever the summation order. A SIMD kernel and numpy then agree bit for bit
on Recommend scores: equal scores are exactly equal (the fixtures plant
duplicate item vectors to make such ties) and different scores differ by at
least 2^-12, so the order of the reference is the only right order. Cosines
involve a square root and are compared with a tolerance.

The ids include characters a careless parser would trip on: UTF-8, '/',
quotes and commas (which the CSVs must quote), but never blanks, so tests may
split tool output on whitespace.
"""

import csv
import io
import os
import struct
import subprocess
from dataclasses import dataclass, field

import lmdb
import numpy as np

TOOL = os.environ.get("RECSYS_MODEL_TOOL", "recsys-model")

GRID = 64  # factors are multiples of 1/GRID in [-1, 1]
CREATED_AT_BASE = 1_700_000_000
CATALOG_HEADER = ["item_id", "category", "price_cents", "on_sale", "member_tier"]
# Spellings of on_sale the catalog rotates through: the importer accepts all.
ON_SALE_TEXT = {True: ("1", "true", "TRUE"), False: ("0", "false", "False")}


# ---- running the tool --------------------------------------------------------

def run_tool(*args, timeout=120):
    """Run recsys-model with args; returns the CompletedProcess (text, both
    streams captured, never raises on a non-zero exit)."""
    return subprocess.run([TOOL] + [str(a) for a in args], capture_output=True, text=True,
                          timeout=timeout)


def parse_fields(text):
    """`key: value` lines of inspect/verify output (indented lines skipped)."""
    out = {}
    for line in text.splitlines():
        if line and not line[0].isspace() and ":" in line:
            k, v = line.split(":", 1)
            out[k] = v.strip()
    return out


# ---- writing inputs ----------------------------------------------------------

def write_npy(path, array):
    """numpy.save to exactly `path` (numpy.save would append .npy to a name)."""
    with open(path, "wb") as f:
        np.save(f, array)
    return path


def write_raw_npy(path, header, data=b"", version=(1, 0), pad=True):
    """A hand-made .npy: magic, version, the header text `header` (padded
    with blanks and a newline so the data starts 64-byte aligned, as numpy
    does, unless pad=False) and `data`. For files numpy.save cannot make."""
    major, minor = version
    hdr = header.encode("latin1")
    lenfmt = "<H" if major == 1 else "<I"
    prefix = 6 + 2 + struct.calcsize(lenfmt)
    if pad:
        hdr += b" " * (-(prefix + len(hdr) + 1) % 64) + b"\n"
    with open(path, "wb") as f:
        f.write(b"\x93NUMPY" + bytes([major, minor]) + struct.pack(lenfmt, len(hdr)) + hdr + data)
    return path


# Files are written as UTF-8; a lone surrogate such as "\udce9" writes the
# raw byte 0xE9, for tests of files that are not UTF-8.
def write_ids(path, ids, newline="\n"):
    with open(path, "w", encoding="utf-8", errors="surrogateescape", newline="") as f:
        f.write("".join(i + newline for i in ids))
    return path


def write_csv(path, header, rows):
    """RFC 4180 CSV with LF line ends; fields quoted only where needed."""
    with open(path, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(header)
        w.writerows(rows)
    return path


def write_text(path, text):
    with open(path, "w", encoding="utf-8", errors="surrogateescape", newline="") as f:
        f.write(text)
    return path


# ---- the dataset -------------------------------------------------------------

@dataclass
class Dataset:
    path: str
    version: str
    created_at: int
    user_ids: list
    item_ids: list
    U: np.ndarray  # users x dim float32, as written
    V: np.ndarray  # items x dim(+1 with bias) float32, as written
    bias: bool
    categories: list  # category names in model order (first appearance in the catalog)
    category: list  # per item: its category name
    price: list  # per item: cents
    on_sale: list  # per item: bool
    item_tier: list  # per item: membership tier that includes it
    user_tier: dict  # user id -> tier (0 when users.csv does not list the user)
    owned: dict  # user id -> set of item ids
    files: dict  # input name -> path: user_factors, user_ids, item_factors, ...
    purchase_rows: list = field(default_factory=list)  # (user, item) as written, repeats kept

    def __post_init__(self):
        self.item_index = {iid: i for i, iid in enumerate(self.item_ids)}
        self.user_index = {uid: u for u, uid in enumerate(self.user_ids)}
        self.popularity = [0] * len(self.item_ids)  # distinct owners per item
        for items in self.owned.values():
            for iid in items:
                self.popularity[self.item_index[iid]] += 1
        ones = np.ones((len(self.user_ids), 1), dtype=np.float32)
        self.U_model = np.hstack([self.U, ones]) if self.bias else self.U

    @property
    def dim(self):
        """Dimension as stored in the model (bias column included)."""
        return self.V.shape[1]

    def item_category(self, item_id):
        return self.category[self.item_index[item_id]]

    def user_vector(self, user_id):
        """The user's vector as the model stores it (1.0 appended with a bias)."""
        return self.U_model[self.user_index[user_id]]

    def popular_order(self):
        """All item indices by purchase count descending, ties to the lower index."""
        return sorted(range(len(self.item_ids)), key=lambda i: (-self.popularity[i], i))


def _grid(rng, shape):
    return (rng.integers(-GRID, GRID + 1, size=shape) / GRID).astype(np.float32)


def _item_ids(rng, categories, n):
    """Category per item (every category used at least once) and its id."""
    cats = [categories[i % len(categories)] if i < len(categories)
            else categories[rng.integers(len(categories))] for i in range(n)]
    ids = []
    for i, c in enumerate(cats):
        if i == 1:
            ids.append("%s/\u00e9-%d" % (c, i))  # UTF-8 and a slash
        elif i == 2:
            ids.append('%s-"q",%d' % (c, i))  # a quote and a comma: quoted in CSVs
        else:
            ids.append("%s-%05d" % (c, i))
    return cats, ids


def _user_ids(n):
    return ["u-\u00e9,%d" % u if u == 2 else "u%05d" % u for u in range(n)]


def _factors(rng, users, items, dim, bias):
    U = _grid(rng, (users, dim))
    V = _grid(rng, (items, dim + 1 if bias else dim))
    # Ties: about one item in twenty repeats an earlier item's vector.
    for i in range(3, items):
        if rng.random() < 0.05:
            V[i] = V[rng.integers(i)]
    if items > 4:
        V[items // 2] = 0.0  # an all-zero vector: cosine 0, not NaN
    return U, V


def make_model(tmpdir, users=200, items=300, dim=16, seed=1,
               categories=("course", "ebook", "audiobook"), bias=False, version="test-v1",
               owned_per_user=(0, 8), off_sale_share=0.1, tiers=True, name="model.lmdb"):
    """Write a random dataset's inputs into tmpdir, import it into
    tmpdir/name with the real tool, and return its Dataset. Raises
    AssertionError (with the tool's stderr) if the import fails."""
    rng = np.random.default_rng(seed)
    cats, item_ids = _item_ids(rng, list(categories), items)
    user_ids = _user_ids(users)
    U, V = _factors(rng, users, items, dim, bias)
    price = [int(p) for p in rng.integers(0, 50_000, size=items)]
    price[0] = 0  # free items exist
    on_sale = [bool(x) for x in rng.random(items) >= off_sale_share]
    item_tier = ([int(t) for t in rng.choice(3, size=items, p=[0.7, 0.2, 0.1])] if tiers
                 else [0] * items)
    user_tier = {u: 0 for u in user_ids}
    listed = []
    if tiers:
        for u in user_ids:
            if rng.random() < 0.8:
                user_tier[u] = int(rng.choice(3, p=[0.6, 0.3, 0.1]))
                listed.append(u)

    owned = {u: set() for u in user_ids}
    purchases = []
    lo, hi = owned_per_user
    for u in user_ids:
        k = int(rng.integers(lo, hi + 1))
        for i in rng.choice(items, size=min(k, items), replace=False):
            owned[u].add(item_ids[i])
            purchases.append((u, item_ids[i]))
    if purchases:
        purchases.append(purchases[len(purchases) // 2])  # a repeated row counts once
    rng.shuffle(purchases)

    order = rng.permutation(items)  # catalog rows in another order than the ids
    seen = []
    catalog = []
    for i in order:
        if cats[i] not in seen:
            seen.append(cats[i])
        spellings = ON_SALE_TEXT[on_sale[i]]
        catalog.append([item_ids[i], cats[i], price[i], spellings[i % len(spellings)],
                        item_tier[i]])

    d = str(tmpdir)
    files = {
        "user_factors": write_npy(os.path.join(d, "U.npy"), U),
        "user_ids": write_ids(os.path.join(d, "users.txt"), user_ids),
        "item_factors": write_npy(os.path.join(d, "V.npy"), V),
        "item_ids": write_ids(os.path.join(d, "items.txt"), item_ids),
        "catalog": write_csv(os.path.join(d, "catalog.csv"), CATALOG_HEADER, catalog),
        "purchases": write_csv(os.path.join(d, "purchases.csv"), ["user_id", "item_id"],
                               purchases),
    }
    if tiers:
        files["users"] = write_csv(os.path.join(d, "users.csv"), ["user_id", "tier"],
                                   [(u, user_tier[u]) for u in listed])
    path = os.path.join(d, name)
    created_at = CREATED_AT_BASE + seed
    p = run_tool("import", *import_args(files), "--model-version", version, "--created-at", created_at,
                 "-o", path)
    if p.returncode != 0:
        raise AssertionError("recsys-model import failed (%d): %s" % (p.returncode, p.stderr))
    return Dataset(path=path, version=version, created_at=created_at, user_ids=user_ids,
                   item_ids=item_ids, U=U, V=V, bias=bias, categories=seen, category=cats,
                   price=price, on_sale=on_sale, item_tier=item_tier, user_tier=user_tier,
                   owned=owned, files=files, purchase_rows=purchases)


def import_args(files):
    """The import flags for a `files` dict as in Dataset.files."""
    args = []
    for key in ("user_factors", "user_ids", "item_factors", "item_ids", "catalog", "users",
                "purchases"):
        if key in files:
            args += ["--" + key.replace("_", "-"), files[key]]
    return args


# ---- reference answers -------------------------------------------------------

def _reason(ds, user_id, i, owned_ids):
    """Eligibility reason of known item index i for the user."""
    user_tier = ds.user_tier.get(user_id, 0)
    if ds.item_ids[i] in owned_ids:
        return "ALREADY_OWNED"
    if ds.item_tier[i] > 0 and user_tier >= ds.item_tier[i]:
        return "INCLUDED_IN_MEMBERSHIP"
    if not ds.on_sale[i]:
        return "NOT_FOR_SALE"
    return "PURCHASABLE"


def _owned_ids(ds, user_id, owned):
    return set(ds.owned.get(user_id, ())) | set(owned)


def _top(ds, scores, keep, count):
    """The `count` best kept indices by score descending, ties to the lower index."""
    order = sorted((i for i in range(len(ds.item_ids)) if keep(i)), key=lambda i: (-scores[i], i))
    return [(ds.item_ids[i], float(scores[i])) for i in order[:count]]


def _recommend_filter(ds, user_id, exclude, categories, purchasable_only, owned):
    owned_ids = _owned_ids(ds, user_id, owned)
    exclude, categories = set(exclude), set(categories)

    def keep(i):
        iid = ds.item_ids[i]
        if not ds.on_sale[i] or iid in owned_ids or iid in exclude:
            return False
        if categories and ds.category[i] not in categories:
            return False
        return not purchasable_only or _reason(ds, user_id, i, owned_ids) == "PURCHASABLE"
    return keep


def ref_popular(ds, count=10, exclude=(), categories=(), purchasable_only=False, owned=(),
                user_id=""):
    """The popularity ranking with Recommend's filters: [(item_id, count)]."""
    keep = _recommend_filter(ds, user_id, exclude, categories, purchasable_only, owned)
    return _top(ds, ds.popularity, keep, count or 10)


def ref_recommend(ds, user_id, count=10, exclude=(), categories=(), purchasable_only=False,
                  owned=()):
    """(source, [(item_id, score)]) as Recommend must answer."""
    if user_id not in ds.user_index:
        return "POPULAR", ref_popular(ds, count, exclude, categories, purchasable_only, owned,
                                      user_id)
    scores = ds.V @ ds.user_vector(user_id)  # float32, exact on the grid
    keep = _recommend_filter(ds, user_id, exclude, categories, purchasable_only, owned)
    return "PERSONALIZED", _top(ds, scores, keep, count or 10)


def ref_eligibility(ds, user_id, item_ids, owned=()):
    """[(item_id, eligible, reason_name, price_cents)] in request order."""
    owned_ids = _owned_ids(ds, user_id, owned)
    out = []
    for iid in item_ids:
        i = ds.item_index.get(iid)
        if i is None:
            out.append((iid, False, "UNKNOWN_ITEM", 0))
            continue
        reason = _reason(ds, user_id, i, owned_ids)
        out.append((iid, reason == "PURCHASABLE", reason, ds.price[i]))
    return out


def inv_norms(V):
    """1/||v|| per row as float32, 0 for an all-zero row."""
    n = np.sqrt((V.astype(np.float64) ** 2).sum(axis=1))
    return np.where(n > 0, 1.0 / np.where(n > 0, n, 1.0), 0.0).astype(np.float32)


def ref_similar(ds, item_id, count=10, exclude=(), categories=(), user_id=""):
    """(source, [(item_id, cosine)]) as SimilarItems must answer; source is
    PERSONALIZED when user_id names a known user, else SOURCE_UNSPECIFIED.
    Raises KeyError for an unknown item (the RPC answers NOT_FOUND)."""
    q = ds.item_index[item_id]
    inv = inv_norms(ds.V)
    scores = (ds.V @ ds.V[q]) * inv * inv[q]
    known = user_id in ds.user_index
    owned_ids = ds.owned[user_id] if known else set()
    exclude, categories = set(exclude), set(categories)

    def keep(i):
        iid = ds.item_ids[i]
        if i == q or not ds.on_sale[i] or iid in exclude or iid in owned_ids:
            return False
        return not categories or ds.category[i] in categories
    return ("PERSONALIZED" if known else "SOURCE_UNSPECIFIED"), _top(ds, scores, keep, count or 10)


# ---- reading a model file independently (model/FORMAT.md) --------------------

HEADER = struct.Struct("<8s6I3Qq8I")
HEADER_FIELDS = ("magic", "format_version", "dim", "stride", "elem_type", "has_bias",
                 "category_count", "user_count", "item_count", "purchase_count", "created_at")
BLOBS = ("item_matrix", "user_matrix", "item_attrs", "item_ids", "categories", "popularity",
         "item_bf16", "item_int8")
OPTIONAL_BLOBS = ("item_bf16", "item_int8")
ATTR = np.dtype([("price_cents", "<i8"), ("category", "<u4"), ("on_sale", "u1"),
                 ("tier", "u1"), ("pad", "u1", 2)])
POP = np.dtype([("item", "<u4"), ("count", "<u4")])
BLOB_SLACK = 64


def open_env(path, write=False):
    return lmdb.open(path, subdir=False, readonly=not write, lock=False, max_dbs=8)


def parse_header(raw):
    values = HEADER.unpack(raw)
    h = dict(zip(HEADER_FIELDS, values[:len(HEADER_FIELDS)]))
    h["blob_pad"] = list(values[len(HEADER_FIELDS):])
    return h


def blob_payload(raw, pad):
    """The payload of a blob value: pad zeros | payload | (64 - pad) zeros."""
    return raw[pad:len(raw) - (BLOB_SLACK - pad)]


def _strtab(payload, n):
    off = [int(x) for x in np.frombuffer(payload, dtype="<u8", count=n + 1)]
    base = 8 * (n + 1)
    return [payload[base + off[i]:base + off[i + 1]].decode("utf-8") for i in range(n)]


def read_model(path, content=False):
    """Everything in a model file, decoded with python3-lmdb and numpy from
    the spec alone: a dict with the header fields, meta_keys, version,
    checksum, the matrices (item_matrix/user_matrix cut to dim, *_full with
    the row padding), attrs, item_ids, categories, popularity, items
    (id -> index), users (id -> (row, tier, [owned item indices], value
    bytes)) and, with content=True, the bytes the checksum covers."""
    env = open_env(path)
    try:
        with env.begin() as txn:
            meta = env.open_db(b"meta", txn=txn, create=False)
            items_db = env.open_db(b"items", txn=txn, create=False)
            users_db = env.open_db(b"users", txn=txn, create=False)
            m = {k.decode(): bytes(v) for k, v in txn.cursor(db=meta)}
            h = parse_header(m["header"])
            blobs = {b: blob_payload(m[b], h["blob_pad"][k]) for k, b in enumerate(BLOBS)
                     if b in m}
            n_items, n_users, stride, dim = h["item_count"], h["user_count"], h["stride"], h["dim"]
            out = dict(h)
            out["meta_keys"] = sorted(m)
            out["version"] = m["version"].decode("utf-8")
            out["checksum"] = struct.unpack("<Q", m["checksum"])[0]
            out["item_matrix_full"] = np.frombuffer(blobs["item_matrix"], "<f4").reshape(
                n_items, stride)
            out["user_matrix_full"] = np.frombuffer(blobs["user_matrix"], "<f4").reshape(
                n_users, stride)
            out["item_matrix"] = out["item_matrix_full"][:, :dim]
            out["user_matrix"] = out["user_matrix_full"][:, :dim]
            out["attrs"] = np.frombuffer(blobs["item_attrs"], ATTR)
            out["item_ids"] = _strtab(blobs["item_ids"], n_items)
            out["categories"] = _strtab(blobs["categories"], h["category_count"])
            out["popularity"] = np.frombuffer(blobs["popularity"], POP)
            # The reduced copies, when present: bf16 bit patterns; int8 rows
            # followed by one float32 scale per row.
            if "item_bf16" in blobs:
                out["item_bf16"] = np.frombuffer(blobs["item_bf16"], "<u2").reshape(
                    n_items, stride)
            if "item_int8" in blobs:
                raw = blobs["item_int8"]
                out["item_int8"] = np.frombuffer(raw, "i1", count=n_items * stride).reshape(
                    n_items, stride)
                out["item_int8_scale"] = np.frombuffer(raw, "<f4", offset=n_items * stride)
            out["items"] = {k.decode("utf-8"): struct.unpack("<I", v)[0]
                            for k, v in txn.cursor(db=items_db)}
            users = {}
            for k, v in txn.cursor(db=users_db):
                row, tier, n = struct.unpack_from("<3I", v)
                owned = list(struct.unpack_from("<%dI" % n, v, 12))
                users[k.decode("utf-8")] = (row, tier, owned, len(v))
            out["users"] = users
            if content:
                out["content"] = content_bytes(txn, {"meta": meta, "items": items_db,
                                                     "users": users_db})
    finally:
        env.close()
    return out


# ---- the checksum (model/FORMAT.md, "Checksum"), written from the spec --------

MASK = (1 << 64) - 1
K1, K2, K3, K4 = 0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9, 0x27D4EB2F165667C5


def content_bytes(txn, dbs):
    """The byte string M the checksum covers."""
    u64 = lambda x: struct.pack("<Q", x)  # noqa: E731
    out = io.BytesIO()
    for name in ("meta", "items", "users"):
        pairs = [(bytes(k), bytes(v)) for k, v in txn.cursor(db=dbs[name])
                 if not (name == "meta" and bytes(k) == b"checksum")]
        out.write(u64(len(name)) + name.encode() + u64(len(pairs)))
        for k, v in pairs:
            out.write(u64(len(k)) + k + u64(len(v)) + v)
    return out.getvalue()


def _rotl(x, r):
    return ((x << r) | (x >> (64 - r))) & MASK


def _round(acc, x):
    return (_rotl((acc + x * K2) & MASK, 31) * K1) & MASK


def _mix(h, x):
    return (_rotl(h ^ _round(0, x), 27) * K1 + K4) & MASK


def rch64(data):
    n = len(data)
    v = [K1, K2, K3, K4]
    stripes = n // 32
    words = np.frombuffer(data[:stripes * 32], dtype="<u8").reshape(-1, 4) if stripes else []
    for s in words:
        for lane in range(4):
            v[lane] = _round(v[lane], int(s[lane]))
    h = (_rotl(v[0], 1) + _rotl(v[1], 7) + _rotl(v[2], 12) + _rotl(v[3], 18)) & MASK
    for lane in v:
        h = ((h ^ _round(0, lane)) * K1 + K4) & MASK
    h = (h + n) & MASK
    tail = data[stripes * 32:]
    for k in range(0, len(tail) - len(tail) % 8, 8):
        h = _mix(h, struct.unpack_from("<Q", tail, k)[0])
    if len(tail) % 8:
        h = _mix(h, int.from_bytes(tail[len(tail) - len(tail) % 8:], "little"))
    h ^= h >> 33
    h = (h * K2) & MASK
    h ^= h >> 29
    h = (h * K3) & MASK
    h ^= h >> 32
    return h
