/* Unit tests of the C SDK, run natively by sdk/c/test/run.sh. Each test runs
 * a task through `exports_chard_task_tasks_run`, as the worker would, and
 * compares the JSON result or the failure with the expected text. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chard.h"
#include "plugin.h"

/* ---- The host imports, stubbed ---------------------------------------- */

void __wasm_import_chard_task_host_log(int32_t level, uint8_t *message, size_t message_len, uint8_t *fields,
                                       size_t fields_len) {}
int64_t __wasm_import_chard_task_host_now_ms(void) { return 0; }
/* Defined by the component type object in a wasm build. */
void __component_type_object_force_link_plugin(void) {}

/* ---- Tasks under test ------------------------------------------------- */

static void describe(chard_call *call, size_t i, char *out) {
    const chard_json *v = chard_arg(call, i);
    strcat(out, v == NULL ? "missing" : chard_json_type_name(v));
}

/* [state of x, state of limit?, extra positionals, extra keywords] */
static void patch(chard_call *call) {
    char text[512] = "[\"";
    describe(call, 0, text);
    strcat(text, "\",\"");
    describe(call, 1, text);
    strcat(text, "\",");
    size_t n = chard_json_len(chard_var_args(call));
    snprintf(text + strlen(text), sizeof text - strlen(text), "%zu,%zu,%zu]", n,
             chard_json_len(chard_var_kwargs(call)), chard_arg_count(call));
    chard_return_json(call, text);
}

static void rest(chard_call *call) {
    const chard_json *extra = chard_var_args(call);
    const chard_json *options = chard_var_kwargs(call);
    char text[256];
    const char *first_key = chard_json_key_at(options, 0);
    int64_t first = 0;
    chard_json_int(chard_json_at(extra, 0), &first);
    snprintf(text, sizeof text, "[%lld,\"%s\"]", (long long)first, first_key ? first_key : "");
    chard_return_json(call, text);
}

static void add(chard_call *call) {
    int64_t x, y;
    if (!chard_arg_int(call, 0, &x) || !chard_arg_int(call, 1, &y)) return;
    chard_return_int(call, x + y);
}

static void fails_with_args(chard_call *call) { chard_fail_with_args(call, "ExpectedException", "msg", "[\"msg\", 42]"); }
static void fails_with_bad_args(chard_call *call) { chard_fail_with_args(call, "E", "msg", "{}"); }
static void rejects(chard_call *call) { chard_reject(call, true, "poison"); }
static void retries(chard_call *call) {
    chard_retry_options options = CHARD_RETRY_DEFAULTS;
    options.countdown_ms = 1500;
    options.exc_type = "ExpectedException";
    options.exc_message = "down";
    options.exc_args_json = "[\"down\", 503]";
    options.expires = "2030-01-01T00:00:00+00:00";
    chard_retry_with(call, &options);
    chard_return_int(call, 1); /* ignored: the first ending wins */
}

CHARD_TASKS(
    {.name = "fails_with_args", .fn = fails_with_args},
    {.name = "fails_with_bad_args", .fn = fails_with_bad_args},
    {.name = "rejects", .fn = rejects},
    {.name = "retries", .fn = retries},
    {.name = "patch", .fn = patch, .params = CHARD_PARAMS("x", "limit?", "*more", "**options")},
    {.name = "rest", .fn = rest, .params = CHARD_PARAMS("*more", "**options")},
    {.name = "add", .fn = add, .params = CHARD_PARAMS("x", "y")},
);

/* ---- Harness ------------------------------------------------------------ */

static int failures;

static void string_of(plugin_string_t *out, const char *text) { plugin_string_dup(out, text); }

