"""Tests of `chard.http` against fake wasi:http bindings (the component runs
against a real worker in tests/e2e/guest_http.rs): the request it builds,
the order of the WASI calls, and how it reads a response or reports an
error. `python3 -m unittest discover -s sdk/python/tests`."""

import os
import sys
import types
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from chard import _imports, http  # noqa: E402


class Ok:
    def __init__(self, value):
        self.value = value


class Err(Exception):
    def __init__(self, value):
        super().__init__(value)
        self.value = value


class StreamError_Closed:
    pass


class ErrorCode_InternalError:
    def __init__(self, value):
        self.value = value


class Resource:
    """Records its own drop (``with``) in the shared log."""

    log = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        Resource.log.append("drop " + type(self).__name__)
        return None


def fake_bindings(status=200, body=b'{"ok": true}', error=None):
    calls = {"written": b"", "request": {}}
    log = Resource.log
    log.clear()

    class Fields(Resource):
        def __init__(self, entries=()):
            self.items = list(entries)

        @classmethod
        def from_list(cls, entries):
            calls["request"]["headers"] = list(entries)
            return cls(entries)

        def entries(self):
            return [("Content-Type", b"application/json"), ("X-Id", b"7")]

    class OutputStream(Resource):
        def blocking_write_and_flush(self, data):
            assert len(data) <= 4096
            calls["written"] += data

    class OutgoingBody(Resource):
        def write(self):
            return OutputStream()

        @staticmethod
        def finish(body, trailers):
            log.append("finish body")

    class OutgoingRequest(Resource):
        def __init__(self, fields):
            calls["request"]["fields"] = fields

        def set_method(self, method):
            calls["request"]["method"] = type(method).__name__

        def set_scheme(self, scheme):
            calls["request"]["scheme"] = type(scheme).__name__

        def set_authority(self, authority):
            calls["request"]["authority"] = authority

        def set_path_with_query(self, path):
            calls["request"]["path"] = path

        def body(self):
            return OutgoingBody()

    class InputStream(Resource):
        def __init__(self):
            self.chunks = [body[:5], body[5:]]

        def blocking_read(self, size):
            if self.chunks:
                return self.chunks.pop(0)
            raise Err(StreamError_Closed())

    class IncomingBody(Resource):
        def stream(self):
            return InputStream()

    class IncomingResponse(Resource):
        def status(self):
            return status

        def headers(self):
            return Fields()

        def consume(self):
            return IncomingBody()

    class Pollable(Resource):
        def block(self):
            log.append("block")

    class Future(Resource):
        def subscribe(self):
            return Pollable()

        def get(self):
            if error is not None:
                return Ok(Err(error))
            return Ok(Ok(IncomingResponse()))

    def handle(request, options):
        log.append("handle")
        return Future()

    def variant(name):
        return type(name, (), {"__init__": lambda self, *a: None})

    wasi = types.SimpleNamespace(
        Fields=Fields, OutgoingRequest=OutgoingRequest, OutgoingBody=OutgoingBody, RequestOptions=None,
        **{name: variant(name) for name in ("Method_Get", "Method_Post", "Method_Put", "Method_Delete", "Method_Head",
                                            "Method_Options", "Method_Patch", "Method_Other", "Scheme_Http", "Scheme_Https")},
    )
    return wasi, types.SimpleNamespace(handle=handle), calls


class HttpTest(unittest.TestCase):
    def use(self, **fake):
        wasi, handler, calls = fake_bindings(**fake)
        saved = _imports.imports
        _imports.imports = types.SimpleNamespace(wasi_http_types=wasi, outgoing_handler=handler)
        self.addCleanup(setattr, _imports, "imports", saved)
        return calls

    def test_post_json(self):
        calls = self.use(body=b'{"ok": true, "n": 42}')
        payload = {"text": "x" * 5000}  # more than one write
        response = http.post("https://api.example.com:8443/v1/items?x=1", json=payload, headers={"X-Token": "t"})
        request = calls["request"]
        self.assertEqual(request["method"], "Method_Post")
        self.assertEqual(request["scheme"], "Scheme_Https")
        self.assertEqual(request["authority"], "api.example.com:8443")
        self.assertEqual(request["path"], "/v1/items?x=1")
        self.assertEqual(request["headers"], [("x-token", b"t"), ("content-type", b"application/json"), ("content-length", b"5011")])
        self.assertEqual(len(calls["written"]), len(b'{"text":""}') + 5000)
        self.assertEqual(response.status, 200)
        self.assertEqual(response.json(), {"ok": True, "n": 42})
        self.assertEqual(response.header("x-id"), "7")
        # A child is dropped before its parent; the body is finished after the
        # request is handed over and before waiting for the answer.
        log = Resource.log
        self.assertLess(log.index("handle"), log.index("finish body"))
        self.assertLess(log.index("drop OutputStream"), log.index("finish body"))
        self.assertLess(log.index("finish body"), log.index("block"))
        self.assertLess(log.index("drop InputStream"), log.index("drop IncomingBody"))
        self.assertLess(log.index("drop IncomingBody"), log.index("drop IncomingResponse"))

    def test_get_and_errors(self):
        self.use(status=404, body=b"missing")
        response = http.get("http://127.0.0.1:8080/x")
        self.assertEqual((response.status, response.text, response.ok), (404, "missing", False))
        with self.assertRaises(http.RequestError):
            response.raise_for_status()
        denied = "HTTP to http://10.0.0.1 is not granted to plugin p: add it to http in p.toml"
        self.use(error=ErrorCode_InternalError(denied))
        with self.assertRaises(ConnectionError) as caught:
            http.get("http://10.0.0.1/")
        self.assertEqual(str(caught.exception), "GET http://10.0.0.1/: " + denied)
        with self.assertRaises(ValueError):
            http.get("ftp://example.com/")


if __name__ == "__main__":
    unittest.main()
