#!/usr/bin/env bash
# Build a C task plugin into a Chard component.
#
#   sdk/c/build-plugin.sh OUT.wasm SOURCE.c [SOURCE.c ...]
#
# The sources include "chard.h" and define their tasks with CHARD_TASKS.
# Steps: clang-14 compiles the committed bindings for sdk/wit's world
# (sdk/c/generated/, made by sdk/c/regenerate-bindings.sh), the SDK (*.c)
# and the sources for wasm32-wasi (a preview1 reactor, linked against
# Debian's wasi-libc), and `jco new --wasi-reactor` (npm, in sdk/js/node_modules)
# adapts it to WASI 0.2 with the preview1 reactor adapter jco ships.
# Extra compiler flags: CFLAGS. Tools: tools/install-guest-toolchains.sh c
set -euo pipefail

SDK=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$SDK/../.." && pwd)
GENERATED="$SDK/generated"
JCO_DIR="$ROOT/sdk/js/node_modules/@bytecodealliance/jco"
JCO="$ROOT/sdk/js/node_modules/.bin/jco"

if [ $# -lt 2 ]; then
    echo "usage: $0 OUT.wasm SOURCE.c [SOURCE.c ...]" >&2
    exit 2
fi
mkdir -p "$(dirname "$1")"
out=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
shift
sources=()
for source in "$@"; do
    sources+=("$(cd "$(dirname "$source")" && pwd)/$(basename "$source")")
done

missing() {
    echo "error: $1 is missing; install it with: tools/install-guest-toolchains.sh c" >&2
    exit 1
}
command -v clang-14 >/dev/null 2>&1 || missing "clang-14 (Debian package clang-14)"
command -v wasm-ld-14 >/dev/null 2>&1 || missing "wasm-ld-14 (Debian package lld-14)"
[ -f /usr/lib/wasm32-wasi/libc.a ] || missing "wasi-libc (Debian package wasi-libc)"
[ -f /usr/lib/llvm-14/lib/clang/14.0.6/lib/wasi/libclang_rt.builtins-wasm32.a ] ||
    missing "compiler-rt for wasm32 (Debian package libclang-rt-14-dev-wasm32)"
node -e 'const [a, b] = process.versions.node.split(".").map(Number);
        process.exit(a > 20 || (a === 20 && b >= 19) ? 0 : 1)' 2>/dev/null || missing "node >= 20.19 (for jco)"
[ -x "$JCO" ] && [ -f "$JCO_DIR/package.json" ] || missing "jco (npm, sdk/js/node_modules)"

# The committed bindings must match the WIT (else: sdk/c/regenerate-bindings.sh).
if [ "$("$SDK/wit-hash.sh")" != "$(cat "$GENERATED/wit.sha256" 2>/dev/null)" ]; then
    echo "error: the C bindings in sdk/c/generated/ do not match wit/; regenerate them with: sdk/c/regenerate-bindings.sh (needs wit-bindgen-cli 0.61.1)" >&2
    exit 1
fi

# Up to date? (newer than the sources, the SDK, the WIT and jco)
if [ -f "$out" ] && [ -z "$(find "$ROOT/wit" "$SDK" "${sources[@]}" "$JCO_DIR/package.json" -type f -newer "$out" -print -quit)" ]; then
    echo "$(basename "$out") is up to date"
    exit 0
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# shellcheck disable=SC2206
flags=(--target=wasm32-wasi --sysroot=/usr -mexec-model=reactor -O2 -Wall -Wextra -Wno-unused-parameter
       -Wno-unused-command-line-argument -I"$GENERATED" -I"$SDK" ${CFLAGS:-})
objects=("$GENERATED/plugin_component_type.o")
clang-14 "${flags[@]}" -c "$GENERATED/plugin.c" -o "$work/plugin.o"
objects+=("$work/plugin.o")
for source in "$SDK"/*.c; do
    clang-14 "${flags[@]}" -c "$source" -o "$work/sdk-$(basename "$source" .c).o"
    objects+=("$work/sdk-$(basename "$source" .c).o")
done
i=0
for source in "${sources[@]}"; do
    clang-14 "${flags[@]}" -c "$source" -o "$work/src$i.o"
    objects+=("$work/src$i.o")
    i=$((i + 1))
done
# 2 MiB of initial memory: wasi-libc's malloc first hands out the memory
# between __heap_base and the end of the initial memory, so a job that
# allocates less never runs memory.grow. Each grow costs wasmtime an
# mprotect when the job grows and another when the instance is reset, and
# those take the process's mmap lock and flush the TLB of every core: with
# the linker's minimal default, every `cmath.add` job grew, cost 28 us
# instead of 17 us, and two job threads ran at 0.34x of twice one thread's
# rate (bench/README.md). Untouched pages cost nothing. A later
# -Wl,--initial-memory in CFLAGS overrides it.
clang-14 -Wl,--initial-memory=2097152 "${flags[@]}" -fuse-ld=lld -Wl,--strip-debug -o "$work/core.wasm" "${objects[@]}"
if ! log=$("$JCO" new "$work/core.wasm" --wasi-reactor -o "$work/out.wasm" 2>&1); then
    echo "$log" >&2
    exit 1
fi
mv -f "$work/out.wasm" "$out"
echo "built $out ($(( $(stat -c %s "$out") / 1024 )) KiB)"
