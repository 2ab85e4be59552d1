/*
 * chard_http.c: a minimal HTTP client for C tasks over the standard
 * `wasi:http/outgoing-handler` (the worker does TLS, connection pooling and
 * the time limits, and allows only the origins the manifest grants).
 *
 * One blocking call per request, the whole body read into memory (the worker
 * caps its size). The order of the WASI calls follows the interface's rules:
 * a child resource (a stream) is dropped before its parent (a body), the
 * outgoing body is finished after the request is handed over, and the
 * response is taken once its pollable is ready.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "chard.h"
#include "plugin.h"

#define WRITE_CHUNK 4096 /* the most blocking-write-and-flush takes at once */
#define READ_CHUNK 65536

static const char *const ERROR_NAMES[] = {
    "DNS timeout", "DNS error", "destination not found", "destination unavailable", "destination IP prohibited",
    "destination IP unroutable", "connection refused", "connection terminated", "connection timeout",
    "connection read timeout", "connection write timeout", "connection limit reached", "TLS protocol error",
    "TLS certificate error", "TLS alert received", "HTTP request denied", "HTTP request length required",
    "HTTP request body size", "HTTP request method invalid", "HTTP request URI invalid", "HTTP request URI too long",
    "HTTP request header section size", "HTTP request header size", "HTTP request trailer section size",
    "HTTP request trailer size", "HTTP response incomplete", "HTTP response header section size",
    "HTTP response header size", "HTTP response body size", "HTTP response trailer section size",
    "HTTP response trailer size", "HTTP response transfer coding", "HTTP response content coding",
    "HTTP response timeout", "HTTP upgrade failed", "HTTP protocol error", "loop detected", "configuration error",
    "internal error",
};

/* Fails the task with a WASI error code (the worker's own message when it
 * gave one, e.g. for an origin that is not granted) and returns false. */
static bool http_failed(chard_call *call, const char *method, const char *url, const wasi_http_types_error_code_t *code) {
    const plugin_option_string_t *text = NULL;
    if (code->tag == WASI_HTTP_TYPES_ERROR_CODE_INTERNAL_ERROR) text = &code->val.internal_error;
    if (code->tag == WASI_HTTP_TYPES_ERROR_CODE_HTTP_RESPONSE_TRANSFER_CODING)
        text = &code->val.http_response_transfer_coding;
    if (text && text->is_some) {
        chard_failf(call, "ConnectionError", "%s %s: %.*s", method, url, (int)text->val.len, (const char *)text->val.ptr);
    } else {
        size_t n = sizeof ERROR_NAMES / sizeof ERROR_NAMES[0];
        chard_failf(call, "ConnectionError", "%s %s: %s", method, url, code->tag < n ? ERROR_NAMES[code->tag] : "error");
    }
    return false;
}

static bool method_of(const char *name, wasi_http_types_method_t *out) {
    static const char *const names[] = {"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"};
    for (uint8_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (strcmp(name, names[i]) == 0) {
            out->tag = i;
            return true;
        }
    }
    out->tag = WASI_HTTP_TYPES_METHOD_OTHER;
    plugin_string_set(&out->val.other, name);
    return true;
}

/* "scheme://authority/path?query" -> its parts (pointers into copies). */
static bool split_url(const char *url, bool *https, char **authority, char **path) {
    const char *rest;
    if (strncmp(url, "http://", 7) == 0) {
        *https = false;
        rest = url + 7;
    } else if (strncmp(url, "https://", 8) == 0) {
        *https = true;
        rest = url + 8;
    } else {
        return false;
    }
    size_t n = strcspn(rest, "/?#");
    if (n == 0) return false;
    *authority = strndup(rest, n);
    const char *tail = rest + n;
    size_t tail_len = strcspn(tail, "#");
    if (tail_len == 0 || tail[0] != '/') {
        *path = malloc(tail_len + 2);
        (*path)[0] = '/';
        memcpy(*path + 1, tail, tail_len);
        (*path)[tail_len + 1] = '\0';
    } else {
        *path = strndup(tail, tail_len);
    }
    return true;
}

