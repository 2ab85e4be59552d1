#!/usr/bin/env bash
# `make demo`: start a private Redis and a Chard worker on every example
# plugin, then run jobs through it from our CLI and from a stock Python
# Celery client. Everything stops when the script ends.
set -euo pipefail
cd "$(dirname "$0")/.."
HOST=target/release/host
PYTHON=${PYTHON:-.venv/bin/python}
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
BROKER=redis://127.0.0.1:$PORT/0
BACKEND=redis://127.0.0.1:$PORT/1
LOG=$(mktemp -t chard-demo-worker.XXXXXX)

redis-server --port "$PORT" --bind 127.0.0.1 --save "" --appendonly no >/dev/null &
REDIS=$!
cleanup() {
    kill "${WORKER:-}" 2>/dev/null && wait "${WORKER:-}" 2>/dev/null || true
    kill "$REDIS" 2>/dev/null || true
}
trap cleanup EXIT
until redis-cli -p "$PORT" ping >/dev/null 2>&1; do sleep 0.05; done

echo "== worker: $HOST run --plugins target/plugins --broker $BROKER --result-backend $BACKEND"
echo "   (the first start compiles the Python and JS plugins; later starts load them from the compile cache)"
$HOST run --plugins target/plugins --broker "$BROKER" --result-backend "$BACKEND" >"$LOG" 2>&1 &
WORKER=$!
until grep -q "worker ready" "$LOG"; do
    kill -0 "$WORKER" 2>/dev/null || { cat "$LOG"; exit 1; }
    sleep 0.1
done
grep -E "plugin loaded|worker ready" "$LOG" | sed 's/^/   /'

echo "== tasks served:"
$HOST tasks --plugins target/plugins | sed 's/^/   /'

run() { echo "\$ $*"; "$@" || true; }
echo "== jobs from the host CLI:"
for plugin in math cmath jsmath pymath; do
    run $HOST submit "$plugin.add" '[2, 3]' --broker "$BROKER" --result-backend "$BACKEND" --wait
done
run $HOST submit math.xsum '[[1.5, 2.5, 3]]' --broker "$BROKER" --result-backend "$BACKEND" --wait
run $HOST submit faults.fail '["card declined"]' --broker "$BROKER" --result-backend "$BACKEND" --wait

echo "== the same worker from a stock Celery 5.7 client:"
"$PYTHON" - "$BROKER" "$BACKEND" <<'PY'
import sys
from celery import Celery
app = Celery(broker=sys.argv[1], backend=sys.argv[2])
print(">>> app.send_task('math.add', args=[40, 2]).get()  ->", app.send_task("math.add", args=[40, 2]).get(timeout=30))
print(">>> app.send_task('pymath.mul', args=[6, 7]).get() ->", app.send_task("pymath.mul", args=[6, 7]).get(timeout=30))
try:
    app.send_task("faults.fail", args=["boom"]).get(timeout=30)
except Exception as exc:
    print(">>> app.send_task('faults.fail', args=['boom']).get() raised", repr(exc))
PY
echo "== done; worker log: $LOG"
