#!/usr/bin/env bash
# Install what the build, the demo and the tests need from the system:
# redis-server and python3-venv (Debian), and Rust's wasm32-wasip2 target.
# Idempotent and quiet when everything is there.
set -euo pipefail

need_apt=()
command -v redis-server >/dev/null 2>&1 || need_apt+=(redis-server)
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || need_apt+=(python3-venv)
if [ ${#need_apt[@]} -gt 0 ]; then
    command -v apt-get >/dev/null 2>&1 || { echo "error: missing ${need_apt[*]} and no apt-get to install them" >&2; exit 1; }
    echo "installing ${need_apt[*]}" >&2
    SUDO=$([ "$(id -u)" = 0 ] || echo sudo)
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip2; then
    rustup target add wasm32-wasip2
fi
