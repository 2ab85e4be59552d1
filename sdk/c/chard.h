/*
 * chard.h: write Chard tasks in C.
 *
 * A task is a function `void task(chard_call *call)`: it reads its arguments
 * with chard_arg_*(), and ends with one chard_return_*(), chard_fail*() or
 * chard_retry(). The plugin lists its tasks once with CHARD_TASKS:
 *
 *     #include "chard.h"
 *
 *     static void add(chard_call *call) {
 *         int64_t x, y;
 *         if (!chard_arg_int(call, 0, &x) || !chard_arg_int(call, 1, &y))
 *             return;                      // TypeError already reported
 *         chard_return_int(call, x + y);
 *     }
 *
 *     CHARD_TASKS(
 *         { .name = "add", .fn = add, .params = CHARD_PARAMS("x", "y"),
 *           .doc = "Add two integers.", .time_limit_ms = CHARD_SOME(5000) },
 *     );
 *
 * Celery's args (a JSON array) and kwargs (a JSON object) are bound to the
 * named parameters with Python's rules before the task runs: a call that
 * does not fit fails with TypeError ("add: expected 2 arguments (x, y),
 * got 3"). A parameter whose name ends in '?' ("limit?") is optional;
 * chard_arg_present() tells whether it was given: chard_arg() is NULL for an
 * argument left out and a JSON null for one sent as null. "*name" collects
 * the extra positional arguments and "**name" the extra keyword arguments
 * (Python's *args and **kwargs): chard_var_args(), chard_var_kwargs().
 *
 * Memory: every job runs in a fresh instance, so nothing needs freeing; all
 * pointers the SDK hands out stay valid until the task returns.
 *
 * sdk/c/build-plugin.sh compiles the plugin with this SDK (chard.c) and the
 * bindings wit-bindgen generates for wit/chard.wit into a component.
 */
#ifndef CHARD_H
#define CHARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- JSON values (arguments) ------------------------------------------- */

typedef struct chard_json chard_json;

typedef enum {
    CHARD_JSON_NULL,
    CHARD_JSON_BOOL,
    CHARD_JSON_NUMBER,
    CHARD_JSON_STRING,
    CHARD_JSON_ARRAY,
    CHARD_JSON_OBJECT,
} chard_json_type;

chard_json_type chard_json_type_of(const chard_json *value);
/* "null", "bool", "number", "string", "array" or "object". */
const char *chard_json_type_name(const chard_json *value);
/* Number of elements of an array or members of an object (0 otherwise). */
size_t chard_json_len(const chard_json *value);
/* Element i of an array, or the value of member i of an object; NULL past the end. */
const chard_json *chard_json_at(const chard_json *value, size_t i);
/* Key of member i of an object (NUL-terminated); NULL otherwise. */
const char *chard_json_key_at(const chard_json *value, size_t i);
/* Value of member `key` of an object; NULL when absent. */
const chard_json *chard_json_get(const chard_json *value, const char *key);
/* Numbers: true when `value` is a number (any number converts to double). */
bool chard_json_double(const chard_json *value, double *out);
/* True when `value` is an integer literal that fits in int64 (2, not 2.0). */
bool chard_json_int(const chard_json *value, int64_t *out);
bool chard_json_bool(const chard_json *value, bool *out);
/* Strings: NUL-terminated UTF-8; `len` (may be NULL) gets the byte length,
 * which can exceed strlen() when the string contains "\u0000". */
const char *chard_json_string(const chard_json *value, size_t *len);
/* Parse JSON text (NULL and `error` set on failure; `error` may be NULL). */
const chard_json *chard_json_parse(const char *text, size_t len, const char **error);
/* Compact JSON text of a value (malloc'd; NULL for a NaN/infinite number). */
char *chard_json_text(const chard_json *value);
/* `text` as a JSON string literal, quotes included (malloc'd). */
char *chard_json_quote(const char *text);

/* ---- Tasks ------------------------------------------------------------- */

typedef struct chard_call chard_call;
typedef void (*chard_task_fn)(chard_call *call);

typedef struct {
    bool set;
    uint64_t value;
} chard_opt;

/* An optional number in a task's defaults: `.max_retries = CHARD_SOME(3)`. */
#define CHARD_SOME(v) ((chard_opt){true, (uint64_t)(v)})
/* NULL-terminated parameter names: `CHARD_PARAMS("x", "y")`. */
#define CHARD_PARAMS(...) ((const char *const[]){__VA_ARGS__, NULL})
/* NULL-terminated exception type names for `.autoretry_for`. */
#define CHARD_NAMES(...) ((const char *const[]){__VA_ARGS__, NULL})

