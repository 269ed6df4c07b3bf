#include "tools/recsys-cli/commands.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "grpc/health/v1/health.pb-c.h"
#include "recsys/v1/recommender.pb-c.h"
#include "tools/recsys-cli/table.h"

/* ---- options ------------------------------------------------------------ */

#define ARG(member) offsetof(struct cli_args, member)

/* batch-recommend takes these after the first (--user): its words are
 * its users. */
static const struct opt recommend_opts[] = {
    {"user", 0, OPT_STRING, ARG(user), true, 0, 0, NULL},
    {"count", 0, OPT_UINT32, ARG(count), false, 0, UINT32_MAX, "N"},
    {"exclude", 0, OPT_LIST, ARG(exclude), false, 0, 0, NULL},
    {"category", 0, OPT_LIST, ARG(categories), false, 0, 0, NULL},
    {"purchasable-only", 0, OPT_FLAG, ARG(purchasable_only), false, 0, 0, NULL},
    {"owned", 0, OPT_LIST, ARG(owned), false, 0, 0, NULL},
    {"model", 0, OPT_STRING, ARG(model), false, 0, 0, "NAME"},
    {.name = NULL},
};

static const struct opt eligibility_opts[] = {
    {"user", 0, OPT_STRING, ARG(user), true, 0, 0, NULL},
    {"owned", 0, OPT_LIST, ARG(owned), false, 0, 0, NULL},
    {"model", 0, OPT_STRING, ARG(model), false, 0, 0, "NAME"},
    {.name = NULL},
};

static const struct opt similar_opts[] = {
    {"item", 0, OPT_STRING, ARG(item), true, 0, 0, NULL},
    {"count", 0, OPT_UINT32, ARG(count), false, 0, UINT32_MAX, "N"},
    {"exclude", 0, OPT_LIST, ARG(exclude), false, 0, 0, NULL},
    {"category", 0, OPT_LIST, ARG(categories), false, 0, 0, NULL},
    {"user", 0, OPT_STRING, ARG(user), false, 0, 0, NULL},
    {"model", 0, OPT_STRING, ARG(model), false, 0, 0, "NAME"},
    {.name = NULL},
};

/* The three event options collect into a list each; record_check merges
 * them back into command-line order. */
static const struct opt record_opts[] = {
    {"user", 0, OPT_STRING, ARG(user), true, 0, 0, NULL},
    {"purchase", 0, OPT_LIST, ARG(purchases), false, 0, 0, "ITEM"},
    {"view", 0, OPT_LIST, ARG(views), false, 0, 0, "ITEM"},
    {"refund", 0, OPT_LIST, ARG(refunds), false, 0, 0, "ITEM"},
    {"weight", 0, OPT_STRING, ARG(weight_text), false, 0, 0, "W"},
    /* The proto's int64: larger values would turn negative. */
    {"time", 0, OPT_UINT, ARG(time_ms), false, 0, INT64_MAX, "UNIX_MS"},
    {.name = NULL},
};

static const struct opt forget_opts[] = {
    {"user", 0, OPT_STRING, ARG(user), true, 0, 0, NULL},
    {.name = NULL},
};

static const struct opt info_opts[] = {
    {"model", 0, OPT_STRING, ARG(model), false, 0, 0, "NAME"},
    {.name = NULL},
};

static const struct opt no_opts[] = {
    {.name = NULL},
};

/* ---- checks ------------------------------------------------------------- */

/* Each event option's list and the type its items are recorded as. */
static const struct {
    size_t list;
    int type;
} event_lists[] = {
    {ARG(purchases), RECSYS__V1__EVENT_TYPE__PURCHASE},
    {ARG(views), RECSYS__V1__EVENT_TYPE__VIEW},
    {ARG(refunds), RECSYS__V1__EVENT_TYPE__REFUND},
};
#define NEVENT_LISTS (sizeof(event_lists) / sizeof(event_lists[0]))

/* Whether the option value @value was taken from command-line word @word:
 * the word itself ("--purchase ITEM") or its text after '='
 * ("--purchase=ITEM"). The values are pointers into argv, so identity, not
 * text, tells which word each came from. */
static bool value_of_word(const char *value, const char *word)
{
    const char *eq = word[0] == '-' ? strchr(word, '=') : NULL;
    return value == word || (eq != NULL && value == eq + 1);
}

