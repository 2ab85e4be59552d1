"""Tests of the Python SDK's pure-Python core (no component needed):
`python3 -m unittest discover -s sdk/python/tests` from the repo root."""

import json
import os
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import chard  # noqa: E402
from chard import Failure, Retry, dispatch, retry, task  # noqa: E402


class CardDeclined(Exception):
    pass


chard._TASKS.clear()


@task
def add(x, y):
    """Add two numbers.

    More text."""
    return x + y


@task(name="charge", time_limit=5, soft_time_limit=0.5, max_retries=3, autoretry_for=[ConnectionError, "x.Y"],
      retry_backoff=True, rate_limit="10/s", queue="billing", memory_limit=64, default_retry_delay=2)
def charge_card(card, cents=100, *, currency="EUR"):
    if cents == 0:
        raise CardDeclined("nothing to charge")
    return {"card": card, "cents": cents, "currency": currency}


@task
def flaky():
    retry(countdown=1.5, reason="busy", max_retries=9)


@task
def explicit():
    raise Failure("declined", exception_type="billing.errors.CardDeclined")


@task
def spread(*args, **kwargs):
    return [list(args), kwargs]


@task
def patch(record_id, email=chard.MISSING, *tags, **changes):
    state = "missing" if email is chard.MISSING else "null" if email is None else email
    return [record_id, state, list(tags), changes]


@task
def not_json():
    return {1, 2}


@task
def scale(x, factor=2, /):
    return x * factor


