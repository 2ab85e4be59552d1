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

CHARD_TASKS(
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
        snprintf(out, 1024, "%.*s: %.*s", (int)err.val.failed.exception_type.val.len,
                 (const char *)err.val.failed.exception_type.val.ptr, (int)err.val.failed.message.len,
                 (const char *)err.val.failed.message.ptr);
    } else {
        snprintf(out, 1024, "retry");
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

static void test_params_listed(void) {
    exports_chard_task_tasks_list_task_info_t list;
    exports_chard_task_tasks_list_tasks(&list);
    /* The var parameters are not named parameters. */
    if (list.len != 3 || list.ptr[0].params.len != 2 || list.ptr[1].params.len != 0) {
        fprintf(stderr, "FAIL list-tasks: params of patch/rest are %zu/%zu, want 2/0\n", list.ptr[0].params.len,
                list.ptr[1].params.len);
        failures++;
    }
}

int main(void) {
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
