"""Celery client side of the tests of what a task can do (plugin `io`).

Usage: celery_io.py SCENARIO BROKER_URL BACKEND_URL [ARG]
Prints one JSON document with what the stock Celery 5.7 client observed.
"""
import time

from celery import chain, chord, group

from celery_client import error_of, run_scenario


def progress(app):
    """Polls io.progress(10 steps) while it runs."""
    result = app.send_task("io.progress", args=[10, 150])
    seen = []
    deadline = time.monotonic() + 60
    while not result.ready() and time.monotonic() < deadline:
        if result.state == "PROGRESS" and (not seen or seen[-1] != result.info):
            seen.append(result.info)
        time.sleep(0.02)
    return {"seen": seen, "final": result.get(timeout=20), "state": result.state, "info": result.info}


def fan_out(app):
    ids = app.send_task("io.fan_out", args=[100]).get(timeout=30)
    children = [app.AsyncResult(i).get(timeout=60) for i in ids]
    return {"ids": len(set(ids)), "children": children}


def send_then_fail(app):
    failed = app.send_task("io.send_then_fail")
    error = error_of(lambda: failed.get(timeout=20))
    child_id = error["args"][0].rsplit(" ", 1)[-1]
    # Same queue, one worker, FIFO: once this one ran, a child sent before
    # it would have run too.
    app.send_task("math.add", args=[0, 0]).get(timeout=20)
    return {"error": error, "child_state": app.AsyncResult(child_id).state}


def sig(app, name, *args, immutable=False):
    return app.signature(name, args=args, immutable=immutable)


def canvas(app):
    out = {}
    flow = chain(sig(app, "math.add", 2, 2), sig(app, "math.mul", 10), sig(app, "math.add", 1))
    out["chain"] = app.AsyncResult(app.send_task("io.send", args=[flow]).get(timeout=20)).get(timeout=20)
    members = group(sig(app, "math.add", i, i) for i in range(5))
    group_id = app.send_task("io.send", args=[members]).get(timeout=20)
    out["group_id_is_str"] = isinstance(group_id, str)
    both = chord([sig(app, "math.add", 1, 1), sig(app, "math.add", 2, 2)], sig(app, "math.xsum"))
    out["chord"] = app.AsyncResult(app.send_task("io.send", args=[both]).get(timeout=20)).get(timeout=30)
    return out


def replace(app):
    out = {}
    replacement = group(sig(app, "math.add", 1, 1), sig(app, "math.add", 2, 2))
    flow = chain(
        sig(app, "math.add", 1, 1),
        sig(app, "io.replace_with", dict(replacement), immutable=True),
        sig(app, "math.xsum"),
    )
    result = flow.apply_async()
    out["chain_group"] = result.get(timeout=30)
    out["replaced_step"] = result.parent.get(timeout=30)
    single = app.send_task("io.replace_with", args=[dict(sig(app, "math.mul", 6, 7))])
    out["single"] = single.get(timeout=30)
    header = [sig(app, "io.replace_with", dict(sig(app, "math.add", 5, 5)), immutable=True), sig(app, "math.add", 1, 1)]
    out["chord_member"] = chord(header, sig(app, "math.xsum")).apply_async().get(timeout=30)
    return out


def once(app):
    results = [app.send_task("io.once", args=["order-7"]) for _ in range(20)]
    return {"outcomes": sorted(r.get(timeout=30) for r in results), "tour": app.send_task("io.kv_tour", args=["k"]).get(timeout=20)}


def nested(app):
    """Nested canvases a task sends or is replaced by; run on a Python and a
    Chard worker and compared (tests/e2e/capabilities.rs)."""
    def add(*args):
        return sig(app, "math.add", *args)

    def replace_with(canvas):
        return sig(app, "io.replace_with", dict(canvas), immutable=True)

    xsum, identity = sig(app, "canvas.tsum"), sig(app, "canvas.identity")
    out = {}
    two_after = chain(add(1, 1), replace_with(group(add(1, 1), add(2, 2))), xsum, add(10))
    out["group_then_two_steps"] = two_after.apply_async().get(timeout=30)
    out["member_to_group"] = chord([replace_with(group(add(1, 1), add(2, 2))), add(3, 3)], identity).apply_async().get(timeout=30)
    out["member_to_chord"] = chord([replace_with(chord([add(1, 1), add(2, 2)], xsum)), add(3, 3)], identity).apply_async().get(timeout=30)
    chain_with_group = chain(add(1, 1), group(add(1), add(2)), xsum)
    out["to_chain_with_group"] = app.send_task("io.replace_with", args=[dict(chain_with_group)]).get(timeout=30)
    sender = app.send_task("io.send", args=[dict(chain_with_group)])
    sent = sender.get(timeout=30)
    out["sent_chain_with_group"] = app.AsyncResult(sent).get(timeout=30)
    # Celery lists each message a task sends (a chain: its first task; a
    # group: one GroupResult) as a child of the task's result.
    out["children"] = [[type(child).__name__, len(getattr(child, "results", None) or [])] for child in sender.children]
    out["first_child_ran"] = sender.children[0].get(timeout=30)
    sends_group = app.send_task("io.send", args=[dict(group(add(1, 1), add(2, 2)))])
    group_id = sends_group.get(timeout=30)
    out["group_child"] = [[type(child).__name__, child.id == group_id, [r.get(timeout=30) for r in child.results]] for child in sends_group.children]
    chain_body = chord([add(1, 1), add(2, 2)], chain(xsum, add(1)))
    out["sent_chord_with_chain_body"] = app.AsyncResult(app.send_task("io.send", args=[dict(chain_body)]).get(timeout=30)).get(timeout=30)
    return out


def denied(app):
    return {
        name: error_of(lambda name=name, args=args: app.send_task(f"io.{name}", args=args).get(timeout=20))
        for name, args in [("progress", [1, 0]), ("fan_out", [1]), ("once", ["x"]), ("replace_with", [{"task": "math.add"}])]
    }


def request(app):
    out = {}
    out["request"] = app.send_task(
        "io.request", headers={"x-tenant": "acme"}, priority=7, time_limit=30, soft_time_limit=20
    ).get(timeout=20)
    out["exc_args"] = error_of(lambda: app.send_task("io.raise_with", args=["ValueError", ["msg", 42]]).get(timeout=20))
    out["retry_exc"] = error_of(lambda: app.send_task("io.retry_exc").get(timeout=20))
    expired = app.send_task("io.retry_expired")
    out["retry_expired"] = error_of(lambda: expired.get(timeout=20))
    out["rest"] = app.send_task("io.rest", args=[1, 2, 3, 4], kwargs={"k": None}).get(timeout=20)
    out["rest_missing"] = app.send_task("io.rest", args=[1]).get(timeout=20)
    out["rest_null"] = app.send_task("io.rest", args=[1], kwargs={"second": None}).get(timeout=20)
    out["requeued"] = app.send_task("io.reject", args=["requeue-count", True]).get(timeout=20)
    dropped = app.send_task("io.reject", args=["drop-count", False])
    app.send_task("math.add", args=[0, 0]).get(timeout=20)
    out["dropped_state"] = dropped.state
    return out


if __name__ == "__main__":
    run_scenario(globals())
