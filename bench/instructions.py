"""Instructions per job of the worker process, counted by valgrind.

    python bench/instructions.py [--jobs 2000] [--chard-args "--metrics 127.0.0.1:0"]

Wall-clock rates on a shared 2-core machine vary by ±30 % from run to run;
instruction counts do not. This drains a small and a large batch of queued
`math.add` messages under `valgrind --tool=callgrind` (instrumentation off
until main, no cache simulation) and prints the difference divided by the
difference in jobs: the worker's instructions per job, start-up and
shutdown cancelled out. Compare flags by running it once with each.
Prints figures; asserts nothing. Needs valgrind.
"""
import argparse
import os
import re
import shutil
import subprocess
import tempfile
import time

import redis

from celery_vs_chard import HOST, ROOT, free_port, preload


def count(jobs, extra, port, plugins, workdir):
    client = redis.Redis(port=port)
    backend = redis.Redis(port=port, db=1)
    preload(client, jobs)
    out = os.path.join(workdir, f"callgrind.{jobs}.out")
    worker = subprocess.Popen(
        ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", "--dump-instr=no",
         HOST, "run", "--plugins", plugins, "--broker", f"redis://127.0.0.1:{port}/0",
         "--result-backend", f"redis://127.0.0.1:{port}/1", "-c", "2"] + extra.split(),
        env=dict(os.environ, RUST_LOG="warn"), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 900
    while backend.dbsize() < jobs and time.time() < deadline:
        time.sleep(0.05)
    if backend.dbsize() < jobs:
        raise SystemExit(f"only {backend.dbsize()} of {jobs} results within 15 minutes")
    worker.terminate()
    worker.wait(timeout=300)
    with open(out) as profile:
        totals = re.search(r"^(?:summary|totals):\s+(\d+)", profile.read(), re.M)
    return int(totals.group(1))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=2000, help="the small batch; the large one is 3x")
    parser.add_argument("--chard-args", default="", help="extra flags for host run")
    args = parser.parse_args()
    if not shutil.which("valgrind"):
        raise SystemExit("needs valgrind (apt-get install valgrind)")
    port = free_port()
    workdir = tempfile.mkdtemp(prefix="chard-instr-")
    server = subprocess.Popen(["redis-server", "--port", str(port), "--save", "", "--appendonly", "no",
                               "--bind", "127.0.0.1"], stdout=subprocess.DEVNULL)
    try:
        time.sleep(0.3)
        plugins = os.path.join(workdir, "plugins")
        os.makedirs(plugins)
        shutil.copy(os.path.join(ROOT, "target", "plugins", "math.wasm"), plugins)
        # Valgrind's CPU model differs from the real one, so the first run
        # compiles the plugin for it; warm the compile cache first.
        count(10, args.chard_args, port, plugins, workdir)
        small = count(args.jobs, args.chard_args, port, plugins, workdir)
        large = count(3 * args.jobs, args.chard_args, port, plugins, workdir)
        per_job = (large - small) / (2 * args.jobs)
        print(f"worker instructions per math.add job: {per_job:,.0f} "
              f"({args.jobs} jobs: {small:,}; {3 * args.jobs}: {large:,}) flags: {args.chard_args or '(none)'}", flush=True)
    finally:
        server.terminate()
        server.wait()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
