"""Canvases on a worker, as the stock Celery 5.7 client sends them.

Usage:
  canvas_fuzz.py issue BROKER BACKEND
      The five canvases of issue #12; prints their results.
  canvas_fuzz.py shapes BROKER BACKEND [SHAPE]
      Chords whose header holds a group result (and a group, flattened);
      prints each body's value or exception.
  canvas_fuzz.py mixed BROKER BACKEND
      Two such chords applied on queue `applier` and completed on queue
      `completer` (a Chard and a Python worker, one on each).
  canvas_fuzz.py typing BROKER BACKEND
      Canvases with a call that cannot bind its arguments (Celery's
      `Task.typing`: the sender raises TypeError before publishing it) and
      one that can; prints each task's outcome, or null if it never ran.
  canvas_fuzz.py run BROKER BACKEND SEED COUNT [BATCH [ONLY]]
      COUNT random canvases from SEED (chains, groups and chords nested up
      to depth 4, .s/.si, empty members, failing members, link, link_error,
      countdowns), applied with one argument. Prints, per canvas, what
      happened to each of its tasks: how often it was received, its parent
      and root, its state and result. Ids are fixed per task ("c7-3"), so
      the output of a Python worker and of a Chard worker can be compared
      line by line (the Rust test does); any other id is shown as "?".

The worker must send task events (-E): `task-received` events carry the
parent and root ids.
"""
import json
import os
import random
import re
import sys
import threading
import time

from celery import chain, chord, group, signature

from celery_client import run_scenario

TASKS = ["canvas.identity", "canvas.add", "canvas.tsum", "canvas.fail"]


def issue(app):
    add = lambda *a: signature("canvas.add", args=a, app=app)  # noqa: E731
    identity = lambda *a: signature("canvas.identity", args=a, app=app)  # noqa: E731
    identity_si = lambda *a: signature("canvas.identity", args=a, immutable=True, app=app)  # noqa: E731
    tsum = lambda: signature("canvas.tsum", app=app)  # noqa: E731
    out = {}
    out["chain_group_tsum"] = chain(add(1, 1), group(add(1), add(2)), tsum()).delay().get(timeout=30)
    out["chord_chain_body"] = chord([add(1, 1), add(2, 2)], chain(tsum(), identity())).delay().get(timeout=30)
    out["chain_after_chord"] = chain(chord([identity(), identity()], identity()), identity()).apply_async(args=(1,)).get(timeout=30)
    out["chain_in_chord_header"] = chord((chain((identity_si(1337),) * 3),), identity()).delay().get(timeout=30)
    out["chord_in_chord_header"] = chord((chord((identity_si(1),) * 2, identity_si(31337)),), identity()).delay().get(timeout=30)
    return out


def shapes(app):
    """Chords whose header holds a group result, and their neighbours; for
    each, the body's value or its exception (type and text), and the
    states of a group body's tasks."""
    import time
    add = lambda *a: signature("canvas.add", args=a, app=app)  # noqa: E731
    add_si = lambda *a: signature("canvas.add", args=a, immutable=True, app=app)  # noqa: E731
    identity = lambda *a: signature("canvas.identity", args=a, app=app)  # noqa: E731
    identity_si = lambda *a: signature("canvas.identity", args=a, immutable=True, app=app)  # noqa: E731
    fail_si = lambda: signature("canvas.fail", args=(0,), immutable=True, app=app)  # noqa: E731

    def outcome(result):
        deadline = time.time() + 30
        while not result.ready() and time.time() < deadline:
            time.sleep(0.05)
        if result.state == "SUCCESS":
            return result.result
        exc = result.result
        return {"state": result.state, "type": type(exc).__name__, "args": [str(a) for a in getattr(exc, "args", [])]}

    canvases = {
        "group_in_header": chord([group(add_si(1, 1), add_si(2, 2)), add_si(3, 3)], identity()),
        "chain_ending_in_group": chord([add_si(7, 7), chain(add_si(1, 1), group(add(1), add(2)))], identity()),
        "chord_of_group_in_header": chord([chord([identity_si(7)], group(identity(), identity()))], identity()),
        # Seed 11 canvas 58: a chord whose body is an empty group.
        "empty_group_in_header": chord([add_si(7, 7), chord([add_si(8, 8)], group([]))], identity()),
        "empty_group_ending_a_chain": chord([add_si(7, 7), chain(identity_si(1), group([]))], identity()),
        "failing_nested_member": chord([add_si(1, 1), chain(identity_si(2), group(fail_si(), identity()))], identity()),
    }
    # argv[4]: the one shape to run (all by default).
    wanted = sys.argv[4] if len(sys.argv) > 4 else None
    out = {}
    for name, canvas in canvases.items():
        if wanted in (None, name):
            out[name] = outcome(canvas.apply_async())
    if wanted in (None, "failing_nested_member_group_body"):
        body = group(identity().set(task_id="gb-1"), identity().set(task_id="gb-2"))
        chord([chain(identity_si(2), group(fail_si(), identity()))], body).apply_async()
        out["failing_nested_member_group_body"] = [outcome(app.AsyncResult(task_id)) for task_id in ("gb-1", "gb-2")]
    return out


