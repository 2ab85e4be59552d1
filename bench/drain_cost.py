"""CPU per job of a drain, measured so that the machine's load does not move it.

    python bench/drain_cost.py [--messages 50000] [--callgrind 2000]

Wall-clock rates on a shared 2-core machine move by tens of percent with
other people's builds; the work done per job does not. This prints, for
`host run -c 2` draining N pre-loaded `math.add` messages on a private
redis-server:

- the worker's CPU per job: utime + stime from /proc/<pid>/stat, taken when
  the first message leaves the queue and when the N-th result is readable
  (start-up and shutdown excluded);
- Redis's side from its own `INFO commandstats` (reset after pre-loading):
  per command, calls per job and microseconds per call, and the total
  microseconds per job; plus Redis's process CPU per job (`INFO cpu`);
- with `--callgrind M`: the worker's instructions per job under
  `valgrind --tool=callgrind`, as the difference between a drain of 2M and
  one of M jobs (start-up, plugin loading and shutdown cancel out). The
  count is exact and repeatable; the other figures are times.

Prints figures; asserts nothing.
"""
import argparse
import glob
import os
import shutil
import signal
import subprocess
import sys
import time

import redis

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from celery_vs_chard import HOST, cpu_seconds, preload  # noqa: E402
from scratch import copy_plugins, private_redis  # noqa: E402


def worker_command(plugins, port, extra, host=None):
    return [host or os.environ.get("CHARD_BENCH_HOST") or HOST, "run", "--plugins", plugins, "--broker", f"redis://127.0.0.1:{port}/0",
            "--result-backend", f"redis://127.0.0.1:{port}/1", "-c", "2"] + extra


def wait_done(backend, n, timeout=1200):
    deadline = time.time() + timeout
    while backend.dbsize() < n:
        if time.time() > deadline:
            raise SystemExit(f"only {backend.dbsize()} of {n} results after {timeout} s")
        time.sleep(0.002)


def stop(process):
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=120)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def command_stats(client):
    stats = {}
    for name, fields in client.info("commandstats").items():
        stats[name.removeprefix("cmdstat_")] = (int(fields["calls"]), int(fields["usec"]))
    return stats


def redis_cpu(client):
    info = client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def drain(client, backend, plugins, port, n, extra):
    preload(client, n)
    client.config_resetstat()
    cpu_redis_before = redis_cpu(client)
    worker = subprocess.Popen(worker_command(plugins, port, extra), env=dict(os.environ, RUST_LOG="warn"),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while client.llen("celery") == n:
            time.sleep(0.0005)
        cpu_first = cpu_seconds(worker.pid)
        started = time.perf_counter()
        wait_done(backend, n)
        elapsed = time.perf_counter() - started
        cpu = cpu_seconds(worker.pid) - cpu_first
    finally:
        stop(worker)
    stats = command_stats(client)
    cpu_redis = redis_cpu(client) - cpu_redis_before
    return elapsed, cpu, stats, cpu_redis


def callgrind_instructions(client, backend, plugins, port, n, extra, out_dir, keep=None):
    preload(client, n)
    out = os.path.join(out_dir, f"callgrind.{n}.out")
    worker = subprocess.Popen(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", "--dump-instr=no"]
                              + worker_command(plugins, port, extra),
                              env=dict(os.environ, RUST_LOG="warn"), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_done(backend, n)
    finally:
        stop(worker)
    if keep:
        shutil.copy(out, keep)
    total = 0
    for path in glob.glob(out + "*"):
        with open(path) as data:
            for line in data:
                if line.startswith("summary:") or line.startswith("totals:"):
                    total += int(line.split()[1])
                    break
    return total


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=50000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--callgrind", type=int, default=0, metavar="M",
                        help="also count the worker's instructions per job over M jobs (valgrind, slow)")
    parser.add_argument("--keep", metavar="FILE", help="copy the larger callgrind profile here (for callgrind_annotate)")
    parser.add_argument("--chard-args", default="", help="extra flags for host run")
    args = parser.parse_args()
    if not os.path.exists(HOST):
        raise SystemExit("build first: make build plugins")
    extra = args.chard_args.split()
    with private_redis("chard-cost-") as (port, client, workdir):
        backend = redis.Redis(port=port, db=1)
        plugins = copy_plugins(workdir, ["math"])
        load = os.getloadavg()[0]
        print(f"{args.messages} math.add jobs, host run -c 2, load average {load:.1f}", flush=True)
        for round_number in range(args.rounds):
            elapsed, cpu, stats, cpu_redis = drain(client, backend, plugins, port, args.messages, extra)
            n = args.messages
            print(f"round {round_number + 1}: {n / elapsed:8.0f} jobs/s wall, worker CPU {cpu * 1e6 / n:6.1f} us/job, "
                  f"Redis CPU {cpu_redis * 1e6 / n:5.1f} us/job", flush=True)
        # A script's or a MULTI's time includes the commands it ran, which
        # are counted on their own rows too: the rows do not add up.
        if args.rounds:
            print("Redis commandstats of the last round (per job: calls, usec; usec per call):")
        for name, (calls, usec) in sorted(stats.items(), key=lambda item: -item[1][1]) if args.rounds else []:
            if name in ("flushall", "config|resetstat", "info", "dbsize", "llen", "ping"):
                continue
            print(f"  {name:<14} {calls / n:8.4f} calls/job {usec / n:6.2f} us/job {usec / max(calls, 1):9.2f} us/call")
        if args.callgrind:
            m = args.callgrind
            # A first start under valgrind compiles the plugin (valgrind's CPU
            # features make another cache key): not part of either count.
            callgrind_instructions(client, backend, plugins, port, 10, extra, workdir)
            small = callgrind_instructions(client, backend, plugins, port, m, extra, workdir)
            large = callgrind_instructions(client, backend, plugins, port, 2 * m, extra, workdir, args.keep)
            print(f"callgrind: {small:,} instructions for {m} jobs, {large:,} for {2 * m}: "
                  f"{(large - small) / m:,.0f} instructions per job", flush=True)


if __name__ == "__main__":
    main()
