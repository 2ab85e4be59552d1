"""Drain the same 20,000 `add` jobs with Chard, BullMQ and Celery, next to
the Redis floor, in one run (`make bench-peers`).

    python bench/peers.py [--messages 20000] [--rounds 3] [--only chard,floor,bullmq,celery]

Everything shares one private redis-server on a free port (and this
machine's cores) with the client. Each run starts from a flushed Redis
with the jobs queued, and is timed from the first job taken to the last
result stored, start-up excluded:

- chard: `host run -c 2` with `math.wasm` (Celery messages from
  celery_vs_chard.envelope, results in db 1).
- celery: Celery 5.7 prefork -c 2 (tests/python/celery_worker_app.py).
- bullmq: 2 Node processes x concurrency 8 (bench/peers/bullmq.js); BullMQ
  messages and results are its own format, the job is the same x + y.
- floor: bench/redis_floor.lua, 256 jobs per call: per job only what any
  worker must do in Redis (move to a processing list, SET the result with
  its expiry, PUBLISH, remove from the processing list). No worker can beat
  it with the same guarantees; how close one gets is the point.

Chard runs before every peer (alternated, as peers share the machine), and
each figure is the median of its runs. Prints figures; asserts nothing.
"""
import argparse
import os
import statistics
import subprocess
import sys
import time

import redis

from celery_vs_chard import HOST, ROOT, drain, preload
from scratch import free_port

PEERS_DIR = os.path.join(ROOT, "bench", "peers")
FLOOR_BATCH = 256
RESULT_EXPIRES = 86400


def wait_until(predicate, what, timeout=600):
    deadline = time.time() + timeout
    while not predicate():
        if time.time() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.001)


def stop(processes):
    for process in processes:
        process.terminate()
    for process in processes:
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


def report(name, done, elapsed):
    rate = done / elapsed
    print(f"{name:<28} {done:>6} jobs in {elapsed:7.2f} s = {rate:9.0f} jobs/s", flush=True)
    return rate


def floor(client, n):
    preload(client, n)
    script = client.register_script(open(os.path.join(ROOT, "bench", "redis_floor.lua")).read())
    done = 0
    started = time.perf_counter()
    while done < n:
        moved = script(keys=["celery", "floor-processing"], args=[FLOOR_BATCH, RESULT_EXPIRES, done])
        if moved == 0:
            break
        done += moved
    return report("redis floor (lua, 256/call)", done, time.perf_counter() - started)


def bullmq(client, port, n, processes, concurrency):
    client.flushall()
    subprocess.run(["node", "bullmq.js", "load", str(port), str(n)], cwd=PEERS_DIR, check=True)
    completed = "bull:bench:completed"
    workers = [subprocess.Popen(["node", "bullmq.js", "work", str(port), str(concurrency)], cwd=PEERS_DIR)
               for _ in range(processes)]
    try:
        wait_until(lambda: client.zcard(completed) > 0, "BullMQ's first job")
        first = time.perf_counter()
        wait_until(lambda: client.zcard(completed) >= n, "BullMQ's last job")
        elapsed = time.perf_counter() - first
    finally:
        stop(workers)
    return report(f"bullmq ({processes} node x {concurrency})", client.zcard(completed), elapsed)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=2, help="Chard's -c and Celery's -c")
    parser.add_argument("--only", default="chard,floor,bullmq,celery")
    args = parser.parse_args()
    peers = [peer for peer in args.only.split(",") if peer != "chard"]
    if not os.path.exists(HOST):
        raise SystemExit("build first: make build plugins")
    port = free_port()
    server = subprocess.Popen(["redis-server", "--port", str(port), "--save", "", "--appendonly", "no",
                               "--bind", "127.0.0.1"], stdout=subprocess.DEVNULL)
    workdir = os.path.join(ROOT, "target", "bench-peers")
    plugins = os.path.join(workdir, "plugins")
    os.makedirs(plugins, exist_ok=True)
    subprocess.run(["cp", os.path.join(ROOT, "target", "plugins", "math.wasm"), plugins], check=True)
    try:
        client = redis.Redis(port=port)
        wait_until(lambda: _pings(client), "redis-server", timeout=10)
        backend = redis.Redis(port=port, db=1)
        broker = f"redis://127.0.0.1:{port}/0"
        result_backend = f"redis://127.0.0.1:{port}/1"
        quiet = dict(stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        def chard_worker():
            return subprocess.Popen([HOST, "run", "--plugins", plugins, "--broker", broker, "--result-backend",
                                     result_backend, "-c", str(args.concurrency)],
                                    env=dict(os.environ, RUST_LOG="warn"), **quiet)

        def celery_worker():
            env = dict(os.environ, CHARD_TEST_BROKER=broker, CHARD_TEST_BACKEND=result_backend)
            return subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "celery_worker_app", "worker", "-P", "prefork",
                 "-c", str(args.concurrency), "--without-gossip", "--without-mingle", "--without-heartbeat",
                 "-l", "warning"], cwd=os.path.join(ROOT, "tests", "python"), env=env, **quiet)

        runs = {
            "floor": lambda: floor(client, args.messages),
            "bullmq": lambda: bullmq(client, port, args.messages, 2, 8),
            "celery": lambda: drain(f"celery 5.7 (prefork -c {args.concurrency})", client, backend,
                                    args.messages, celery_worker)[0],
        }
        chard = lambda: drain(f"chard (host run -c {args.concurrency})", client, backend, args.messages,
                              chard_worker)[0]
        print(f"draining {args.messages} add jobs, {args.rounds} round(s), {os.cpu_count()} cores, "
              f"client + workers + Redis on one machine; load average {os.getloadavg()[0]:.1f}", flush=True)
        rates = {"chard": []}
        for _ in range(args.rounds):
            for peer in peers:
                rates["chard"].append(chard())
                rates.setdefault(peer, []).append(runs[peer]())
        if not peers:
            for _ in range(args.rounds):
                rates["chard"].append(chard())
        medians = {name: statistics.median(values) for name, values in rates.items()}
        print(f"\nmedians (jobs/s); load average now {os.getloadavg()[0]:.1f}", flush=True)
        for name, rate in medians.items():
            line = f"{name:<8} {rate:9.0f}"
            if name != "chard":
                line += f"   chard / {name} = {medians['chard'] / rate:.2f}"
            print(line, flush=True)
    finally:
        server.terminate()
        server.wait()


def _pings(client):
    try:
        return client.ping()
    except redis.ConnectionError:
        return False


if __name__ == "__main__":
    main()