/* Runs `name` and returns "ok <json>" or "<exception type>: <message>". */
static char *run(const char *name, const char *args, const char *kwargs) {
    plugin_string_t n, a, k, ret;
    string_of(&n, name);
    string_of(&a, args);
    string_of(&k, kwargs);
    exports_chard_task_tasks_context_t context;
    memset(&context, 0, sizeof context);
    string_of(&context.task_id, "id");
    string_of(&context.task_name, name);
    string_of(&context.hostname, "test");
    string_of(&context.headers, "{}");
    exports_chard_task_tasks_task_error_t err;
    memset(&err, 0, sizeof err);
    char *out = malloc(1024);
    if (exports_chard_task_tasks_run(&n, &a, &k, &context, &ret, &err)) {
        snprintf(out, 1024, "ok %.*s", (int)ret.len, (const char *)ret.ptr);
    } else if (err.tag == CHARD_TASK_TYPES_TASK_ERROR_FAILED) {
        chard_task_types_failure_t *f = &err.val.failed;
        snprintf(out, 1024, "%.*s: %.*s%s%.*s", (int)f->exception_type.val.len, (const char *)f->exception_type.val.ptr,
                 (int)f->message.len, (const char *)f->message.ptr, f->args_json.is_some ? " args=" : "",
                 f->args_json.is_some ? (int)f->args_json.val.len : 0, (const char *)f->args_json.val.ptr);
    } else if (err.tag == CHARD_TASK_TYPES_TASK_ERROR_REJECT) {
        snprintf(out, 1024, "reject requeue=%d reason=%.*s", err.val.reject.requeue,
                 (int)err.val.reject.reason.val.len, (const char *)err.val.reject.reason.val.ptr);
    } else {
        chard_task_types_retry_request_t *r = &err.val.retry;
        snprintf(out, 1024, "retry %llu %.*s exc=%.*s: %.*s args=%.*s expires=%.*s", (unsigned long long)r->countdown_ms.val,
                 (int)r->reason.val.len, (const char *)r->reason.val.ptr, (int)r->exc.val.exception_type.val.len,
                 (const char *)r->exc.val.exception_type.val.ptr, (int)r->exc.val.message.len,
                 (const char *)r->exc.val.message.ptr, (int)r->exc.val.args_json.val.len,
                 (const char *)r->exc.val.args_json.val.ptr, (int)r->expires.val.len, (const char *)r->expires.val.ptr);
    }
    return out;
}

static void expect(const char *name, const char *args, const char *kwargs, const char *want) {
    char *got = run(name, args, kwargs);
    if (strcmp(got, want) != 0) {
        fprintf(stderr, "FAIL %s(%s, %s):\n  got  %s\n  want %s\n", name, args, kwargs, got, want);
        failures++;
    }
    free(got);
}

static void test_missing_versus_null(void) {
    expect("patch", "[1]", "{}", "ok [\"number\",\"missing\",0,0,2]");
    expect("patch", "[1, null]", "{}", "ok [\"number\",\"null\",0,0,2]");
    expect("patch", "[1]", "{\"limit\": null}", "ok [\"number\",\"null\",0,0,2]");
    expect("patch", "[]", "{\"limit\": 1}", "TypeError: patch: missing required argument 'x'");
}

static void test_var_args(void) {
    expect("patch", "[1, 2, 3, 4]", "{\"a\": 1, \"b\": null}", "ok [\"number\",\"number\",2,2,4]");
    expect("patch", "[]", "{\"x\": 1, \"more\": 2}", "ok [\"number\",\"missing\",0,1,2]");
    expect("rest", "[7, 8]", "{\"k\": true}", "ok [7,\"k\"]");
    expect("rest", "[]", "{}", "ok [0,\"\"]");
    expect("patch", "[1]", "{\"x\": 2}", "TypeError: patch: got multiple values for argument 'x'");
    /* Without "*name" / "**name" the extras are still errors. */
    expect("add", "[1, 2, 3]", "{}", "TypeError: add: expected 2 arguments (x, y), got 3");
    expect("add", "[1, 2]", "{\"z\": 3}", "TypeError: add: got an unexpected keyword argument 'z'");
    expect("add", "[1, 2]", "{}", "ok 3");
}

static void test_endings(void) {
    expect("fails_with_args", "[]", "{}", "ExpectedException: msg args=[\"msg\", 42]");
    expect("fails_with_bad_args", "[]", "{}", "TypeError: fails_with_bad_args: exception args must be a JSON array, got object");
    expect("rejects", "[]", "{}", "reject requeue=1 reason=poison");
    expect("retries", "[]", "{}",
           "retry 1500 down exc=ExpectedException: down args=[\"down\", 503] expires=2030-01-01T00:00:00+00:00");
}

