/* `cio`: what a C task can do beyond computing, one task per capability (the
 * same tasks as `pyio` and `jsio`; HTTP is in `chttp`). Granted in `cio.toml`
 * next to the plugin (see README, "Writing tasks"). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <time.h>

#include "chard.h"

/* Milliseconds on the monotonic clock: durations need no wall-clock grant. */
static uint64_t monotonic_ms(void) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (uint64_t)now.tv_sec * 1000 + (uint64_t)now.tv_nsec / 1000000;
}

static void add(chard_call *call) {
    int64_t x, y;
    if (!chard_arg_int(call, 0, &x) || !chard_arg_int(call, 1, &y)) return;
    chard_return_int(call, x + y);
}

/* `x * factor`: a call may leave `factor` out, and no more. */
static void scale(chard_call *call) {
    int64_t x, factor = 10;
    if (!chard_arg_int(call, 0, &x)) return;
    if (chard_arg_present(call, 1) && !chard_arg_int(call, 1, &factor)) return;
    chard_return_int(call, x * factor);
}

/* Report `steps` PROGRESS states, `step_ms` apart (the worker's clock, no
 * grant needed), so a client polling the result sees them. */
static void progress(chard_call *call) {
    int64_t steps, step_ms;
    if (!chard_arg_int(call, 0, &steps) || !chard_arg_int(call, 1, &step_ms)) return;
    for (int64_t done = 1; done <= steps; done++) {
        char meta[64];
        snprintf(meta, sizeof meta, "{\"done\":%lld,\"total\":%lld}", (long long)done, (long long)steps);
        if (!chard_update_state(call, "PROGRESS", meta)) return;
        uint64_t until = monotonic_ms() + (uint64_t)step_ms;
        while (monotonic_ms() < until) {
        }
    }
    char result[48];
    snprintf(result, sizeof result, "{\"done\":%lld}", (long long)steps);
    chard_return_json(call, result);
}

static void fan_out(chard_call *call) {
    int64_t n;
    if (!chard_arg_int(call, 0, &n)) return;
    size_t cap = 2 + (size_t)n * 40;
    char *ids = malloc(cap);
    strcpy(ids, "[");
    for (int64_t i = 0; i < n; i++) {
        char args[48];
        snprintf(args, sizeof args, "[%lld,%lld]", (long long)i, (long long)i);
        const char *id;
        if (!chard_send(call, chard_signature("cio.add", args), &id)) return;
        char *quoted = chard_json_quote(id);
        if (i) strcat(ids, ",");
        strcat(ids, quoted);
    }
    strcat(ids, "]");
    chard_return_json(call, ids);
}

static void send_then_fail(chard_call *call) {
    if (!chard_send(call, chard_signature("cio.add", "[1,1]"), NULL)) return;
    chard_fail_as(call, "ValueError", "failed after sending");
}

/* Becomes `add(x, 1) | add(10)`: the result is x + 11. */
static void replace_with_chain(chard_call *call) {
    int64_t x;
    if (!chard_arg_int(call, 0, &x)) return;
    char args[32];
    snprintf(args, sizeof args, "[%lld,1]", (long long)x);
    chard_replace(call, chard_chain(chard_signature("cio.add", args), chard_signature("cio.add", "[10]"), NULL));
}

/* Becomes `group(add(0, 0), add(1, 1), add(2, 2))`: the result is [0, 2, 4]. */
static void replace_with_group(chard_call *call) {
    chard_replace(call, chard_group(chard_signature("cio.add", "[0,0]"), chard_signature("cio.add", "[1,1]"),
                                    chard_signature("cio.add", "[2,2]"), NULL));
}

/* Does its work once per `order_id`, however often it is delivered. */
static void once(chard_call *call) {
    const char *order;
    if (!chard_arg_string(call, 0, &order)) return;
    char done_key[256], runs_key[256], result[512];
    snprintf(done_key, sizeof done_key, "done:%s", order);
    snprintf(runs_key, sizeof runs_key, "runs:%s", order);
    char *quoted = chard_json_quote(order);
    bool stored;
    if (!chard_kv_set_if_absent(call, done_key, "1", 1, 3600 * 1000, &stored)) return;
    if (!stored) {
        const uint8_t *runs;
        size_t len;
        if (!chard_kv_get(call, runs_key, &runs, &len)) return;
        snprintf(result, sizeof result, "{\"order\":%s,\"ran\":false,\"runs\":%.*s}", quoted, (int)len,
                 runs ? (const char *)runs : "null");
        chard_return_json(call, result);
        return;
    }
    int64_t runs;
    if (!chard_kv_incr(call, "runs", 1, &runs)) return;
    char text[32];
    int n = snprintf(text, sizeof text, "%lld", (long long)runs);
    if (!chard_kv_set(call, runs_key, text, (size_t)n, -1)) return;
    snprintf(result, sizeof result, "{\"order\":%s,\"ran\":true,\"runs\":%lld}", quoted, (long long)runs);
    chard_return_json(call, result);
}

/* The exception args `[message, code]` from the task's two arguments, as
 * JSON text; NULL (the call already failed) when the message is missing. */
static char *message_and_code(chard_call *call, const char **message) {
    if (!chard_arg_string(call, 0, message)) return NULL;
    char *code = chard_json_text(chard_arg(call, 1));
    char *quoted = chard_json_quote(*message);
    char *args = malloc(strlen(quoted) + strlen(code) + 4);
    sprintf(args, "[%s,%s]", quoted, code);
    return args;
}

/* Fails with ExpectedException(message, code): a Python client re-raises it
 * with both arguments. */
static void fail_with_args(chard_call *call) {
    const char *message;
    char *args = message_and_code(call, &message);
    if (!args) return;
    chard_fail_with_args(call, "ExpectedException", message, args);
}

/* Retries at once with no retry left: the job fails with `exc`, which a
 * client re-raises with both arguments. */
static void retry_until_out(chard_call *call) {
    const char *message;
    char *args = message_and_code(call, &message);
    if (!args) return;
    chard_retry_options options = CHARD_RETRY_DEFAULTS;
    options.countdown_ms = 0;
    options.max_retries = 0;
    options.exc_type = "ExpectedException";
    options.exc_message = message;
    options.exc_args_json = args;
    chard_retry_with(call, &options);
}

/* Refuses its message: it is dropped and no result is stored. */
static void reject_it(chard_call *call) { chard_reject(call, false, "not for us"); }

CHARD_TASKS(
    {.name = "add", .fn = add, .params = CHARD_PARAMS("x", "y")},
    {.name = "scale", .fn = scale, .params = CHARD_PARAMS("x", "factor?")},
    {.name = "progress", .fn = progress, .params = CHARD_PARAMS("steps", "step_ms"), .doc = "Report PROGRESS states."},
    {.name = "fan_out", .fn = fan_out, .params = CHARD_PARAMS("n"), .doc = "Send n additions."},
    {.name = "send_then_fail", .fn = send_then_fail, .doc = "Send, then fail: nothing is sent."},
    {.name = "replace_with_chain", .fn = replace_with_chain, .params = CHARD_PARAMS("x")},
    {.name = "replace_with_group", .fn = replace_with_group},
    {.name = "once", .fn = once, .params = CHARD_PARAMS("order_id"), .doc = "Run once per order id."},
    {.name = "fail_with_args", .fn = fail_with_args, .params = CHARD_PARAMS("message", "code")},
    {.name = "retry_until_out", .fn = retry_until_out, .params = CHARD_PARAMS("message", "code")},
    {.name = "reject_it", .fn = reject_it},
);
