#!/usr/bin/env bash
# Prints the hashes of the WIT files the C bindings are generated from:
# wit/*.wit (chard:task, the current world) and sdk/wit/ (the guest world
# with wasi:http and its WASI deps). sdk/c/regenerate-bindings.sh stores the
# output in sdk/c/generated/wit.sha256; sdk/c/build-plugin.sh compares.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
# sdk/wit/deps/chard-task is wit/ again (a link here, a copy in an SDK that
# `host sdk export` wrote): counted once, as wit/.
{ find wit -maxdepth 1 -type f -name '*.wit'; find sdk/wit -path sdk/wit/deps/chard-task -prune -o -type f -name '*.wit' -print; } |
    LC_ALL=C sort | xargs sha256sum