def mixed(app):
    """The same chord with a group result in its header, applied by one
    kind of worker and completed by the other: the step before it runs on
    queue `applier`, the header and body on queue `completer`."""
    import time

    def on(queue, name, *args, immutable=False):
        return signature(name, args=args, immutable=immutable, app=app).set(queue=queue)

    header = [on("completer", "canvas.add", 7, 7, immutable=True),
              chain(on("completer", "canvas.add", 1, 1, immutable=True),
                    group(on("completer", "canvas.add", 1), on("completer", "canvas.add", 2)))]
    failing = [on("completer", "canvas.add", 7, 7, immutable=True),
               chain(on("completer", "canvas.add", 1, 1, immutable=True),
                     group(on("completer", "canvas.fail", 0, immutable=True), on("completer", "canvas.add", 2)))]
    out = {}
    for name, members in (("nested", header), ("failing", failing)):
        canvas = chain(on("applier", "canvas.identity", 0, immutable=True), chord(members, on("completer", "canvas.identity")))
        result = canvas.apply_async()
        deadline = time.time() + 30
        while not result.ready() and time.time() < deadline:
            time.sleep(0.05)
        if result.state == "SUCCESS":
            out[name] = result.result
        else:
            out[name] = {"state": result.state, "type": type(result.result).__name__, "args": [str(a) for a in result.result.args]}
    return out


class Canvases:
    """A seeded generator; every task signature gets the id `<canvas>-<n>`."""

    def __init__(self, app, rng, name):
        self.app, self.rng, self.name, self.ids = app, rng, name, []

    def fixed_id(self):
        task_id = f"{self.name}-{len(self.ids) + 1}"
        self.ids.append(task_id)
        return task_id

    def task(self, callback=False):
        rng = self.rng
        name = rng.choice(TASKS[:2] if callback else TASKS + TASKS[:2])
        if not callback and rng.random() < 0.3:
            args = {"canvas.identity": (rng.randint(0, 9),), "canvas.add": (rng.randint(0, 9), rng.randint(0, 9)),
                    "canvas.tsum": ([rng.randint(0, 9) for _ in range(rng.randint(0, 3))],), "canvas.fail": (0,)}[name]
            sig = signature(name, args=args, immutable=True, app=self.app)
        else:
            sig = signature(name, args=(rng.randint(0, 9),) if name == "canvas.add" else (), app=self.app)
        sig.set(task_id=self.fixed_id())
        if not callback:
            if rng.random() < 0.1:
                sig.set(countdown=0.2)
            if rng.random() < 0.1:
                sig.link(self.task(callback=True))
            if rng.random() < 0.1:
                sig.link_error(signature("canvas.identity", app=self.app).set(task_id=self.fixed_id()))
        return sig

    def canvas(self, depth=1):
        rng = self.rng
        if depth >= 4 or rng.random() < 0.3:
            return self.task()
        kind = rng.choice(["chain", "group", "chord"])
        members = [self.canvas(depth + 1) for _ in range(rng.choice([0, 1, 2, 2, 3, 3]))]
        if kind == "chain":
            return chain(*members) if members else chain(self.canvas(depth + 1))
        if kind == "group":
            return group(members)
        return chord(members, self.canvas(depth + 1))