/*
 * The events in the order the command line gives them: each list is in
 * that order already, so one walk over argv with a cursor per list merges
 * them. Then the weight, which the option table has no kind for: any
 * number strtod reads; whether it is a valid weight (>= 0, finite) is the
 * daemon's to say, as for every other field of the request.
 */
static int record_check(struct cli_args *a, struct err *e)
{
    size_t next[NEVENT_LISTS] = {0};
    for (int w = 0; w < a->argc; w++) {
        for (size_t k = 0; k < NEVENT_LISTS; k++) {
            const struct opts_list *l =
                (const struct opts_list *)((const char *)a + event_lists[k].list);
            if (next[k] < l->n && value_of_word(l->v[next[k]], a->argv[w])) {
                a->events[a->n_events++] = (struct cli_event){event_lists[k].type, l->v[next[k]]};
                next[k]++;
                break;
            }
        }
    }
    if (a->n_events != a->purchases.n + a->views.n + a->refunds.n)
        return err_set(e, ERR_INTERNAL, "the events could not be put in command-line order");
    if (a->n_events == 0)
        return err_set(e, ERR_INVALID, "give at least one --purchase, --view or --refund");
    if (a->weight_text != NULL) {
        char *end;
        double v = strtod(a->weight_text, &end);
        if (end == a->weight_text || *end != '\0')
            return err_set(e, ERR_INVALID, "--weight: '%s' is not a number", a->weight_text);
        a->weight = (float)v;
    }
    return 0;
}

/* ---- requests ----------------------------------------------------------- */

static int pack_message(const ProtobufCMessage *m, uint8_t **buf, size_t *len)
{
    *len = protobuf_c_message_get_packed_size(m);
    /* +1: an empty message packs to zero bytes, and malloc(0) may be NULL. */
    *buf = malloc(*len + 1);
    if (*buf == NULL)
        return -ENOMEM;
    protobuf_c_message_pack(m, *buf);
    return 0;
}

/* @req asks for @user's recommendations with @a's options; it borrows
 * their strings. */
static void fill_recommend(const struct cli_args *a, char *user, Recsys__V1__RecommendRequest *req)
{
    recsys__v1__recommend_request__init(req);
    req->user_id = user;
    req->count = a->count;
    req->n_exclude_item_ids = a->exclude.n;
    req->exclude_item_ids = a->exclude.v;
    req->n_categories = a->categories.n;
    req->categories = a->categories.v;
    req->purchasable_only = a->purchasable_only;
    req->n_owned_item_ids = a->owned.n;
    req->owned_item_ids = a->owned.v;
}

/* The named model of @a, or the route's: protobuf-c wants "" rather than
 * NULL for an empty string. */
static char *model_of(const struct cli_args *a)
{
    return a->model != NULL ? a->model : "";
}

static int pack_recommend(const struct cli_args *a, uint8_t **buf, size_t *len)
{
    Recsys__V1__RecommendRequest req;
    fill_recommend(a, a->user, &req);
    req.model = model_of(a);
    return pack_message(&req.base, buf, len);
}

/* One request per word (user), all with the same options. */
static int pack_batch(const struct cli_args *a, uint8_t **buf, size_t *len)
{
    Recsys__V1__BatchRecommendRequest batch = RECSYS__V1__BATCH_RECOMMEND_REQUEST__INIT;
    Recsys__V1__RecommendRequest *reqs = calloc(a->words.n, sizeof(*reqs));
    Recsys__V1__RecommendRequest **list = calloc(a->words.n, sizeof(*list));
    int rc = -ENOMEM;
    if (reqs != NULL && list != NULL) {
        for (size_t i = 0; i < a->words.n; i++) {
            fill_recommend(a, a->words.v[i], &reqs[i]);
            list[i] = &reqs[i];
        }
        batch.n_requests = a->words.n;
        batch.requests = list;
        batch.model = model_of(a);
        rc = pack_message(&batch.base, buf, len);
    }
    free(list);
    free(reqs);
    return rc;
}

static int pack_eligibility(const struct cli_args *a, uint8_t **buf, size_t *len)
{
    Recsys__V1__EligibilityRequest req = RECSYS__V1__ELIGIBILITY_REQUEST__INIT;
    req.user_id = a->user;
    req.n_item_ids = a->words.n;
    req.item_ids = a->words.v;
    req.n_owned_item_ids = a->owned.n;
    req.owned_item_ids = a->owned.v;
    req.model = model_of(a);
    return pack_message(&req.base, buf, len);
}

