"""Monitoring side of the events tests: Celery's own event receiver and
inspect client, and Flower's HTTP API, watching a Chard worker.

Usage: celery_events.py SCENARIO BROKER_URL BACKEND_URL HOSTNAME [FLOWER_URL]

`watch` talks with the Rust test over stdout: it prints `ready` once it is
subscribed (the test then starts the worker) and `stop-me` when the test
should stop the worker gracefully; every scenario ends with one line of
JSON that the Rust test asserts on.
"""
import json
import sys
import threading
import time
import urllib.request

from celery.events.state import State

from celery_client import app_for


def say(line):
    print(line, flush=True)


class Recorder:
    """Every event Celery's `app.events.Receiver` delivers, in order."""

    def __init__(self, app):
        self.app = app
        self.events = []
        self.changed = threading.Condition()
        threading.Thread(target=self._capture, daemon=True).start()

    def _capture(self):
        with self.app.connection() as connection:
            receiver = self.app.events.Receiver(connection, handlers={"*": self._on_event})
            receiver.capture(limit=None, timeout=None, wakeup=False)

    def _on_event(self, event):
        with self.changed:
            self.events.append(event)
            self.changed.notify_all()

    def matching(self, **fields):
        with self.changed:
            return [e for e in self.events if all(e.get(k) == v for k, v in fields.items())]

    def wait_for(self, timeout, **fields):
        deadline = time.time() + timeout
        with self.changed:
            while True:
                found = [e for e in self.events if all(e.get(k) == v for k, v in fields.items())]
                if found or time.time() >= deadline:
                    return found[0] if found else None
                self.changed.wait(0.1)

    def task_events(self, uuid):
        return [e for e in self.matching(uuid=uuid) if e["type"].startswith("task-")]


def subscribed(broker):
    """The receiver's PSUBSCRIBE is in place (nothing else here uses patterns)."""
    import redis

    client = redis.Redis.from_url(broker)
    deadline = time.time() + 20
    while client.pubsub_numpat() < 1:
        if time.time() > deadline:
            raise SystemExit("event receiver never subscribed")
        time.sleep(0.05)


def summary(event):
    keep = ("type", "name", "args", "kwargs", "result", "runtime", "exception", "traceback", "retries",
            "root_id", "parent_id", "eta", "expires", "terminated", "signum", "expired", "clock")
    return {k: event.get(k) for k in keep if k in event}


