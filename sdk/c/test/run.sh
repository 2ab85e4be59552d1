#!/usr/bin/env bash
# Unit tests of the C SDK's runtime (argument binding, JSON, results),
# compiled natively with the host's C compiler: no component, no worker.
#
#   sdk/c/test/run.sh
#
# The generated bindings are compiled too; the host imports they call are
# stubbed in test_chard.c (`__wasm_import_*`), so what runs is the SDK's own
# code path from `exports_chard_task_tasks_run` down.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
sdk=$(cd "$here/.." && pwd)
cc=${CC:-cc}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
sources=("$here/test_chard.c" "$sdk/generated/plugin.c")
for source in "$sdk"/*.c; do sources+=("$source"); done
"$cc" -std=c11 -D_GNU_SOURCE -g -O1 -Wall -Wno-attributes -Wno-unused-parameter -Wno-pointer-to-int-cast \
    -Wno-int-to-pointer-cast -I"$sdk" -I"$sdk/generated" "${sources[@]}" -lm -o "$work/test_chard"
"$work/test_chard"
