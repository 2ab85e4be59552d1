/*
 * chard.c: the C SDK's runtime. A small JSON parser and writer, Python-style
 * argument binding, and the `chard:task/tasks` export on top of the task
 * table a plugin defines with CHARD_TASKS. It includes "plugin.h", the
 * bindings `wit-bindgen c` generates for wit/chard.wit (committed in
 * sdk/c/generated/; sdk/c/regenerate-bindings.sh remakes them).
 */
#include "chard.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "plugin.h"

/* ---- Memory: every job gets a fresh instance, so allocations simply live
 * until the instance is dropped; out of memory traps. ------------------- */

static void *xmalloc(size_t size) {
    void *p = malloc(size ? size : 1);
    if (!p) __builtin_trap();
    return p;
}

static void *xrealloc(void *old, size_t size) {
    void *p = realloc(old, size ? size : 1);
    if (!p) __builtin_trap();
    return p;
}

static char *xstrndup(const char *s, size_t len) {
    char *copy = xmalloc(len + 1);
    memcpy(copy, s, len);
    copy[len] = '\0';
    return copy;
}

/* ---- Growable buffer ---------------------------------------------------- */

typedef struct {
    char *data;
    size_t len, cap;
} buf;

static void buf_put(buf *b, const char *s, size_t n) {
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->len + n + 1) cap *= 2;
        b->data = xrealloc(b->data, cap);
        b->cap = cap;
    }
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
}

static void buf_puts(buf *b, const char *s) { buf_put(b, s, strlen(s)); }

static void buf_putc(buf *b, char c) { buf_put(b, &c, 1); }

static void buf_vprintf(buf *b, const char *format, va_list args) {
    va_list copy;
    va_copy(copy, args);
    int n = vsnprintf(NULL, 0, format, copy);
    va_end(copy);
    if (n < 0) return;
    char *tmp = xmalloc((size_t)n + 1);
    vsnprintf(tmp, (size_t)n + 1, format, args);
    buf_put(b, tmp, (size_t)n);
    free(tmp);
}

static void buf_printf(buf *b, const char *format, ...) __attribute__((format(printf, 2, 3)));
static void buf_printf(buf *b, const char *format, ...) {
    va_list args;
    va_start(args, format);
    buf_vprintf(b, format, args);
    va_end(args);
}

/* ---- JSON values -------------------------------------------------------- */

struct chard_json {
    chard_json_type type;
    bool boolean;
    double number;
    bool integral;   /* the literal had no fraction or exponent and fits int64 */
    int64_t integer;
    char *string;    /* NUL-terminated */
    size_t string_len;
    size_t len;      /* array elements / object members */
    chard_json **items;
    char **keys;
};


chard_json_type chard_json_type_of(const chard_json *v) { return v ? v->type : CHARD_JSON_NULL; }

const char *chard_json_type_name(const chard_json *v) {
    static const char *const names[] = {"null", "bool", "number", "string", "array", "object"};
    return names[chard_json_type_of(v)];
}

size_t chard_json_len(const chard_json *v) {
    return v && (v->type == CHARD_JSON_ARRAY || v->type == CHARD_JSON_OBJECT) ? v->len : 0;
}

const chard_json *chard_json_at(const chard_json *v, size_t i) {
    return i < chard_json_len(v) ? v->items[i] : NULL;
}

const char *chard_json_key_at(const chard_json *v, size_t i) {
    return v && v->type == CHARD_JSON_OBJECT && i < v->len ? v->keys[i] : NULL;
}

const chard_json *chard_json_get(const chard_json *v, const char *key) {
    if (!v || v->type != CHARD_JSON_OBJECT) return NULL;
    /* Like Python and serde_json, the last duplicate key wins. */
    for (size_t i = v->len; i-- > 0;)
        if (strcmp(v->keys[i], key) == 0) return v->items[i];
    return NULL;
}

bool chard_json_double(const chard_json *v, double *out) {
    if (!v || v->type != CHARD_JSON_NUMBER) return false;
    *out = v->number;
    return true;
}

bool chard_json_int(const chard_json *v, int64_t *out) {
    if (!v || v->type != CHARD_JSON_NUMBER) return false;
    if (!v->integral) return false;
    *out = v->integer;
    return true;
}

bool chard_json_bool(const chard_json *v, bool *out) {
    if (!v || v->type != CHARD_JSON_BOOL) return false;
    *out = v->boolean;
    return true;
}

const char *chard_json_string(const chard_json *v, size_t *len) {
    if (!v || v->type != CHARD_JSON_STRING) return NULL;
    if (len) *len = v->string_len;
    return v->string;
}

/* ---- JSON parser -------------------------------------------------------- */

typedef struct {
    const char *p, *end;
    const char *error;
    int depth;
} parser;

#define MAX_DEPTH 256

static void skip_ws(parser *ps) {
    while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r')) ps->p++;
}

static chard_json *new_value(chard_json_type type) {
    chard_json *v = xmalloc(sizeof *v);
    memset(v, 0, sizeof *v);
    v->type = type;
    return v;
}

static chard_json *parse_value(parser *ps);

