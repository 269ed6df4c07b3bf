#include "server/reflect.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"

/* Written by protoc and proto/embed.cmake at build time. */
extern const unsigned char recsys_descriptor_set[];
extern const size_t recsys_descriptor_set_len;

/* ---- the protobuf wire format, as far as descriptors need it ------------- */

struct span {
    const uint8_t *p;
    size_t len;
};

enum { WIRE_VARINT = 0, WIRE_I64 = 1, WIRE_LEN = 2, WIRE_I32 = 5 };

static int varint(struct span *s, uint64_t *out)
{
    uint64_t v = 0;
    for (unsigned shift = 0; shift < 64 && s->len > 0; shift += 7) {
        uint8_t b = *s->p++;
        s->len--;
        v |= (uint64_t)(b & 0x7f) << shift;
        if ((b & 0x80) == 0) {
            *out = v;
            return 0;
        }
    }
    return ERR_INTERNAL;
}

/* next_field - take the next field off @msg: its number in *number and, if
 * it is length-delimited, its bytes in *value (else value->p is NULL).
 * Returns 1, 0 at the end of @msg, or ERR_INTERNAL if it is malformed. */
static int next_field(struct span *msg, uint32_t *number, struct span *value)
{
    if (msg->len == 0)
        return 0;
    uint64_t key, v;
    if (varint(msg, &key) != 0 || key >> 3 == 0 || key >> 3 > UINT32_MAX)
        return ERR_INTERNAL;
    *number = (uint32_t)(key >> 3);
    *value = (struct span){NULL, 0};
    unsigned type = key & 7;
    size_t skip;
    if (type == WIRE_VARINT)
        return varint(msg, &v) == 0 ? 1 : ERR_INTERNAL;
    if (type == WIRE_LEN) {
        if (varint(msg, &v) != 0 || v > msg->len)
            return ERR_INTERNAL;
        *value = (struct span){msg->p, (size_t)v};
        skip = (size_t)v;
    } else if (type == WIRE_I64 || type == WIRE_I32) {
        skip = type == WIRE_I64 ? 8 : 4;
        if (skip > msg->len)
            return ERR_INTERNAL;
    } else {
        return ERR_INTERNAL; /* groups, which descriptors do not use */
    }
    msg->p += skip;
    msg->len -= skip;
    return 1;
}

/* string_field - the last length-delimited field @number of @msg, or an
 * empty span. */
static int string_field(struct span msg, uint32_t number, struct span *out)
{
    uint32_t n;
    struct span v;
    int rc;
    *out = (struct span){(const uint8_t *)"", 0};
    while ((rc = next_field(&msg, &n, &v)) == 1)
        if (n == number && v.p != NULL)
            *out = v;
    return rc;
}

/* Field numbers of descriptor.proto's messages that name things. */
enum {
    FILE_NAME = 1,
    FILE_PACKAGE = 2,
    FILE_DEPENDENCY = 3,
    FILE_MESSAGE = 4,
    FILE_ENUM = 5,
    FILE_SERVICE = 6,
    MESSAGE_NAME = 1,
    MESSAGE_NESTED = 3,
    MESSAGE_ENUM = 4,
    ENUM_NAME = 1,
    SERVICE_NAME = 1,
    SERVICE_METHOD = 2,
    METHOD_NAME = 1,
    SET_FILE = 1,
};

/* ---- the index ----------------------------------------------------------- */

enum symbol_kind { SYMBOL_MESSAGE, SYMBOL_ENUM, SYMBOL_SERVICE, SYMBOL_METHOD };

struct file {
    char *name;
    struct span bytes; /* one FileDescriptorProto, in recsys_descriptor_set */
    size_t *deps;      /* indexes of the files it imports */
    size_t n_deps;
};

struct symbol {
    char *name; /* fully qualified, without a leading dot */
    size_t file;
    enum symbol_kind kind;
};

static struct {
    struct file *files;
    size_t n_files;
    struct symbol *symbols;
    size_t n_symbols;
    int status; /* of the one build: 0, -ENOMEM or ERR_INTERNAL */
} idx;

static pthread_once_t idx_once = PTHREAD_ONCE_INIT;

