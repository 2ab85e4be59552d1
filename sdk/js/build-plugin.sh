#!/usr/bin/env bash
# Build a JavaScript task plugin into a Chard component.
#
#   sdk/js/build-plugin.sh [--http] ENTRY.js OUT.wasm
#
# ENTRY.js is an ES module whose exported functions are the tasks; it may
# import 'chard' (this SDK) and relative modules. The toolchain (rolldown,
# componentize-js) lives in sdk/js/node_modules (tools/install-guest-toolchains.sh).
set -euo pipefail

SDK=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$SDK/../.." && pwd)

http=()
if [ "${1:-}" = "--http" ]; then
    http=(--http)  # fetch() (imports wasi:http)
    shift
fi
if [ $# -ne 2 ]; then
    echo "usage: $0 [--http] ENTRY.js OUT.wasm" >&2
    exit 2
fi
entry=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
mkdir -p "$(dirname "$2")"
out=$(cd "$(dirname "$2")" && pwd)/$(basename "$2")

if ! command -v node >/dev/null 2>&1 || ! node -e 'const [a, b] = process.versions.node.split(".").map(Number);
        process.exit(a > 20 || (a === 20 && b >= 19) ? 0 : 1)' 2>/dev/null; then
    echo "error: node >= 20.19 is missing; install it, then run: tools/install-guest-toolchains.sh js" >&2
    exit 1
fi
stamp="$SDK/node_modules/.package-lock.json"
if ! [ -f "$SDK/node_modules/@bytecodealliance/componentize-js/package.json" ] || ! [ -f "$stamp" ] \
        || [ "$SDK/package-lock.json" -nt "$stamp" ]; then
    echo "error: componentize-js is missing or stale (sdk/js/node_modules); install it with: tools/install-guest-toolchains.sh js" >&2
    exit 1
fi

# Up to date? (newer than the WIT, the SDK, the plugin's directory)
if [ -f "$out" ] && [ -z "$(find "$ROOT/wit" "$SDK" "$(dirname "$entry")" \
        \( -name node_modules -prune \) -o -type f -newer "$out" -print -quit)" ]; then
    echo "$(basename "$out") is up to date"
    exit 0
fi

node "$SDK/build-plugin.mjs" "${http[@]}" "$entry" "$out"
echo "built $out ($(( $(stat -c %s "$out") / 1024 )) KiB)"
