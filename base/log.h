/*
 * log: one line per event on stderr.
 *
 *   2026-11-25T01:44:30.123Z INFO  model loaded path=/srv/model.lmdb version=v7 items=5000
 *
 * Lines are written with a single write(2), so lines from different threads
 * never interleave. Failures are logged as "failed to <action> (<reason>)".
 */
#pragma once

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };

/* log_set_level - drop events below @level. Default LOG_INFO. */
void log_set_level(enum log_level level);

/* log_enabled - whether events at @level are written: lets a caller skip
 * work done only for the line (a rate limit's bookkeeping). */
int log_enabled(enum log_level level);

/* log_parse_level - "debug", "info", "warn" or "error" -> *out. 0 or ERR_INVALID. */
int log_parse_level(const char *name, enum log_level *out);

void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)
#define log_info(...)  log_msg(LOG_INFO, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_WARN, __VA_ARGS__)
#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)
