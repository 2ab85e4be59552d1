"""Drain the same queue with a stock Celery worker and with `host run`.

    python bench/celery_vs_chard.py [--messages 20000] [--concurrency 2]

Starts a private redis-server on a free port, pre-loads N Celery-format
`math.add` messages, and times each worker from its first result to its
N-th (start-up excluded for both). Then measures submit -> result latency
for single tasks with a raw redis-py client (subscribe, LPUSH, wait for the
PUBLISH), the way a Celery client's `.get()` waits. Prints figures; asserts
nothing.
"""
import argparse
import base64
import json
import os
import statistics
import subprocess
import sys
import time
import uuid

import redis

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from scratch import ROOT, copy_plugins, private_redis  # noqa: E402

HOST = os.path.join(ROOT, "target", "release", "host")


def envelope(task_id, x, y):
    body = json.dumps([[x, y], {}, {"callbacks": None, "errbacks": None, "chain": None, "chord": None}])
    return json.dumps({
        "body": base64.b64encode(body.encode()).decode(),
        "content-encoding": "utf-8",
        "content-type": "application/json",
        "headers": {
            "lang": "py", "task": "math.add", "id": task_id, "shadow": None, "eta": None, "expires": None,
            "group": None, "group_index": None, "retries": 0, "timelimit": [None, None], "root_id": task_id,
            "parent_id": None, "argsrepr": f"[{x}, {y}]", "kwargsrepr": "{}", "origin": "bench@local",
            "ignore_result": None, "replaced_task_nesting": 0, "stamped_headers": None, "stamps": {},
        },
        "properties": {
            "correlation_id": task_id, "reply_to": str(uuid.uuid4()), "delivery_mode": 2,
            "delivery_info": {"exchange": "", "routing_key": "celery"}, "priority": 0,
            "body_encoding": "base64", "delivery_tag": str(uuid.uuid4()),
        },
    })


def preload(client, n):
    client.flushall()
    pipe = client.pipeline(transaction=False)
    for i in range(n):
        pipe.lpush("celery", envelope(str(uuid.uuid4()), i, i))
        if i % 1000 == 999:
            pipe.execute()
    pipe.execute()


def results(backend):
    """Result keys are the only keys in the backend db: DBSIZE is O(1)."""
    return backend.dbsize()


