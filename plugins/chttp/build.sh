#!/usr/bin/env bash
# Build the `chttp` plugin: plugins/chttp/build.sh OUT_DIR -> OUT_DIR/chttp.wasm
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
out_dir=${1:?usage: $0 OUT_DIR}
exec "$here/../../sdk/c/build-plugin.sh" "$out_dir/chttp.wasm" "$here/chttp.c"