static void put_utf8(buf *b, uint32_t c) {
    char out[4];
    if (c < 0x80) {
        out[0] = (char)c;
        buf_put(b, out, 1);
    } else if (c < 0x800) {
        out[0] = (char)(0xC0 | (c >> 6));
        out[1] = (char)(0x80 | (c & 0x3F));
        buf_put(b, out, 2);
    } else if (c < 0x10000) {
        out[0] = (char)(0xE0 | (c >> 12));
        out[1] = (char)(0x80 | ((c >> 6) & 0x3F));
        out[2] = (char)(0x80 | (c & 0x3F));
        buf_put(b, out, 3);
    } else {
        out[0] = (char)(0xF0 | (c >> 18));
        out[1] = (char)(0x80 | ((c >> 12) & 0x3F));
        out[2] = (char)(0x80 | ((c >> 6) & 0x3F));
        out[3] = (char)(0x80 | (c & 0x3F));
        buf_put(b, out, 4);
    }
}

static bool hex4(parser *ps, uint32_t *out) {
    if (ps->end - ps->p < 4) return false;
    uint32_t value = 0;
    for (int i = 0; i < 4; i++) {
        char c = ps->p[i];
        value <<= 4;
        if (c >= '0' && c <= '9') value |= (uint32_t)(c - '0');
        else if (c >= 'a' && c <= 'f') value |= (uint32_t)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') value |= (uint32_t)(c - 'A' + 10);
        else return false;
    }
    ps->p += 4;
    *out = value;
    return true;
}

/* Parses a string literal (ps->p at the opening quote). */
static bool parse_string(parser *ps, char **out, size_t *out_len) {
    buf b = {0};
    ps->p++;
    for (;;) {
        if (ps->p >= ps->end) {
            ps->error = "unterminated string";
            return false;
        }
        unsigned char c = (unsigned char)*ps->p;
        if (c == '"') {
            ps->p++;
            break;
        }
        if (c < 0x20) {
            ps->error = "control character in string";
            return false;
        }
        if (c != '\\') {
            const char *start = ps->p;
            while (ps->p < ps->end && *ps->p != '"' && *ps->p != '\\' && (unsigned char)*ps->p >= 0x20) ps->p++;
            buf_put(&b, start, (size_t)(ps->p - start));
            continue;
        }
        ps->p++;
        if (ps->p >= ps->end) {
            ps->error = "unterminated string";
            return false;
        }
        char e = *ps->p++;
        switch (e) {
        case '"': buf_putc(&b, '"'); break;
        case '\\': buf_putc(&b, '\\'); break;
        case '/': buf_putc(&b, '/'); break;
        case 'b': buf_putc(&b, '\b'); break;
        case 'f': buf_putc(&b, '\f'); break;
        case 'n': buf_putc(&b, '\n'); break;
        case 'r': buf_putc(&b, '\r'); break;
        case 't': buf_putc(&b, '\t'); break;
        case 'u': {
            uint32_t c1;
            if (!hex4(ps, &c1)) {
                ps->error = "invalid \\u escape";
                return false;
            }
            if (c1 >= 0xD800 && c1 <= 0xDBFF) {
                uint32_t c2;
                const char *save = ps->p;
                if (ps->end - ps->p >= 6 && ps->p[0] == '\\' && ps->p[1] == 'u') {
                    ps->p += 2;
                    if (hex4(ps, &c2) && c2 >= 0xDC00 && c2 <= 0xDFFF) {
                        c1 = 0x10000 + ((c1 - 0xD800) << 10) + (c2 - 0xDC00);
                    } else {
                        ps->p = save;
                        c1 = 0xFFFD; /* lone surrogate */
                    }
                } else {
                    c1 = 0xFFFD;
                }
            } else if (c1 >= 0xDC00 && c1 <= 0xDFFF) {
                c1 = 0xFFFD;
            }
            put_utf8(&b, c1);
            break;
        }
        default:
            ps->error = "invalid escape in string";
            return false;
        }
    }
    if (!b.data) buf_put(&b, "", 0);
    *out = b.data;
    *out_len = b.len;
    return true;
}

static bool is_digit(char c) { return c >= '0' && c <= '9'; }

static chard_json *parse_number(parser *ps) {
    const char *start = ps->p;
    bool integral = true;
    if (ps->p < ps->end && *ps->p == '-') ps->p++;
    if (ps->p < ps->end && *ps->p == '0') {
        ps->p++;
    } else if (ps->p < ps->end && is_digit(*ps->p)) {
        while (ps->p < ps->end && is_digit(*ps->p)) ps->p++;
    } else {
        ps->error = "invalid number";
        return NULL;
    }
    if (ps->p < ps->end && *ps->p == '.') {
        integral = false;
        ps->p++;
        if (!(ps->p < ps->end && is_digit(*ps->p))) {
            ps->error = "invalid number";
            return NULL;
        }
        while (ps->p < ps->end && is_digit(*ps->p)) ps->p++;
    }
    if (ps->p < ps->end && (*ps->p == 'e' || *ps->p == 'E')) {
        integral = false;
        ps->p++;
        if (ps->p < ps->end && (*ps->p == '+' || *ps->p == '-')) ps->p++;
        if (!(ps->p < ps->end && is_digit(*ps->p))) {
            ps->error = "invalid number";
            return NULL;
        }
        while (ps->p < ps->end && is_digit(*ps->p)) ps->p++;
    }
    char *text = xstrndup(start, (size_t)(ps->p - start));
    chard_json *v = new_value(CHARD_JSON_NUMBER);
    v->number = strtod(text, NULL);
    if (isinf(v->number)) {
        free(text);
        ps->error = "number out of range";
        return NULL;
    }
    if (integral) {
        errno = 0;
        long long n = strtoll(text, NULL, 10);
        if (errno == 0) {
            v->integral = true;
            v->integer = (int64_t)n;
        }
    }
    free(text);
    return v;
}

