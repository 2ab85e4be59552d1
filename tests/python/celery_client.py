"""Celery client side of the interoperability tests.

Usage: celery_client.py SCENARIO BROKER_URL BACKEND_URL
Prints one JSON document with what the stock Celery 5.7 client observed;
the Rust tests assert on it.
"""
import json
import sys

from celery import Celery


def app_for(broker, backend):
    app = Celery("interop", broker=broker, backend=backend)
    app.conf.task_serializer = "json"
    app.conf.result_serializer = "json"
    app.conf.accept_content = ["json"]
    return app


def error_of(fn):
    try:
        fn()
    except Exception as exc:  # noqa: BLE001 - the type is what we report
        return {"type": type(exc).__name__, "module": type(exc).__module__, "args": list(exc.args)}
    return None


def basic(app):
    out = {}
    out["add"] = app.send_task("math.add", args=[2, 3]).get(timeout=20)
    out["kwargs"] = app.send_task("math.add", args=[1], kwargs={"y": 41}).get(timeout=20)
    out["xsum"] = app.send_task("math.xsum", args=[[1.5, 2.5, 3.0]]).get(timeout=20)
    out["echo"] = app.send_task("faults.echo", args=[{"s": "héllo", "l": [1, 2.5, None]}]).get(timeout=20)
    out["fail"] = error_of(lambda: app.send_task("faults.fail", args=["card declined"]).get(timeout=20))
    out["typed"] = error_of(
        lambda: app.send_task("faults.raise_as", args=["ValueError", "bad value 7"]).get(timeout=20)
    )
    out["unknown"] = error_of(lambda: app.send_task("no.such.task", args=[]).get(timeout=20))
    out["argerror"] = error_of(lambda: app.send_task("math.add", args=[1, 2, 3]).get(timeout=20))
    out["timeout"] = error_of(
        lambda: app.send_task("faults.spin", time_limit=1).get(timeout=20)
    )
    results = [app.send_task("math.add", args=[i, i]) for i in range(200)]
    out["many"] = [r.get(timeout=60) for r in results]
    failed = app.send_task("faults.fail", args=["x"])
    error_of(lambda: failed.get(timeout=20))
    out["failed_state"] = failed.state
    return out


def languages(app):
    """The same four tasks in every language; argv[4] lists the plugins."""
    out = {}
    for plugin in sys.argv[4].split(","):
        out[plugin] = {
            "add": app.send_task(f"{plugin}.add", args=[2, 3]).get(timeout=60),
            "add_kwargs": app.send_task(f"{plugin}.add", args=[], kwargs={"x": 40, "y": 2}).get(timeout=60),
            "mul": app.send_task(f"{plugin}.mul", args=[6, 7]).get(timeout=60),
            "xsum": app.send_task(f"{plugin}.xsum", args=[[1.5, 2.5, 3]]).get(timeout=60),
            # The Rust example keeps `fail` in its `faults` plugin.
            "fail": error_of(lambda: app.send_task(
                "faults.fail" if plugin == "math" else f"{plugin}.fail", args=["boom"]).get(timeout=60)),
            "arity": error_of(lambda: app.send_task(f"{plugin}.add", args=[1, 2, 3]).get(timeout=60)),
        }
    return out


def canvas(app):
    from celery import chain, group, signature

    add = lambda *a: signature("math.add", args=a, app=app)  # noqa: E731
    mul = lambda *a: signature("math.mul", args=a, app=app)  # noqa: E731
    out = {}
    out["chain"] = chain(add(2, 2), mul(10)).apply_async().get(timeout=30)
    out["chain3"] = chain(add(1, 2), mul(3), add(4)).apply_async().get(timeout=30)
    broken = chain(add(1, 1), signature("faults.raise_as", args=["ValueError", "bad 7"], immutable=True, app=app), mul(10)).apply_async()
    out["chain_error"] = error_of(lambda: broken.get(timeout=30))
    out["group"] = group(add(i, i) for i in range(10)).apply_async().get(timeout=30)
    parent = app.send_task("math.add", args=[2, 3], link=mul(10))
    out["link_parent"] = parent.get(timeout=30)
    out["link_child"] = parent.children[0].get(timeout=30) if parent.children else None
    return out


