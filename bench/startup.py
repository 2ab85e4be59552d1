"""Time from exec to "worker ready" for a worker with the four example plugins.

    python bench/startup.py [--runs 7] [--host target/release/host]

Starts a private redis-server, copies math, cmath, jsmath and pymath into a
folder, warms the compile cache with one start (the user's default cache
unless --cache-dir), then starts `host run` RUNS
times and reads its log: the time from exec to the "worker ready" line,
and the CPU the process used until then (utime + stime, which the machine's
load does not inflate). Prints the median and range; asserts nothing.
"""
import argparse
import os
import signal
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from celery_vs_chard import HOST, cpu_seconds  # noqa: E402
from scratch import copy_plugins, private_redis  # noqa: E402

PLUGINS = ["math", "cmath", "jsmath", "pymath"]


def start_once(host, plugins, port, cache):
    command = [host, "run", "--plugins", plugins, "--broker", f"redis://127.0.0.1:{port}/0",
               "--result-backend", f"redis://127.0.0.1:{port}/1", "-c", "2"]
    env = dict(os.environ, RUST_LOG="info", NO_COLOR="1")
    if cache:
        env["CHARD_CACHE_DIR"] = cache
    started = time.perf_counter()
    worker = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        lines = []
        for line in worker.stdout:
            lines.append(line)
            if "worker ready" in line:
                lines.insert(0, f"ready after {time.perf_counter() - started:.3f}s\n")
                return time.perf_counter() - started, cpu_seconds(worker.pid), lines
        raise SystemExit("the worker exited before it was ready:\n" + "".join(lines))
    finally:
        worker.send_signal(signal.SIGINT)
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--host", default=HOST)
    parser.add_argument("--cache-dir", help="compile cache (CHARD_CACHE_DIR); default: the worker's default, ~/.cache/chard")
    parser.add_argument("--verbose", action="store_true", help="print the log of the last start")
    args = parser.parse_args()
    with private_redis("chard-startup-") as (port, _, workdir):
        plugins = copy_plugins(workdir, PLUGINS)
        cache = args.cache_dir
        cold, _, _ = start_once(args.host, plugins, port, cache)
        print(f"{', '.join(PLUGINS)}; first start {cold:.2f} s (compiles what the cache lacks); load average {os.getloadavg()[0]:.1f}", flush=True)
        walls, cpus = [], []
        for _ in range(args.runs):
            wall, cpu, lines = start_once(args.host, plugins, port, cache)
            walls.append(wall * 1000)
            cpus.append(cpu * 1000)
        print(f"warm cache, exec -> 'worker ready': median {statistics.median(walls):.0f} ms wall "
              f"(runs {min(walls):.0f}-{max(walls):.0f}), {statistics.median(cpus):.0f} ms CPU "
              f"(runs {min(cpus):.0f}-{max(cpus):.0f})", flush=True)
        if args.verbose:
            print("".join(lines))


if __name__ == "__main__":
    main()
