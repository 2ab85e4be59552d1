"""`pyio`: what a Python task can do beyond computing, one task per
capability (the same tasks as `jsio` and `cio`; HTTP is in `pyhttp`).
Granted in `pyio.toml` next to the plugin (see README, "Writing tasks")."""

import time
import chard
from chard import kv, task


class ExpectedException(Exception):
    """Raised with two arguments; a Celery client re-raises it with both."""


@task
def add(x, y):
    return x + y


@task
def scale(x, factor=10):
    """`x * factor`: a call may leave `factor` out, and no more."""
    return x * factor


@task
def progress(steps, step_ms):
    """Report `steps` PROGRESS states, `step_ms` apart (the worker's clock,
    no grant needed), so a client polling the result sees them."""
    for done in range(1, steps + 1):
        chard.update_state("PROGRESS", {"done": done, "total": steps})
        until = time.monotonic() + step_ms / 1000  # durations need no wall-clock grant
        while time.monotonic() < until:
            pass
    return {"done": steps}


@task
def fan_out(n):
    """Send `n` additions; return their ids."""
    return [chard.send(chard.signature("pyio.add", [i, i])) for i in range(n)]


@task
def send_then_fail():
    chard.send(chard.signature("pyio.add", [1, 1]))
    raise ValueError("failed after sending")


@task
def replace_with_chain(x):
    """Becomes `add(x, 1) | add(10)`: the result is x + 11."""
    chard.replace(chard.signature("pyio.add", [x, 1]) | chard.signature("pyio.add", [10]))


@task
def replace_with_group():
    """Becomes `group(add(0, 0), add(1, 1), add(2, 2))`: the result is [0, 2, 4]."""
    chard.replace(chard.group([chard.signature("pyio.add", [i, i]) for i in range(3)]))


@task
def once(order_id):
    """Does its work once per `order_id`, however often it is delivered."""
    if not kv.set_if_absent("done:%s" % order_id, b"1", ttl=3600):
        return {"order": order_id, "ran": False, "runs": kv.get_json("runs:%s" % order_id)}
    runs = kv.incr("runs")
    kv.set_json("runs:%s" % order_id, runs)
    return {"order": order_id, "ran": True, "runs": runs}


@task
def fail_with_args(message, code):
    raise ExpectedException(message, code)


@task
def retry_until_out(message, code):
    """Retries at once with no retry left: the job fails with `exc`, which a
    client re-raises with both arguments."""
    chard.retry(countdown=0, max_retries=0, exc=ExpectedException(message, code))


@task
def reject_it():
    """Refuses its message: it is dropped and no result is stored."""
    raise chard.Reject("not for us", requeue=False)