def normalise(value, ids):
    """Fixed ids stay, any other id becomes "?"; ids inside text too."""
    if isinstance(value, str):
        if value in ids:
            return value
        return re.sub(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", "?", value)
    if isinstance(value, list):
        return [normalise(item, ids) for item in value]
    if isinstance(value, dict):
        return {key: normalise(item, ids) for key, item in value.items()}
    return value


def outcome(meta, ids):
    if meta is None:
        return None
    meta = json.loads(meta)
    result = meta["result"]
    if meta["status"] in ("FAILURE", "REVOKED", "RETRY") and isinstance(result, dict):
        # Exception types are compared; messages only for ChordError (they
        # name the failed task), since Python and Rust word errors apart.
        text = result.get("exc_message")
        detail = None
        if result.get("exc_type") == "ChordError":
            # "Dependency <id> raised TypeError(...)": the id and the type.
            detail = re.sub(r"\(.*", "", str(normalise(text, ids)), flags=re.S)
        return [meta["status"], result.get("exc_type"), detail]
    return [meta["status"], normalise(result, ids)]


def typing(app):
    """Per canvas: how to make it, its tasks' ids, the ids to wait for."""
    import time

    def sig(name, task_id, *args, immutable=False, **kwargs):
        return signature(name, args=args, kwargs=kwargs, immutable=immutable, app=app).set(task_id=task_id)

    cases = {
        # The next chain step cannot bind: the task that would send it fails.
        "chain_step": (lambda: chain(sig("canvas.add", "t1", 1, 1, immutable=True), sig("canvas.add", "t2", 2, immutable=True)),
                       ["t1", "t2"], ["t1"]),
        # A link callback with one argument too many.
        "link": (lambda: sig("canvas.add", "l1", 1, 1, immutable=True).set(link=sig("canvas.identity", "l2", 1, 2, immutable=True)),
                 ["l1", "l2"], ["l1"]),
        # A keyword the task does not take.
        "keyword": (lambda: chain(sig("canvas.identity", "k1", 1, immutable=True), sig("canvas.identity", "k2", z=1)),
                    ["k1", "k2"], ["k1"]),
        # A group's second member cannot bind: the first is sent, the third never.
        "group_member": (lambda: chain(sig("canvas.identity", "g1", 1, immutable=True),
                                       group(sig("canvas.identity", "g2"), sig("canvas.add", "g3", 3, immutable=True), sig("canvas.identity", "g4"))),
                         ["g1", "g2", "g3", "g4"], ["g1", "g2"]),
        # A chord body that cannot take the header's list.
        "chord_body": (lambda: chord([sig("canvas.identity", "h1", 1, immutable=True)], sig("canvas.add", "b1", 6, immutable=True)),
                       ["h1", "b1"], ["h1", "b1"]),
        # Binds: a keyword fills the second parameter.
        "binds": (lambda: chain(sig("canvas.add", "o1", 1, 1, immutable=True), sig("canvas.add", "o2", y=3)), ["o1", "o2"], ["o1", "o2"]),
    }
    backend = app.backend.client
    out = {}
    for name, (make, ids, wait) in cases.items():
        make().apply_async()
        deadline = time.time() + 30
        while time.time() < deadline and not all(backend.get(f"celery-task-meta-{i}") for i in wait):
            time.sleep(0.05)
        time.sleep(0.5)
        out[name] = {i: outcome(backend.get(f"celery-task-meta-{i}"), set(ids)) for i in ids}
    return out


class Received:
    """`task-received` events: id -> [(parent_id, root_id), ...]."""

    def __init__(self, app):
        self.app, self.seen, self.lock = app, {}, threading.Lock()
        # Terminal events (succeeded, failed, ...) by id: a Python worker
        # sends them after its trace, chord joins included.
        self.ends = {}
        self.ready = threading.Event()
        threading.Thread(target=self._capture, daemon=True).start()
        self.ready.wait(10)

    def _capture(self):
        ended = {kind: self._on_end for kind in ("task-succeeded", "task-failed", "task-retried", "task-revoked", "task-rejected")}
        with self.app.connection() as connection:
            receiver = self.app.events.Receiver(connection, handlers={"task-received": self._on_event, **ended})
            self.ready.set()
            for _ in receiver.consume(limit=None, timeout=None, wakeup=False):
                pass

    def _on_event(self, event):
        with self.lock:
            self.seen.setdefault(event["uuid"], []).append((event.get("parent_id"), event.get("root_id")))

    def _on_end(self, event):
        with self.lock:
            self.ends[event["uuid"]] = self.ends.get(event["uuid"], 0) + 1

    def count(self):
        with self.lock:
            return sum(len(v) for v in self.seen.values()) + sum(self.ends.values())

    def all_ended(self):
        """Every task received has ended as often as it was received: the
        worker is idle (a Python worker joins a chord inside the trace of
        the member that completes it, before that member's event)."""
        with self.lock:
            return all(self.ends.get(task_id, 0) >= len(times) for task_id, times in self.seen.items())


def run(app):
    seed, count = int(sys.argv[4]), int(sys.argv[5])
    # One canvas at a time by default: canvases running side by side change
    # which header task completes a chord (and so the body's parent) by chance.
    batch = int(sys.argv[6]) if len(sys.argv) > 6 else 1
    received = Received(app)
    time.sleep(1.0)  # the receiver's queue is bound before anything is sent
    backend = app.backend.client
    out = []
    # A comma-separated list (argv, or CANVAS_ONLY) replays single canvases of a run.
    listed = sys.argv[7] if len(sys.argv) > 7 else os.environ.get("CANVAS_ONLY", "")
    only = [int(n) for n in listed.split(",") if n]
    numbers = only or list(range(count))
    for start in range(0, len(numbers), batch):
        runs = []
        for number in numbers[start:start + batch]:
            canvases = Canvases(app, random.Random(seed * 1_000_003 + number), f"c{number}")
            canvas = canvases.canvas()
            text = repr(canvas)
            canvas.apply_async(args=(random.Random(number).randint(0, 9),))
            runs.append((number, text, canvases.ids))
        # Settled: nothing received and no result written for half a second,
        # once something happened and every task received has its result. A
        # canvas may send nothing at all (an empty group), and a task may be
        # received and never end (a chord body Celery failed to publish), so
        # 3 s of quiet settles too: a worker on a loaded machine can take
        # longer than half a second to pick a task up or store its result,
        # and the run must not read the results before it has.
        ids = [task_id for _, _, batch_ids in runs for task_id in batch_ids]
        keys = [f"celery-task-meta-{task_id}" for task_id in ids]

        def snapshot():
            return received.count(), tuple(backend.mget(keys)) if keys else ()

        def every_received_task_ended(metas):
            with received.lock:
                stored = all(meta is not None for task_id, meta in zip(ids, metas) if task_id in received.seen)
            return stored and received.all_ended()

        applied = snapshot()
        last, quiet_since, deadline = applied, time.monotonic(), time.monotonic() + 60
        while time.monotonic() < deadline:
            state = snapshot()
            quiet = time.monotonic() - quiet_since
            if state != last:
                last, quiet_since = state, time.monotonic()
            elif quiet > 3.0 or (quiet > 0.5 and state != applied and every_received_task_ended(state[1])):
                break
            time.sleep(0.1)
        for number, text, ids in runs:
            known = set(ids)
            tasks = {}
            for task_id in ids:
                with received.lock:
                    lineage = list(received.seen.get(task_id, []))
                parents = sorted({normalise(p or "", known) for p, _ in lineage})
                roots = sorted({normalise(r or "", known) for _, r in lineage})
                meta = backend.get(f"celery-task-meta-{task_id}")
                tasks[task_id] = {"received": len(lineage), "parents": parents, "roots": roots, "outcome": outcome(meta, known)}
            out.append({"canvas": number, "repr": text, "tasks": tasks})
    return out


if __name__ == "__main__":
    run_scenario(globals())