static bool literal(parser *ps, const char *word) {
    size_t n = strlen(word);
    if ((size_t)(ps->end - ps->p) >= n && memcmp(ps->p, word, n) == 0) {
        ps->p += n;
        return true;
    }
    ps->error = "invalid literal";
    return false;
}

static void push_item(chard_json *v, size_t *cap, chard_json *item, char *key) {
    if (v->len == *cap) {
        *cap = *cap ? *cap * 2 : 4;
        v->items = xrealloc(v->items, *cap * sizeof *v->items);
        if (v->type == CHARD_JSON_OBJECT) v->keys = xrealloc(v->keys, *cap * sizeof *v->keys);
    }
    v->items[v->len] = item;
    if (key) v->keys[v->len] = key;
    v->len++;
}

static chard_json *parse_container(parser *ps, bool object) {
    if (++ps->depth > MAX_DEPTH) {
        ps->error = "nested too deeply";
        return NULL;
    }
    chard_json *v = new_value(object ? CHARD_JSON_OBJECT : CHARD_JSON_ARRAY);
    size_t cap = 0;
    char close = object ? '}' : ']';
    ps->p++;
    skip_ws(ps);
    if (ps->p < ps->end && *ps->p == close) {
        ps->p++;
        ps->depth--;
        return v;
    }
    for (;;) {
        char *key = NULL;
        skip_ws(ps);
        if (object) {
            size_t key_len;
            if (!(ps->p < ps->end && *ps->p == '"')) {
                ps->error = "expected a string key";
                return NULL;
            }
            if (!parse_string(ps, &key, &key_len)) return NULL;
            skip_ws(ps);
            if (!(ps->p < ps->end && *ps->p == ':')) {
                ps->error = "expected ':'";
                return NULL;
            }
            ps->p++;
        }
        chard_json *item = parse_value(ps);
        if (!item) return NULL;
        push_item(v, &cap, item, key);
        skip_ws(ps);
        if (ps->p < ps->end && *ps->p == ',') {
            ps->p++;
            continue;
        }
        if (ps->p < ps->end && *ps->p == close) {
            ps->p++;
            break;
        }
        ps->error = object ? "expected ',' or '}'" : "expected ',' or ']'";
        return NULL;
    }
    ps->depth--;
    return v;
}

static chard_json *parse_value(parser *ps) {
    skip_ws(ps);
    if (ps->p >= ps->end) {
        ps->error = "unexpected end of input";
        return NULL;
    }
    switch (*ps->p) {
    case '{': return parse_container(ps, true);
    case '[': return parse_container(ps, false);
    case '"': {
        chard_json *v = new_value(CHARD_JSON_STRING);
        return parse_string(ps, &v->string, &v->string_len) ? v : NULL;
    }
    case 't':
    case 'f': {
        chard_json *v = new_value(CHARD_JSON_BOOL);
        v->boolean = *ps->p == 't';
        return literal(ps, v->boolean ? "true" : "false") ? v : NULL;
    }
    case 'n':
        return literal(ps, "null") ? new_value(CHARD_JSON_NULL) : NULL;
    default:
        if (*ps->p == '-' || is_digit(*ps->p)) return parse_number(ps);
        ps->error = "unexpected character";
        return NULL;
    }
}

const chard_json *chard_json_parse(const char *text, size_t len, const char **error) {
    parser ps = {.p = text, .end = text + len};
    chard_json *v = parse_value(&ps);
    if (v) {
        skip_ws(&ps);
        if (ps.p != ps.end) {
            v = NULL;
            ps.error = "trailing characters";
        }
    }
    if (!v && error) *error = ps.error ? ps.error : "invalid JSON";
    return v;
}

/* ---- JSON writer -------------------------------------------------------- */

static void write_string(buf *b, const char *s, size_t n) {
    static const char hex[] = "0123456789abcdef";
    buf_putc(b, '"');
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\') continue;
        buf_put(b, s + run, i - run);
        run = i + 1;
        switch (c) {
        case '"': buf_puts(b, "\\\""); break;
        case '\\': buf_puts(b, "\\\\"); break;
        case '\n': buf_puts(b, "\\n"); break;
        case '\r': buf_puts(b, "\\r"); break;
        case '\t': buf_puts(b, "\\t"); break;
        case '\b': buf_puts(b, "\\b"); break;
        case '\f': buf_puts(b, "\\f"); break;
        default: {
            char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            buf_put(b, esc, 6);
        }
        }
    }
    buf_put(b, s + run, n - run);
    buf_putc(b, '"');
}

/* The shortest text that reads back as the same double, always with a '.'
 * or an exponent so that a Python client gets a float ("4.0", not "4"). */
static bool write_double(buf *b, double d) {
    if (!isfinite(d)) return false;
    char text[40];
    for (int precision = 1; precision <= 17; precision++) {
        snprintf(text, sizeof text, "%.*g", precision, d);
        if (strtod(text, NULL) == d) break;
    }
    buf_puts(b, text);
    if (!strpbrk(text, ".e")) buf_puts(b, ".0");
    return true;
}

