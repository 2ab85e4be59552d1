/* `{{name}}`: a Chard plugin. Each function listed in CHARD_TASKS is a task,
 * served as `{{name}}.<name>`. Arguments arrive as JSON (chard_arg_* read
 * them and fail the task with a TypeError when they do not fit); results
 * go back with chard_return_*, errors with chard_fail/chard_failf. */
#include <stdio.h>

#include "chard.h"

/* x + y, as integers. */
static void add(chard_call *call) {
    int64_t x, y;
    if (!chard_json_int(chard_arg(call, 0), &x) || !chard_json_int(chard_arg(call, 1), &y)) {
        chard_failf(call, "TypeError", "add: x and y must be integers");
        return;
    }
    chard_return_int(call, x + y);
}

/* "Hello, <name>!" */
static void hello(chard_call *call) {
    const char *name;
    if (!chard_arg_string(call, 0, &name)) return;
    char greeting[256];
    snprintf(greeting, sizeof greeting, "Hello, %s!", name);
    chard_return_string(call, greeting);
}

CHARD_TASKS(
    {.name = "add", .fn = add, .params = CHARD_PARAMS("x", "y"), .doc = "Add two integers."},
    {.name = "hello", .fn = hello, .params = CHARD_PARAMS("name"), .doc = "Greet someone by name."},
);
