"""Celery client side of the guest I/O tests (tests/e2e/guest_io.rs and
guest_http.rs): what the `pyio`, `jsio` and `cio` plugins (and the `*http`
ones) do beyond computing, as a stock Celery 5.7 client sees it.

Usage: guest_io.py SCENARIO BROKER_URL BACKEND_URL PLUGIN [ARG...]
Prints one JSON document; the Rust tests assert on it.
"""
import json
import sys
import time

from celery.result import AsyncResult

from celery_client import app_for, error_of

TIMEOUT = 60


def call(app, plugin, task, *args):
    return app.send_task("%s.%s" % (plugin, task), args=list(args)).get(timeout=TIMEOUT)


def http(app, plugin, base, denied):
    """GET and POST JSON to the test's server; a GET to an origin not
    granted (`denied`)."""
    def attempt(task, *args):
        """The result, or the error as `error_of` reports it (without a grant)."""
        outcome = {}
        error = error_of(lambda: outcome.setdefault("value", call(app, plugin, task, *args)))
        return outcome["value"] if error is None else error

    return {
        "get": attempt("get_json", base + "/json"),
        "post": attempt("post_json", base + "/echo", {"items": [1, 2.5, None], "name": "h\u00e9"}),
        "denied": error_of(lambda: call(app, plugin, "get_json", denied + "/json")),
    }


def http_get(app, plugin, *urls):
    """`get_json` of each URL in turn: its result, or its error as
    `error_of` reports it, as {"value": ...} or {"error": ...}."""
    out = []
    for url in urls:
        outcome = {}
        error = error_of(lambda: outcome.setdefault("value", call(app, plugin, "get_json", url)))
        out.append(outcome if error is None else {"error": error})
    return out


def progress(app, plugin):
    """Polls a task that reports 5 PROGRESS steps, 200 ms apart, the way
    celery-progress does, until it is ready."""
    result = app.send_task("%s.progress" % plugin, args=[5, 200])
    seen = []
    deadline = time.monotonic() + TIMEOUT
    while not result.ready() and time.monotonic() < deadline:
        # One read of the stored meta: `result.state` then `result.info` are
        # two, and the final result can land between them (PROGRESS paired
        # with the return value).
        meta = result.backend.get_task_meta(result.id)
        state, info = meta["status"], meta["result"]
        if state == "PROGRESS" and (not seen or seen[-1] != info):
            seen.append(info)
        time.sleep(0.01)
    return {"seen": seen, "final": result.get(timeout=TIMEOUT), "final_state": result.state}


def canvas(app, plugin):
    """Sending from a task, and replacing."""
    parent = app.send_task("%s.fan_out" % plugin, args=[5])
    ids = parent.get(timeout=TIMEOUT)
    children = [AsyncResult(task_id, app=app).get(timeout=TIMEOUT) for task_id in ids]
    return {
        "ids": ids,
        "children": children,
        "replace_chain": call(app, plugin, "replace_with_chain", 5),
        "replace_group": call(app, plugin, "replace_with_group"),
    }


def send_then_fail(app, plugin):
    """A task that sends, then fails, then a sentinel task; on a worker that
    runs one job at a time in queue order, anything the failed task had sent
    would have run before the sentinel. Counts the results stored."""
    failed = error_of(lambda: call(app, plugin, "send_then_fail"))
    sentinel = call(app, plugin, "add", 20, 22)
    return {"error": failed, "sentinel": sentinel, "results": len(app.backend.client.keys("celery-task-meta-*"))}


def denied(app, plugin):
    """Every capability of the io plugins called without its grant."""
    return {
        "progress": error_of(lambda: call(app, plugin, "progress", 1, 0)),
        "send": error_of(lambda: call(app, plugin, "fan_out", 1)),
        "keyvalue": error_of(lambda: call(app, plugin, "once", "x")),
    }


def once(app, plugin, order_id):
    """The same order twice: the second delivery skips the work."""
    return [call(app, plugin, "once", order_id) for _ in range(2)]


def errors(app, plugin):
    """Exception args on a failure and on a retry's `exc`; a rejected
    message (no result; the sentinel after it runs)."""
    rejected = app.send_task("%s.reject_it" % plugin)
    sentinel = call(app, plugin, "add", 1, 2)
    return {
        "args": error_of(lambda: call(app, plugin, "fail_with_args", "card declined", 42)),
        "retry_exc": error_of(lambda: call(app, plugin, "retry_until_out", "upstream down", 503)),
        "rejected_state": rejected.state,
        "sentinel": sentinel,
    }


def cost(app, plugin, base, count):
    """Seconds per job, one job at a time: the median of `count` calls of
    `add` and of a loopback GET, interleaved so that the machine's drift
    hits both alike."""
    count = int(count)
    timings = {"add": [], "get": []}
    calls = (("add", "add", [1, 2]), ("get", "get_json", [base + "/json"]))
    for name, task, args in calls:
        call(app, plugin, task, *args)  # warm: the plugin's first job
    for _ in range(count):
        for name, task, args in calls:
            started = time.perf_counter()
            call(app, plugin, task, *args)
            timings[name].append(time.perf_counter() - started)
    return {name: sorted(values)[len(values) // 2] for name, values in timings.items()}


def typing(app, plugin):
    """Chain steps to `scale(x, factor=10)`: leaving `factor` out binds,
    one argument too many does not, and then `add` (the sender) fails with
    the TypeError before `scale` is sent (Celery's `Task.typing`)."""
    from celery import chain

    def step(task, *args, immutable=False):
        return app.signature("%s.%s" % (plugin, task), args=args, immutable=immutable)

    out = {}
    for name, args in (("default", ()), ("given", (3,)), ("too_many", (3, 4))):
        result = chain(step("add", 1, 1, immutable=True), step("scale", *args)).apply_async()
        outcome = {}
        error = error_of(lambda: outcome.setdefault("value", result.get(timeout=TIMEOUT)))
        out[name] = outcome["value"] if error is None else {"scale": error, "add": error_of(lambda: result.parent.get(timeout=TIMEOUT))}
    return out


def main():
    scenario, broker, backend, plugin = sys.argv[1:5]
    app = app_for(broker, backend)
    print(json.dumps(globals()[scenario](app, plugin, *sys.argv[5:])))


if __name__ == "__main__":
    main()
