"""Far-ETA jobs: worker memory, and whether each runs once, on time (issue #11, point 4).

Memory (default): starts a private redis-server and a `host run` worker,
pushes N messages (Celery 5.7 envelopes for math.add) with an ETA an hour
ahead, waits until the worker has moved all of them to the delayed set, and
prints the worker's resident memory (RSS now and peak) and Redis's.

    .venv/bin/python bench/eta_memory.py [N]    (default 1,000,000)

Timing (`--timing`): pushes N messages whose ETAs are spread evenly from
40 s to 40 + SPREAD s ahead (so they go through the delayed set), to two
workers sharing the queue, waits for every result, and prints how late
each ran after its ETA (the result's `date_done` minus the ETA) and how
many ran more than once (the workers' `chard_jobs_finished_total`, summed,
minus N).

    .venv/bin/python bench/eta_memory.py --timing [N] [SPREAD]   (default 100,000 over 120 s)

Extra worker flags go in CHARD_BENCH_ARGS (e.g. "--delay-beyond 100000"
to see what holding them in memory costs). The worker sees only the math
plugin, so its memory is the jobs', not other plugins' compiled code.

It is a benchmark, not a test: it prints figures and asserts nothing.
"""
import base64
import datetime
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

import redis

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from scratch import ROOT, free_port  # noqa: E402

HOST = os.path.join(ROOT, "target", "release", "host")
MATH = os.path.join(ROOT, "target", "plugins", "math.wasm")
ID = "00000000-0000-4000-8000-000000000000"


def status_kib(pid, field):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def template():
    """One envelope, with ID standing for the task id (and the delivery
    tag) and ETA for the ETA, to be filled in by plain text replacement:
    a million envelopes are then a second's work, not a minute's."""
    body = base64.b64encode(json.dumps([[1, 2], {}, {"callbacks": None, "errbacks": None, "chain": None, "chord": None}]).encode()).decode()
    headers = {
        "lang": "py", "task": "math.add", "id": ID, "shadow": None, "eta": "ETA", "expires": None, "group": None,
        "group_index": None, "retries": 0, "timelimit": [None, None], "root_id": ID, "parent_id": None,
        "argsrepr": "[1, 2]", "kwargsrepr": "{}", "origin": "bench@eta", "ignore_result": None,
        "replaced_task_nesting": 0, "stamped_headers": None, "stamps": {},
    }
    properties = {
        "correlation_id": ID, "reply_to": None, "delivery_mode": 2,
        "delivery_info": {"exchange": "", "routing_key": "celery"}, "priority": 0, "body_encoding": "base64",
        "delivery_tag": ID,
    }
    return json.dumps({"body": body, "content-encoding": "utf-8", "content-type": "application/json", "headers": headers, "properties": properties})


def task_id(index):
    return f"00000000-0000-4000-8000-{index:012d}"


def push(client, count, eta_of):
    """LPUSHes `count` envelopes, 1,000 per command, pipelined."""
    text = template()
    batch = 1000
    pipe = client.pipeline(transaction=False)
    for start in range(0, count, batch):
        values = [text.replace(ID, task_id(index)).replace("ETA", eta_of(index)) for index in range(start, min(count, start + batch))]
        pipe.lpush("celery", *values)
        if (start // batch) % 20 == 19:
            pipe.execute()
    pipe.execute()


class Redis:
    def __init__(self):
        self.port = free_port()
        self.data = tempfile.mkdtemp()
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", self.data],
            stdout=subprocess.DEVNULL,
        )
        self.url = f"redis://127.0.0.1:{self.port}"
        self.client = redis.Redis.from_url(self.url + "/0")
        for _ in range(100):
            try:
                self.client.ping()
                return
            except redis.ConnectionError:
                time.sleep(0.05)

    def stop(self):
        self.process.terminate()
        self.process.wait()
        shutil.rmtree(self.data, ignore_errors=True)


def start_worker(server, plugins, name, *flags):
    log = open(os.path.join(server.data, f"{name}.log"), "w")
    extra = os.environ.get("CHARD_BENCH_ARGS", "").split()
    command = [HOST, "run", "--plugins", plugins, "--broker", server.url + "/0", "-n", f"{name}@bench", *flags, *extra]
    return subprocess.Popen(command, stdout=log, stderr=log), log.name


def math_only():
    plugins = tempfile.mkdtemp()
    shutil.copy(MATH, os.path.join(plugins, "math.wasm"))
    return plugins


def wait_ready(worker, log_path):
    for _ in range(600):
        if worker.poll() is not None:
            sys.exit(f"the worker exited: see {log_path}")
        with open(log_path) as log:
            if "worker ready" in log.read():
                return
        time.sleep(0.1)
    sys.exit(f"the worker did not get ready: see {log_path}")


