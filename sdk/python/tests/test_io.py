"""Tests of what a Python task can do beyond computing: failures with
arguments, retry with exc/expires, Reject, progress, sending and replacing
tasks, the key-value store. The worker's imports are replaced by fakes that
record the calls (`chard._imports.imports`), so plain CPython runs them:
`python3 -m unittest discover -s sdk/python/tests` from the repo root."""

import datetime
import json
import os
import sys
import types
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import chard  # noqa: E402
from chard import _imports, dispatch, task  # noqa: E402


class Err(Exception):
    """What componentize-py raises for the `err` of a WIT result."""

    def __init__(self, value):
        super().__init__(value)
        self.value = value


class ExpectedException(Exception):
    pass


class FakeHost:
    """Stands in for the generated import modules; records every call."""

    def __init__(self):
        self.calls = []
        self.store = {}
        self.refuse = None

    def module(self, interface):
        def make(function):
            def call(*args):
                self.calls.append((interface, function) + args)
                if self.refuse:
                    raise Err(self.refuse)
                return getattr(self, function)(*args)

            return call

        names = {
            "progress": ["update_state"],
            "canvas": ["send", "replace"],
            "keyvalue": ["get", "set", "set_if_absent", "delete", "exists", "incr"],
            "host": ["now_ms"],
        }[interface]
        return types.SimpleNamespace(**{name: make(name) for name in names})

    def update_state(self, state, meta):
        return None

    def send(self, signature):
        return "child-%d" % len(self.calls)

    def replace(self, signature):
        return None

    def get(self, key):
        return self.store.get(key)

    def set(self, key, value, ttl):
        self.store[key] = value

    def set_if_absent(self, key, value, ttl):
        if key in self.store:
            return False
        self.store[key] = value
        return True

    def delete(self, key):
        return self.store.pop(key, None) is not None

    def exists(self, key):
        return key in self.store

    def incr(self, key, delta):
        self.store[key] = str(int(self.store.get(key, b"0")) + delta).encode()
        return int(self.store[key])

    def now_ms(self):
        return 1_700_000_000_000





@task
def fails_with_args(message, code):
    raise ExpectedException(message, code)


@task
def fails_with_object():
    raise ExpectedException("not json", object())


@task
def declines():
    raise chard.Failure("declined", exception_type="billing.CardDeclined", args=["declined", {"code": 51}])


@task
def retries_with_exc(when):
    chard.retry(countdown=2, exc=ExpectedException("upstream down", 503), expires=when)


@task
def rejects(requeue):
    raise chard.Reject("poison message", requeue=requeue)


@task
def reports(steps):
    for step in range(steps):
        chard.update_state("PROGRESS", {"done": step + 1, "total": steps})
    return steps


@task
def fans_out(n):
    return [chard.send(chard.signature("math.add", [i, i])) for i in range(n)]


@task
def replaces_itself(n):
    try:
        chard.replace(chard.group([chard.signature("math.add", [i, i]) for i in range(n)]))
    except Exception:
        return "replace was swallowed"
    return "not reached"


@task
def once(order_id):
    if not chard.kv.set_if_absent("done:%s" % order_id, b"1", ttl=60):
        return "skipped"
    chard.kv.set_json("order:%s" % order_id, {"id": order_id, "ok": True})
    return chard.kv.incr("count")