def cpu_seconds(pid):
    """User + system CPU time of process `pid` (Linux), children excluded."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def drain(name, client, backend, n, start_worker):
    preload(client, n)
    worker = start_worker()
    try:
        deadline = time.time() + 600
        while client.llen("celery") == n and time.time() < deadline:
            time.sleep(0.001)
        first = time.perf_counter()
        cpu_first = cpu_seconds(worker.pid)
        while time.time() < deadline:
            if results(backend) >= n:
                break
            time.sleep(0.002)
        elapsed = time.perf_counter() - first
        cpu = cpu_seconds(worker.pid) - cpu_first
        done = results(backend)
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
    rate = done / elapsed
    # The worker process's own CPU per job (Celery's prefork children are
    # not counted, so this column means something for Chard only).
    print(f"{name:<28} {done:>6} tasks in {elapsed:7.2f} s = {rate:9.0f} tasks/s, "
          f"worker CPU {cpu * 1e6 / max(done, 1):6.1f} us/job", flush=True)
    return rate, cpu * 1e6 / max(done, 1)


def latency(client, port, samples):
    pubsub_client = redis.Redis(port=port, db=1)
    times = []
    for i in range(samples):
        task_id = str(uuid.uuid4())
        pubsub = pubsub_client.pubsub(ignore_subscribe_messages=True)
        pubsub.subscribe(f"celery-task-meta-{task_id}")
        start = time.perf_counter()
        client.lpush("celery", envelope(task_id, i, 1))
        while True:
            message = pubsub.get_message(timeout=10)
            if message and b'"SUCCESS"' in message["data"]:
                break
            if message is None and time.perf_counter() - start > 10:
                raise SystemExit("no result within 10 s")
        times.append((time.perf_counter() - start) * 1000)
        pubsub.close()
    times.sort()
    return statistics.median(times), times[int(len(times) * 0.99) - 1]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=20000)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--latency-samples", type=int, default=500)
    parser.add_argument("--chard-only", action="store_true", help="skip the Celery worker")
    parser.add_argument("--chard-args", default="", help="extra flags for host run")
    parser.add_argument("--versus", metavar="ARGS", help="compare: alternate --chard-args runs with runs using these flags instead")
    parser.add_argument("--rounds", type=int, default=5, help="with --versus: runs of each")
    args = parser.parse_args()
    if not os.path.exists(HOST):
        raise SystemExit("build first: make build plugins")
    with private_redis("chard-bench-") as (port, client, workdir):
        plugins = copy_plugins(workdir, ["math"])
        broker = f"redis://127.0.0.1:{port}/0"
        result_backend = f"redis://127.0.0.1:{port}/1"
        backend = redis.Redis(port=port, db=1)
        env = dict(os.environ, CHARD_TEST_BROKER=broker, CHARD_TEST_BACKEND=result_backend)
        quiet = dict(stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        def celery_worker():
            return subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "celery_worker_app", "worker", "-P", "prefork",
                 "-c", str(args.concurrency), "--without-gossip", "--without-mingle", "--without-heartbeat",
                 "-l", "warning"], cwd=os.path.join(ROOT, "tests", "python"), env=env, **quiet)

        def chard_worker(extra=args.chard_args):
            return subprocess.Popen([HOST, "run", "--plugins", plugins, "--broker", broker,
                                     "--result-backend", result_backend, "-c", str(args.concurrency)] + extra.split(), env=dict(os.environ, RUST_LOG="warn"), **quiet)

        if args.versus is not None:
            # Alternating runs, so drift in the machine's load hits both sides.
            rates = {args.chard_args: [], args.versus: []}
            for _ in range(args.rounds):
                for extra in rates:
                    rates[extra].append(drain(f"chard {extra or '(no flags)'}"[:28], client, backend, args.messages,
                                              lambda extra=extra: chard_worker(extra)))
            for extra, runs in rates.items():
                speeds, cpus = [rate for rate, _ in runs], [cpu for _, cpu in runs]
                print(f"median {statistics.median(speeds):9.0f} tasks/s (runs {min(speeds):.0f}-{max(speeds):.0f}), "
                      f"worker CPU {statistics.median(cpus):.1f} us/job (runs {min(cpus):.1f}-{max(cpus):.1f}): "
                      f"chard {extra or '(no flags)'}")
            return

        print(f"draining {args.messages} math.add messages, concurrency {args.concurrency}, "
              f"{os.cpu_count()} cores, client + worker + Redis on one machine", flush=True)
        celery_rate = None if args.chard_only else drain("celery 5.7 (prefork)", client, backend, args.messages, celery_worker)[0]
        chard_rate = drain("chard host run", client, backend, args.messages, chard_worker)[0]
        if celery_rate:
            print(f"ratio: {chard_rate / celery_rate:.1f}x", flush=True)
        else:
            return

        print(f"submit -> result latency, {args.latency_samples} sequential single tasks:", flush=True)
        for name, start in [("celery 5.7 (prefork)", celery_worker), ("chard host run", chard_worker)]:
            client.flushall()
            worker = start()
            try:
                time.sleep(0.5 if name.startswith("chard") else 3)
                latency(client, port, 20)  # warm up
                p50, p99 = latency(client, port, args.latency_samples)
            finally:
                worker.terminate()
                worker.wait(timeout=30)
            print(f"{name:<28} p50 {p50:6.2f} ms   p99 {p99:6.2f} ms", flush=True)


if __name__ == "__main__":
    main()