static bool write_value(buf *b, const chard_json *v) {
    switch (chard_json_type_of(v)) {
    case CHARD_JSON_NULL: buf_puts(b, "null"); return true;
    case CHARD_JSON_BOOL: buf_puts(b, v->boolean ? "true" : "false"); return true;
    case CHARD_JSON_NUMBER:
        if (v->integral) {
            buf_printf(b, "%lld", (long long)v->integer);
            return true;
        }
        return write_double(b, v->number);
    case CHARD_JSON_STRING: write_string(b, v->string, v->string_len); return true;
    case CHARD_JSON_ARRAY:
        buf_putc(b, '[');
        for (size_t i = 0; i < v->len; i++) {
            if (i) buf_putc(b, ',');
            if (!write_value(b, v->items[i])) return false;
        }
        buf_putc(b, ']');
        return true;
    case CHARD_JSON_OBJECT:
        buf_putc(b, '{');
        for (size_t i = 0; i < v->len; i++) {
            if (i) buf_putc(b, ',');
            write_string(b, v->keys[i], strlen(v->keys[i]));
            buf_putc(b, ':');
            if (!write_value(b, v->items[i])) return false;
        }
        buf_putc(b, '}');
        return true;
    }
    return false;
}

char *chard_json_text(const chard_json *value) {
    buf b = {0};
    if (!write_value(&b, value)) {
        free(b.data);
        return NULL;
    }
    return b.data;
}

char *chard_json_quote(const char *text) {
    buf b = {0};
    write_string(&b, text, strlen(text));
    return b.data;
}

/* ---- Calls -------------------------------------------------------------- */

typedef enum { PENDING, DONE_OK, DONE_FAILED, DONE_RETRY, DONE_REJECT } call_state;

struct chard_call {
    const chard_task *task;
    const chard_json **args;
    size_t nargs;
    size_t nparams;     /* named parameters: not counting "*args" and "**kwargs" */
    char **param_names; /* without the trailing '?' */
    chard_json *var_args;   /* extra positionals ("*name" declared), else NULL */
    chard_json *var_kwargs; /* extra keywords ("**name" declared), else NULL */
    chard_context context;
    call_state state;
    char *result;
    size_t result_len;
    char *message;          /* failed: the message; reject: the reason (or NULL) */
    char *exception_type;
    char *args_json;        /* failed: the exception's args (JSON array) or NULL */
    bool has_countdown;
    uint64_t countdown_ms;
    char *reason;
    bool has_max_retries;
    uint32_t max_retries;
    char *exc_type, *exc_message, *exc_args_json; /* retry: fail with this when none is left */
    char *expires;          /* retry: ISO-8601 */
    bool requeue;           /* reject */
};

static char *dup_or_null(const char *s) { return s ? xstrndup(s, strlen(s)) : NULL; }

static bool finish(chard_call *call, call_state state) {
    if (call->state != PENDING) return false; /* the first ending wins */
    call->state = state;
    return true;
}

bool chard_done(chard_call *call) { return call->state != PENDING; }

void chard_fail_as(chard_call *call, const char *exception_type, const char *message) {
    if (!finish(call, DONE_FAILED)) return;
    call->message = xstrndup(message ? message : "", message ? strlen(message) : 0);
    call->exception_type = exception_type ? xstrndup(exception_type, strlen(exception_type)) : NULL;
}

void chard_fail(chard_call *call, const char *message) { chard_fail_as(call, NULL, message); }

void chard_fail_with_args(chard_call *call, const char *exception_type, const char *message, const char *args_json) {
    if (chard_done(call)) return;
    const char *error = NULL;
    if (args_json) {
        const chard_json *args = chard_json_parse(args_json, strlen(args_json), &error);
        if (!args || args->type != CHARD_JSON_ARRAY) {
            chard_failf(call, "TypeError", "%s: exception args must be a JSON array, got %s", call->task->name,
                        error ? error : chard_json_type_name(args));
            return;
        }
    }
    chard_fail_as(call, exception_type, message);
    call->args_json = dup_or_null(args_json);
}

void chard_reject(chard_call *call, bool requeue, const char *reason) {
    if (!finish(call, DONE_REJECT)) return;
    call->requeue = requeue;
    call->message = dup_or_null(reason);
}

void chard_retry_with(chard_call *call, const chard_retry_options *options) {
    if (chard_done(call)) return;
    chard_retry(call, options->countdown_ms, options->reason ? options->reason : options->exc_message);
    if (options->max_retries >= 0) {
        call->has_max_retries = true;
        call->max_retries = (uint32_t)options->max_retries;
    }
    if (options->exc_message || options->exc_type) {
        call->exc_type = dup_or_null(options->exc_type);
        call->exc_message = dup_or_null(options->exc_message ? options->exc_message : "");
        call->exc_args_json = dup_or_null(options->exc_args_json);
    }
    call->expires = dup_or_null(options->expires);
}

void chard_failf(chard_call *call, const char *exception_type, const char *format, ...) {
    buf b = {0};
    va_list args;
    va_start(args, format);
    buf_vprintf(&b, format, args);
    va_end(args);
    chard_fail_as(call, exception_type, b.data ? b.data : "");
}

void chard_retry_max(chard_call *call, int64_t countdown_ms, const char *reason, uint32_t max_retries) {
    chard_retry(call, countdown_ms, reason);
    if (call->state == DONE_RETRY) {
        call->has_max_retries = true;
        call->max_retries = max_retries;
    }
}

