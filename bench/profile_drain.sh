#!/usr/bin/env bash
# Where the worker's CPU goes while it drains N queued `math.add` jobs:
# samples `host run -c 2` with perf (cpu-clock, works in VMs without
# hardware counters) on a private redis-server, then prints the hottest
# symbols and the split between job threads and tokio threads.
#
#   bench/profile_drain.sh [JOBS]     # default 100000; needs perf, make build plugins venv
set -euo pipefail
cd "$(dirname "$0")/.."
jobs="${1:-100000}"
python=.venv/bin/python
out="${PERF_DATA:-target/perf-drain.data}"
port="$($python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no >/dev/null &
redis_pid=$!
plugins="$(mktemp -d)"
trap 'kill $redis_pid 2>/dev/null; rm -rf "$plugins"' EXIT
cp target/plugins/math.wasm "$plugins/"
sleep 0.3
PYTHONPATH=bench $python -c "import redis, celery_vs_chard as b; b.preload(redis.Redis(port=$port), $jobs)"
perf record -q -F 999 -e cpu-clock -g -o "$out" -- target/release/host run --plugins "$plugins" \
    --broker "redis://127.0.0.1:$port/0" --result-backend "redis://127.0.0.1:$port/1" -c 2 >/dev/null 2>&1 &
perf_pid=$!
started=$(date +%s.%N)
until [ "$(redis-cli -p "$port" -n 1 dbsize)" -ge "$jobs" ]; do sleep 0.05; done
elapsed=$(echo "$(date +%s.%N) - $started" | bc)
kill -INT $perf_pid
wait $perf_pid || true
echo "$jobs jobs in ${elapsed}s (start-up included); samples in $out"
nanoseconds=$(perf report -i "$out" --stdio --sort comm -g none 2>/dev/null | sed -n 's/^# Event count (approx.): //p')
echo "worker CPU: $(echo "$nanoseconds / $jobs / 1000" | bc) µs per job (cpu-clock counts nanoseconds on a CPU)"
echo "CPU by thread (comm; chard-exec-* run jobs, tokio-rt-worker does Redis and JSON):"
perf report -i "$out" --stdio --no-children --sort comm -g none 2>/dev/null | grep -E '^ +[0-9]' | head -8
echo "hottest symbols (self time):"
python3 bench/perf_symbols.py "$out" target/release/host 30
