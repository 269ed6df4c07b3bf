/*
 * bench/spark_export: write a synthetic ALS export directory
 * (model/EXPORT.md) and the same factors as .npy files with id files, so
 * that `recsys-model import --from-spark` and the .npy import can be timed
 * on identical factors (bench/spark_import.py).
 *
 *     spark_export --users N --items M [--factors 64] [--parts 16]
 *                  [--owned 5] [--seed 1] -o DIR
 *
 * Writes DIR/export (the export) and DIR/npy (U.npy, V.npy, users.txt,
 * items.txt, purchases.csv, catalog.csv). The factors are shaped like
 * trained ones: each row is one of 32 topic centres plus noise, scaled by a
 * log-normal norm, so norms are skewed as a trained model's are. Each is
 * written as Spark writes a float of that size, a sign, "0." and nine
 * digits (Java's Float.toString gives eight or nine significant digits for
 * such values); the .npy holds the float32 nearest that decimal, which is
 * what the import must read. Users own --owned items each.
 */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "tools/lib/npy.h"

#define TOPICS 32

struct args {
    uint64_t users, items;
    uint32_t factors, parts, owned;
    uint64_t seed;
    const char *out;
};

static uint64_t rng_state;

/* splitmix64: small, fast, and the same sequence everywhere. */
static uint64_t next_u64(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static double uniform(void)
{
    return (double)(next_u64() >> 11) * 0x1.0p-53;
}

static double gaussian(void)
{
    double u = uniform(), v = uniform();
    return sqrt(-2.0 * log(u > 0 ? u : 1e-300)) * cos(2 * M_PI * v);
}

static void die(const char *what)
{
    fprintf(stderr, "spark_export: %s: %s\n", what, strerror(errno));
    exit(1);
}

/* @a/@b into @dst (@n bytes), or exit: paths here are the bench's own. */
static void join(char *dst, size_t n, const char *a, const char *b)
{
    if ((size_t)snprintf(dst, n, "%s/%s", a, b) >= n) {
        fprintf(stderr, "spark_export: path too long: %s/%s\n", a, b);
        exit(1);
    }
}

static FILE *create(const char *dir, const char *name)
{
    char path[4096];
    join(path, sizeof(path), dir, name);
    FILE *f = fopen(path, "wb");
    if (f == NULL)
        die(path);
    return f;
}

/* Writes a value of magnitude < 1 as sign, "0." and nine digits into @p;
 * returns the bytes written and sets *f to the float that text reads as. */
static int decimal9(double x, char *p, float *f)
{
    if (x >= 0.9999999995)
        x = 0.999999999;
    if (x <= -0.9999999995)
        x = -0.999999999;
    long k = lround(x * 1e9);
    int n = 0;
    if (k < 0) {
        p[n++] = '-';
        k = -k;
    }
    p[n++] = '0';
    p[n++] = '.';
    for (int d = 8; d >= 0; d--) {
        p[n + d] = (char)('0' + k % 10);
        k /= 10;
    }
    n += 9;
    char buf[16];
    memcpy(buf, p, (size_t)n);
    buf[n] = '\0';
    *f = strtof(buf, NULL);
    return n;
}

/* One factor table: the part files, the .npy and the id file. */
static void table(const struct args *a, const char *xdir, const char *npy, const char *name,
                  char prefix, uint64_t rows, const double *centres, FILE *manifest)
{
    char dir[4096], ids_name[64], npy_name[64];
    join(dir, sizeof(dir), xdir, name);
    if (mkdir(dir, 0755) != 0 && errno != EEXIST)
        die(dir);
    snprintf(ids_name, sizeof(ids_name), "%s.txt", name);
    snprintf(npy_name, sizeof(npy_name), "%c.npy", prefix == 'u' ? 'U' : 'V');
    FILE *ids = create(npy, ids_name), *mat = create(npy, npy_name);
    char header[NPY_HEADER_BYTES];
    npy_header(header, rows, a->factors);
    fwrite(header, 1, sizeof(header), mat);
    char *line = malloc(64 + (size_t)a->factors * 16);
    float *row = malloc(a->factors * sizeof(float));
    double *v = malloc(a->factors * sizeof(double));
    fprintf(manifest, "    \"%s\": {\"rows\": %llu, \"parts\": [", name, (unsigned long long)rows);
    uint64_t per = (rows + a->parts - 1) / a->parts;
    for (uint32_t p = 0; p < a->parts; p++) {
        char part[64];
        snprintf(part, sizeof(part), "part-%05u-synthetic-c000.txt", p);
        FILE *out = create(dir, part);
        uint64_t bytes = 0;
        for (uint64_t r = p * per; r < rows && r < (p + 1) * per; r++) {
            const double *c = centres + (r % TOPICS) * a->factors;
            /* log-normal norm: most rows near 0.3, a tail up to ~3x. */
            double norm = 0.3 * exp(0.5 * gaussian()), ss = 0;
            for (uint32_t j = 0; j < a->factors; j++) {
                v[j] = c[j] + 0.5 * gaussian();
                ss += v[j] * v[j];
            }
            int n = snprintf(line, 64, "%c%011llu", prefix, (unsigned long long)r);
            fprintf(ids, "%.*s\n", n, line);
            for (uint32_t j = 0; j < a->factors; j++) {
                line[n++] = '\t';
                n += decimal9(v[j] * norm / sqrt(ss), line + n, &row[j]);
            }
            line[n++] = '\n';
            fwrite(line, 1, (size_t)n, out);
            fwrite(row, sizeof(float), a->factors, mat);
            bytes += (uint64_t)n;
        }
        if (fclose(out) != 0)
            die(part);
        fprintf(manifest, "%s{\"file\": \"%s\", \"bytes\": %llu}", p ? ", " : "", part,
                (unsigned long long)bytes);
    }
    fprintf(manifest, "]}");
    if (fclose(ids) != 0 || fclose(mat) != 0)
        die(name);
    free(line);
    free(row);
    free(v);
}

static void purchases(const struct args *a, const char *exp, const char *npy, FILE *manifest)
{
    char dir[4096];
    join(dir, sizeof(dir), exp, "purchases");
    if (mkdir(dir, 0755) != 0 && errno != EEXIST)
        die(dir);
    FILE *out = create(dir, "part-00000-synthetic-c000.txt"), *csv = create(npy, "purchases.csv");
    fputs("user_id,item_id\n", csv);
    uint64_t bytes = 0, rows = 0;
    for (uint64_t u = 0; u < a->users; u++)
        for (uint32_t k = 0; k < a->owned; k++) {
            /* Items of the user's own topic, as the factors suggest. */
            uint64_t i = (u % TOPICS + TOPICS * (next_u64() % (a->items / TOPICS + 1))) % a->items;
            bytes += (uint64_t)fprintf(out, "u%011llu\ti%011llu\n", (unsigned long long)u,
                                       (unsigned long long)i);
            fprintf(csv, "u%011llu,i%011llu\n", (unsigned long long)u, (unsigned long long)i);
            rows++;
        }
    if (fclose(out) != 0 || fclose(csv) != 0)
        die("purchases");
    fprintf(manifest,
            "    \"purchases\": {\"rows\": %llu, \"parts\": [{\"file\": "
            "\"part-00000-synthetic-c000.txt\", \"bytes\": %llu}]}\n",
            (unsigned long long)rows, (unsigned long long)bytes);
}

static void catalog(const struct args *a, const char *npy)
{
    FILE *f = create(npy, "catalog.csv");
    fputs("item_id,category,price_cents,on_sale,member_tier\n", f);
    for (uint64_t i = 0; i < a->items; i++)
        fprintf(f, "i%011llu,c%llu,%llu,%d,0\n", (unsigned long long)i,
                (unsigned long long)(i % TOPICS), (unsigned long long)(100 + i % 5000),
                (int)(i % 7 == 0));
    if (fclose(f) != 0)
        die("catalog.csv");
}

int main(int argc, char **argv)
{
    struct args a = {.factors = 64, .parts = 16, .owned = 5, .seed = 1};
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *k = argv[i], *v = argv[i + 1];
        if (strcmp(k, "--users") == 0)
            a.users = strtoull(v, NULL, 10);
        else if (strcmp(k, "--items") == 0)
            a.items = strtoull(v, NULL, 10);
        else if (strcmp(k, "--factors") == 0)
            a.factors = (uint32_t)strtoul(v, NULL, 10);
        else if (strcmp(k, "--parts") == 0)
            a.parts = (uint32_t)strtoul(v, NULL, 10);
        else if (strcmp(k, "--owned") == 0)
            a.owned = (uint32_t)strtoul(v, NULL, 10);
        else if (strcmp(k, "--seed") == 0)
            a.seed = strtoull(v, NULL, 10);
        else if (strcmp(k, "-o") == 0)
            a.out = v;
        else {
            fprintf(stderr, "spark_export: unknown flag %s\n", k);
            return 2;
        }
    }
    if (a.out == NULL || a.users == 0 || a.items == 0 || a.factors == 0 || a.parts == 0) {
        fputs("usage: spark_export --users N --items M [--factors 64] [--parts 16] "
              "[--owned 5] [--seed 1] -o DIR\n",
              stderr);
        return 2;
    }
    rng_state = a.seed;
    char exp[4096], npy[4096];
    join(exp, sizeof(exp), a.out, "export");
    join(npy, sizeof(npy), a.out, "npy");
    if ((mkdir(a.out, 0755) != 0 && errno != EEXIST) ||
        (mkdir(exp, 0755) != 0 && errno != EEXIST) || (mkdir(npy, 0755) != 0 && errno != EEXIST))
        die(a.out);
    double *centres = malloc((size_t)TOPICS * a.factors * sizeof(double));
    for (size_t i = 0; i < (size_t)TOPICS * a.factors; i++)
        centres[i] = gaussian();
    /* The manifest is written aside and renamed last, as the job does. */
    char tmp[4096], final[4096];
    join(tmp, sizeof(tmp), exp, ".recsys-export.json.tmp");
    join(final, sizeof(final), exp, "recsys-export.json");
    FILE *m = fopen(tmp, "w");
    if (m == NULL)
        die(tmp);
    fprintf(m,
            "{\n  \"format\": \"recsys-als-export\",\n  \"format_version\": 1,\n"
            "  \"factors\": %u,\n  \"model_version\": \"synthetic-%llux%u\",\n"
            "  \"created_at\": 1796371200,\n  \"data_end_unix_ms\": 1796371200000,\n"
            "  \"training\": {\"trainer\": \"bench/spark_export\", \"regularization\": 0.1,\n"
            "    \"regularization_scaling\": \"per-interaction\", \"alpha\": 20.0,\n"
            "    \"view_weight\": 0.25},\n  \"tables\": {\n",
            a.factors, (unsigned long long)a.users, a.factors);
    table(&a, exp, npy, "users", 'u', a.users, centres, m);
    fputs(",\n", m);
    table(&a, exp, npy, "items", 'i', a.items, centres, m);
    fputs(",\n", m);
    purchases(&a, exp, npy, m);
    fputs("  }\n}\n", m);
    if (fclose(m) != 0 || rename(tmp, final) != 0)
        die(final);
    catalog(&a, npy);
    free(centres);
    return 0;
}