void chard_retry(chard_call *call, int64_t countdown_ms, const char *reason) {
    if (!finish(call, DONE_RETRY)) return;
    call->has_countdown = countdown_ms >= 0;
    call->countdown_ms = countdown_ms >= 0 ? (uint64_t)countdown_ms : 0;
    call->reason = reason ? xstrndup(reason, strlen(reason)) : NULL;
}

static void set_result(chard_call *call, buf *b) {
    if (!finish(call, DONE_OK)) return;
    call->result = b->data;
    call->result_len = b->len;
}

void chard_return_null(chard_call *call) {
    buf b = {0};
    buf_puts(&b, "null");
    set_result(call, &b);
}

void chard_return_bool(chard_call *call, bool value) {
    buf b = {0};
    buf_puts(&b, value ? "true" : "false");
    set_result(call, &b);
}

void chard_return_int(chard_call *call, int64_t value) {
    buf b = {0};
    buf_printf(&b, "%lld", (long long)value);
    set_result(call, &b);
}

void chard_return_double(chard_call *call, double value) {
    buf b = {0};
    if (!write_double(&b, value)) {
        chard_failf(call, "TypeError", "%s: result is not JSON: %s is not a JSON number", call->task->name,
                    isnan(value) ? "NaN" : value > 0 ? "inf" : "-inf");
        return;
    }
    set_result(call, &b);
}

void chard_return_string_n(chard_call *call, const char *value, size_t len) {
    buf b = {0};
    write_string(&b, value, len);
    set_result(call, &b);
}

void chard_return_string(chard_call *call, const char *value) {
    chard_return_string_n(call, value, strlen(value));
}

void chard_return_value(chard_call *call, const chard_json *value) {
    buf b = {0};
    if (!write_value(&b, value)) {
        chard_failf(call, "TypeError", "%s: result is not JSON", call->task->name);
        return;
    }
    set_result(call, &b);
}

void chard_return_json(chard_call *call, const char *json_text) {
    const char *error = NULL;
    if (!chard_json_parse(json_text, strlen(json_text), &error)) {
        chard_failf(call, "TypeError", "%s: result is not JSON: %s", call->task->name, error);
        return;
    }
    buf b = {0};
    buf_puts(&b, json_text);
    set_result(call, &b);
}

/* ---- Arguments ---------------------------------------------------------- */

size_t chard_arg_count(chard_call *call) { return call->nargs; }

const chard_json *chard_arg(chard_call *call, size_t i) { return i < call->nargs ? call->args[i] : NULL; }

bool chard_arg_present(chard_call *call, size_t i) { return chard_arg(call, i) != NULL; }

static const chard_json EMPTY_ARRAY = {.type = CHARD_JSON_ARRAY};
static const chard_json EMPTY_OBJECT = {.type = CHARD_JSON_OBJECT};

const chard_json *chard_var_args(chard_call *call) { return call->var_args ? call->var_args : &EMPTY_ARRAY; }

const chard_json *chard_var_kwargs(chard_call *call) { return call->var_kwargs ? call->var_kwargs : &EMPTY_OBJECT; }

static const char *param_name(chard_call *call, size_t i) {
    return i < call->nparams ? call->param_names[i] : "?";
}

static const chard_json *typed_arg(chard_call *call, size_t i) {
    const chard_json *v = chard_arg(call, i);
    if (!v) {
        if (i < call->nparams)
            chard_failf(call, "TypeError", "%s: missing argument '%s'", call->task->name, param_name(call, i));
        else
            chard_failf(call, "TypeError", "%s: missing argument #%zu", call->task->name, i + 1);
    }
    return v;
}

static bool wrong_type(chard_call *call, size_t i, const char *expected, const chard_json *v) {
    if (i < call->nparams)
        chard_failf(call, "TypeError", "%s: argument '%s': expected %s, got %s", call->task->name,
                    param_name(call, i), expected, chard_json_type_name(v));
    else
        chard_failf(call, "TypeError", "%s: argument #%zu: expected %s, got %s", call->task->name, i + 1,
                    expected, chard_json_type_name(v));
    return false;
}

bool chard_arg_int(chard_call *call, size_t i, int64_t *out) {
    const chard_json *v = typed_arg(call, i);
    if (!v) return false;
    if (chard_json_int(v, out)) return true;
    return wrong_type(call, i, "an integer", v);
}

bool chard_arg_double(chard_call *call, size_t i, double *out) {
    const chard_json *v = typed_arg(call, i);
    if (!v) return false;
    if (chard_json_double(v, out)) return true;
    return wrong_type(call, i, "a number", v);
}

bool chard_arg_bool(chard_call *call, size_t i, bool *out) {
    const chard_json *v = typed_arg(call, i);
    if (!v) return false;
    if (chard_json_bool(v, out)) return true;
    return wrong_type(call, i, "a bool", v);
}

bool chard_arg_string(chard_call *call, size_t i, const char **out) {
    const chard_json *v = typed_arg(call, i);
    if (!v) return false;
    if ((*out = chard_json_string(v, NULL))) return true;
    return wrong_type(call, i, "a string", v);
}

bool chard_arg_array(chard_call *call, size_t i, const chard_json **out, size_t *len) {
    const chard_json *v = typed_arg(call, i);
    if (!v) return false;
    if (v->type != CHARD_JSON_ARRAY) return wrong_type(call, i, "an array", v);
    *out = v;
    if (len) *len = v->len;
    return true;
}

