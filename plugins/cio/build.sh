#!/usr/bin/env bash
# Build the `cio` plugin: plugins/cio/build.sh OUT_DIR -> OUT_DIR/cio.wasm
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
out_dir=${1:?usage: $0 OUT_DIR}
exec "$here/../../sdk/c/build-plugin.sh" "$out_dir/cio.wasm" "$here/cio.c"
