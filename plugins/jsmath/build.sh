#!/usr/bin/env bash
# Build the `jsmath` plugin: plugins/jsmath/build.sh OUT_DIR -> OUT_DIR/jsmath.wasm
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
out_dir=${1:?usage: $0 OUT_DIR}
exec "$here/../../sdk/js/build-plugin.sh" "$here/jsmath.js" "$out_dir/jsmath.wasm"