bool chard_arg_object(chard_call *call, size_t i, const chard_json **out) {
    const chard_json *v = typed_arg(call, i);
    if (!v) return false;
    if (v->type != CHARD_JSON_OBJECT) return wrong_type(call, i, "an object", v);
    *out = v;
    return true;
}

const chard_context *chard_job(chard_call *call) { return &call->context; }

const char *chard_task_name(chard_call *call) { return call->task->name; }

/* ---- Host --------------------------------------------------------------- */

void chard_log(chard_level level, const char *message, ...) {
    size_t count = 0, cap = 0;
    plugin_tuple2_string_string_t *pairs = NULL;
    va_list args;
    va_start(args, message);
    for (;;) {
        const char *key = va_arg(args, const char *);
        if (!key) break;
        const char *value = va_arg(args, const char *);
        if (count == cap) {
            cap = cap ? cap * 2 : 4;
            pairs = xrealloc(pairs, cap * sizeof *pairs);
        }
        plugin_string_set(&pairs[count].f0, key);
        plugin_string_set(&pairs[count].f1, value ? value : "");
        count++;
    }
    va_end(args);
    plugin_string_t text;
    plugin_string_set(&text, message ? message : "");
    plugin_list_tuple2_string_string_t fields = {pairs, count};
    chard_task_host_log((chard_task_host_level_t)level, &text, &fields);
    free(pairs);
}

/* The wall clock: a capability (`wall_clock = true`), the job traps without it. */
uint64_t chard_now_ms(void) { return chard_task_host_now_ms(); }

