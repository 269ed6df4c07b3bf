/*
 * record: checks of the write requests, one rule per line, the first
 * broken one named in the status.
 */
#include "engine/record.h"

#include <errno.h>
#include <math.h>
#include <string.h>

#include "engine/filter.h"

static int disabled(const struct query *q, const char *method, struct err *e)
{
    if (q->events != NULL)
        return 0;
    return err_set(e, ERR_DISABLED,
                   "%s needs live events, which this daemon keeps only when started with "
                   "--state-dir DIR (or RECSYS_STATE_DIR)",
                   method);
}

/* check_event - event @ev, the @i-th, into @out (unless its item is unknown). */
static int check_event(const struct query *q, const Recsys__V1__Event *ev, uint32_t i,
                       int64_t now_ms, struct events_event *out, int *known, struct err *e)
{
    int rc = filter_check_id("user_id", ev->user_id, 1, e);
    if (rc == 0)
        rc = filter_check_id("item_id", ev->item_id, 1, e);
    if (rc != 0)
        return err_wrap(e, rc, "events[%u]", i);
    if (ev->type == RECSYS__V1__EVENT_TYPE__EVENT_TYPE_UNSPECIFIED)
        return err_set(e, ERR_INVALID, "events[%u]: type is unspecified", i);
    if ((int)ev->type < 0 || (int)ev->type >= EVENTS_TYPES)
        return err_set(e, ERR_INVALID, "events[%u]: type %d is unknown", i, (int)ev->type);
    if (!isfinite(ev->weight) || ev->weight < 0)
        return err_set(e, ERR_INVALID, "events[%u]: weight %g is not a number >= 0", i,
                       (double)ev->weight);
    if (ev->timestamp_unix_ms < 0)
        return err_set(e, ERR_INVALID, "events[%u]: timestamp_unix_ms %lld is negative", i,
                       (long long)ev->timestamp_unix_ms);
    if (ev->timestamp_unix_ms > now_ms + RECORD_AHEAD_MS)
        return err_set(e, ERR_INVALID,
                       "events[%u]: timestamp_unix_ms %lld is more than an hour ahead of this "
                       "daemon's clock (%lld)",
                       i, (long long)ev->timestamp_unix_ms, (long long)now_ms);
    uint32_t item;
    size_t item_len = strlen(ev->item_id);
    rc = model_find_item(q->model, q->slot, ev->item_id, item_len, &item);
    *known = rc == 0;
    if (rc == ERR_NOT_FOUND)
        return 0;
    if (rc != 0)
        return err_set(e, rc, "failed to look up item '%s' (%s)", ev->item_id, err_strerror(rc));
    enum events_type type = (enum events_type)ev->type;
    float weight = ev->weight;
    if (weight == 0)
        weight = type == EVENTS_VIEW ? model_training(q->model)->view_weight : 1.0f;
    *out = (struct events_event){.user = ev->user_id,
                                 .user_len = (uint32_t)strlen(ev->user_id),
                                 .item = ev->item_id,
                                 .item_len = (uint32_t)item_len,
                                 .type = type,
                                 .weight = weight,
                                 .time_ms =
                                     ev->timestamp_unix_ms != 0 ? ev->timestamp_unix_ms : now_ms};
    return 0;
}

int record_events(const struct query *q, const Recsys__V1__RecordEventsRequest *req, int64_t now_ms,
                  struct events_event **out, uint32_t *n, uint32_t *unknown, struct err *e)
{
    int rc = disabled(q, "RecordEvents", e);
    if (rc != 0)
        return rc;
    if (req->n_events == 0)
        return err_set(e, ERR_INVALID, "events is empty");
    if (req->n_events > RECORD_EVENTS_MAX)
        return err_set(e, ERR_INVALID, "events has %zu entries, more than %d", req->n_events,
                       RECORD_EVENTS_MAX);
    struct events_event *list = arena_alloc(q->arena, req->n_events * sizeof(*list));
    if (list == NULL)
        return err_set(e, -ENOMEM, "out of memory for %zu events", req->n_events);
    uint32_t stored = 0, skipped = 0;
    for (uint32_t i = 0; i < req->n_events; i++) {
        int known = 0;
        rc = check_event(q, req->events[i], i, now_ms, &list[stored], &known, e);
        if (rc != 0)
            return rc;
        stored += known;
        skipped += !known;
    }
    *out = list;
    *n = stored;
    *unknown = skipped;
    return 0;
}

int record_forget(const struct query *q, const Recsys__V1__ForgetUserRequest *req, struct err *e)
{
    int rc = disabled(q, "ForgetUser", e);
    if (rc == 0)
        rc = filter_check_id("user_id", req->user_id, 1, e);
    return rc;
}
