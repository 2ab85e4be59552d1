#!/usr/bin/env bash
# Build the `pyio` plugin: plugins/pyio/build.sh OUT_DIR -> OUT_DIR/pyio.wasm
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
out_dir=${1:?usage: $0 OUT_DIR}
exec "$here/../../sdk/python/build-plugin.sh" "$here" pyio "$out_dir/pyio.wasm"