static bool write_body(wasi_http_types_own_outgoing_body_t body, const void *data, size_t len) {
    wasi_http_types_own_output_stream_t stream;
    if (!wasi_http_types_method_outgoing_body_write(wasi_http_types_borrow_outgoing_body(body), &stream)) return false;
    bool ok = true;
    for (size_t at = 0; ok && at < len; at += WRITE_CHUNK) {
        size_t n = len - at < WRITE_CHUNK ? len - at : WRITE_CHUNK;
        plugin_list_u8_t chunk = {(uint8_t *)data + at, n};
        wasi_io_streams_stream_error_t err;
        ok = wasi_io_streams_method_output_stream_blocking_write_and_flush(wasi_io_streams_borrow_output_stream(stream),
                                                                          &chunk, &err);
    }
    wasi_io_streams_output_stream_drop_own(stream); /* before the body is finished */
    return ok;
}

static bool read_response(chard_call *call, const char *url, wasi_http_types_own_incoming_response_t incoming,
                          chard_http_response *out) {
    wasi_http_types_borrow_incoming_response_t response = wasi_http_types_borrow_incoming_response(incoming);
    out->status = wasi_http_types_method_incoming_response_status(response);

    wasi_http_types_own_headers_t headers = wasi_http_types_method_incoming_response_headers(response);
    wasi_http_types_list_tuple2_field_name_field_value_t entries;
    wasi_http_types_method_fields_entries(wasi_http_types_borrow_fields(headers), &entries);
    const char **names = malloc((entries.len + 1) * sizeof *names);
    const char **values = malloc((entries.len + 1) * sizeof *values);
    for (size_t i = 0; i < entries.len; i++) {
        char *name = strndup((const char *)entries.ptr[i].f0.ptr, entries.ptr[i].f0.len);
        for (char *c = name; *c; c++) *c = (char)tolower((unsigned char)*c);
        names[i] = name;
        values[i] = strndup((const char *)entries.ptr[i].f1.ptr, entries.ptr[i].f1.len);
    }
    out->header_count = entries.len;
    out->header_names = names;
    out->header_values = values;
    wasi_http_types_fields_drop_own(headers);

    wasi_http_types_own_incoming_body_t body;
    if (!wasi_http_types_method_incoming_response_consume(response, &body)) {
        chard_failf(call, "ConnectionError", "%s: the response body was already taken", url);
        return false;
    }
    wasi_http_types_own_input_stream_t stream;
    if (!wasi_http_types_method_incoming_body_stream(wasi_http_types_borrow_incoming_body(body), &stream)) {
        chard_failf(call, "ConnectionError", "%s: no body stream", url);
        return false;
    }
    size_t len = 0, cap = 1024;
    char *data = malloc(cap);
    bool ok = true, have_code = false;
    wasi_http_types_error_code_t code;
    plugin_string_t why = {0};
    for (;;) {
        plugin_list_u8_t chunk;
        wasi_io_streams_stream_error_t err;
        if (!wasi_io_streams_method_input_stream_blocking_read(wasi_io_streams_borrow_input_stream(stream), READ_CHUNK,
                                                               &chunk, &err)) {
            ok = err.tag == WASI_IO_STREAMS_STREAM_ERROR_CLOSED; /* closed: the end of the body */
            if (!ok) {
                /* Why: the worker's message (over the size limit, the time limit). */
                wasi_io_error_borrow_error_t error = wasi_io_error_borrow_error(err.val.last_operation_failed);
                have_code = wasi_http_types_http_error_code(error, &code);
                if (!have_code) wasi_io_error_method_error_to_debug_string(error, &why);
                wasi_io_error_error_drop_own(err.val.last_operation_failed);
            }
            break;
        }
        while (len + chunk.len + 1 > cap) cap *= 2;
        data = realloc(data, cap);
        memcpy(data + len, chunk.ptr, chunk.len);
        len += chunk.len;
        plugin_list_u8_free(&chunk);
    }
    data[len] = '\0';
    wasi_io_streams_input_stream_drop_own(stream); /* child before parent */
    wasi_http_types_incoming_body_drop_own(body);
    wasi_http_types_incoming_response_drop_own(incoming);
    if (!ok) {
        if (have_code) return http_failed(call, "reading the body of", url, &code);
        chard_failf(call, "ConnectionError", "reading the body of %s failed: %.*s", url, (int)why.len, (const char *)why.ptr);
        return false;
    }
    out->body = data;
    out->body_len = len;
    return true;
}