def memory(count):
    server, plugins = Redis(), math_only()
    worker, log_path = start_worker(server, plugins, "eta", "-c", "2")
    try:
        wait_ready(worker, log_path)
        time.sleep(1)
        idle = status_kib(worker.pid, "VmRSS")
        eta = (datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=1)).isoformat()
        started = time.time()
        push(server.client, count, lambda _: eta)
        pushed = time.time() - started
        while server.client.zcard("chard:delayed") < count:
            if worker.poll() is not None:
                sys.exit(f"the worker exited: see {log_path}")
            time.sleep(0.5)
        moved = time.time() - started
        time.sleep(2)
        print(json.dumps({
            "jobs": count,
            "eta": "1 hour ahead",
            "pushed_s": round(pushed, 1),
            "all_delayed_s": round(moved, 1),
            "worker_rss_idle_mb": round(idle / 1024, 1),
            "worker_rss_after_mb": round(status_kib(worker.pid, "VmRSS") / 1024, 1),
            "worker_rss_peak_mb": round(status_kib(worker.pid, "VmHWM") / 1024, 1),
            "redis_used_memory_mb": round(server.client.info("memory")["used_memory"] / 2**20, 1),
            "still_leased": server.client.hlen("unacked"),
            "load_average": os.getloadavg()[0],
        }, indent=2))
    finally:
        worker.terminate()
        worker.wait()
        server.stop()
        shutil.rmtree(plugins, ignore_errors=True)


def finished_total(port):
    page = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in page.splitlines() if line.startswith("chard_jobs_finished_total{"))


def timing(count, spread):
    server, plugins = Redis(), math_only()
    ports = [free_port(), free_port()]
    workers = [start_worker(server, plugins, f"w{n}", "-c", "1", "--result-backend", server.url + "/1", "--metrics", f"127.0.0.1:{port}") for n, port in enumerate(ports)]
    results = redis.Redis.from_url(server.url + "/1")
    try:
        for worker, log_path in workers:
            wait_ready(worker, log_path)
        first = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=40)
        etas = [first + datetime.timedelta(seconds=spread * index / count) for index in range(count)]
        started = time.time()
        push(server.client, count, lambda index: etas[index].isoformat())
        pushed = time.time() - started
        deadline = time.time() + 40 + spread + 600
        while True:
            done = sum(float(finished_total(port)) for port in ports)
            if done >= count or time.time() > deadline:
                break
            time.sleep(1)
        time.sleep(3)  # any second run of a job shows up now
        ran = sum(finished_total(port) for port in ports)
        lateness = []
        late_due = {}  # jobs over 1 s late, by when they were due (10 s buckets after the first ETA)
        missing = 0
        for start in range(0, count, 5000):
            ids = [task_id(index) for index in range(start, min(count, start + 5000))]
            docs = results.mget([f"celery-task-meta-{task}" for task in ids])
            for index, doc in zip(range(start, start + len(ids)), docs):
                if doc is None:
                    missing += 1
                    continue
                done_at = datetime.datetime.fromisoformat(json.loads(doc)["date_done"])
                if done_at.tzinfo is None:
                    done_at = done_at.replace(tzinfo=datetime.timezone.utc)
                late = (done_at - etas[index]).total_seconds()
                lateness.append(late)
                if late > 1:
                    bucket = int((etas[index] - first).total_seconds() // 10) * 10
                    late_due[bucket] = late_due.get(bucket, 0) + 1
        lateness.sort()
        pick = lambda fraction: round(lateness[min(len(lateness) - 1, int(fraction * len(lateness)))], 3) if lateness else None
        print(json.dumps({
            "jobs": count,
            "etas": f"spread evenly from 40 s to {40 + spread} s ahead ({count / spread:.0f} due per second)",
            "workers": "2 x host run -c 1",
            "pushed_s": round(pushed, 1),
            "results": count - missing,
            "missing": missing,
            "runs": int(ran),
            "ran_twice": int(ran) - (count - missing),
            "lateness_s": {"min": pick(0), "p50": pick(0.5), "p99": pick(0.99), "p999": pick(0.999), "max": pick(1.0)},
            "ran_before_eta": sum(1 for late in lateness if late < 0),
            "later_than_1s": sum(1 for late in lateness if late > 1),
            "later_than_1s_by_due_s": {f"{bucket}-{bucket + 10}": late_due[bucket] for bucket in sorted(late_due)},
            "load_average": os.getloadavg()[0],
        }, indent=2))
    finally:
        for worker, _ in workers:
            worker.terminate()
            worker.wait()
        server.stop()
        shutil.rmtree(plugins, ignore_errors=True)


def main():
    args = sys.argv[1:]
    if args and args[0] == "--timing":
        count = int(args[1]) if len(args) > 1 else 100_000
        spread = float(args[2]) if len(args) > 2 else 120.0
        timing(count, spread)
    else:
        memory(int(args[0]) if args else 1_000_000)


if __name__ == "__main__":
    main()
