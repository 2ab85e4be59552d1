"""Submit -> result latency of one job at a time on an idle worker.

    python bench/latency.py [--samples 2000] [--chard-args "..."]

Starts a private redis-server and `host run -c 2` with the `math` plugin,
then sends `math.add` messages one at a time the way a Celery client does
(LPUSH of a protocol-2 envelope to `celery`) and waits for the result the
way `.get()` does (subscribed to the result key's channel beforehand). The
clock runs from just before the LPUSH to the PUBLISH arriving; the result
key is readable from that moment (SETEX comes before PUBLISH in the same
pipeline). Also prints the floor: a PING round trip from the same client,
and LPUSH + BLMOVE-style wake-up of a bare redis-py waiter, so the figure
can be read against what Redis and the client cost by themselves.

Prints p50/p90/p99/max; asserts nothing.
"""
import argparse
import os
import signal
import subprocess
import sys
import threading
import time
import uuid

import redis

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from celery_vs_chard import HOST, envelope  # noqa: E402
from drain_cost import worker_command  # noqa: E402
from scratch import copy_plugins, private_redis  # noqa: E402


def percentiles(times):
    times = sorted(times)
    pick = lambda q: times[min(len(times) - 1, int(len(times) * q))]
    return f"p50 {pick(0.5):6.3f} ms  p90 {pick(0.9):6.3f} ms  p99 {pick(0.99):6.3f} ms  max {times[-1]:7.3f} ms"


def job_latency(client, pubsub_client, samples):
    times = []
    pubsub = pubsub_client.pubsub(ignore_subscribe_messages=True)
    for i in range(samples):
        task_id = str(uuid.uuid4())
        channel = f"celery-task-meta-{task_id}"
        pubsub.subscribe(channel)
        while pubsub.get_message(timeout=0) is not None:
            pass
        message = envelope(task_id, i, 1)
        start = time.perf_counter()
        client.lpush("celery", message)
        while True:
            received = pubsub.get_message(timeout=10)
            if received and received["type"] == "message" and b'"SUCCESS"' in received["data"]:
                break
            if received is None and time.perf_counter() - start > 10:
                raise SystemExit("no result within 10 s")
        times.append((time.perf_counter() - start) * 1000)
        pubsub.unsubscribe(channel)
    pubsub.close()
    return times


def ping_floor(client, samples):
    times = []
    for _ in range(samples):
        start = time.perf_counter()
        client.ping()
        times.append((time.perf_counter() - start) * 1000)
    return times


def wakeup_floor(port, samples):
    """LPUSH from here, a thread blocked in BLMOVE moves it and PUBLISHes:
    the two hops every worker needs, with no work in between."""
    waiter = redis.Redis(port=port)
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            moved = waiter.blmove("floor", "floor:taken", 1, "RIGHT", "LEFT")
            if moved is not None:
                waiter.publish("floor:done", moved)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    client = redis.Redis(port=port)
    pubsub = redis.Redis(port=port).pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe("floor:done")
    times = []
    for i in range(samples):
        start = time.perf_counter()
        client.lpush("floor", i)
        while True:
            received = pubsub.get_message(timeout=10)
            if received and received["type"] == "message":
                break
        times.append((time.perf_counter() - start) * 1000)
    stop.set()
    thread.join()
    pubsub.close()
    return times


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--chard-args", default="", help="extra flags for host run")
    args = parser.parse_args()
    if not os.path.exists(HOST):
        raise SystemExit("build first: make build plugins")
    with private_redis("chard-latency-") as (port, client, workdir):
        plugins = copy_plugins(workdir, ["math"])
        print(f"{args.samples} sequential math.add jobs, host run -c 2, {os.cpu_count()} cores, "
              f"load average {os.getloadavg()[0]:.1f}", flush=True)
        print(f"redis PING round trip      {percentiles(ping_floor(client, args.samples))}", flush=True)
        print(f"floor: LPUSH->BLMOVE->PUBLISH {percentiles(wakeup_floor(port, args.samples))}", flush=True)
        client.flushall()
        worker = subprocess.Popen(worker_command(plugins, port, args.chard_args.split()), env=dict(os.environ, RUST_LOG="warn"),
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            job_latency(client, redis.Redis(port=port, db=1), 50)  # start-up and warm-up
            times = job_latency(client, redis.Redis(port=port, db=1), args.samples)
        finally:
            worker.send_signal(signal.SIGINT)
            worker.wait(timeout=60)
        print(f"chard: LPUSH -> result      {percentiles(times)}", flush=True)


if __name__ == "__main__":
    main()