def builtins(app):
    """Celery's built-in canvas tasks, sent as a Celery client sends them."""
    from celery import signature
    from celery.canvas import chunks, xmap, xstarmap

    add = signature("math.add", app=app)
    echo = signature("faults.echo", app=app)
    out = {}
    out["starmap"] = xstarmap(add, [(1, 2), (3, 4), (5, 6)], app=app).apply_async().get(timeout=30)
    out["map"] = xmap(echo, ["a", [1], {"k": 2}], app=app).apply_async().get(timeout=30)
    out["chunks"] = chunks(add, [(i, i) for i in range(10)], 3, app=app).apply_async().get(timeout=30)
    out["starmap_error"] = error_of(
        lambda: xstarmap(add, [(1, 2), (1, 2, 3)], app=app).apply_async().get(timeout=30))
    # celery.chunks itself, as a worker receives it inside a canvas: it
    # sends the starmap jobs as a group and returns that group.
    sent = app.send_task("celery.chunks", kwargs={"task": dict(add), "it": [[1, 1], [2, 2], [3, 3]], "n": 2})
    group_tuple = sent.get(timeout=30)
    from celery.result import result_from_tuple
    out["chunks_task"] = result_from_tuple(group_tuple, app=app).get(timeout=30)
    out["accumulate"] = app.send_task("celery.accumulate", args=[1, 2, 3]).get(timeout=30)
    out["accumulate_index"] = app.send_task("celery.accumulate", args=[1, 2, 3], kwargs={"index": 1}).get(timeout=30)
    return out


def semantics(app):
    import time
    from datetime import datetime, timedelta, timezone

    out = {}
    out["flaky3"] = app.send_task("faults.flaky", args=[3]).get(timeout=30)
    out["flaky9"] = error_of(lambda: app.send_task("faults.flaky", args=[9]).get(timeout=30))
    start = time.time()
    out["countdown"] = app.send_task("math.add", args=[1, 2], countdown=1.5).get(timeout=30)
    out["countdown_waited"] = time.time() - start >= 1.4
    eta = datetime.now(timezone(timedelta(hours=-5))) + timedelta(seconds=1)  # an offset other than UTC
    start = time.time()
    out["eta"] = app.send_task("math.add", args=[2, 2], eta=eta).get(timeout=30)
    out["eta_waited"] = time.time() - start >= 0.9
    out["expired"] = error_of(lambda: app.send_task("math.add", args=[1, 1], countdown=2, expires=1).get(timeout=30))
    out["soft_limit_context"] = app.send_task("faults.context", time_limit=7, soft_time_limit=5).get(timeout=30)
    return out


def chords(app):
    from celery import chord, signature

    add = lambda *a: signature("math.add", args=a, app=app)  # noqa: E731
    xsum = signature("math.xsum", app=app)
    out = {}
    out["small"] = chord([add(i, i) for i in range(10)])(xsum).get(timeout=60)
    out["big"] = chord([add(i, 1) for i in range(1000)])(xsum).get(timeout=120)
    failing = [add(1, 1), signature("faults.raise_as", args=["ValueError", "bad 9"], app=app), add(2, 2)]
    result = chord(failing)(xsum)
    # .get() re-raises the failed header member's error (Celery follows
    # parents); the body itself is stored as FAILURE with a ChordError.
    out["failing_get"] = error_of(lambda: result.get(timeout=60))
    import time
    deadline = time.time() + 30
    while result.state != "FAILURE" and time.time() < deadline:
        time.sleep(0.05)
    out["failing"] = {"state": result.state, "type": type(result.result).__name__, "args": list(result.result.args)}
    return out


def control(app):
    import time

    out = {}
    out["ping"] = app.control.ping(timeout=1.5)
    registered = app.control.inspect(timeout=1.5).registered() or {}
    out["registered"] = {node: sorted(names) for node, names in registered.items()}
    later = app.send_task("math.add", args=[1, 1], countdown=2)
    app.control.revoke(later.id)
    out["revoked_eta"] = error_of(lambda: later.get(timeout=20))
    spinning = app.send_task("faults.spin")
    time.sleep(0.7)
    app.control.revoke(spinning.id, terminate=True)
    out["terminated"] = error_of(lambda: spinning.get(timeout=20))
    out["after"] = app.send_task("math.add", args=[2, 2]).get(timeout=20)
    return out