def watch(app, hostname):
    out = {}
    recorder = Recorder(app)
    subscribed(app.conf.broker_url)
    say("ready")

    online = recorder.wait_for(60, type="worker-online", hostname=hostname)
    out["online"] = online and {k: v for k, v in online.items() if k != "local_received"}
    deadline = time.time() + 10
    while len(recorder.matching(type="worker-heartbeat", hostname=hostname)) < 2 and time.time() < deadline:
        time.sleep(0.1)
    beats = recorder.matching(type="worker-heartbeat", hostname=hostname)
    out["heartbeat_gaps"] = [b["timestamp"] - a["timestamp"] for a, b in zip(beats, beats[1:])]
    out["heartbeat"] = beats and {k: v for k, v in beats[0].items() if k != "local_received"}

    # Flower's wake-up call: each `heartbeat` broadcast gets a heartbeat at once.
    before = len(recorder.matching(type="worker-heartbeat", hostname=hostname))
    for _ in range(3):
        app.control.broadcast("heartbeat")
        time.sleep(0.2)
    time.sleep(0.3)
    out["heartbeats_on_request"] = len(recorder.matching(type="worker-heartbeat", hostname=hostname)) - before

    quiet = app.send_task("math.add", args=[1, 1])
    quiet.get(timeout=20)
    time.sleep(1.0)
    out["task_events_before_enable"] = len(recorder.task_events(quiet.id))

    out["enable_reply"] = app.control.broadcast("enable_events", reply=True, timeout=2, destination=[hostname])
    out["enable_again"] = app.control.broadcast("enable_events", reply=True, timeout=2, destination=[hostname])

    add = app.send_task("math.add", args=[2, 3])
    out["add_result"] = add.get(timeout=20)
    recorder.wait_for(10, type="task-succeeded", uuid=add.id)
    out["add"] = [summary(e) for e in recorder.task_events(add.id)]
    out["add_id"] = add.id
    out["add_common"] = [sorted(k for k in e if k in ("hostname", "utcoffset", "pid", "clock", "timestamp", "type"))
                         for e in recorder.task_events(add.id)]
    out["add_hostnames"] = sorted({e["hostname"] for e in recorder.task_events(add.id)})

    fail = app.send_task("faults.fail", args=["boom"])
    try:
        fail.get(timeout=20)
    except Exception:  # noqa: BLE001 - the failure is the point
        pass
    recorder.wait_for(10, type="task-failed", uuid=fail.id)
    out["fail"] = [summary(e) for e in recorder.task_events(fail.id)]

    flaky = app.send_task("faults.flaky", args=[1])
    out["flaky_result"] = flaky.get(timeout=30)
    recorder.wait_for(10, type="task-succeeded", uuid=flaky.id)
    out["flaky"] = [summary(e) for e in recorder.task_events(flaky.id)]

    unknown = app.send_task("no.such.task")
    recorder.wait_for(20, type="task-failed", uuid=unknown.id)
    out["unknown"] = [summary(e) for e in recorder.task_events(unknown.id)]

    expired = app.send_task("math.add", args=[1, 1], countdown=2, expires=1)
    later = app.send_task("math.add", args=[1, 2], countdown=2)
    app.control.revoke(later.id)
    recorder.wait_for(20, type="task-revoked", uuid=expired.id)
    recorder.wait_for(20, type="task-revoked", uuid=later.id)
    out["expired"] = [summary(e) for e in recorder.task_events(expired.id)]
    out["revoked"] = [summary(e) for e in recorder.task_events(later.id)]

    # A worker whose only thread is busy still heartbeats, and says it is busy.
    busy = app.send_task("faults.sleep", args=[4500])
    started = recorder.wait_for(20, type="task-started", uuid=busy.id)
    busy_from = started["timestamp"] if started else time.time()
    busy.get(timeout=30)
    done = recorder.wait_for(10, type="task-succeeded", uuid=busy.id)
    busy_until = done["timestamp"] if done else time.time()
    during = [b for b in recorder.matching(type="worker-heartbeat", hostname=hostname)
              if busy_from < b["timestamp"] < busy_until]
    out["busy_seconds"] = busy_until - busy_from
    out["busy_heartbeats_active"] = [b["active"] for b in during]

    out["disable_reply"] = app.control.broadcast("disable_events", reply=True, timeout=2, destination=[hostname])
    out["disable_again"] = app.control.broadcast("disable_events", reply=True, timeout=2, destination=[hostname])
    after = app.send_task("math.add", args=[4, 4])
    after.get(timeout=20)
    time.sleep(1.5)
    out["task_events_after_disable"] = len(recorder.task_events(after.id))

    # Celery's own monitor state, fed with everything received.
    state = State()
    for event in list(recorder.events):
        state.event(dict(event))
    worker = state.workers.get(hostname)
    out["state_worker_alive"] = bool(worker and worker.alive)
    task = state.tasks.get(add.id)
    out["state_add"] = task and {"state": task.state, "name": task.name, "result": task.result, "args": task.args}
    last_beat = recorder.matching(type="worker-heartbeat", hostname=hostname)[-1]
    out["processed_last_heartbeat"] = last_beat["processed"]

    say("stop-me")
    offline = recorder.wait_for(40, type="worker-offline", hostname=hostname)
    out["offline"] = offline and {k: v for k, v in offline.items() if k != "local_received"}
    # Lamport stamps: unique per event (arrival order may differ from clock
    # order, as task events wait in a buffer while heartbeats go out).
    clocks = [e["clock"] for e in recorder.events if e.get("hostname") == hostname]
    out["clocks_distinct"] = len(clocks) > 10 and len(set(clocks)) == len(clocks)
    return out


