#!/usr/bin/env bash
# Build the `pyhttp` plugin: plugins/pyhttp/build.sh OUT_DIR -> OUT_DIR/pyhttp.wasm
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
out_dir=${1:?usage: $0 OUT_DIR}
exec "$here/../../sdk/python/build-plugin.sh" --http "$here" pyhttp "$out_dir/pyhttp.wasm"
