"""Outbound HTTP from a task, over ``wasi:http/outgoing-handler``.

CPython's own ``urllib``/``http.client`` need sockets and ``ssl``, which the
WASI build componentize-py ships does not have, so this is a small client on
the standard WASI HTTP interface instead (the worker does the TLS, the
pooling and the time limits)::

    from chard import http

    @task
    def notify(url, event):
        response = http.post(url, json={"event": event}, timeout=5)
        response.raise_for_status()
        return response.json()

Only origins granted under ``http`` in the plugin's manifest are reachable;
any other request fails with :class:`RequestError` carrying the worker's
message, which names the key to add. A request the worker cannot complete
(refused, timed out, body over the size cap) fails the same way, and
:class:`RequestError` is a ``ConnectionError``, so
``@task(autoretry_for=[ConnectionError])`` retries it.

The body is read whole into memory (the worker caps its size); the calls
block the task, which is the only thing its instance runs.
"""

import json as _json
from urllib.parse import urljoin, urlsplit

from chard import _imports

__all__ = ["request", "get", "post", "put", "delete", "Response", "RequestError"]

_CHUNK = 4096  # the most `blocking-write-and-flush` takes in one call
_READ = 65536


class RequestError(ConnectionError):
    """The request was not made or got no response; ``str(exc)`` says why."""


class Response:
    """``status`` (int), ``headers`` (list of ``(name, value)``, names in
    lower case), ``body`` (bytes), ``url``."""

    def __init__(self, url, status, headers, body):
        self.url = url
        self.status = status
        self.headers = headers
        self.body = body

    @property
    def ok(self):
        return 200 <= self.status < 400

    def header(self, name, default=None):
        """The first value of header ``name`` (any case), or ``default``."""
        name = name.lower()
        for key, value in self.headers:
            if key == name:
                return value
        return default

    @property
    def text(self):
        return self.body.decode("utf-8", errors="replace")

    def json(self):
        return _json.loads(self.body.decode("utf-8"))

    def raise_for_status(self):
        if not self.ok:
            raise RequestError("HTTP %d from %s: %s" % (self.status, self.url, self.text[:200]))
        return self

    def __repr__(self):
        return "<Response [%d] %s>" % (self.status, self.url)


def _header_list(headers):
    items = headers.items() if isinstance(headers, dict) else (headers or ())
    out = []
    for name, value in items:
        if isinstance(value, str):
            value = value.encode("utf-8")
        elif not isinstance(value, (bytes, bytearray)):
            value = str(value).encode("utf-8")
        out.append((str(name).lower(), bytes(value)))
    return out