static int pack_similar(const struct cli_args *a, uint8_t **buf, size_t *len)
{
    Recsys__V1__SimilarItemsRequest req = RECSYS__V1__SIMILAR_ITEMS_REQUEST__INIT;
    req.item_id = a->item;
    req.count = a->count;
    req.n_exclude_item_ids = a->exclude.n;
    req.exclude_item_ids = a->exclude.v;
    req.n_categories = a->categories.n;
    req.categories = a->categories.v;
    if (a->user != NULL)
        req.user_id = a->user;
    req.model = model_of(a);
    return pack_message(&req.base, buf, len);
}

/* One RecordEvents call: an event per --purchase, --view and --refund, in
 * command-line order, all with the same weight and time. */
static int pack_record(const struct cli_args *a, uint8_t **buf, size_t *len)
{
    Recsys__V1__RecordEventsRequest req = RECSYS__V1__RECORD_EVENTS_REQUEST__INIT;
    Recsys__V1__Event *events = calloc(a->n_events, sizeof(*events));
    Recsys__V1__Event **list = calloc(a->n_events, sizeof(*list));
    int rc = -ENOMEM;
    if (events != NULL && list != NULL) {
        for (size_t i = 0; i < a->n_events; i++) {
            recsys__v1__event__init(&events[i]);
            events[i].user_id = a->user;
            events[i].item_id = a->events[i].item;
            events[i].type = (Recsys__V1__EventType)a->events[i].type;
            events[i].weight = a->weight;
            events[i].timestamp_unix_ms = (int64_t)a->time_ms;
            list[i] = &events[i];
        }
        req.n_events = a->n_events;
        req.events = list;
        rc = pack_message(&req.base, buf, len);
    }
    free(list);
    free(events);
    return rc;
}

static int pack_forget(const struct cli_args *a, uint8_t **buf, size_t *len)
{
    Recsys__V1__ForgetUserRequest req = RECSYS__V1__FORGET_USER_REQUEST__INIT;
    req.user_id = a->user;
    return pack_message(&req.base, buf, len);
}

static int pack_info(const struct cli_args *a, uint8_t **buf, size_t *len)
{
    Recsys__V1__ModelInfoRequest req = RECSYS__V1__MODEL_INFO_REQUEST__INIT;
    req.model = model_of(a);
    return pack_message(&req.base, buf, len);
}

static int pack_health(const struct cli_args *a, uint8_t **buf, size_t *len)
{
    Grpc__Health__V1__HealthCheckRequest req = GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
    if (a->words.n > 0)
        req.service = a->words.v[0];
    return pack_message(&req.base, buf, len);
}

/* ---- printing ----------------------------------------------------------- */

static const char *enum_name(const ProtobufCEnumDescriptor *d, int value)
{
    const ProtobufCEnumValue *ev = protobuf_c_enum_descriptor_get_value(d, value);
    return ev != NULL ? ev->name : "UNRECOGNIZED";
}

/* "model demo-1 · source PERSONALIZED · 5 items": what was asked, in one
 * line; "model demo-2 (candidate) · ..." when a model other than the one
 * named default answered. @label and @value describe the list; @label may
 * be NULL. */
static void print_summary(FILE *out, const char *name, const char *version, const char *label,
                          const char *value, size_t n)
{
    fprintf(out, "model %s", version);
    if (name[0] != '\0' && strcmp(name, "default") != 0)
        fprintf(out, " (%s)", name);
    if (label != NULL)
        fprintf(out, " · %s %s", label, value);
    fprintf(out, " · %zu item%s\n", n, n == 1 ? "" : "s");
}

/* Rank, id and score of each item, best first (the order the server sent). */
static int print_ranked(FILE *out, const Recsys__V1__RecommendResponse *r, const char *label,
                        const char *value, const char *score_title)
{
    const struct table_column cols[] = {
        {"rank", TABLE_RIGHT}, {"item_id", TABLE_LEFT}, {score_title, TABLE_RIGHT}};
    print_summary(out, r->model_name, r->model_version, label, value, r->n_items);
    if (r->n_items == 0)
        return 0;
    struct table *t;
    int rc = table_create(cols, sizeof(cols) / sizeof(cols[0]), &t);
    if (rc != 0)
        return rc;
    for (size_t i = 0; i < r->n_items; i++) {
        table_cell(t, "%zu", i + 1);
        table_cell(t, "%s", r->items[i]->item_id);
        table_cell(t, "%.4f", r->items[i]->score);
    }
    rc = table_print(t, out);
    table_destroy(t);
    return rc;
}

