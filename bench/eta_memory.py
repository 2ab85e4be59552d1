"""Worker memory with a flood of far-ETA jobs (issue #11, point 4).

Starts a private redis-server and a `host run` worker, pushes N messages
(Celery 5.7 envelopes for math.add) with an ETA an hour ahead, waits until
the worker has moved all of them to the delayed set, and prints the
worker's resident memory (RSS now and peak) and Redis's.

    .venv/bin/python bench/eta_memory.py [N]    (default 1,000,000)

Extra worker flags go in CHARD_BENCH_ARGS (e.g. "--delay-beyond 100000"
to see what holding them in memory costs).

It is a benchmark, not a test: it prints figures and asserts nothing.
"""
import base64
import datetime
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid

import redis

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HOST = os.path.join(ROOT, "target", "release", "host")
PLUGINS = os.path.join(ROOT, "target", "plugins")


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def rss_kib(pid, field):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def envelope(task_id, eta):
    body = base64.b64encode(json.dumps([[1, 2], {}, {"callbacks": None, "errbacks": None, "chain": None, "chord": None}]).encode()).decode()
    headers = {
        "lang": "py", "task": "math.add", "id": task_id, "shadow": None, "eta": eta, "expires": None, "group": None,
        "group_index": None, "retries": 0, "timelimit": [None, None], "root_id": task_id, "parent_id": None,
        "argsrepr": "[1, 2]", "kwargsrepr": "{}", "origin": "bench@eta", "ignore_result": None,
        "replaced_task_nesting": 0, "stamped_headers": None, "stamps": {},
    }
    properties = {
        "correlation_id": task_id, "reply_to": None, "delivery_mode": 2,
        "delivery_info": {"exchange": "", "routing_key": "celery"}, "priority": 0, "body_encoding": "base64",
        "delivery_tag": str(uuid.uuid4()),
    }
    return json.dumps({"body": body, "content-encoding": "utf-8", "content-type": "application/json", "headers": headers, "properties": properties})


def main():
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    port = free_port()
    data = tempfile.mkdtemp()
    server = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", data], stdout=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url)
    for _ in range(100):
        try:
            client.ping()
            break
        except redis.ConnectionError:
            time.sleep(0.05)
    log = open(os.path.join(data, "worker.log"), "w")
    extra = os.environ.get("CHARD_BENCH_ARGS", "").split()
    worker = subprocess.Popen([HOST, "run", "--plugins", PLUGINS, "--broker", url, "-c", "2", *extra], stdout=log, stderr=log)
    try:
        time.sleep(2)
        idle = rss_kib(worker.pid, "VmRSS")
        eta = (datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=1)).isoformat()
        started = time.time()
        for start in range(0, count, 10_000):
            pipe = client.pipeline(transaction=False)
            for index in range(start, min(count, start + 10_000)):
                pipe.lpush("celery", envelope(f"eta-{index}", eta))
            pipe.execute()
        pushed = time.time() - started
        while client.zcard("chard:delayed") < count:
            if worker.poll() is not None:
                sys.exit(f"the worker exited: see {log.name}")
            time.sleep(0.5)
        moved = time.time() - started
        time.sleep(1)
        print(json.dumps({
            "jobs": count,
            "eta": "1 hour ahead",
            "pushed_s": round(pushed, 1),
            "all_delayed_s": round(moved, 1),
            "worker_rss_idle_mb": round(idle / 1024, 1),
            "worker_rss_after_mb": round(rss_kib(worker.pid, "VmRSS") / 1024, 1),
            "worker_rss_peak_mb": round(rss_kib(worker.pid, "VmHWM") / 1024, 1),
            "redis_used_memory_mb": round(client.info("memory")["used_memory"] / 2**20, 1),
            "still_leased": client.hlen("unacked"),
        }, indent=2))
    finally:
        worker.terminate()
        worker.wait()
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
