#!/usr/bin/env bash
# Re-create vendor/wasmtime: the registry source of the wasmtime crate with
# the vendor/*.patch files below applied, in order (why: vendor/README.md).
#
#   tools/vendor-wasmtime.sh [VERSION]     # default: the version in Cargo.lock
#
# On a wasmtime upgrade: bump the version in host/Cargo.toml, run this script
# with the new version, then `cargo update -p wasmtime`. If a patch no
# longer applies, the script stops and says so (wasmtime 50.0.1 has the
# resumed scan but not the PRESENT-or-SWAPPED mask: the pagemap patch shrinks
# to that one line there, see vendor/README.md); if the new release contains
# a whole change, it says to drop that patch instead.
set -euo pipefail
cd "$(dirname "$0")/.."

patch_files=(
    vendor/wasmtime-pagemap-scan.patch   # reset every dirty page run, not 32
    vendor/wasmtime-funcref-code.patch   # funcref code locations once per module
    vendor/wasmtime-component-trampolines.patch   # trampoline locations once per component
)
version="${1:-$(sed -n '/^name = "wasmtime"$/{n;s/^version = "\(.*\)"$/\1/p;}' Cargo.lock)}"
[ -n "$version" ] || { echo "no wasmtime version in Cargo.lock; pass one" >&2; exit 1; }

registry="${CARGO_HOME:-$HOME/.cargo}/registry/src"
find_source() { ls -d "$registry"/*/"wasmtime-$version" 2>/dev/null | head -n 1 || true; }
source_dir="$(find_source)"
if [ -z "$source_dir" ]; then
    # `cargo info` downloads and unpacks the crate into the registry cache.
    # Run outside the workspace so it asks crates.io, not our [patch].
    (cd "$(mktemp -d)" && cargo info --quiet "wasmtime@$version" >/dev/null)
    source_dir="$(find_source)"
fi
[ -n "$source_dir" ] || { echo "wasmtime $version not found in $registry" >&2; exit 1; }

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
cp -r "$source_dir" "$tmp/wasmtime"
rm -f "$tmp/wasmtime/.cargo-ok"
for patch_file in "${patch_files[@]}"; do
    if patch --dry-run --silent --reverse --force -p1 -d "$tmp/wasmtime" < "$patch_file" >/dev/null 2>&1; then
        echo "wasmtime $version already contains $patch_file: drop it from this script (and the [patch.crates-io] entry if it was the last)" >&2
        exit 1
    fi
    if ! patch --silent --forward --fuzz=0 -p1 -d "$tmp/wasmtime" < "$patch_file"; then
        echo "$patch_file does not apply to wasmtime $version: port it by hand" >&2
        exit 1
    fi
done
rm -rf vendor/wasmtime
mv "$tmp/wasmtime" vendor/wasmtime
echo "vendor/wasmtime: wasmtime $version from $source_dir with ${patch_files[*]}"
