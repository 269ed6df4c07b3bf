#include "model/checksum.h"

#include <string.h>

#include "model/format.h"

/* Odd 64-bit constants with well-mixed bits: multiplying by one spreads
 * every input bit over the upper half of the product, and the rotate
 * brings those bits back down. */
#define K1 0x9E3779B97F4A7C15ull
#define K2 0xC2B2AE3D27D4EB4Full
#define K3 0x165667B19E3779F9ull
#define K4 0x27D4EB2F165667C5ull

static inline uint64_t rotl(uint64_t x, int r)
{
    return (x << r) | (x >> (64 - r));
}

static inline uint64_t load64(const uint8_t *p)
{
    uint64_t w;
    memcpy(&w, p, sizeof(w)); /* little-endian host: format.h asserts it */
    return w;
}

static inline uint64_t round64(uint64_t acc, uint64_t w)
{
    return rotl(acc + w * K2, 31) * K1;
}

static inline void stripe(uint64_t lane[4], const uint8_t *p)
{
    lane[0] = round64(lane[0], load64(p));
    lane[1] = round64(lane[1], load64(p + 8));
    lane[2] = round64(lane[2], load64(p + 16));
    lane[3] = round64(lane[3], load64(p + 24));
}

static inline uint64_t mix_word(uint64_t h, uint64_t w)
{
    return rotl(h ^ round64(0, w), 27) * K1 + K4;
}

void checksum_init(struct checksum *c)
{
    memset(c, 0, sizeof(*c));
    c->lane[0] = K1;
    c->lane[1] = K2;
    c->lane[2] = K3;
    c->lane[3] = K4;
}

void checksum_update(struct checksum *c, const void *data, size_t len)
{
    const uint8_t *p = data;
    c->total += len;
    if (c->buffered > 0) {
        size_t take = sizeof(c->buf) - c->buffered;
        if (take > len)
            take = len;
        memcpy(c->buf + c->buffered, p, take);
        c->buffered += (uint32_t)take;
        p += take;
        len -= take;
        if (c->buffered < sizeof(c->buf))
            return;
        stripe(c->lane, c->buf);
        c->buffered = 0;
    }
    for (; len >= 32; p += 32, len -= 32)
        stripe(c->lane, p);
    memcpy(c->buf, p, len);
    c->buffered = (uint32_t)len;
}

uint64_t checksum_final(const struct checksum *c)
{
    const uint64_t *v = c->lane;
    uint64_t h = rotl(v[0], 1) + rotl(v[1], 7) + rotl(v[2], 12) + rotl(v[3], 18);
    for (int i = 0; i < 4; i++)
        h = (h ^ round64(0, v[i])) * K1 + K4;
    h += c->total;

    const uint8_t *p = c->buf;
    uint32_t left = c->buffered;
    for (; left >= 8; p += 8, left -= 8)
        h = mix_word(h, load64(p));
    if (left > 0) {
        uint8_t last[8] = {0};
        memcpy(last, p, left);
        h = mix_word(h, load64(last));
    }

    h ^= h >> 33;
    h *= K2;
    h ^= h >> 29;
    h *= K3;
    h ^= h >> 32;
    return h;
}

static void update_len(struct checksum *c, uint64_t len)
{
    checksum_update(c, &len, sizeof(len));
}

static int is_checksum_key(const MDB_val *k)
{
    return k->mv_size == strlen(FORMAT_KEY_CHECKSUM) &&
           memcmp(k->mv_data, FORMAT_KEY_CHECKSUM, k->mv_size) == 0;
}

/* Hashes one database: its name, the number of pairs hashed, the pairs. */
static int hash_db(struct checksum *c, MDB_txn *txn, MDB_dbi dbi, const char *name, int is_meta)
{
    MDB_stat st;
    int rc = mdb_stat(txn, dbi, &st);
    if (rc != 0)
        return rc;
    MDB_cursor *cur;
    rc = mdb_cursor_open(txn, dbi, &cur);
    if (rc != 0)
        return rc;

    /* meta/checksum is not hashed: it holds the result. Count it out first
     * so the pair count prefix is known before the pairs. */
    uint64_t pairs = st.ms_entries;
    MDB_val k = {strlen(FORMAT_KEY_CHECKSUM), FORMAT_KEY_CHECKSUM}, v;
    if (is_meta && mdb_cursor_get(cur, &k, &v, MDB_SET) == 0)
        pairs--;

    update_len(c, strlen(name));
    checksum_update(c, name, strlen(name));
    update_len(c, pairs);
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (is_meta && is_checksum_key(&k))
            continue;
        update_len(c, k.mv_size);
        checksum_update(c, k.mv_data, k.mv_size);
        update_len(c, v.mv_size);
        checksum_update(c, v.mv_data, v.mv_size);
    }
    mdb_cursor_close(cur);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

int checksum_content(MDB_txn *txn, const MDB_dbi dbi[3], uint64_t *out)
{
    static const char *const names[3] = {FORMAT_DB_META, FORMAT_DB_ITEMS, FORMAT_DB_USERS};
    struct checksum c;
    checksum_init(&c);
    for (int i = 0; i < 3; i++) {
        int rc = hash_db(&c, txn, dbi[i], names[i], i == 0);
        if (rc != 0)
            return rc;
    }
    *out = checksum_final(&c);
    return 0;
}
