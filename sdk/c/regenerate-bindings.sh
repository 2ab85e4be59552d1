#!/usr/bin/env bash
# Regenerate the C bindings the C SDK compiles with, for sdk/wit's
# `plugin` world (wit/chard.wit's plugin world plus
# wasi:http/outgoing-handler; a plugin that makes no request does not end up
# importing it):
#
#   sdk/c/regenerate-bindings.sh
#
# Writes sdk/c/generated/plugin.{c,h}, plugin_component_type.o (the world's
# component type, ~1 KB) and wit.sha256 (what they were generated from).
# The bindings are committed so that building a C plugin needs no
# wit-bindgen; sdk/c/build-plugin.sh refuses to build when wit/ no longer
# matches wit.sha256. Run this after every change to wit/, and commit
# sdk/c/generated/.
#
# Needs wit-bindgen-cli 0.61.1 (the version of the Rust SDK's wit-bindgen):
#   cargo install --locked wit-bindgen-cli@0.61.1 --no-default-features --features c
# (a few minutes; not part of tools/install-guest-toolchains.sh).
set -euo pipefail

SDK=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$SDK/../.." && pwd)
WIT_BINDGEN_VERSION=0.61.1
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"

if [ "$(wit-bindgen --version 2>/dev/null)" != "wit-bindgen-cli $WIT_BINDGEN_VERSION" ]; then
    echo "error: wit-bindgen $WIT_BINDGEN_VERSION is missing; install it with: cargo install --locked wit-bindgen-cli@$WIT_BINDGEN_VERSION --no-default-features --features c" >&2
    exit 1
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
if ! log=$(wit-bindgen c "$ROOT/sdk/wit" --world plugin --out-dir "$work/generated" 2>&1); then
    echo "$log" >&2
    exit 1
fi
mkdir -p "$SDK/generated"
"$SDK/wit-hash.sh" >"$work/generated/wit.sha256"
for file in plugin.c plugin.h plugin_component_type.o wit.sha256; do
    [ -f "$work/generated/$file" ] || { echo "error: wit-bindgen wrote no $file" >&2; exit 1; }
    cp "$work/generated/$file" "$SDK/generated/$file.tmp"
    mv -f "$SDK/generated/$file.tmp" "$SDK/generated/$file"
done
echo "regenerated sdk/c/generated/ (commit it)"
