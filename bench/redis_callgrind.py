"""redis-server's own instructions per job for a piece of Redis work, under callgrind.

    python bench/redis_callgrind.py fetch [SCRIPT.lua ...]   # default: host/src/broker/redis/fetch.lua
    python bench/redis_callgrind.py results                   # pipelined SETEX+PUBLISH vs one script per batch

Each variant runs on a private redis-server started under
`valgrind --tool=callgrind`, once with N and once with 2N jobs; the
difference divided by N is the server's instructions per job, whatever the
machine's load (start-up and shutdown cancel out). `fetch` pre-loads N
`math.add` envelopes (the pre-load is counted, equally for every variant:
compare variants, not absolute figures) and drains them 256 per call, as
the worker does. `results` writes N result documents in batches of 100.

Prints figures; asserts nothing.
"""
import glob
import os
import subprocess
import sys
import tempfile
import time
import uuid

import redis

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from celery_vs_chard import ROOT, envelope  # noqa: E402
from scratch import free_port  # noqa: E402

N = 5000
# One script call per batch: SET ... EX and PUBLISH for each result.
STORE_SCRIPT = """
local ttl = ARGV[1]
for i = 1, #KEYS do
  redis.call('SET', KEYS[i], ARGV[i + 1], 'EX', ttl)
  redis.call('PUBLISH', KEYS[i], ARGV[i + 1])
end
return #KEYS
"""


def under_callgrind(work, out_dir):
    """Runs `work(client)` against a fresh redis-server under callgrind; its instruction count."""
    port = free_port()
    out = os.path.join(out_dir, f"callgrind.{port}.out")
    server = subprocess.Popen(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", "redis-server", "--port",
                               str(port), "--save", "", "--appendonly", "no", "--bind", "127.0.0.1"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = redis.Redis(port=port)
    for _ in range(2000):
        try:
            client.ping()
            break
        except redis.ConnectionError:
            time.sleep(0.05)
    try:
        work(client)
    finally:
        try:
            client.shutdown(nosave=True)
        except redis.RedisError:
            pass
        server.wait()
    total = 0
    for path in glob.glob(out + "*"):
        with open(path) as data:
            for line in data:
                if line.startswith(("summary:", "totals:")):
                    total += int(line.split()[1])
                    break
    return total


def fetch_work(script, n):
    def work(client):
        sha = client.script_load(script)
        pipe = client.pipeline(transaction=False)
        for i in range(n):
            pipe.lpush("celery", envelope(str(uuid.uuid4()), i, i))
        pipe.execute()
        call = 0
        while True:
            call += 1
            taken = client.evalsha(sha, 3, "unacked", "unacked_index", "celery", 256, int(time.time()) + 1,
                                   f"bench.{call}.", 1 << 20, 1 << 22, "celery")
            if not taken:
                break
    return work


def results_work(kind, n, batch=100):
    def work(client):
        sha = client.script_load(STORE_SCRIPT)
        documents = []
        for i in range(n):
            task_id = str(uuid.uuid4())
            documents.append((f"celery-task-meta-{task_id}",
                              '{"status": "SUCCESS", "result": %d, "traceback": null, "children": [], '
                              '"date_done": "2026-12-01T22:00:00.000000+00:00", "task_id": "%s"}' % (i, task_id)))
        for start in range(0, n, batch):
            part = documents[start:start + batch]
            if kind == "pipeline":
                pipe = client.pipeline(transaction=False)
                for key, document in part:
                    pipe.execute_command("SETEX", key, 86400, document)
                    pipe.execute_command("PUBLISH", key, document)
                pipe.execute()
            else:
                client.evalsha(sha, len(part), *[key for key, _ in part], 86400, *[document for _, document in part])
    return work


def per_job(make_work, out_dir):
    small = under_callgrind(make_work(N), out_dir)
    large = under_callgrind(make_work(2 * N), out_dir)
    return (large - small) / N


def main():
    if len(sys.argv) < 2 or sys.argv[1] not in ("fetch", "results"):
        raise SystemExit(__doc__)
    out_dir = tempfile.mkdtemp(prefix="chard-redis-cg-")
    if sys.argv[1] == "fetch":
        for path in sys.argv[2:] or [os.path.join(ROOT, "host", "src", "broker", "redis", "fetch.lua")]:
            with open(path) as source:
                script = source.read()
            figure = per_job(lambda n: fetch_work(script, n), out_dir)
            print(f"{path}: {figure:,.0f} redis-server instructions per message (pre-load included)", flush=True)
    else:
        for kind in ("pipeline", "script"):
            figure = per_job(lambda n: results_work(kind, n), out_dir)
            print(f"{kind}: {figure:,.0f} redis-server instructions per result write", flush=True)


if __name__ == "__main__":
    main()
