#!/usr/bin/env bash
# Type-checks and lints the whole workspace for macOS on Apple silicon (aarch64-apple-darwin)
# from Linux, as far as a machine without Apple's SDK can: every crate, tests included, through
# clippy as the Linux build does, with Zig as the C compiler of the build scripts that compile C
# (ring, blake3, simsimd, objc2's exception helper), since Zig carries macOS's C headers.
#
# It stops short of two things, both of which need the SDK: linking (Metal, AppKit, WebKit are
# frameworks the SDK holds) and HEIC, whose libheif build runs CMake against the SDK; so the check
# is `--no-default-features`, and the code behind the `heic` feature (14 cfg'd items in four files
# of src/data, HEIF decoding through libheif) is left to the hosted workflow's macos job.
#
#   bash scripts/macos/check.sh    # ~25 min cold on two cores (its own target folder), ~1 min warm
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/env.sh
target=aarch64-apple-darwin
rustup target list --installed 2>/dev/null | grep -qx "$target" || rustup target add "$target"
# Zig and cargo-zigbuild from PyPI (the ziglang and cargo-zigbuild packages ship the binaries).
venv=/var/cache/spreadout/zig-venv
[ -x "$venv/bin/cargo-zigbuild" ] || {
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q ziglang cargo-zigbuild
}
export PATH="$venv/bin:$PATH"
# A folder of its own: the Linux and Windows builds keep theirs, and no lock is shared.
export CARGO_TARGET_DIR=/var/cache/spreadout/macos-check
cargo-zigbuild check --target "$target" --workspace --no-default-features \
  --features spreadout-app/custom-protocol --all-targets
echo "macOS ($target): the workspace type-checks and lints clean (without HEIC; not linked)"
