#!/usr/bin/env bash
# Install the toolchains that build Python, JavaScript and C task plugins.
#
#   tools/install-guest-toolchains.sh [python] [js] [c]     (default: all)
#
# Idempotent: each step checks the pinned version first and does nothing
# when it is already there. Everything comes from package registries:
#   python  componentize-py (PyPI) in .venv-guest/ at the repo root; wac-cli
#           (crates.io, `cargo install` into ~/.cargo/bin) to drop the extra
#           export componentize-py leaves in a component
#   js      componentize-js, jco, rolldown (npm, sdk/js/package-lock.json)
#           into sdk/js/node_modules; needs Node >= 20.19
#   c       clang-14, lld-14, wasi-libc, libclang-rt-14-dev-wasm32 (Debian);
#           wit-bindgen-cli, wasm-tools (crates.io, `cargo install` into
#           ~/.cargo/bin); the WASI preview1 reactor adapter from the
#           wasi-preview1-component-adapter-provider crate (crates.io) into
#           .venv-guest/share/
# wasm-tools is also what checks a plugin's world: `wasm-tools component wit X.wasm`.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV="$ROOT/.venv-guest"

COMPONENTIZE_PY_VERSION=0.25.1
WAC_VERSION=0.12.0
WIT_BINDGEN_VERSION=0.61.1
WASM_TOOLS_VERSION=1.263.0
# The adapter matches the host's wasmtime (host/Cargo.toml).
ADAPTER_PROVIDER_VERSION=48.0.8
NODE_MIN_VERSION=20.19.0
APT_PACKAGES=(clang-14 lld-14 wasi-libc libclang-rt-14-dev-wasm32)

export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"

say() { echo "install-guest-toolchains: $*" >&2; }
die() {
    say "error: $*"
    exit 1
}
version_at_least() { [ "$(printf '%s\n%s\n' "$1" "$2" | sort -V | head -1)" = "$1" ]; }

make_venv() {
    if ! [ -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import sys' >/dev/null 2>&1; then
        command -v python3 >/dev/null 2>&1 || die "python3 is missing (apt-get install python3 python3-venv)"
        say "creating $VENV"
        rm -rf "$VENV"
        python3 -m venv "$VENV" || die "python3 -m venv failed (apt-get install python3-venv)"
    fi
    # Nothing in it belongs in git.
    [ -f "$VENV/.gitignore" ] || echo '*' >"$VENV/.gitignore"
}

install_python() {
    make_venv
    if [ "$("$VENV/bin/componentize-py" --version 2>/dev/null)" != "componentize-py $COMPONENTIZE_PY_VERSION" ]; then
        say "installing componentize-py $COMPONENTIZE_PY_VERSION"
        "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "componentize-py==$COMPONENTIZE_PY_VERSION"
    fi
    if [ "$(wac --version 2>/dev/null)" != "wac-cli $WAC_VERSION" ]; then
        cargo_install wac-cli "$WAC_VERSION" --no-default-features
    fi
}

install_js() {
    command -v node >/dev/null 2>&1 || die "node is missing: Node >= $NODE_MIN_VERSION with npm is needed"
    local node_version
    node_version=$(node -p 'process.versions.node')
    version_at_least "$NODE_MIN_VERSION" "$node_version" || die "node $node_version is too old: Node >= $NODE_MIN_VERSION is needed"
    command -v npm >/dev/null 2>&1 || die "npm is missing"
    local stamp="$ROOT/sdk/js/node_modules/.package-lock.json"
    if [ -f "$stamp" ] && ! [ "$ROOT/sdk/js/package-lock.json" -nt "$stamp" ] &&
        [ -f "$ROOT/sdk/js/node_modules/@bytecodealliance/componentize-js/package.json" ]; then
        return
    fi
    say "installing componentize-js, jco and rolldown (npm ci in sdk/js)"
    (cd "$ROOT/sdk/js" && npm ci --no-audit --no-fund --loglevel=error)
}

apt_install() {
    local wanted=() package
    for package in "${APT_PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || wanted+=("$package")
    done
    [ ${#wanted[@]} -eq 0 ] && return
    local sudo=()
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null 2>&1 || die "not root and no sudo: apt-get install ${wanted[*]}"
        sudo=(sudo)
    fi
    say "installing ${wanted[*]} (apt)"
    "${sudo[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${wanted[@]}" >/dev/null
}

cargo_install() { # crate version binary features...
    local crate=$1 version=$2
    shift 2
    command -v cargo >/dev/null 2>&1 || die "cargo is missing (rustup: https://rustup.rs)"
    say "installing $crate $version (cargo install; a few minutes)"
    cargo install --locked --quiet "$crate@$version" "$@"
}

install_adapter() {
    local target="$VENV/share/wasi_snapshot_preview1.reactor.wasm"
    local stamp="$VENV/share/wasi_snapshot_preview1.reactor.version"
    if [ -f "$target" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$ADAPTER_PROVIDER_VERSION" ]; then
        return
    fi
    make_venv
    say "fetching wasi-preview1-component-adapter-provider $ADAPTER_PROVIDER_VERSION (crates.io)"
    local work
    work=$(mktemp -d)
    mkdir -p "$work/src"
    cat >"$work/Cargo.toml" <<TOML
[package]
name = "chard-adapter-fetch"
version = "0.0.0"
edition = "2021"
publish = false

[dependencies]
wasi-preview1-component-adapter-provider = "=$ADAPTER_PROVIDER_VERSION"

[workspace]
TOML
    : >"$work/src/lib.rs"
    local manifest
    manifest=$(cd "$work" && cargo metadata --quiet --format-version 1 |
        python3 -c 'import json, sys
for p in json.load(sys.stdin)["packages"]:
    if p["name"] == "wasi-preview1-component-adapter-provider":
        print(p["manifest_path"])')
    rm -rf "$work"
    local source
    source="$(dirname "$manifest")/artefacts/wasi_snapshot_preview1.reactor.wasm"
    [ -f "$source" ] || die "the adapter crate has no $source"
    mkdir -p "$VENV/share"
    cp "$source" "$target.tmp"
    mv -f "$target.tmp" "$target"
    echo "$ADAPTER_PROVIDER_VERSION" >"$stamp"
}

install_c() {
    apt_install
    if [ "$(wit-bindgen --version 2>/dev/null)" != "wit-bindgen-cli $WIT_BINDGEN_VERSION" ]; then
        cargo_install wit-bindgen-cli "$WIT_BINDGEN_VERSION" --no-default-features --features c
    fi
    local have
    have=$(wasm-tools --version 2>/dev/null | awk '{print $2}')
    if [ -z "$have" ] || ! version_at_least "$WASM_TOOLS_VERSION" "$have"; then
        cargo_install wasm-tools "$WASM_TOOLS_VERSION" --no-default-features \
            --features component,validate,print,parse,strip,metadata,objdump
    fi
    install_adapter
}

parts=("$@")
[ ${#parts[@]} -eq 0 ] && parts=(python js c)
for part in "${parts[@]}"; do
    case "$part" in
    python) install_python ;;
    js) install_js ;;
    c) install_c ;;
    all) install_python && install_js && install_c ;;
    *) die "unknown toolchain '$part' (expected python, js, c or all)" ;;
    esac
done