def priorities(app):
    """Only sends; the test starts the worker afterwards."""
    ids = {}
    for priority in [9, 6, 3, 0, None, 0, 5, 1]:
        options = {} if priority is None else {"priority": priority}
        result = app.send_task("faults.echo", args=[priority], **options)
        ids[result.id] = priority
    return ids


def time_ceiling(app):
    """Asks for more time than the worker's policy allows, and for none."""
    return {
        "longer": app.send_task("faults.context", time_limit=3600, soft_time_limit=1800).get(timeout=30),
        "shorter": app.send_task("faults.context", time_limit=7, soft_time_limit=5).get(timeout=30),
    }


def send_one(app):
    """Sends faults.sleep(ms) from argv[4]; prints the id."""
    return app.send_task("faults.sleep", args=[int(sys.argv[4])]).id


def revoke_unheld(app):
    """A task no worker holds (its queue has no consumer), then revoked."""
    waiting = app.send_task("math.add", args=[1, 2], queue="nobody-consumes-this")
    app.control.revoke(waiting.id)
    finished = app.send_task("math.add", args=[2, 2])
    done = finished.get(timeout=20)
    app.control.revoke(finished.id)
    import time
    time.sleep(1)  # the revoke is a broadcast with no reply
    return {
        "waiting": error_of(lambda: waiting.get(timeout=20)),
        "waiting_state": waiting.state,
        "finished": done,
        "finished_state": app.AsyncResult(finished.id).state,
    }


def revoke_stamped(app):
    """app.control.revoke_by_stamped_headers against held, running and later jobs."""
    import time

    def stamped(name, args, value, **options):
        return app.send_task(name, args=args, stamped_headers=["mon"], mon=value, **options)

    held = stamped("math.add", [1, 2], "batch-7", countdown=3)
    held_in_list = stamped("math.add", [1, 3], ["other", "batch-7"], countdown=3)
    other_batch = stamped("math.add", [1, 4], "batch-8", countdown=3)
    unstamped = app.send_task("math.add", args=[1, 5], countdown=3)
    running = stamped("faults.spin", [], "batch-7")
    for _ in range(200):
        active = app.control.inspect(timeout=1).active() or {}
        if any(task["id"] == running.id for tasks in active.values() for task in tasks):
            break
        time.sleep(0.05)
    replies = app.control.revoke_by_stamped_headers({"mon": "batch-7"}, terminate=True, reply=True, timeout=2)
    later = stamped("math.add", [2, 2], "batch-7")
    after = app.send_task("math.add", args=[2, 3]).get(timeout=20)
    out = {"replies": replies, "after": after}
    for key, result in [("held", held), ("held_in_list", held_in_list), ("running", running), ("later", later)]:
        out[key] = error_of(lambda: result.get(timeout=20))
        out[key + "_state"] = result.state
    out["other_batch"] = other_batch.get(timeout=20)
    out["unstamped"] = unstamped.get(timeout=20)
    return out


def send_stamped(app):
    """Sends math.add stamped tenant=acme, then unstamped; prints both ids."""
    return {
        "stamped": app.send_task("math.add", args=[1, 2], stamped_headers=["tenant"], tenant="acme").id,
        "unstamped": app.send_task("math.add", args=[2, 2]).id,
    }


def names(app):
    """Tasks served under the names Celery code gives them (tests/e2e/names.rs)."""
    registered = app.control.inspect(timeout=5).registered() or {}
    return {
        "dotless": app.send_task("auto_retry_class_task", args=[2, 3]).get(timeout=20),
        "module_path": app.send_task("myproject.billing.tasks.charge", kwargs={"cents": 250}).get(timeout=20),
        "renamed_away": error_of(lambda: app.send_task("math.add", args=[2, 3]).get(timeout=20)),
        "kept": app.send_task("math.mul", args=[6, 7]).get(timeout=20),
        "registered": sorted(name for names in registered.values() for name in names),
    }


def run_scenario(scenarios):
    """Runs the scenario argv[1] names, a function of `scenarios` (the
    calling script's globals()), with an app for BROKER argv[2] and BACKEND
    argv[3], and prints what it returns as JSON. Every client script of the
    e2e tests starts this way."""
    scenario, broker, backend = sys.argv[1:4]
    print(json.dumps(scenarios[scenario](app_for(broker, backend))))


if __name__ == "__main__":
    run_scenario(globals())