/* grow - make room for one more element in *@array of *@n. */
static int grow(void **array, size_t n, size_t size)
{
    void *bigger = realloc(*array, (n + 1) * size);
    if (bigger == NULL)
        return -ENOMEM;
    *array = bigger;
    return 0;
}

static char *join(const char *prefix, struct span name)
{
    size_t pl = strlen(prefix);
    char *s = malloc(pl + 1 + name.len + 1);
    if (s == NULL)
        return NULL;
    sprintf(s, "%s%s%.*s", prefix, pl > 0 ? "." : "", (int)name.len, (const char *)name.p);
    return s;
}

/* add_symbol - index @prefix.@name, defined in file @file; *full receives
 * the name (owned by the index). */
static int add_symbol(const char *prefix, struct span name, size_t file, enum symbol_kind kind,
                      const char **full)
{
    if (name.len == 0)
        return ERR_INTERNAL;
    char *s = join(prefix, name);
    if (s == NULL || grow((void **)&idx.symbols, idx.n_symbols, sizeof(*idx.symbols)) != 0) {
        free(s);
        return -ENOMEM;
    }
    idx.symbols[idx.n_symbols++] = (struct symbol){s, file, kind};
    if (full != NULL)
        *full = s;
    return 0;
}

static int add_enum(const char *prefix, struct span e, size_t file)
{
    struct span name;
    int rc = string_field(e, ENUM_NAME, &name);
    return rc != 0 ? rc : add_symbol(prefix, name, file, SYMBOL_ENUM, NULL);
}

static int add_message(const char *prefix, struct span m, size_t file)
{
    struct span name, v;
    const char *full;
    uint32_t n;
    int rc = string_field(m, MESSAGE_NAME, &name);
    if (rc == 0)
        rc = add_symbol(prefix, name, file, SYMBOL_MESSAGE, &full);
    while (rc == 0 && (rc = next_field(&m, &n, &v)) == 1)
        rc = n == MESSAGE_NESTED ? add_message(full, v, file)
             : n == MESSAGE_ENUM ? add_enum(full, v, file)
                                 : 0;
    return rc;
}

static int add_service(const char *prefix, struct span svc, size_t file)
{
    struct span name, v, method;
    const char *full;
    uint32_t n;
    int rc = string_field(svc, SERVICE_NAME, &name);
    if (rc == 0)
        rc = add_symbol(prefix, name, file, SYMBOL_SERVICE, &full);
    while (rc == 0 && (rc = next_field(&svc, &n, &v)) == 1) {
        rc = n == SERVICE_METHOD ? string_field(v, METHOD_NAME, &method) : 0;
        if (rc == 0 && n == SERVICE_METHOD)
            rc = add_symbol(full, method, file, SYMBOL_METHOD, NULL);
    }
    return rc;
}

static ssize_t find_file(struct span name)
{
    for (size_t i = 0; i < idx.n_files; i++)
        if (strlen(idx.files[i].name) == name.len &&
            memcmp(idx.files[i].name, name.p, name.len) == 0)
            return (ssize_t)i;
    return -1;
}

/* index_file - the symbols and imports of file @f. Imports precede their
 * importers in a descriptor set protoc writes with --include_imports. */
static int index_file(size_t f)
{
    struct span body = idx.files[f].bytes, v, package;
    uint32_t n;
    int rc = string_field(body, FILE_PACKAGE, &package);
    char *pkg = rc == 0 ? join("", package) : NULL;
    if (rc == 0 && pkg == NULL)
        rc = -ENOMEM;
    while (rc == 0 && (rc = next_field(&body, &n, &v)) == 1) {
        struct file *file = &idx.files[f];
        if (n == FILE_DEPENDENCY) {
            ssize_t dep = find_file(v);
            rc = dep < 0 ? ERR_INTERNAL : grow((void **)&file->deps, file->n_deps, sizeof(size_t));
            if (rc == 0)
                file->deps[file->n_deps++] = (size_t)dep;
        } else {
            rc = n == FILE_MESSAGE   ? add_message(pkg, v, f)
                 : n == FILE_ENUM    ? add_enum(pkg, v, f)
                 : n == FILE_SERVICE ? add_service(pkg, v, f)
                                     : 0;
        }
    }
    free(pkg);
    return rc;
}