/* Milliseconds on the monotonic clock, which needs no grant. */
static int64_t monotonic_ms(void) {
    struct timespec now;
    if (clock_gettime(CLOCK_MONOTONIC, &now) != 0) return 0;
    return (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

/* When the current job started (a fresh instance per job). */
static int64_t job_started_ms = -1;

bool chard_soft_deadline_passed(chard_call *call) {
    return call->context.soft_time_limit_ms >= 0 && job_started_ms >= 0 &&
           monotonic_ms() - job_started_ms >= call->context.soft_time_limit_ms;
}

/* ---- The `tasks` export ------------------------------------------------- */

/* "*name" collects extra positional arguments, "**name" extra keyword
 * arguments (Python's *args and **kwargs); neither is a named parameter. */
static int param_stars(const char *name) { return name[0] != '*' ? 0 : name[1] != '*' ? 1 : 2; }

static bool declares(const chard_task *task, int stars) {
    for (size_t i = 0; task->params && task->params[i]; i++)
        if (param_stars(task->params[i]) == stars) return true;
    return false;
}

/* The named parameters, in order; `count` gets how many. */
static const char **named_params(const chard_task *task, size_t *count) {
    size_t n = 0;
    if (task->params)
        while (task->params[n]) n++;
    const char **named = xmalloc((n + 1) * sizeof *named);
    *count = 0;
    for (size_t i = 0; i < n; i++)
        if (param_stars(task->params[i]) == 0) named[(*count)++] = task->params[i];
    named[*count] = NULL;
    return named;
}

static char *strip_optional(const char *name, bool *optional) {
    size_t n = strlen(name);
    *optional = n > 0 && name[n - 1] == '?';
    return xstrndup(name, *optional ? n - 1 : n);
}

static void set_option_string(plugin_option_string_t *out, const char *value) {
    out->is_some = value != NULL;
    if (value) plugin_string_dup(&out->val, value);
}

static void set_option_u64(plugin_option_u64_t *out, chard_opt value) {
    out->is_some = value.set;
    out->val = value.value;
}

static void set_option_u32(plugin_option_u32_t *out, chard_opt value) {
    out->is_some = value.set;
    out->val = (uint32_t)value.value;
}

void exports_chard_task_tasks_list_tasks(exports_chard_task_tasks_list_task_info_t *ret) {
    ret->len = chard_task_count;
    ret->ptr = xmalloc(chard_task_count * sizeof *ret->ptr);
    memset(ret->ptr, 0, chard_task_count * sizeof *ret->ptr);
    for (size_t t = 0; t < chard_task_count; t++) {
        const chard_task *task = &chard_tasks[t];
        exports_chard_task_tasks_task_info_t *info = &ret->ptr[t];
        plugin_string_dup(&info->name, task->name ? task->name : "");
        /* Python's notation, as written ("limit?", "*more", "**options"),
         * named parameters first: the worker checks the calls it sends to
         * this task against it (Celery's Task.typing). */
        size_t n = 0;
        while (task->params && task->params[n]) n++;
        info->params.len = n;
        info->params.ptr = xmalloc((n ? n : 1) * sizeof *info->params.ptr);
        size_t out = 0;
        for (int stars = 0; stars <= 2; stars++)
            for (size_t i = 0; i < n; i++)
                if (param_stars(task->params[i]) == stars) plugin_string_dup(&info->params.ptr[out++], task->params[i]);
        set_option_string(&info->doc, task->doc);
        chard_task_types_task_defaults_t *d = &info->defaults;
        set_option_string(&d->queue, task->queue);
        set_option_u64(&d->time_limit_ms, task->time_limit_ms);
        set_option_u64(&d->soft_time_limit_ms, task->soft_time_limit_ms);
        set_option_u32(&d->memory_limit_mb, task->memory_limit_mb);
        set_option_u32(&d->max_retries, task->max_retries);
        set_option_u64(&d->default_retry_delay_ms, task->default_retry_delay_ms);
        set_option_string(&d->rate_limit, task->rate_limit);
        size_t m = 0;
        if (task->autoretry_for)
            while (task->autoretry_for[m]) m++;
        d->autoretry_for.len = m;
        d->autoretry_for.ptr = xmalloc(m * sizeof *d->autoretry_for.ptr);
        for (size_t i = 0; i < m; i++) plugin_string_dup(&d->autoretry_for.ptr[i], task->autoretry_for[i]);
        set_option_u64(&d->retry_backoff_ms, task->retry_backoff_ms);
        set_option_u64(&d->retry_backoff_max_ms, task->retry_backoff_max_ms);
        d->retry_jitter = task->retry_jitter;
    }
}

static char *cstr(const plugin_string_t *s) { return xstrndup((const char *)s->ptr, s->len); }

static const char *opt_cstr(const plugin_option_string_t *s) { return s->is_some ? cstr(&s->val) : NULL; }

static bool blank(const plugin_string_t *s) {
    for (size_t i = 0; i < s->len; i++)
        if (s->ptr[i] != ' ' && s->ptr[i] != '\t' && s->ptr[i] != '\n' && s->ptr[i] != '\r') return false;
    return true;
}

/* Binds args/kwargs to the task's parameters with Python's rules. */
static bool bind(chard_call *call, const chard_json *args, const chard_json *kwargs) {
    const chard_task *task = call->task;
    size_t n;
    const char **named = named_params(task, &n);
    size_t given = args->len;
    if (given > n && !declares(task, 1)) {
        buf names = {0};
        for (size_t i = 0; i < n; i++) {
            if (i) buf_puts(&names, ", ");
            buf_puts(&names, call->param_names[i]);
        }
        chard_failf(call, "TypeError", "%s: expected %zu argument%s (%s), got %zu", task->name, n, n == 1 ? "" : "s",
                    names.data ? names.data : "", given);
        return false;
    }
    size_t extra = given > n ? given - n : 0;
    call->nargs = n + extra;
    call->args = xmalloc(call->nargs * sizeof *call->args);
    bool *used = xmalloc(kwargs->len * sizeof *used);
    memset(used, 0, kwargs->len * sizeof *used);
    for (size_t i = 0; i < n; i++) {
        bool optional;
        free(strip_optional(named[i], &optional));
        const chard_json *by_name = NULL;
        for (size_t k = kwargs->len; k-- > 0;) {
            if (strcmp(kwargs->keys[k], call->param_names[i]) == 0) {
                if (!by_name) by_name = kwargs->items[k];
                used[k] = true;
            }
        }
        if (i < given) {
            if (by_name) {
                chard_failf(call, "TypeError", "%s: got multiple values for argument '%s'", task->name,
                            call->param_names[i]);
                return false;
            }
            call->args[i] = args->items[i];
        } else if (by_name) {
            call->args[i] = by_name;
        } else if (optional) {
            call->args[i] = NULL;
        } else {
            chard_failf(call, "TypeError", "%s: missing required argument '%s'", task->name, call->param_names[i]);
            return false;
        }
    }
    if (declares(task, 1)) {
        call->var_args = new_value(CHARD_JSON_ARRAY);
        call->var_args->len = extra;
        call->var_args->items = xmalloc(extra * sizeof *call->var_args->items);
        for (size_t j = 0; j < extra; j++) {
            call->args[n + j] = args->items[n + j];
            call->var_args->items[j] = args->items[n + j];
        }
    }
    if (declares(task, 2)) {
        chard_json *rest = call->var_kwargs = new_value(CHARD_JSON_OBJECT);
        rest->items = xmalloc(kwargs->len * sizeof *rest->items);
        rest->keys = xmalloc(kwargs->len * sizeof *rest->keys);
        for (size_t k = 0; k < kwargs->len; k++) {
            if (used[k]) continue;
            rest->keys[rest->len] = kwargs->keys[k];
            rest->items[rest->len++] = kwargs->items[k];
        }
        return true;
    }
    for (size_t k = 0; k < kwargs->len; k++) {
        if (!used[k]) {
            chard_failf(call, "TypeError", "%s: got an unexpected keyword argument '%s'", task->name, kwargs->keys[k]);
            return false;
        }
    }
    return true;
}

static void run_task(chard_call *call, const plugin_string_t *args_text, const plugin_string_t *kwargs_text) {
    const chard_task *task = call->task;
    const char *error = NULL;
    const chard_json *args = blank(args_text) ? NULL : chard_json_parse((const char *)args_text->ptr, args_text->len, &error);
    if (!blank(args_text) && !args) {
        chard_failf(call, "TypeError", "%s: args are not valid JSON: %s", task->name, error);
        return;
    }
    if (!args) args = &EMPTY_ARRAY;
    if (args->type != CHARD_JSON_ARRAY) {
        chard_failf(call, "TypeError", "%s: args must be a JSON array, got %s", task->name, chard_json_type_name(args));
        return;
    }
    const chard_json *kwargs =
        blank(kwargs_text) ? NULL : chard_json_parse((const char *)kwargs_text->ptr, kwargs_text->len, &error);
    if (!blank(kwargs_text) && !kwargs) {
        chard_failf(call, "TypeError", "%s: kwargs are not valid JSON: %s", task->name, error);
        return;
    }
    if (!kwargs || kwargs->type == CHARD_JSON_NULL) kwargs = &EMPTY_OBJECT;
    if (kwargs->type != CHARD_JSON_OBJECT) {
        chard_failf(call, "TypeError", "%s: kwargs must be a JSON object, got %s", task->name,
                    chard_json_type_name(kwargs));
        return;
    }
    if (!bind(call, args, kwargs)) return;
    task->fn(call);
    if (call->state == PENDING) chard_return_null(call); /* a task that returns nothing returns None */
}

static void to_wit_string(plugin_string_t *out, const char *s, size_t len) {
    /* The post-return function frees it with free(): hand over a malloc'd copy. */
    out->ptr = (uint8_t *)xstrndup(s, len);
    out->len = len;
}

static void set_wit_option(plugin_option_string_t *out, const char *s) {
    out->is_some = s != NULL;
    if (s) to_wit_string(&out->val, s, strlen(s));
}

static void set_failure(chard_task_types_failure_t *out, const char *type, const char *message, const char *args_json) {
    to_wit_string(&out->message, message, strlen(message));
    set_wit_option(&out->exception_type, type);
    set_wit_option(&out->args_json, args_json);
}

bool exports_chard_task_tasks_run(plugin_string_t *name, plugin_string_t *args, plugin_string_t *kwargs,
                                  exports_chard_task_tasks_context_t *context, plugin_string_t *ret,
                                  exports_chard_task_tasks_task_error_t *err) {
    chard_call call;
    memset(&call, 0, sizeof call);
    for (size_t t = 0; t < chard_task_count; t++) {
        const char *task_name = chard_tasks[t].name;
        if (task_name && strlen(task_name) == name->len && memcmp(task_name, name->ptr, name->len) == 0) {
            call.task = &chard_tasks[t];
            break;
        }
    }
    if (!call.task) {
        err->tag = CHARD_TASK_TYPES_TASK_ERROR_FAILED;
        to_wit_string(&err->val.failed.message, (const char *)name->ptr, name->len);
        err->val.failed.exception_type.is_some = true;
        plugin_string_dup(&err->val.failed.exception_type.val, "NotRegistered");
        return false;
    }
    const char **named = named_params(call.task, &call.nparams);
    call.param_names = xmalloc(call.nparams * sizeof *call.param_names);
    for (size_t i = 0; i < call.nparams; i++) {
        bool optional;
        call.param_names[i] = strip_optional(named[i], &optional);
    }
    chard_context *c = &call.context;
    c->task_id = cstr(&context->task_id);
    c->task_name = cstr(&context->task_name);
    c->root_id = opt_cstr(&context->root_id);
    c->parent_id = opt_cstr(&context->parent_id);
    c->group_id = opt_cstr(&context->group_id);
    c->group_index = context->group_index.is_some ? (int64_t)context->group_index.val : -1;
    c->retries = context->retries;
    c->max_retries = context->max_retries.is_some ? (int64_t)context->max_retries.val : -1;
    c->eta = opt_cstr(&context->eta);
    c->expires = opt_cstr(&context->expires);
    c->priority = context->priority;
    c->time_limit_ms = context->time_limit_ms.is_some ? (int64_t)context->time_limit_ms.val : -1;
    c->soft_time_limit_ms = context->soft_time_limit_ms.is_some ? (int64_t)context->soft_time_limit_ms.val : -1;
    c->soft_deadline_ms = context->soft_deadline_ms.is_some ? (int64_t)context->soft_deadline_ms.val : -1;
    c->hostname = cstr(&context->hostname);
    c->headers = cstr(&context->headers);

    job_started_ms = monotonic_ms();
    run_task(&call, args, kwargs);

    plugin_string_free(name);
    plugin_string_free(args);
    plugin_string_free(kwargs);
    exports_chard_task_tasks_context_free(context);

    switch (call.state) {
    case DONE_FAILED:
        err->tag = CHARD_TASK_TYPES_TASK_ERROR_FAILED;
        set_failure(&err->val.failed, call.exception_type, call.message, call.args_json);
        return false;
    case DONE_REJECT:
        err->tag = CHARD_TASK_TYPES_TASK_ERROR_REJECT;
        err->val.reject.requeue = call.requeue;
        set_wit_option(&err->val.reject.reason, call.message);
        return false;
    case DONE_RETRY:
        err->tag = CHARD_TASK_TYPES_TASK_ERROR_RETRY;
        err->val.retry.countdown_ms.is_some = call.has_countdown;
        err->val.retry.countdown_ms.val = call.countdown_ms;
        err->val.retry.reason.is_some = call.reason != NULL;
        if (call.reason) to_wit_string(&err->val.retry.reason.val, call.reason, strlen(call.reason));
        err->val.retry.max_retries.is_some = call.has_max_retries;
        err->val.retry.max_retries.val = call.max_retries;
        err->val.retry.exc.is_some = call.exc_message != NULL;
        if (call.exc_message) set_failure(&err->val.retry.exc.val, call.exc_type, call.exc_message, call.exc_args_json);
        set_wit_option(&err->val.retry.expires, call.expires);
        return false;
    default:
        to_wit_string(ret, call.result, call.result_len);
        return true;
    }
}
