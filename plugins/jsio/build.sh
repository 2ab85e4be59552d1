#!/usr/bin/env bash
# Build the `jsio` plugin: plugins/jsio/build.sh OUT_DIR -> OUT_DIR/jsio.wasm
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
out_dir=${1:?usage: $0 OUT_DIR}
exec "$here/../../sdk/js/build-plugin.sh" "$here/jsio.js" "$out_dir/jsio.wasm"
