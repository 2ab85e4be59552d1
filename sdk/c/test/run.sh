#!/usr/bin/env bash
# Unit tests of the C SDK's runtime (argument binding, JSON, results),
# compiled natively with the host's C compiler: no component, no worker.
#
#   sdk/c/test/run.sh
#
# The generated bindings are compiled too; the host imports the tests reach
# (log, clock) are stubbed in test_chard.c (`__wasm_import_*`), the others
# are left unresolved (never called here), so what runs is the SDK's own
# code path from `exports_chard_task_tasks_run` down.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
sdk=$(cd "$here/.." && pwd)
cc=${CC:-cc}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
sources=("$here/test_chard.c")
for source in "$sdk"/*.c; do sources+=("$source"); done
# The generated code is written for wasm32 (pointers cast to i32): no warnings from it.
"$cc" -std=c11 -g -O1 -w -I"$sdk/generated" -c "$sdk/generated/plugin.c" -o "$work/plugin.o"
"$cc" -std=c11 -D_GNU_SOURCE -g -O1 -Wall -Wno-attributes -Wno-unused-parameter -I"$sdk" -I"$sdk/generated" \
    "${sources[@]}" "$work/plugin.o" -lm -static -Wl,--unresolved-symbols=ignore-all -o "$work/test_chard"
"$work/test_chard"