static int build_index(void)
{
    struct span set = {recsys_descriptor_set, recsys_descriptor_set_len}, v, name;
    uint32_t n;
    int rc;
    while ((rc = next_field(&set, &n, &v)) == 1) {
        if (n != SET_FILE || v.p == NULL)
            continue;
        rc = string_field(v, FILE_NAME, &name);
        if (rc != 0 || name.len == 0)
            return rc != 0 ? rc : ERR_INTERNAL;
        if (grow((void **)&idx.files, idx.n_files, sizeof(*idx.files)) != 0)
            return -ENOMEM;
        struct file *f = &idx.files[idx.n_files];
        *f = (struct file){.name = join("", name), .bytes = v};
        if (f->name == NULL)
            return -ENOMEM;
        rc = index_file(idx.n_files++);
        if (rc != 0)
            return rc;
    }
    return rc;
}

static void build_once(void)
{
    idx.status = build_index();
    if (idx.status != 0)
        log_error("failed to index the reflection descriptors (%s)", err_strerror(idx.status));
}

/* ---- answers ------------------------------------------------------------- */

typedef Grpc__Reflection__V1__ServerReflectionResponse Response;

static const struct symbol *find_symbol(const char *name)
{
    if (name[0] == '.')
        name++;
    for (size_t i = 0; i < idx.n_symbols; i++)
        if (strcmp(idx.symbols[i].name, name) == 0)
            return &idx.symbols[i];
    return NULL;
}

/* error_response - answer with an error: our code @code, the status it
 * maps to, and "@what '@name'" as the message. The stream goes on. */
static int error_response(const struct query *q, Response *r, int code, const char *what,
                          const char *name)
{
    Grpc__Reflection__V1__ErrorResponse *er = arena_alloc(q->arena, sizeof(*er));
    size_t size = strlen(what) + 4 + strnlen(name, MODEL_ID_MAX) + 1;
    char *msg = arena_alloc(q->arena, size);
    if (er == NULL || msg == NULL)
        return -ENOMEM;
    grpc__reflection__v1__error_response__init(er);
    snprintf(msg, size, "%s '%.*s'", what, MODEL_ID_MAX, name);
    er->error_code = err_status(code);
    er->error_message = msg;
    r->message_response_case =
        GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_ERROR_RESPONSE;
    r->error_response = er;
    return 0;
}

/* add_closure - file @f, then what it imports, each once. */
static void add_closure(size_t f, bool *seen, ProtobufCBinaryData *out, size_t *n)
{
    if (seen[f])
        return;
    seen[f] = true;
    out[(*n)++] = (ProtobufCBinaryData){idx.files[f].bytes.len, (uint8_t *)idx.files[f].bytes.p};
    for (size_t i = 0; i < idx.files[f].n_deps; i++)
        add_closure(idx.files[f].deps[i], seen, out, n);
}

static int file_response(const struct query *q, Response *r, size_t f)
{
    Grpc__Reflection__V1__FileDescriptorResponse *fr = arena_alloc(q->arena, sizeof(*fr));
    bool *seen = arena_alloc(q->arena, idx.n_files * sizeof(*seen));
    ProtobufCBinaryData *files = arena_alloc(q->arena, idx.n_files * sizeof(*files));
    if (fr == NULL || seen == NULL || files == NULL)
        return -ENOMEM;
    grpc__reflection__v1__file_descriptor_response__init(fr);
    memset(seen, 0, idx.n_files * sizeof(*seen));
    add_closure(f, seen, files, &fr->n_file_descriptor_proto);
    fr->file_descriptor_proto = files;
    r->message_response_case =
        GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_FILE_DESCRIPTOR_RESPONSE;
    r->file_descriptor_response = fr;
    return 0;
}

static int by_filename(const struct query *q,
                       const Grpc__Reflection__V1__ServerReflectionRequest *req, Response *r)
{
    const char *name = req->file_by_filename;
    ssize_t f = find_file((struct span){(const uint8_t *)name, strlen(name)});
    return f < 0 ? error_response(q, r, ERR_NOT_FOUND, "no file", name)
                 : file_response(q, r, (size_t)f);
}

