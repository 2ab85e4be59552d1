#!/usr/bin/env bash
# Build a C task plugin into a Chard component.
#
#   sdk/c/build-plugin.sh OUT.wasm SOURCE.c [SOURCE.c ...]
#
# The sources include "chard.h" and define their tasks with CHARD_TASKS.
# Steps: `wit-bindgen c` generates the bindings for wit/chard.wit, clang-14
# compiles them with the SDK (chard.c) and the sources for wasm32-wasi
# (a preview1 reactor, linked against Debian's wasi-libc), and
# `wasm-tools component new` adapts it to WASI 0.2 with the preview1 reactor
# adapter. Extra compiler flags: CFLAGS. Tools: tools/install-guest-toolchains.sh c
set -euo pipefail

SDK=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$SDK/../.." && pwd)
WIT_BINDGEN_VERSION=0.61.1
WASM_TOOLS_MIN_VERSION=1.263.0
ADAPTER="$ROOT/.venv-guest/share/wasi_snapshot_preview1.reactor.wasm"
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"

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
[ "$(wit-bindgen --version 2>/dev/null)" = "wit-bindgen-cli $WIT_BINDGEN_VERSION" ] ||
    missing "wit-bindgen $WIT_BINDGEN_VERSION (cargo crate wit-bindgen-cli)"
have=$(wasm-tools --version 2>/dev/null | awk '{print $2}')
[ -n "$have" ] && [ "$(printf '%s\n%s\n' "$WASM_TOOLS_MIN_VERSION" "$have" | sort -V | head -1)" = "$WASM_TOOLS_MIN_VERSION" ] ||
    missing "wasm-tools >= $WASM_TOOLS_MIN_VERSION"
[ -f "$ADAPTER" ] || missing "the WASI preview1 reactor adapter ($ADAPTER)"

# Up to date? (newer than the sources, the SDK, the WIT and the adapter)
if [ -f "$out" ] && [ -z "$(find "$ROOT/wit" "$SDK" "${sources[@]}" "$ADAPTER" -type f -newer "$out" -print -quit)" ]; then
    echo "$(basename "$out") is up to date"
    exit 0
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
if ! log=$(wit-bindgen c "$ROOT/wit" --world plugin --out-dir "$work" 2>&1); then
    echo "$log" >&2
    exit 1
fi
# shellcheck disable=SC2206
flags=(--target=wasm32-wasi --sysroot=/usr -mexec-model=reactor -O2 -Wall -Wextra -Wno-unused-parameter
       -Wno-unused-command-line-argument -I"$work" -I"$SDK" ${CFLAGS:-})
objects=("$work/plugin_component_type.o")
clang-14 "${flags[@]}" -c "$work/plugin.c" -o "$work/plugin.o"
clang-14 "${flags[@]}" -c "$SDK/chard.c" -o "$work/chard.o"
objects+=("$work/plugin.o" "$work/chard.o")
i=0
for source in "${sources[@]}"; do
    clang-14 "${flags[@]}" -c "$source" -o "$work/src$i.o"
    objects+=("$work/src$i.o")
    i=$((i + 1))
done
clang-14 "${flags[@]}" -fuse-ld=lld -Wl,--strip-debug -o "$work/core.wasm" "${objects[@]}"
wasm-tools component new "$work/core.wasm" --adapt "wasi_snapshot_preview1=$ADAPTER" -o "$work/out.wasm"
mv -f "$work/out.wasm" "$out"
echo "built $out ($(( $(stat -c %s "$out") / 1024 )) KiB)"