typedef struct {
    const char *name;              /* task name inside the plugin, e.g. "add" */
    chard_task_fn fn;
    const char *const *params;     /* CHARD_PARAMS(...) or NULL for none */
    const char *doc;               /* one line, or NULL */
    /* Defaults (see wit/chard.wit `task-defaults`); unset ones are left to the worker. */
    const char *queue;
    chard_opt time_limit_ms;
    chard_opt soft_time_limit_ms;
    chard_opt memory_limit_mb;
    chard_opt max_retries;
    chard_opt default_retry_delay_ms;
    const char *rate_limit;        /* "10/s", "100/m", "1000/h" */
    const char *const *autoretry_for; /* CHARD_NAMES("ConnectionError") */
    chard_opt retry_backoff_ms;
    chard_opt retry_backoff_max_ms;
    bool retry_jitter;
} chard_task;

/* The plugin's task table: CHARD_TASKS({...}, {...}) defines both. */
extern const chard_task chard_tasks[];
extern const size_t chard_task_count;
#define CHARD_TASKS(...)                                   \
    const chard_task chard_tasks[] = {__VA_ARGS__};         \
    const size_t chard_task_count = sizeof(chard_tasks) / sizeof(chard_tasks[0])

/* ---- Arguments --------------------------------------------------------- */

/* Number of bound arguments (named parameters, then the extra positionals
 * a "*name" parameter collects). */
size_t chard_arg_count(chard_call *call);
/* Argument i as given (NULL when an optional parameter was not given). */
const chard_json *chard_arg(chard_call *call, size_t i);
bool chard_arg_present(chard_call *call, size_t i);
/* Typed accessors: on a missing or mistyped argument they report a
 * TypeError naming the task and parameter, and return false. */
bool chard_arg_int(chard_call *call, size_t i, int64_t *out);
bool chard_arg_double(chard_call *call, size_t i, double *out);
bool chard_arg_bool(chard_call *call, size_t i, bool *out);
bool chard_arg_string(chard_call *call, size_t i, const char **out);
/* An array argument; `len` gets its length. Elements via chard_json_at(). */
bool chard_arg_array(chard_call *call, size_t i, const chard_json **out, size_t *len);
bool chard_arg_object(chard_call *call, size_t i, const chard_json **out);
/* The extra positional arguments (an array; empty unless "*name" is declared). */
const chard_json *chard_var_args(chard_call *call);
/* The extra keyword arguments (an object; empty unless "**name" is declared). */
const chard_json *chard_var_kwargs(chard_call *call);

/* ---- Ending a task ----------------------------------------------------- */

void chard_return_null(chard_call *call);
void chard_return_bool(chard_call *call, bool value);
void chard_return_int(chard_call *call, int64_t value);
/* NaN and infinities are not JSON: they end the task with a TypeError. */
void chard_return_double(chard_call *call, double value);
void chard_return_string(chard_call *call, const char *value);
void chard_return_string_n(chard_call *call, const char *value, size_t len);
/* Return a parsed value unchanged (e.g. an argument). */
void chard_return_value(chard_call *call, const chard_json *value);
/* Return JSON text the task built itself (it is validated). */
void chard_return_json(chard_call *call, const char *json_text);

/* Fail; a Python client re-raises `Exception(message)`. */
void chard_fail(chard_call *call, const char *message);
/* Fail with an exception type, optionally module-qualified:
 * "ValueError", "billing.errors.CardDeclined". */
void chard_fail_as(chard_call *call, const char *exception_type, const char *message);
/* printf-style chard_fail_as (exception_type may be NULL). */
void chard_failf(chard_call *call, const char *exception_type, const char *format, ...)
    __attribute__((format(printf, 3, 4)));
/* Fail with the exception's arguments as a JSON array, so that a Python
 * client re-raises ExpectedException("msg", 42) with both (Celery stores
 * exc.args): chard_fail_with_args(call, "ExpectedException", "msg", "[\"msg\", 42]"). */
void chard_fail_with_args(chard_call *call, const char *exception_type, const char *message, const char *args_json);
/* Refuse the message (Celery's Reject): requeue puts it back on its queue,
 * otherwise it is dropped without a result; reason may be NULL. */
void chard_reject(chard_call *call, bool requeue, const char *reason);
/* Ask the worker to run the job again: countdown_ms < 0 uses the task's
 * default delay; reason may be NULL. */
void chard_retry(chard_call *call, int64_t countdown_ms, const char *reason);
/* Like chard_retry, also overriding the retry budget. */
void chard_retry_max(chard_call *call, int64_t countdown_ms, const char *reason, uint32_t max_retries);
/* Every option of a retry (Celery's self.retry(...)); start from
 * CHARD_RETRY_DEFAULTS and set what you need. */
typedef struct {
    int64_t countdown_ms;      /* < 0: the task's default delay */
    const char *reason;        /* NULL: exc_message */
    int64_t max_retries;       /* < 0: the task's budget */
    /* What the job fails with once no retry is left (Celery's exc=);
     * exc_message NULL: MaxRetriesExceededError. */
    const char *exc_type;
    const char *exc_message;
    const char *exc_args_json;
    const char *expires;       /* ISO-8601: the retried message is discarded after it */
} chard_retry_options;
#define CHARD_RETRY_DEFAULTS ((chard_retry_options){.countdown_ms = -1, .max_retries = -1})
void chard_retry_with(chard_call *call, const chard_retry_options *options);
/* True once the task has returned, failed, asked for a retry or rejected. */
bool chard_done(chard_call *call);

