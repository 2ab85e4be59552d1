#!/usr/bin/env bash
# Build the `jshttp` plugin: plugins/jshttp/build.sh OUT_DIR -> OUT_DIR/jshttp.wasm
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
out_dir=${1:?usage: $0 OUT_DIR}
exec "$here/../../sdk/js/build-plugin.sh" --http "$here/jshttp.js" "$out_dir/jshttp.wasm"