class DispatchTest(unittest.TestCase):
    def test_ok(self):
        self.assertEqual(dispatch("add", "[2,3]", "{}"), ("ok", "5"))
        self.assertEqual(dispatch("add", "[1.5]", '{"y":2.5}'), ("ok", "4.0"))
        self.assertEqual(dispatch("add", "", ""), ("failed", "TypeError", "add: missing required argument 'x'", None))
        self.assertEqual(dispatch("spread", "[1]", '{"k":2}'), ("ok", '[[1],{"k":2}]'))
        self.assertEqual(json.loads(dispatch("charge", '["c"]', '{"currency":"USD"}')[1])["currency"], "USD")

    def test_binding_errors(self):
        self.assertEqual(dispatch("add", "[1,2,3]", "{}"), ("failed", "TypeError", "add: expected 2 arguments (x, y), got 3", None))
        self.assertEqual(dispatch("add", "[1]", '{"x":1}'), ("failed", "TypeError", "add: got multiple values for argument 'x'", None))
        self.assertEqual(dispatch("add", "[1,2]", '{"z":1}'), ("failed", "TypeError", "add: got an unexpected keyword argument 'z'", None))
        self.assertEqual(dispatch("charge", "[1,2,3]", "{}"),
                         ("failed", "TypeError", "charge: expected 2 arguments (card, cents), got 3", None))
        self.assertEqual(dispatch("add", "{}", "{}")[:2], ("failed", "TypeError"))
        self.assertEqual(dispatch("add", "[1", "{}")[:2], ("failed", "TypeError"))
        self.assertEqual(dispatch("add", "[1,2]", "[]")[:2], ("failed", "TypeError"))
        self.assertEqual(dispatch("add", "[1,2]", "null"), ("ok", "3"))

    def test_positional_calls(self):
        # Positional arguments alone that fit take a shorter path than binding.
        self.assertEqual(dispatch("scale", "[3]", "{}"), ("ok", "6"))
        self.assertEqual(dispatch("scale", "[3, 4]", ""), ("ok", "12"))
        self.assertEqual(dispatch("scale", "[]", "{}"), ("failed", "TypeError", "scale: missing required argument 'x'", None))
        self.assertEqual(dispatch("scale", "[1,2,3]", "{}"),
                         ("failed", "TypeError", "scale: expected 2 arguments (x, factor), got 3", None))
        self.assertEqual(dispatch("scale", "[3]", '{"factor":4}')[:2], ("failed", "TypeError"))  # positional-only
        self.assertEqual(dispatch("add", " \n[2, 3]\t", " {} "), ("ok", "5"))
        self.assertEqual(dispatch("add", "[2, 3] x", "{}")[:2], ("failed", "TypeError"))
        self.assertEqual(dispatch("add", "[2, 3]", "{} {}")[:2], ("failed", "TypeError"))

    def test_var_args_and_missing(self):
        # Left out and sent as null are two different things.
        self.assertEqual(dispatch("patch", "[7]", "{}"), ("ok", '[7,"missing",[],{}]'))
        self.assertEqual(dispatch("patch", "[7, null]", "{}"), ("ok", '[7,"null",[],{}]'))
        self.assertEqual(dispatch("patch", "[7]", '{"email": null}'), ("ok", '[7,"null",[],{}]'))
        self.assertEqual(dispatch("patch", '[7, "a@b", "x", "y"]', '{"name": "A", "age": null}'),
                         ("ok", '[7,"a@b",["x","y"],{"name":"A","age":null}]'))
        self.assertEqual(dispatch("patch", "[]", '{"record_id": 1, "other": 2}'), ("ok", '[1,"missing",[],{"other":2}]'))
        self.assertEqual(dispatch("patch", "[1]", '{"record_id": 1}'),
                         ("failed", "TypeError", "patch: got multiple values for argument 'record_id'", None))
        self.assertEqual({t.name: t.params for t in chard.tasks()}["patch"], ["record_id", "email?", "*tags", "**changes"])
        self.assertFalse(chard.MISSING)
        self.assertIs(chard.MISSING, type(chard.MISSING)())
        self.assertEqual(repr(chard.MISSING), "MISSING")
        self.assertEqual(dispatch("spread", "[]", "{}"), ("ok", "[[],{}]"))

    def test_missing_is_not_json(self):
        chard._TASKS.pop("leak", None)
        task(name="leak")(lambda: chard.MISSING)
        try:
            self.assertEqual(dispatch("leak", "[]", "{}")[:2], ("failed", "TypeError"))
        finally:
            chard._TASKS.pop("leak", None)

    def test_warm_up_runs_no_task(self):
        before = list(chard.tasks())
        chard._warm_up()
        self.assertEqual(chard.tasks(), before)
        self.assertIsNone(chard.context())

    def test_failures(self):
        self.assertEqual(dispatch("charge", '["c",0]', "{}"), ("failed", "test_chard.CardDeclined", "nothing to charge", None))
        self.assertEqual(dispatch("add", '[1,"a"]', "{}")[:2], ("failed", "TypeError"))
        self.assertEqual(dispatch("explicit", "[]", "{}"), ("failed", "billing.errors.CardDeclined", "declined", None))
        self.assertEqual(dispatch("nope", "[]", "{}"), ("failed", "NotRegistered", "nope", None))
        self.assertEqual(dispatch("not_json", "[]", "{}")[:2], ("failed", "TypeError"))

    def test_retry(self):
        self.assertEqual(dispatch("flaky", "[]", "{}"), ("retry", 1500, "busy", 9, None, None))
        self.assertEqual(Retry(exc=ConnectionError("refused")).reason, "ConnectionError: refused")

    def test_metadata(self):
        tasks = {t.name: t for t in chard.tasks()}
        self.assertEqual(tasks["add"].params, ["x", "y"])
        self.assertEqual(tasks["add"].doc, "Add two numbers.")
        self.assertEqual(tasks["charge"].params, ["card", "cents?", "*", "currency?"])
        self.assertEqual(tasks["spread"].params, ["*args", "**kwargs"])
        d = tasks["charge"].defaults
        self.assertEqual(d["time_limit_ms"], 5000)
        self.assertEqual(d["soft_time_limit_ms"], 500)
        self.assertEqual(d["max_retries"], 3)
        self.assertEqual(d["autoretry_for"], ["ConnectionError", "x.Y"])
        self.assertEqual(d["retry_backoff_ms"], 1000)
        self.assertEqual(d["default_retry_delay_ms"], 2000)
        self.assertEqual(charge_card("c", 1)["cents"], 1)  # still callable directly

    def test_bad_options(self):
        with self.assertRaises(TypeError):
            task(bogus=1)(lambda: None)
        with self.assertRaises(ValueError):
            task(name="x", rate_limit="fast")(lambda: None)
        with self.assertRaises(ValueError):
            task(add.function)  # registered twice

    def test_exception_type(self):
        self.assertEqual(chard.exception_type(ValueError()), "ValueError")
        self.assertEqual(chard.exception_type(CardDeclined()), "test_chard.CardDeclined")


if __name__ == "__main__":
    unittest.main()
