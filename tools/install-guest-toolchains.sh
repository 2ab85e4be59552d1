#!/usr/bin/env bash
# Install the toolchains that build Python, JavaScript and C task plugins.
#
#   tools/install-guest-toolchains.sh [python] [js] [c]     (default: all)
#
# Idempotent: each step checks what is there first and does nothing when it
# is already installed. Everything comes from package registries, and no
# step compiles anything (about half a minute on a fresh machine):
#   python  componentize-py (PyPI) in .venv-guest/ at the repo root
#   js      componentize-js, jco, rolldown (npm, sdk/js/package-lock.json)
#           into sdk/js/node_modules; needs Node >= 20.19
#   c       clang-14, lld-14, wasi-libc, libclang-rt-14-dev-wasm32 (Debian),
#           and jco from the js step: `jco new --wasi-reactor` turns the
#           core module into a component with the WASI preview1 reactor
#           adapter jco ships. The C bindings for wit/ are committed in
#           sdk/c/generated/ (sdk/c/regenerate-bindings.sh remakes them
#           after a WIT change; that one needs wit-bindgen-cli from crates.io).
# `sdk/js/node_modules/.bin/jco wit X.wasm` prints a plugin's world.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV="$ROOT/.venv-guest"

COMPONENTIZE_PY_VERSION=0.25.1
NODE_MIN_VERSION=20.19.0
APT_PACKAGES=(clang-14 lld-14 wasi-libc libclang-rt-14-dev-wasm32)

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
        "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "componentize-py==$COMPONENTIZE_PY_VERSION" ||
            die "pip install componentize-py==$COMPONENTIZE_PY_VERSION failed (see above)"
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
    (cd "$ROOT/sdk/js" && npm ci --no-audit --no-fund --loglevel=error) || die "npm ci in sdk/js failed (see above)"
}

apt_install() {
    local wanted=() package
    for package in "${APT_PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || wanted+=("$package")
    done
    [ ${#wanted[@]} -eq 0 ] && return
    command -v apt-get >/dev/null 2>&1 || die "no apt-get: install ${wanted[*]} (Debian package names) by hand"
    local sudo=()
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null 2>&1 || die "not root and no sudo: apt-get install ${wanted[*]}"
        sudo=(sudo)
    fi
    say "installing ${wanted[*]} (apt)"
    "${sudo[@]}" apt-get update -qq || die "apt-get update failed (see above)"
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${wanted[@]}" >/dev/null ||
        die "apt-get install ${wanted[*]} failed (see above)"
}

install_c() {
    apt_install
    install_js # jco, for `jco new`
}

parts=("$@")
[ ${#parts[@]} -eq 0 ] && parts=(all)
for part in "${parts[@]}"; do
    case "$part" in
    python | js | c | all) ;;
    *) die "unknown toolchain '$part' (expected python, js, c or all)" ;;
    esac
done
for part in "${parts[@]}"; do
    case "$part" in
    python) install_python ;;
    js) install_js ;;
    c) install_c ;;
    all) install_python && install_js && install_c ;;
    esac
done
