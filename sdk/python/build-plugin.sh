#!/usr/bin/env bash
# Build a Python task plugin into a Chard component.
#
#   sdk/python/build-plugin.sh [--http] PLUGIN_DIR MODULE OUT.wasm
#
# PLUGIN_DIR holds the plugin's Python code; MODULE (a module in it) is
# imported at build time and registers its tasks with `@chard.task`.
# componentize-py comes from .venv-guest/ (tools/install-guest-toolchains.sh
# python).
#
# The world is `chard:task/plugin` (wit/); with --http, sdk/wit's
# `plugin`, which adds wasi:http/outgoing-handler for `chard.http`.
# Opt-in because componentize-py imports everything in its world: a plugin
# that makes no requests should not need a worker that provides wasi:http.
#
# componentize-py leaves an extra export in the component (`exports`, its
# build-time `init` hook); the host ignores exports other than
# `chard:task/tasks`, so the component is used as componentize-py writes it.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
COMPONENTIZE_PY_VERSION=0.25.1

world=(-d "$ROOT/wit" -w plugin)
if [ "${1:-}" = "--http" ]; then
    world=(-d "$ROOT/sdk/wit" -w plugin)
    shift
fi
if [ $# -ne 3 ]; then
    echo "usage: $0 [--http] PLUGIN_DIR MODULE OUT.wasm" >&2
    exit 2
fi
plugin_dir=$(cd "$1" && pwd)
module=$2
out=$3
mkdir -p "$(dirname "$out")"
out=$(cd "$(dirname "$out")" && pwd)/$(basename "$out")

cpy="$ROOT/.venv-guest/bin/componentize-py"
if ! [ -x "$cpy" ] || [ "$("$cpy" --version 2>/dev/null)" != "componentize-py $COMPONENTIZE_PY_VERSION" ]; then
    echo "error: componentize-py $COMPONENTIZE_PY_VERSION is missing ($cpy); install it with: tools/install-guest-toolchains.sh python" >&2
    exit 1
fi

# Up to date? (newer than the WIT, the SDK, the plugin's files and the tool)
if [ -f "$out" ] && [ -z "$(find "$ROOT/wit" "$ROOT/sdk/wit" "$ROOT/sdk/python" "$plugin_dir" "$cpy" "${BASH_SOURCE[0]}" \
        -newer "$out" -type f ! -name '*.pyc' ! -path '*/node_modules/*' -print -quit)" ]; then
    echo "$(basename "$out") is up to date"
    exit 0
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cat > "$work/chard_plugin_entry.py" <<PY
import $module  # registers the plugin's tasks
from chard._component import Tasks  # the component's export
PY

PYTHONDONTWRITEBYTECODE=1 "$cpy" "${world[@]}" componentize \
    -p "$work" -p "$plugin_dir" -p "$ROOT/sdk/python" \
    chard_plugin_entry -o "$work/out.wasm" >&2
mv -f "$work/out.wasm" "$out"
echo "built $out ($(( $(stat -c %s "$out") / 1024 )) KiB)"