static void test_params_listed(void) {
    exports_chard_task_tasks_list_task_info_t list;
    exports_chard_task_tasks_list_tasks(&list);
    /* In Python's notation, as declared: the worker checks calls with it. */
    if (list.len != 7 || list.ptr[4].params.len != 4 || list.ptr[5].params.len != 2) {
        fprintf(stderr, "FAIL list-tasks: params of patch/rest are %zu/%zu, want 4/2\n", list.ptr[4].params.len,
                list.ptr[5].params.len);
        failures++;
        return;
    }
    const char *want[] = {"x", "limit?", "*more", "**options"};
    for (size_t i = 0; i < 4; i++) {
        plugin_string_t *got = &list.ptr[4].params.ptr[i];
        if (got->len != strlen(want[i]) || memcmp(got->ptr, want[i], got->len) != 0) {
            fprintf(stderr, "FAIL list-tasks: patch param %zu is %.*s, want %s\n", i, (int)got->len, (const char *)got->ptr, want[i]);
            failures++;
        }
    }
}

static void expect_text(const char *what, const char *got, const char *want) {
    if (strcmp(got, want) != 0) {
        fprintf(stderr, "FAIL %s:\n  got  %s\n  want %s\n", what, got, want);
        failures++;
    }
}

static void test_signature_builders(void) {
    const char *add = chard_signature("math.add", "[2, 2]");
    expect_text("signature", add,
                "{\"task\":\"math.add\",\"args\":[2, 2],\"kwargs\":{},\"options\":{},\"subtask_type\":null,"
                "\"immutable\":false}");
    const char *mul = chard_signature_kw("math.mul", "[10]", "{\"z\": 1}", true);
    expect_text("signature_kw", mul,
                "{\"task\":\"math.mul\",\"args\":[10],\"kwargs\":{\"z\": 1},\"options\":{},\"subtask_type\":null,"
                "\"immutable\":true}");
    /* A chain inside a chain is flattened; every builder gives valid JSON. */
    const char *chain = chard_chain(chard_chain(add, mul, NULL), add, NULL);
    const chard_json *parsed = chard_json_parse(chain, strlen(chain), NULL);
    const chard_json *steps = chard_json_get(chard_json_get(parsed, "kwargs"), "tasks");
    if (!parsed || chard_json_len(steps) != 3 ||
        strcmp(chard_json_string(chard_json_get(parsed, "subtask_type"), NULL), "chain") != 0 ||
        strcmp(chard_json_string(chard_json_get(chard_json_at(steps, 1), "task"), NULL), "math.mul") != 0) {
        fprintf(stderr, "FAIL chain: %s\n", chain);
        failures++;
    }
    const char *group = chard_group(add, mul, NULL);
    const char *chord = chard_chord(group, chard_signature("math.xsum", NULL));
    parsed = chard_json_parse(chord, strlen(chord), NULL);
    const chard_json *kwargs = chard_json_get(parsed, "kwargs");
    if (!parsed || chard_json_len(chard_json_get(kwargs, "header")) != 2 ||
        strcmp(chard_json_string(chard_json_get(chard_json_get(kwargs, "body"), "task"), NULL), "math.xsum") != 0 ||
        strcmp(chard_json_string(chard_json_get(parsed, "task"), NULL), "celery.chord") != 0) {
        fprintf(stderr, "FAIL chord: %s\n", chord);
        failures++;
    }
    const char *listed = chard_chord("[]", add);
    if (!chard_json_parse(listed, strlen(listed), NULL)) {
        fprintf(stderr, "FAIL chord from a list: %s\n", listed);
        failures++;
    }
    expect_text("quote", chard_json_quote("a\"b\n\u00e9"), "\"a\\\"b\\n\u00e9\"");
}

int main(void) {
    test_signature_builders();
    test_endings();
    test_missing_versus_null();
    test_var_args();
    test_params_listed();
    if (failures) {
        fprintf(stderr, "%d failure(s)\n", failures);
        return 1;
    }
    printf("C SDK: all tests passed\n");
    return 0;
}
