/*
 * chard_io.c: what a C task can do beyond computing, on the worker's imports
 * `chard:task/progress`, `canvas` and `keyvalue` (each granted in the
 * plugin's manifest).
 *
 * Every call follows the SDK's one convention for things that can go wrong:
 * it returns false after ending the task as FAILURE with the worker's
 * message (which, for a capability the manifest does not grant, names the
 * key to add), so a task writes `if (!chard_send(...)) return;`.
 *
 * Signatures are Celery's signature dicts as JSON text; the builders below
 * write them (malloc'd strings that live until the job ends, like every
 * other allocation: each job runs in a fresh instance).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chard.h"
#include "plugin.h"

static plugin_string_t wit(const char *s) {
    plugin_string_t out;
    plugin_string_set(&out, s);
    return out;
}

/* Ends the task with the worker's refusal and returns false. */
static bool refused(chard_call *call, plugin_string_t *err) {
    char *message = malloc(err->len + 1);
    memcpy(message, err->ptr, err->len);
    message[err->len] = '\0';
    chard_fail(call, message);
    plugin_string_free(err);
    return false;
}

/* ---- Progress ------------------------------------------------------------ */

bool chard_update_state(chard_call *call, const char *state, const char *meta_json) {
    plugin_string_t s = wit(state), meta = wit(meta_json ? meta_json : "null"), err;
    return chard_task_progress_update_state(&s, &meta, &err) || refused(call, &err);
}

/* ---- Sending and replacing tasks ---------------------------------------- */