def prepare(method, url, headers=None, body=None, json=None):
    """The request as plain values: ``(method, scheme, authority,
    path_with_query, headers, body)``. Raises ``ValueError`` on a URL that
    is not absolute http(s)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError("url must be an absolute http:// or https:// URL, got %r" % (url,))
    header_list = _header_list(headers)
    if json is not None:
        if body is not None:
            raise ValueError("give body or json, not both")
        body = _json.dumps(json, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        if not any(name == "content-type" for name, _ in header_list):
            header_list.append(("content-type", b"application/json"))
    if isinstance(body, str):
        body = body.encode("utf-8")
    if body is not None and not any(name == "content-length" for name, _ in header_list):
        # Without it the body goes out chunked, which some servers refuse.
        header_list.append(("content-length", str(len(body)).encode("ascii")))
    path = (parts.path or "/") + ("?" + parts.query if parts.query else "")
    return method.upper(), parts.scheme, parts.netloc, path, header_list, body


def _error_text(code):
    """A WASI ``error-code`` as text: its payload when it has one (the
    worker's own message for a denied origin), else its case name."""
    name = type(code).__name__.replace("ErrorCode_", "")
    value = getattr(code, "value", None)
    if isinstance(value, str) and value:
        return value
    if value is not None and not isinstance(value, (int, str)):
        details = ", ".join("%s=%r" % item for item in vars(value).items() if item[1] is not None)
        return "%s(%s)" % (name, details) if details else name
    return name if value is None else "%s(%s)" % (name, value)


def _unwrap(err, what, url):
    value = getattr(err, "value", err)
    if type(value).__name__.startswith("ErrorCode_"):
        return RequestError("%s %s: %s" % (what, url, _error_text(value)))
    return RequestError("%s %s: %s" % (what, url, value))


MAX_REDIRECTS = 5
_REDIRECTS = (301, 302, 303, 307, 308)


def request(method, url, headers=None, body=None, json=None, timeout=None, follow_redirects=True):
    """Send a request and return its :class:`Response` (any status).

    Redirects are followed (up to ``MAX_REDIRECTS``) as new requests, which
    the worker checks against the grant again: a redirect to an origin not
    granted fails like a request to it. A 303, or a 301/302 after a method
    other than GET and HEAD, continues as a GET without a body."""
    response = _send(method, url, headers, body, json, timeout)
    for _ in range(MAX_REDIRECTS if follow_redirects else 0):
        location = response.header("location")
        if response.status not in _REDIRECTS or not location:
            return response
        url = urljoin(url, location)
        if response.status == 303 or (response.status in (301, 302) and method.upper() not in ("GET", "HEAD")):
            method, body, json = "GET", None, None
        response = _send(method, url, headers, body, json, timeout)
    if follow_redirects and response.status in _REDIRECTS and response.header("location"):
        raise RequestError("%s %s: more than %d redirects" % (method, url, MAX_REDIRECTS))
    return response


def _send(method, url, headers, body, json, timeout):
    """One request, no redirects."""
    method, scheme, authority, path, header_list, body = prepare(method, url, headers, body, json)
    wasi = _imports.imports.wasi_http_types
    handler = _imports.imports.outgoing_handler
    methods = {
        "GET": wasi.Method_Get, "HEAD": wasi.Method_Head, "POST": wasi.Method_Post, "PUT": wasi.Method_Put,
        "DELETE": wasi.Method_Delete, "OPTIONS": wasi.Method_Options, "PATCH": wasi.Method_Patch,
    }
    try:
        fields = wasi.Fields.from_list(header_list)
    except Exception as err:
        raise ValueError("bad request headers: %r" % (getattr(err, "value", err),)) from None
    outgoing = wasi.OutgoingRequest(fields)
    outgoing.set_method(methods[method]() if method in methods else wasi.Method_Other(method))
    outgoing.set_scheme(wasi.Scheme_Https() if scheme == "https" else wasi.Scheme_Http())
    outgoing.set_authority(authority)
    outgoing.set_path_with_query(path)
    options = None
    if timeout is not None:
        options = wasi.RequestOptions()
        nanos = int(timeout * 1e9)
        for setter in (options.set_connect_timeout, options.set_first_byte_timeout, options.set_between_bytes_timeout):
            try:
                setter(nanos)
            except Exception:
                pass  # the worker's own limits still apply
    outgoing_body = outgoing.body()
    try:
        future = handler.handle(outgoing, options)
    except Exception as err:
        raise _unwrap(err, method, url) from None
    with future:
        with outgoing_body.write() as stream:
            data = memoryview(body or b"")
            for start in range(0, len(data), _CHUNK):
                stream.blocking_write_and_flush(bytes(data[start:start + _CHUNK]))
        wasi.OutgoingBody.finish(outgoing_body, None)
        with future.subscribe() as ready:
            ready.block()
        outcome = future.get()
    # option<result<result<incoming-response, error-code>>>: after `block`
    # it is there, and this is the only `get`.
    if outcome is None or _is_err(outcome):
        raise RequestError("%s %s: no response" % (method, url))
    inner = outcome.value
    if _is_err(inner):
        raise RequestError("%s %s: %s" % (method, url, _error_text(inner.value)))
    return _read(url, inner.value)


def _is_err(value):
    # componentize-py's `Err` (only importable inside the component).
    return type(value).__name__ == "Err"


def _read(url, response):
    with response:
        status = response.status()
        with response.headers() as fields:
            headers = [(name.lower(), bytes(value).decode("latin-1")) for name, value in fields.entries()]
        chunks = []
        with response.consume() as incoming:
            with incoming.stream() as stream:
                while True:
                    try:
                        chunks.append(stream.blocking_read(_READ))
                    except Exception as err:
                        value = getattr(err, "value", None)
                        if type(value).__name__ == "StreamError_Closed":
                            break
                        raise RequestError("reading the body of %s failed: %s" % (url, _stream_error_text(value))) from None
    return Response(url, status, headers, b"".join(chunks))


def _stream_error_text(value):
    """Why a body read failed: the worker's error code when it gave one (the
    size limit, the time limit), else the stream error itself."""
    error = getattr(value, "value", None)
    if error is not None:
        try:
            code = _imports.imports.wasi_http_types.http_error_code(error)
        except Exception:
            code = None
        if code is not None:
            return _error_text(code)
        try:
            return error.to_debug_string()
        except Exception:
            pass
    return repr(value)


def get(url, headers=None, timeout=None):
    return request("GET", url, headers=headers, timeout=timeout)


def post(url, body=None, json=None, headers=None, timeout=None):
    return request("POST", url, headers=headers, body=body, json=json, timeout=timeout)


def put(url, body=None, json=None, headers=None, timeout=None):
    return request("PUT", url, headers=headers, body=body, json=json, timeout=timeout)


def delete(url, headers=None, timeout=None):
    return request("DELETE", url, headers=headers, timeout=timeout)