class IoTest(unittest.TestCase):
    def setUp(self):
        self.host = FakeHost()
        self.saved = _imports.imports
        fake = types.SimpleNamespace(**{name: self.host.module(name) for name in ("progress", "canvas", "keyvalue", "host")})
        _imports.imports = fake
        self.saved_now = chard.now_ms
        chard.now_ms = self.host.now_ms

    def tearDown(self):
        _imports.imports = self.saved
        chard.now_ms = self.saved_now

    def test_failure_args_round_trip(self):
        self.assertEqual(
            dispatch("fails_with_args", '["card declined", 42]', "{}"),
            ("failed", "test_io.ExpectedException", "('card declined', 42)", '["card declined",42]'),
        )
        # Arguments that are not JSON: the message alone, as a client would see it.
        self.assertEqual(dispatch("fails_with_object", "[]", "{}")[3], None)
        self.assertEqual(
            dispatch("declines", "[]", "{}"),
            ("failed", "billing.CardDeclined", "declined", '["declined",{"code":51}]'),
        )

    def test_retry_with_exc_and_expires(self):
        outcome = dispatch("retries_with_exc", '["2030-01-02T03:04:05+00:00"]', "{}")
        self.assertEqual(
            outcome,
            (
                "retry",
                2000,
                "test_io.ExpectedException: ('upstream down', 503)",
                None,
                ("test_io.ExpectedException", "('upstream down', 503)", '["upstream down",503]'),
                "2030-01-02T03:04:05+00:00",
            ),
        )
        # Seconds from now, on the worker's clock.
        self.assertEqual(dispatch("retries_with_exc", "[60]", "{}")[5], "2023-11-14T22:14:20+00:00")
        self.assertEqual(
            chard.Retry(expires=datetime.datetime(2030, 1, 1, 12, 0)).expires, "2030-01-01T12:00:00+00:00"
        )
        self.assertEqual(dispatch("retries_with_exc", '["next tuesday"]', "{}")[:2], ("failed", "ValueError"))

    def test_reject(self):
        self.assertEqual(dispatch("rejects", "[true]", "{}"), ("reject", True, "poison message"))
        self.assertEqual(dispatch("rejects", "[false]", "{}"), ("reject", False, "poison message"))

    def test_progress(self):
        self.assertEqual(dispatch("reports", "[3]", "{}"), ("ok", "3"))
        self.assertEqual(
            self.host.calls,
            [("progress", "update_state", "PROGRESS", '{"done":%d,"total":3}' % i) for i in (1, 2, 3)],
        )

    def test_refused_call_fails_the_task_with_the_workers_message(self):
        self.host.refuse = "progress is not granted to plugin p: add progress = true to [capabilities] in p.toml"
        self.assertEqual(dispatch("reports", "[1]", "{}"), ("failed", None, self.host.refuse, None))

    def test_send(self):
        self.assertEqual(dispatch("fans_out", "[2]", "{}"), ("ok", '["child-1","child-2"]'))
        sent = [json.loads(call[2]) for call in self.host.calls]
        self.assertEqual(
            sent[1],
            {"task": "math.add", "args": [1, 1], "kwargs": {}, "options": {}, "subtask_type": None, "immutable": False},
        )

    def test_replace_ends_the_task(self):
        # `except Exception` in the task does not catch the replacement.
        self.assertEqual(dispatch("replaces_itself", "[2]", "{}"), ("ok", "null"))
        (call,) = self.host.calls
        self.assertEqual(call[:2], ("canvas", "replace"))
        replacement = json.loads(call[2])
        self.assertEqual(replacement["subtask_type"], "group")
        self.assertEqual([m["args"] for m in replacement["kwargs"]["tasks"]], [[0, 0], [1, 1]])

    def test_kv(self):
        self.assertEqual(dispatch("once", '["a"]', "{}"), ("ok", "1"))
        self.assertEqual(dispatch("once", '["a"]', "{}"), ("ok", '"skipped"'))
        self.assertEqual(dispatch("once", '["b"]', "{}"), ("ok", "2"))
        self.assertEqual(chard.kv.get_json("order:b"), {"id": "b", "ok": True})
        self.assertEqual(self.host.calls[0], ("keyvalue", "set_if_absent", "done:a", b"1", 60000))
        self.assertIsNone(chard.kv.get("nope"))
        self.assertTrue(chard.kv.delete("done:a"))
        self.assertFalse(chard.kv.exists("done:a"))
        with self.assertRaises(TypeError):
            chard.kv.set("k", 42)


class CanvasTest(unittest.TestCase):
    def test_shapes(self):
        add = chard.signature
        flow = add("math.add", [2, 2]) | add("math.mul", [10]) | add("math.add", [1], immutable=True)
        self.assertEqual(flow["subtask_type"], "chain")
        self.assertEqual([step["task"] for step in flow["kwargs"]["tasks"]], ["math.add", "math.mul", "math.add"])
        self.assertTrue(flow["kwargs"]["tasks"][2]["immutable"])
        self.assertEqual(flow, chard.chain(add("math.add", [2, 2]), add("math.mul", [10]), add("math.add", [1], immutable=True)))
        members = [add("math.add", [1, 1]), add("math.add", [2, 2])]
        self.assertEqual(chard.group(members), chard.group(*members))
        self.assertEqual(chard.group(members)["task"], "celery.group")
        c = chard.chord(members, add("math.xsum"))
        self.assertEqual((c["task"], c["subtask_type"]), ("celery.chord", "chord"))
        self.assertEqual(c["kwargs"]["body"]["task"], "math.xsum")
        self.assertEqual(len(c["kwargs"]["header"]), 2)
        linked = add("math.add", [1, 1], queue="fast").link(add("math.log")).link_error(add("math.alert"))
        self.assertEqual(linked["options"]["queue"], "fast")
        self.assertEqual(linked["options"]["link"][0]["task"], "math.log")
        self.assertEqual(linked["options"]["link_error"][0]["task"], "math.alert")
        self.assertEqual(json.loads(linked.to_json()), linked)
        with self.assertRaises(TypeError):
            add("math.add", "12")
        with self.assertRaises(TypeError):
            chard.group([1, 2])


if __name__ == "__main__":
    unittest.main()