static int by_symbol(const struct query *q,
                     const Grpc__Reflection__V1__ServerReflectionRequest *req, Response *r)
{
    const struct symbol *s = find_symbol(req->file_containing_symbol);
    return s == NULL ? error_response(q, r, ERR_NOT_FOUND, "no symbol", req->file_containing_symbol)
                     : file_response(q, r, s->file);
}

static int by_extension(const struct query *q,
                        const Grpc__Reflection__V1__ServerReflectionRequest *req, Response *r)
{
    const char *type = req->file_containing_extension->containing_type;
    return error_response(q, r, ERR_NOT_FOUND, "no extension of", type != NULL ? type : "");
}

static int extension_numbers(const struct query *q,
                             const Grpc__Reflection__V1__ServerReflectionRequest *req, Response *r)
{
    const struct symbol *s = find_symbol(req->all_extension_numbers_of_type);
    if (s == NULL || s->kind != SYMBOL_MESSAGE)
        return error_response(q, r, ERR_NOT_FOUND, "no message type",
                              req->all_extension_numbers_of_type);
    Grpc__Reflection__V1__ExtensionNumberResponse *en = arena_alloc(q->arena, sizeof(*en));
    if (en == NULL)
        return -ENOMEM;
    grpc__reflection__v1__extension_number_response__init(en);
    en->base_type_name = s->name;
    r->message_response_case =
        GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_ALL_EXTENSION_NUMBERS_RESPONSE;
    r->all_extension_numbers_response = en;
    return 0;
}

static int list_services(const struct query *q,
                         const Grpc__Reflection__V1__ServerReflectionRequest *req, Response *r)
{
    Grpc__Reflection__V1__ListServiceResponse *ls = arena_alloc(q->arena, sizeof(*ls));
    Grpc__Reflection__V1__ServiceResponse **svcs =
        arena_alloc(q->arena, (idx.n_symbols + 1) * sizeof(*svcs));
    if (ls == NULL || svcs == NULL)
        return -ENOMEM;
    grpc__reflection__v1__list_service_response__init(ls);
    for (size_t i = 0; i < idx.n_symbols; i++) {
        if (idx.symbols[i].kind != SYMBOL_SERVICE)
            continue;
        Grpc__Reflection__V1__ServiceResponse *sr = arena_alloc(q->arena, sizeof(*sr));
        if (sr == NULL)
            return -ENOMEM;
        grpc__reflection__v1__service_response__init(sr);
        sr->name = idx.symbols[i].name;
        svcs[ls->n_service++] = sr;
    }
    ls->service = svcs;
    r->message_response_case =
        GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_LIST_SERVICES_RESPONSE;
    r->list_services_response = ls;
    return 0;
}

typedef int (*answer_fn)(const struct query *q,
                         const Grpc__Reflection__V1__ServerReflectionRequest *req, Response *r);

static const answer_fn answers[] = {
    [GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_BY_FILENAME] =
        by_filename,
    [GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_CONTAINING_SYMBOL] =
        by_symbol,
    [GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_CONTAINING_EXTENSION] =
        by_extension,
    [GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_ALL_EXTENSION_NUMBERS_OF_TYPE] =
        extension_numbers,
    [GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_LIST_SERVICES] =
        list_services,
};

int reflect_run(const struct query *q, const Grpc__Reflection__V1__ServerReflectionRequest *req,
                Grpc__Reflection__V1__ServerReflectionResponse **out, struct err *e)
{
    pthread_once(&idx_once, build_once);
    if (idx.status != 0)
        return err_set(e, idx.status, "the reflection descriptors are not available");
    Response *r = arena_alloc(q->arena, sizeof(*r));
    if (r == NULL)
        return err_set(e, -ENOMEM, "out of memory for a reflection response");
    grpc__reflection__v1__server_reflection_response__init(r);
    r->valid_host = req->host;
    r->original_request = (Grpc__Reflection__V1__ServerReflectionRequest *)req;
    size_t c = (size_t)req->message_request_case;
    int rc = c < sizeof(answers) / sizeof(answers[0]) && answers[c] != NULL
                 ? answers[c](q, req, r)
                 : error_response(q, r, ERR_INVALID, "no question in the request", "");
    if (rc != 0)
        return err_set(e, rc, "out of memory for a reflection response");
    *out = r;
    return 0;
}