static int print_recommend(FILE *out, const ProtobufCMessage *resp, const struct cli_args *a)
{
    const Recsys__V1__RecommendResponse *r = (const Recsys__V1__RecommendResponse *)resp;
    return print_ranked(out, r, "source",
                        enum_name(&recsys__v1__source__descriptor, (int)r->source), "score");
}

/* Each user's list under a line naming the user; the responses come in
 * the order of the users. */
static int print_batch(FILE *out, const ProtobufCMessage *resp, const struct cli_args *a)
{
    const Recsys__V1__BatchRecommendResponse *b = (const Recsys__V1__BatchRecommendResponse *)resp;
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < b->n_responses && i < a->words.n; i++) {
        fprintf(out, "%suser %s · ", i > 0 ? "\n" : "", a->words.v[i]);
        rc = print_recommend(out, &b->responses[i]->base, a);
    }
    return rc;
}

static int print_similar(FILE *out, const ProtobufCMessage *resp, const struct cli_args *a)
{
    const Recsys__V1__RecommendResponse *r = (const Recsys__V1__RecommendResponse *)resp;
    return print_ranked(out, r, "similar to", a->item, "similarity");
}

/* Cents as currency units: 1999 -> "19.99", -5 -> "-0.05". The magnitude is
 * taken unsigned so INT64_MIN has one too. */
static void format_cents(char *buf, size_t size, int64_t cents)
{
    uint64_t mag = cents < 0 ? 0 - (uint64_t)cents : (uint64_t)cents;
    snprintf(buf, size, "%s%" PRIu64 ".%02" PRIu64, cents < 0 ? "-" : "", mag / 100, mag % 100);
}

static int print_eligibility(FILE *out, const ProtobufCMessage *resp, const struct cli_args *a)
{
    static const struct table_column cols[] = {{"item_id", TABLE_LEFT},
                                               {"eligible", TABLE_LEFT},
                                               {"reason", TABLE_LEFT},
                                               {"price", TABLE_RIGHT}};
    const Recsys__V1__EligibilityResponse *r = (const Recsys__V1__EligibilityResponse *)resp;
    print_summary(out, r->model_name, r->model_version, NULL, NULL, r->n_results);
    struct table *t;
    int rc = table_create(cols, sizeof(cols) / sizeof(cols[0]), &t);
    if (rc != 0)
        return rc;
    for (size_t i = 0; i < r->n_results; i++) {
        const Recsys__V1__EligibilityResult *res = r->results[i];
        char price[32] = "-"; /* an unknown item has no price */
        if (res->reason != RECSYS__V1__REASON__UNKNOWN_ITEM)
            format_cents(price, sizeof(price), res->price_cents);
        table_cell(t, "%s", res->item_id);
        table_cell(t, "%s", res->eligible ? "yes" : "no");
        table_cell(t, "%s", enum_name(&recsys__v1__reason__descriptor, (int)res->reason));
        table_cell(t, "%s", price);
    }
    rc = table_print(t, out);
    table_destroy(t);
    return rc;
}

/* "2024-11-25T01:44:30Z (1732500000)"; just the number when it is not a
 * time (0 means the model did not record one). */
