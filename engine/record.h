/*
 * record: the RecordEvents and ForgetUser requests, checked and resolved.
 *
 * These two write: the service hands what they resolve to the events
 * store (state/events.h) and replies once the store reports it durable.
 * What is checked here is everything that can be known before the write,
 * so a bad request fails whole, before anything of it is stored.
 */
#pragma once

#include <stdint.h>

#include "engine/query.h"
#include "recsys/v1/recommender.pb-c.h"
#include "state/events.h"

#define RECORD_EVENTS_MAX 1000 /* events in one RecordEvents call */
/* How far ahead of the daemon's clock an event's time may be: clocks of
 * the platform's services disagree by seconds, not hours, and an event
 * dated far ahead would outlive every model meant to hold it. */
#define RECORD_AHEAD_MS (3600 * 1000)

/* record_events - check @req and resolve it into the events to store.
 * Events naming an item q->model does not know are counted in *@unknown
 * and left out. A weight of 0 becomes the type's (purchase and refund 1,
 * view model_training()->view_weight); a timestamp of 0, @now_ms.
 * *@out (in q->arena; ids point into @req) receives *@n events.
 * Returns 0; ERR_DISABLED without an events store (q->events NULL);
 * ERR_INVALID for the first bad event ("events[3]: item_id is empty"):
 * empty, none or more than RECORD_EVENTS_MAX events, an empty or too long
 * id, a type unspecified or unknown, a weight negative or not finite, a
 * time negative or more than RECORD_AHEAD_MS ahead; -ENOMEM; a lookup's
 * error. Text in @e. */
int record_events(const struct query *q, const Recsys__V1__RecordEventsRequest *req, int64_t now_ms,
                  struct events_event **out, uint32_t *n, uint32_t *unknown, struct err *e);

/* record_forget - check a ForgetUser request: 0, ERR_DISABLED (no store)
 * or ERR_INVALID (empty or too long user_id). */
int record_forget(const struct query *q, const Recsys__V1__ForgetUserRequest *req, struct err *e);
