/* `chttp`: outbound HTTP from a C task (the same tasks as `pyhttp` and
 * `jshttp`); origins granted under `http` in `chttp.toml`. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chard.h"

static void add(chard_call *call) {
    int64_t x, y;
    if (!chard_arg_int(call, 0, &x) || !chard_arg_int(call, 1, &y)) return;
    chard_return_int(call, x + y);
}

/* {"status": <status>, "body": <the JSON body>} */
static void return_response(chard_call *call, const chard_http_response *response) {
    const char *error = NULL;
    const chard_json *body = chard_json_parse(response->body, response->body_len, &error);
    if (!body) {
        chard_failf(call, "ValueError", "the response is not JSON: %s", error);
        return;
    }
    char *body_text = chard_json_text(body);
    size_t n = strlen(body_text) + 64;
    char *text = malloc(n);
    snprintf(text, n, "{\"status\":%u,\"body\":%s}", response->status, body_text);
    chard_return_json(call, text);
}

static void get_json(chard_call *call) {
    const char *url;
    chard_http_response response;
    if (!chard_arg_string(call, 0, &url) || !chard_http_get(call, url, &response)) return;
    return_response(call, &response);
}

static void post_json(chard_call *call) {
    const char *url;
    chard_http_response response;
    if (!chard_arg_string(call, 0, &url)) return;
    char *payload = chard_json_text(chard_arg(call, 1));
    if (!chard_http_post_json(call, url, payload, &response)) return;
    return_response(call, &response);
}

CHARD_TASKS(
    {.name = "add", .fn = add, .params = CHARD_PARAMS("x", "y")},
    {.name = "get_json", .fn = get_json, .params = CHARD_PARAMS("url"), .doc = "GET a URL: status and JSON body."},
    {.name = "post_json", .fn = post_json, .params = CHARD_PARAMS("url", "payload"), .doc = "POST JSON to a URL."},
);
