"""What every benchmark here starts from: a private redis-server on a free
loopback port and a scratch directory with the plugins it runs, both gone
when the run ends (also on Ctrl-C). Benchmarks never touch a Redis they did
not start, so they can run beside the test suite and each other.
"""
import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time

import redis

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def private_redis(prefix="chard-bench-"):
    """Yields (port, client, workdir): a redis-server that keeps nothing on
    disk, a client of its db 0, and an empty directory."""
    port = free_port()
    workdir = tempfile.mkdtemp(prefix=prefix)
    server = subprocess.Popen(["redis-server", "--port", str(port), "--save", "", "--appendonly", "no",
                               "--bind", "127.0.0.1"], stdout=subprocess.DEVNULL)
    client = redis.Redis(port=port)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise SystemExit(f"redis-server on port {port} did not answer within 10 s")
                time.sleep(0.02)
        yield port, client, workdir
    finally:
        server.terminate()
        server.wait()
        shutil.rmtree(workdir, ignore_errors=True)


def copy_plugins(workdir, names):
    """A plugin folder under `workdir` holding target/plugins/<name>.wasm for each name."""
    plugins = os.path.join(workdir, "plugins")
    os.makedirs(plugins, exist_ok=True)
    for name in names:
        shutil.copy(os.path.join(ROOT, "target", "plugins", f"{name}.wasm"), plugins)
    return plugins
