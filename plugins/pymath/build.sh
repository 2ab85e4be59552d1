#!/usr/bin/env bash
# Build the `pymath` plugin: plugins/pymath/build.sh OUT_DIR -> OUT_DIR/pymath.wasm
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
out_dir=${1:?usage: $0 OUT_DIR}
exec "$here/../../sdk/python/build-plugin.sh" "$here" pymath "$out_dir/pymath.wasm"