static bool request_once(chard_call *call, const char *method, const char *url, const char *const *headers,
                         const void *body, size_t body_len, chard_http_response *response) {
    memset(response, 0, sizeof *response);
    bool https;
    char *authority, *path;
    if (!split_url(url, &https, &authority, &path)) {
        chard_failf(call, "ValueError", "url must be an absolute http:// or https:// URL, got %s", url);
        return false;
    }
    size_t count = 0;
    bool has_length = false;
    while (headers && headers[2 * count]) {
        if (strcasecmp(headers[2 * count], "content-length") == 0) has_length = true;
        count++;
    }
    wasi_http_types_tuple2_field_name_field_value_t *pairs = malloc((count + 1) * sizeof *pairs);
    for (size_t i = 0; i < count; i++) {
        plugin_string_set(&pairs[i].f0, headers[2 * i]);
        const char *value = headers[2 * i + 1] ? headers[2 * i + 1] : "";
        pairs[i].f1 = (wasi_http_types_field_value_t){(uint8_t *)value, strlen(value)};
    }
    if (body && body_len > 0 && !has_length) {
        /* Without it the body goes out chunked, which some servers refuse. */
        static char length[24];
        snprintf(length, sizeof length, "%zu", body_len);
        plugin_string_set(&pairs[count].f0, "content-length");
        pairs[count].f1 = (wasi_http_types_field_value_t){(uint8_t *)length, strlen(length)};
        count++;
    }
    wasi_http_types_list_tuple2_field_name_field_value_t list = {pairs, count};
    wasi_http_types_own_fields_t fields;
    wasi_http_types_header_error_t header_error;
    if (!wasi_http_types_static_fields_from_list(&list, &fields, &header_error)) {
        chard_failf(call, "ValueError", "%s %s: a request header is invalid or not allowed", method, url);
        return false;
    }
    wasi_http_types_own_outgoing_request_t request = wasi_http_types_constructor_outgoing_request(fields);
    wasi_http_types_borrow_outgoing_request_t borrowed = wasi_http_types_borrow_outgoing_request(request);
    wasi_http_types_method_t wasi_method;
    method_of(method, &wasi_method);
    wasi_http_types_scheme_t scheme = {.tag = https ? WASI_HTTP_TYPES_SCHEME_HTTPS : WASI_HTTP_TYPES_SCHEME_HTTP};
    plugin_string_t authority_text, path_text;
    plugin_string_set(&authority_text, authority);
    plugin_string_set(&path_text, path);
    wasi_http_types_method_outgoing_request_set_method(borrowed, &wasi_method);
    wasi_http_types_method_outgoing_request_set_scheme(borrowed, &scheme);
    wasi_http_types_method_outgoing_request_set_authority(borrowed, &authority_text);
    wasi_http_types_method_outgoing_request_set_path_with_query(borrowed, &path_text);
    wasi_http_types_own_outgoing_body_t outgoing_body;
    wasi_http_types_method_outgoing_request_body(borrowed, &outgoing_body);

    wasi_http_types_own_future_incoming_response_t future;
    wasi_http_types_error_code_t code;
    if (!wasi_http_outgoing_handler_handle(request, NULL, &future, &code)) return http_failed(call, method, url, &code);
    if (!write_body(outgoing_body, body, body ? body_len : 0)) {
        chard_failf(call, "ConnectionError", "%s %s: writing the request body failed", method, url);
        return false;
    }
    if (!wasi_http_types_static_outgoing_body_finish(outgoing_body, NULL, &code)) return http_failed(call, method, url, &code);

    wasi_http_types_borrow_future_incoming_response_t waiting = wasi_http_types_borrow_future_incoming_response(future);
    wasi_http_types_own_pollable_t ready = wasi_http_types_method_future_incoming_response_subscribe(waiting);
    wasi_io_poll_method_pollable_block(wasi_io_poll_borrow_pollable(ready));
    wasi_io_poll_pollable_drop_own(ready);
    wasi_http_types_result_result_own_incoming_response_error_code_void_t outcome;
    bool got = wasi_http_types_method_future_incoming_response_get(waiting, &outcome);
    wasi_http_types_future_incoming_response_drop_own(future);
    if (!got || outcome.is_err) {
        chard_failf(call, "ConnectionError", "%s %s: no response", method, url);
        return false;
    }
    if (outcome.val.ok.is_err) return http_failed(call, method, url, &outcome.val.ok.val.err);
    return read_response(call, url, outcome.val.ok.val.ok, response);
}