static void format_time(char *buf, size_t size, int64_t unix_s)
{
    time_t tt = (time_t)unix_s;
    struct tm tm;
    size_t n = 0;
    if (unix_s > 0 && gmtime_r(&tt, &tm) != NULL)
        n = strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ (", &tm);
    snprintf(buf + n, size - n, n > 0 ? "%" PRId64 ")" : "%" PRId64, unix_s);
}

/* Like format_time, for unix milliseconds: "2026-11-25T05:31:47.883Z
 * (1795583507883)". */
static void format_time_ms(char *buf, size_t size, int64_t unix_ms)
{
    time_t tt = (time_t)(unix_ms / 1000);
    struct tm tm;
    size_t n = 0;
    if (unix_ms > 0 && gmtime_r(&tt, &tm) != NULL) {
        n = strftime(buf, size, "%Y-%m-%dT%H:%M:%S", &tm);
        if (n > 0)
            n += (size_t)snprintf(buf + n, size - n, ".%03dZ (", (int)(unix_ms % 1000));
    }
    snprintf(buf + n, size - n, n > 0 ? "%" PRId64 ")" : "%" PRId64, unix_ms);
}

/* An empty string field as "-", so every row has a value: the strings are
 * empty while the server has no model, and last_reload_error while all is
 * well. */
static const char *or_dash(const char *s)
{
    return s[0] != '\0' ? s : "-";
}

/* The rows of GetModelInfo's events: there only when the daemon keeps
 * live events (--state-dir). */
static void add_events(struct table *t, const Recsys__V1__EventsState *ev)
{
    char compacted[64];
    format_time_ms(compacted, sizeof(compacted), ev->compacted_through_unix_ms);
    table_cell(t, "events_dir:");
    table_cell(t, "%s", or_dash(ev->dir));
    table_cell(t, "events_pending:");
    table_cell(t, "purchases %" PRIu64 ", views %" PRIu64 ", refunds %" PRIu64,
               ev->pending_purchases, ev->pending_views, ev->pending_refunds);
    table_cell(t, "events_recorded:");
    table_cell(t, "purchases %" PRIu64 ", views %" PRIu64 ", refunds %" PRIu64,
               ev->recorded_purchases, ev->recorded_views, ev->recorded_refunds);
    table_cell(t, "events_bytes:");
    table_cell(t, "used %" PRIu64 ", file %" PRIu64 ", max %" PRIu64, ev->used_bytes,
               ev->file_bytes, ev->max_bytes);
    table_cell(t, "compacted_through:");
    table_cell(t, "%s", compacted);
    table_cell(t, "fold_ins:");
    table_cell(t, "%" PRIu64, ev->fold_ins);
    table_cell(t, "events_error:");
    table_cell(t, "%s", or_dash(ev->error));
}

static int print_info(FILE *out, const ProtobufCMessage *resp, const struct cli_args *a)
{
    static const struct table_column cols[] = {{NULL, TABLE_LEFT}, {NULL, TABLE_LEFT}};
    const Recsys__V1__ModelInfo *m = (const Recsys__V1__ModelInfo *)resp;
    char created[64], loaded[64], attempted[64];
    format_time(created, sizeof(created), m->created_at_unix);
    format_time(loaded, sizeof(loaded), m->loaded_at_unix);
    format_time(attempted, sizeof(attempted), m->last_reload_attempt_unix);
    struct table *t;
    int rc = table_create(cols, sizeof(cols) / sizeof(cols[0]), &t);
    if (rc != 0)
        return rc;
    table_cell(t, "model_name:");
    table_cell(t, "%s", or_dash(m->model_name));
    table_cell(t, "model_version:");
    table_cell(t, "%s", or_dash(m->model_version));
    table_cell(t, "created_at:");
    table_cell(t, "%s", created);
    table_cell(t, "loaded_at:");
    table_cell(t, "%s", loaded);
    table_cell(t, "dimension:");
    table_cell(t, "%" PRIu32, m->dimension);
    table_cell(t, "users:");
    table_cell(t, "%" PRIu64, m->user_count);
    table_cell(t, "items:");
    table_cell(t, "%" PRIu64, m->item_count);
    table_cell(t, "element_type:");
    table_cell(t, "%s", or_dash(m->element_type));
    table_cell(t, "kernel:");
    table_cell(t, "%s", or_dash(m->kernel));
    table_cell(t, "scan:");
    table_cell(t, "%s", or_dash(m->scan));
    char copies[64] = "-";
    for (size_t i = 0, used = 0; i < m->n_quantized && used < sizeof(copies); i++)
        used += (size_t)snprintf(copies + used, sizeof(copies) - used, "%s%s", i ? ", " : "",
                                 m->quantized[i]);
    table_cell(t, "quantized:");
    table_cell(t, "%s", copies);
    table_cell(t, "path:");
    table_cell(t, "%s", or_dash(m->path));
    table_cell(t, "checksum:");
    table_cell(t, "%s", or_dash(m->checksum));
    table_cell(t, "reloads:");
    table_cell(t, "%" PRIu64, m->reload_count);
    table_cell(t, "failed_reloads:");
    table_cell(t, "%" PRIu64, m->failed_reload_count);
    table_cell(t, "last_reload_attempt:");
    table_cell(t, "%s", attempted);
    table_cell(t, "last_reload_error:");
    table_cell(t, "%s", or_dash(m->last_reload_error));
    char data_end[64];
    format_time_ms(data_end, sizeof(data_end), m->data_end_unix_ms);
    table_cell(t, "data_end:");
    table_cell(t, "%s", data_end);
    if (m->events != NULL)
        add_events(t, m->events);
    rc = table_print(t, out);
    table_destroy(t);
    return rc;
}

/* The route of @m in one line: "default stable · split candidate 10,
 * stable 90 · salt exp-1 · from routes.json since ...". */
static void print_route(FILE *out, const Recsys__V1__Route *r)
{
    char since[64];
    format_time(since, sizeof(since), r->since_unix);
    fprintf(out, "route: default %s", r->default_model);
    for (size_t i = 0; i < r->n_split; i++)
        fprintf(out, "%s%s %" PRIu32, i == 0 ? " · split " : ", ", r->split[i]->model,
                r->split[i]->weight);
    if (r->salt[0] != '\0')
        fprintf(out, " · salt %s", r->salt);
    fprintf(out, " · from %s since %s\n", r->source, since);
    if (r->error[0] != '\0')
        fprintf(out, "routes.json refused: %s\n", r->error);
}

/* Every model the daemon serves, one per row, then the route. */
static int print_models(FILE *out, const ProtobufCMessage *resp, const struct cli_args *a)
{
    static const struct table_column cols[] = {
        {"name", TABLE_LEFT},        {"version", TABLE_LEFT},
        {"loaded", TABLE_LEFT},      {"share", TABLE_RIGHT},
        {"users", TABLE_RIGHT},      {"items", TABLE_RIGHT},
        {"file_bytes", TABLE_RIGHT}, {"reloads", TABLE_RIGHT},
        {"failed", TABLE_RIGHT},     {"last_reload_error", TABLE_LEFT}};
    const Recsys__V1__ModelInfo *m = (const Recsys__V1__ModelInfo *)resp;
    struct table *t;
    int rc = table_create(cols, sizeof(cols) / sizeof(cols[0]), &t);
    if (rc != 0)
        return rc;
    for (size_t i = 0; i < m->n_models; i++) {
        const Recsys__V1__ModelSummary *s = m->models[i];
        table_cell(t, "%s", s->name);
        table_cell(t, "%s", or_dash(s->model_version));
        table_cell(t, "%s", s->loaded ? "yes" : "no");
        table_cell(t, "%" PRIu32 "%%", s->route_share);
        table_cell(t, "%" PRIu64, s->user_count);
        table_cell(t, "%" PRIu64, s->item_count);
        table_cell(t, "%" PRIu64, s->file_bytes);
        table_cell(t, "%" PRIu64, s->reload_count);
        table_cell(t, "%" PRIu64, s->failed_reload_count);
        table_cell(t, "%s", or_dash(s->last_reload_error));
    }
    rc = table_print(t, out);
    table_destroy(t);
    if (rc != 0)
        return rc;
    if (m->route != NULL)
        print_route(out, m->route);
    fprintf(out, "mapped: %" PRIu64 " bytes\n", m->mapped_bytes);
    return 0;
}

static int print_record(FILE *out, const ProtobufCMessage *resp, const struct cli_args *a)
{
    const Recsys__V1__RecordEventsResponse *r = (const Recsys__V1__RecordEventsResponse *)resp;
    fprintf(out, "recorded %" PRIu32 ", unknown items %" PRIu32 "\n", r->recorded,
            r->unknown_items);
    return 0;
}

static int print_forget(FILE *out, const ProtobufCMessage *resp, const struct cli_args *a)
{
    const Recsys__V1__ForgetUserResponse *r = (const Recsys__V1__ForgetUserResponse *)resp;
    fprintf(out, "deleted %" PRIu32 " event%s of user %s\n", r->deleted, r->deleted == 1 ? "" : "s",
            a->user);
    return 0;
}

static int print_health(FILE *out, const ProtobufCMessage *resp, const struct cli_args *a)
{
    const Grpc__Health__V1__HealthCheckResponse *h =
        (const Grpc__Health__V1__HealthCheckResponse *)resp;
    fprintf(out, "status: %s\n",
            enum_name(&grpc__health__v1__health_check_response__serving_status__descriptor,
                      (int)h->status));
    return 0;
}

/* A probe (`recsys-cli health && ...`) should pass only when the server
 * says it serves. */
static bool health_serving(const ProtobufCMessage *resp)
{
    const Grpc__Health__V1__HealthCheckResponse *h =
        (const Grpc__Health__V1__HealthCheckResponse *)resp;
    return h->status == GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING;
}

/* ---- the table ---------------------------------------------------------- */

const struct command commands[] = {
    {
        .name = "recommend",
        .usage = "--user U [--count N] [--exclude ID]... [--category C]...\n"
                 "[--purchasable-only] [--owned ID]... [--model NAME]",
        .summary = "Top-N items for a user, best first (0 or no --count: 10).",
        .opts = recommend_opts,
        .max_words = 0,
        .method = "/recsys.v1.Recommender/Recommend",
        .response = &recsys__v1__recommend_response__descriptor,
        .pack = pack_recommend,
        .print = print_recommend,
    },
    {
        .name = "batch-recommend",
        .usage = "USER... [--count N] [--exclude ID]... [--category C]...\n"
                 "[--purchasable-only] [--owned ID]... [--model NAME]",
        .summary = "Top-N items for each of up to 256 users, in one BatchRecommend call.",
        .opts = recommend_opts + 1,
        .min_words = 1,
        .max_words = SIZE_MAX,
        .method = "/recsys.v1.Recommender/BatchRecommend",
        .response = &recsys__v1__batch_recommend_response__descriptor,
        .pack = pack_batch,
        .print = print_batch,
    },
    {
        .name = "eligibility",
        .usage = "--user U ITEM... [--owned ID]... [--model NAME]",
        .summary = "Whether the user can buy each item now, and if not, why.",
        .opts = eligibility_opts,
        .min_words = 1,
        .max_words = SIZE_MAX,
        .method = "/recsys.v1.Recommender/CheckEligibility",
        .response = &recsys__v1__eligibility_response__descriptor,
        .pack = pack_eligibility,
        .print = print_eligibility,
    },
    {
        .name = "similar",
        .usage = "--item I [--count N] [--exclude ID]... [--category C]... [--user U]\n"
                 "[--model NAME]",
        .summary = "Items most similar to an item (cosine); --user drops what they own.",
        .opts = similar_opts,
        .max_words = 0,
        .method = "/recsys.v1.Recommender/SimilarItems",
        .response = &recsys__v1__recommend_response__descriptor,
        .pack = pack_similar,
        .print = print_similar,
    },
    {
        .name = "record",
        .usage = "--user U (--purchase ITEM | --view ITEM | --refund ITEM)...\n"
                 "[--weight W] [--time UNIX_MS]",
        .summary = "Record what a user did, one event per item in order (needs --state-dir).",
        .opts = record_opts,
        .max_words = 0,
        .method = "/recsys.v1.Recommender/RecordEvents",
        .response = &recsys__v1__record_events_response__descriptor,
        .check = record_check,
        .pack = pack_record,
        .print = print_record,
    },
    {
        .name = "forget",
        .usage = "--user U",
        .summary = "Delete every recorded event of a user (needs --state-dir).",
        .opts = forget_opts,
        .max_words = 0,
        .method = "/recsys.v1.Recommender/ForgetUser",
        .response = &recsys__v1__forget_user_response__descriptor,
        .pack = pack_forget,
        .print = print_forget,
    },
    {
        .name = "info",
        .usage = "[--model NAME]",
        .summary = "The model being served (--model: a named one).",
        .opts = info_opts,
        .max_words = 0,
        .method = "/recsys.v1.Recommender/GetModelInfo",
        .response = &recsys__v1__model_info__descriptor,
        .pack = pack_info,
        .print = print_info,
    },
    {
        .name = "models",
        .usage = "",
        .summary = "Every model served, each one's share of users, and the route.",
        .opts = no_opts,
        .max_words = 0,
        .method = "/recsys.v1.Recommender/GetModelInfo",
        .response = &recsys__v1__model_info__descriptor,
        .pack = pack_info,
        .print = print_models,
    },
    {
        .name = "health",
        .usage = "[SERVICE]",
        .summary = "Standard gRPC health check; exit status 0 only when SERVING.",
        .opts = no_opts,
        .max_words = 1,
        .method = "/grpc.health.v1.Health/Check",
        .response = &grpc__health__v1__health_check_response__descriptor,
        .pack = pack_health,
        .print = print_health,
        .succeeded = health_serving,
    },
    {.name = NULL},
};

const struct command *command_find(const char *name)
{
    for (const struct command *c = commands; c->name != NULL; c++) {
        if (strcmp(c->name, name) == 0)
            return c;
    }
    return NULL;
}
