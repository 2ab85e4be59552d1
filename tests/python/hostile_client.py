"""Messages a stock Celery 5.7 client can send that once stopped a worker.

Usage: hostile_client.py SCENARIO BROKER BACKEND; prints one JSON document.
"""

from celery_client import error_of, run_scenario


def absurd_limits(app):
    """time_limit=1e300 panicked every executor thread it reached."""
    absurd = [app.send_task("math.add", args=[1, 2], time_limit=1e300, soft_time_limit=1e300) for _ in range(2)]
    after = app.send_task("math.add", args=[3, 4])
    return {"absurd": [r.get(timeout=30) for r in absurd], "after": after.get(timeout=30)}


def huge_error(app):
    """A 20 MB argument echoed in an exception message."""
    big = "x" * (20 << 20)
    result = app.send_task("faults.fail", args=[big])
    error = error_of(lambda: result.get(timeout=60))
    message = str(error["args"][0]) if error["args"] else ""
    return {"error_length": len(message), "error_type": error["type"], "starts": message[:10]}


def eta_jobs(app):
    """Sends math.add(i, 100) for i in 0..20, each 6 s ahead; waits for all.
    Returns each job's result and whether it finished before its ETA."""
    import datetime

    sent = [(i, app.send_task("math.add", args=[i, 100], countdown=6)) for i in range(20)]
    etas = {r.id: datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=6) for _, r in sent}
    out = []
    for i, result in sent:
        value = result.get(timeout=60)
        done = result.date_done
        if isinstance(done, str):
            done = datetime.datetime.fromisoformat(done)
        if done.tzinfo is None:
            done = done.replace(tzinfo=datetime.timezone.utc)
        # The ETA was set a moment before `etas` was taken: allow 1 s.
        early = done < etas[result.id] - datetime.timedelta(seconds=1)
        out.append({"i": i, "value": value, "early": early})
    return out


if __name__ == "__main__":
    run_scenario(globals())