/* `location` made absolute against `url` (a path-absolute one keeps its origin). */
static char *resolve_location(const char *url, const char *location) {
    if (strncmp(location, "http://", 7) == 0 || strncmp(location, "https://", 8) == 0) return strdup(location);
    if (location[0] != '/' || location[1] == '/') return NULL;
    const char *rest = strstr(url, "://") + 3;
    size_t origin_len = (size_t)(rest - url) + strcspn(rest, "/?#");
    char *out = malloc(origin_len + strlen(location) + 1);
    memcpy(out, url, origin_len);
    strcpy(out + origin_len, location);
    return out;
}

#define MAX_REDIRECTS 5

/* Follows up to MAX_REDIRECTS redirects, each a new request the worker checks
 * against the grant again; a 303 (or a 301/302 after a POST) continues as GET. */
bool chard_http_request(chard_call *call, const char *method, const char *url, const char *const *headers,
                        const void *body, size_t body_len, chard_http_response *response) {
    for (int hop = 0;; hop++) {
        if (!request_once(call, method, url, headers, body, body_len, response)) return false;
        uint16_t status = response->status;
        const char *location = chard_http_header(response, "location");
        if (!(status == 301 || status == 302 || status == 303 || status == 307 || status == 308) || !location) return true;
        if (hop == MAX_REDIRECTS) {
            chard_failf(call, "ConnectionError", "%s %s: more than %d redirects", method, url, MAX_REDIRECTS);
            return false;
        }
        char *next = resolve_location(url, location);
        if (!next) return true; /* a relative form we do not follow: hand the 3xx back */
        if (status == 303 || ((status == 301 || status == 302) && strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)) {
            method = "GET";
            body = NULL;
            body_len = 0;
        }
        url = next;
    }
}

bool chard_http_get(chard_call *call, const char *url, chard_http_response *response) {
    return chard_http_request(call, "GET", url, NULL, NULL, 0, response);
}

bool chard_http_post_json(chard_call *call, const char *url, const char *json_text, chard_http_response *response) {
    static const char *const headers[] = {"content-type", "application/json", NULL};
    return chard_http_request(call, "POST", url, headers, json_text, strlen(json_text), response);
}

const char *chard_http_header(const chard_http_response *response, const char *name) {
    for (size_t i = 0; i < response->header_count; i++)
        if (strcasecmp(response->header_names[i], name) == 0) return response->header_values[i];
    return NULL;
}