def inspect(app, hostname):
    """What `celery inspect` (and Flower's polling) gets back, with one job
    running, one waiting for the worker's only thread and one scheduled."""
    out = {}
    busy = app.send_task("faults.sleep", args=[3000])
    inspector = app.control.inspect(destination=[hostname], timeout=2)
    deadline = time.time() + 20
    while time.time() < deadline and not (inspector.active(safe=True) or {}).get(hostname):
        time.sleep(0.1)
    queued = app.send_task("math.add", args=[5, 5], kwargs={})
    later = app.send_task("math.mul", args=[6], kwargs={"y": 7}, countdown=60)
    time.sleep(0.5)
    out["ids"] = {"busy": busy.id, "queued": queued.id, "later": later.id}
    out["active"] = inspector.active(safe=True)
    out["active_unsafe"] = inspector.active()
    out["reserved"] = inspector.reserved()
    out["scheduled"] = inspector.scheduled()
    out["query_task"] = inspector.query_task([busy.id, queued.id, later.id])
    out["clock"] = inspector.clock()
    busy.get(timeout=20)
    queued.get(timeout=20)
    out["stats"] = inspector.stats()
    out["conf"] = inspector.conf()
    out["active_queues"] = inspector.active_queues()
    out["registered"] = inspector.registered()
    app.control.revoke(later.id)
    out["revoked"] = inspector.revoked()
    return out


def get_json(url):
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def get_status(url):
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def flower(app, hostname, flower_url):
    """Tasks run through the Chard worker, as Flower's HTTP API reports them."""
    out = {}
    deadline = time.time() + 60
    while True:
        try:
            if get_status(f"{flower_url}/healthcheck")[0] == 200:
                break
        except OSError:
            pass
        if time.time() > deadline:
            raise SystemExit("flower did not start")
        time.sleep(0.2)
    # Flower turns task events on itself (enable_events every 5 s); the
    # worker's conf says when it has.
    deadline = time.time() + 30
    while time.time() < deadline:
        conf = app.control.inspect(destination=[hostname], timeout=1).conf() or {}
        if conf.get(hostname, {}).get("worker_send_task_events"):
            break
        time.sleep(0.5)
    out["events_enabled_by_flower"] = bool(conf.get(hostname, {}).get("worker_send_task_events"))

    add = app.send_task("math.add", args=[2, 3])
    mul = app.send_task("math.mul", args=[6, 7])
    fail = app.send_task("faults.fail", args=["boom"])
    add.get(timeout=20)
    mul.get(timeout=20)
    try:
        fail.get(timeout=20)
    except Exception:  # noqa: BLE001
        pass
    ids = {"add": add.id, "mul": mul.id, "fail": fail.id}
    out["ids"] = ids

    deadline = time.time() + 30
    tasks = {}
    while time.time() < deadline:
        tasks = get_json(f"{flower_url}/api/tasks")
        if all(tasks.get(i, {}).get("state") in ("SUCCESS", "FAILURE") for i in ids.values()):
            break
        time.sleep(0.3)
    keep = ("name", "state", "result", "args", "kwargs", "worker", "exception", "received", "started", "succeeded", "runtime")
    out["tasks"] = {name: {k: tasks.get(i, {}).get(k) for k in keep} for name, i in ids.items()}
    out["task_info_add"] = {k: get_json(f"{flower_url}/api/task/info/{add.id}").get(k) for k in ("state", "result", "worker")}

    deadline = time.time() + 20
    workers = {}
    while time.time() < deadline:
        workers = get_json(f"{flower_url}/api/workers?refresh=1")
        if all(key in workers.get(hostname, {}) for key in ("stats", "registered", "active_queues", "conf")):
            break
        time.sleep(0.5)
    info = workers.get(hostname, {})
    out["api_workers_keys"] = sorted(info)
    out["api_workers_registered"] = info.get("registered")
    out["api_workers_total"] = info.get("stats", {}).get("total")
    out["api_workers_queues"] = [q.get("name") for q in info.get("active_queues") or []]
    out["status"] = get_json(f"{flower_url}/api/workers?status=1")
    listed = get_json(f"{flower_url}/workers?json=1").get("data", [])
    out["dashboard"] = [{k: w.get(k) for k in ("hostname", "status", "active", "processed", "sw_ident", "freq")}
                        for w in listed]
    code, page = get_status(f"{flower_url}/worker/{hostname}")
    out["worker_page"] = {"code": code, "has_name": hostname in page, "has_total": "math.add" in page}
    return out


def main():
    scenario, broker, backend, hostname = sys.argv[1:5]
    app = app_for(broker, backend)
    extra = sys.argv[5:]
    result = globals()[scenario](app, hostname, *extra)
    say(json.dumps(result))


if __name__ == "__main__":
    main()
