#!/usr/bin/env bash
# Refresh sdk/wit/deps/ (the WASI 0.2 packages sdk/wit/http-client.wit
# imports) from the wasmtime-wasi-http crate the worker is built with, so the
# guests import exactly the version the worker implements:
#
#   sdk/wit/update-deps.sh
#
# Reads the crate from cargo's registry cache (`cargo fetch` puts it there).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
version=$(cd "$root" && cargo tree -p chard-host -i wasmtime-wasi-http --depth 0 2>/dev/null | head -1 | sed -n 's/^wasmtime-wasi-http v\([^ ]*\).*/\1/p')
[ -n "$version" ] || { echo "error: wasmtime-wasi-http is not a dependency of chard-host" >&2; exit 1; }
src=$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/"wasmtime-wasi-http-$version"/wit/deps 2>/dev/null | head -1)
[ -d "$src" ] || { echo "error: wasmtime-wasi-http $version is not in cargo's registry cache (run cargo fetch)" >&2; exit 1; }
for package in http io clocks random cli filesystem sockets; do
    mkdir -p "$here/deps/$package"
    cp "$src/$package.wit" "$here/deps/$package/$package.wit"
done
echo "sdk/wit/deps/ now holds the WASI packages of wasmtime-wasi-http $version; update the version in guest.wit if it changed"