/* printf into a malloc'd string. */
static char *format(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *format(const char *fmt, ...) {
    va_list args, copy;
    va_start(args, fmt);
    va_copy(copy, args);
    int n = vsnprintf(NULL, 0, fmt, copy);
    va_end(copy);
    char *out = malloc((size_t)(n < 0 ? 0 : n) + 1);
    vsnprintf(out, (size_t)(n < 0 ? 0 : n) + 1, fmt, args);
    va_end(args);
    return out;
}

static char *signature_of(const char *task, const char *args_json, const char *kwargs_json, const char *subtask_type,
                          bool immutable) {
    char *name = chard_json_quote(task);
    char *type = subtask_type ? chard_json_quote(subtask_type) : NULL;
    char *out = format("{\"task\":%s,\"args\":%s,\"kwargs\":%s,\"options\":{},\"subtask_type\":%s,\"immutable\":%s}",
                       name, args_json && *args_json ? args_json : "[]", kwargs_json && *kwargs_json ? kwargs_json : "{}",
                       type ? type : "null", immutable ? "true" : "false");
    free(name);
    free(type);
    return out;
}

char *chard_signature(const char *task, const char *args_json) { return signature_of(task, args_json, NULL, NULL, false); }

char *chard_signature_kw(const char *task, const char *args_json, const char *kwargs_json, bool immutable) {
    return signature_of(task, args_json, kwargs_json, NULL, immutable);
}

/* The JSON texts `first`, then the variadic ones up to NULL. */
static const char **collect(const char *first, va_list rest, size_t *count) {
    size_t cap = 8;
    const char **items = malloc(cap * sizeof *items);
    *count = 0;
    for (const char *item = first; item; item = va_arg(rest, const char *)) {
        if (*count == cap) items = realloc(items, (cap *= 2) * sizeof *items);
        items[(*count)++] = item;
    }
    return items;
}

/* The steps of a plain chain (no options of its own) as "x,y", else NULL. */
static char *chain_steps(const char *text) {
    const chard_json *sig = chard_json_parse(text, strlen(text), NULL);
    const char *type = chard_json_string(chard_json_get(sig, "subtask_type"), NULL);
    if (!type || strcmp(type, "chain") != 0 || chard_json_len(chard_json_get(sig, "options")) != 0) return NULL;
    char *steps = chard_json_text(chard_json_get(chard_json_get(sig, "kwargs"), "tasks"));
    if (!steps || steps[0] != '[') return NULL;
    steps[strlen(steps) - 1] = '\0';
    memmove(steps, steps + 1, strlen(steps));
    return steps;
}

/* "[a,b,...]"; with `flatten`, a plain chain among the items gives its
 * steps instead (as Celery's `|` does). */
static char *json_list(const char **items, size_t count, bool flatten) {
    size_t len = 1, cap = 64;
    char *out = malloc(cap);
    out[0] = '[';
    for (size_t i = 0; i < count; i++) {
        char *steps = flatten ? chain_steps(items[i]) : NULL;
        const char *text = steps ? steps : items[i];
        size_t n = strlen(text);
        if (n == 0) continue;
        while (len + n + 3 > cap) cap *= 2;
        out = realloc(out, cap);
        if (len > 1) out[len++] = ',';
        memcpy(out + len, text, n);
        len += n;
        free(steps);
    }
    out[len++] = ']';
    out[len] = '\0';
    return out;
}

static char *canvas_of(const char *task, const char *subtask_type, const char *kwargs_format, const char *list,
                       const char *body) {
    char *kwargs = format(kwargs_format, list, body);
    char *out = signature_of(task, "[]", kwargs, subtask_type, false);
    free(kwargs);
    return out;
}

/* A chain (steps flattened) or a group of the JSON texts `first`, ... NULL. */
static char *sequence(bool chain, const char *first, va_list rest) {
    size_t count;
    const char **items = collect(first, rest, &count);
    char *list = json_list(items, count, chain);
    char *out = canvas_of(chain ? "celery.chain" : "celery.group", chain ? "chain" : "group", "{\"tasks\":%s%s}", list, "");
    free(items);
    free(list);
    return out;
}

char *chard_chain(const char *first, ...) {
    va_list rest;
    va_start(rest, first);
    char *out = sequence(true, first, rest);
    va_end(rest);
    return out;
}

char *chard_group(const char *first, ...) {
    va_list rest;
    va_start(rest, first);
    char *out = sequence(false, first, rest);
    va_end(rest);
    return out;
}

char *chard_chord(const char *header, const char *body) {
    /* `header`: a group (its members) or a JSON array of signatures. */
    const chard_json *parsed = chard_json_parse(header, strlen(header), NULL);
    char *members = chard_json_type_of(parsed) == CHARD_JSON_ARRAY
                        ? chard_json_text(parsed)
                        : chard_json_text(chard_json_get(chard_json_get(parsed, "kwargs"), "tasks"));
    char *out = canvas_of("celery.chord", "chord", "{\"header\":%s,\"body\":%s,\"kwargs\":{}}", members ? members : "[]",
                          body);
    free(members);
    return out;
}

bool chard_send(chard_call *call, const char *signature_json, const char **task_id) {
    plugin_string_t sig = wit(signature_json), id, err;
    if (!chard_task_canvas_send(&sig, &id, &err)) return refused(call, &err);
    if (task_id) {
        char *text = malloc(id.len + 1);
        memcpy(text, id.ptr, id.len);
        text[id.len] = '\0';
        *task_id = text;
    }
    plugin_string_free(&id);
    return true;
}

bool chard_replace(chard_call *call, const char *signature_json) {
    plugin_string_t sig = wit(signature_json), err;
    if (!chard_task_canvas_replace(&sig, &err)) return refused(call, &err);
    chard_return_null(call); /* the task ends; its value is the replacement's */
    return true;
}

/* ---- Key-value ------------------------------------------------------------ */

static plugin_list_u8_t bytes(const void *value, size_t len) {
    return (plugin_list_u8_t){(uint8_t *)value, len};
}

bool chard_kv_get(chard_call *call, const char *key, const uint8_t **value, size_t *len) {
    plugin_string_t k = wit(key), err;
    plugin_option_list_u8_t got;
    if (!chard_task_keyvalue_get(&k, &got, &err)) return refused(call, &err);
    *value = got.is_some ? got.val.ptr : NULL; /* kept until the job ends */
    if (len) *len = got.is_some ? got.val.len : 0;
    return true;
}

bool chard_kv_set(chard_call *call, const char *key, const void *value, size_t len, int64_t ttl_ms) {
    plugin_string_t k = wit(key), err;
    plugin_list_u8_t v = bytes(value, len);
    uint64_t ttl = (uint64_t)ttl_ms;
    return chard_task_keyvalue_set(&k, &v, ttl_ms >= 0 ? &ttl : NULL, &err) || refused(call, &err);
}

bool chard_kv_set_if_absent(chard_call *call, const char *key, const void *value, size_t len, int64_t ttl_ms,
                            bool *stored) {
    plugin_string_t k = wit(key), err;
    plugin_list_u8_t v = bytes(value, len);
    uint64_t ttl = (uint64_t)ttl_ms;
    return chard_task_keyvalue_set_if_absent(&k, &v, ttl_ms >= 0 ? &ttl : NULL, stored, &err) || refused(call, &err);
}

bool chard_kv_delete(chard_call *call, const char *key, bool *existed) {
    plugin_string_t k = wit(key), err;
    bool ignored;
    return chard_task_keyvalue_delete(&k, existed ? existed : &ignored, &err) || refused(call, &err);
}

bool chard_kv_exists(chard_call *call, const char *key, bool *exists) {
    plugin_string_t k = wit(key), err;
    return chard_task_keyvalue_exists(&k, exists, &err) || refused(call, &err);
}

bool chard_kv_incr(chard_call *call, const char *key, int64_t delta, int64_t *value) {
    plugin_string_t k = wit(key), err;
    int64_t ignored;
    return chard_task_keyvalue_incr(&k, delta, value ? value : &ignored, &err) || refused(call, &err);
}
