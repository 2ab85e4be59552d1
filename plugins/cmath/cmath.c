/* `cmath`: the `math` plugin's tasks, written in C. */
#include "chard.h"

/* x + y: integers stay integers (wrapping like the Rust plugin), any float
 * makes a float. */
static void add(chard_call *call) {
    int64_t a, b;
    if (chard_json_int(chard_arg(call, 0), &a) && chard_json_int(chard_arg(call, 1), &b)) {
        chard_return_int(call, (int64_t)((uint64_t)a + (uint64_t)b));
        return;
    }
    double x, y;
    if (!chard_arg_double(call, 0, &x) || !chard_arg_double(call, 1, &y)) return;
    chard_return_double(call, x + y);
}

static void mul(chard_call *call) {
    int64_t a, b;
    if (chard_json_int(chard_arg(call, 0), &a) && chard_json_int(chard_arg(call, 1), &b)) {
        chard_return_int(call, (int64_t)((uint64_t)a * (uint64_t)b));
        return;
    }
    double x, y;
    if (!chard_arg_double(call, 0, &x) || !chard_arg_double(call, 1, &y)) return;
    chard_return_double(call, x * y);
}

static void xsum(chard_call *call) {
    const chard_json *numbers;
    size_t len;
    if (!chard_arg_array(call, 0, &numbers, &len)) return;
    double total = 0.0;
    for (size_t i = 0; i < len; i++) {
        double n;
        if (!chard_json_double(chard_json_at(numbers, i), &n)) {
            chard_failf(call, "TypeError", "xsum: numbers[%zu]: expected a number, got %s", i,
                        chard_json_type_name(chard_json_at(numbers, i)));
            return;
        }
        total += n;
    }
    chard_return_double(call, total);
}

static void fail(chard_call *call) {
    const char *message;
    if (!chard_arg_string(call, 0, &message)) return;
    chard_fail(call, message); /* a Python client re-raises Exception(message) */
}

CHARD_TASKS(
    {.name = "add", .fn = add, .params = CHARD_PARAMS("x", "y"), .doc = "Add two numbers."},
    {.name = "mul", .fn = mul, .params = CHARD_PARAMS("x", "y"), .doc = "Multiply two numbers."},
    {.name = "xsum", .fn = xsum, .params = CHARD_PARAMS("numbers"), .doc = "Sum a list of numbers."},
    {.name = "fail", .fn = fail, .params = CHARD_PARAMS("message"), .doc = "Fail with `message`."},
);