/* ---- The job ----------------------------------------------------------- */

/* What the worker tells the task about its job (Celery's request).
 * Strings are NUL-terminated (NULL when absent); numbers are -1 when absent. */
typedef struct {
    const char *task_id;
    const char *task_name;
    const char *root_id;
    const char *parent_id;
    const char *group_id;
    int64_t group_index;
    uint32_t retries;
    int64_t max_retries;
    const char *eta;
    const char *expires;
    uint8_t priority;
    int64_t time_limit_ms;
    int64_t soft_time_limit_ms;
    int64_t soft_deadline_ms;
    const char *hostname;
    const char *headers; /* JSON object text */
} chard_context;

const chard_context *chard_job(chard_call *call);
/* The task's name as the plugin exports it. */
const char *chard_task_name(chard_call *call);

/* ---- Host -------------------------------------------------------------- */

typedef enum {
    CHARD_TRACE = 0,
    CHARD_DEBUG = 1,
    CHARD_INFO = 2,
    CHARD_WARN = 3,
    CHARD_ERROR = 4,
} chard_level;

/* Structured log line through the worker; fields are key/value string
 * pairs ended by NULL: chard_log(CHARD_INFO, "charged", "card", card, NULL). */
void chard_log(chard_level level, const char *message, ...);
/* Wall-clock time as Unix milliseconds, as the worker sees it. */
uint64_t chard_now_ms(void);
/* True once the job's soft time limit has passed: wind down. */
bool chard_soft_deadline_passed(chard_call *call);

/* ---- Beyond computing (chard_io.c, chard_http.c) ------------------------
 * Each needs a grant in the plugin's manifest (`<plugin>.toml`). Every call
 * returns false after ending the task as FAILURE with the worker's message
 * (for a missing grant it names the key to add): `if (!chard_x(...)) return;`.
 * Strings handed out stay valid until the job ends. */

/* Progress a client polls (Celery's update_state): `progress = true`.
 * chard_update_state(call, "PROGRESS", "{\"done\": 3, \"total\": 10}"). */
bool chard_update_state(chard_call *call, const char *state, const char *meta_json);

/* Celery signatures as JSON text (malloc'd): `send = true` to send them.
 *   chard_signature("math.add", "[2, 2]")
 *   chard_chain(a, b, NULL)            a | b
 *   chard_group(a, b, NULL)            group([a, b])
 *   chard_chord(chard_group(a, b, NULL), body)   (or a JSON array as header) */
char *chard_signature(const char *task, const char *args_json);
char *chard_signature_kw(const char *task, const char *args_json, const char *kwargs_json, bool immutable);
char *chard_chain(const char *first, ...);
char *chard_group(const char *first, ...);
char *chard_chord(const char *header, const char *body);
/* Sends a signature (published with this task's result, only if it
 * succeeds); `task_id` (may be NULL) gets the id a client waits on. */
bool chard_send(chard_call *call, const char *signature_json, const char **task_id);
/* Celery's self.replace(sig): the task ends here (returns null) and the
 * signature runs in its place under its id. Return right after it. */
bool chard_replace(chard_call *call, const char *signature_json);

/* The plugin's key-value store: `keyvalue = true`. Values are bytes;
 * ttl_ms < 0 means no expiry. chard_kv_get sets *value to NULL when absent. */
bool chard_kv_get(chard_call *call, const char *key, const uint8_t **value, size_t *len);
bool chard_kv_set(chard_call *call, const char *key, const void *value, size_t len, int64_t ttl_ms);
bool chard_kv_set_if_absent(chard_call *call, const char *key, const void *value, size_t len, int64_t ttl_ms,
                            bool *stored);
bool chard_kv_delete(chard_call *call, const char *key, bool *existed);
bool chard_kv_exists(chard_call *call, const char *key, bool *exists);
bool chard_kv_incr(chard_call *call, const char *key, int64_t delta, int64_t *value);

/* Outbound HTTP over wasi:http (origins listed under `http`). A request the
 * worker refuses or cannot complete fails the task as ConnectionError. */
typedef struct {
    uint16_t status;
    const char *body;      /* NUL-terminated for convenience; body_len is exact */
    size_t body_len;
    size_t header_count;
    const char *const *header_names;  /* lower case */
    const char *const *header_values;
} chard_http_response;
/* `headers`: NULL, or "name", "value", ..., NULL. `body` may be NULL. */
bool chard_http_request(chard_call *call, const char *method, const char *url, const char *const *headers,
                        const void *body, size_t body_len, chard_http_response *response);
bool chard_http_get(chard_call *call, const char *url, chard_http_response *response);
/* POST `json_text` with content-type application/json. */
bool chard_http_post_json(chard_call *call, const char *url, const char *json_text, chard_http_response *response);
/* The first value of header `name` (any case), or NULL. */
const char *chard_http_header(const chard_http_response *response, const char *name);

#ifdef __cplusplus
}
#endif

#endif /* CHARD_H */
